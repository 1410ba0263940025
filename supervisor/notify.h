/* notify.h — telling a service manager how the supervisor is doing:
 * ready (the control API listens), reloading, stopping (the drain began).
 *
 * Two protocols, each used when the manager asked for it:
 * - systemd (Type=notify): NOTIFY_SOCKET names an AF_UNIX datagram socket
 *   (a path, or an abstract name when it starts with '@'); each state is
 *   one datagram of "KEY=VALUE\n" lines (sd_notify(3)). No libsystemd.
 * - s6 (a notification-fd file in the service directory): the run script
 *   gets a pipe on that fd; the daemon writes one newline when it is ready
 *   and closes it (--notify-fd N). Only readiness: s6 sees the stop itself.
 *
 * The module owns one process-wide state (the socket's address, the fd):
 * the signal handlers of main.c call it without a context. A failed send
 * is logged once, as a warning, and never stops the supervisor: a manager
 * that misses READY=1 times the start out, which says more than we could. */
#ifndef IDEM_NOTIFY_H
#define IDEM_NOTIFY_H

#include <stddef.h>

/* --notify-fd VALUE, at parse time (before logging starts): VALUE must be
 * a number 3..1023 naming an open fd, which is then marked close-on-exec
 * so that no worker or helper holds s6's pipe open. Returns 0, or -1 with
 * err filled (naming --notify-fd and what to fix). */
int notify_fd_set(const char *value, char *err, size_t errlen);

/* Reads NOTIFY_SOCKET and removes it from the environment, so that no
 * child (workers, the app's helper, commands) inherits it and talks to
 * the manager as if it were the service. Call once, after log_init() and
 * before the first child is started. */
void notify_init(void);

/* READY=1 with MAINPID and STATUS=status (NULL: the last call's, or
 * "ready"); on the first call also the newline on --notify-fd, which is
 * then closed. Call when the control API listens, and again after a
 * reload. */
void notify_ready(const char *status);

/* RELOADING=1 (with MONOTONIC_USEC, which Type=notify-reload asks for):
 * a reload began; notify_ready() when it is over. */
void notify_reloading(void);

/* STOPPING=1: the drain began (SIGTERM). */
void notify_stopping(void);

#endif

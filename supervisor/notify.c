/* notify.c — readiness and state for systemd (NOTIFY_SOCKET) and s6
 * (--notify-fd): see notify.h. sd_notify's protocol needs no library: a
 * datagram of "KEY=VALUE\n" lines to the socket systemd names. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

static struct {
	struct sockaddr_un addr;
	socklen_t addrlen; /* 0: no NOTIFY_SOCKET */
	char name[128];    /* NOTIFY_SOCKET as given, for the warning */
	char status[256];  /* the last STATUS= of notify_ready */
	int fd;            /* --notify-fd, or -1 */
	int warned;
} n = {.fd = -1};

int notify_fd_set(const char *value, char *err, size_t errlen)
{
	char *end = NULL;
	long fd;

	errno = 0;
	fd = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || fd < 3 || fd > 1023) {
		snprintf(err, errlen,
		         "--notify-fd \"%.40s\" is not an fd number in 3..1023 (0..2 are the "
		         "standard streams; s6: the number in the service's notification-fd file)",
		         value);
		return -1;
	}
	/* Our own children must not hold the pipe: s6 would never see it
	 * close, and a worker could write to it. */
	if (fcntl((int)fd, F_GETFD) < 0 || fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0) {
		snprintf(err, errlen,
		         "--notify-fd %ld is not an open file descriptor (%s); the service manager "
		         "opens it (s6: notification-fd), or leave the flag out",
		         fd, strerror(errno));
		return -1;
	}
	n.fd = (int)fd;
	return 0;
}

void notify_init(void)
{
	const char *v = getenv("NOTIFY_SOCKET");
	char q[160];
	size_t len;

	if (v == NULL || v[0] == '\0')
		return;
	len = strlen(v);
	snprintf(n.name, sizeof(n.name), "%s", v);
	if ((v[0] != '/' && v[0] != '@') || len >= sizeof(n.addr.sun_path)) {
		log_warn("NOTIFY_SOCKET is neither a socket path nor an abstract @name that fits; "
		         "the service manager will not hear that idem is ready",
		         "notify_socket=%s", log_quote(q, sizeof(q), v));
		unsetenv("NOTIFY_SOCKET");
		return;
	}
	n.addr.sun_family = AF_UNIX;
	memcpy(n.addr.sun_path, v, len);
	/* An abstract name has no terminating NUL: its length is the
	 * address's, and its first byte is NUL instead of '@'. */
	if (v[0] == '@') {
		n.addr.sun_path[0] = '\0';
		n.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	} else {
		n.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	}
	unsetenv("NOTIFY_SOCKET");
}

static void warn_once(const char *what, const char *state, int e)
{
	char q[160];

	if (n.warned)
		return;
	n.warned = 1;
	log_warn("cannot tell the service manager idem's state (reported once)",
	         "via=%s state=%s error=\"%s\"", log_quote(q, sizeof(q), what), state, strerror(e));
}

/* One datagram; never blocks the loop (MSG_DONTWAIT): a manager whose
 * queue is full misses the state rather than stalling every workflow.
 * state names it in the warning. */
static void send_state(const char *state, const char *msg)
{
	size_t len = strlen(msg);
	ssize_t sent = -1;
	int s, e = 0;

	if (n.addrlen == 0)
		return;
	s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s >= 0) {
		sent =
		    sendto(s, msg, len, MSG_DONTWAIT, (const struct sockaddr *)&n.addr, n.addrlen);
		e = errno;
		close(s);
	} else {
		e = errno;
	}
	if (sent != (ssize_t)len)
		warn_once(n.name, state, e != 0 ? e : EMSGSIZE);
}

void notify_ready(const char *status)
{
	char msg[512];

	if (status != NULL)
		snprintf(n.status, sizeof(n.status), "%s", status);
	snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%ld\nSTATUS=%s", (long)getpid(),
	         n.status[0] != '\0' ? n.status : "ready");
	send_state("ready", msg);
	if (n.fd < 0)
		return;
	/* s6: one newline, then EOF; readiness is said once per run. */
	if (write(n.fd, "\n", 1) != 1)
		warn_once("--notify-fd", "ready", errno);
	close(n.fd);
	n.fd = -1;
}

void notify_reloading(void)
{
	struct timespec ts;
	char msg[160];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%lld\nSTATUS=reloading",
	         (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
	send_state("reloading", msg);
}

void notify_stopping(void)
{
	send_state("stopping",
	           "STOPPING=1\nSTATUS=draining: no new work; attempts in flight finish");
}

/* log.h — one logfmt line per event on stderr:
 *   ts=2026-11-26T11:32:32.123Z level=info role=supervisor pid=42 msg="worker ready" slot=0
 * log.c is the only module of shared/ that writes to a stream; the
 * other shared modules report errors through err buffers. */
#ifndef IDEM_LOG_H
#define IDEM_LOG_H

#include "config.h"

void log_init(const char *role, enum log_level min);
int log_enabled(enum log_level l);

/* msg is quoted as needed; kvfmt ("" for none) is a printf format that
 * yields space-separated key=value pairs appended to the line. */
void log_at(enum log_level l, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_at(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_at(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)

#endif

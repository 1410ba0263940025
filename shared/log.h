/* log.h — one line per event on stderr, logfmt (the default):
 *   ts=2026-11-26T11:32:32.123Z level=info role=supervisor pid=42 msg="worker ready" slot=0
 * or, with LOG_FORMAT=json, one JSON object with the same fields:
 *   {"ts":"2026-11-26T11:32:32.123Z","level":"info","role":"supervisor","pid":42,
 *    "msg":"worker ready","slot":0}
 * In JSON, a bare value that is a number (or true/false) stays one, and a
 * key=value field named like a fixed one (ts, level, role, pid, msg) gets
 * a leading '_' ("_role"). Each line is one write(2).
 * log.c is the only module of shared/ that writes to a stream; the
 * other shared modules report errors through err buffers. */
#ifndef IDEM_LOG_H
#define IDEM_LOG_H

#include <stddef.h>

#include "config.h"

void log_init(const char *role, enum log_level min);
/* The lowest level logged from now on (a reload: SIGHUP). */
void log_set_level(enum log_level min);
/* LOG_FORMAT: logfmt (the default) or json. */
void log_set_format(enum log_format f);
int log_enabled(enum log_level l);

/* s as a logfmt value for a kvfmt "%s": bare when it can be, else quoted
 * with ", \ and control characters escaped; cut short to fit len. Returns
 * buf. */
const char *log_quote(char *buf, size_t len, const char *s);

/* msg is quoted as needed; kvfmt ("" for none) is a printf format that
 * yields space-separated key=value pairs appended to the line. */
void log_at(enum log_level l, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_at(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_at(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)

#endif

/* fmt.h — short text from the API's values, into a caller's buffer that
 * is never overrun: durations, times, integers that may be absent, and
 * "key=value" summaries of JSON objects. */
#ifndef IDEMCTL_FMT_H
#define IDEMCTL_FMT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Appends printf output to buf (size len), truncating with "...". */
void fmt_append(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* "850ms", "1.5s", "30s", "2m05s", "1h02m". */
void fmt_dur(int64_t ms, char *buf, size_t len);
/* "+708ms": ts relative to the workflow's start t0. */
void fmt_rel(long long ts, long long t0, char *buf, size_t len);
/* Wall ms as RFC 3339 UTC, or "-" when absent. */
void fmt_time(const json_t *v, char *buf, size_t len);
/* An integer field as text, "-" when absent or null. */
void fmt_int(const json_t *o, const char *key, char *buf, size_t len);
/* Appends a JSON value as short text: strings bare, everything else compact. */
void fmt_value(char *buf, size_t len, const json_t *v);
/* Appends "key=value ..." for the fields of obj, leaving out nulls,
 * replayed=false and fields that echo the same value in echo (an
 * activity's input; may be NULL). A value that is not an object is
 * appended as fmt_value does, null not at all. */
void fmt_summary(const json_t *obj, const json_t *echo, char *buf, size_t len);

#endif

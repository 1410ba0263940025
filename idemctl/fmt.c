/* fmt.c — see fmt.h: short text from the API's values. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fmt.h"

void fmt_append(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;
	int n;

	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n >= len - used && len > 4)
		memcpy(buf + len - 4, "...", 4);
}

void fmt_dur(int64_t ms, char *buf, size_t len)
{
	if (ms < 1000)
		snprintf(buf, len, "%" PRId64 "ms", ms);
	else if (ms < 60000 && ms % 1000 == 0)
		snprintf(buf, len, "%" PRId64 "s", ms / 1000);
	else if (ms < 60000)
		snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
	else if (ms < 3600000)
		snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", ms / 60000, ms / 1000 % 60);
	else
		snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", ms / 3600000, ms / 60000 % 60);
}

void fmt_rel(long long ts, long long t0, char *buf, size_t len)
{
	buf[0] = '+';
	fmt_dur(ts - t0, buf + 1, len - 1);
}

void fmt_time(const json_t *v, char *buf, size_t len)
{
	if (json_is_integer(v))
		clock_format_wall(json_integer_value(v), buf, len);
	else
		snprintf(buf, len, "-");
}

void fmt_int(const json_t *o, const char *key, char *buf, size_t len)
{
	const json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else
		snprintf(buf, len, "-");
}

void fmt_value(char *buf, size_t len, const json_t *v)
{
	char *text;

	if (json_is_string(v)) {
		fmt_append(buf, len, "%s", json_string_value(v));
		return;
	}
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	fmt_append(buf, len, "%s", text ? text : "?");
	free(text);
}

void fmt_summary(const json_t *obj, const json_t *echo, char *buf, size_t len)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj)) {
		if (obj != NULL && !json_is_null(obj))
			fmt_value(buf, len, obj);
		return;
	}
	json_object_foreach((json_t *)obj, key, v)
	{
		if (json_is_null(v) || (strcmp(key, "replayed") == 0 && json_is_false(v)))
			continue;
		if (echo != NULL && json_equal(v, json_object_get(echo, key)))
			continue;
		fmt_append(buf, len, "%s%s=", buf[0] ? " " : "", key);
		fmt_value(buf, len, v);
	}
}

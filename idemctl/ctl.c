/* ctl.c — see ctl.h: messages, JSON getters and a command's options. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

int ctl_fail(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("idemctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

const struct idem_start_flag *ctl_start_flags(const struct ctl *c)
{
	static const struct idem_start_flag none[] = {{0}};

	return c->app != NULL && c->app->start_flags != NULL ? c->app->start_flags : none;
}

const char *ctl_str(const json_t *o, const char *key, const char *def)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : def;
}

long long ctl_int(const json_t *o, const char *key, long long def)
{
	const json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (long long)json_integer_value(v) : def;
}

int ctl_parse_args(const char *cmd, int argc, char **argv, const struct opt *opts, const char **pos,
                   int maxpos, int *npos)
{
	*npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *eq = strchr(arg, '=');
		size_t nlen = eq && strncmp(arg, "--", 2) == 0 ? (size_t)(eq - arg) : strlen(arg);
		const struct opt *o = opts;

		if (strncmp(arg, "--", 2) != 0 || strcmp(arg, "--") == 0) {
			if (*npos == maxpos)
				return ctl_fail(IDEM_EXIT_USAGE, "%s: unexpected argument \"%s\"",
				                cmd, arg);
			pos[(*npos)++] = arg;
			continue;
		}
		while (o->name != NULL && (strlen(o->name) != nlen || strncmp(o->name, arg, nlen)))
			o++;
		if (o->name == NULL)
			return ctl_fail(IDEM_EXIT_USAGE, "%s: unknown option \"%.*s\" (see --help)",
			                cmd, (int)nlen, arg);
		if (o->flag != NULL) {
			*o->flag = 1;
		} else if (eq != NULL) {
			*o->value = eq + 1;
		} else if (i + 1 < argc) {
			*o->value = argv[++i];
		} else {
			return ctl_fail(IDEM_EXIT_USAGE, "%s: %s needs a value", cmd, o->name);
		}
	}
	return 0;
}

int ctl_parse_number(const char *cmd, const char *what, const char *text, long long min,
                     long long max, long long *out)
{
	char *end;
	long long v = 0;

	if (text[0] == '\0' || text[0] == '+' || text[0] == ' ')
		end = (char *)text;
	else
		v = strtoll(text, &end, 10);
	if (end == text || *end != '\0' || v < min)
		return ctl_fail(IDEM_EXIT_USAGE, "%s: %s %s is not %s", cmd, what, text,
		                min > 0 ? "a positive integer" : "a whole number >= 0");
	if (v > max)
		return ctl_fail(IDEM_EXIT_USAGE, "%s: %s %s is too large (at most %lld)", cmd, what,
		                text, max);
	*out = v;
	return 0;
}

int ctl_parse_timeout(const char *cmd, const char *opt, const char *text, int64_t min_ms, int *out)
{
	int64_t ms;

	if (config_parse_duration(text, &ms) != 0 || ms < min_ms || ms > CTL_WAIT_MAX_MS)
		return ctl_fail(IDEM_EXIT_USAGE,
		                "%s%s %s is not a duration (30 = seconds, or "
		                "500ms, 2m; %s1h)",
		                cmd, opt, text, min_ms > 0 ? "more than 0, at most " : "up to ");
	*out = (int)ms;
	return 0;
}

int ctl_need(const char *cmd, const char *value, const char *what)
{
	if (value != NULL)
		return 0;
	return ctl_fail(IDEM_EXIT_USAGE, "%s: %s is required (see idemctl --help)", cmd, what);
}

int ctl_one_id(const char *cmd, int argc, char **argv, const char **id)
{
	static const struct opt none[] = {{NULL, NULL, NULL}};
	int npos, rc = ctl_parse_args(cmd, argc, argv, none, id, 1, &npos);

	if (rc == 0 && npos == 0)
		rc = ctl_need(cmd, NULL, "a workflow ID");
	return rc;
}

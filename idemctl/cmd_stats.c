/* cmd_stats.c — stats, and top (also stats --watch): GET /v1/stats once, or
 * every interval until Ctrl-C or --count; see cmd.h. */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "http.h"
#include "render.h"

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* count snapshots (0: until interrupted) every interval_ms. On a terminal
 * each one replaces the last; elsewhere they follow one another. */
static int top_run(struct ctl *c, int interval_ms, long long count)
{
	int tty = isatty(STDOUT_FILENO), rc = 0;
	json_t *prev = NULL, *doc = NULL;

	for (long long i = 0; count == 0 || i < count; i++) {
		if (i > 0)
			sleep_ms(interval_ms);
		if ((rc = http_get(c, "/v1/stats", 0, &doc)) != 0)
			break;
		if (c->json) {
			http_print_json(doc);
		} else {
			if (tty)
				fputs("\033[H\033[2J", stdout);
			else if (i > 0)
				putchar('\n');
			render_top(doc, prev);
		}
		fflush(stdout);
		json_decref(prev);
		prev = doc;
	}
	json_decref(prev);
	return rc;
}

/* --interval SECONDS and --count N of top and stats --watch. */
static int top_options(const char *cmd, const char *interval, const char *count, int *ms,
                       long long *n)
{
	int64_t v;

	*ms = CTL_TOP_INTERVAL_MS;
	*n = 0;
	if (interval != NULL) {
		if (config_parse_duration(interval, &v) != 0 || v < CTL_TOP_MIN_MS ||
		    v > CTL_WAIT_MAX_MS)
			return ctl_fail(IDEM_EXIT_USAGE,
			                "%s: --interval %s is not a duration from 10ms to 1h (1 = "
			                "one second, 0.5, 250ms)",
			                cmd, interval);
		*ms = (int)v;
	}
	if (count != NULL)
		return ctl_parse_number(cmd, "--count", count, 1, 1000000000LL, n);
	return 0;
}

int cmd_top(struct ctl *c, int argc, char **argv)
{
	const char *interval = NULL, *count = NULL, *pos[1];
	const struct opt opts[] = {
	    {"--interval", &interval, NULL}, {"--count", &count, NULL}, {NULL, NULL, NULL}};
	long long n;
	int npos, ms, rc;

	if ((rc = ctl_parse_args("top", argc, argv, opts, pos, 0, &npos)) != 0 ||
	    (rc = top_options("top", interval, count, &ms, &n)) != 0)
		return rc;
	return top_run(c, ms, n);
}

int cmd_stats(struct ctl *c, int argc, char **argv)
{
	const char *interval = NULL, *count = NULL, *pos[1];
	int watch = 0, npos, ms, rc;
	const struct opt opts[] = {{"--watch", NULL, &watch},
	                           {"--interval", &interval, NULL},
	                           {"--count", &count, NULL},
	                           {NULL, NULL, NULL}};
	json_t *doc = NULL;
	long long n;

	if ((rc = ctl_parse_args("stats", argc, argv, opts, pos, 0, &npos)) != 0)
		return rc;
	if (watch) {
		if ((rc = top_options("stats --watch", interval, count, &ms, &n)) != 0)
			return rc;
		return top_run(c, ms, n);
	}
	if (interval != NULL || count != NULL)
		return ctl_fail(IDEM_EXIT_USAGE, "stats: --interval and --count go with --watch");
	if ((rc = http_get(c, "/v1/stats", 0, &doc)) != 0)
		return rc;
	if (c->json)
		http_print_json(doc);
	else
		render_stats(doc);
	json_decref(doc);
	return 0;
}

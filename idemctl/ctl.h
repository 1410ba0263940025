/* ctl.h — what every idemctl command shares: the client's state (struct
 * ctl), its limits, messages, the JSON getters and a command's options.
 *
 * idemctl is the command-line client of idem-supervisor's control API
 * (supervisor/api.c). Each command is one HTTP exchange (list: one per
 * page; wait: a long poll) over the Unix socket SOCKET or, with --http,
 * loopback TCP, through shared/httpc (http.h). The files:
 *   main.c           global options, the command table (idemctl's own
 *                    commands and the app's), --help
 *   cmd_*.c (cmd.h)  the commands, by group: workflow, stats, check
 *   http.c           requests to the supervisor, their errors, --json, and
 *                    what an app's command is lent of them (struct idem_ctl)
 *   render_*.c       the API's documents as text for people (render.h)
 *   fmt.c, table.c   durations, times, summaries; aligned columns
 *
 * The app named by APP (apps/apps.h) adds start's flags, which fill the
 * workflow's input, and its own commands (shared/idem_app.h); idemctl
 * names none of its fields or endpoints.
 *
 * Output is for people; --json prints the API's JSON document instead, for
 * machines. Messages about what went wrong go to stderr as "idemctl: ...".
 * check --offline runs the checker (shared/check.h) on the databases
 * themselves, without the supervisor.
 *
 * Exit codes (shared/exitcodes.h), also in --help: every function that
 * returns an int returns one of them (or 0 to go on), never -1:
 *   0 ok; 1 the workflow failed (wait), an invariant is violated (check)
 *   or the server refused the request; 2 usage error, or the supervisor
 *   (check --offline: a database) cannot be reached; 3 wait timed out;
 *   6 check found no violation but some workflow still runs, so its
 *   verdict is not final (4 and 5 are the supervisor's and the
 *   supplier's, see exitcodes.h). */
#ifndef IDEMCTL_CTL_H
#define IDEMCTL_CTL_H

#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "exitcodes.h"
#include "idem_app.h"

#define CTL_TIMEOUT_MS 10000 /* one HTTP exchange */
#define CTL_WAIT_MS 30000    /* wait's default */
#define CTL_CHECK_MS 300000  /* check: added to --timeout, for large databases */
#define CTL_WAIT_MAX_MS 3600000
#define CTL_LIST_DEFAULT 100
#define CTL_LIST_PAGE 1000 /* the API's largest page */
#define CTL_DETAIL_MAX 110 /* characters of a table's last column */
#define CTL_PATH_MAX 1024
#define CTL_TOP_INTERVAL_MS 1000 /* top's default refresh */
#define CTL_TOP_MIN_MS 10

struct ctl {
	struct idem_config cfg;
	char endpoint[CONFIG_PATH_MAX]; /* a socket path or http://HOST:PORT */
	int json;                       /* --json */
	int timeout_ms;                 /* --timeout */
	int ns_given;               /* a namespace was chosen (flag, environment, .env): send it */
	const struct idem_app *app; /* APP's, or NULL when no app has that name */
};

/* A command's options: "--name VALUE" (value != NULL) or "--name" (flag). */
struct opt {
	const char *name;
	const char **value;
	int *flag;
};

/* Prints "idemctl: ..." on stderr and returns code. */
int ctl_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The app's start flags: a list ending with a NULL flag, empty when
 * there is no app. */
const struct idem_start_flag *ctl_start_flags(const struct ctl *c);

/* A string field of o (borrowed), or def when absent or not a string. */
const char *ctl_str(const json_t *o, const char *key, const char *def);
/* An integer field of o, or def when absent or not an integer. */
long long ctl_int(const json_t *o, const char *key, long long def);

/* Splits a command's arguments into its options and up to maxpos
 * positional arguments. Returns 0, or 2 after a usage message. */
int ctl_parse_args(const char *cmd, int argc, char **argv, const struct opt *opts, const char **pos,
                   int maxpos, int *npos);
/* A whole number in [min, max]. Returns 0, or 2 after a message naming
 * what (e.g. "--limit") and the text. */
int ctl_parse_number(const char *cmd, const char *what, const char *text, long long min,
                     long long max, long long *out);
/* A duration ("30" seconds, "500ms", "2m") from min_ms up to an hour, in
 * ms. cmd is the message's prefix ("wait: ", or "" for a global option).
 * Returns 0, or 2 after a message. */
int ctl_parse_timeout(const char *cmd, const char *opt, const char *text, int64_t min_ms, int *out);
/* 0 when value is given, else 2 after "CMD: WHAT is required". */
int ctl_need(const char *cmd, const char *value, const char *what);
/* The one positional argument of show/get: a workflow id. Returns 0 or 2. */
int ctl_one_id(const char *cmd, int argc, char **argv, const char **id);

#endif

/* idemctl.c — the command-line client of idem-supervisor's control API
 * (supervisor/api.c). Each command is one HTTP exchange (list: one per
 * page; wait: a long poll) over the Unix socket SOCKET or, with --http,
 * loopback TCP, through shared/httpc.
 *
 * Output is for people; --json prints the API's JSON document instead, for
 * machines. Messages about what went wrong go to stderr as "idemctl: ...".
 * check --offline runs the checker (shared/check.h) on the databases
 * themselves, without the supervisor.
 *
 * Exit codes (shared/exitcodes.h), also in --help:
 *   0 ok; 1 the workflow failed (wait), an invariant is violated (check)
 *   or the server refused the request; 2 usage error, or the supervisor
 *   (check --offline: a database) cannot be reached; 3 wait timed out;
 *   6 check found no violation but some workflow still runs, so its
 *   verdict is not final (4 and 5 are the supervisor's and the
 *   supplier's, see exitcodes.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"
#include "clock.h"
#include "config.h"
#include "exitcodes.h"
#include "inventory_input.h"
#include "httpc.h"

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
	int ns_given; /* a namespace was chosen (flag, environment, .env): send it */
};

/* A command's options: "--name VALUE" (value != NULL) or "--name" (flag). */
struct opt {
	const char *name;
	const char **value;
	int *flag;
};

static const char usage_text[] =
    "usage: idemctl [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "The command-line client of idem-supervisor's control API.\n"
    "\n"
    "Commands:\n"
    "  start --order-id ID --product-id ID --quantity N [--workflow-id ID]\n"
    "        [--wait SECONDS]\n"
    "                   start an inventory workflow; idempotent: a workflow id\n"
    "                   (default: the order id) is started once; --wait also\n"
    "                   waits until it closes, in the same request, and exits as\n"
    "                   wait does\n"
    "  show ID          a workflow and its history as a timeline: each step with\n"
    "                   its attempts (fault, outcome, retry wait, worker pid,\n"
    "                   how long each waited and took)\n"
    "  get ID           a workflow's status and result\n"
    "  list [--status running|completed|failed] [--limit N]\n"
    "                   workflows, oldest first (at most N, default 100)\n"
    "  wait ID|--all [--timeout SECONDS]\n"
    "                   wait until the workflow closes, or until none is running\n"
    "                   (default 30 s)\n"
    "  stats            workflows by status, attempts, retries, the worker pool\n"
    "  top [--interval SECONDS] [--count N]\n"
    "                   the worker slots (pid, state, the attempt each runs) with\n"
    "                   totals and rates, every second (default) until Ctrl-C, or\n"
    "                   N times; also stats --watch\n"
    "  stock get PRODUCT\n"
    "  stock set PRODUCT N [--reason TEXT]\n"
    "                   read or set a product's stock in the app DB\n"
    "  check [--offline] [--wait SECONDS]\n"
    "                   verify that nothing was lost or applied twice and that\n"
    "                   the stocks add up (see the supervisor's GET /v1/check);\n"
    "                   workflows still running are listed, and the verdict is\n"
    "                   final only once none runs: --wait first waits for that\n"
    "                   (as wait --all); --offline reads DATABASE,\n"
    "                   STATE_DATABASE and SUPPLIER_DATABASE itself (--database\n"
    "                   PATH, ...)\n"
    "Every command accepts --namespace NS (default: NAMESPACE; list: all).\n"
    "\n"
    "Options (before the command):\n"
    "  --socket PATH      the supervisor's Unix socket (default: SOCKET, now %s)\n"
    "  --http URL         use TCP instead, e.g. http://127.0.0.1:8080 (HTTP_LISTEN)\n"
    "  --env FILE         read the configuration from FILE (default ./.env)\n"
    "  --json             print the API's JSON document as-is\n"
    "  --timeout SECONDS  limit for one HTTP exchange (default 10; wait adds its own)\n"
    "  --help, --version\n"
    "Any configuration key is also accepted as a flag (--namespace NS).\n"
    "\n"
    "Exit codes:\n"
    "  0  ok (check: no violation)\n"
    "  1  wait: the workflow failed; check: an invariant is violated;\n"
    "     any command: the supervisor refused the request\n"
    "  2  usage error, or the supervisor cannot be reached (check --offline: a\n"
    "     database cannot be opened or read; check: the supervisor could not check)\n"
    "  3  wait: the timeout passed with the workflow still running\n"
    "  6  check: not quiescent: no violation, but workflows still run (also\n"
    "     when check --wait timed out); a violation (1) wins over it\n"
    "wait --all exits 0 once no workflow is running, even when some failed\n"
    "(see idemctl list --status failed).\n";

/* ---- messages ----------------------------------------------------------- */

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "idemctl: ..." on stderr and returns code. */
static int fail(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("idemctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

/* ---- text helpers ---------------------------------------------------------- */

/* Appends printf output to buf (size len), truncating with "...". */
static void append(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void append(char *buf, size_t len, const char *fmt, ...)
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

/* "850ms", "1.5s", "30s", "2m05s", "1h02m". */
static void fmt_dur(int64_t ms, char *buf, size_t len)
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

/* Wall ms as RFC 3339 UTC, or "-" when absent. */
static void fmt_time(const json_t *v, char *buf, size_t len)
{
	if (json_is_integer(v))
		clock_format_wall(json_integer_value(v), buf, len);
	else
		snprintf(buf, len, "-");
}

static const char *jstr(const json_t *o, const char *key, const char *def)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : def;
}

static long long jint(const json_t *o, const char *key, long long def)
{
	const json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (long long)json_integer_value(v) : def;
}

/* An integer field as text, "-" when absent or null. */
static void fmt_int(const json_t *o, const char *key, char *buf, size_t len)
{
	const json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else
		snprintf(buf, len, "-");
}

/* A JSON value as short text: strings bare, everything else compact. */
static void append_value(char *buf, size_t len, const json_t *v)
{
	char *text;

	if (json_is_string(v)) {
		append(buf, len, "%s", json_string_value(v));
		return;
	}
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	append(buf, len, "%s", text ? text : "?");
	free(text);
}

/* "key=value ..." for the fields of obj, leaving out nulls, replayed=false
 * and fields that echo the same value in echo (an activity's input). */
static void summarize(const json_t *obj, const json_t *echo, char *buf, size_t len)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj)) {
		if (obj != NULL && !json_is_null(obj))
			append_value(buf, len, obj);
		return;
	}
	json_object_foreach((json_t *)obj, key, v)
	{
		if (json_is_null(v) || (strcmp(key, "replayed") == 0 && json_is_false(v)))
			continue;
		if (echo != NULL && json_equal(v, json_object_get(echo, key)))
			continue;
		append(buf, len, "%s%s=", buf[0] ? " " : "", key);
		append_value(buf, len, v);
	}
}

/* Percent-encodes one path segment or query value. */
static void url_escape(const char *s, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (; *s && n + 4 < len; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch) != NULL) {
			out[n++] = (char)ch;
		} else {
			out[n++] = '%';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		}
	}
	out[n] = '\0';
}

/* ---- tables ------------------------------------------------------------------ */

#define TABLE_COLS 10

/* Rows of text cells printed with aligned columns; the last column is not
 * padded. Cells are copies owned by the table. A line row (table_line) is
 * printed as it is, outside the columns. */
struct table {
	int ncols;
	int nrows;
	int cap;
	char **cells;
	int width[TABLE_COLS];
};

static void table_add(struct table *t, const char *const *row)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = realloc(t->cells, (size_t)t->cap * (size_t)t->ncols * sizeof(char *));
	}
	for (int i = 0; i < t->ncols; i++) {
		char *cell = strdup(row[i] ? row[i] : "");
		int w = (int)strlen(cell);

		t->cells[t->nrows * t->ncols + i] = cell;
		if (w > t->width[i])
			t->width[i] = w;
	}
	t->nrows++;
}

/* Adds a line printed as it is, across the columns (cells 1.. are NULL). */
static void table_line(struct table *t, const char *text)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = realloc(t->cells, (size_t)t->cap * (size_t)t->ncols * sizeof(char *));
	}
	t->cells[t->nrows * t->ncols] = strdup(text);
	for (int i = 1; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = NULL;
	t->nrows++;
}

/* heads may be NULL: no heading row. */
static void table_init(struct table *t, int ncols, const char *const *heads)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	if (heads != NULL)
		table_add(t, heads);
}

/* Prints every row, then frees the cells. */
static void table_print(struct table *t)
{
	for (int r = 0; r < t->nrows; r++) {
		char **row = t->cells + r * t->ncols;
		int last = t->ncols - 1;

		if (t->ncols > 1 && row[1] == NULL) {
			printf("%s\n", row[0]);
			free(row[0]);
			continue;
		}
		while (last > 0 && row[last][0] == '\0')
			last--;
		for (int i = 0; i <= last; i++)
			printf("%-*s%s", i < last ? t->width[i] : 0, row[i],
			       i < last ? "  " : "\n");
		for (int i = 0; i < t->ncols; i++)
			free(row[i]);
	}
	free(t->cells);
	t->cells = NULL;
}

/* ---- command-line parsing ------------------------------------------------------ */

/* Splits a command's arguments into its options and up to maxpos
 * positional arguments. Returns 0, or 2 after a usage message. */
static int parse_args(const char *cmd, int argc, char **argv, const struct opt *opts,
                      const char **pos, int maxpos, int *npos)
{
	*npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *eq = strchr(arg, '=');
		size_t nlen = eq && strncmp(arg, "--", 2) == 0 ? (size_t)(eq - arg) : strlen(arg);
		const struct opt *o = opts;

		if (strncmp(arg, "--", 2) != 0 || strcmp(arg, "--") == 0) {
			if (*npos == maxpos)
				return fail(IDEM_EXIT_USAGE, "%s: unexpected argument \"%s\"", cmd,
				            arg);
			pos[(*npos)++] = arg;
			continue;
		}
		while (o->name != NULL && (strlen(o->name) != nlen || strncmp(o->name, arg, nlen)))
			o++;
		if (o->name == NULL)
			return fail(IDEM_EXIT_USAGE, "%s: unknown option \"%.*s\" (see --help)",
			            cmd, (int)nlen, arg);
		if (o->flag != NULL) {
			*o->flag = 1;
		} else if (eq != NULL) {
			*o->value = eq + 1;
		} else if (i + 1 < argc) {
			*o->value = argv[++i];
		} else {
			return fail(IDEM_EXIT_USAGE, "%s: %s needs a value", cmd, o->name);
		}
	}
	return 0;
}

/* A whole number in [min, max]. Returns 0, or 2 after a message naming
 * what (e.g. "--quantity") and the text. */
static int parse_number(const char *cmd, const char *what, const char *text, long long min,
                        long long max, long long *out)
{
	char *end;
	long long v = 0;

	if (text[0] == '\0' || text[0] == '+' || text[0] == ' ')
		end = (char *)text;
	else
		v = strtoll(text, &end, 10);
	if (end == text || *end != '\0' || v < min)
		return fail(IDEM_EXIT_USAGE, "%s: %s %s is not %s", cmd, what, text,
		            min > 0 ? "a positive integer" : "a whole number >= 0");
	if (v > max)
		return fail(IDEM_EXIT_USAGE, "%s: %s %s is too large (at most %lld)", cmd, what,
		            text, max);
	*out = v;
	return 0;
}

static int parse_timeout(const char *cmd, const char *opt, const char *text, int64_t min_ms,
                         int *out)
{
	int64_t ms;

	if (config_parse_duration(text, &ms) != 0 || ms < min_ms || ms > CTL_WAIT_MAX_MS)
		return fail(IDEM_EXIT_USAGE,
		            "%s%s %s is not a duration (30 = seconds, or "
		            "500ms, 2m; %s1h)",
		            cmd, opt, text, min_ms > 0 ? "more than 0, at most " : "up to ");
	*out = (int)ms;
	return 0;
}

static int need(const char *cmd, const char *value, const char *what)
{
	if (value != NULL)
		return 0;
	return fail(IDEM_EXIT_USAGE, "%s: %s is required (see idemctl --help)", cmd, what);
}

/* ---- talking to the supervisor ---------------------------------------------------- */

/* Appends "?query" (when not NULL) and the namespace parameter (when one
 * was chosen) to the path in buf. */
static void add_query(const struct ctl *c, const char *query, char *buf, size_t len)
{
	char esc[CONFIG_NAME_MAX * 3];
	char sep = '?';

	if (query != NULL) {
		append(buf, len, "?%s", query);
		sep = '&';
	}
	if (!c->ns_given)
		return;
	url_escape(c->cfg.namespace_, esc, sizeof(esc));
	append(buf, len, "%cnamespace=%s", sep, esc);
}

/* Sends one request (body borrowed, may be NULL); wait_ms extends the
 * exchange's timeout. Returns 0 with *status and *doc (NEW reference; an
 * answer that is not JSON becomes an {"error"} with status >= 300), or 2
 * after saying why the supervisor could not be reached. */
static int request(const struct ctl *c, const char *method, const char *path, const json_t *body,
                   int wait_ms, int *status, json_t **doc)
{
	static const char *const json_headers[] = {"Content-Type: application/json", NULL};
	struct httpc_response resp;
	char err[1024], *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int rc = httpc_request(c->endpoint, method, path, body ? json_headers : NULL, text,
	                       text ? strlen(text) : 0, c->timeout_ms + wait_ms, &resp, err,
	                       sizeof(err));

	free(text);
	*doc = NULL;
	if (rc != 0 && strstr(err, "cannot connect") == NULL)
		return fail(IDEM_EXIT_USAGE, "%s", err);
	if (rc != 0)
		return fail(IDEM_EXIT_USAGE, "%s; start idem-supervisor, or check %s", err,
		            strncmp(c->endpoint, "http://", 7) == 0
		                ? "--http URL against its HTTP_LISTEN"
		                : "SOCKET (.env, environment or --socket PATH)");
	*status = resp.status;
	*doc = json_loadb(resp.body ? resp.body : "", resp.body_len, 0, NULL);
	if (*doc == NULL) {
		*doc = json_pack("{s:s%, s:i}", "error", resp.body ? resp.body : "",
		                 resp.body_len < 300 ? resp.body_len : 300, "status", resp.status);
		if (resp.status < 300) /* not the API we know: refuse to guess */
			*status = 502;
	}
	httpc_response_free(&resp);
	return 0;
}

/* Prints doc as one compact JSON document on stdout. */
static void print_json(const json_t *doc)
{
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

	if (text != NULL)
		printf("%s\n", text);
	free(text);
}

/* The server refused (status >= 300): says why and returns 1. */
static int refused(const struct ctl *c, int status, const json_t *doc)
{
	if (c->json)
		print_json(doc);
	return fail(IDEM_EXIT_FAIL, "%s", jstr(doc, "error", "the server refused the request"));
}

/* GET path: returns 0 with *doc (NEW reference), or the exit code. */
static int get_json(const struct ctl *c, const char *path, int wait_ms, json_t **doc)
{
	int status = 0, rc = request(c, "GET", path, NULL, wait_ms, &status, doc);

	if (rc != 0)
		return rc;
	if (status >= 300) {
		rc = refused(c, status, *doc);
		json_decref(*doc);
		*doc = NULL;
	}
	return rc;
}

/* "/v1/workflows/ID[/tail][?query][&namespace=NS]" for a workflow id. */
static void wf_path(const struct ctl *c, const char *id, const char *tail, const char *query,
                    char *buf, size_t len)
{
	char esc[CTL_PATH_MAX / 2];

	url_escape(id, esc, sizeof(esc));
	snprintf(buf, len, "/v1/workflows/%s%s", esc, tail);
	add_query(c, query, buf, len);
}

/* ---- workflow views ------------------------------------------------------------------ */

/* "took 8ms" or "running for 2.5s". */
static void wf_duration(const json_t *wf, char *buf, size_t len)
{
	long long created = jint(wf, "created_at", 0), closed = jint(wf, "closed_at", 0);

	buf[0] = '\0';
	if (created <= 0)
		return;
	if (closed > 0) {
		snprintf(buf, len, "took ");
		fmt_dur(closed - created, buf + 5, len - 5);
	} else {
		snprintf(buf, len, "running for ");
		fmt_dur(clock_wall_ms() - created, buf + 12, len - 12);
	}
}

/* The result summary of a completed workflow, or the error of a failed one. */
static void wf_outcome(const json_t *wf, char *buf, size_t len)
{
	buf[0] = '\0';
	if (json_is_string(json_object_get(wf, "error")))
		append(buf, len, "%s", jstr(wf, "error", ""));
	else
		summarize(json_object_get(wf, "result"), NULL, buf, len);
}

static const json_t *step_of(const json_t *wf, const json_t *seq)
{
	size_t i;
	json_t *st;

	if (!json_is_integer(seq))
		return NULL;
	json_array_foreach(json_object_get(wf, "steps"), i, st)
	{
		if (jint(st, "seq", -1) == json_integer_value(seq))
			return st;
	}
	return NULL;
}

static void print_wf_header(const json_t *wf)
{
	char created[40], closed[40], dur[64], *input;

	fmt_time(json_object_get(wf, "created_at"), created, sizeof(created));
	fmt_time(json_object_get(wf, "closed_at"), closed, sizeof(closed));
	wf_duration(wf, dur, sizeof(dur));
	input = json_dumps(json_object_get(wf, "input"), JSON_COMPACT | JSON_ENCODE_ANY);
	printf("workflow   %s (namespace %s, type %s)\n", jstr(wf, "workflow_id", "?"),
	       jstr(wf, "namespace", "?"), jstr(wf, "type", "?"));
	printf("status     %s\n", jstr(wf, "status", "?"));
	printf("input      %s\n", input ? input : "-");
	free(input);
	if (json_is_string(json_object_get(wf, "error"))) {
		printf("error      %s\n", jstr(wf, "error", ""));
	} else if (json_object_get(wf, "result") != NULL &&
	           !json_is_null(json_object_get(wf, "result"))) {
		input = json_dumps(json_object_get(wf, "result"), JSON_COMPACT | JSON_ENCODE_ANY);
		printf("result     %s\n", input ? input : "-");
		free(input);
	}
	printf("created    %s\n", created);
	printf("closed     %s%s%s%s\n", closed, dur[0] ? " (" : "", dur, dur[0] ? ")" : "");
}

/* "ErrorType: message (why)" of a failed attempt or step. */
static void error_detail(const json_t *d, char *buf, size_t len)
{
	const json_t *retryable = json_object_get(d, "retryable");

	append(buf, len, "%s: %s", jstr(d, "error_type", "Error"), jstr(d, "message", ""));
	if (json_is_string(json_object_get(d, "why")))
		append(buf, len, " (%s)", jstr(d, "why", ""));
	else if (json_is_boolean(retryable))
		append(buf, len, " (%s)", json_is_true(retryable) ? "retryable" : "not retryable");
}

/* The short detail of one history event; st is its step or NULL. */
static void event_detail(const json_t *ev, const json_t *st, char *buf, size_t len)
{
	const char *kind = jstr(ev, "kind", "");
	const json_t *d = json_object_get(ev, "detail");
	char dur[32];

	buf[0] = '\0';
	if (strcmp(kind, "completed") == 0) {
		summarize(json_object_get(d, "result"), json_object_get(st, "input"), buf, len);
	} else if (strcmp(kind, "workflow_completed") == 0) {
		summarize(json_object_get(d, "result"), NULL, buf, len);
	} else if (strcmp(kind, "scheduled") == 0 || strcmp(kind, "workflow_started") == 0) {
		summarize(json_object_get(d, "input"), NULL, buf, len);
	} else if (json_is_string(json_object_get(d, "error_type"))) {
		error_detail(d, buf, len);
	} else if (json_is_integer(json_object_get(d, "delay_ms"))) {
		fmt_dur(jint(d, "delay_ms", 0), dur, sizeof(dur));
		append(buf, len, "retry in %s", dur);
	} else if (strcmp(kind, "heartbeat") == 0) {
		summarize(json_object_get(d, "details"), NULL, buf, len);
	} else if (json_is_string(json_object_get(d, "reason"))) {
		append(buf, len, "%s", jstr(d, "reason", ""));
	} else if (json_is_string(json_object_get(d, "error"))) {
		append(buf, len, "%s", jstr(d, "error", ""));
	} else {
		summarize(d, NULL, buf, len);
	}
}

/* "step 0 update_inventory: completed after 1 attempt", with the last
 * error of a step that did not complete. */
static void step_summary(const json_t *st, long long seq, char *buf, size_t len)
{
	const char *status = jstr(st, "status", "?");
	long long n = jint(st, "attempts", 0);
	int closed = strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0;

	buf[0] = '\0';
	append(buf, len, "step %lld %s: %s", jint(st, "seq", seq), jstr(st, "activity", "?"),
	       status);
	if (closed)
		append(buf, len, " after %lld attempt%s", n, n == 1 ? "" : "s");
	else if (n > 0)
		append(buf, len, " (attempt %lld%s)", n,
		       strcmp(status, "scheduled") == 0 ? " failed, retry pending" : "");
	if (json_is_string(json_object_get(st, "error_type")) && strcmp(status, "completed") != 0)
		append(buf, len, ": %s: %s", jstr(st, "error_type", ""),
		       jstr(st, "error_message", ""));
}

/* The step summary of every step. */
static void print_steps(const json_t *wf)
{
	const json_t *steps = json_object_get(wf, "steps");
	char line[4096];
	size_t i;
	json_t *st;

	if (json_array_size(steps) == 0)
		printf("no steps yet\n");
	json_array_foreach(steps, i, st)
	{
		step_summary(st, (long long)i, line, sizeof(line));
		printf("%s\n", line);
	}
}

/* ---- the timeline of show -------------------------------------------------------------- */

#define TL_COLS 9

/* One attempt of a step, gathered from its events. */
struct attempt_view {
	long long n;     /* the attempt number; 0 = none yet */
	long long start; /* ts of its "started" event; 0 = not seen */
	long long end;   /* ts of the event that ended it; 0 = still running */
	long long pid;
	int heartbeats;
	char fault[64];
	char outcome[32];
	char retry[32];                     /* the planned wait before the next attempt */
	char detail[CTL_DETAIL_MAX + 1];    /* the result, or the error */
	char heartbeat[CTL_DETAIL_MAX + 1]; /* the last heartbeat's details */
	char more[CTL_DETAIL_MAX + 1];      /* later events: a timeout, giving up */
};

static int is_attempt_end(const char *kind)
{
	static const char *const ends[] = {"completed",     "failed",    "worker_lost",
	                                   "worker_killed", "timed_out", "attempt_lost"};

	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
		if (strcmp(kind, ends[i]) == 0)
			return 1;
	return 0;
}

/* "kill before_effect", "error after_effect", "delay 2.5s", "async_kill 12ms". */
static void fault_text(const json_t *d, char *buf, size_t len)
{
	char dur[32];

	buf[0] = '\0';
	append(buf, len, "%s", jstr(d, "kind", "?"));
	if (json_is_string(json_object_get(d, "point")))
		append(buf, len, " %s", jstr(d, "point", ""));
	else if (json_is_string(json_object_get(d, "when")))
		append(buf, len, " %s", jstr(d, "when", ""));
	else if (json_is_string(json_object_get(d, "mode")))
		append(buf, len, " %s", jstr(d, "mode", ""));
	else if (json_is_integer(json_object_get(d, "ms"))) {
		fmt_dur(jint(d, "ms", 0), dur, sizeof(dur));
		append(buf, len, " %s", dur);
	}
}

/* "+708ms": ts relative to the workflow's start t0. */
static void fmt_rel(long long ts, long long t0, char *buf, size_t len)
{
	buf[0] = '+';
	fmt_dur(ts - t0, buf + 1, len - 1);
}

/* Folds one event of attempt a into it. */
static void attempt_event(struct attempt_view *a, const json_t *ev, const json_t *st)
{
	const char *kind = jstr(ev, "kind", "?");
	const json_t *d = json_object_get(ev, "detail");
	char text[CTL_DETAIL_MAX + 1];

	if (strcmp(kind, "started") == 0) {
		a->start = jint(ev, "ts", 0);
		a->pid = jint(ev, "pid", 0);
	} else if (strcmp(kind, "fault_injected") == 0) {
		fault_text(d, a->fault, sizeof(a->fault));
	} else if (strcmp(kind, "heartbeat") == 0) {
		a->heartbeats++;
		a->heartbeat[0] = '\0';
		summarize(json_object_get(d, "details"), NULL, a->heartbeat, sizeof(a->heartbeat));
	} else if (strcmp(kind, "retry_scheduled") == 0) {
		fmt_dur(jint(d, "delay_ms", 0), a->retry, sizeof(a->retry));
	} else if (is_attempt_end(kind) && a->outcome[0] == '\0') {
		snprintf(a->outcome, sizeof(a->outcome), "%s", kind);
		a->end = jint(ev, "ts", 0);
		if (a->pid <= 0)
			a->pid = jint(ev, "pid", 0);
		if (json_is_string(json_object_get(d, "error_type"))) /* RETRY says the rest */
			append(a->detail, sizeof(a->detail), "%s: %s", jstr(d, "error_type", ""),
			       jstr(d, "message", ""));
		else
			event_detail(ev, st, a->detail, sizeof(a->detail));
	} else {
		if (strcmp(kind, "step_failed") == 0)
			snprintf(text, sizeof(text), "gave up: %s", jstr(d, "why", "?"));
		else
			event_detail(ev, st, text, sizeof(text));
		append(a->more, sizeof(a->more), "%s%s%s%s", a->more[0] ? "; " : "",
		       strcmp(kind, "step_failed") == 0 ? "" : kind,
		       strcmp(kind, "step_failed") == 0 ? "" : ": ", text);
	}
}

/* Adds the row of attempt a; *since is when the step last began to wait
 * (scheduled, or the previous attempt's end), for WAITED. */
static void attempt_row(struct table *t, const struct attempt_view *a, long long t0,
                        long long *since)
{
	char n[24], at[32] = "-", waited[32] = "-", took[32] = "-", pid[24] = "-";
	char detail[CTL_DETAIL_MAX + 1];
	const char *row[TL_COLS] = {n,
	                            at,
	                            waited,
	                            took,
	                            pid,
	                            a->fault[0] ? a->fault : "-",
	                            a->outcome[0] ? a->outcome : "running",
	                            a->retry[0] ? a->retry : "-",
	                            detail};

	snprintf(n, sizeof(n), "  %lld", a->n);
	if (a->start > 0) {
		fmt_rel(a->start, t0, at, sizeof(at));
		if (*since > 0 && a->start >= *since)
			fmt_dur(a->start - *since, waited, sizeof(waited));
	}
	if (a->start > 0 && a->end >= a->start)
		fmt_dur(a->end - a->start, took, sizeof(took));
	else if (a->start > 0 && a->outcome[0] == '\0')
		fmt_dur(clock_wall_ms() - a->start, took, sizeof(took));
	if (a->pid > 0)
		snprintf(pid, sizeof(pid), "%lld", a->pid);
	/* What happened after the attempt first (a timeout, giving up), then
	 * its heartbeats, then its result or error, which may be cut short. */
	snprintf(detail, sizeof(detail), "%s", a->more);
	if (a->heartbeats == 1)
		append(detail, sizeof(detail), "%sheartbeat %s", detail[0] ? "; " : "",
		       a->heartbeat);
	else if (a->heartbeats > 1)
		append(detail, sizeof(detail), "%s%d heartbeats, last %s", detail[0] ? "; " : "",
		       a->heartbeats, a->heartbeat);
	if (a->detail[0] != '\0')
		append(detail, sizeof(detail), "%s%s", detail[0] ? "; " : "", a->detail);
	table_add(t, row);
	if (a->end > 0 || a->start > 0)
		*since = a->end > 0 ? a->end : a->start;
}

/* A line for an event outside the attempts: "  +2ms scheduled: ...". */
static void event_line(struct table *t, const json_t *ev, const json_t *st, long long t0,
                       const char *indent)
{
	char when[32], detail[CTL_DETAIL_MAX + 1], line[CTL_DETAIL_MAX + 128];
	const char *kind = jstr(ev, "kind", "?");

	fmt_rel(jint(ev, "ts", t0), t0, when, sizeof(when));
	detail[0] = '\0';
	if (strcmp(kind, "workflow_started") != 0 && strcmp(kind, "workflow_completed") != 0)
		event_detail(ev, st, detail, sizeof(detail));
	snprintf(line, sizeof(line), "%s%s %s%s%s", indent, when, kind, detail[0] ? ": " : "",
	         detail);
	table_line(t, line);
}

/* One step: its summary, when it was scheduled, then a row per attempt. */
static void timeline_step(struct table *t, const json_t *st, long long seq, const json_t *events,
                          long long t0)
{
	static const char *const heads[TL_COLS] = {"  ATTEMPT", "AT",     "WAITED", "TOOK",  "PID",
	                                           "FAULT",     "RESULT", "RETRY",  "DETAIL"};
	struct attempt_view a;
	long long since = 0;
	char text[4096];
	int headed = 0;
	size_t i;
	json_t *ev;

	memset(&a, 0, sizeof(a));
	step_summary(st, seq, text, sizeof(text));
	table_line(t, "");
	table_line(t, text);
	json_array_foreach(events, i, ev)
	{
		const char *kind = jstr(ev, "kind", "?");
		long long n = jint(ev, "attempt", 0);

		if (jint(ev, "step", -1) != seq)
			continue;
		if (strcmp(kind, "scheduled") == 0) {
			since = jint(ev, "ts", 0);
			event_line(t, ev, st, t0, "  ");
			continue;
		}
		if (n >= 1 && n != a.n) {
			if (a.n > 0)
				attempt_row(t, &a, t0, &since);
			memset(&a, 0, sizeof(a));
			a.n = n;
			if (!headed++)
				table_add(t, heads);
		}
		if (a.n == 0)
			event_line(t, ev, st, t0, "  "); /* before any attempt */
		else
			attempt_event(&a, ev, st);
	}
	if (a.n > 0)
		attempt_row(t, &a, t0, &since);
}

/* The history as a timeline: the workflow's start, each step with its
 * attempts (fault, outcome, retry wait, pid, durations), the close. */
static void print_timeline(const json_t *wf, const json_t *events)
{
	const json_t *steps = json_object_get(wf, "steps");
	long long t0 = jint(wf, "created_at", 0);
	struct table t;
	size_t i;
	json_t *ev, *st;

	table_init(&t, TL_COLS, NULL);
	json_array_foreach(events, i, ev)
	{
		if (strcmp(jstr(ev, "kind", ""), "workflow_started") == 0)
			event_line(&t, ev, NULL, t0, "");
	}
	json_array_foreach(steps, i, st)
	{
		timeline_step(&t, st, jint(st, "seq", (long long)i), events, t0);
	}
	if (json_array_size(steps) == 0)
		table_line(&t, "no steps yet");
	table_line(&t, "");
	json_array_foreach(events, i, ev)
	{
		const char *kind = jstr(ev, "kind", "");

		if (strcmp(kind, "workflow_started") != 0 &&
		    step_of(wf, json_object_get(ev, "step")) == NULL)
			event_line(&t, ev, NULL, t0, "");
	}
	table_print(&t);
}

/* ---- commands ------------------------------------------------------------------------ */

/* The one positional argument of show/get: a workflow id. */
static int one_id(const char *cmd, int argc, char **argv, const char **id)
{
	static const struct opt none[] = {{NULL, NULL, NULL}};
	int npos, rc = parse_args(cmd, argc, argv, none, id, 1, &npos);

	if (rc == 0 && npos == 0)
		rc = need(cmd, NULL, "a workflow ID");
	return rc;
}

static int start_conflict(const char *id, const json_t *doc)
{
	const json_t *wf = json_object_get(doc, "workflow");
	char *input = json_dumps(json_object_get(wf, "input"), JSON_COMPACT);
	int rc = fail(IDEM_EXIT_FAIL,
	              "start: %s (workflow %s in namespace %s, status %s, input "
	              "%s); a workflow id runs once: choose another --workflow-id",
	              jstr(doc, "error", "the workflow exists with other input"), id,
	              jstr(wf, "namespace", "?"), jstr(wf, "status", "?"), input ? input : "?");

	free(input);
	return rc;
}

static int report_closed(struct ctl *c, const char *id, const json_t *doc, int wait_ms);

static int cmd_start(struct ctl *c, int argc, char **argv)
{
	const char *order = NULL, *product = NULL, *qty = NULL, *wid = NULL, *wait = NULL, *pos[1];
	const struct opt opts[] = {{"--order-id", &order, NULL}, {"--product-id", &product, NULL},
	                           {"--quantity", &qty, NULL},   {"--workflow-id", &wid, NULL},
	                           {"--wait", &wait, NULL},      {NULL, NULL, NULL}};
	long long quantity;
	int npos, status = 0, rc, wait_ms = 0;
	char path[64] = "/v1/workflows";
	json_t *body, *doc = NULL;
	const json_t *wf;

	if ((rc = parse_args("start", argc, argv, opts, pos, 0, &npos)) != 0 ||
	    (rc = need("start", order, "--order-id ID")) != 0 ||
	    (rc = need("start", product, "--product-id ID")) != 0 ||
	    (rc = need("start", qty, "--quantity N")) != 0 ||
	    (rc = parse_number("start", "--quantity", qty, 1, INVENTORY_QUANTITY_MAX, &quantity)) != 0 ||
	    (wait != NULL && (rc = parse_timeout("start: ", "--wait", wait, 1, &wait_ms)) != 0))
		return rc;
	if (wait_ms > 0)
		snprintf(path, sizeof(path), "/v1/workflows?wait=%dms", wait_ms);
	body = json_pack("{s:s, s:{s:s, s:s, s:I}}", "type", "inventory", "input", "order_id",
	                 order, "product_id", product, "quantity", (json_int_t)quantity);
	if (body == NULL)
		return fail(IDEM_EXIT_USAGE,
		            "start: --order-id and --product-id must be UTF-8 text");
	if (wid != NULL)
		json_object_set_new(body, "workflow_id", json_string(wid));
	if (c->ns_given)
		json_object_set_new(body, "namespace", json_string(c->cfg.namespace_));
	rc = request(c, "POST", path, body, wait_ms, &status, &doc);
	json_decref(body);
	wf = json_object_get(doc, "workflow");
	if (rc == 0 && status >= 300)
		rc = status == 409 && !c->json ? start_conflict(wid ? wid : order, doc)
		                               : refused(c, status, doc);
	else if (rc == 0 && wait_ms > 0) {
		if (!c->json)
			printf("%s %s (namespace %s)\n", status == 201 ? "started" : "exists",
			       jstr(wf, "workflow_id", "?"), jstr(wf, "namespace", "?"));
		rc = report_closed(c, jstr(wf, "workflow_id", wid ? wid : order), doc, wait_ms);
	} else if (rc == 0 && c->json)
		print_json(doc);
	else if (rc == 0 && status == 201)
		printf("started %s (namespace %s)\n", jstr(wf, "workflow_id", "?"),
		       jstr(wf, "namespace", "?"));
	else if (rc == 0)
		printf("exists %s (status %s): same input, not started again\n",
		       jstr(wf, "workflow_id", "?"), jstr(wf, "status", "?"));
	json_decref(doc);
	return rc;
}

static int cmd_show(struct ctl *c, int argc, char **argv)
{
	const char *id = NULL;
	char path[CTL_PATH_MAX];
	json_t *doc = NULL;
	const json_t *wf;
	int rc;

	if ((rc = one_id("show", argc, argv, &id)) != 0)
		return rc;
	wf_path(c, id, "/history", NULL, path, sizeof(path));
	if ((rc = get_json(c, path, 0, &doc)) != 0)
		return rc;
	wf = json_object_get(doc, "workflow");
	if (c->json) {
		print_json(doc);
	} else {
		print_wf_header(wf);
		printf("\n");
		print_timeline(wf, json_object_get(doc, "events"));
	}
	json_decref(doc);
	return 0;
}

static int cmd_get(struct ctl *c, int argc, char **argv)
{
	const char *id = NULL;
	char path[CTL_PATH_MAX];
	json_t *wf = NULL;
	int rc;

	if ((rc = one_id("get", argc, argv, &id)) != 0)
		return rc;
	wf_path(c, id, "", NULL, path, sizeof(path));
	if ((rc = get_json(c, path, 0, &wf)) != 0)
		return rc;
	if (c->json) {
		print_json(wf);
	} else {
		print_wf_header(wf);
		print_steps(wf);
	}
	json_decref(wf);
	return 0;
}

/* Fetches up to limit workflows into rows, a page at a time. */
static int list_fetch(const struct ctl *c, const char *status, long long limit, json_t *rows,
                      long long *after)
{
	char path[CTL_PATH_MAX], query[128];
	size_t i;
	json_t *doc = NULL, *wf;
	int rc;

	while ((long long)json_array_size(rows) < limit) {
		long long want = limit - (long long)json_array_size(rows);
		size_t n;

		snprintf(query, sizeof(query), "limit=%lld&after=%lld%s%s",
		         want < CTL_LIST_PAGE ? want : CTL_LIST_PAGE, *after,
		         status ? "&status=" : "", status ? status : "");
		snprintf(path, sizeof(path), "/v1/workflows");
		add_query(c, query, path, sizeof(path));
		if ((rc = get_json(c, path, 0, &doc)) != 0)
			return rc;
		n = json_array_size(json_object_get(doc, "workflows"));
		json_array_foreach(json_object_get(doc, "workflows"), i, wf)
		{
			json_array_append(rows, wf);
		}
		*after = jint(doc, "next_after", *after);
		json_decref(doc);
		if ((long long)n < (want < CTL_LIST_PAGE ? want : CTL_LIST_PAGE))
			break;
	}
	return 0;
}

static void list_print(const json_t *rows)
{
	static const char *const heads[] = {"WORKFLOW", "NAMESPACE", "TYPE",  "STATUS",
	                                    "CREATED",  "CLOSED",    "RESULT"};
	struct table t;
	size_t i;
	json_t *wf;

	if (json_array_size(rows) == 0) {
		printf("no workflows\n");
		return;
	}
	table_init(&t, 7, heads);
	json_array_foreach(rows, i, wf)
	{
		char created[40], closed[40], outcome[CTL_DETAIL_MAX + 1];
		const char *row[7] = {jstr(wf, "workflow_id", "?"),
		                      jstr(wf, "namespace", "?"),
		                      jstr(wf, "type", "?"),
		                      jstr(wf, "status", "?"),
		                      created,
		                      closed,
		                      outcome};

		fmt_time(json_object_get(wf, "created_at"), created, sizeof(created));
		fmt_time(json_object_get(wf, "closed_at"), closed, sizeof(closed));
		wf_outcome(wf, outcome, sizeof(outcome));
		table_add(&t, row);
	}
	table_print(&t);
}

static int cmd_list(struct ctl *c, int argc, char **argv)
{
	const char *status = NULL, *limit_text = NULL, *pos[1];
	const struct opt opts[] = {
	    {"--status", &status, NULL}, {"--limit", &limit_text, NULL}, {NULL, NULL, NULL}};
	long long limit = CTL_LIST_DEFAULT, after = 0;
	int npos, rc;
	json_t *rows;

	if ((rc = parse_args("list", argc, argv, opts, pos, 0, &npos)) != 0 ||
	    (limit_text &&
	     (rc = parse_number("list", "--limit", limit_text, 1, 1000000000LL, &limit)) != 0))
		return rc;
	if (status != NULL && strcmp(status, "running") != 0 && strcmp(status, "completed") != 0 &&
	    strcmp(status, "failed") != 0)
		return fail(IDEM_EXIT_USAGE,
		            "list: --status %s is not a workflow status (allowed: "
		            "running|completed|failed)",
		            status);
	rows = json_array();
	rc = list_fetch(c, status, limit, rows, &after);
	if (rc == 0 && c->json) {
		json_t *doc =
		    json_pack("{s:O, s:I}", "workflows", rows, "next_after", (json_int_t)after);
		print_json(doc);
		json_decref(doc);
	} else if (rc == 0) {
		list_print(rows);
	}
	json_decref(rows);
	return rc;
}

/* Prints how a long-poll's doc ended (or the timeout) and returns the
 * exit code: 0 completed, 1 failed, 3 still running after wait_ms. */
static int report_closed(struct ctl *c, const char *id, const json_t *doc, int wait_ms)
{
	char dur[64], outcome[2048];
	const json_t *wf = json_object_get(doc, "workflow");
	const char *status;
	int rc;

	status = jstr(wf, "status", "?");
	wf_duration(wf, dur, sizeof(dur));
	wf_outcome(wf, outcome, sizeof(outcome));
	if (c->json)
		print_json(doc);
	if (strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0) {
		if (!c->json)
			printf("%s %s (%s): %s\n", jstr(wf, "workflow_id", id), status, dur,
			       outcome);
		rc = strcmp(status, "completed") == 0 ? IDEM_EXIT_OK : IDEM_EXIT_FAIL;
	} else {
		fmt_dur(wait_ms, dur, sizeof(dur));
		rc = fail(IDEM_EXIT_TIMEOUT, "timed out after %s: %s is still %s", dur, id, status);
	}
	return rc;
}

static int wait_one(struct ctl *c, const char *id, int wait_ms)
{
	char path[CTL_PATH_MAX], query[64];
	json_t *doc = NULL;
	int rc;

	snprintf(query, sizeof(query), "timeout=%dms", wait_ms);
	wf_path(c, id, "/wait", query, path, sizeof(path));
	if ((rc = get_json(c, path, wait_ms, &doc)) != 0)
		return rc;
	rc = report_closed(c, id, doc, wait_ms);
	json_decref(doc);
	return rc;
}

/* Exits 0 once none is running, whatever became of them. */
static int wait_all(struct ctl *c, int wait_ms)
{
	char path[64], dur[32];
	json_t *doc = NULL;
	const json_t *wfs;
	long long running;
	int rc;

	snprintf(path, sizeof(path), "/v1/wait?timeout=%dms", wait_ms);
	if ((rc = get_json(c, path, wait_ms, &doc)) != 0)
		return rc;
	running = jint(doc, "running", -1);
	wfs = json_object_get(json_object_get(doc, "counts"), "workflows");
	if (c->json)
		print_json(doc);
	if (running == 0) {
		if (!c->json)
			printf("no workflow running (%lld completed, %lld failed)\n",
			       jint(wfs, "completed", 0), jint(wfs, "failed", 0));
	} else {
		fmt_dur(wait_ms, dur, sizeof(dur));
		rc = fail(IDEM_EXIT_TIMEOUT, "timed out after %s: %lld workflow%s still running",
		          dur, running, running == 1 ? " is" : "s are");
	}
	json_decref(doc);
	return rc;
}

static int cmd_wait(struct ctl *c, int argc, char **argv)
{
	const char *timeout = NULL, *pos[1];
	int all = 0, npos, rc, wait_ms = CTL_WAIT_MS;
	const struct opt opts[] = {
	    {"--timeout", &timeout, NULL}, {"--all", NULL, &all}, {NULL, NULL, NULL}};

	if ((rc = parse_args("wait", argc, argv, opts, pos, 1, &npos)) != 0 ||
	    (timeout && (rc = parse_timeout("wait: ", "--timeout", timeout, 0, &wait_ms)) != 0))
		return rc;
	if (all && npos > 0)
		return fail(IDEM_EXIT_USAGE, "wait: give a workflow ID or --all, not both");
	if (!all && npos == 0)
		return need("wait", NULL, "a workflow ID (or --all)");
	return all ? wait_all(c, wait_ms) : wait_one(c, pos[0], wait_ms);
}

static void stats_pool(const json_t *pool)
{
	static const char *const heads[] = {"SLOT", "STATE", "PID", "RESTARTS", "TASK"};
	struct table t;
	size_t i;
	json_t *sl;

	table_init(&t, 5, heads);
	json_array_foreach(json_object_get(pool, "slots"), i, sl)
	{
		const json_t *task = json_object_get(sl, "task");
		char slot[24], pid[24], restarts[24], what[256] = "-", dur[32];
		const char *row[5] = {slot, jstr(sl, "state", "?"), pid, restarts, what};

		fmt_int(sl, "slot", slot, sizeof(slot));
		fmt_int(sl, "pid", pid, sizeof(pid));
		fmt_int(sl, "restarts", restarts, sizeof(restarts));
		if (task != NULL) {
			fmt_dur(jint(task, "running_ms", 0), dur, sizeof(dur));
			snprintf(what, sizeof(what), "%s step %lld %s attempt %lld (%s)",
			         jstr(task, "workflow_id", "?"), jint(task, "step", -1),
			         jstr(task, "activity", "?"), jint(task, "attempt", 0), dur);
		}
		table_add(&t, row);
	}
	table_print(&t);
}

/* "spare worker     ready, pid N (3 started)", or "off". */
static void print_spare(const json_t *pool)
{
	const json_t *sp = json_object_get(pool, "spare");

	if (!json_is_object(sp))
		printf("spare worker     off\n");
	else
		printf("spare worker     %s, pid %lld (%lld started)\n", jstr(sp, "state", "?"),
		       jint(sp, "pid", 0), jint(sp, "spawns", 0));
}

/* "faults  kill 3 (before_effect 1, ...), error 2, ...; seed N" */
static void print_faults(const json_t *s)
{
	const json_t *f = json_object_get(s, "faults"), *t = json_object_get(s, "timeouts");
	const json_t *kinds = json_object_get(f, "by_kind"),
	             *points = json_object_get(f, "kills_by_point");
	const char *key, *sep = "";
	json_t *v;

	if (f == NULL)
		return;
	printf("faults planned   ");
	json_object_foreach((json_t *)kinds, key, v)
	{
		printf("%s%s %lld", sep, key, (long long)json_integer_value(v));
		sep = ", ";
		if (strcmp(key, "kill") == 0 && json_integer_value(v) > 0) {
			const char *k2, *sep2 = "";
			json_t *v2;

			printf(" (");
			json_object_foreach((json_t *)points, k2, v2)
			{
				printf("%s%s %lld", sep2, k2, (long long)json_integer_value(v2));
				sep2 = ", ";
			}
			printf(")");
		}
	}
	printf("; seed %llu, %s mode\n", (unsigned long long)jint(s, "fault_seed", 0),
	       jstr(s, "activity_mode", "guarded"));
	printf("timeouts         start_to_close %lld, heartbeat %lld, schedule_to_close %lld\n",
	       jint(t, "start_to_close", 0), jint(t, "heartbeat", 0),
	       jint(t, "schedule_to_close", 0));
}

static void stats_print(const json_t *s)
{
	const json_t *wfs = json_object_get(s, "workflows"), *ev = json_object_get(s, "events");
	const json_t *since = json_object_get(s, "since_start"), *pool = json_object_get(s, "pool");
	char up[32];

	fmt_dur(jint(s, "uptime_ms", 0), up, sizeof(up));
	printf("workflows        %lld running, %lld completed, %lld failed\n",
	       jint(wfs, "running", 0), jint(wfs, "completed", 0), jint(wfs, "failed", 0));
	printf("attempts         %lld (%lld failed, %lld retries scheduled)\n",
	       jint(s, "attempts", 0),
	       jint(ev, "failed", 0) + jint(ev, "timed_out", 0) + jint(ev, "worker_killed", 0) +
	           jint(ev, "worker_lost", 0),
	       jint(ev, "retry_scheduled", 0));
	printf("since start      attempts %lld, retries %lld, workflows started %lld, "
	       "commits %lld\n",
	       jint(since, "attempts", 0), jint(since, "retries", 0),
	       jint(since, "workflows_started", 0), jint(since, "commits", 0));
	print_faults(s);
	printf("worker restarts  %lld\n", jint(s, "worker_restarts", 0));
	printf("supplier pid     %lld\n", jint(pool, "supplier_pid", 0));
	print_spare(pool);
	printf("uptime           %s%s\n\n", up,
	       json_is_true(json_object_get(s, "stopping")) ? " (stopping)" : "");
	stats_pool(pool);
}

/* ---- top ------------------------------------------------------------------------------ */

/* A since_start counter per second: since the previous snapshot, or over
 * the whole uptime for the first. */
static double top_rate(const json_t *s, const json_t *prev, const char *key)
{
	long long up = jint(s, "uptime_ms", 0), up0 = prev ? jint(prev, "uptime_ms", 0) : 0;
	long long v = jint(json_object_get(s, "since_start"), key, 0);
	long long v0 = prev ? jint(json_object_get(prev, "since_start"), key, 0) : 0;

	return up > up0 ? (double)(v - v0) * 1000.0 / (double)(up - up0) : 0.0;
}

/* One row per worker slot, with the attempt it runs. */
static void top_slots(const json_t *pool)
{
	static const char *const heads[] = {"SLOT", "PID",      "STATE",   "RESTARTS", "WORKFLOW",
	                                    "STEP", "ACTIVITY", "ATTEMPT", "RUNNING"};
	struct table t;
	size_t i;
	json_t *sl;

	table_init(&t, 9, heads);
	json_array_foreach(json_object_get(pool, "slots"), i, sl)
	{
		const json_t *task = json_object_get(sl, "task");
		char slot[24], pid[24], restarts[24], step[24] = "-", attempt[24] = "-";
		char running[32] = "-";
		const char *row[9] = {slot,
		                      pid,
		                      jstr(sl, "state", "?"),
		                      restarts,
		                      task ? jstr(task, "workflow_id", "?") : "-",
		                      step,
		                      task ? jstr(task, "activity", "?") : "-",
		                      attempt,
		                      running};

		fmt_int(sl, "slot", slot, sizeof(slot));
		fmt_int(sl, "pid", pid, sizeof(pid));
		fmt_int(sl, "restarts", restarts, sizeof(restarts));
		if (task != NULL) {
			fmt_int(task, "step", step, sizeof(step));
			fmt_int(task, "attempt", attempt, sizeof(attempt));
			fmt_dur(jint(task, "running_ms", 0), running, sizeof(running));
		}
		table_add(&t, row);
	}
	table_print(&t);
}

/* "3 (planned_kill 2, timeout 1)" or "0": worker deaths by cause. */
static void top_deaths(const json_t *deaths, char *buf, size_t len)
{
	long long total = 0;
	const char *key, *sep = " (";
	json_t *v;

	json_object_foreach((json_t *)deaths, key, v)
	{
		total += json_integer_value(v);
	}
	snprintf(buf, len, "%lld", total);
	json_object_foreach((json_t *)deaths, key, v)
	{
		if (json_integer_value(v) <= 0)
			continue;
		append(buf, len, "%s%s %lld", sep, key, (long long)json_integer_value(v));
		sep = ", ";
	}
	if (total > 0)
		append(buf, len, ")");
}

/* One snapshot: totals, rates since prev (NULL: over the uptime), slots. */
static void top_print(const json_t *s, const json_t *prev)
{
	const json_t *wfs = json_object_get(s, "workflows"),
	             *since = json_object_get(s, "since_start");
	const json_t *pool = json_object_get(s, "pool"), *slots = json_object_get(pool, "slots");
	char now[40], up[32], span[40] = "since start", deaths[256];
	long long busy = 0;
	size_t i;
	json_t *sl;

	json_array_foreach(slots, i, sl)
	{
		busy += strcmp(jstr(sl, "state", ""), "busy") == 0;
	}
	clock_format_wall(clock_wall_ms(), now, sizeof(now));
	fmt_dur(jint(s, "uptime_ms", 0), up, sizeof(up));
	if (prev != NULL) {
		snprintf(span, sizeof(span), "last ");
		fmt_dur(jint(s, "uptime_ms", 0) - jint(prev, "uptime_ms", 0), span + 5,
		        sizeof(span) - 5);
	}
	top_deaths(json_object_get(json_object_get(s, "workers"), "deaths"), deaths,
	           sizeof(deaths));
	printf("idem top  %s  uptime %s%s\n", now, up,
	       json_is_true(json_object_get(s, "stopping")) ? "  (stopping)" : "");
	printf("workflows  %lld running, %lld completed, %lld failed; queue %lld ready\n",
	       jint(wfs, "running", 0), jint(wfs, "completed", 0), jint(wfs, "failed", 0),
	       jint(s, "queue_depth", 0));
	printf("totals     %lld attempts (%lld failed), %lld retries, %lld workflows started, "
	       "%lld commits\n",
	       jint(since, "attempts", 0), jint(since, "failed_attempts", 0),
	       jint(since, "retries", 0), jint(since, "workflows_started", 0),
	       jint(since, "commits", 0));
	printf("rates      %.1f attempts/s, %.1f retries/s, %.1f workflows closed/s, %.1f "
	       "commits/s (%s)\n",
	       top_rate(s, prev, "attempts"), top_rate(s, prev, "retries"),
	       top_rate(s, prev, "workflows_completed") + top_rate(s, prev, "workflows_failed"),
	       top_rate(s, prev, "commits"), span);
	printf("workers    %lld busy of %zu, %lld spawns, %lld restarts, deaths %s; supplier pid "
	       "%lld; spare %s\n\n",
	       busy, json_array_size(slots), jint(json_object_get(s, "workers"), "spawns", 0),
	       jint(s, "worker_restarts", 0), deaths, jint(pool, "supplier_pid", 0),
	       json_is_object(json_object_get(pool, "spare"))
	           ? jstr(json_object_get(pool, "spare"), "state", "?")
	           : "off");
	top_slots(pool);
}

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
		if ((rc = get_json(c, "/v1/stats", 0, &doc)) != 0)
			break;
		if (c->json) {
			print_json(doc);
		} else {
			if (tty)
				fputs("\033[H\033[2J", stdout);
			else if (i > 0)
				putchar('\n');
			top_print(doc, prev);
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
			return fail(IDEM_EXIT_USAGE,
			            "%s: --interval %s is not a duration from 10ms to 1h (1 = "
			            "one second, 0.5, 250ms)",
			            cmd, interval);
		*ms = (int)v;
	}
	if (count != NULL)
		return parse_number(cmd, "--count", count, 1, 1000000000LL, n);
	return 0;
}

/* top [--interval SECONDS] [--count N]: the pool and the counters, live. */
static int cmd_top(struct ctl *c, int argc, char **argv)
{
	const char *interval = NULL, *count = NULL, *pos[1];
	const struct opt opts[] = {
	    {"--interval", &interval, NULL}, {"--count", &count, NULL}, {NULL, NULL, NULL}};
	long long n;
	int npos, ms, rc;

	if ((rc = parse_args("top", argc, argv, opts, pos, 0, &npos)) != 0 ||
	    (rc = top_options("top", interval, count, &ms, &n)) != 0)
		return rc;
	return top_run(c, ms, n);
}

static int cmd_stats(struct ctl *c, int argc, char **argv)
{
	const char *interval = NULL, *count = NULL, *pos[1];
	int watch = 0, npos, ms, rc;
	const struct opt opts[] = {{"--watch", NULL, &watch},
	                           {"--interval", &interval, NULL},
	                           {"--count", &count, NULL},
	                           {NULL, NULL, NULL}};
	json_t *doc = NULL;
	long long n;

	if ((rc = parse_args("stats", argc, argv, opts, pos, 0, &npos)) != 0)
		return rc;
	if (watch) {
		if ((rc = top_options("stats --watch", interval, count, &ms, &n)) != 0)
			return rc;
		return top_run(c, ms, n);
	}
	if (interval != NULL || count != NULL)
		return fail(IDEM_EXIT_USAGE, "stats: --interval and --count go with --watch");
	if ((rc = get_json(c, "/v1/stats", 0, &doc)) != 0)
		return rc;
	if (c->json)
		print_json(doc);
	else
		stats_print(doc);
	json_decref(doc);
	return 0;
}

static int stock_get(struct ctl *c, const char *product)
{
	char path[CTL_PATH_MAX], esc[CTL_PATH_MAX / 2];
	json_t *doc = NULL;
	int rc;

	url_escape(product, esc, sizeof(esc));
	snprintf(path, sizeof(path), "/v1/stock/%s", esc);
	if ((rc = get_json(c, path, 0, &doc)) != 0)
		return rc;
	if (c->json)
		print_json(doc);
	else
		printf("%s: %lld\n", jstr(doc, "product_id", product), jint(doc, "stock", 0));
	json_decref(doc);
	return 0;
}

static int stock_set(struct ctl *c, const char *product, const char *n, const char *reason)
{
	char path[CTL_PATH_MAX], esc[CTL_PATH_MAX / 2];
	json_t *body, *doc = NULL;
	long long stock;
	int rc, status = 0;

	if ((rc = parse_number("stock set", "N", n, 0, 1000000000000LL, &stock)) != 0)
		return rc;
	url_escape(product, esc, sizeof(esc));
	snprintf(path, sizeof(path), "/v1/stock/%s", esc);
	body = json_pack("{s:I}", "stock", (json_int_t)stock);
	if (reason != NULL)
		json_object_set_new(body, "reason", json_string(reason));
	rc = request(c, "PUT", path, body, 0, &status, &doc);
	json_decref(body);
	if (rc == 0 && status >= 300)
		rc = refused(c, status, doc);
	else if (rc == 0 && c->json)
		print_json(doc);
	else if (rc == 0)
		printf("%s: %lld -> %lld (%s)\n", jstr(doc, "product_id", product),
		       jint(doc, "old_stock", 0), jint(doc, "stock", stock),
		       reason ? reason : "operator");
	json_decref(doc);
	return rc;
}

static int cmd_stock(struct ctl *c, int argc, char **argv)
{
	const char *reason = NULL, *pos[3];
	const struct opt opts[] = {{"--reason", &reason, NULL}, {NULL, NULL, NULL}};
	int npos, rc;

	if ((rc = parse_args("stock", argc, argv, opts, pos, 3, &npos)) != 0)
		return rc;
	if (npos > 0 && strcmp(pos[0], "get") == 0 && npos == 2 && reason == NULL)
		return stock_get(c, pos[1]);
	if (npos > 0 && strcmp(pos[0], "set") == 0 && npos == 3)
		return stock_set(c, pos[1], pos[2], reason);
	if (npos > 0 && strcmp(pos[0], "get") == 0)
		return fail(IDEM_EXIT_USAGE, "stock get: give one PRODUCT (stock get PRODUCT)");
	if (npos > 0 && strcmp(pos[0], "set") == 0)
		return fail(IDEM_EXIT_USAGE, "stock set: give PRODUCT and N (stock set PRODUCT N "
		                             "[--reason TEXT])");
	if (npos > 0)
		return fail(IDEM_EXIT_USAGE,
		            "stock: unknown subcommand \"%s\" (use: stock get "
		            "PRODUCT, stock set PRODUCT N [--reason TEXT])",
		            pos[0]);
	return need("stock", NULL, "a subcommand (stock get PRODUCT, stock set PRODUCT N)");
}

/* The report from GET /v1/check: 0 with *report (NEW), or the exit code. */
static int check_online(struct ctl *c, json_t **report)
{
	int status = 0, rc = request(c, "GET", "/v1/check", NULL, CTL_CHECK_MS, &status, report);

	if (rc != 0)
		return rc;
	if (status == 200 && json_is_object(json_object_get(*report, "counts")))
		return 0;
	if (c->json)
		print_json(*report);
	if (status == 404)
		rc = fail(IDEM_EXIT_USAGE,
		          "check: the supervisor at %s has no GET /v1/check (%s); use idemctl "
		          "check --offline",
		          c->endpoint, jstr(*report, "error", "not found"));
	else
		rc = fail(IDEM_EXIT_USAGE, "%s (the supervisor answered HTTP %d)",
		          jstr(*report, "error", "check: not a check report"), status);
	json_decref(*report);
	*report = NULL;
	return rc;
}

/* The checker run here on the configured databases, read-only. */
static int check_offline(struct ctl *c, json_t **report)
{
	char err[1024];

	*report = check_run(c->cfg.state_database, c->cfg.database, c->cfg.supplier_database, err,
	                    sizeof(err));
	if (*report == NULL)
		return fail(IDEM_EXIT_USAGE, "check: %s", err);
	return 0;
}

/* Waits (GET /v1/wait) until no workflow runs or wait_ms passes; says so
 * when it passes, and the check runs either way. Returns 0, or the exit
 * code when the supervisor cannot be asked. */
static int check_wait(struct ctl *c, int wait_ms)
{
	char path[64], dur[32];
	json_t *doc = NULL;
	long long running;
	int rc;

	snprintf(path, sizeof(path), "/v1/wait?timeout=%dms", wait_ms);
	if ((rc = get_json(c, path, wait_ms, &doc)) != 0)
		return rc;
	running = jint(doc, "running", 0);
	json_decref(doc);
	if (running > 0) {
		fmt_dur(wait_ms, dur, sizeof(dur));
		(void)fail(
		    IDEM_EXIT_NOT_QUIESCENT,
		    "check: timed out after %s with %lld workflow%s still running; checking anyway",
		    dur, running, running == 1 ? "" : "s");
	}
	return 0;
}

/* 1 when an invariant is violated: the checker leaves out what a running
 * workflow may still finish, so a violation is one even while others
 * run. Else 6 while some workflow runs, 0 when none does. */
static int check_verdict(const json_t *report)
{
	const json_t *running = json_object_get(json_object_get(report, "totals"), "workflows");
	json_t *counts = json_object_get(report, "counts"), *n;
	const char *kind;

	json_object_foreach(counts, kind, n)
	{
		if (json_integer_value(n) > 0)
			return IDEM_EXIT_FAIL;
	}
	if (jint(running, "running", 0) > 0)
		return IDEM_EXIT_NOT_QUIESCENT;
	return json_is_true(json_object_get(report, "ok")) ? IDEM_EXIT_OK : IDEM_EXIT_FAIL;
}

/* Exits 0 when every invariant holds and no workflow runs, 1 when one is
 * violated, 6 when none is but some workflow still runs. */
static int cmd_check(struct ctl *c, int argc, char **argv)
{
	int offline = 0, npos, rc, wait_ms = 0;
	const char *wait = NULL, *pos[1];
	const struct opt opts[] = {
	    {"--offline", NULL, &offline}, {"--wait", &wait, NULL}, {NULL, NULL, NULL}};
	json_t *report = NULL;

	if ((rc = parse_args("check", argc, argv, opts, pos, 0, &npos)) != 0 ||
	    (wait && (rc = parse_timeout("check: ", "--wait", wait, 0, &wait_ms)) != 0))
		return rc;
	if (wait && offline)
		return fail(IDEM_EXIT_USAGE,
		            "check: --wait needs the supervisor (it waits through GET /v1/wait); "
		            "drop --offline, or drop --wait to check the files as they are");
	if ((wait && (rc = check_wait(c, wait_ms)) != 0) ||
	    (rc = offline ? check_offline(c, &report) : check_online(c, &report)) != 0)
		return rc;
	if (c->json)
		print_json(report);
	else
		check_print(report, stdout);
	rc = check_verdict(report);
	json_decref(report);
	return rc;
}

/* ---- main ------------------------------------------------------------------------------ */

static const struct command {
	const char *name;
	int (*run)(struct ctl *c, int argc, char **argv);
} commands[] = {
    {"start", cmd_start}, {"show", cmd_show},   {"get", cmd_get},
    {"list", cmd_list},   {"wait", cmd_wait},   {"stats", cmd_stats},
    {"top", cmd_top},     {"stock", cmd_stock}, {"check", cmd_check},
};

static void print_usage(const struct ctl *c, FILE *out)
{
	fprintf(out, usage_text, c->cfg.socket);
}

/* Was the namespace chosen, by a flag or by a value other than the
 * default (environment, .env)? Then every request names it. */
static int namespace_given(const struct idem_config *cfg, int argc, char **argv)
{
	struct idem_config def;

	for (int i = 1; i < argc; i++)
		if (strncmp(argv[i], "--namespace", 11) == 0 &&
		    (argv[i][11] == '\0' || argv[i][11] == '='))
			return 1;
	config_defaults(&def);
	return strcmp(def.namespace_, cfg->namespace_) != 0;
}

/* The value of "--name=V" or "--name V" among rest[]; advances *k. */
static const char *global_value(char **argv, const int *rest, int nrest, int *k)
{
	const char *eq = strchr(argv[rest[*k]], '=');

	if (eq != NULL)
		return eq + 1;
	if (*k + 1 >= nrest)
		return NULL;
	return argv[rest[++*k]];
}

static int set_http(struct ctl *c, const char *url)
{
	if (url == NULL || *url == '\0')
		return fail(IDEM_EXIT_USAGE, "--http needs a URL, e.g. http://127.0.0.1:8080");
	snprintf(c->endpoint, sizeof(c->endpoint), "%s%s",
	         strncmp(url, "http://", 7) == 0 ? "" : "http://", url);
	return -1;
}

/* Handles the options before the command; *k becomes the command's index
 * in rest[]. Returns -1 to go on, or an exit code. */
static int global_options(struct ctl *c, char **argv, const int *rest, int nrest, int *k)
{
	int rc = -1;

	for (*k = 0; rc < 0 && *k < nrest && argv[rest[*k]][0] == '-'; ++*k) {
		const char *arg = argv[rest[*k]];
		size_t n = strcspn(arg, "=");

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
			return print_usage(c, stdout), IDEM_EXIT_OK;
		if (strcmp(arg, "--version") == 0)
			return printf("idemctl %s\n", IDEM_VERSION), IDEM_EXIT_OK;
		if (strcmp(arg, "--json") == 0)
			c->json = 1;
		else if (n == 6 && strncmp(arg, "--http", n) == 0)
			rc = set_http(c, global_value(argv, rest, nrest, k));
		else if (n == 9 && strncmp(arg, "--timeout", n) == 0) {
			const char *v = global_value(argv, rest, nrest, k);

			rc = v ? parse_timeout("", "--timeout", v, 1, &c->timeout_ms)
			       : fail(IDEM_EXIT_USAGE, "--timeout needs a value in seconds");
			rc = rc == 0 ? -1 : rc;
		} else
			rc = fail(IDEM_EXIT_USAGE, "unknown option \"%s\" (see idemctl --help)",
			          arg);
	}
	return rc;
}

static int dispatch(struct ctl *c, char **argv, const int *rest, int nrest)
{
	const char *name;
	char **args;
	int rc;

	if (nrest == 0) {
		print_usage(c, stderr);
		return fail(IDEM_EXIT_USAGE, "no command given");
	}
	name = argv[rest[0]];
	if (strcmp(name, "help") == 0)
		return print_usage(c, stdout), IDEM_EXIT_OK;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].name, name) != 0)
			continue;
		args = calloc((size_t)nrest, sizeof(*args));
		for (int j = 1; j < nrest; j++)
			args[j - 1] = argv[rest[j]];
		rc = commands[i].run(c, nrest - 1, args);
		free(args);
		return rc;
	}
	return fail(IDEM_EXIT_USAGE,
	            "unknown command \"%s\" (commands: start, show, get, list, "
	            "wait, stats, top, stock, check)",
	            name);
}

int main(int argc, char **argv)
{
	static struct ctl c; /* the config is large */
	int *rest = calloc((size_t)argc + 1, sizeof(*rest)), nrest = 0, k = 0, rc;
	char err[1024];

	c.timeout_ms = CTL_TIMEOUT_MS;
	if (config_load(&c.cfg, argc, argv, rest, &nrest, err, sizeof(err)) != 0) {
		rc = fail(IDEM_EXIT_USAGE, "%s", err);
		goto done;
	}
	c.ns_given = namespace_given(&c.cfg, argc, argv);
	snprintf(c.endpoint, sizeof(c.endpoint), "%s", c.cfg.socket);
	rc = global_options(&c, argv, rest, nrest, &k);
	if (rc < 0)
		rc = dispatch(&c, argv, rest + k, nrest - k);
done:
	free(rest);
	fflush(stdout);
	return rc;
}

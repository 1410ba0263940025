/* test_api.c — the control API's answers to bad requests (starts refused
 * before anything is created, wrong methods: 405 with Allow), long-polls
 * that time out, and clients that hang up during a long-poll. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "db.h"
#include "httpc.h"
#include "testutil.h"

static char *dir;
static struct tu_sup sup;

static int group_setup(void **state)
{
	const char *extra[] = {"--workers=1", "--max-body=1024", NULL};

	dir = tu_tmpdir("api");
	if (dir == NULL || tu_sup_start(&sup, dir, extra) != 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	int rc = tu_sup_stop(&sup);

	tu_sup_free(&sup);
	tu_rmrf(dir);
	free(dir);
	return rc == 0 ? 0 : -1;
}

/* Asserts the status and that the JSON error names every needle. */
static void expect(const char *method, const char *path, const char *body, int status,
                   const char *needle1, const char *needle2)
{
	json_t *out = NULL;
	int got = tu_http(&sup, method, path, body, &out);
	const char *err = json_string_value(json_object_get(out, "error"));

	if (got != status)
		fail_msg("%s %s: status %d, expected %d (%s)", method, path, got, status,
		         err ? err : "no error text");
	if (needle1 != NULL && (err == NULL || strstr(err, needle1) == NULL))
		fail_msg("%s %s: error \"%s\" does not say \"%s\"", method, path,
		         err ? err : "(none)", needle1);
	if (needle2 != NULL && (err == NULL || strstr(err, needle2) == NULL))
		fail_msg("%s %s: error \"%s\" does not say \"%s\"", method, path,
		         err ? err : "(none)", needle2);
	json_decref(out);
}

static void test_bad_json(void **state)
{
	expect("POST", "/v1/workflows", "{\"input\": {", 400, "bad JSON", "column");
	expect("POST", "/v1/workflows", "[1,2]", 400, "JSON object", NULL);
	expect("POST", "/v1/workflows", "", 400, "empty", NULL);
	expect("POST", "/v1/workflows", "{\"input\":{\"order_id\":\"\xff\"}}", 400, "bad JSON",
	       NULL);
}

static void test_missing_fields(void **state)
{
	expect("POST", "/v1/workflows", "{}", 400, "input", NULL);
	expect("POST", "/v1/workflows", "{\"input\":{\"order_id\":\"X\",\"product_id\":\"1\"}}",
	       400, "quantity", NULL);
	expect("POST", "/v1/workflows",
	       "{\"input\":{\"order_id\":\"X\",\"product_id\":\"1\",\"quantity\":0}}", 400,
	       "quantity", NULL);
	expect("POST", "/v1/workflows",
	       "{\"input\":{\"order_id\":\"X\",\"product_id\":\"1\",\"quantity\":1},\"colour\":1}",
	       400, "colour", NULL);
	expect("POST", "/v1/workflows",
	       "{\"type\":\"payments\",\"input\":{\"order_id\":\"X\",\"product_id\":\"1\","
	       "\"quantity\":1}}",
	       400, "unknown workflow type \"payments\"", "inventory");
	expect("POST", "/v1/workflows",
	       "{\"task_queue\":\"payments\",\"input\":{\"order_id\":\"X\",\"product_id\":\"1\","
	       "\"quantity\":1}}",
	       400, "task queue \"payments\"", "inventory-task-queue");
	expect("POST", "/v1/workflows",
	       "{\"workflow_id\":\"a/b\",\"input\":{\"order_id\":\"X\",\"product_id\":\"1\","
	       "\"quantity\":1}}",
	       400, "workflow_id", NULL);
}

static void test_unknown_things(void **state)
{
	expect("GET", "/v1/workflows/NOPE", NULL, 404, "unknown workflow \"NOPE\"", NULL);
	expect("GET", "/v1/workflows/NOPE/history", NULL, 404, "NOPE", NULL);
	expect("GET", "/v1/workflows/NOPE/wait?timeout=1", NULL, 404, "NOPE", NULL);
	expect("GET", "/v1/nothing", NULL, 404, "no such endpoint", NULL);
	expect("GET", "/elsewhere", NULL, 404, "/v1", NULL);
	expect("PUT", "/v1/workflows", "{}", 405, "POST", NULL);
	expect("GET", "/v1/stock/NOPE", NULL, 404, "unknown product \"NOPE\"", "stock set");
}

static void test_bad_parameters(void **state)
{
	expect("GET", "/v1/workflows?status=sleeping", NULL, 400, "sleeping", "running");
	expect("GET", "/v1/workflows?limit=0", NULL, 400, "limit=0", "1..1000");
	expect("GET", "/v1/wait?timeout=soon", NULL, 400, "timeout=soon", NULL);
	expect("PUT", "/v1/stock/123456", "{\"stock\":-1}", 400, "negative", NULL);
	expect("PUT", "/v1/stock/123456", "{\"stock\":\"many\"}", 400, "stock", NULL);
}

static void test_conflicting_start(void **state)
{
	json_t *out = NULL;

	assert_int_equal(tu_start_order(&sup, "C409", "123456", 5), 201);
	expect("POST", "/v1/workflows",
	       "{\"input\":{\"order_id\":\"C409\",\"product_id\":\"123456\",\"quantity\":6}}", 409,
	       "quantity", NULL);
	/* The same input again is not a conflict: it is the existing workflow. */
	assert_int_equal(tu_http(&sup, "POST", "/v1/workflows",
	                         "{\"input\":{\"order_id\":\"C409\",\"product_id\":\"123456\","
	                         "\"quantity\":5}}",
	                         &out),
	                 200);
	assert_false(json_is_true(json_object_get(out, "created")));
	json_decref(out);
}

static void test_too_large(void **state)
{
	size_t n = 4096;
	char *body = malloc(n + 1);
	int status;

	memset(body, ' ', n);
	memcpy(body, "{\"input\":", 9);
	body[n - 1] = '}';
	body[n] = '\0';
	status = tu_http(&sup, "POST", "/v1/workflows", body, NULL);
	free(body);
	assert_int_equal(status, 413);
	/* Nothing was lost: the API still answers. */
	assert_int_equal(tu_http(&sup, "GET", "/v1/health", NULL, NULL), 200);
}

/* Slot 0's worker once it is ready (its pid is 0 while it is forked). */
static pid_t worker_pid_of(struct tu_sup *s)
{
	json_t *stats = NULL;
	pid_t pid = 0;

	for (int i = 0; i < 200 && pid == 0; i++) {
		tu_http(s, "GET", "/v1/stats", NULL, &stats);
		json_t *slot =
		    json_array_get(json_object_get(json_object_get(stats, "pool"), "slots"), 0);
		const char *st = json_string_value(json_object_get(slot, "state"));
		if (st != NULL && strcmp(st, "ready") == 0)
			pid = (pid_t)json_integer_value(json_object_get(slot, "pid"));
		json_decref(stats);
		if (pid == 0)
			tu_sleep_ms(20);
	}
	return pid;
}

static pid_t worker_pid(void)
{
	return worker_pid_of(&sup);
}

/* Sends a long-poll request on a raw socket and hangs up at once. */
static void vanish_during_wait(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	char req[256];

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sup.sock);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: idem\r\n\r\n", path);
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	tu_sleep_ms(100);
	close(fd);
}

static void test_wait_timeout_and_vanishing_client(void **state)
{
	pid_t pid = worker_pid();
	json_t *out = NULL;

	assert_true(pid > 0);
	kill(pid, SIGSTOP);
	assert_int_equal(tu_start_order(&sup, "HOLD", "123456", 1), 201);
	assert_int_equal(tu_http(&sup, "GET", "/v1/workflows/HOLD/wait?timeout=200ms", NULL, &out),
	                 200);
	assert_true(json_is_true(json_object_get(out, "timed_out")));
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(out, "workflow"), "status")),
	    "running");
	json_decref(out);
	assert_int_equal(tu_http(&sup, "GET", "/v1/wait?timeout=100ms", NULL, &out), 200);
	assert_true(json_is_true(json_object_get(out, "timed_out")));
	json_decref(out);

	vanish_during_wait("/v1/workflows/HOLD/wait?timeout=30");
	vanish_during_wait("/v1/wait?timeout=30");
	kill(pid, SIGCONT);
	assert_int_equal(tu_http(&sup, "GET", "/v1/workflows/HOLD/wait?timeout=30", NULL, &out),
	                 200);
	assert_false(json_is_true(json_object_get(out, "timed_out")));
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(out, "workflow"), "status")),
	    "completed");
	json_decref(out);
}

static const char *wf_str(json_t *out, const char *key)
{
	return json_string_value(json_object_get(json_object_get(out, "workflow"), key));
}

static json_t *first_step(json_t *out)
{
	return json_array_get(json_object_get(json_object_get(out, "workflow"), "steps"), 0);
}

/* POST /v1/workflows?wait=D answers once the workflow has closed, with
 * the view GET gives; a start of a closed workflow answers at once, and
 * one still running at the end of D says timed_out. */
static void test_start_and_wait(void **state)
{
	const char *body =
	    "{\"input\":{\"order_id\":\"SW1\",\"product_id\":\"123456\",\"quantity\":1}}";
	json_t *out = NULL, *get = NULL;
	char *db = tu_fmt("%s/state.db", dir);
	pid_t pid;

	expect("POST", "/v1/workflows?wait=soon", body, 400, "wait=soon", NULL);
	assert_int_equal(tu_http(&sup, "POST", "/v1/workflows?wait=30s", body, &out), 201);
	assert_true(json_is_true(json_object_get(out, "created")));
	assert_false(json_is_true(json_object_get(out, "timed_out")));
	assert_string_equal(wf_str(out, "status"), "completed");
	assert_string_equal(json_string_value(json_object_get(first_step(out), "status")),
	                    "completed");
	/* Built from memory as the workflow closed; GET reads the rows. */
	assert_int_equal(tu_http(&sup, "GET", "/v1/workflows/SW1", NULL, &get), 200);
	if (!json_equal(json_object_get(out, "workflow"), get)) {
		char *a = json_dumps(json_object_get(out, "workflow"), JSON_SORT_KEYS);
		char *b = json_dumps(get, JSON_SORT_KEYS);

		fail_msg("the start's view differs from GET's:\n  %s\n  %s", a, b);
	}
	json_decref(get);
	json_decref(out);

	assert_int_equal(tu_http(&sup, "POST", "/v1/workflows?wait=30s", body, &out), 200);
	assert_false(json_is_true(json_object_get(out, "created")));
	assert_false(json_is_true(json_object_get(out, "timed_out")));
	assert_string_equal(wf_str(out, "status"), "completed");
	json_decref(out);

	pid = worker_pid();
	assert_true(pid > 0);
	kill(pid, SIGSTOP);
	assert_int_equal(tu_http(&sup, "POST", "/v1/workflows?wait=300ms",
	                         "{\"input\":{\"order_id\":\"SW2\",\"product_id\":"
	                         "\"123456\",\"quantity\":1}}",
	                         &out),
	                 201);
	assert_true(json_is_true(json_object_get(out, "timed_out")));
	assert_string_equal(wf_str(out, "status"), "running");
	assert_string_equal(json_string_value(json_object_get(first_step(out), "status")),
	                    "running");
	assert_int_equal(json_integer_value(json_object_get(first_step(out), "attempts")), 1);
	/* What the memory view said is what the state DB holds. */
	assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM steps s JOIN workflows w ON w.id = "
	                                "s.wf WHERE w.workflow_id = 'SW2' AND w.status = "
	                                "'running' AND s.status = 'running' AND s.attempt = 1"),
	                 1);
	json_decref(out);
	kill(pid, SIGCONT);
	assert_int_equal(tu_http(&sup, "GET", "/v1/workflows/SW2/wait?timeout=30", NULL, &out),
	                 200);
	assert_string_equal(wf_str(out, "status"), "completed");
	json_decref(out);
	free(db);
}

/* A start whose task frame cannot fit in MAX_FRAME (here a 128-byte
 * order id under a 240-byte MAX_FRAME) fails for good with the reason,
 * after one attempt, and the worker is not killed for it: it never got
 * the task. */
static void test_task_too_large(void **state)
{
	const char *extra[] = {"--workers=1", "--max-frame=240", NULL};
	char *d = tu_tmpdir("api-frame"), *body, *note = malloc(129);
	struct tu_sup big = {0};
	json_t *out = NULL, *stats = NULL, *slot;
	long pid_before;

	assert_non_null(d);
	assert_int_equal(tu_sup_start(&big, d, extra), 0);
	memset(note, 'n', 128);
	note[128] = '\0';
	body = tu_fmt("{\"workflow_id\":\"BIG\",\"input\":{\"order_id\":\"%s\","
	              "\"product_id\":\"123456\",\"quantity\":1}}",
	              note);
	pid_before = (long)worker_pid_of(&big);
	assert_true(pid_before > 0);
	assert_int_equal(tu_http(&big, "POST", "/v1/workflows?wait=30s", body, &out), 201);
	assert_false(json_is_true(json_object_get(out, "timed_out")));
	assert_string_equal(wf_str(out, "status"), "failed");
	if (strstr(wf_str(out, "error"), "MAX_FRAME") == NULL ||
	    strstr(wf_str(out, "error"), "TaskTooLarge") == NULL)
		fail_msg("the error does not name the limit: %s", wf_str(out, "error"));
	assert_int_equal(json_integer_value(json_object_get(first_step(out), "attempts")), 1);
	json_decref(out);
	/* The same worker is still there and takes the next workflow. */
	assert_int_equal(tu_http(&big, "POST", "/v1/workflows?wait=30s",
	                         "{\"input\":{\"order_id\":\"SMALL\",\"product_id\":"
	                         "\"123456\",\"quantity\":1}}",
	                         &out),
	                 201);
	assert_string_equal(wf_str(out, "status"), "completed");
	json_decref(out);
	assert_int_equal(tu_http(&big, "GET", "/v1/stats", NULL, &stats), 200);
	slot = json_array_get(json_object_get(json_object_get(stats, "pool"), "slots"), 0);
	assert_int_equal((long)json_integer_value(json_object_get(slot, "pid")), pid_before);
	assert_int_equal(json_integer_value(json_object_get(stats, "worker_restarts")), 0);
	json_decref(stats);
	assert_int_equal(tu_sup_stop(&big), 0);
	tu_sup_free(&big);
	tu_rmrf(d);
	free(d);
	free(body);
	free(note);
}

/* stats[group][key] equals the count of table's rows whose column is
 * key; returns it. */
static long long assert_count(const char *db, json_t *stats, const char *group, const char *table,
                              const char *column, const char *key)
{
	char *sql = tu_fmt("SELECT count(*) FROM %s WHERE %s = '%s'", table, column, key);
	long long rows = tu_sql_int(db, sql);
	long long got = json_integer_value(json_object_get(json_object_get(stats, group), key));

	free(sql);
	if (got != rows)
		fail_msg("%s %s: stats %lld, rows %lld", group, key, got, rows);
	return got;
}

/* /v1/stats' counts equal what the state DB's rows say. */
static void assert_counts_match(struct tu_sup *s, const char *db)
{
	static const char *const wf_statuses[] = {"running", "completed", "failed"};
	static const char *const step_statuses[] = {"scheduled", "running", "completed", "failed"};
	json_t *stats = NULL, *v;
	const char *key;
	long long events = 0;

	assert_int_equal(tu_http(s, "GET", "/v1/stats", NULL, &stats), 200);
	for (size_t i = 0; i < 3; i++)
		assert_count(db, stats, "workflows", "workflows", "status", wf_statuses[i]);
	for (size_t i = 0; i < 4; i++)
		assert_count(db, stats, "steps", "steps", "status", step_statuses[i]);
	json_object_foreach(json_object_get(stats, "events"), key, v) events +=
	    assert_count(db, stats, "events", "events", "kind", key);
	assert_int_equal(events, tu_sql_int(db, "SELECT count(*) FROM events"));
	assert_int_equal(json_integer_value(json_object_get(stats, "attempts")),
	                 tu_sql_int(db, "SELECT coalesce(sum(attempt), 0) FROM steps"));
	json_decref(stats);
}

static void start_and_wait_order(struct tu_sup *s, const char *id, int quantity)
{
	char *body = tu_fmt("{\"input\":{\"order_id\":\"%s\",\"product_id\":\"123456\","
	                    "\"quantity\":%d}}",
	                    id, quantity);
	json_t *out = NULL;

	assert_int_equal(tu_http(s, "POST", "/v1/workflows?wait=30s", body, &out), 201);
	assert_false(json_is_true(json_object_get(out, "timed_out")));
	json_decref(out);
	free(body);
}

/* The counts of /v1/stats and /metrics are kept as the rows change, not
 * counted over every row at each request: they must stay equal to the
 * rows through completions, failures, a SIGKILL and an upgrade from a
 * state DB that had no counters. */
static void test_counts_follow_the_rows(void **state)
{
	const char *extra[] = {"--workers=1", "--seed-stock=123456:3", NULL};
	char *d = tu_tmpdir("api-counts"), *db;
	struct tu_sup c = {0};
	sqlite3 *raw = NULL;

	assert_non_null(d);
	db = tu_fmt("%s/state.db", d);
	assert_int_equal(tu_sup_start(&c, d, extra), 0);
	assert_counts_match(&c, db);
	start_and_wait_order(&c, "N1", 1);
	start_and_wait_order(&c, "N2", 1);
	start_and_wait_order(&c, "N3", 5); /* InsufficientStock: failed */
	assert_counts_match(&c, db);
	tu_sup_kill9(&c);
	assert_int_equal(tu_sup_start(&c, d, extra), 0);
	assert_counts_match(&c, db);
	start_and_wait_order(&c, "N4", 1);
	assert_counts_match(&c, db);
	assert_int_equal(tu_sup_stop(&c), 0);
	/* A state DB from before the counters: the upgrade counts the rows. */
	assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(raw, "DROP TABLE counters; PRAGMA user_version = 2", NULL, NULL, NULL),
	    SQLITE_OK);
	db_close(raw);
	assert_int_equal(tu_sup_start(&c, d, extra), 0);
	assert_counts_match(&c, db);
	assert_int_equal(tu_sup_stop(&c), 0);
	tu_sup_free(&c);
	tu_rmrf(d);
	free(d);
	free(db);
}

static void test_metrics(void **state)
{
	struct httpc_response r = {0};
	char err[256];

	assert_int_equal(
	    httpc_request(sup.sock, "GET", "/metrics", NULL, NULL, 0, 5000, &r, err, sizeof(err)),
	    0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "idem_workflows{status=\"completed\"}"));
	assert_non_null(strstr(r.body, "idem_attempts_total"));
	httpc_response_free(&r);
}

/* ---- /metrics: every family, in valid Prometheus text -------------------- */

/* The value of a sample line ("name{labels} value"); fails on bad syntax. */
static double sample_value(const char *line)
{
	const char *p = line, *v;
	char *end;
	double x;

	if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == ':'))
		fail_msg("bad metric name: %s", line);
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
	       *p == '_' || *p == ':')
		p++;
	if (*p == '{') {
		p++;
		while (*p != '}') {
			const char *k = p;

			while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
			       (p > k && *p >= '0' && *p <= '9'))
				p++;
			if (p == k || p[0] != '=' || p[1] != '"')
				fail_msg("bad label in: %s", line);
			for (p += 2; *p != '"'; p++) {
				if (*p == '\0' || *p == '\n')
					fail_msg("unterminated label value in: %s", line);
				if (*p == '\\')
					p++;
			}
			p++;
			if (*p == ',')
				p++;
			else if (*p != '}')
				fail_msg("bad label list in: %s", line);
		}
		p++;
	}
	if (*p != ' ')
		fail_msg("no space before the value in: %s", line);
	v = p + 1;
	if (strcmp(v, "+Inf") == 0)
		return INFINITY;
	x = strtod(v, &end);
	if (end == v || *end != '\0')
		fail_msg("bad value in: %s", line);
	return x;
}

/* The labels of a sample without its le label: `activity="x"` or "". */
static void series_key(const char *line, char *key, size_t len)
{
	const char *open = strchr(line, '{'), *close = open ? strchr(open, '}') : NULL;
	char *le;

	key[0] = '\0';
	if (open == NULL || close == NULL)
		return;
	snprintf(key, len, "%.*s", (int)(close - open - 1), open + 1);
	if ((le = strstr(key, "le=\"")) != NULL) {
		if (le > key && le[-1] == ',')
			le--;
		*le = '\0';
	}
}

static double le_of(const char *line)
{
	const char *le = strstr(line, "le=\"");

	if (le == NULL)
		fail_msg("a bucket without le: %s", line);
	if (strncmp(le + 4, "+Inf\"", 5) == 0)
		return INFINITY;
	return strtod(le + 4, NULL);
}

struct hist_series {
	char key[128];
	double inf; /* the +Inf bucket */
	double count;
	int done;
};

/* Checks histogram family name in text: each series' buckets have
 * increasing le and non-decreasing counts up to +Inf, and +Inf equals
 * _count. Returns the summed _count of the series whose key holds want
 * ("" = all). */
static double check_histogram(const char *text, const char *name, const char *want)
{
	struct hist_series series[16];
	int n = 0, cur = -1;
	double prev_le = -1, prev_v = -1, total = 0;
	char line[512], key[128], bucket[128], count[128];
	const char *p = text;

	snprintf(bucket, sizeof(bucket), "%s_bucket{", name);
	snprintf(count, sizeof(count), "%s_count", name);
	memset(series, 0, sizeof(series));
	while (*p != '\0') {
		size_t len = strcspn(p, "\n");

		snprintf(line, sizeof(line), "%.*s", (int)len, p);
		p += len + (p[len] == '\n');
		if (strncmp(line, bucket, strlen(bucket)) == 0) {
			double le = le_of(line), v = sample_value(line);

			series_key(line, key, sizeof(key));
			if (cur < 0 || strcmp(series[cur].key, key) != 0) {
				assert_true(cur < 0 || series[cur].done);
				assert_true(n < 16);
				cur = n++;
				snprintf(series[cur].key, sizeof(series[cur].key), "%s", key);
				prev_le = -1;
				prev_v = 0;
			}
			if (!(le > prev_le) || v < prev_v)
				fail_msg("%s: buckets out of order at: %s", name, line);
			prev_le = le;
			prev_v = v;
			if (isinf(le)) {
				series[cur].inf = v;
				series[cur].done = 1;
			}
		} else if (strncmp(line, count, strlen(count)) == 0 &&
		           (line[strlen(count)] == ' ' || line[strlen(count)] == '{')) {
			int found = 0;

			series_key(line, key, sizeof(key));
			for (int i = 0; i < n; i++) {
				if (strcmp(series[i].key, key) != 0)
					continue;
				series[i].count = sample_value(line);
				if (series[i].count != series[i].inf)
					fail_msg("%s{%s}: +Inf bucket %g but _count %g", name, key,
					         series[i].inf, series[i].count);
				found = 1;
				if (strstr(key, want) != NULL)
					total += series[i].count;
			}
			if (!found)
				fail_msg("%s: a _count without buckets: %s", name, line);
		}
	}
	if (n == 0)
		fail_msg("no %s_bucket lines", name);
	for (int i = 0; i < n; i++)
		if (!series[i].done)
			fail_msg("%s{%s}: no +Inf bucket", name, series[i].key);
	return total;
}

/* Asserts "# TYPE name type" and a "# HELP name" line. */
static void expect_family(const char *text, const char *name, const char *type)
{
	char *t = tu_fmt("# TYPE %s %s\n", name, type), *h = tu_fmt("# HELP %s ", name);

	if (strstr(text, t) == NULL || strstr(text, h) == NULL)
		fail_msg("/metrics lacks \"%s\" (or its HELP)", t);
	free(t);
	free(h);
}

static void test_metrics_families(void **state)
{
	static const char *const causes[] = {"planned_kill", "timeout", "channel", "unexpected",
	                                     "shutdown"};
	struct httpc_response r = {0};
	char err[256], line[512];
	json_t *out = NULL;
	const char *p;

	/* The seed workflow: 999 of 1000 units, then a restock. */
	assert_int_equal(tu_http(&sup, "PUT", "/v1/stock/123456", "{\"stock\":1000}", NULL), 200);
	assert_int_equal(tu_start_order(&sup, "A12", "123456", 999), 201);
	assert_int_equal(tu_http(&sup, "GET", "/v1/workflows/A12/wait?timeout=30", NULL, &out),
	                 200);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(out, "workflow"), "status")),
	    "completed");
	json_decref(out);

	assert_int_equal(
	    httpc_request(sup.sock, "GET", "/metrics", NULL, NULL, 0, 5000, &r, err, sizeof(err)),
	    0);
	assert_int_equal(r.status, 200);
	/* Every line is a comment or a well-formed sample. */
	for (p = r.body; *p != '\0';) {
		size_t len = strcspn(p, "\n");

		snprintf(line, sizeof(line), "%.*s", (int)len, p);
		p += len + (p[len] == '\n');
		if (line[0] == '#')
			assert_true(strncmp(line, "# HELP ", 7) == 0 ||
			            strncmp(line, "# TYPE ", 7) == 0);
		else
			(void)sample_value(line);
	}
	expect_family(r.body, "idem_workflows", "gauge");
	expect_family(r.body, "idem_attempts_total", "counter");
	expect_family(r.body, "idem_retries_total", "counter");
	expect_family(r.body, "idem_faults_total", "counter");
	expect_family(r.body, "idem_timeouts_total", "counter");
	expect_family(r.body, "idem_worker_spawns_total", "counter");
	expect_family(r.body, "idem_worker_deaths_total", "counter");
	expect_family(r.body, "idem_queue_depth", "gauge");
	expect_family(r.body, "idem_dispatch_latency_seconds", "histogram");
	expect_family(r.body, "idem_activity_duration_seconds", "histogram");
	expect_family(r.body, "idem_commit_latency_seconds", "histogram");
	assert_non_null(strstr(r.body, "idem_workflows{status=\"completed\"} "));
	assert_non_null(strstr(r.body, "idem_faults_total{kind=\"kill\",point=\"mid_reply\"} "));
	assert_non_null(strstr(r.body, "idem_timeouts_total{kind=\"start_to_close\"} "));
	assert_non_null(strstr(r.body, "\nidem_queue_depth 0\n"));
	for (size_t i = 0; i < sizeof(causes) / sizeof(causes[0]); i++) {
		char *want = tu_fmt("idem_worker_deaths_total{cause=\"%s\"} ", causes[i]);

		assert_non_null(strstr(r.body, want));
		free(want);
	}
	/* The worker was spawned at least once. */
	p = strstr(r.body, "\nidem_worker_spawns_total ");
	assert_non_null(p);
	assert_true(strtol(p + strlen("\nidem_worker_spawns_total "), NULL, 10) >= 1);

	assert_true(check_histogram(r.body, "idem_dispatch_latency_seconds", "") >= 2);
	assert_true(check_histogram(r.body, "idem_activity_duration_seconds", "") >= 2);
	assert_true(check_histogram(r.body, "idem_activity_duration_seconds",
	                            "activity=\"update_inventory\"") >= 1);
	assert_true(check_histogram(r.body, "idem_activity_duration_seconds",
	                            "activity=\"supplier_order\"") >= 1);
	assert_true(check_histogram(r.body, "idem_commit_latency_seconds", "") >= 1);
	httpc_response_free(&r);
}

/* ---- starts refused before anything is created (issue 14) --------------- */

static long long stock_now(void)
{
	json_t *out = NULL;
	long long stock;

	assert_int_equal(tu_http(&sup, "GET", "/v1/stock/123456", NULL, &out), 200);
	stock = json_integer_value(json_object_get(out, "stock"));
	json_decref(out);
	return stock;
}

/* POST body is refused with 400 naming both needles; then workflow id
 * does not exist in namespace ns and the stock has not moved. */
static void expect_refused(const char *body, const char *id, const char *ns, const char *needle1,
                           const char *needle2)
{
	char *path = tu_fmt("/v1/workflows/%s?namespace=%s", id, ns);
	long long before;

	/* Workflows of earlier tests move the stock too: let them end. */
	assert_int_equal(tu_http(&sup, "GET", "/v1/wait?timeout=30s", NULL, NULL), 200);
	before = stock_now();
	expect("POST", "/v1/workflows?wait=10s", body, 400, needle1, needle2);
	expect("GET", path, NULL, 404, "unknown workflow", NULL);
	assert_int_equal(stock_now(), before);
	free(path);
}

/* A start with an input field out of its range, of the wrong type or
 * unknown is refused at start with the field and its range: the order
 * is not applied. (They were accepted with 201, and failed only later,
 * or never: reorder_* were kept unchecked.) */
static void test_start_checks_every_input_field(void **state)
{
	static const struct {
		const char *field, *value, *needle1, *needle2;
	} cases[] = {
	    {"reorder_quantity", "0", "input.reorder_quantity=0 is out of range",
	     "give an integer 1..1000000000"},
	    {"quantity", "2147483648", "input.quantity=2147483648 is out of range",
	     "1..1000000000"},
	    {"quantity", "9223372036854775807", "input.quantity=9223372036854775807",
	     "1..1000000000"},
	    {"quantity", "1.5", "input.quantity is a real number", "1..1000000000"},
	    {"reorder_threshold", "-1", "input.reorder_threshold=-1 is out of range",
	     "give an integer 0..1000000000"},
	    {"reorder_threshold", "\"2\"", "input.reorder_threshold is a string", "0..1000000000"},
	    {"reorder_threshold", "1000000001", "input.reorder_threshold=1000000001",
	     "0..1000000000"},
	    {"reorder_threshold", "null", "input.reorder_threshold is null", "0..1000000000"},
	    {"quantity", "0", "input.quantity=0 is out of range", "give an integer 1..1000000000"},
	    {"reorder_quantity", "-5", "input.reorder_quantity=-5 is out of range",
	     "1..1000000000"},
	    {"reorder_quantity", "\"1000\"", "input.reorder_quantity is a string", "1..1000000000"},
	    {"reorder_quantity", "2147483648", "input.reorder_quantity=2147483648",
	     "1..1000000000"},
	    {"reorder_quantity", "9223372036854775807",
	     "input.reorder_quantity=9223372036854775807", "1..1000000000"},
	    {"colour", "\"red\"", "input.colour is not a known field",
	     "order_id, product_id, quantity, reorder_threshold, reorder_quantity"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *id = tu_fmt("RANGE%zu", i);
		char *body = tu_fmt("{\"input\":{\"order_id\":\"%s\",\"product_id\":\"123456\","
		                    "%s\"%s\":%s}}",
		                    id, strcmp(cases[i].field, "quantity") ? "\"quantity\":1," : "",
		                    cases[i].field, cases[i].value);

		expect_refused(body, id, "default", cases[i].needle1, cases[i].needle2);
		free(body);
		free(id);
	}
	expect_refused("{\"workflow_id\":\"RANGE-P\",\"input\":{\"order_id\":\"RP\","
	               "\"product_id\":\"12345678901234567890123456789012345678901234567890123456"
	               "789012345\",\"quantity\":1}}",
	               "RANGE-P", "default", "input.product_id is 65 bytes long", "1..64 bytes");
}

/* A key given twice in the body (at the top, inside input, longer than
 * jansson names, with escapes) is refused, naming it; it took the last
 * value silently. */
static void test_duplicate_keys_refused(void **state)
{
	const char *in = "\"product_id\":\"123456\",\"quantity\":1";
	char *top = tu_fmt("{\"workflow_id\":\"DUP1\",\"workflow_id\":\"DUP2\","
	                   "\"input\":{\"order_id\":\"DUP1\",%s}}",
	                   in);
	char *inner = tu_fmt("{\"input\":{\"order_id\":\"DUP3\",%s,\"quantity\":2}}", in);
	char *longkey = tu_fmt("{\"input\":{\"order_id\":\"DUP4\",%s,"
	                       "\"a_key_longer_than_twenty_bytes\":1,"
	                       "\"a_key_longer_than_twenty_bytes\":2}}",
	                       in);
	char *escaped = tu_fmt("{\"input\":{\"order_id\":\"DUP5\",%s,\"we\\\"ird\\\\\":1,"
	                       "\"we\\\"ird\\\\\" : 2}}",
	                       in);
	long long before;

	expect_refused(top, "DUP1", "default", "key \"workflow_id\" appears twice", "once");
	expect("GET", "/v1/workflows/DUP2", NULL, 404, "unknown workflow", NULL);
	expect_refused(inner, "DUP3", "default", "key \"quantity\" appears twice", NULL);
	expect_refused(longkey, "DUP4", "default",
	               "key \"a_key_longer_than_twenty_bytes\" appears twice", NULL);
	expect_refused(escaped, "DUP5", "default", "key \"we\"ird\\\" appears twice", NULL);
	before = stock_now();
	expect("PUT", "/v1/stock/123456", "{\"stock\":5,\"stock\":6}", 400,
	       "key \"stock\" appears twice", NULL);
	assert_int_equal(stock_now(), before);
	free(top);
	free(inner);
	free(longkey);
	free(escaped);
}

/* A namespace follows the rule NAMESPACE follows (shared/ids.h: A-Z a-z
 * 0-9 _ . -), a workflow id the rule of what travels in a path; the API
 * took any printable namespace, one the configuration could not name. */
static void test_start_ids_follow_one_rule(void **state)
{
	expect_refused("{\"namespace\":\"a:b\",\"workflow_id\":\"N1\",\"input\":{\"order_id\":"
	               "\"N1\",\"product_id\":\"123456\",\"quantity\":1}}",
	               "N1", "a:b", "namespace \"a:b\" has a character that is not allowed",
	               "A-Z a-z 0-9 _ . -");
	expect_refused("{\"workflow_id\":\"N 2\",\"input\":{\"order_id\":\"N2\","
	               "\"product_id\":\"123456\",\"quantity\":1}}",
	               "N2", "default", "workflow_id \"N 2\" has a character that is not allowed",
	               "printable ASCII");
}

/* The supplier order key namespace/workflow_id/1 must fit the supplier's
 * 255-byte Idempotency-Key: ids that would pass it are refused at start
 * (they were accepted, the order applied, and supplier_order failed with
 * InvalidInput); ids that make it exactly 255 bytes go through, restock
 * included. */
static void test_start_ids_fit_the_supplier_key(void **state)
{
	char ns[128], id[129], *body, *path;
	json_t *out = NULL;

	memset(ns, 'n', sizeof(ns) - 1);
	ns[sizeof(ns) - 1] = '\0';
	memset(id, 'w', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	body = tu_fmt("{\"namespace\":\"%s\",\"workflow_id\":\"%s\",\"input\":{\"order_id\":"
	              "\"KEY1\",\"product_id\":\"123456\",\"quantity\":1,"
	              "\"reorder_threshold\":1000000000}}",
	              ns, id);
	expect_refused(body, id, ns, "workflow_id is 128 bytes, over the 125", "255");
	free(body);

	id[125] = '\0'; /* 127 + 1 + 125 + 2 = 255 */
	body = tu_fmt("{\"namespace\":\"%s\",\"workflow_id\":\"%s\",\"input\":{\"order_id\":"
	              "\"KEY2\",\"product_id\":\"123456\",\"quantity\":1,"
	              "\"reorder_threshold\":1000000000}}",
	              ns, id);
	assert_int_equal(tu_http(&sup, "POST", "/v1/workflows?wait=30s", body, &out), 201);
	assert_string_equal(wf_str(out, "status"), "completed");
	assert_true(json_is_true(json_object_get(
	    json_object_get(json_object_get(out, "workflow"), "result"), "restocked")));
	json_decref(out);
	free(body);
	path = tu_fmt("/v1/workflows/%s?namespace=%s", id, ns);
	assert_int_equal(tu_http(&sup, "GET", path, NULL, NULL), 200);
	free(path);
}

/* ---- methods: 405 with Allow, 501, all in JSON ------------------------ */

struct raw_reply {
	int status;
	int replies;    /* status lines read: one per request */
	char allow[64]; /* the Allow header, "" when none */
	char type[64];  /* Content-Type */
	char connection[32];
	json_t *body; /* NEW ref, NULL when not JSON */
};

static void header_value(const char *head, const char *name, char *buf, size_t len)
{
	char *want = tu_fmt("\r\n%s: ", name);
	const char *p = strcasestr(head, want);

	buf[0] = '\0';
	if (p != NULL)
		snprintf(buf, len, "%.*s", (int)strcspn(p + strlen(want), "\r"), p + strlen(want));
	free(want);
}

/* Sends request on a new connection and reads until the server closes it
 * (the request asks it to, or the reply says it will). */
static void raw_exchange(const char *request, struct raw_reply *r)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {10, 0};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	char buf[16384], *head_end;
	size_t len = 0;
	ssize_t n;

	memset(r, 0, sizeof(*r));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sup.sock);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	/* A reset after the reply (a closed socket with unread bytes) ends it
	 * as well as an EOF; a timeout does not. */
	if (n < 0 && errno != ECONNRESET)
		fail_msg("the server did not close the connection: %s", request);
	close(fd);
	buf[len] = '\0';
	for (const char *p = buf; (p = strstr(p, "HTTP/1.")) != NULL; p++)
		r->replies++;
	assert_int_equal(sscanf(buf, "HTTP/1.%*d %d", &r->status), 1);
	head_end = strstr(buf, "\r\n\r\n");
	assert_non_null(head_end);
	head_end[2] = '\0';
	header_value(buf, "Allow", r->allow, sizeof(r->allow));
	header_value(buf, "Content-Type", r->type, sizeof(r->type));
	header_value(buf, "Connection", r->connection, sizeof(r->connection));
	r->body = json_loads(head_end + 4, 0, NULL);
}

/* method path (with a small body) answers status, with allow as its Allow
 * header ("" = none), in JSON {error, status} (HEAD: no body). */
static void expect_method(const char *method, const char *path, int status, const char *allow)
{
	char *req = tu_fmt("%s %s HTTP/1.1\r\nHost: idem\r\nConnection: close\r\n"
	                   "Content-Length: 2\r\n\r\n{}",
	                   method, path);
	struct raw_reply r;

	raw_exchange(req, &r);
	if (r.status != status || strcmp(r.allow, allow) != 0)
		fail_msg("%s %s: %d with Allow \"%s\", expected %d with \"%s\"", method, path,
		         r.status, r.allow, status, allow);
	if (strcmp(r.type, "application/json") != 0 ||
	    (strcmp(method, "HEAD") != 0 && !json_is_object(r.body)))
		fail_msg("%s %s: the reply is not JSON (Content-Type %s)", method, path, r.type);
	if (status >= 400 && strcmp(method, "HEAD") != 0) {
		const char *err = json_string_value(json_object_get(r.body, "error"));

		if (err == NULL || json_integer_value(json_object_get(r.body, "status")) != status)
			fail_msg("%s %s: not a JSON error", method, path);
		if (status == 405 && (strstr(err, method) == NULL || strstr(err, allow) == NULL))
			fail_msg("%s %s: \"%s\" does not name %s and %s", method, path, err, method,
			         allow);
	}
	json_decref(r.body);
	free(req);
}

/* Every endpoint, asked with a method it does not have, answers 405 with
 * Allow (POST /v1/stats said 404; DELETE, PATCH and HEAD got libevent's
 * HTML 501); a method libevent does not know gets a JSON 501. */
static void test_wrong_method_is_405_with_allow(void **state)
{
	static const struct {
		const char *method, *path, *allow;
	} cases[] = {
	    {"DELETE", "/v1/workflows", "GET, POST"},
	    {"PUT", "/v1/workflows", "GET, POST"},
	    {"POST", "/v1/workflows/A1", "GET"},
	    {"PATCH", "/v1/workflows/A1", "GET"},
	    {"PUT", "/v1/workflows/A1/history", "GET"},
	    {"POST", "/v1/workflows/A1/wait", "GET"},
	    {"POST", "/v1/wait", "GET"},
	    {"POST", "/v1/stats", "GET"},
	    {"DELETE", "/v1/check", "GET"},
	    {"PUT", "/v1/health", "GET"},
	    {"POST", "/metrics", "GET"},
	    {"POST", "/v1/stock/123456", "GET, PUT"},
	    {"DELETE", "/v1/stock/123456", "GET, PUT"},
	    {"OPTIONS", "/v1/stats", "GET"},
	    {"TRACE", "/v1/health", "GET"},
	    {"HEAD", "/v1/health", "GET"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_method(cases[i].method, cases[i].path, 405, cases[i].allow);
	expect_method("FROB", "/v1/health", 501, "");
	expect_method("DELETE", "/v1/nothing", 404, "");
	/* The right method still answers. */
	expect_method("GET", "/v1/health", 200, "");
}

/* A method whose body evhttp does not read: the answer closes the
 * connection, so the body is not taken for a next request. */
/* GET /v1/check runs idemctl with the supervisor's app keys whole (a
 * SEED_STOCK past 511 bytes), and an error whose path is not UTF-8 is
 * answered, not a crash. */
static void test_check_long_keys_and_bad_bytes(void **state)
{
	char *d = tu_tmpdir("api-check"), *seed = NULL, *bad, *flag_seed, *flag_db, *app_db;
	struct tu_sup c = {0};
	json_t *r = NULL;
	size_t len = 0;

	(void)state;
	assert_non_null(d);
	for (int i = 0; i < 60; i++) {
		char item[32];
		int n = snprintf(item, sizeof(item), "%sPRODUCT%04d:10", i ? "," : "", i);

		seed = realloc(seed, len + (size_t)n + 1);
		assert_non_null(seed);
		memcpy(seed + len, item, (size_t)n + 1);
		len += (size_t)n;
	}
	assert_true(len > 600);
	flag_seed = tu_fmt("--seed-stock=%s", seed);
	{
		const char *extra[] = {flag_seed, NULL};

		assert_int_equal(tu_sup_start(&c, d, extra), 0);
	}
	assert_int_equal(tu_http(&c, "GET", "/v1/check", NULL, &r), 200);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(r, "totals"), "products")), 60);
	json_decref(r);
	assert_int_equal(tu_sup_stop(&c), 0);
	tu_sup_free(&c);

	bad = tu_fmt("%s/d\xff", d);
	assert_int_equal(mkdir(bad, 0755), 0);
	flag_db = tu_fmt("--database=%s/app.db", bad);
	app_db = tu_fmt("%s/app.db", bad);
	{
		const char *extra[] = {flag_db, NULL};

		assert_int_equal(tu_sup_start(&c, d, extra), 0);
	}
	assert_int_equal(unlink(app_db), 0);
	r = NULL;
	assert_int_equal(tu_http(&c, "GET", "/v1/check", NULL, &r), 500);
	assert_non_null(strstr(json_string_value(json_object_get(r, "error")), "d?/app.db"));
	json_decref(r);
	assert_int_equal(tu_http(&c, "GET", "/v1/health", NULL, NULL), 200);
	assert_int_equal(tu_sup_stop(&c), 0);
	tu_sup_free(&c);
	tu_rmrf(d);
	free(d);
	free(seed);
	free(bad);
	free(flag_seed);
	free(flag_db);
	free(app_db);
}

static void test_unread_body_closes(void **state)
{
	struct raw_reply r;

	raw_exchange("FROB /v1/stats HTTP/1.1\r\nHost: idem\r\nContent-Length: 25\r\n\r\n"
	             "GET /v1/health HTTP/1.1\r\n",
	             &r);
	assert_int_equal(r.status, 501);
	assert_int_equal(r.replies, 1);
	assert_string_equal(r.connection, "close");
	assert_int_equal(json_integer_value(json_object_get(r.body, "status")), 501);
	json_decref(r.body);
	raw_exchange("TRACE /v1/stats HTTP/1.1\r\nHost: idem\r\nContent-Length: 25\r\n\r\n"
	             "GET /v1/health HTTP/1.1\r\n",
	             &r);
	assert_int_equal(r.status, 405);
	assert_int_equal(r.replies, 1);
	assert_string_equal(r.allow, "GET");
	json_decref(r.body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_json),
	    cmocka_unit_test(test_missing_fields),
	    cmocka_unit_test(test_unknown_things),
	    cmocka_unit_test(test_bad_parameters),
	    cmocka_unit_test(test_conflicting_start),
	    cmocka_unit_test(test_too_large),
	    cmocka_unit_test(test_start_checks_every_input_field),
	    cmocka_unit_test(test_duplicate_keys_refused),
	    cmocka_unit_test(test_start_ids_fit_the_supplier_key),
	    cmocka_unit_test(test_start_ids_follow_one_rule),
	    cmocka_unit_test(test_wrong_method_is_405_with_allow),
	    cmocka_unit_test(test_unread_body_closes),
	    cmocka_unit_test(test_check_long_keys_and_bad_bytes),
	    cmocka_unit_test(test_wait_timeout_and_vanishing_client),
	    cmocka_unit_test(test_start_and_wait),
	    cmocka_unit_test(test_task_too_large),
	    cmocka_unit_test(test_counts_follow_the_rows),
	    cmocka_unit_test(test_metrics),
	    cmocka_unit_test(test_metrics_families),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

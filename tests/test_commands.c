/* test_commands.c — apps defined by an idem.json (apps/file/), whose
 * activities are commands, run by the real programs against the contract
 * of docs/own-activities.md: the input on stdin and the result on stdout,
 * the IDEM_* variables, the verdict of the exit code (0, 75, 65, others),
 * the failures idem names itself (CommandNotFound, BadOutput,
 * OutputTooLarge, StartToCloseTimeout), the end of stderr in the history,
 * heartbeats, crash points, a bad idem.json at start-up and the app's own
 * check. Each test writes its app (idem.json and tiny shell scripts) into
 * its own temporary directory and starts a supervisor on it. No
 * randomness: every outcome here is determined. */
#include <dirent.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

static int setup(void **state)
{
	struct tu_fixture *f;
	char *app;
	int rc;

	if (tu_fixture_setup(state, "commands") != 0)
		return -1;
	f = *state;
	app = tu_fmt("%s/app", f->dir);
	rc = mkdir(app, 0755);
	free(app);
	return rc;
}

/* ---- the app ------------------------------------------------------------------------ */

/* Writes text to the app directory's file name. */
static void put(struct tu_fixture *f, const char *name, const char *text)
{
	char *path = tu_fmt("%s/app/%s", f->dir, name);

	assert_int_equal(tu_write_file(path, text), 0);
	free(path);
}

/* Writes idem.json: the activities and workflows objects (JSON text of
 * their members) and more top-level members ("" or ", \"check\": ..."). */
static void app(struct tu_fixture *f, const char *activities, const char *workflows,
                const char *more)
{
	char *text = tu_fmt("{\"name\": \"cmdtest\",\n \"activities\": {%s},\n \"workflows\": "
	                    "{%s}%s}\n",
	                    activities, workflows, more);

	put(f, "idem.json", text);
	free(text);
}

/* A workflow type W of one step "s" calling activity A with the whole
 * workflow input. */
#define ONE_STEP(w, a) "\"" w "\": {\"steps\": [{\"name\": \"s\", \"activity\": \"" a "\"}]}"

/* Starts the supervisor on the app with small retry intervals and extra
 * flags (NULL-terminated, or NULL). */
static void start(struct tu_fixture *f, const char *const *extra)
{
	const char *argv[32];
	char *appflag = tu_fmt("--app=%s/app", f->dir);
	int n = 0;

	argv[n++] = appflag;
	argv[n++] = "--retry-initial-interval=5ms";
	argv[n++] = "--retry-maximum-interval=50ms";
	for (const char *const *e = extra; e != NULL && *e != NULL && n < 31; e++)
		argv[n++] = *e;
	argv[n] = NULL;
	if (tu_sup_start(&f->sup, f->dir, argv) != 0)
		fail_msg("the supervisor did not start");
	free(appflag);
}

/* SIGTERM: the supervisor must stop cleanly, exit 0; else the lines of
 * its log that say why (a sanitizer's report, an error) are printed. */
static void stop(struct tu_fixture *f)
{
	int rc = tu_sup_stop(&f->sup);
	char *log, *line, *save = NULL;

	if (rc != 0 && (log = tu_read_file(f->sup.log)) != NULL) {
		fprintf(stderr, "the supervisor exited %d; from its log:\n", rc);
		for (line = strtok_r(log, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save))
			if (strstr(line, "Sanitizer") != NULL ||
			    strstr(line, "level=error") != NULL ||
			    strstr(line, "runtime error") != NULL || strstr(line, "    #") != NULL)
				fprintf(stderr, "  %s\n", line);
		free(log);
	}
	assert_int_equal(rc, 0);
}

/* ---- requests and rows ------------------------------------------------------------- */

static void start_wf(struct tu_fixture *f, const char *type, const char *id, const char *input)
{
	char *body =
	    tu_fmt("{\"type\": \"%s\", \"workflow_id\": \"%s\", \"input\": %s}", type, id, input);

	assert_int_equal(tu_http(&f->sup, "POST", "/v1/workflows", body, NULL), 201);
	free(body);
}

static void wait_all(struct tu_fixture *f)
{
	json_t *body = NULL;

	assert_int_equal(tu_http(&f->sup, "GET", "/v1/wait?timeout=30", NULL, &body), 200);
	assert_false(json_is_true(json_object_get(body, "timed_out")));
	json_decref(body);
}

/* The workflow (NEW) of id, as GET /v1/workflows/ID gives it. */
static json_t *workflow(struct tu_fixture *f, const char *id)
{
	char *path = tu_fmt("/v1/workflows/%s", id);
	json_t *wf = NULL;

	assert_int_equal(tu_http(&f->sup, "GET", path, NULL, &wf), 200);
	assert_non_null(wf);
	free(path);
	return wf;
}

static const char *str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* assert_string_equal, which crashes on NULL, made safe for a member
 * that is not there. */
static void assert_str(const char *actual, const char *want)
{
	if (actual == NULL)
		fprintf(stderr, "missing; wanted \"%s\"\n", want);
	assert_non_null(actual);
	assert_string_equal(actual, want);
}

/* Prints a JSON value whose check failed, for the person reading. */
static void show(const char *what, const json_t *v)
{
	char *text = json_dumps(v, JSON_INDENT(1) | JSON_ENCODE_ANY);

	fprintf(stderr, "%s:\n%s\n", what, text != NULL ? text : "(null)");
	free(text);
}

/* Asserts that workflow id completed and returns its result (NEW). */
static json_t *completed(struct tu_fixture *f, const char *id)
{
	json_t *wf = workflow(f, id), *result;

	if (str(wf, "status") == NULL || strcmp(str(wf, "status"), "completed") != 0)
		show("not completed", wf);
	assert_str(str(wf, "status"), "completed");
	result = json_incref(json_object_get(wf, "result"));
	json_decref(wf);
	return result;
}

/* Asserts that workflow id failed with exactly error. */
static void failed_with(struct tu_fixture *f, const char *id, const char *error)
{
	json_t *wf = workflow(f, id);

	if (str(wf, "status") == NULL || strcmp(str(wf, "status"), "failed") != 0)
		show("not failed", wf);
	assert_str(str(wf, "status"), "failed");
	assert_non_null(str(wf, "error"));
	assert_string_equal(str(wf, "error"), error);
	json_decref(wf);
}

/* Asserts that workflow id failed with an error starting with prefix and
 * holding each of the substrings that follow (NULL-terminated). */
static void failed_like(struct tu_fixture *f, const char *id, const char *prefix, ...)
{
	json_t *wf = workflow(f, id);
	const char *error = str(wf, "error");
	const char *part;
	va_list ap;

	if (str(wf, "status") == NULL || strcmp(str(wf, "status"), "failed") != 0)
		show("not failed", wf);
	assert_str(str(wf, "status"), "failed");
	assert_non_null(error);
	if (strncmp(error, prefix, strlen(prefix)) != 0)
		fprintf(stderr, "error: %s\nwanted it to start with: %s\n", error, prefix);
	assert_int_equal(strncmp(error, prefix, strlen(prefix)), 0);
	va_start(ap, prefix);
	while ((part = va_arg(ap, const char *)) != NULL) {
		if (strstr(error, part) == NULL)
			fprintf(stderr, "error: %s\nlacks: %s\n", error, part);
		assert_non_null(strstr(error, part));
	}
	va_end(ap);
	json_decref(wf);
}

/* One integer from the state DB. */
static long long state_int(struct tu_fixture *f, const char *sql)
{
	char *path = tu_fmt("%s/state.db", f->dir);
	long long v = tu_sql_int(path, sql);

	free(path);
	return v;
}

/* How many history events of kind workflow id has. */
static long long events(struct tu_fixture *f, const char *id, const char *kind)
{
	char *sql = tu_fmt("SELECT count(*) FROM events WHERE kind = '%s' AND wf = (SELECT id FROM "
	                   "workflows WHERE workflow_id = '%s')",
	                   kind, id);
	long long n = state_int(f, sql);

	free(sql);
	return n;
}

/* The attempts of step 0 of workflow id, as the steps table has them. */
static long long attempts(struct tu_fixture *f, const char *id)
{
	char *sql = tu_fmt("SELECT attempt FROM steps WHERE seq = 0 AND wf = (SELECT id FROM "
	                   "workflows WHERE workflow_id = '%s')",
	                   id);
	long long n = state_int(f, sql);

	free(sql);
	return n;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- 1. success --------------------------------------------------------------------- */

/* The step's input (the template's) reaches stdin; stdout is the result;
 * the attempt's facts are in its variables; its cwd is the app
 * directory. */
static void test_success_echoes_input(void **state)
{
	struct tu_fixture *f = *state;
	char real[PATH_MAX], *want_dir;
	json_t *result, *s, *want_got;

	put(f, "echo.sh",
	    "in=$(cat)\n"
	    "printf '{\"got\": %s, \"attempt\": %s, \"step\": %s, \"key\": \"%s\", "
	    "\"data\": \"%s\", \"cwd\": \"%s\", \"heartbeat_set\": %s}' \"$in\" "
	    "\"$IDEM_ATTEMPT\" \"$IDEM_STEP\" \"$IDEM_IDEMPOTENCY_KEY\" \"$IDEM_DATA_DIR\" "
	    "\"$(pwd)\" \"${IDEM_HEARTBEAT+true}${IDEM_HEARTBEAT-false}\"\n");
	app(f, "\"echo\": {\"command\": [\"sh\", \"echo.sh\"]}",
	    "\"w\": {\"steps\": [{\"name\": \"s\", \"activity\": \"echo\", "
	    "\"input\": {\"x\": {\"$ref\": \"/input/x\"}, \"k\": {\"$ref\": \"/step/key\"}}}]}",
	    "");
	start(f, NULL);
	start_wf(f, "w", "S1", "{\"x\": {\"deep\": [1, \"two\"]}, \"unused\": true}");
	wait_all(f);
	result = completed(f, "S1");
	s = json_object_get(result, "s");
	want_got =
	    json_loads("{\"x\": {\"deep\": [1, \"two\"]}, \"k\": \"default/S1/0\"}", 0, NULL);
	if (!json_equal(json_object_get(s, "got"), want_got))
		show("result", result);
	assert_true(json_equal(json_object_get(s, "got"), want_got));
	assert_int_equal(json_integer_value(json_object_get(s, "attempt")), 1);
	assert_int_equal(json_integer_value(json_object_get(s, "step")), 0);
	assert_str(str(s, "key"), "default/S1/0");
	assert_false(json_is_true(json_object_get(s, "heartbeat_set")));
	assert_non_null(realpath(f->dir, real));
	assert_str(str(s, "data"), real);
	want_dir = tu_fmt("%s/app", real);
	assert_str(str(s, "cwd"), want_dir);
	/* The result is what the command printed, nothing added: 7 members. */
	assert_int_equal(json_object_size(s), 7);
	assert_int_equal(json_object_size(result), 1);
	assert_int_equal(attempts(f, "S1"), 1);
	assert_int_equal(events(f, "S1", "started"), 1);
	assert_int_equal(events(f, "S1", "completed"), 1);
	free(want_dir);
	json_decref(want_got);
	json_decref(result);

	/* Empty stdout is the result {}. */
	stop(f);
	app(f, "\"quiet\": {\"command\": [\"sh\", \"-c\", \"cat >/dev/null\"]}",
	    ONE_STEP("w", "quiet"), "");
	start(f, NULL);
	start_wf(f, "w", "S2", "{}");
	wait_all(f);
	result = completed(f, "S2");
	assert_true(json_is_object(json_object_get(result, "s")));
	assert_int_equal(json_object_size(json_object_get(result, "s")), 0);
	json_decref(result);
	stop(f);
}

/* ---- 2. retryable, 3. non-retryable ------------------------------------------------ */

/* Exit 75 twice, then a result at attempt 3; each failed attempt's
 * stderr is in the history. */
static void test_retryable_then_success(void **state)
{
	struct tu_fixture *f = *state;
	json_t *result;

	put(f, "flaky.sh",
	    "cat >/dev/null\n"
	    "if [ \"$IDEM_ATTEMPT\" -lt 3 ]; then echo \"not yet $IDEM_ATTEMPT\" >&2; exit 75; fi\n"
	    "echo \"{\\\"n\\\": $IDEM_ATTEMPT}\"\n");
	app(f,
	    "\"flaky\": {\"command\": [\"sh\", \"flaky.sh\"], \"retry\": {\"maximum_attempts\": "
	    "5}}",
	    ONE_STEP("w", "flaky"), "");
	start(f, NULL);
	start_wf(f, "w", "R1", "{}");
	wait_all(f);
	result = completed(f, "R1");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(result, "s"), "n")), 3);
	json_decref(result);
	assert_int_equal(attempts(f, "R1"), 3);
	assert_int_equal(events(f, "R1", "started"), 3);
	assert_int_equal(events(f, "R1", "failed"), 2);
	assert_int_equal(events(f, "R1", "completed"), 1);
	assert_int_equal(
	    state_int(f, "SELECT count(*) FROM events WHERE kind = 'failed' AND "
	                 "json_extract(detail, '$.error_type') = 'CommandFailed' AND "
	                 "json_extract(detail, '$.retryable') = 1 AND "
	                 "json_extract(detail, '$.message') = 'activity flaky: `sh flaky.sh`: exit "
	                 "75: not yet ' || attempt"),
	    2);
	assert_int_equal(state_int(f, "SELECT count(*) FROM events WHERE kind = 'stderr' AND "
	                              "json_extract(detail, '$.stderr') = 'not yet ' || attempt "
	                              "|| char(10)"),
	                 2);
	stop(f);
}

/* Exit 65 with a named error fails at once; so does exit 75 with an
 * error type the activity lists as non_retryable. */
static void test_non_retryable(void **state)
{
	struct tu_fixture *f = *state;

	put(f, "decline.sh",
	    "echo '{\"error\": {\"type\": \"CardDeclined\", \"message\": \"no\"}}'\nexit 65\n");
	put(f, "refuse.sh",
	    "echo '{\"error\": {\"type\": \"Refused\", \"message\": \"never\"}}'\nexit 75\n");
	app(f,
	    "\"decline\": {\"command\": [\"sh\", \"decline.sh\"], \"retry\": "
	    "{\"maximum_attempts\": 5}},\n"
	    "\"refuse\": {\"command\": [\"sh\", \"refuse.sh\"], \"non_retryable\": [\"Refused\"], "
	    "\"retry\": {\"maximum_attempts\": 5}}",
	    ONE_STEP("w", "decline") ", " ONE_STEP("v", "refuse"), "");
	start(f, NULL);
	start_wf(f, "w", "N1", "{}");
	start_wf(f, "v", "N2", "{}");
	wait_all(f);
	failed_with(f, "N1", "activity decline (step 0) failed after 1 attempt: CardDeclined: no");
	assert_int_equal(attempts(f, "N1"), 1);
	assert_int_equal(events(f, "N1", "started"), 1);
	failed_with(f, "N2", "activity refuse (step 0) failed after 1 attempt: Refused: never");
	assert_int_equal(attempts(f, "N2"), 1);
	assert_int_equal(events(f, "N2", "started"), 1);
	stop(f);
}

/* ---- 4. not found, 5. bad output, 6. too large ------------------------------------- */

static void test_command_not_found(void **state)
{
	struct tu_fixture *f = *state;
	json_t *result;

	app(f,
	    "\"missing\": {\"command\": [\"no-such-program-idem-test\", \"arg\"], \"retry\": "
	    "{\"maximum_attempts\": 5}},\n"
	    "\"good\": {\"command\": [\"sh\", \"-c\", \"cat\"]}",
	    ONE_STEP("bad", "missing") ", " ONE_STEP("good", "good"), "");
	start(f, NULL);
	start_wf(f, "bad", "M1", "{}");
	wait_all(f);
	failed_like(f, "M1", "activity missing (step 0) failed after 1 attempt: CommandNotFound: ",
	            "`no-such-program-idem-test arg`", "idem.json", "activities.missing.command",
	            NULL);
	assert_int_equal(attempts(f, "M1"), 1);
	assert_int_equal(events(f, "M1", "started"), 1);
	/* The supervisor and its workers go on. */
	assert_int_equal(kill(f->sup.pid, 0), 0);
	start_wf(f, "good", "M2", "{\"after\": \"missing\"}");
	wait_all(f);
	result = completed(f, "M2");
	assert_str(str(json_object_get(result, "s"), "after"), "missing");
	json_decref(result);
	stop(f);
}

static void test_bad_output(void **state)
{
	struct tu_fixture *f = *state;

	app(f,
	    "\"text\": {\"command\": [\"sh\", \"-c\", \"echo not json\"], \"retry\": "
	    "{\"maximum_attempts\": 5}},\n"
	    "\"array\": {\"command\": [\"sh\", \"-c\", \"echo [1]\"], \"retry\": "
	    "{\"maximum_attempts\": 5}}",
	    ONE_STEP("text", "text") ", " ONE_STEP("array", "array"), "");
	start(f, NULL);
	start_wf(f, "text", "B1", "{}");
	start_wf(f, "array", "B2", "{}");
	wait_all(f);
	failed_like(f, "B1", "activity text (step 0) failed after 1 attempt: BadOutput: ",
	            "`sh -c echo not json` exited 0, but its stdout is not JSON",
	            "it starts \"not json", NULL);
	assert_int_equal(attempts(f, "B1"), 1);
	failed_like(f, "B2",
	            "activity array (step 0) failed after 1 attempt: BadOutput: ", "an array",
	            NULL);
	assert_int_equal(attempts(f, "B2"), 1);
	stop(f);
}

/* 100 MiB on stdout: cut at 1 MiB, failed for good, in seconds. */
static void test_output_too_large(void **state)
{
	struct tu_fixture *f = *state;
	int64_t t0;

	put(f, "flood.sh", "head -c 104857600 /dev/zero | tr '\\000' x\n");
	app(f,
	    "\"flood\": {\"command\": [\"sh\", \"flood.sh\"], \"retry\": {\"maximum_attempts\": "
	    "5}}",
	    ONE_STEP("w", "flood"), "");
	start(f, NULL);
	t0 = now_ms();
	start_wf(f, "w", "L1", "{}");
	wait_all(f);
	fprintf(stderr, "test_output_too_large: closed in %lld ms\n", (long long)(now_ms() - t0));
	assert_true(now_ms() - t0 < 10000);
	failed_like(f, "L1", "activity flood (step 0) failed after 1 attempt: OutputTooLarge: ",
	            "more than 1048576 bytes on stdout", NULL);
	assert_int_equal(attempts(f, "L1"), 1);
	assert_int_equal(events(f, "L1", "started"), 1);
	stop(f);
}

/* ---- 7. never exits ------------------------------------------------------------------ */

/* Processes whose argv is exactly "sleep MARKER". */
static int sleepers(const char *marker)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char path[300], buf[256];
		const char *base;
		size_t len;
		FILE *fp;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		if ((fp = fopen(path, "rb")) == NULL)
			continue;
		len = fread(buf, 1, sizeof(buf) - 1, fp);
		fclose(fp);
		buf[len] = '\0';
		base = strrchr(buf, '/') != NULL ? strrchr(buf, '/') + 1 : buf;
		if (strcmp(base, "sleep") == 0 && strlen(buf) + 1 < len &&
		    strcmp(buf + strlen(buf) + 1, marker) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* A command that never exits (and leaves a child of its own behind) is
 * killed with its group at "timeout", retried, and fails the workflow
 * with StartToCloseTimeout; none of its processes is left. */
static void test_never_exits(void **state)
{
	struct tu_fixture *f = *state;
	char *marker = tu_fmt("1000.%ld", (long)getpid());
	char *acts =
	    tu_fmt("\"hang\": {\"command\": [\"sh\", \"-c\", \"sleep %s & exec sleep %s\"], "
	           "\"timeout\": \"300ms\", \"retry\": {\"maximum_attempts\": 2}}",
	           marker, marker);
	int64_t deadline;
	int seen = 0, left;

	assert_int_equal(sleepers(marker), 0);
	app(f, acts, ONE_STEP("w", "hang"), "");
	start(f, NULL);
	start_wf(f, "w", "H1", "{}");
	/* The scan sees them while they run: it can fail. */
	for (deadline = now_ms() + 5000; now_ms() < deadline && seen < 2; tu_sleep_ms(10))
		seen = sleepers(marker);
	assert_int_equal(seen, 2);
	wait_all(f);
	failed_like(f, "H1",
	            "activity hang (step 0) failed after 2 attempts: StartToCloseTimeout: ", NULL);
	assert_int_equal(attempts(f, "H1"), 2);
	assert_int_equal(events(f, "H1", "started"), 2);
	assert_int_equal(events(f, "H1", "timed_out"), 2);
	assert_int_equal(state_int(f,
	                           "SELECT count(*) FROM events WHERE kind = 'timed_out' AND "
	                           "json_extract(detail, '$.error_type') = 'StartToCloseTimeout'"),
	                 2);
	for (deadline = now_ms() + 2000; (left = sleepers(marker)) > 0 && now_ms() < deadline;)
		tu_sleep_ms(20);
	if (left > 0)
		fprintf(stderr, "%d process(es) `sleep %s` left 2 s after the workflow failed\n",
		        left, marker);
	assert_int_equal(left, 0);
	stop(f);
	free(acts);
	free(marker);
}

/* ---- 8. stderr ---------------------------------------------------------------------- */

static void test_stderr_recorded(void **state)
{
	struct tu_fixture *f = *state;
	char *marker = tu_fmt("oops-%ld-%lld", (long)getpid(), (long long)now_ms());
	char *script = tu_fmt("echo '%s' >&2\necho '{}'\n", marker);
	char *sql;

	put(f, "noisy.sh", script);
	/* 20,000 bytes of 'e', then the last 13 bytes, on stderr. */
	put(f, "loud.sh",
	    "head -c 20000 /dev/zero | tr '\\000' e >&2\nprintf 'END-OF-STDERR' >&2\necho '{}'\n");
	app(f,
	    "\"noisy\": {\"command\": [\"sh\", \"noisy.sh\"]},\n"
	    "\"loud\": {\"command\": [\"sh\", \"loud.sh\"]}",
	    ONE_STEP("noisy", "noisy") ", " ONE_STEP("loud", "loud"), "");
	start(f, NULL);
	start_wf(f, "noisy", "E1", "{}");
	start_wf(f, "loud", "E2", "{}");
	wait_all(f);
	json_decref(completed(f, "E1"));
	json_decref(completed(f, "E2"));
	assert_int_equal(events(f, "E1", "stderr"), 1);
	sql =
	    tu_fmt("SELECT count(*) FROM events WHERE kind = 'stderr' AND seq = 0 AND attempt = 1 "
	           "AND json_extract(detail, '$.stderr') = '%s' || char(10) AND wf = (SELECT id "
	           "FROM workflows WHERE workflow_id = 'E1')",
	           marker);
	assert_int_equal(state_int(f, sql), 1);
	free(sql);
	assert_int_equal(events(f, "E2", "stderr"), 1);
	/* The tail: the last 4096 bytes, all of them, ending with the end. */
	assert_int_equal(state_int(f,
	                           "SELECT length(CAST(json_extract(detail, '$.stderr') AS BLOB)) "
	                           "FROM events WHERE kind = 'stderr' AND wf = (SELECT id FROM "
	                           "workflows WHERE workflow_id = 'E2')"),
	                 4096);
	assert_int_equal(state_int(f,
	                           "SELECT json_extract(detail, '$.stderr') = "
	                           "substr(replace(hex(zeroblob(4083)), '00', 'ee'), 1, 4083) "
	                           "|| 'END-OF-STDERR' FROM events WHERE kind = 'stderr' AND wf = "
	                           "(SELECT id FROM workflows WHERE workflow_id = 'E2')"),
	                 1);
	stop(f);
	free(script);
	free(marker);
}

/* ---- 9. heartbeat ------------------------------------------------------------------- */

/* Attempt 1 heartbeats, then fails retryably; attempt 2 finds the
 * details in IDEM_HEARTBEAT (unset for attempt 1) and returns them. */
static void test_heartbeat_reaches_next_attempt(void **state)
{
	struct tu_fixture *f = *state;
	json_t *result, *want;

	put(f, "hb.sh",
	    "if [ \"$IDEM_ATTEMPT\" = 1 ]; then\n"
	    "  if [ -n \"${IDEM_HEARTBEAT+set}\" ]; then\n"
	    "    echo '{\"error\": {\"type\": \"HeartbeatSet\", \"message\": \"at attempt 1\"}}'\n"
	    "    exit 65\n"
	    "  fi\n"
	    "  idem-heartbeat '{\"done\":3}' || exit 65\n"
	    "  exit 75\n"
	    "fi\n"
	    "printf '%s' \"$IDEM_HEARTBEAT\"\n");
	app(f,
	    "\"hb\": {\"command\": [\"sh\", \"hb.sh\"], \"retry\": {\"maximum_attempts\": "
	    "3}}",
	    ONE_STEP("w", "hb"), "");
	start(f, NULL);
	start_wf(f, "w", "HB1", "{}");
	wait_all(f);
	result = completed(f, "HB1");
	want = json_loads("{\"s\": {\"done\": 3}}", 0, NULL);
	if (!json_equal(result, want))
		show("result", result);
	assert_true(json_equal(result, want));
	assert_int_equal(attempts(f, "HB1"), 2);
	assert_int_equal(events(f, "HB1", "heartbeat"), 1);
	assert_int_equal(state_int(f, "SELECT count(*) FROM events WHERE kind = 'heartbeat' AND "
	                              "attempt = 1 AND json_extract(detail, '$.details.done') = 3"),
	                 1);
	json_decref(want);
	json_decref(result);
	stop(f);
}

/* ---- 10. crash point ---------------------------------------------------------------- */

/* The fault plan kills attempt 1 at the activity's own point p_one: the
 * worker is lost, attempt 2 (no plan) completes. Outside idem the same
 * script runs to its end: idem-point returns 0. */
static void test_crash_point(void **state)
{
	struct tu_fixture *f = *state;
	const char *extra[] = {"--fault-seed=1", "--fault-kill-rate=1",
	                       "--fault-kill-points=before_effect,after_effect,after_commit",
	                       "--fault-max-attempt=1", NULL};
	char *point = tu_fmt("%s", tu_bin("idem-point"));
	char *by_hand = NULL, *out = NULL;
	char *argv[4] = {point, "p_one", NULL, NULL};
	json_t *result;

	put(f, "crash.sh",
	    "cat >/dev/null\nidem-point p_one\necho \"{\\\"attempt\\\": ${IDEM_ATTEMPT:-0}}\"\n");
	app(f,
	    "\"crash\": {\"command\": [\"sh\", \"crash.sh\"], \"points\": [\"p_one\"], \"retry\": "
	    "{\"maximum_attempts\": 3}}",
	    ONE_STEP("w", "crash"), "");
	start(f, extra);
	start_wf(f, "w", "C1", "{}");
	wait_all(f);
	result = completed(f, "C1");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(result, "s"), "attempt")), 2);
	json_decref(result);
	assert_int_equal(attempts(f, "C1"), 2);
	assert_int_equal(events(f, "C1", "started"), 2);
	assert_int_equal(events(f, "C1", "fault_injected"), 1);
	assert_int_equal(state_int(f,
	                           "SELECT count(*) FROM events WHERE kind = 'fault_injected' AND "
	                           "attempt = 1 AND json_extract(detail, '$.kind') = 'kill' AND "
	                           "json_extract(detail, '$.point') = 'p_one'"),
	                 1);
	assert_int_equal(events(f, "C1", "worker_lost"), 1);
	assert_int_equal(state_int(f, "SELECT count(*) FROM events WHERE kind = 'worker_lost' AND "
	                              "attempt = 1 AND json_extract(detail, '$.error_type') = "
	                              "'WorkerLost'"),
	                 1);
	assert_int_equal(events(f, "C1", "failed"), 0);
	/* The line idem-point said before the kill, on idem's log. */
	assert_int_equal(tu_count_in_file(f->sup.log, "msg=\"injected fault: kill\" point=p_one"),
	                 1);
	stop(f);

	/* By hand, outside idem: no IDEM_* variables. */
	assert_null(getenv("IDEM_KILL_AT"));
	assert_null(getenv("IDEM_CONTROL_FD"));
	assert_null(getenv("IDEM_PGID"));
	assert_int_equal(tu_run(argv, NULL, 5000, &out), 0);
	assert_string_equal(out, "");
	free(out);
	by_hand = tu_fmt("cd '%s/app' && PATH=\"$(dirname '%s'):$PATH\" && export PATH && "
	                 "echo '{}' | sh crash.sh",
	                 f->dir, point);
	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = by_hand;
	assert_int_equal(tu_run(argv, NULL, 5000, &out), 0);
	assert_string_equal(out, "{\"attempt\": 0}\n");
	free(out);
	free(by_hand);
	free(point);
}

/* ---- 11. a bad idem.json ----------------------------------------------------------- */

/* Starts the supervisor on the app as it is, which must refuse it: exit 2
 * within 10 s. Returns its log (malloc'd). */
static char *refused(struct tu_fixture *f)
{
	char *appflag = tu_fmt("--app=%s/app", f->dir);
	const char *argv[] = {appflag, NULL};
	char *log;
	int rc;

	assert_int_equal(tu_sup_spawn(&f->sup, f->dir, argv, NULL), 0);
	rc = tu_wait_exit(f->sup.pid, 10000);
	if (rc < 0)
		tu_sup_kill9(&f->sup);
	f->sup.pid = 0;
	free(appflag);
	log = tu_read_file(f->sup.log);
	assert_non_null(log);
	if (rc != 2) {
		fprintf(stderr, "exit %d; log:\n%s\n", rc, log);
		free(log);
		fail_msg("the supervisor exited %d on a bad idem.json, not 2", rc);
	}
	/* The next start has a log of its own. */
	unlink(f->sup.log);
	return log;
}

static void assert_in(const char *text, const char *part)
{
	if (strstr(text, part) == NULL)
		fprintf(stderr, "lacks \"%s\":\n%s\n", part, text);
	assert_non_null(strstr(text, part));
}

static void test_bad_app_file(void **state)
{
	struct tu_fixture *f = *state;
	char real[PATH_MAX], *file, *want;
	char *log;

	assert_non_null(realpath(f->dir, real));
	file = tu_fmt("%s/app/idem.json", real);

	/* (a) A syntax error: jansson stops at the comma, line 3, column 16. */
	put(f, "idem.json",
	    "{\"name\": \"t\",\n"
	    " \"activities\": {\"a\": {\"command\": [\"true\"]}},\n"
	    " \"workflows\": {,}\n"
	    "}\n");
	log = refused(f);
	want = tu_fmt("%s:3:16: ", file);
	assert_in(log, want);
	free(want);
	free(log);

	/* (b) A step naming an activity the app does not have. */
	app(f, "\"a\": {\"command\": [\"true\"]}",
	    "\"pay\": {\"steps\": [{\"name\": \"s\", \"activity\": \"charge_card\"}]}", "");
	log = refused(f);
	assert_in(log, file);
	assert_in(log, "workflows.pay.steps[0]");
	assert_in(log, "charge_card");
	free(log);

	/* (c) A member an activity does not have. */
	app(f, "\"a\": {\"command\": [\"true\"], \"tiemout\": \"1s\"}", ONE_STEP("w", "a"), "");
	log = refused(f);
	want = tu_fmt("%s: activities.a: unknown member \"tiemout\" (known: command, naive, "
	              "points, timeout, heartbeat, peer, retry, non_retryable)",
	              file);
	assert_in(log, want);
	free(want);
	free(log);

	/* And the same directory, fixed, starts. */
	app(f, "\"a\": {\"command\": [\"true\"], \"timeout\": \"1s\"}", ONE_STEP("w", "a"), "");
	start(f, NULL);
	stop(f);
	free(file);
}

/* ---- 12. the check ------------------------------------------------------------------ */

/* The check's lines of a declared kind are violations; the others (the
 * summary) are not. */
static void test_check_violations(void **state)
{
	struct tu_fixture *f = *state;
	json_t *r = NULL, *v;

	put(f, "check.sh",
	    "[ -f \"$IDEM_STATE_DB\" ] || { echo \"no state DB: $IDEM_STATE_DB\" >&2; exit 4; }\n"
	    "echo 'duplicated x1: twice'\necho 'summary line'\nexit 1\n");
	app(f, "\"a\": {\"command\": [\"sh\", \"-c\", \"cat\"]}", ONE_STEP("w", "a"),
	    ",\n \"check\": {\"command\": [\"sh\", \"check.sh\"], \"kinds\": [\"duplicated\"]}");
	start(f, NULL);
	start_wf(f, "w", "K1", "{}");
	wait_all(f);
	assert_int_equal(tu_http(&f->sup, "GET", "/v1/check", NULL, &r), 200);
	if (json_integer_value(json_object_get(json_object_get(r, "counts"), "duplicated")) != 1)
		show("check report", r);
	assert_false(json_is_true(json_object_get(r, "ok")));
	assert_true(json_is_true(json_object_get(r, "quiescent")));
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(r, "counts"), "duplicated")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "counts"), "check")),
	                 0);
	v = json_object_get(r, "violations");
	assert_int_equal(json_array_size(v), 1);
	assert_str(str(json_array_get(v, 0), "kind"), "duplicated");
	/* Listed as the line, or the line after its kind. */
	assert_non_null(str(json_array_get(v, 0), "message"));
	assert_in(str(json_array_get(v, 0), "message"), "x1: twice");
	assert_null(strstr(str(json_array_get(v, 0), "message"), "summary"));
	json_decref(r);
	stop(f);
}

/* A check that exits neither 0 nor 1 could not check: 500, naming it. */
static void test_check_cannot_run(void **state)
{
	struct tu_fixture *f = *state;
	json_t *r = NULL;
	const char *error;

	put(f, "check.sh", "echo 'cannot open ledger-xyz' >&2\nexit 3\n");
	app(f, "\"a\": {\"command\": [\"sh\", \"-c\", \"cat\"]}", ONE_STEP("w", "a"),
	    ",\n \"check\": {\"command\": [\"sh\", \"check.sh\"], \"kinds\": [\"duplicated\"]}");
	start(f, NULL);
	assert_int_equal(tu_http(&f->sup, "GET", "/v1/check", NULL, &r), 500);
	assert_non_null(r);
	error = str(r, "error");
	assert_non_null(error);
	assert_in(error, "check command `sh check.sh`");
	assert_in(error, "idem.json");
	assert_in(error, "exit 3");
	assert_in(error, "cannot open ledger-xyz");
	json_decref(r);
	/* The supervisor goes on. */
	assert_int_equal(tu_http(&f->sup, "GET", "/v1/health", NULL, NULL), 200);
	stop(f);
}

/* A request sent and left to be answered later: the connected socket. */
static int send_request(struct tu_fixture *f, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char *req = tu_fmt("GET %s HTTP/1.1\r\nHost: idem\r\nConnection: close\r\n\r\n", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sup.sock);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	free(req);
	return fd;
}

/* Whether fd has something to read within ms. */
static int answered(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms) == 1;
}

/* The whole reply on fd (closed), as text. */
static char *read_reply(int fd)
{
	char *text = NULL;
	size_t len = 0;
	char buf[4096];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		text = realloc(text, len + (size_t)n + 1);
		assert_non_null(text);
		memcpy(text + len, buf, (size_t)n);
		len += (size_t)n;
		text[len] = '\0';
	}
	close(fd);
	assert_non_null(text);
	return text;
}

/* The checker runs beside the loop: while a check waits on a file, the
 * supervisor answers health, takes a start and runs it to the end. Two
 * check requests that come meanwhile wait for a check that starts after
 * them, and share it: two runs of the check command in all. */
static void test_check_beside_the_loop(void **state)
{
	struct tu_fixture *f = *state;
	char *runs = tu_fmt("%s/app/runs", f->dir), *release = tu_fmt("%s/app/release", f->dir);
	char *script = tu_fmt("echo run >> '%s'\nwhile [ ! -e '%s' ]; do sleep 0.02; done\n"
	                      "exit 0\n",
	                      runs, release);
	char *reply[3], *count;
	int c[3];

	put(f, "check.sh", script);
	app(f, "\"a\": {\"command\": [\"sh\", \"-c\", \"cat\"]}", ONE_STEP("w", "a"),
	    ",\n \"check\": {\"command\": [\"sh\", \"check.sh\"], \"kinds\": "
	    "[\"duplicated\"]}");
	start(f, NULL);
	c[0] = send_request(f, "/v1/check");
	for (int ms = 0; access(runs, F_OK) != 0 && ms < 20000; ms += 10)
		tu_sleep_ms(10);
	assert_int_equal(access(runs, F_OK), 0); /* the check command is running */
	c[1] = send_request(f, "/v1/check");
	c[2] = send_request(f, "/v1/check");
	assert_int_equal(tu_http(&f->sup, "GET", "/v1/health", NULL, NULL), 200);
	start_wf(f, "w", "K1", "{\"n\": 1}");
	wait_all(f);
	for (int i = 0; i < 3; i++)
		assert_false(answered(c[i], 0));
	assert_int_equal(tu_write_file(release, "go"), 0);
	for (int i = 0; i < 3; i++) {
		assert_true(answered(c[i], 20000));
		reply[i] = read_reply(c[i]);
		assert_non_null(strstr(reply[i], "HTTP/1.1 200"));
		assert_non_null(strstr(reply[i], "\"ok\":true"));
		free(reply[i]);
	}
	count = tu_read_file(runs);
	assert_string_equal(count, "run\nrun\n"); /* the first, then one for both others */
	free(count);
	free(script);
	free(runs);
	free(release);
	stop(f);
}

/* ---- 13. a step's own options ---------------------------------------------------- */

/* A step's own retry and timeout win over its activity's: the same
 * activity (30 s, unlimited attempts) times out at 300 ms twice in step
 * "short", then fails the workflow, where step "long" would have waited. */
static void test_step_options(void **state)
{
	struct tu_fixture *f = *state;
	const char *acts = "\"slow\": {\"command\": [\"sh\", \"-c\", \"exec sleep 30\"], "
	                   "\"timeout\": \"30s\"}";
	const char *wfs = "\"w\": {\"steps\": ["
	                  "{\"name\": \"short\", \"activity\": \"slow\", \"timeout\": \"300ms\","
	                  " \"retry\": {\"maximum_attempts\": 2, \"initial_interval\": \"10ms\"}},"
	                  "{\"name\": \"long\", \"activity\": \"slow\"}]}";
	int64_t t0;

	app(f, acts, wfs, "");
	start(f, NULL);
	t0 = now_ms();
	start_wf(f, "w", "S1", "{}");
	wait_all(f);
	failed_like(f, "S1",
	            "activity slow (step 0) failed after 2 attempts: StartToCloseTimeout: "
	            "start_to_close timeout: no result within 300 ms",
	            NULL);
	assert_true(now_ms() - t0 < 10000);
	assert_int_equal(events(f, "S1", "timed_out"), 2);
	stop(f);
}

/* A step's own options are checked at start-up like the rest. */
static void test_step_options_checked(void **state)
{
	struct tu_fixture *f = *state;
	char *log;

	app(f, "\"a\": {\"command\": [\"true\"]}",
	    "\"w\": {\"steps\": [{\"name\": \"s\", \"activity\": \"a\", \"timeout\": \"soon\"}]}",
	    "");
	log = refused(f);
	assert_in(log, "workflows.w.steps[0].timeout: \"soon\" is not a duration of 1ms..24h");
	free(log);
}

/* ---- 14. a saga, and a check in SQL ------------------------------------------------- */

/* A step that fails for good after an earlier one completed: the
 * earlier one's compensation runs, and the workflow fails with no net
 * effect (the ledger holds the effect and its undoing), saying so. */
static void test_saga(void **state)
{
	struct tu_fixture *f = *state;
	char *ledger = tu_fmt("%s/ledger.txt", f->dir), *text;
	const char *acts =
	    "\"add\": {\"command\": [\"sh\", \"-c\", \"echo \\\"+ $IDEM_IDEMPOTENCY_KEY\\\" >> "
	    "\\\"$IDEM_DATA_DIR/ledger.txt\\\"; echo '{\\\"id\\\": 7}'\"]},"
	    "\"undo\": {\"command\": [\"sh\", \"-c\", \"echo \\\"- $(cat)\\\" >> "
	    "\\\"$IDEM_DATA_DIR/ledger.txt\\\"\"]},"
	    "\"refuse\": {\"command\": [\"sh\", \"-c\", \"echo '{\\\"error\\\": {\\\"type\\\": "
	    "\\\"Refused\\\", \\\"message\\\": \\\"no\\\"}}'; exit 65\"]}";
	const char *wfs = "\"w\": {\"steps\": ["
	                  "{\"name\": \"first\", \"activity\": \"add\", \"compensate\": "
	                  "{\"activity\": \"undo\", \"input\": {\"id\": "
	                  "{\"$ref\": \"/steps/first/result/id\"}}}},"
	                  "{\"name\": \"second\", \"activity\": \"refuse\"}]}";

	app(f, acts, wfs, "");
	start(f, NULL);
	start_wf(f, "w", "G1", "{}");
	wait_all(f);
	failed_like(f, "G1", "activity refuse (step 1) failed after 1 attempt: Refused: no",
	            "; compensated: first", NULL);
	assert_int_equal(events(f, "G1", "started"), 3); /* first, second, the undo */
	text = tu_read_file(ledger);
	assert_non_null(text);
	assert_str(text, "+ default/G1/0\n- {\"id\":7}\n");
	free(text);
	free(ledger);
	stop(f);
}

/* check.sql: each row of a query is a violation of its kind. */
static void test_check_sql(void **state)
{
	struct tu_fixture *f = *state;
	json_t *r = NULL, *v;

	app(f, "\"a\": {\"command\": [\"sh\", \"-c\", \"cat >/dev/null\"]}", ONE_STEP("w", "a"),
	    ",\n \"check\": {\"sql\": [{\"kind\": \"too_odd\", \"query\": \"SELECT 'workflow ' || "
	    "workflow_id || ' is odd', namespace || '/' || workflow_id FROM main.workflows "
	    "WHERE workflow_id LIKE 'odd%'\"}]}");
	start(f, NULL);
	start_wf(f, "w", "odd1", "{}");
	start_wf(f, "w", "even1", "{}");
	wait_all(f);
	assert_int_equal(tu_http(&f->sup, "GET", "/v1/check", NULL, &r), 200);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(r, "counts"), "too_odd")), 1);
	v = json_array_get(json_object_get(r, "violations"), 0);
	assert_str(str(v, "kind"), "too_odd");
	assert_str(str(v, "message"), "workflow odd1 is odd");
	assert_str(json_string_value(json_array_get(json_object_get(v, "workflows"), 0)),
	           "default/odd1");
	json_decref(r);
	stop(f);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, tu_fixture_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_success_echoes_input),
	    T(test_retryable_then_success),
	    T(test_non_retryable),
	    T(test_command_not_found),
	    T(test_bad_output),
	    T(test_output_too_large),
	    T(test_never_exits),
	    T(test_step_options),
	    T(test_step_options_checked),
	    T(test_saga),
	    T(test_check_sql),
	    T(test_stderr_recorded),
	    T(test_heartbeat_reaches_next_attempt),
	    T(test_crash_point),
	    T(test_bad_app_file),
	    T(test_check_violations),
	    T(test_check_cannot_run),
	    T(test_check_beside_the_loop),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

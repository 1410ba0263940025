/* test_api.c — the control API's answers to bad requests, long-polls that
 * time out, and clients that hang up during a long-poll. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

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

static pid_t worker_pid(void)
{
	json_t *stats = NULL;
	pid_t pid = 0;

	for (int i = 0; i < 200 && pid == 0; i++) {
		tu_http(&sup, "GET", "/v1/stats", NULL, &stats);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_json),
	    cmocka_unit_test(test_missing_fields),
	    cmocka_unit_test(test_unknown_things),
	    cmocka_unit_test(test_bad_parameters),
	    cmocka_unit_test(test_conflicting_start),
	    cmocka_unit_test(test_too_large),
	    cmocka_unit_test(test_wait_timeout_and_vanishing_client),
	    cmocka_unit_test(test_metrics),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

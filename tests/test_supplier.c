/* test_supplier.c — the real idem-supplier in a temporary directory: an
 * order and its replay by Idempotency-Key, a key reused with another body,
 * bad requests, the listing, a ledger that survives a restart, and the
 * faults of the Idem-Fault header. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "exitcodes.h"
#include "httpc.h"
#include "testutil.h"

#define ERRLEN 512
#define ORDER_BODY "{\"product_id\":\"123456\",\"quantity\":1000}"

struct sup {
	char *dir;
	char *sock;
	char *db;
	char *env;
	char *log;
	char *bin;
	pid_t pid;
};

static int setup(void **state)
{
	struct sup *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->dir = tu_tmpdir("supplier");
	assert_non_null(s->dir);
	s->sock = tu_fmt("%s/run/supplier.sock", s->dir);
	s->db = tu_fmt("%s/data/supplier.db", s->dir);
	s->env = tu_fmt("%s/test.env", s->dir);
	s->log = tu_fmt("%s/supplier.log", s->dir);
	s->bin = strdup(tu_bin("idem-supplier"));
	assert_int_equal(tu_write_file(s->env, "# empty: defaults and flags only\n"), 0);
	s->pid = -1;
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct sup *s = *state;

	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		tu_wait_exit(s->pid, 5000);
	}
	tu_rmrf(s->dir);
	free(s->dir);
	free(s->sock);
	free(s->db);
	free(s->env);
	free(s->log);
	free(s->bin);
	free(s);
	return 0;
}

static void sup_start(struct sup *s)
{
	char *const argv[] = {s->bin,  "--env",
	                      s->env,  "--supplier-socket",
	                      s->sock, "--supplier-database",
	                      s->db,   "--log-level",
	                      "debug", NULL};

	s->pid = tu_spawn(argv, NULL, s->log);
	assert_true(s->pid > 0);
	if (tu_wait_for_socket(s->sock, 10000) != 0) {
		char *log = tu_read_file(s->log);
		fail_msg("idem-supplier did not listen on %s; log:\n%s", s->sock, log ? log : "");
	}
}

/* SIGTERM: exit 0, socket file removed. */
static void sup_stop(struct sup *s)
{
	struct stat st;

	assert_int_equal(kill(s->pid, SIGTERM), 0);
	assert_int_equal(tu_wait_exit(s->pid, 10000), 0);
	s->pid = -1;
	assert_int_not_equal(stat(s->sock, &st), 0);
}

/* Sends a request; returns the status and the parsed body (new ref). */
static int call(struct sup *s, const char *method, const char *path, const char *key,
                const char *body, json_t **doc)
{
	char header[512];
	const char *headers[] = {header, NULL};
	struct httpc_response r;
	char err[ERRLEN] = "";
	json_error_t e;

	snprintf(header, sizeof(header), "Idempotency-Key: %s", key != NULL ? key : "");
	if (httpc_request(s->sock, method, path, key != NULL ? headers : NULL, body,
	                  body != NULL ? strlen(body) : 0, 5000, &r, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	*doc = json_loadb(r.body, r.body_len, 0, &e);
	if (*doc == NULL)
		fail_msg("not JSON (%s): %s", e.text, r.body);
	httpc_response_free(&r);
	return r.status;
}

static int post(struct sup *s, const char *key, const char *body, json_t **doc)
{
	return call(s, "POST", "/orders", key, body, doc);
}

static const char *str(const json_t *doc, const char *name)
{
	const char *v = json_string_value(json_object_get(doc, name));

	if (v == NULL)
		fail_msg("no string \"%s\" in the answer", name);
	return v;
}

static void assert_error_contains(const json_t *doc, const char *frag)
{
	const char *msg = str(doc, "error");

	if (strstr(msg, frag) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", msg, frag);
}

static size_t order_count(struct sup *s)
{
	json_t *doc = NULL;
	size_t n;

	assert_int_equal(call(s, "GET", "/orders", NULL, NULL, &doc), 200);
	assert_true(json_is_array(json_object_get(doc, "orders")));
	n = json_array_size(json_object_get(doc, "orders"));
	json_decref(doc);
	return n;
}

static void test_order_then_replay(void **state)
{
	struct sup *s = *state;
	json_t *a = NULL, *b = NULL, *c = NULL, *list = NULL;
	json_t *o = NULL; /* borrowed */

	sup_start(s);
	assert_int_equal(post(s, "default/A12/1", ORDER_BODY, &a), 201);
	assert_string_equal(str(a, "supplier_order_id"), "SO-1");
	assert_string_equal(str(a, "product_id"), "123456");
	assert_int_equal(json_integer_value(json_object_get(a, "quantity")), 1000);
	assert_true(json_is_false(json_object_get(a, "replayed")));

	assert_int_equal(post(s, "default/A12/1", ORDER_BODY, &b), 200);
	assert_string_equal(str(b, "supplier_order_id"), "SO-1");
	assert_true(json_is_true(json_object_get(b, "replayed")));

	assert_int_equal(post(s, "default/A12/1", "{\"product_id\":\"123456\",\"quantity\":5}", &c),
	                 422);
	assert_error_contains(c, "Idempotency-Key \"default/A12/1\"");
	assert_error_contains(c, "was used with a different request");

	assert_int_equal(call(s, "GET", "/orders", NULL, NULL, &list), 200);
	assert_int_equal(json_array_size(json_object_get(list, "orders")), 1);
	o = json_array_get(json_object_get(list, "orders"), 0);
	assert_string_equal(str(o, "supplier_order_id"), "SO-1");
	assert_string_equal(str(o, "idempotency_key"), "default/A12/1");
	assert_string_equal(str(o, "product_id"), "123456");
	assert_int_equal(json_integer_value(json_object_get(o, "quantity")), 1000);
	assert_true(json_integer_value(json_object_get(o, "created_at")) > 0);
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(list);
	sup_stop(s);
}

static void test_bad_key(void **state)
{
	struct sup *s = *state;
	char long_key[300];
	json_t *a = NULL, *b = NULL, *c = NULL;

	memset(long_key, 'k', 256);
	long_key[256] = '\0';
	sup_start(s);
	assert_int_equal(post(s, NULL, ORDER_BODY, &a), 400);
	assert_error_contains(a, "Idempotency-Key header is missing");
	assert_int_equal(post(s, "", ORDER_BODY, &b), 400);
	assert_error_contains(b, "Idempotency-Key header is empty");
	assert_int_equal(post(s, long_key, ORDER_BODY, &c), 400);
	assert_error_contains(c, "Idempotency-Key header is too long");
	assert_int_equal(order_count(s), 0);
	json_decref(a);
	json_decref(b);
	json_decref(c);
	sup_stop(s);
}

static void test_bad_body(void **state)
{
	struct sup *s = *state;
	json_t *a = NULL, *b = NULL, *c = NULL, *d = NULL;

	sup_start(s);
	assert_int_equal(post(s, "k1", "{\"product_id\":", &a), 400);
	assert_error_contains(a, "invalid JSON body");
	assert_error_contains(a, "position 14");
	assert_int_equal(post(s, "k2", "{\"product_id\":\"1\",\"quantity\":\"9\"}", &b), 400);
	assert_error_contains(b, "invalid order");
	assert_int_equal(post(s, "k3", "{\"product_id\":\"1\",\"quantity\":0}", &c), 400);
	assert_error_contains(c, "quantity must be > 0");
	assert_int_equal(post(s, "k4", "{\"quantity\":3}", &d), 400);
	assert_error_contains(d, "product_id");
	assert_int_equal(order_count(s), 0);
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(d);
	sup_stop(s);
}

static void test_ledger_survives_restart(void **state)
{
	struct sup *s = *state;
	json_t *a = NULL, *b = NULL, *c = NULL;

	sup_start(s);
	assert_int_equal(post(s, "ns/A12/1", ORDER_BODY, &a), 201);
	sup_stop(s);
	sup_start(s);
	assert_int_equal(post(s, "ns/A12/1", ORDER_BODY, &b), 200);
	assert_string_equal(str(b, "supplier_order_id"), str(a, "supplier_order_id"));
	assert_true(json_is_true(json_object_get(b, "replayed")));
	assert_int_equal(post(s, "ns/B7/1", ORDER_BODY, &c), 201);
	assert_string_equal(str(c, "supplier_order_id"), "SO-2");
	assert_int_equal(order_count(s), 2);
	json_decref(a);
	json_decref(b);
	json_decref(c);
	sup_stop(s);
}

static void test_other_endpoints(void **state)
{
	struct sup *s = *state;
	json_t *a = NULL, *b = NULL, *c = NULL, *d = NULL;

	sup_start(s);
	assert_int_equal(call(s, "GET", "/health", NULL, NULL, &a), 200);
	assert_true(json_is_true(json_object_get(a, "ok")));
	assert_int_equal(call(s, "GET", "/nope", NULL, NULL, &b), 404);
	assert_error_contains(b, "/nope");
	assert_int_equal(call(s, "DELETE", "/orders", NULL, NULL, &c), 405);
	assert_error_contains(c, "GET, HEAD, POST");
	assert_int_equal(call(s, "POST", "/health", "k", "{}", &d), 405);
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(d);
	sup_stop(s);
}

static void test_replaces_stale_socket(void **state)
{
	struct sup *s = *state;

	/* A supplier killed by SIGKILL leaves its socket file behind. */
	sup_start(s);
	kill(s->pid, SIGKILL);
	assert_int_equal(tu_wait_exit(s->pid, 5000), 128 + SIGKILL);
	s->pid = -1;
	assert_int_equal(access(s->sock, F_OK), 0);
	sup_start(s);
	assert_int_equal(order_count(s), 0);
	sup_stop(s);
}

static void test_command_line(void **state)
{
	struct sup *s = *state;
	char *const help[] = {s->bin, "--help", NULL};
	char *const bogus[] = {s->bin, "--env", s->env, "--bogus", NULL};
	char *const not_socket[] = {
	    s->bin, "--env", s->env, "--supplier-socket", s->env, "--supplier-database",
	    s->db,  NULL};
	char *out = NULL;

	assert_int_equal(tu_run(help, NULL, 5000, &out), IDEM_EXIT_OK);
	assert_non_null(strstr(out, "usage: idem-supplier"));
	free(out);
	assert_int_equal(tu_run(bogus, NULL, 5000, NULL), IDEM_EXIT_USAGE);
	/* The socket path is a regular file: refused, not deleted. */
	assert_int_equal(tu_run(not_socket, NULL, 5000, NULL), IDEM_EXIT_FAIL);
	assert_int_equal(access(s->env, F_OK), 0);
}

static void assert_log_contains(struct sup *s, const char *frag);

/* A supplier whose supervisor died before it could ask to be stopped
 * with it (PR_SET_PDEATHSIG) does not start: its parent is not the
 * supervisor named in IDEM_SUPERVISOR_PID. */
static void test_orphan_at_birth(void **state)
{
	struct sup *s = *state;
	char *const argv[] = {
	    s->bin, "--env", s->env, "--supplier-socket", s->sock, "--supplier-database",
	    s->db,  NULL};
	const char *const env[] = {"IDEM_SUPERVISOR_PID=1", NULL};
	pid_t pid = tu_spawn(argv, env, s->log);

	assert_true(pid > 0);
	assert_int_equal(tu_wait_exit(pid, 5000), IDEM_EXIT_OK);
	assert_log_contains(s, "its supervisor (pid 1) is gone; not starting");
	assert_int_not_equal(access(s->sock, F_OK), 0);
}

/* POST /orders with Idem-Fault: fault. Returns the status and the body
 * (new ref), or -1 with *doc NULL when no answer came. */
static int post_fault(struct sup *s, const char *key, const char *fault, json_t **doc)
{
	char kh[300], fh[300];
	const char *headers[] = {kh, fh, NULL};
	struct httpc_response r;
	char err[ERRLEN] = "";
	int status;

	snprintf(kh, sizeof(kh), "Idempotency-Key: %s", key);
	snprintf(fh, sizeof(fh), "Idem-Fault: %s", fault);
	*doc = NULL;
	if (httpc_request(s->sock, "POST", "/orders", headers, ORDER_BODY, strlen(ORDER_BODY), 5000,
	                  &r, err, sizeof(err)) != 0)
		return -1;
	*doc = json_loadb(r.body, r.body_len, 0, NULL);
	status = r.status;
	httpc_response_free(&r);
	return status;
}

/* Waits for the supplier to exit on its own; returns the exit code (-1:
 * still running, left to teardown). */
static int sup_exited(struct sup *s)
{
	int code = tu_wait_exit(s->pid, 10000);

	if (code >= 0)
		s->pid = -1;
	return code;
}

static void assert_log_contains(struct sup *s, const char *frag)
{
	char *log = tu_read_file(s->log);

	if (log == NULL || strstr(log, frag) == NULL)
		fail_msg("the log does not contain \"%s\":\n%s", frag, log ? log : "");
	free(log);
}

static void test_fault_unavailable(void **state)
{
	struct sup *s = *state;
	json_t *a = NULL, *b = NULL;

	sup_start(s);
	assert_int_equal(post_fault(s, "ns/A12/1", "unavailable", &a), 503);
	assert_non_null(a);
	assert_string_equal(str(a, "error"), "supplier unavailable (injected fault); retry later");
	assert_int_equal(order_count(s), 0);
	/* Nothing was recorded: the retry is a new order. */
	assert_int_equal(post(s, "ns/A12/1", ORDER_BODY, &b), 201);
	assert_string_equal(str(b, "supplier_order_id"), "SO-1");
	json_decref(a);
	json_decref(b);
	sup_stop(s);
}

static void test_fault_record_then_die(void **state)
{
	struct sup *s = *state;
	json_t *a = NULL, *b = NULL, *c = NULL;

	sup_start(s);
	assert_int_equal(post_fault(s, "ns/A12/1", "record_then_die", &a), -1);
	assert_null(a);
	assert_int_equal(sup_exited(s), IDEM_EXIT_FAULT);
	assert_log_contains(s, "injected fault: recorded the order, dying before the answer");
	assert_log_contains(s, "supplier_order_id=SO-1 key=ns/A12/1");
	sup_start(s);
	assert_int_equal(order_count(s), 1);
	/* A replayed key: nothing new recorded, and the plan still says die. */
	assert_int_equal(post_fault(s, "ns/A12/1", "record_then_die", &b), -1);
	assert_int_equal(sup_exited(s), IDEM_EXIT_FAULT);
	sup_start(s);
	assert_int_equal(order_count(s), 1);
	assert_int_equal(post(s, "ns/A12/1", ORDER_BODY, &c), 200);
	assert_string_equal(str(c, "supplier_order_id"), "SO-1");
	assert_true(json_is_true(json_object_get(c, "replayed")));
	json_decref(c);
	sup_stop(s);
}

static void test_fault_bad_value(void **state)
{
	struct sup *s = *state;
	json_t *a = NULL;

	sup_start(s);
	assert_int_equal(post_fault(s, "ns/A12/1", "explode", &a), 400);
	assert_non_null(a);
	assert_error_contains(a, "Idem-Fault header is \"explode\"");
	assert_error_contains(a, "unavailable");
	assert_error_contains(a, "record_then_die");
	assert_int_equal(order_count(s), 0);
	json_decref(a);
	sup_stop(s);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_order_then_replay), T(test_bad_key),
	    T(test_bad_body),          T(test_ledger_survives_restart),
	    T(test_other_endpoints),   T(test_replaces_stale_socket),
	    T(test_command_line),      T(test_orphan_at_birth),
	    T(test_fault_unavailable), T(test_fault_record_then_die),
	    T(test_fault_bad_value),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

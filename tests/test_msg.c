/* test_msg.c — the worker channel's messages: every constructor parsed
 * back, and every missing, mistyped, out-of-range or unknown field
 * refused with a message that names it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "msg.h"

#define ERRLEN 256

static int parse_as(enum msg_type t, json_t *msg, char *err, size_t errlen)
{
	struct msg_ready r;
	struct msg_task k;
	struct msg_result s;
	struct msg_heartbeat h;

	switch (t) {
	case MSG_READY:
		return msg_parse_ready(msg, &r, err, errlen);
	case MSG_TASK:
		return msg_parse_task(msg, &k, err, errlen);
	case MSG_RESULT:
		return msg_parse_result(msg, &s, err, errlen);
	case MSG_HEARTBEAT:
		return msg_parse_heartbeat(msg, &h, err, errlen);
	}
	fail();
	return 0;
}

/* A deep copy of base (borrowed) with member key replaced by value
 * (stolen), or removed when value is NULL. A new reference. */
static json_t *with(const json_t *base, const char *key, json_t *value)
{
	json_t *m = json_deep_copy(base);

	assert_non_null(m);
	if (value == NULL)
		assert_int_equal(json_object_del(m, key), 0);
	else
		assert_int_equal(json_object_set_new(m, key, value), 0);
	return m;
}

/* Parses msg (stolen) as t and expects exactly the error want. */
static void expect_error(enum msg_type t, json_t *msg, const char *want)
{
	char err[ERRLEN] = "";

	assert_non_null(msg);
	assert_int_equal(parse_as(t, msg, err, sizeof(err)), -1);
	assert_string_equal(err, want);
	json_decref(msg);
}

static json_t *load(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, 0, &jerr);

	if (v == NULL)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	return v;
}

static const struct msg_task sample_task = {
    .task_id = 7,
    .namespace_ = "default",
    .workflow_id = "A12",
    .step = 0,
    .attempt = 1,
    .activity = "update_inventory",
};

/* ---- round trips ---- */

static void test_ready_round_trip(void **state)
{
	json_t *m = msg_ready_new(1234);
	struct msg_ready r = {0};
	enum msg_type t = MSG_TASK;
	char err[ERRLEN] = "";

	assert_non_null(m);
	assert_int_equal(msg_type_of(m, &t, err, sizeof(err)), 0);
	assert_int_equal(t, MSG_READY);
	assert_int_equal(msg_parse_ready(m, &r, err, sizeof(err)), 0);
	assert_int_equal(r.pid, 1234);
	assert_int_equal(json_object_size(m), 2);
	json_decref(m);
}

static void check_task(const struct msg_task *got, const struct msg_task *want)
{
	assert_int_equal(got->task_id, want->task_id);
	assert_string_equal(got->namespace_, want->namespace_);
	assert_string_equal(got->workflow_id, want->workflow_id);
	assert_int_equal(got->step, want->step);
	assert_int_equal(got->attempt, want->attempt);
	assert_string_equal(got->activity, want->activity);
	assert_true(json_equal(got->input, want->input));
	if (want->heartbeat == NULL)
		assert_null(got->heartbeat);
	else
		assert_true(json_equal(got->heartbeat, want->heartbeat));
}

static void test_task_round_trip(void **state)
{
	struct msg_task want = sample_task;
	struct msg_task got = {0};
	enum msg_type t = MSG_READY;
	char err[ERRLEN] = "";
	json_t *m = NULL;

	want.input = json_pack("{s:s, s:i}", "sku", "X-1", "qty", 3);
	want.step = 4;
	want.attempt = 9;
	want.task_id = (json_int_t)1 << 40;
	/* Without a heartbeat: the key is left out. */
	m = msg_task_new(&want);
	assert_non_null(m);
	assert_null(json_object_get(m, "heartbeat"));
	assert_int_equal(msg_type_of(m, &t, err, sizeof(err)), 0);
	assert_int_equal(t, MSG_TASK);
	assert_int_equal(msg_parse_task(m, &got, err, sizeof(err)), 0);
	check_task(&got, &want);
	/* The parsed members are borrowed from the message. */
	assert_ptr_equal(got.input, json_object_get(m, "input"));
	json_decref(m);

	/* With a heartbeat. */
	want.heartbeat = json_pack("{s:i}", "done", 2);
	m = msg_task_new(&want);
	assert_non_null(m);
	assert_int_equal(msg_parse_task(m, &got, err, sizeof(err)), 0);
	check_task(&got, &want);
	json_decref(m);
	/* The constructor took its own references: ours are still ours. */
	assert_int_equal(want.input->refcount, 1);
	assert_int_equal(want.heartbeat->refcount, 1);
	json_decref(want.input);
	json_decref(want.heartbeat);
}

static void test_task_new_needs_input(void **state)
{
	struct msg_task t = sample_task;

	assert_null(msg_task_new(&t));
}

static void test_result_ok_round_trip(void **state)
{
	json_t *res = json_pack("{s:b, s:s}", "reserved", 1, "ref", "R-9");
	json_t *m = msg_result_ok_new(7, res);
	struct msg_result r = {0};
	enum msg_type t = MSG_READY;
	char err[ERRLEN] = "";

	assert_non_null(m);
	assert_int_equal(msg_type_of(m, &t, err, sizeof(err)), 0);
	assert_int_equal(t, MSG_RESULT);
	assert_int_equal(msg_parse_result(m, &r, err, sizeof(err)), 0);
	assert_int_equal(r.task_id, 7);
	assert_int_equal(r.ok, 1);
	assert_true(json_equal(r.result, res));
	assert_null(r.error_type);
	assert_null(r.error_message);
	assert_int_equal(r.retryable, 0);
	json_decref(m);
	assert_int_equal(res->refcount, 1);
	json_decref(res);
}

static void test_result_error_round_trip(void **state)
{
	struct msg_result r = {0};
	char err[ERRLEN] = "";
	json_t *m = msg_result_error_new(8, "UnknownProduct", "no product X-1", 0);

	assert_non_null(m);
	assert_int_equal(msg_parse_result(m, &r, err, sizeof(err)), 0);
	assert_int_equal(r.task_id, 8);
	assert_int_equal(r.ok, 0);
	assert_null(r.result);
	assert_string_equal(r.error_type, "UnknownProduct");
	assert_string_equal(r.error_message, "no product X-1");
	assert_int_equal(r.retryable, 0);
	json_decref(m);

	/* Any non-zero retryable is true; an empty message is allowed. */
	m = msg_result_error_new(9, "Timeout", "", 5);
	assert_non_null(m);
	assert_int_equal(msg_parse_result(m, &r, err, sizeof(err)), 0);
	assert_int_equal(r.task_id, 9);
	assert_string_equal(r.error_type, "Timeout");
	assert_string_equal(r.error_message, "");
	assert_int_equal(r.retryable, 1);
	assert_true(json_is_true(json_object_get(json_object_get(m, "error"), "retryable")));
	json_decref(m);
}

static void test_heartbeat_round_trip(void **state)
{
	json_t *details = json_pack("{s:i}", "progress", 50);
	json_t *m = msg_heartbeat_new(11, details);
	struct msg_heartbeat h = {0};
	enum msg_type t = MSG_READY;
	char err[ERRLEN] = "";

	assert_non_null(m);
	assert_int_equal(msg_type_of(m, &t, err, sizeof(err)), 0);
	assert_int_equal(t, MSG_HEARTBEAT);
	assert_int_equal(msg_parse_heartbeat(m, &h, err, sizeof(err)), 0);
	assert_int_equal(h.task_id, 11);
	assert_true(json_equal(h.details, details));
	json_decref(m);
	json_decref(details);
}

/* The messages of msg.h's comment, as a peer would send them. */
static void test_parse_literal(void **state)
{
	json_t *m = load("{\"type\":\"task\",\"task_id\":7,\"namespace\":\"default\","
	                 "\"workflow_id\":\"A12\",\"step\":0,\"attempt\":1,"
	                 "\"activity\":\"update_inventory\",\"input\":{},\"heartbeat\":{}}");
	struct msg_task t = {0};
	struct msg_result r = {0};
	char err[ERRLEN] = "";

	assert_int_equal(msg_parse_task(m, &t, err, sizeof(err)), 0);
	assert_int_equal(t.task_id, 7);
	assert_string_equal(t.namespace_, "default");
	assert_int_equal(t.step, 0);
	assert_non_null(t.heartbeat);
	json_decref(m);
	m = load("{\"type\":\"result\",\"task_id\":7,\"ok\":false,\"error\":{\"type\":"
	         "\"UnknownProduct\",\"message\":\"...\",\"retryable\":true}}");
	assert_int_equal(msg_parse_result(m, &r, err, sizeof(err)), 0);
	assert_int_equal(r.ok, 0);
	assert_int_equal(r.retryable, 1);
	json_decref(m);
}

/* ---- refusals ---- */

static void test_ready_refused(void **state)
{
	json_t *ok = msg_ready_new(42);

	expect_error(MSG_READY, with(ok, "pid", NULL), "message ready: missing \"pid\"");
	expect_error(MSG_READY, with(ok, "pid", json_string("42")),
	             "message ready: \"pid\": Expected integer, got string");
	expect_error(MSG_READY, with(ok, "pid", json_real(42.0)),
	             "message ready: \"pid\": Expected integer, got real");
	expect_error(MSG_READY, with(ok, "pid", json_integer(0)),
	             "message ready: \"pid\" must be >= 1, got 0");
	expect_error(MSG_READY, with(ok, "pid", json_integer(-5)),
	             "message ready: \"pid\" must be >= 1, got -5");
	expect_error(MSG_READY, with(ok, "version", json_integer(2)),
	             "message ready: unknown key \"version\" (another protocol version?)");
	json_decref(ok);
}

/* The parts every message shares: an object whose "type" is its own. */
static void test_type_refused(void **state)
{
	json_t *ok = msg_ready_new(42);

	expect_error(MSG_READY, json_array(), "message ready: not a JSON object");
	expect_error(MSG_READY, with(ok, "type", NULL), "message ready: missing \"type\"");
	expect_error(MSG_READY, with(ok, "type", json_integer(1)),
	             "message ready: \"type\": Expected string, got integer");
	expect_error(MSG_READY, with(ok, "type", json_string("")),
	             "message ready: \"type\" must not be empty");
	expect_error(MSG_TASK, json_incref(ok),
	             "message task: \"type\" is \"ready\", not \"task\"");
	expect_error(MSG_RESULT, json_incref(ok),
	             "message result: \"type\" is \"ready\", not \"result\"");
	expect_error(MSG_HEARTBEAT, json_incref(ok),
	             "message heartbeat: \"type\" is \"ready\", not \"heartbeat\"");
	json_decref(ok);
}

static void test_task_refused(void **state)
{
	static const char *const keys[] = {"task_id", "namespace", "workflow_id", "step",
	                                   "attempt", "activity",  "input"};
	static const char *const types[] = {"integer", "string", "string", "integer",
	                                    "integer", "string", "object"};
	struct msg_task t = sample_task;
	json_t *ok = NULL;
	char want[ERRLEN];

	t.input = json_object();
	ok = msg_task_new(&t);
	assert_non_null(ok);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(want, sizeof(want), "message task: missing \"%s\"", keys[i]);
		expect_error(MSG_TASK, with(ok, keys[i], NULL), want);
		/* The wrong type: a boolean is wrong for every field. */
		if (strcmp(types[i], "object") == 0)
			snprintf(want, sizeof(want),
			         "message task: \"%s\" must be an object, got boolean", keys[i]);
		else
			snprintf(want, sizeof(want), "message task: \"%s\": Expected %s, got true",
			         keys[i], types[i]);
		expect_error(MSG_TASK, with(ok, keys[i], json_true()), want);
	}
	expect_error(MSG_TASK, with(ok, "task_id", json_integer(0)),
	             "message task: \"task_id\" must be >= 1, got 0");
	expect_error(MSG_TASK, with(ok, "step", json_integer(-1)),
	             "message task: \"step\" must be >= 0, got -1");
	expect_error(MSG_TASK, with(ok, "attempt", json_integer(0)),
	             "message task: \"attempt\" must be >= 1, got 0");
	expect_error(MSG_TASK, with(ok, "namespace", json_string("")),
	             "message task: \"namespace\" must not be empty");
	expect_error(MSG_TASK, with(ok, "workflow_id", json_string("")),
	             "message task: \"workflow_id\" must not be empty");
	expect_error(MSG_TASK, with(ok, "activity", json_string("")),
	             "message task: \"activity\" must not be empty");
	expect_error(MSG_TASK, with(ok, "input", json_pack("[i]", 1)),
	             "message task: \"input\" must be an object, got array");
	expect_error(MSG_TASK, with(ok, "input", json_string("{}")),
	             "message task: \"input\" must be an object, got string");
	expect_error(MSG_TASK, with(ok, "heartbeat", json_null()),
	             "message task: \"heartbeat\" must be an object, got null");
	expect_error(MSG_TASK, with(ok, "heartbeat", json_integer(3)),
	             "message task: \"heartbeat\" must be an object, got integer");
	expect_error(MSG_TASK, with(ok, "deadline_ms", json_integer(3)),
	             "message task: unknown key \"deadline_ms\" (another protocol version?)");
	json_decref(ok);
	json_decref(t.input);
}

static void test_result_ok_refused(void **state)
{
	json_t *res = json_object();
	json_t *ok = msg_result_ok_new(7, res);

	expect_error(MSG_RESULT, with(ok, "task_id", NULL), "message result: missing \"task_id\"");
	expect_error(MSG_RESULT, with(ok, "task_id", json_string("7")),
	             "message result: \"task_id\": Expected integer, got string");
	expect_error(MSG_RESULT, with(ok, "task_id", json_integer(0)),
	             "message result: \"task_id\" must be >= 1, got 0");
	expect_error(MSG_RESULT, with(ok, "ok", NULL), "message result: missing \"ok\"");
	expect_error(MSG_RESULT, with(ok, "ok", json_integer(1)),
	             "message result: \"ok\": Expected true or false, got integer");
	expect_error(MSG_RESULT, with(ok, "result", NULL), "message result: missing \"result\"");
	expect_error(MSG_RESULT, with(ok, "result", json_null()),
	             "message result: \"result\" must be an object, got null");
	expect_error(MSG_RESULT, with(ok, "error", json_object()),
	             "message result: unknown key \"error\" (another protocol version?)");
	expect_error(MSG_RESULT, with(ok, "extra", json_object()),
	             "message result: unknown key \"extra\" (another protocol version?)");
	json_decref(ok);
	json_decref(res);
}

static void test_result_error_refused(void **state)
{
	json_t *ok = msg_result_error_new(7, "UnknownProduct", "no such product", 0);
	json_t *e = json_object_get(ok, "error"); /* borrowed */
	static const char *const keys[] = {"type", "message", "retryable"};
	static const char *const types[] = {"string", "string", "true or false"};
	char want[ERRLEN];

	expect_error(MSG_RESULT, with(ok, "error", NULL), "message result: missing \"error\"");
	expect_error(MSG_RESULT, with(ok, "error", json_string("boom")),
	             "message result: \"error\" must be an object, got string");
	expect_error(MSG_RESULT, with(ok, "result", json_object()),
	             "message result: unknown key \"result\" (another protocol version?)");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(want, sizeof(want), "message result.error: missing \"%s\"", keys[i]);
		expect_error(MSG_RESULT, with(ok, "error", with(e, keys[i], NULL)), want);
		snprintf(want, sizeof(want), "message result.error: \"%s\": Expected %s, got array",
		         keys[i], types[i]);
		expect_error(MSG_RESULT, with(ok, "error", with(e, keys[i], json_array())), want);
	}
	expect_error(MSG_RESULT, with(ok, "error", with(e, "type", json_string(""))),
	             "message result.error: \"type\" must not be empty");
	expect_error(MSG_RESULT, with(ok, "error", with(e, "code", json_integer(3))),
	             "message result.error: unknown key \"code\" (another protocol version?)");
	json_decref(ok);
}

static void test_heartbeat_refused(void **state)
{
	json_t *details = json_object();
	json_t *ok = msg_heartbeat_new(7, details);

	expect_error(MSG_HEARTBEAT, with(ok, "task_id", NULL),
	             "message heartbeat: missing \"task_id\"");
	expect_error(MSG_HEARTBEAT, with(ok, "task_id", json_null()),
	             "message heartbeat: \"task_id\": Expected integer, got null");
	expect_error(MSG_HEARTBEAT, with(ok, "task_id", json_integer(-1)),
	             "message heartbeat: \"task_id\" must be >= 1, got -1");
	expect_error(MSG_HEARTBEAT, with(ok, "details", NULL),
	             "message heartbeat: missing \"details\"");
	expect_error(MSG_HEARTBEAT, with(ok, "details", json_array()),
	             "message heartbeat: \"details\" must be an object, got array");
	expect_error(MSG_HEARTBEAT, with(ok, "at", json_integer(1)),
	             "message heartbeat: unknown key \"at\" (another protocol version?)");
	json_decref(ok);
	json_decref(details);
}

/* ---- msg_type_of ---- */

static void expect_type_error(const char *text, const char *want)
{
	json_t *m = load(text);
	enum msg_type t = MSG_READY;
	char err[ERRLEN] = "";

	assert_int_equal(msg_type_of(m, &t, err, sizeof(err)), -1);
	assert_string_equal(err, want);
	json_decref(m);
}

static void test_type_of(void **state)
{
	static const struct {
		const char *text;
		enum msg_type type;
	} good[] = {
	    {"{\"type\":\"ready\"}", MSG_READY},
	    {"{\"type\":\"task\"}", MSG_TASK},
	    {"{\"type\":\"result\",\"x\":1}", MSG_RESULT},
	    {"{\"type\":\"heartbeat\"}", MSG_HEARTBEAT},
	};
	enum msg_type t = MSG_READY;
	char err[ERRLEN] = "";

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		json_t *m = load(good[i].text);

		t = (enum msg_type) - 1;
		assert_int_equal(msg_type_of(m, &t, err, sizeof(err)), 0);
		assert_int_equal(t, good[i].type);
		json_decref(m);
	}
	expect_type_error("{}", "message: missing \"type\"");
	expect_type_error("{\"pid\":1}", "message: missing \"type\"");
	expect_type_error("{\"type\":5}", "message: \"type\" is not a string");
	expect_type_error("{\"type\":null}", "message: \"type\" is not a string");
	expect_type_error("{\"type\":\"hello\"}", "message: unknown type \"hello\"");
	expect_type_error("{\"type\":\"\"}", "message: unknown type \"\"");
	expect_type_error("{\"type\":\"Task\"}", "message: unknown type \"Task\"");
	expect_type_error("[\"task\"]", "message: not a JSON object");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ready_round_trip),
	    cmocka_unit_test(test_task_round_trip),
	    cmocka_unit_test(test_task_new_needs_input),
	    cmocka_unit_test(test_result_ok_round_trip),
	    cmocka_unit_test(test_result_error_round_trip),
	    cmocka_unit_test(test_heartbeat_round_trip),
	    cmocka_unit_test(test_parse_literal),
	    cmocka_unit_test(test_ready_refused),
	    cmocka_unit_test(test_type_refused),
	    cmocka_unit_test(test_task_refused),
	    cmocka_unit_test(test_result_ok_refused),
	    cmocka_unit_test(test_result_error_refused),
	    cmocka_unit_test(test_heartbeat_refused),
	    cmocka_unit_test(test_type_of),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

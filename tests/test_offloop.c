/* test_offloop.c — supervisor/offloop.c: a program run beside a libevent
 * loop, its stdout read back as one JSON document, its stderr's last line
 * as the error, a runaway stdout killed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>

#include "offloop.h"

struct outcome {
	struct event_base *base;
	json_t *doc;
	char err[1024];
	int calls;
};

static void done(json_t *doc, const char *err, void *arg)
{
	struct outcome *r = arg;

	r->calls++;
	r->doc = doc;
	snprintf(r->err, sizeof(r->err), "%s", err != NULL ? err : "");
	event_base_loopbreak(r->base);
}

/* Runs sh -c script beside a loop until done; reaps the child. */
static void run(const char *script, struct outcome *r)
{
	char *argv[] = {"sh", "-c", (char *)script, NULL};
	char err[256];
	struct offloop *o;

	memset(r, 0, sizeof(*r));
	r->base = event_base_new();
	assert_non_null(r->base);
	o = offloop_spawn(r->base, "/bin/sh", argv, done, r, err, sizeof(err));
	assert_non_null(o);
	event_base_dispatch(r->base);
	assert_int_equal(r->calls, 1);
	while (waitpid(-1, NULL, 0) > 0)
		;
	event_base_free(r->base);
}

static void test_stdout_is_the_document(void **state)
{
	struct outcome r;

	(void)state;
	run("printf '{\"ok\": true, \"n\": 3}'; echo noise >&2", &r);
	assert_non_null(r.doc);
	assert_int_equal(json_integer_value(json_object_get(r.doc, "n")), 3);
	assert_string_equal(r.err, "");
	json_decref(r.doc);
}

static void test_a_failure_says_the_last_line_of_a_long_stderr(void **state)
{
	struct outcome r;

	(void)state;
	/* 100 KiB on stderr (more than one read, more than the 4 KiB tail)
	 * before the line that says why */
	run("head -c 102400 /dev/zero | tr '\\0' x >&2; echo >&2; "
	    "echo 'check: cannot open the ledger' >&2; exit 2",
	    &r);
	assert_null(r.doc);
	assert_string_equal(r.err, "check: cannot open the ledger");
}

static void test_no_output_at_all(void **state)
{
	struct outcome r;

	(void)state;
	run("exit 3", &r);
	assert_null(r.doc);
	assert_non_null(strstr(r.err, "ended without an answer"));
}

static void test_a_runaway_stdout_is_killed(void **state)
{
	struct outcome r;

	(void)state;
	run("exec yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", &r);
	assert_null(r.doc);
	assert_non_null(strstr(r.err, "passed 64 MiB"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stdout_is_the_document),
	    cmocka_unit_test(test_a_failure_says_the_last_line_of_a_long_stderr),
	    cmocka_unit_test(test_no_output_at_all),
	    cmocka_unit_test(test_a_runaway_stdout_is_killed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

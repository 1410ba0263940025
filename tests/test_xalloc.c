/* test_xalloc.c — the out-of-memory policy (xalloc.h): the x* functions
 * copy and grow like the C library's, never return NULL (not even for 0
 * bytes), and an allocation that cannot succeed kills the process with
 * SIGABRT after one "out of memory" line on stderr. That last part runs in
 * a forked child, whose stderr is a pipe the parent reads; the child only
 * _exit()s or dies, the parent asserts. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "xalloc.h"

/* Under AddressSanitizer, malloc(SIZE_MAX) is by default a reported error
 * that ends the process with exit code 1 rather than a NULL: ask for the
 * NULL the C library gives, so the child dies the way it would in
 * production. ASAN_OPTIONS from the environment still apply on top, and
 * without ASan nothing calls this. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

static void test_xstrdup_copies(void **state)
{
	static const char *const cases[] = {"", "a", "caf\xc3\xa9 with spaces\n"};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s = xstrdup(cases[i]);

		assert_ptr_not_equal(s, cases[i]);
		assert_string_equal(s, cases[i]);
		free(s);
	}
}

static void test_xrealloc_grows(void **state)
{
	unsigned char *p = xmalloc(100);

	for (int i = 0; i < 100; i++)
		p[i] = (unsigned char)i;
	p = xrealloc(p, 1 << 20); /* past the heap top: likely a move */
	for (int i = 0; i < 100; i++)
		assert_int_equal(p[i], i);
	p[(1 << 20) - 1] = 0xff;
	p = xrealloc(p, 50); /* shrinking keeps the front too */
	for (int i = 0; i < 50; i++)
		assert_int_equal(p[i], i);
	free(p);
	p = xrealloc(NULL, 10); /* NULL: a fresh block, as realloc */
	assert_non_null(p);
	free(p);
}

static void test_xcalloc_zeroes(void **state)
{
	int *v = xcalloc(1000, sizeof(*v));

	for (int i = 0; i < 1000; i++)
		assert_int_equal(v[i], 0);
	free(v);
}

/* Zero bytes is a request like any other: a pointer for free(), so that
 * callers never see NULL (realloc(p, 0) may free p and return NULL). */
static void test_zero_is_not_null(void **state)
{
	void *a = xmalloc(0), *b = xcalloc(0, 8), *c = xrealloc(xmalloc(16), 0);

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	free(a);
	free(b);
	free(c);
}

static void test_json_uses_xmalloc(void **state)
{
	json_malloc_t m = NULL;
	json_free_t f = NULL;
	json_t *o;

	xalloc_install_json();
	json_get_alloc_funcs(&m, &f);
	assert_ptr_equal(m, xmalloc);
	assert_ptr_equal(f, free);
	o = json_pack("{s:s}", "k", "v");
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "k")), "v");
	json_decref(o);
}

enum impossible { BIG_MALLOC, BIG_CALLOC, BIG_REALLOC };

/* Runs the impossible allocation `what` in a child whose stderr is a pipe;
 * returns the child's wait status and what it wrote (malloc'd). */
static char *run_impossible(enum impossible what, int *status)
{
	size_t len = 0, cap = 65536; /* the line, and a sanitizer's warning */
	char *text = malloc(cap);
	int fds[2];
	ssize_t n;
	pid_t pid;

	assert_non_null(text);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* No core file for an abort the test asks for. */
		struct rlimit no_core = {0, 0};
		volatile size_t huge = SIZE_MAX; /* not a constant the compiler warns about */

		setrlimit(RLIMIT_CORE, &no_core);
		if (dup2(fds[1], STDERR_FILENO) < 0)
			_exit(3);
		close(fds[0]);
		if (what == BIG_MALLOC)
			free(xmalloc(huge));
		else if (what == BIG_CALLOC)
			free(xcalloc(huge, 2)); /* the product overflows */
		else
			free(xrealloc(xmalloc(8), huge));
		_exit(0); /* returned: the policy is broken */
	}
	close(fds[1]);
	while ((n = read(fds[0], text + len, cap - len - 1)) > 0)
		len += (size_t)n;
	close(fds[0]);
	text[len] = '\0';
	assert_int_equal(waitpid(pid, status, 0), pid);
	return text;
}

static void test_impossible_aborts(void **state)
{
	static const enum impossible cases[] = {BIG_MALLOC, BIG_CALLOC, BIG_REALLOC};
	char max[64];

	snprintf(max, sizeof(max), "allocating %zu bytes", (size_t)SIZE_MAX);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int status = 0;
		char *text = run_impossible(cases[i], &status);

		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGABRT);
		assert_non_null(strstr(text, "idem: out of memory"));
		assert_non_null(strstr(text, max));
		assert_non_null(strstr(text, "aborting"));
		free(text);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_xstrdup_copies),    cmocka_unit_test(test_xrealloc_grows),
	    cmocka_unit_test(test_xcalloc_zeroes),    cmocka_unit_test(test_zero_is_not_null),
	    cmocka_unit_test(test_json_uses_xmalloc), cmocka_unit_test(test_impossible_aborts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_textbuf.c — the text buffer behind the supervisor's hand-built
 * JSON and the log lines: escapes that jansson reads back to the same
 * string, integers at their limits, growth past the first allocation, a
 * start in the caller's array, and empty buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "textbuf.h"

static char *take(struct textbuf *b)
{
	size_t len = 0;
	char *s = textbuf_take(b, &len);

	assert_non_null(s);
	assert_int_equal(len, strlen(s));
	return s;
}

static void test_json_str_escapes(void **state)
{
	static const char *const cases[][2] = {
	    {"plain", "\"plain\""},
	    {"", "\"\""},
	    {"a\"b\\c", "\"a\\\"b\\\\c\""},
	    {"l1\nl2\r\t", "\"l1\\nl2\\r\\t\""},
	    {"\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\""},
	    {"caf\xc3\xa9", "\"caf\xc3\xa9\""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct textbuf b = {0};
		char *s;
		json_t *back;

		textbuf_put_json_str(&b, cases[i][0]);
		s = take(&b);
		assert_string_equal(s, cases[i][1]);
		back = json_loads(s, JSON_DECODE_ANY, NULL);
		assert_non_null(back);
		assert_string_equal(json_string_value(back), cases[i][0]);
		json_decref(back);
		free(s);
	}
}

static void test_null_string(void **state)
{
	struct textbuf b = {0};
	char *s;

	textbuf_put_json_str(&b, NULL);
	s = take(&b);
	assert_string_equal(s, "null");
	free(s);
}

static void test_integers(void **state)
{
	struct textbuf b = {0};
	char *s;

	textbuf_put_int(&b, 0);
	textbuf_putc(&b, ' ');
	textbuf_put_int(&b, -7);
	textbuf_putc(&b, ' ');
	textbuf_put_int(&b, INT64_MAX);
	textbuf_putc(&b, ' ');
	textbuf_put_int(&b, INT64_MIN);
	s = take(&b);
	assert_string_equal(s, "0 -7 9223372036854775807 -9223372036854775808");
	free(s);
}

static void test_growth(void **state)
{
	struct textbuf b = {0};
	char *s;

	for (int i = 0; i < 10000; i++)
		textbuf_puts(&b, "0123456789");
	s = take(&b);
	assert_int_equal(strlen(s), 100000);
	assert_memory_equal(s + 99990, "0123456789", 10);
	free(s);
	/* take() leaves the buffer empty and reusable. */
	assert_null(b.p);
	assert_int_equal(b.len, 0);
}

/* A buffer that starts in the caller's array moves to the heap when it
 * outgrows it, keeping what it had; take() hands out a heap copy. */
static void test_stack_start(void **state)
{
	char stack[8];
	struct textbuf b = {.p = stack, .cap = sizeof(stack)};
	char *s;

	textbuf_printf(&b, "%s=%d", "ab", 7);
	assert_ptr_equal(b.p, stack);
	assert_string_equal(stack, "ab=7");
	textbuf_puts(&b, " and more");
	assert_ptr_not_equal(b.p, stack);
	assert_int_equal(b.heap, 1);
	s = take(&b);
	assert_string_equal(s, "ab=7 and more");
	free(s);

	b = (struct textbuf){.p = stack, .cap = sizeof(stack)};
	textbuf_putc(&b, 'x');
	s = take(&b);
	assert_ptr_not_equal(s, stack);
	assert_string_equal(s, "x");
	free(s);

	b = (struct textbuf){.p = stack, .cap = sizeof(stack)};
	textbuf_puts(&b, "0123456789");
	textbuf_free(&b);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
}

/* A quoted prefix never ends inside a UTF-8 character. */
static void test_utf8_prefix(void **state)
{
	(void)state;
	assert_int_equal(textbuf_utf8_prefix("abc", 5), 3);
	assert_int_equal(textbuf_utf8_prefix("abc", 3), 3);
	assert_int_equal(textbuf_utf8_prefix("abc", 2), 2);
	assert_int_equal(textbuf_utf8_prefix("h\xc3\xa9llo", 1), 1);
	assert_int_equal(textbuf_utf8_prefix("h\xc3\xa9llo", 2), 1); /* not inside the e-acute */
	assert_int_equal(textbuf_utf8_prefix("h\xc3\xa9llo", 3), 3);
	assert_int_equal(textbuf_utf8_prefix("\xe2\x82\xac!", 2), 0); /* the euro sign */
	assert_int_equal(textbuf_utf8_prefix("\xe2\x82\xac!", 3), 3);
	assert_int_equal(textbuf_utf8_prefix("", 0), 0);
}

static void test_empty_take(void **state)
{
	struct textbuf b = {0};
	size_t len = 99;
	char *s = textbuf_take(&b, &len);

	assert_non_null(s);
	assert_string_equal(s, "");
	assert_int_equal(len, 0);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_str_escapes), cmocka_unit_test(test_null_string),
	    cmocka_unit_test(test_integers),         cmocka_unit_test(test_growth),
	    cmocka_unit_test(test_stack_start),      cmocka_unit_test(test_empty_take),
	    cmocka_unit_test(test_utf8_prefix),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

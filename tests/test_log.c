/* test_log.c — the logger's two formats, read back from stderr (a pipe
 * dup2'ed over it): logfmt quoting of spaces, quotes and newlines; JSON
 * lines that jansson parses, one object per line, with the logfmt fields
 * as members (numbers as numbers, quoted values unescaped, a field named
 * like a fixed one renamed); levels below the minimum left out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "log.h"

static int saved_stderr = -1;
static int pipe_read = -1;

static void capture_start(void)
{
	int fds[2];

	assert_int_equal(pipe(fds), 0);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
	close(fds[1]);
	pipe_read = fds[0];
}

/* Restores stderr and returns what was written (malloc'd, NUL-terminated). */
static char *capture_stop(void)
{
	size_t len = 0, cap = 4096;
	char *text = malloc(cap);
	ssize_t n;

	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	assert_non_null(text);
	while ((n = read(pipe_read, text + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 2) {
			cap *= 2;
			text = realloc(text, cap);
			assert_non_null(text);
		}
	}
	close(pipe_read);
	text[len] = '\0';
	return text;
}

static int count_lines(const char *text)
{
	int n = 0;

	for (; *text != '\0'; text++)
		n += *text == '\n';
	return n;
}

/* Line i (0-based) of text, as a JSON object; fails the test when it does
 * not parse. */
static json_t *json_line(const char *text, int i)
{
	const char *p = text, *end;
	json_error_t jerr;
	json_t *j;

	while (i-- > 0) {
		p = strchr(p, '\n');
		assert_non_null(p);
		p++;
	}
	end = strchr(p, '\n');
	assert_non_null(end);
	j = json_loadb(p, (size_t)(end - p), 0, &jerr);
	if (j == NULL)
		fail_msg("line is not JSON (%s at column %d): %.*s", jerr.text, jerr.column,
		         (int)(end - p), p);
	assert_true(json_is_object(j));
	return j;
}

static const char *str(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_string(v))
		fail_msg("member \"%s\" is not a string", key);
	return json_string_value(v);
}

static long long num(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v))
		fail_msg("member \"%s\" is not an integer", key);
	return (long long)json_integer_value(v);
}

static int setup(void **state)
{
	log_init("tester", LOG_DEBUG);
	log_set_format(LOG_FORMAT_LOGFMT);
	return 0;
}

static void test_logfmt_quoting(void **state)
{
	char q1[128], q2[128], q3[16], q4[8];
	char *out;

	capture_start();
	log_info("ready", "slot=%d", 3);
	log_info("worker channel closed", "reason=%s path=%s empty=%s",
	         log_quote(q1, sizeof(q1), "said \"bye\"\nand left"),
	         log_quote(q2, sizeof(q2), "a=b"), log_quote(q3, sizeof(q3), ""));
	log_warn("two\nlines \"quoted\"", "cut=%s", log_quote(q4, sizeof(q4), "long value here"));
	out = capture_stop();

	/* One line per call: no raw newline inside a line. */
	assert_int_equal(count_lines(out), 3);
	assert_non_null(strstr(out, " level=info role=tester pid="));
	assert_non_null(strstr(out, " msg=ready slot=3\n"));
	assert_non_null(strstr(out, " msg=\"worker channel closed\" "
	                            "reason=\"said \\\"bye\\\"\\nand left\" path=\"a=b\" "
	                            "empty=\"\"\n"));
	assert_non_null(strstr(out, " level=warn "));
	assert_non_null(strstr(out, " msg=\"two\\nlines \\\"quoted\\\"\" "));
	/* A value cut to fit its buffer still closes its quotes. */
	assert_non_null(strstr(out, " cut=\"long \"\n"));
	assert_string_equal(log_quote(q3, sizeof(q3), "bare"), "bare");
	free(out);
}

static void test_json_lines(void **state)
{
	char q[128];
	char *out;
	json_t *j;

	log_set_format(LOG_FORMAT_JSON);
	capture_start();
	log_info("worker spawned", "slot=%d worker_pid=%ld", 0, 4242L);
	log_warn("said \"no\"\nthen left",
	         "reason=%s n=%d neg=%d real=%s ok=%s big=%s role=%s wf=%s flag",
	         log_quote(q, sizeof(q), "a b \"c\"\nd\\e"), 3, -7, "1.5", "true",
	         "18446744073709551615", "state", "007");
	log_error("bytes \xff\xfe here", "");
	log_debug("plain", "raw=\"say \"hi\"! now\" tail=x nul=\"a\\x00b\\x01\"");
	out = capture_stop();
	log_set_format(LOG_FORMAT_LOGFMT);

	assert_int_equal(count_lines(out), 4);

	j = json_line(out, 0);
	assert_int_equal(strlen(str(j, "ts")), 24);
	assert_string_equal(str(j, "level"), "info");
	assert_string_equal(str(j, "role"), "tester");
	assert_int_equal(num(j, "pid"), (long long)getpid());
	assert_string_equal(str(j, "msg"), "worker spawned");
	assert_int_equal(num(j, "slot"), 0);
	assert_int_equal(num(j, "worker_pid"), 4242);
	assert_int_equal(json_object_size(j), 7);
	json_decref(j);

	j = json_line(out, 1);
	assert_string_equal(str(j, "level"), "warn");
	assert_string_equal(str(j, "msg"), "said \"no\"\nthen left");
	assert_string_equal(str(j, "reason"), "a b \"c\"\nd\\e");
	assert_int_equal(num(j, "n"), 3);
	assert_int_equal(num(j, "neg"), -7);
	assert_true(json_is_real(json_object_get(j, "real")));
	assert_true(json_real_value(json_object_get(j, "real")) == 1.5);
	assert_true(json_is_true(json_object_get(j, "ok")));
	/* Past int64: kept as text, so that every reader can take it. */
	assert_string_equal(str(j, "big"), "18446744073709551615");
	/* A field named like a fixed one does not replace it. */
	assert_string_equal(str(j, "role"), "tester");
	assert_string_equal(str(j, "_role"), "state");
	/* Not a JSON number (leading zero): a string. */
	assert_string_equal(str(j, "wf"), "007");
	assert_true(json_is_true(json_object_get(j, "flag")));
	json_decref(j);

	/* Bytes that are not UTF-8 become U+FFFD: the line still parses. */
	j = json_line(out, 2);
	assert_string_equal(str(j, "level"), "error");
	assert_string_equal(str(j, "msg"), "bytes \xef\xbf\xbd\xef\xbf\xbd here");
	assert_int_equal(json_object_size(j), 5);
	json_decref(j);

	/* A caller's unescaped quote stays inside its value. */
	j = json_line(out, 3);
	assert_string_equal(str(j, "raw"), "say \"hi\"! now");
	assert_string_equal(str(j, "tail"), "x");
	/* An escaped NUL becomes U+FFFD (jansson refuses \u0000); others stay. */
	assert_string_equal(str(j, "nul"), "a\xef\xbf\xbd"
	                                   "b\x01");
	json_decref(j);
	free(out);
}

/* A line longer than the logger's stack buffer, in both formats. */
static void test_long_line(void **state)
{
	size_t n = 10000;
	char *big = malloc(n + 1), *out;
	json_t *j;

	assert_non_null(big);
	memset(big, 'x', n);
	big[n] = '\0';
	capture_start();
	log_info("long", "value=%s", big);
	log_set_format(LOG_FORMAT_JSON);
	log_info("long", "value=%s", big);
	log_set_format(LOG_FORMAT_LOGFMT);
	out = capture_stop();
	assert_int_equal(count_lines(out), 2);
	assert_non_null(strstr(out, big));
	j = json_line(out, 1);
	assert_int_equal(strlen(str(j, "value")), n);
	json_decref(j);
	free(out);
	free(big);
}

static void test_level_filter(void **state)
{
	char *out;

	log_init("tester", LOG_WARN);
	capture_start();
	log_debug("hidden", "");
	log_info("hidden", "");
	log_warn("shown", "");
	out = capture_stop();
	log_init("tester", LOG_DEBUG);
	assert_int_equal(count_lines(out), 1);
	assert_null(strstr(out, "hidden"));
	assert_non_null(strstr(out, "msg=shown\n"));
	assert_true(log_enabled(LOG_DEBUG));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_logfmt_quoting, setup),
	    cmocka_unit_test_setup(test_json_lines, setup),
	    cmocka_unit_test_setup(test_long_line, setup),
	    cmocka_unit_test_setup(test_level_filter, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_frame.c — the worker channel's framing: the decoder fed in every
 * possible piece, the limits, malformed payloads, and the fd helpers over
 * a socketpair and a pipe. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "frame.h"

#define ERRLEN 256

/* A frame holding payload: malloc'd, its length in *len. */
static unsigned char *raw_frame(const void *payload, size_t n, size_t *len)
{
	unsigned char *buf = malloc(FRAME_HEADER_LEN + n);

	assert_non_null(buf);
	buf[0] = (unsigned char)(n >> 24);
	buf[1] = (unsigned char)(n >> 16);
	buf[2] = (unsigned char)(n >> 8);
	buf[3] = (unsigned char)n;
	memcpy(buf + FRAME_HEADER_LEN, payload, n);
	*len = FRAME_HEADER_LEN + n;
	return buf;
}

static unsigned char *raw_frame_str(const char *payload, size_t *len)
{
	return raw_frame(payload, strlen(payload), len);
}

/* Feeds one frame holding payload to a fresh decoder (limit max) and
 * expects -1 with err starting with prefix and, when frag is not NULL,
 * containing frag. */
static void expect_refused(const void *payload, size_t n, size_t max, const char *prefix,
                           const char *frag)
{
	struct frame_decoder d;
	char err[ERRLEN] = "";
	json_t *out = NULL;
	unsigned char *buf = NULL;
	size_t len = 0;

	buf = raw_frame(payload, n, &len);
	frame_decoder_init(&d, max);
	frame_decoder_feed(&d, buf, len);
	assert_int_equal(frame_decoder_next(&d, &out, err, sizeof(err)), -1);
	assert_null(out);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("error \"%s\" does not start with \"%s\"", err, prefix);
	if (frag != NULL && strstr(err, frag) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, frag);
	assert_int_equal(d.failed, 1);
	frame_decoder_free(&d);
	free(buf);
}

static json_t *sample(void)
{
	json_t *v = json_pack("{s:s, s:I, s:s, s:{s:[i,i,i], s:b, s:n}}", "type", "task", "task_id",
	                      (json_int_t)7, "text", "h\xc3\xa9llo \xe2\x82\xac", "nested", "list",
	                      1, 2, 3, "flag", 1, "none");

	assert_non_null(v);
	return v;
}

static unsigned char *encode_ok(const json_t *v, size_t *len)
{
	char err[ERRLEN] = "";
	unsigned char *buf = frame_encode(v, FRAME_DEFAULT_MAX, len, err, sizeof(err));

	assert_non_null(buf);
	return buf;
}

/* Decodes exactly one frame from d and checks it equals want. */
static void expect_frame(struct frame_decoder *d, const json_t *want)
{
	char err[ERRLEN] = "";
	json_t *out = NULL;

	assert_int_equal(frame_decoder_next(d, &out, err, sizeof(err)), 1);
	assert_non_null(out);
	assert_true(json_equal(out, want));
	json_decref(out);
}

static void expect_more(struct frame_decoder *d)
{
	char err[ERRLEN] = "";
	json_t *out = NULL;

	assert_int_equal(frame_decoder_next(d, &out, err, sizeof(err)), 0);
	assert_null(out);
}

static void test_encode_bytes(void **state)
{
	json_t *v = json_pack("{s:i}", "a", 1);
	size_t len = 0;
	unsigned char *buf = encode_ok(v, &len);

	assert_int_equal(len, 4 + 7);
	assert_memory_equal(buf, "\0\0\0\x07{\"a\":1}", len);
	free(buf);
	json_decref(v);
}

static void test_round_trip(void **state)
{
	struct frame_decoder d;
	json_t *v = sample();
	size_t len = 0;
	unsigned char *buf = encode_ok(v, &len);

	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	expect_more(&d);
	frame_decoder_feed(&d, buf, len);
	expect_frame(&d, v);
	expect_more(&d);
	assert_int_equal(frame_decoder_pending(&d), 0);
	frame_decoder_free(&d);
	free(buf);
	json_decref(v);
}

static void test_byte_by_byte(void **state)
{
	struct frame_decoder d;
	json_t *v = sample();
	size_t len = 0;
	unsigned char *buf = encode_ok(v, &len);

	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	for (size_t i = 0; i + 1 < len; i++) {
		frame_decoder_feed(&d, buf + i, 1);
		expect_more(&d);
		assert_int_equal(frame_decoder_pending(&d), i + 1);
	}
	frame_decoder_feed(&d, buf + len - 1, 1);
	expect_frame(&d, v);
	assert_int_equal(frame_decoder_pending(&d), 0);
	frame_decoder_free(&d);
	free(buf);
	json_decref(v);
}

static void test_every_split(void **state)
{
	json_t *v = sample();
	size_t len = 0;
	unsigned char *buf = encode_ok(v, &len);

	for (size_t split = 0; split <= len; split++) {
		struct frame_decoder d;

		frame_decoder_init(&d, FRAME_DEFAULT_MAX);
		frame_decoder_feed(&d, buf, split);
		if (split < len)
			expect_more(&d);
		frame_decoder_feed(&d, buf + split, len - split);
		expect_frame(&d, v);
		expect_more(&d);
		frame_decoder_free(&d);
	}
	free(buf);
	json_decref(v);
}

static void test_several_in_one_feed(void **state)
{
	json_t *v[3] = {sample(), json_pack("{s:s}", "type", "ready"), json_object()};
	unsigned char all[4096];
	size_t total = 0;
	struct frame_decoder d;

	for (int i = 0; i < 3; i++) {
		size_t len = 0;
		unsigned char *buf = encode_ok(v[i], &len);

		memcpy(all + total, buf, len);
		total += len;
		free(buf);
	}
	/* Two frames in one piece. */
	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	frame_decoder_feed(&d, all, total - 6);
	expect_frame(&d, v[0]);
	expect_frame(&d, v[1]);
	expect_more(&d);
	assert_int_equal(frame_decoder_pending(&d), 0);
	frame_decoder_free(&d);
	/* Three frames in one piece. */
	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	frame_decoder_feed(&d, all, total);
	for (int i = 0; i < 3; i++)
		expect_frame(&d, v[i]);
	expect_more(&d);
	frame_decoder_free(&d);
	/* Two and a half, then the rest: the half is kept across the feeds. */
	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	frame_decoder_feed(&d, all, total - 3);
	expect_frame(&d, v[0]);
	expect_frame(&d, v[1]);
	expect_more(&d);
	assert_int_equal(frame_decoder_pending(&d), 3);
	frame_decoder_feed(&d, all + total - 3, 3);
	expect_frame(&d, v[2]);
	frame_decoder_free(&d);
	for (int i = 0; i < 3; i++)
		json_decref(v[i]);
}

/* Many frames through a small buffer: consumed bytes are compacted and
 * the buffer does not grow with the number of frames. */
static void test_long_stream(void **state)
{
	struct frame_decoder d;
	json_t *v = sample();
	size_t len = 0;
	unsigned char *buf = encode_ok(v, &len);
	size_t cap = 0;

	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	for (int i = 0; i < 2000; i++) {
		/* Each feed ends in the middle of a frame. */
		frame_decoder_feed(&d, buf, 5);
		if (i > 0)
			expect_frame(&d, v);
		expect_more(&d);
		frame_decoder_feed(&d, buf + 5, len - 5);
		if (i == 0)
			cap = d.cap;
	}
	expect_frame(&d, v);
	assert_int_equal(d.cap, cap);
	frame_decoder_free(&d);
	free(buf);
	json_decref(v);
}

static void test_oversized_header_alone(void **state)
{
	/* 2 MiB announced; only the header is ever sent. */
	const unsigned char head[4] = {0x00, 0x20, 0x00, 0x00};
	const unsigned char huge[4] = {0xff, 0xff, 0xff, 0xff};
	unsigned char junk[1000];
	struct frame_decoder d;
	char err[ERRLEN] = "";
	json_t *out = NULL;

	memset(junk, 'x', sizeof(junk));
	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	frame_decoder_feed(&d, head, sizeof(head));
	assert_int_equal(frame_decoder_next(&d, &out, err, sizeof(err)), -1);
	assert_null(out);
	assert_string_equal(err, "frame: length 2097152 exceeds the limit 1048576 (MAX_FRAME)");
	/* What follows is not buffered. */
	frame_decoder_feed(&d, junk, sizeof(junk));
	assert_int_equal(frame_decoder_pending(&d), 4);
	frame_decoder_free(&d);

	/* Refused at feed time too, before next() looks: 4 GiB - 1. */
	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	frame_decoder_feed(&d, huge, sizeof(huge));
	frame_decoder_feed(&d, junk, sizeof(junk));
	assert_int_equal(frame_decoder_pending(&d), 4);
	assert_int_equal(frame_decoder_next(&d, &out, err, sizeof(err)), -1);
	assert_string_equal(err, "frame: length 4294967295 exceeds the limit 1048576 (MAX_FRAME)");
	frame_decoder_free(&d);
}

static void test_length_at_limit(void **state)
{
	const char *at = "{\"a\":\"12345678\"}";    /* 16 bytes */
	const char *over = "{\"a\":\"123456789\"}"; /* 17 bytes */
	struct frame_decoder d;
	unsigned char *buf = NULL;
	size_t len = 0;
	json_t *want = json_pack("{s:s}", "a", "12345678");

	assert_int_equal(strlen(at), 16);
	buf = raw_frame_str(at, &len);
	frame_decoder_init(&d, 16);
	frame_decoder_feed(&d, buf, len);
	expect_frame(&d, want);
	frame_decoder_free(&d);
	free(buf);
	json_decref(want);

	expect_refused(over, strlen(over), 16, "frame: length 17 exceeds the limit 16 (MAX_FRAME)",
	               NULL);
}

static void test_length_zero(void **state)
{
	expect_refused("", 0, FRAME_DEFAULT_MAX, "frame: length 0", NULL);
}

static void test_not_json(void **state)
{
	const char *trailing_comma = "{\"a\":1,}";
	const char *word = "hello";
	const char *two = "{}{}";

	expect_refused(trailing_comma, strlen(trailing_comma), FRAME_DEFAULT_MAX,
	               "frame: not JSON: ", "at byte 8");
	expect_refused(word, strlen(word), FRAME_DEFAULT_MAX, "frame: not JSON: ", "at byte 5");
	expect_refused(two, strlen(two), FRAME_DEFAULT_MAX, "frame: not JSON: end of file expected",
	               "at byte 3");
}

static void test_not_an_object(void **state)
{
	const char *cases[] = {"[1,2,3]", "\"text\"", "42", "1.5", "true", "null"};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_refused(cases[i], strlen(cases[i]), FRAME_DEFAULT_MAX,
		               "frame: JSON is not an object", NULL);
}

static void test_invalid_utf8(void **state)
{
	const char *bad_byte = "{\"a\":\"x\xff\"}";
	const char *overlong = "{\"a\":\"\xc0\xaf\"}";
	const char *bad_key = "{\"\xe2\x82\":1}";

	expect_refused(bad_byte, strlen(bad_byte), FRAME_DEFAULT_MAX,
	               "frame: invalid UTF-8: ", "at byte 7");
	expect_refused(overlong, strlen(overlong), FRAME_DEFAULT_MAX,
	               "frame: invalid UTF-8: ", NULL);
	expect_refused(bad_key, strlen(bad_key), FRAME_DEFAULT_MAX, "frame: invalid UTF-8: ", NULL);
}

static void test_deep_nesting(void **state)
{
	size_t n = 100000;
	char *deep = malloc(n);

	assert_non_null(deep);
	memset(deep, '[', n);
	expect_refused(deep, n, FRAME_DEFAULT_MAX, "frame: not JSON: maximum parsing depth reached",
	               NULL);
	/* {"a":{"a":{"a":... */
	for (size_t i = 0; i + 5 <= n; i += 5)
		memcpy(deep + i, "{\"a\":", 5);
	expect_refused(deep, n, FRAME_DEFAULT_MAX, "frame: not JSON: maximum parsing depth reached",
	               NULL);
	free(deep);
}

static void test_failed_stays_failed(void **state)
{
	const unsigned char zero[4] = {0, 0, 0, 0};
	struct frame_decoder d;
	char err[ERRLEN] = "";
	json_t *out = NULL;
	json_t *v = sample();
	size_t len = 0;
	unsigned char *buf = encode_ok(v, &len);

	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	frame_decoder_feed(&d, zero, sizeof(zero));
	assert_int_equal(frame_decoder_next(&d, &out, err, sizeof(err)), -1);
	assert_string_equal(err, "frame: length 0");
	/* A good frame afterwards does not revive the channel. */
	frame_decoder_feed(&d, buf, len);
	for (int i = 0; i < 3; i++) {
		err[0] = '\0';
		assert_int_equal(frame_decoder_next(&d, &out, err, sizeof(err)), -1);
		assert_null(out);
		assert_string_equal(err, "frame: the channel failed earlier");
	}
	frame_decoder_free(&d);
	free(buf);
	json_decref(v);
}

static void test_encode_refused(void **state)
{
	char err[ERRLEN] = "";
	size_t len = 99;
	json_t *arr = json_pack("[i]", 1);
	json_t *str = json_string("x");
	json_t *big = json_pack("{s:s}", "a", "0123456789012345678901234567890123456789");
	unsigned char *buf = NULL;

	assert_null(frame_encode(arr, FRAME_DEFAULT_MAX, &len, err, sizeof(err)));
	assert_string_equal(err, "frame: the message is not a JSON object");
	assert_int_equal(len, 0);
	assert_null(frame_encode(str, FRAME_DEFAULT_MAX, &len, err, sizeof(err)));
	assert_string_equal(err, "frame: the message is not a JSON object");
	assert_null(frame_encode(NULL, FRAME_DEFAULT_MAX, &len, err, sizeof(err)));
	/* {"a":"<40 digits>"} is 48 bytes. */
	assert_null(frame_encode(big, 47, &len, err, sizeof(err)));
	assert_string_equal(err, "frame: message of 48 bytes exceeds the limit 47 (MAX_FRAME)");
	buf = frame_encode(big, 48, &len, err, sizeof(err));
	assert_non_null(buf);
	assert_int_equal(len, 4 + 48);
	free(buf);
	json_decref(arr);
	json_decref(str);
	json_decref(big);
}

static void make_socketpair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void test_fd_round_trip(void **state)
{
	int sv[2] = {-1, -1};
	struct frame_decoder d;
	char err[ERRLEN] = "";
	json_t *v = sample();
	json_t *w = json_pack("{s:s, s:I}", "type", "ready", "pid", (json_int_t)42);
	json_t *out = NULL;

	make_socketpair(sv);
	assert_int_equal(frame_write_fd(sv[0], v, FRAME_DEFAULT_MAX, err, sizeof(err)), 0);
	assert_int_equal(frame_write_fd(sv[0], w, FRAME_DEFAULT_MAX, err, sizeof(err)), 0);
	close(sv[0]);
	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	/* Both frames likely arrive in one read: the second waits in d. */
	assert_int_equal(frame_read_fd(sv[1], &d, &out, err, sizeof(err)), 1);
	assert_true(json_equal(out, v));
	json_decref(out);
	assert_int_equal(frame_read_fd(sv[1], &d, &out, err, sizeof(err)), 1);
	assert_true(json_equal(out, w));
	json_decref(out);
	/* Clean EOF between frames. */
	out = NULL;
	assert_int_equal(frame_read_fd(sv[1], &d, &out, err, sizeof(err)), 0);
	assert_null(out);
	frame_decoder_free(&d);
	close(sv[1]);
	json_decref(v);
	json_decref(w);
}

/* A frame larger than the socket buffer: the writer (a child) must loop
 * over partial writes while the reader drains it. */
static void test_fd_large_frame(void **state)
{
	size_t n = 900 * 1024;
	char *text = malloc(n + 1);
	json_t *v = NULL;
	json_t *out = NULL;
	int sv[2] = {-1, -1};
	struct frame_decoder d;
	char err[ERRLEN] = "";
	pid_t pid = 0;
	int status = 0;

	assert_non_null(text);
	memset(text, 'z', n);
	text[n] = '\0';
	v = json_pack("{s:s}", "blob", text);
	make_socketpair(sv);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int rc;

		close(sv[1]);
		rc = frame_write_fd(sv[0], v, FRAME_DEFAULT_MAX, err, sizeof(err));
		/* Freed so that the child is clean under valgrind too. */
		json_decref(v);
		free(text);
		_exit(rc == 0 ? 0 : 1);
	}
	close(sv[0]);
	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	assert_int_equal(frame_read_fd(sv[1], &d, &out, err, sizeof(err)), 1);
	assert_true(json_equal(out, v));
	json_decref(out);
	assert_int_equal(frame_read_fd(sv[1], &d, &out, err, sizeof(err)), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	frame_decoder_free(&d);
	close(sv[1]);
	json_decref(v);
	free(text);
}

/* Writes raw bytes to a fresh socketpair, closes the writer, and reads. */
static int read_raw(const void *bytes, size_t n, char *err, size_t errlen)
{
	int sv[2] = {-1, -1};
	struct frame_decoder d;
	json_t *out = NULL;
	int rc = 0;

	make_socketpair(sv);
	assert_int_equal(write(sv[0], bytes, n), (ssize_t)n);
	close(sv[0]);
	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	rc = frame_read_fd(sv[1], &d, &out, err, errlen);
	assert_null(out);
	frame_decoder_free(&d);
	close(sv[1]);
	return rc;
}

static void test_fd_eof_inside_frame(void **state)
{
	char err[ERRLEN] = "";
	/* A 16-byte payload of which 3 bytes arrive. */
	const unsigned char part[7] = {0, 0, 0, 16, '{', '"', 'a'};
	const unsigned char head[2] = {0, 0};

	assert_int_equal(read_raw(part, sizeof(part), err, sizeof(err)), -1);
	assert_string_equal(err, "frame: channel closed inside a frame (7 of 20 bytes)");
	assert_int_equal(read_raw(head, sizeof(head), err, sizeof(err)), -1);
	assert_string_equal(err, "frame: channel closed inside a frame header (2 of 4 bytes)");
	assert_int_equal(read_raw("", 0, err, sizeof(err)), 0);
}

static void test_fd_oversized(void **state)
{
	char err[ERRLEN] = "";
	const unsigned char head[4] = {0x01, 0x00, 0x00, 0x00};

	assert_int_equal(read_raw(head, sizeof(head), err, sizeof(err)), -1);
	assert_string_equal(err, "frame: length 16777216 exceeds the limit 1048576 (MAX_FRAME)");
}

/* A pipe is not a socket: frame_write_fd falls back to write(). */
static void test_fd_pipe(void **state)
{
	int p[2] = {-1, -1};
	struct frame_decoder d;
	char err[ERRLEN] = "";
	json_t *v = sample();
	json_t *out = NULL;

	assert_int_equal(pipe(p), 0);
	assert_int_equal(frame_write_fd(p[1], v, FRAME_DEFAULT_MAX, err, sizeof(err)), 0);
	close(p[1]);
	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	assert_int_equal(frame_read_fd(p[0], &d, &out, err, sizeof(err)), 1);
	assert_true(json_equal(out, v));
	json_decref(out);
	assert_int_equal(frame_read_fd(p[0], &d, &out, err, sizeof(err)), 0);
	frame_decoder_free(&d);
	close(p[0]);
	json_decref(v);
}

/* The peer is gone: EPIPE is an error, not a SIGPIPE that kills us. */
static void test_fd_write_to_closed_peer(void **state)
{
	int sv[2] = {-1, -1};
	char err[ERRLEN] = "";
	json_t *v = sample();

	make_socketpair(sv);
	close(sv[1]);
	assert_int_equal(frame_write_fd(sv[0], v, FRAME_DEFAULT_MAX, err, sizeof(err)), -1);
	assert_string_equal(err, "frame: write: Broken pipe");
	/* An encoding error is reported before anything is written. */
	assert_int_equal(frame_write_fd(sv[0], v, 10, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "exceeds the limit 10 (MAX_FRAME)"));
	close(sv[0]);
	json_decref(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encode_bytes),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_byte_by_byte),
	    cmocka_unit_test(test_every_split),
	    cmocka_unit_test(test_several_in_one_feed),
	    cmocka_unit_test(test_long_stream),
	    cmocka_unit_test(test_oversized_header_alone),
	    cmocka_unit_test(test_length_at_limit),
	    cmocka_unit_test(test_length_zero),
	    cmocka_unit_test(test_not_json),
	    cmocka_unit_test(test_not_an_object),
	    cmocka_unit_test(test_invalid_utf8),
	    cmocka_unit_test(test_deep_nesting),
	    cmocka_unit_test(test_failed_stays_failed),
	    cmocka_unit_test(test_encode_refused),
	    cmocka_unit_test(test_fd_round_trip),
	    cmocka_unit_test(test_fd_large_frame),
	    cmocka_unit_test(test_fd_eof_inside_frame),
	    cmocka_unit_test(test_fd_oversized),
	    cmocka_unit_test(test_fd_pipe),
	    cmocka_unit_test(test_fd_write_to_closed_peer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

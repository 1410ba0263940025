/* frame.c — the worker channel's framing (see frame.h). */
#include "frame.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xalloc.h"

#define FRAME_MIN_CAP ((size_t)4096)
#define FRAME_READ_CHUNK ((size_t)64 * 1024)

void frame_decoder_init(struct frame_decoder *d, size_t max)
{
	memset(d, 0, sizeof(*d));
	d->max = max;
}

void frame_decoder_free(struct frame_decoder *d)
{
	free(d->buf);
	d->buf = NULL;
	d->len = d->off = d->cap = 0;
}

size_t frame_decoder_pending(const struct frame_decoder *d)
{
	return d->len - d->off;
}

/* The payload length announced by the header at d->off; the caller has
 * checked that the 4 header bytes are held. */
static size_t frame_head_len(const struct frame_decoder *d)
{
	const unsigned char *p = d->buf + d->off;

	return (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | (size_t)p[3];
}

/* Non-zero when the next frame's header is held and already refused: its
 * payload need not be buffered, frame_decoder_next reports the error. */
static int frame_head_refused(const struct frame_decoder *d)
{
	size_t n = 0;

	if (frame_decoder_pending(d) < FRAME_HEADER_LEN)
		return 0;
	n = frame_head_len(d);
	return n == 0 || n > d->max;
}

/* Makes room for n more bytes after d->len: first by moving the pending
 * bytes to the front, then by doubling the buffer. */
static void frame_reserve(struct frame_decoder *d, size_t n)
{
	size_t pending = frame_decoder_pending(d);
	size_t cap = d->cap < FRAME_MIN_CAP ? FRAME_MIN_CAP : d->cap;
	size_t need;

	if (d->off > 0 && d->cap - d->len < n) {
		memmove(d->buf, d->buf + d->off, pending);
		d->len = pending;
		d->off = 0;
	}
	if (d->buf != NULL && d->cap - d->len >= n)
		return;
	/* A size past SIZE_MAX saturates to it: no allocator has that much,
	 * so xrealloc aborts as it does for any memory it cannot get. */
	need = n > SIZE_MAX - d->len ? SIZE_MAX : d->len + n;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
	d->buf = xrealloc(d->buf, cap);
	d->cap = cap;
}

void frame_decoder_feed(struct frame_decoder *d, const void *data, size_t n)
{
	/* A failed channel or a refused header: the bytes have nowhere to go. */
	if (n == 0 || d->failed || frame_head_refused(d))
		return;
	frame_reserve(d, n);
	memcpy(d->buf + d->len, data, n);
	d->len += n;
}

/* Marks the decoder failed; err has been filled. */
static int frame_fail(struct frame_decoder *d)
{
	d->failed = 1;
	return -1;
}

/* Parses one payload. Returns a new reference, or NULL with err set. */
static json_t *frame_parse(const unsigned char *p, size_t n, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *v = NULL;

	/* JSON_DECODE_ANY: a scalar payload is reported as "not an object"
	 * rather than as a syntax error. Duplicate keys are allowed (the
	 * last one wins), as JSON parsers usually do. */
	v = json_loadb((const char *)p, n, JSON_DECODE_ANY, &jerr);
	if (v == NULL) {
		snprintf(err, errlen, "frame: %s: %s at byte %d",
		         json_error_code(&jerr) == json_error_invalid_utf8 ? "invalid UTF-8"
		                                                           : "not JSON",
		         jerr.text, jerr.position);
		return NULL;
	}
	if (!json_is_object(v)) {
		snprintf(err, errlen, "frame: JSON is not an object");
		json_decref(v);
		return NULL;
	}
	return v;
}

int frame_decoder_next(struct frame_decoder *d, json_t **out, char *err, size_t errlen)
{
	size_t n = 0;
	json_t *v = NULL;

	*out = NULL;
	if (d->failed) {
		snprintf(err, errlen, "frame: the channel failed earlier");
		return -1;
	}
	if (frame_decoder_pending(d) < FRAME_HEADER_LEN)
		return 0;
	n = frame_head_len(d);
	if (n == 0) {
		snprintf(err, errlen, "frame: length 0");
		return frame_fail(d);
	}
	if (n > d->max) {
		snprintf(err, errlen, "frame: length %zu exceeds the limit %zu (MAX_FRAME)", n,
		         d->max);
		return frame_fail(d);
	}
	if (frame_decoder_pending(d) - FRAME_HEADER_LEN < n)
		return 0;
	v = frame_parse(d->buf + d->off + FRAME_HEADER_LEN, n, err, errlen);
	if (v == NULL)
		return frame_fail(d);
	d->off += FRAME_HEADER_LEN + n;
	if (d->off == d->len)
		d->off = d->len = 0;
	*out = v;
	return 1;
}

unsigned char *frame_encode(const json_t *msg, size_t max, size_t *len, char *err, size_t errlen)
{
	char *text = NULL;
	unsigned char *buf = NULL;
	size_t n = 0;

	*len = 0;
	if (!json_is_object(msg)) {
		snprintf(err, errlen, "frame: the message is not a JSON object");
		goto cleanup;
	}
	text = json_dumps(msg, JSON_COMPACT);
	if (text == NULL) { /* an object that contains itself */
		snprintf(err, errlen, "frame: jansson cannot encode the message");
		goto cleanup;
	}
	n = strlen(text);
	if (n > max || n > UINT32_MAX) {
		snprintf(err, errlen,
		         "frame: message of %zu bytes exceeds the limit %zu (MAX_FRAME)", n, max);
		*len = n;
		goto cleanup;
	}
	buf = xmalloc(FRAME_HEADER_LEN + n);
	buf[0] = (unsigned char)(n >> 24);
	buf[1] = (unsigned char)(n >> 16);
	buf[2] = (unsigned char)(n >> 8);
	buf[3] = (unsigned char)n;
	memcpy(buf + FRAME_HEADER_LEN, text, n);
	*len = FRAME_HEADER_LEN + n;
cleanup:
	free(text);
	return buf;
}

/* Writes all n bytes: send(MSG_NOSIGNAL) on a socket so that a dead peer
 * is an EPIPE rather than a SIGPIPE, write() on anything else. */
static int frame_write_all(int fd, const unsigned char *p, size_t n, char *err, size_t errlen)
{
	int use_send = 1;
	ssize_t w = 0;

	while (n > 0) {
		if (use_send)
			w = send(fd, p, n, MSG_NOSIGNAL);
		else
			w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && use_send && errno == ENOTSOCK) {
			use_send = 0;
			continue;
		}
		if (w < 0) {
			snprintf(err, errlen, "frame: write: %s", strerror(errno));
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int frame_write_fd(int fd, const json_t *msg, size_t max, char *err, size_t errlen)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	int rc = -1;

	buf = frame_encode(msg, max, &len, err, errlen);
	if (buf == NULL)
		goto cleanup;
	rc = frame_write_all(fd, buf, len, err, errlen);
cleanup:
	free(buf);
	return rc;
}

/* EOF: clean between frames, an error inside one. */
static int frame_eof(const struct frame_decoder *d, char *err, size_t errlen)
{
	size_t pending = frame_decoder_pending(d);

	if (pending == 0)
		return 0;
	if (pending < FRAME_HEADER_LEN)
		snprintf(err, errlen,
		         "frame: channel closed inside a frame header (%zu of %d bytes)", pending,
		         FRAME_HEADER_LEN);
	else
		snprintf(err, errlen, "frame: channel closed inside a frame (%zu of %zu bytes)",
		         pending, FRAME_HEADER_LEN + frame_head_len(d));
	return -1;
}

int frame_read_fd(int fd, struct frame_decoder *d, json_t **out, char *err, size_t errlen)
{
	ssize_t r = 0;
	int rc = 0;

	for (;;) {
		rc = frame_decoder_next(d, out, err, errlen);
		if (rc != 0)
			return rc;
		/* Read straight into the decoder's buffer. */
		frame_reserve(d, FRAME_READ_CHUNK);
		r = read(fd, d->buf + d->len, FRAME_READ_CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "frame: read: %s", strerror(errno));
			return -1;
		}
		if (r == 0)
			return frame_eof(d, err, errlen);
		d->len += (size_t)r;
	}
}

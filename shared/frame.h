/* frame.h — the worker channel's framing: a 4-byte big-endian length,
 * then that many bytes holding one JSON object (UTF-8). A frame longer
 * than the limit, of length 0, not JSON, or not an object is an error
 * that ends the channel. */
#ifndef IDEM_FRAME_H
#define IDEM_FRAME_H

#include <jansson.h>
#include <stddef.h>

#define FRAME_HEADER_LEN 4
#define FRAME_DEFAULT_MAX ((size_t)1 << 20)

/* Accumulates bytes that arrive in arbitrary pieces. */
struct frame_decoder {
	unsigned char *buf;
	size_t len; /* bytes held */
	size_t off; /* bytes already consumed from buf */
	size_t cap;
	size_t max; /* largest payload accepted */
	int failed; /* set after an error: the channel is done */
};

void frame_decoder_init(struct frame_decoder *d, size_t max);
void frame_decoder_free(struct frame_decoder *d);

/* Appends n bytes (none after an error, or after a header that will be
 * refused: they would only be dropped). */
void frame_decoder_feed(struct frame_decoder *d, const void *data, size_t n);

/* Takes the next whole frame. Returns 1 with *out a new reference, 0 when
 * more bytes are needed, -1 with err set ("frame: length 2000000 exceeds
 * the limit 1048576 (MAX_FRAME)", "frame: not JSON: ... at byte 12",
 * "frame: JSON is not an object", "frame: length 0"). After -1 every call
 * returns -1. */
int frame_decoder_next(struct frame_decoder *d, json_t **out, char *err, size_t errlen);

/* Bytes held that are not yet a whole frame. */
size_t frame_decoder_pending(const struct frame_decoder *d);

/* Encodes msg (an object) as one frame. Returns a malloc'd buffer the
 * caller frees, its length in *len; NULL with err set when msg is not an
 * object or its encoding exceeds max (then *len is the encoding's size,
 * > max; else 0). */
unsigned char *frame_encode(const json_t *msg, size_t max, size_t *len, char *err, size_t errlen);

/* Blocking helpers for a process that owns fd (the worker).
 * frame_write_fd writes one whole frame; returns 0 or -1 (err set).
 * frame_read_fd returns 1 with *out (new reference), 0 on clean EOF
 * between frames, -1 on error or EOF inside a frame (err set). */
int frame_write_fd(int fd, const json_t *msg, size_t max, char *err, size_t errlen);
int frame_read_fd(int fd, struct frame_decoder *d, json_t **out, char *err, size_t errlen);

#endif

/* fuzz_frame.c — the worker channel's frame decoder (shared/frame.c).
 *
 * Input: byte 0 = (max selector << 4) | k, then k split sizes (each byte
 * b is a piece of b + 1 bytes, used in turn), then the byte stream.
 *
 * Properties checked:
 *  - the stream fed in those pieces (draining every frame after each
 *    piece) decodes to exactly what it decodes to when fed in one piece:
 *    the same frames (json_equal), the same first error text, the same
 *    pending bytes; after an error every call fails again;
 *  - frame_read_fd reading the stream from a file agrees too, and ends
 *    with a clean EOF exactly when nothing is pending;
 *  - every decoded frame is an object, and frame_encode of it decodes
 *    back equal (or is refused only for being over the limit). */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "frame.h"
#include "fuzz.h"

#define ERRLEN 512

static const size_t limits[4] = {64, 1024, 64 * 1024, FRAME_DEFAULT_MAX};

/* What one decoding produced. */
struct outcome {
	json_t *frames; /* array, owned */
	int failed;
	char err[ERRLEN];
	size_t pending;
};

/* Takes every whole frame now held; records the first error. */
static void drain(struct frame_decoder *d, struct outcome *o)
{
	char err[ERRLEN] = "";
	json_t *v = NULL;
	int rc;

	while ((rc = frame_decoder_next(d, &v, err, sizeof(err))) == 1) {
		FUZZ_CHECK(json_is_object(v), "a decoded frame is not an object");
		json_array_append_new(o->frames, v);
	}
	FUZZ_CHECK(rc == 0 || v == NULL, "an error left *out set");
	if (rc < 0 && !o->failed) {
		FUZZ_CHECK(strncmp(err, "frame: ", 7) == 0, "error without prefix: %s", err);
		o->failed = 1;
		snprintf(o->err, sizeof(o->err), "%s", err);
	}
	if (rc < 0)
		FUZZ_CHECK(frame_decoder_next(d, &v, err, sizeof(err)) == -1,
		           "a failed decoder recovered");
}

/* Decodes data fed in pieces of the sizes in split[0..nsplit) in turn
 * (one piece when nsplit is 0). */
static void decode(const uint8_t *data, size_t n, const uint8_t *split, size_t nsplit, size_t max,
                   struct outcome *o)
{
	struct frame_decoder d;
	size_t off = 0, i = 0, piece;

	memset(o, 0, sizeof(*o));
	o->frames = json_array();
	frame_decoder_init(&d, max);
	while (off < n) {
		piece = nsplit ? (size_t)split[i++ % nsplit] + 1 : n;
		if (piece > n - off)
			piece = n - off;
		frame_decoder_feed(&d, data + off, piece);
		off += piece;
		drain(&d, o);
	}
	drain(&d, o);
	o->pending = frame_decoder_pending(&d);
	FUZZ_CHECK(o->pending <= n, "pending %zu > %zu bytes fed", o->pending, n);
	frame_decoder_free(&d);
}

static void same_outcome(const struct outcome *a, const struct outcome *b, const char *what)
{
	size_t na = json_array_size(a->frames), nb = json_array_size(b->frames);

	FUZZ_CHECK(na == nb, "%s: %zu frames, in one piece %zu", what, nb, na);
	for (size_t i = 0; i < na; i++)
		FUZZ_CHECK(json_equal(json_array_get(a->frames, i), json_array_get(b->frames, i)),
		           "%s: frame %zu differs", what, i);
	FUZZ_CHECK(a->failed == b->failed, "%s: failed %d, in one piece %d", what, b->failed,
	           a->failed);
	FUZZ_CHECK(strcmp(a->err, b->err) == 0, "%s: error \"%s\", in one piece \"%s\"", what,
	           b->err, a->err);
	if (!a->failed)
		FUZZ_CHECK(a->pending == b->pending, "%s: pending %zu, in one piece %zu", what,
		           b->pending, a->pending);
}

/* frame_encode(v) decodes back to v, or is refused for its size only. */
static void round_trip(json_t *v, size_t max)
{
	char err[ERRLEN] = "";
	struct frame_decoder d;
	size_t len = 0;
	unsigned char *buf = frame_encode(v, max, &len, err, sizeof(err));
	json_t *back = NULL;

	if (buf == NULL) {
		FUZZ_CHECK(strstr(err, "exceeds the limit") != NULL, "encode refused: %s", err);
		return;
	}
	FUZZ_CHECK(len > FRAME_HEADER_LEN && len - FRAME_HEADER_LEN <= max, "encoded %zu bytes",
	           len);
	frame_decoder_init(&d, max);
	frame_decoder_feed(&d, buf, len);
	FUZZ_CHECK(frame_decoder_next(&d, &back, err, sizeof(err)) == 1, "re-decode: %s", err);
	FUZZ_CHECK(json_equal(v, back), "the round trip changed the message");
	FUZZ_CHECK(frame_decoder_pending(&d) == 0, "bytes left after one frame");
	json_decref(back);
	frame_decoder_free(&d);
	free(buf);
}

/* The stream through frame_read_fd, from a memfd holding it (created
 * once: a read() that returns 0 at its end is the EOF of a channel). */
static void read_fd(const uint8_t *data, size_t n, size_t max, const struct outcome *ref)
{
	static int fd = -1;
	struct outcome o;
	struct frame_decoder d;
	json_t *v = NULL;
	int rc;

	if (fd < 0)
		fd = memfd_create("idem-fuzz-frame", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0, "memfd_create failed");
	FUZZ_CHECK(ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0, "cannot reset the memfd");
	FUZZ_CHECK(n == 0 || pwrite(fd, data, n, 0) == (ssize_t)n, "short write");
	memset(&o, 0, sizeof(o));
	o.frames = json_array();
	frame_decoder_init(&d, max);
	while ((rc = frame_read_fd(fd, &d, &v, o.err, sizeof(o.err))) == 1)
		json_array_append_new(o.frames, v);
	FUZZ_CHECK(json_array_size(o.frames) == json_array_size(ref->frames),
	           "frame_read_fd: %zu frames, decoder %zu", json_array_size(o.frames),
	           json_array_size(ref->frames));
	for (size_t i = 0; i < json_array_size(o.frames); i++)
		FUZZ_CHECK(json_equal(json_array_get(o.frames, i), json_array_get(ref->frames, i)),
		           "frame_read_fd: frame %zu differs", i);
	if (ref->failed)
		FUZZ_CHECK(rc == -1 && strcmp(o.err, ref->err) == 0,
		           "frame_read_fd: rc %d \"%s\", decoder \"%s\"", rc, o.err, ref->err);
	else
		FUZZ_CHECK(rc == (ref->pending ? -1 : 0), "frame_read_fd: rc %d with %zu pending",
		           rc, ref->pending);
	frame_decoder_free(&d);
	json_decref(o.frames);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome whole, pieces;
	size_t nsplit, max;

	if (size < 1)
		return 0;
	nsplit = data[0] & 0x0f;
	max = limits[(data[0] >> 4) & 3];
	if (size < 1 + nsplit)
		return 0;
	json_object_seed(1); /* the same hash order in every run */
	decode(data + 1 + nsplit, size - 1 - nsplit, NULL, 0, max, &whole);
	decode(data + 1 + nsplit, size - 1 - nsplit, data + 1, nsplit, max, &pieces);
	same_outcome(&whole, &pieces, "in pieces");
	for (size_t i = 0; i < json_array_size(whole.frames); i++)
		round_trip(json_array_get(whole.frames, i), max);
	read_fd(data + 1 + nsplit, size - 1 - nsplit, max, &whole);
	json_decref(whole.frames);
	json_decref(pieces.frames);
	return 0;
}

/* fuzz_api.c — the control API's request handling: the real
 * supervisor/api.c (api_start's evhttp server, route, split_path,
 * body_json, every handler and reply path) behind libevent's real HTTP
 * parser, with the back end stood in for by api_stubs.c.
 *
 * Input: raw bytes a client sends on the API's Unix socket (one request,
 * several pipelined ones, or garbage). Each input is sent twice, on a new
 * connection each time:
 *  - "patient": the client waits until the server has gone quiet (read
 *    what it would, answered what it could), then shuts its write side;
 *  - "hang-up": the client shuts its write side right after the bytes, so
 *    the server meets EOF with requests in flight (a long-poll with an
 *    armed waiter, a start whose reply waits for the commit).
 * Then the loop turns (running the deferred replies after each turn, as
 * the supervisor does after its commit) until the server closes; a
 * long-poll still open once the loop is quiet times out then. MAX_BODY
 * is set to its minimum (1 KiB) so that 413 is reachable.
 *
 * Properties checked: every reply of api.c (Content-Type
 * application/json) is a JSON object, and one with status >= 400 says
 * {"error": string, "status": that status}; a 405 names the allowed
 * methods in an Allow header; the server goes quiet within 100,000 turns
 * and closes the connection within 5 s of the client's EOF and the end
 * of its polls (no spin, no hang); no leak, no sanitizer report. Replies
 * of libevent itself (its own 400, 413 and 417 pages for requests that
 * never reach route: docs/api.md) are only parsed. */
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "appconn.h"
#include "apps.h"
#include "db.h"
#include "api_stubs.h"
#include "faultctl.h"
#include "fuzz.h"
#include "log.h"

#define STUCK_AFTER_S 5
#define SETTLE_MAX_TURNS 100000

/* Known bug, reproduced by corpus/api/seed-utf8-*: api.c's reply_error()
 * hands its message to json_pack, which refuses text that is not valid
 * UTF-8 (an id decoded from %FF, a query value, a message cut at 1023
 * bytes inside a character); reply() then sends the error status with
 * the body {} (no "error", no "status"). While it stands, an error reply
 * of exactly {} is let through so that fuzzing can look for anything
 * else; set this to 0 once api.c is fixed. */
#ifndef FUZZ_API_KNOWN_EMPTY_ERROR
#define FUZZ_API_KNOWN_EMPTY_ERROR 1
#endif

static struct sup sup;
static struct api *api;
static int dump; /* FUZZ_API_DUMP=1: print what the client read */

/* One client connection and what it has read. */
struct client {
	int fd;
	int eof;
	int stuck;
	char *buf;
	size_t len, cap;
};

static void teardown(void)
{
	api_free(api);
	stub_engine_free(sup.engine);
	faultctl_free(sup.faultctl);
	event_base_free(sup.base);
	appconn_close(sup.appdb);
}

static void setup(void)
{
	char err[512] = "";

	if (api != NULL)
		return;
	json_object_seed(1);
	dump = getenv("FUZZ_API_DUMP") != NULL;
	log_init("fuzz-api", LOG_ERROR);
	FUZZ_CHECK(apps_add_config_keys(err, sizeof(err)) == 0, "app keys: %s", err);
	config_defaults(&sup.cfg);
	sup.app = apps_find(sup.cfg.app);
	FUZZ_CHECK(sup.app->open_db(":memory:", DB_SYNC_NORMAL, &sup.cfg, &sup.appdb, err,
	                            sizeof(err)) == 0,
	           "app DB: %s", err);
	snprintf(sup.cfg.socket, sizeof(sup.cfg.socket), "/tmp/idem-fuzz-api.%ld.sock",
	         (long)getpid());
	sup.cfg.max_body = 1024;
	sup.base = event_base_new();
	sup.engine = stub_engine_new(&sup);
	sup.cfg.fault_seed = 1; /* the same seed at every run */
	sup.cfg.fault_seed_set = 1;
	sup.faultctl = faultctl_new(&sup);
	FUZZ_CHECK(api_start(&sup, &api, err, sizeof(err)) == 0, "api_start: %s", err);
	sup.api = api; /* GET /metrics reads its counters */
	atexit(teardown);
}

static void client_read(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	ssize_t n;

	for (;;) {
		if (c->cap - c->len < 4096) {
			c->cap = c->cap * 2 + 4096;
			c->buf = realloc(c->buf, c->cap);
			FUZZ_CHECK(c->buf != NULL, "out of memory");
		}
		n = read(fd, c->buf + c->len, c->cap - c->len);
		if (n > 0) {
			c->len += (size_t)n;
			continue;
		}
		if (n == 0 || errno == ECONNRESET)
			c->eof = 1;
		else
			FUZZ_CHECK(errno == EAGAIN || errno == EINTR, "read: %s", strerror(errno));
		return;
	}
}

static void client_stuck(evutil_socket_t fd, short what, void *arg)
{
	((struct client *)arg)->stuck = 1;
}

/* Connects to the API socket and sends data. */
static int client_open(const uint8_t *data, size_t size)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	size_t off = 0;
	ssize_t n;

	FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
	memcpy(sa.sun_path, sup.cfg.socket, strlen(sup.cfg.socket) + 1);
	FUZZ_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s",
	           strerror(errno));
	while (off < size) {
		n = send(fd, data + off, size - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) /* the server may refuse early and close: fine */
			break;
		off += (size_t)n;
	}
	evutil_make_socket_nonblocking(fd);
	return fd;
}

/* One turn of the supervisor's loop, without blocking. */
static void turn(void)
{
	event_base_loop(sup.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	stub_turn_end(sup.engine);
}

/* Turns the loop until two turns in a row made no progress: no byte came
 * back, the server took no byte of what is still queued to it (it stops
 * reading a connection while a request is being answered), and no event
 * is active. */
static void settle(struct client *c)
{
	int quiet = 0, unread = 0, unread_before = -1;
	size_t before;

	for (int i = 0; quiet < 2 && !c->eof; i++) {
		FUZZ_CHECK(i < SETTLE_MAX_TURNS, "the server never went quiet");
		before = c->len;
		turn();
		if (ioctl(c->fd, TIOCOUTQ, &unread) != 0)
			unread = 0;
		if (c->len == before && unread == unread_before &&
		    event_base_get_num_events(sup.base, EVENT_BASE_COUNT_ACTIVE) == 0)
			quiet++;
		else
			quiet = 0;
		unread_before = unread;
	}
}

/* The value of header name in [p, end), or NULL. */
static const char *header(const char *p, const char *end, const char *name, size_t *len)
{
	size_t n = strlen(name);

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));

		eol = eol ? eol : end;
		if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
			p += n + 1;
			while (p < eol && *p == ' ')
				p++;
			*len = (size_t)(eol - p) - (eol > p && eol[-1] == '\r');
			return p;
		}
		p = eol + 1;
	}
	return NULL;
}

/* An api.c reply: a JSON object; an error names itself and its status. */
static void check_json_reply(int status, const char *body, size_t n)
{
	json_error_t jerr;
	json_t *j = json_loadb(body, n, 0, &jerr), *e;

	FUZZ_CHECK(j != NULL && json_is_object(j), "status %d: the body is not a JSON object: %.*s",
	           status, (int)n, body);
	if (FUZZ_API_KNOWN_EMPTY_ERROR && status >= 400 && json_object_size(j) == 0) {
		json_decref(j);
		return;
	}
	if (status >= 400) {
		e = json_object_get(j, "error");
		FUZZ_CHECK(json_is_string(e) && json_string_length(e) > 0,
		           "status %d: no \"error\" in %.*s", status, (int)n, body);
		FUZZ_CHECK(json_integer_value(json_object_get(j, "status")) == status,
		           "status %d: \"status\" differs in %.*s", status, (int)n, body);
	}
	json_decref(j);
}

/* The length of a body sent without Content-Length: up to the next
 * response (libevent answers an HTTP/0.x request so, and may go on
 * answering on the same connection), or to the end. */
static size_t unframed_len(const char *body, const char *end)
{
	const char *next = memmem(body, (size_t)(end - body), "\nHTTP/", 6);

	return next ? (size_t)(next + 1 - body) : (size_t)(end - body);
}

/* Walks the responses the client read. */
static void check_replies(const char *p, size_t len)
{
	const char *end = p + len, *head_end, *v;
	size_t vlen = 0, body = 0;
	int status;

	while (p < end) {
		head_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
		FUZZ_CHECK(head_end != NULL, "a response without its header end");
		FUZZ_CHECK(sscanf(p, "HTTP/%*d.%*d %d", &status) == 1, "bad status line: %.40s", p);
		v = header(p, head_end, "Content-Length", &vlen);
		body = v ? strtoul(v, NULL, 10) : unframed_len(head_end + 4, end);
		FUZZ_CHECK(body <= (size_t)(end - head_end - 4), "a response cut short");
		v = header(p, head_end, "Content-Type", &vlen);
		if (v != NULL && vlen >= 16 && strncmp(v, "application/json", 16) == 0)
			check_json_reply(status, head_end + 4, body);
		FUZZ_CHECK(status != 405 || header(p, head_end, "Allow", &vlen) != NULL,
		           "a 405 without Allow: %.*s", (int)(head_end - p), p);
		p = head_end + 4 + body;
	}
}

/* Sends data on a new connection (waiting for the server to go quiet
 * unless hang_up), then EOF; reads until the server closes. */
static void exchange(const uint8_t *data, size_t size, int hang_up)
{
	struct client c = {.fd = -1};
	struct timeval limit = {STUCK_AFTER_S, 0};
	struct event *rd, *timer;

	c.fd = client_open(data, size);
	rd = event_new(sup.base, c.fd, EV_READ | EV_PERSIST, client_read, &c);
	event_add(rd, NULL);
	if (!hang_up)
		settle(&c);
	shutdown(c.fd, SHUT_WR);
	settle(&c);
	/* Still open: a long-poll holds the connection, and evhttp does not
	 * read it meanwhile. api.c's hang-up watch stops at bytes that follow
	 * the request, and a half-close (unlike a close) raises no HUP, so
	 * the server learns of this client's EOF when the poll times out
	 * (corpus/api/seed-longpoll-bytes-ahead-hangup). Let the polls time
	 * out now, as they would later. */
	if (!c.eof)
		stub_expire_waits(sup.engine);
	timer = evtimer_new(sup.base, client_stuck, &c);
	evtimer_add(timer, &limit);
	while (!c.eof && !c.stuck) {
		event_base_loop(sup.base, EVLOOP_ONCE);
		stub_turn_end(sup.engine);
	}
	FUZZ_CHECK(!c.stuck, "the server did not close the connection within %ds", STUCK_AFTER_S);
	event_free(rd);
	event_free(timer);
	close(c.fd);
	turn(); /* let the server finish with the closed connection */
	if (c.buf != NULL) {
		c.buf[c.len] = '\0'; /* client_read leaves room for it */
		if (dump)
			fprintf(stderr, "--- %s: %zu bytes read:\n%s\n",
			        hang_up ? "hang-up" : "patient", c.len, c.buf);
		check_replies(c.buf, c.len);
	}
	free(c.buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	exchange(data, size, 0);
	exchange(data, size, 1);
	return 0;
}

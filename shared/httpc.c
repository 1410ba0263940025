/* httpc.c — a blocking HTTP/1.1 client over a Unix socket or TCP: one
 * request per connection (httpc_request), or a session that keeps its
 * connection open between requests (httpc_session_request). The socket is
 * nonblocking underneath so that the whole exchange (connect, send,
 * receive) is bounded by one deadline. */
#include "httpc.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "xalloc.h"

#define HTTPC_MAX_BODY ((size_t)64 << 20)
#define HTTPC_MAX_HEADER ((size_t)64 << 10)
#define HTTPC_READ_CHUNK 65536

/* A growable byte buffer, always NUL-terminated when p != NULL. */
struct buf {
	char *p;
	size_t len;
	size_t cap;
};

/* One exchange: where to, the socket and the deadline. */
struct conn {
	const char *endpoint;
	const char *method;
	const char *path;
	int timeout_ms;
	int64_t deadline; /* monotonic ms; 0 = none */
	int fd;
	int keep_alive;  /* ask the server to keep the connection */
	size_t received; /* bytes of the response read so far */
	char *err;
	size_t errlen;
};

/* Incremental decoder of a chunked body. */
enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER, CH_DONE };
struct chunked {
	enum chunk_state state;
	size_t pos;  /* offset in the raw buffer of the next byte to decode */
	size_t left; /* bytes of the current chunk still to copy */
};

/* What the header says about the body. */
struct head {
	int status;
	size_t header_len;     /* bytes up to and including the blank line */
	long long content_len; /* -1 = none */
	int chunked;
	int no_body;
	int close; /* the server closes after it: HTTP/1.0, Connection: close */
};

static void buf_reserve(struct buf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 1024;

	if (b->len + more + 1 <= b->cap)
		return;
	while (cap < b->len + more + 1)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

static void buf_add(struct buf *b, const void *data, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Returns 0, or -1 when fmt cannot be formatted (vsnprintf's encoding
 * error; nothing is added). */
static int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

static int conn_fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int conn_fail(struct conn *c, const char *fmt, ...)
{
	char cause[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cause, sizeof(cause), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "%s %s on %s: %s", c->method, c->path, c->endpoint, cause);
	return -1;
}

/* The receive after a failed send failed too: keep what the receive saw
 * (the peer closed, reset, answered garbage) and add why the send failed. */
static void conn_send_failed(struct conn *c, int send_err)
{
	size_t n = strlen(c->err);

	if (n < c->errlen)
		snprintf(c->err + n, c->errlen - n, " (sending the request failed: %s)",
		         strerror(send_err));
}

static int conn_timed_out(struct conn *c, const char *doing)
{
	return conn_fail(c, "timed out after %d ms %s", c->timeout_ms, doing);
}

/* Waits until fd is ready for events. Returns 1, 0 on timeout, -1 on a
 * poll error (errno set). */
static int conn_wait(struct conn *c, short events)
{
	struct pollfd p = {.fd = c->fd, .events = events};

	for (;;) {
		int left = -1;
		if (c->deadline > 0) {
			int64_t ms = c->deadline - clock_mono_ms();
			if (ms <= 0)
				return 0;
			left = ms > INT32_MAX ? INT32_MAX : (int)ms;
		}
		int n = poll(&p, 1, left);
		if (n > 0)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static int connect_fail(struct conn *c, int e)
{
	int hint = e == ENOENT || e == ECONNREFUSED;

	snprintf(c->err, c->errlen, "cannot connect to %s: %s%s", c->endpoint, strerror(e),
	         hint ? " (is the server running?)" : "");
	return -1;
}

/* Finishes a nonblocking connect that returned EINPROGRESS. Returns 0 or
 * an errno value (ETIMEDOUT when the deadline passed). */
static int connect_finish(struct conn *c)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	int r = conn_wait(c, POLLOUT);

	if (r == 0)
		return ETIMEDOUT;
	if (r < 0)
		return errno;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
		return errno;
	return soerr;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000L};

	nanosleep(&ts, NULL);
}

static int connect_unix(struct conn *c)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (strlen(c->endpoint) >= sizeof(sa.sun_path)) {
		snprintf(c->err, c->errlen,
		         "cannot connect to %s: socket path longer than %zu bytes; use a shorter "
		         "path",
		         c->endpoint, sizeof(sa.sun_path) - 1);
		return -1;
	}
	memcpy(sa.sun_path, c->endpoint, strlen(c->endpoint) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		return connect_fail(c, errno);
	for (;;) {
		if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EINPROGRESS) {
			int e = connect_finish(c);
			if (e == ETIMEDOUT)
				return conn_timed_out(c, "connecting");
			return e == 0 ? 0 : connect_fail(c, e);
		}
		if (errno != EAGAIN)
			return connect_fail(c, errno);
		/* The listen backlog is full: try again until the deadline. */
		if (c->deadline > 0 && clock_mono_ms() >= c->deadline)
			return conn_timed_out(c, "connecting (the server's backlog is full)");
		sleep_ms(5);
	}
}

/* Splits "http://HOST:PORT[/...]" into host and port ("[::1]" allowed). */
static int parse_http_endpoint(struct conn *c, char *host, size_t hostlen, char *port,
                               size_t portlen)
{
	const char *h = c->endpoint + strlen("http://");
	const char *end = h + strcspn(h, "/");
	const char *colon = NULL;
	const char *hend = NULL;

	if (*h == '[') {
		hend = memchr(h, ']', (size_t)(end - h));
		if (hend == NULL)
			goto bad;
		h++;
		colon = hend + 1 < end && hend[1] == ':' ? hend + 1 : NULL;
	} else {
		colon = memchr(h, ':', (size_t)(end - h));
		hend = colon != NULL ? colon : end;
	}
	if (hend == h || (size_t)(hend - h) >= hostlen)
		goto bad;
	memcpy(host, h, (size_t)(hend - h));
	host[hend - h] = '\0';
	if (colon == NULL) {
		snprintf(port, portlen, "80");
		return 0;
	}
	if (colon + 1 >= end || (size_t)(end - colon - 1) >= portlen)
		goto bad;
	memcpy(port, colon + 1, (size_t)(end - colon - 1));
	port[end - colon - 1] = '\0';
	return 0;
bad:
	snprintf(c->err, c->errlen,
	         "bad endpoint %s: expected http://HOST:PORT or a Unix socket path", c->endpoint);
	return -1;
}

static int connect_tcp(struct conn *c)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	char host[256], port[16];
	int e = ECONNREFUSED;
	int g;

	if (parse_http_endpoint(c, host, sizeof(host), port, sizeof(port)) != 0)
		return -1;
	g = getaddrinfo(host, port, &hints, &res);
	if (g != 0) {
		snprintf(c->err, c->errlen, "cannot resolve %s (from %s): %s", host, c->endpoint,
		         gai_strerror(g));
		return -1;
	}
	for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
		c->fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		               a->ai_protocol);
		if (c->fd < 0) {
			e = errno;
			continue;
		}
		if (connect(c->fd, a->ai_addr, a->ai_addrlen) == 0)
			e = 0;
		else
			e = errno == EINPROGRESS ? connect_finish(c) : errno;
		if (e == 0 || e == ETIMEDOUT)
			break;
		close(c->fd);
		c->fd = -1;
	}
	freeaddrinfo(res);
	if (e == ETIMEDOUT)
		return conn_timed_out(c, "connecting");
	return e == 0 ? 0 : connect_fail(c, e);
}

static int has_header(const char *const *headers, const char *name)
{
	size_t n = strlen(name);

	for (const char *const *h = headers; h != NULL && *h != NULL; h++) {
		if (strncasecmp(*h, name, n) == 0 && (*h)[n] == ':')
			return 1;
	}
	return 0;
}

static int build_request(struct conn *c, const char *const *headers, const char *body,
                         size_t body_len, struct buf *req)
{
	int tcp = strncmp(c->endpoint, "http://", 7) == 0;
	int rc = 0;

	rc |= buf_printf(req, "%s %s HTTP/1.1\r\n", c->method, c->path);
	if (tcp) {
		const char *h = c->endpoint + 7;
		rc |= buf_printf(req, "Host: %.*s\r\n", (int)strcspn(h, "/"), h);
	} else {
		rc |= buf_printf(req, "Host: localhost\r\n");
	}
	for (const char *const *h = headers; h != NULL && *h != NULL; h++)
		rc |= buf_printf(req, "%s\r\n", *h);
	if (body != NULL && !has_header(headers, "Content-Type"))
		rc |= buf_printf(req, "Content-Type: application/json\r\n");
	if (body != NULL || (strcmp(c->method, "GET") != 0 && strcmp(c->method, "HEAD") != 0))
		rc |= buf_printf(req, "Content-Length: %zu\r\n", body != NULL ? body_len : 0);
	rc |= buf_printf(req, "%s\r\n", c->keep_alive ? "" : "Connection: close\r\n");
	if (rc != 0) /* only a line over INT_MAX bytes */
		return conn_fail(c, "cannot format the request line and headers");
	if (body != NULL && body_len > 0)
		buf_add(req, body, body_len);
	return 0;
}

/* Sends all of req. Returns 0, or an errno value (ETIMEDOUT on timeout). */
static int send_all(struct conn *c, const struct buf *req)
{
	size_t off = 0;

	while (off < req->len) {
		ssize_t n = send(c->fd, req->p + off, req->len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return errno;
		int r = conn_wait(c, POLLOUT);
		if (r == 0)
			return ETIMEDOUT;
		if (r < 0)
			return errno;
	}
	return 0;
}

/* Finds the end of the header block (blank line). Returns its length
 * including the blank line, or 0 when not there yet. */
static size_t header_end(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] != '\n')
			continue;
		if (i + 1 < len && p[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && p[i + 1] == '\r' && p[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Copies the value of a header line "Name: value" trimmed into val. */
static int header_value(const char *line, size_t len, const char *name, char *val, size_t vallen)
{
	size_t n = strlen(name);
	const char *v = NULL;
	size_t vl;

	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return 0;
	v = line + n + 1;
	vl = len - n - 1;
	while (vl > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vl--;
	}
	while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t' || v[vl - 1] == '\r'))
		vl--;
	snprintf(val, vallen, "%.*s", (int)vl, v);
	return 1;
}

static int parse_status_line(struct conn *c, const char *p, size_t len, struct head *h)
{
	if (len < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' || p[9] < '1' || p[9] > '5' ||
	    p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
		return conn_fail(c, "not an HTTP/1.x response: \"%.*s\"",
		                 (int)(strcspn(p, "\r\n") < 40 ? strcspn(p, "\r\n") : 40), p);
	h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	return 0;
}

static int parse_length(struct conn *c, const char *val, struct head *h)
{
	char *end = NULL;
	unsigned long long n;

	errno = 0;
	n = strtoull(val, &end, 10);
	if (*val < '0' || *val > '9' || *end != '\0' || errno != 0)
		return conn_fail(c, "bad Content-Length \"%s\" in the response", val);
	if (n > HTTPC_MAX_BODY)
		return conn_fail(c, "response body of %llu bytes exceeds the 64 MiB limit", n);
	h->content_len = (long long)n;
	return 0;
}

/* Parses the status line and the headers that matter for the body. */
static int parse_head(struct conn *c, const char *p, size_t hlen, struct head *h)
{
	const char *line = p;
	const char *end = p + hlen;
	char val[128];

	h->header_len = hlen;
	h->content_len = -1;
	h->chunked = 0;
	if (parse_status_line(c, p, hlen, h) != 0)
		return -1;
	h->close = p[7] == '0';
	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t len = (size_t)((nl != NULL ? nl : end) - line);
		if (header_value(line, len, "Content-Length", val, sizeof(val)) &&
		    parse_length(c, val, h) != 0)
			return -1;
		if (header_value(line, len, "Transfer-Encoding", val, sizeof(val)) &&
		    strcasestr(val, "chunked") != NULL)
			h->chunked = 1;
		if (header_value(line, len, "Connection", val, sizeof(val)))
			h->close = strcasestr(val, "close") != NULL;
		line = nl != NULL ? nl + 1 : end;
	}
	h->no_body = strcmp(c->method, "HEAD") == 0 || h->status == 204 || h->status == 304 ||
	             h->status < 200;
	return 0;
}

/* Reads one CRLF- (or LF-) terminated line at raw[*pos]. Returns its length
 * without the line end and advances *pos, or -1 when not complete. */
static long take_line(const char *raw, size_t len, size_t *pos)
{
	const char *nl = memchr(raw + *pos, '\n', len - *pos);
	long n;

	if (nl == NULL)
		return -1;
	n = (long)(nl - (raw + *pos));
	*pos = (size_t)(nl - raw) + 1;
	if (n > 0 && nl[-1] == '\r')
		n--;
	return n;
}

static int chunk_size(struct conn *c, const char *line, long n, size_t *size)
{
	char *end = NULL;
	char hex[32];
	unsigned long long v;

	snprintf(hex, sizeof(hex), "%.*s", (int)(n < 31 ? n : 31), line);
	errno = 0;
	v = strtoull(hex, &end, 16);
	if (end == hex || errno != 0 || (*end != '\0' && *end != ';' && *end != ' '))
		return conn_fail(c, "bad chunk size \"%s\" in the response", hex);
	if (v > HTTPC_MAX_BODY)
		return conn_fail(c, "response chunk of %llu bytes exceeds the 64 MiB limit", v);
	*size = (size_t)v;
	return 0;
}

/* Decodes what it can of raw[ch->pos..len) into body. Returns 1 when the
 * body is complete, 0 when more bytes are needed, -1 on a malformed body. */
static int chunked_feed(struct conn *c, struct chunked *ch, const char *raw, size_t len,
                        struct buf *body)
{
	for (;;) {
		size_t pos = ch->pos;
		long n;
		switch (ch->state) {
		case CH_SIZE:
			n = take_line(raw, len, &pos);
			if (n < 0)
				return 0;
			if (chunk_size(c, raw + ch->pos, n, &ch->left) != 0)
				return -1;
			ch->state = ch->left > 0 ? CH_DATA : CH_TRAILER;
			break;
		case CH_DATA: {
			size_t take = len - pos < ch->left ? len - pos : ch->left;
			if (body->len + take > HTTPC_MAX_BODY)
				return conn_fail(c, "response body exceeds the 64 MiB limit");
			buf_add(body, raw + pos, take);
			pos += take;
			ch->left -= take;
			if (ch->left > 0) {
				ch->pos = pos;
				return 0;
			}
			ch->state = CH_DATA_END;
			break;
		}
		case CH_DATA_END:
			n = take_line(raw, len, &pos);
			if (n < 0)
				return 0;
			if (n != 0)
				return conn_fail(
				    c, "chunk not followed by a line end in the response");
			ch->state = CH_SIZE;
			break;
		case CH_TRAILER:
			n = take_line(raw, len, &pos);
			if (n < 0)
				return 0;
			if (n == 0)
				ch->state = CH_DONE;
			break;
		case CH_DONE:
			return 1;
		}
		ch->pos = pos;
	}
}

/* A response being read: raw holds the bytes received, chunks the decoded
 * body when it is chunked. */
struct reader {
	struct buf raw;
	struct buf chunks;
	struct head head;
	struct chunked ch;
	int have_head;
	int eof;
};

/* Drops a 1xx interim response from the front of raw. */
static void drop_interim(struct reader *r)
{
	memmove(r->raw.p, r->raw.p + r->head.header_len, r->raw.len - r->head.header_len + 1);
	r->raw.len -= r->head.header_len;
	r->have_head = 0;
}

/* Returns 1 when the response is complete, 0 when more is needed, -1 on
 * error. */
static int reader_check(struct conn *c, struct reader *r)
{
	for (;;) {
		if (!r->have_head) {
			size_t hl = header_end(r->raw.p, r->raw.len);
			if (hl == 0) {
				if (r->raw.len > HTTPC_MAX_HEADER)
					return conn_fail(c, "response header exceeds 64 KiB");
				return 0;
			}
			if (parse_head(c, r->raw.p, hl, &r->head) != 0)
				return -1;
			r->have_head = 1;
			r->ch.pos = hl;
		}
		if (r->head.status >= 100 && r->head.status < 200 && r->head.status != 101) {
			drop_interim(r);
			continue;
		}
		break;
	}
	if (r->head.no_body)
		return 1;
	if (r->head.chunked)
		return chunked_feed(c, &r->ch, r->raw.p, r->raw.len, &r->chunks);
	if (r->head.content_len >= 0)
		return r->raw.len - r->head.header_len >= (size_t)r->head.content_len;
	if (r->raw.len - r->head.header_len > HTTPC_MAX_BODY)
		return conn_fail(c, "response body exceeds the 64 MiB limit");
	return r->eof;
}

/* Reads once. Returns 1 after reading (or at EOF), 0 on timeout, -1 on error. */
static int reader_read(struct conn *c, struct reader *r)
{
	for (;;) {
		buf_reserve(&r->raw, HTTPC_READ_CHUNK);
		ssize_t n = recv(c->fd, r->raw.p + r->raw.len, HTTPC_READ_CHUNK, 0);
		if (n > 0) {
			r->raw.len += (size_t)n;
			r->raw.p[r->raw.len] = '\0';
			c->received += (size_t)n;
			return 1;
		}
		if (n == 0) {
			r->eof = 1;
			return 1;
		}
		if (errno == EINTR)
			continue;
		if (errno == ECONNRESET && r->raw.len > 0) {
			r->eof = 1;
			return 1;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return conn_fail(c, "reading the response: %s", strerror(errno));
		int w = conn_wait(c, POLLIN);
		if (w == 0)
			return 0;
		if (w < 0)
			return conn_fail(c, "waiting for the response: %s", strerror(errno));
	}
}

static int eof_error(struct conn *c, const struct reader *r)
{
	if (r->raw.len == 0)
		return conn_fail(c, "connection closed without a response");
	if (!r->have_head)
		return conn_fail(c, "connection closed inside the response header");
	if (r->head.chunked)
		return conn_fail(c, "connection closed inside a chunked body");
	return conn_fail(c, "connection closed after %zu of %lld body bytes",
	                 r->raw.len - r->head.header_len, r->head.content_len);
}

/* Copies the decoded body into resp. */
static void take_body(const struct reader *r, struct httpc_response *resp)
{
	const char *src = "";
	size_t n = 0;

	if (r->head.chunked) {
		src = r->chunks.p != NULL ? r->chunks.p : "";
		n = r->chunks.len;
	} else if (!r->head.no_body) {
		src = r->raw.p + r->head.header_len;
		n = r->raw.len - r->head.header_len;
		if (r->head.content_len >= 0 && (size_t)r->head.content_len < n)
			n = (size_t)r->head.content_len;
	}
	resp->body = xmalloc(n + 1);
	memcpy(resp->body, src, n);
	resp->body[n] = '\0';
	resp->body_len = n;
	resp->status = r->head.status;
}

/* Whether the connection can carry another request after the response
 * in r: framed by length (not by EOF), not closed by the server, and
 * nothing read past its end. */
static int reusable(const struct reader *r)
{
	size_t end;

	if (r->eof || r->head.close)
		return 0;
	if (r->head.no_body)
		end = r->head.header_len;
	else if (r->head.chunked)
		end = r->ch.pos;
	else if (r->head.content_len >= 0)
		end = r->head.header_len + (size_t)r->head.content_len;
	else
		return 0;
	return end == r->raw.len;
}

/* Reads one response into resp; *keep says whether the connection can be
 * used again. */
static int receive(struct conn *c, struct httpc_response *resp, int *keep)
{
	struct reader r = {0};
	int rc = -1;

	*keep = 0;
	for (;;) {
		int done = reader_check(c, &r);
		if (done < 0)
			goto out;
		if (done > 0)
			break;
		if (r.eof) {
			eof_error(c, &r);
			goto out;
		}
		if (c->deadline > 0 && clock_mono_ms() >= c->deadline) {
			conn_timed_out(c, "waiting for the response");
			goto out;
		}
		int got = reader_read(c, &r);
		if (got < 0)
			goto out;
		if (got == 0) {
			conn_timed_out(c, "waiting for the response");
			goto out;
		}
	}
	take_body(&r, resp);
	rc = 0;
	*keep = reusable(&r);
out:
	free(r.raw.p);
	free(r.chunks.p);
	return rc;
}

int httpc_request(const char *endpoint, const char *method, const char *path,
                  const char *const *headers, const char *body, size_t body_len, int timeout_ms,
                  struct httpc_response *resp, char *err, size_t errlen)
{
	struct conn c = {.endpoint = endpoint,
	                 .method = method,
	                 .path = path,
	                 .timeout_ms = timeout_ms,
	                 .fd = -1,
	                 .err = err,
	                 .errlen = errlen};
	struct buf req = {0};
	int rc = -1;
	int send_err, keep;

	memset(resp, 0, sizeof(*resp));
	if (timeout_ms > 0)
		c.deadline = clock_mono_ms() + timeout_ms;
	if (endpoint == NULL || *endpoint == '\0') {
		snprintf(err, errlen, "no endpoint given (a Unix socket path or http://HOST:PORT)");
		return -1;
	}
	if (build_request(&c, headers, body, body_len, &req) != 0)
		goto out;
	if ((strncmp(endpoint, "http://", 7) == 0 ? connect_tcp(&c) : connect_unix(&c)) != 0)
		goto out;
	send_err = send_all(&c, &req);
	if (send_err == ETIMEDOUT) {
		conn_timed_out(&c, "sending the request");
		goto out;
	}
	/* A server may answer and close before reading all of the request
	 * (e.g. 413): read its answer before blaming the send. */
	rc = receive(&c, resp, &keep);
	if (rc != 0 && send_err != 0)
		conn_send_failed(&c, send_err);
out:
	if (c.fd >= 0)
		close(c.fd);
	free(req.p);
	return rc;
}

struct httpc_session {
	char *endpoint;
	int fd; /* -1: not connected */
};

struct httpc_session *httpc_session_new(const char *endpoint)
{
	struct httpc_session *s = xcalloc(1, sizeof(*s));

	s->endpoint = xstrdup(endpoint != NULL ? endpoint : "");
	s->fd = -1;
	return s;
}

void httpc_session_free(struct httpc_session *s)
{
	if (s == NULL)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->endpoint);
	free(s);
}

int httpc_session_request(struct httpc_session *s, const char *method, const char *path,
                          const char *const *headers, const char *body, size_t body_len,
                          int timeout_ms, struct httpc_response *resp, char *err, size_t errlen)
{
	struct conn c = {.endpoint = s->endpoint,
	                 .method = method,
	                 .path = path,
	                 .timeout_ms = timeout_ms,
	                 .fd = -1,
	                 .keep_alive = 1,
	                 .err = err,
	                 .errlen = errlen};
	struct buf req = {0};
	int rc = -1;

	memset(resp, 0, sizeof(*resp));
	if (timeout_ms > 0)
		c.deadline = clock_mono_ms() + timeout_ms;
	if (*s->endpoint == '\0') {
		snprintf(err, errlen, "no endpoint given (a Unix socket path or http://HOST:PORT)");
		return -1;
	}
	if (build_request(&c, headers, body, body_len, &req) != 0)
		goto out;
	for (int tries = 0;; tries++) {
		int reused = s->fd >= 0, send_err, keep = 0;

		if (reused) {
			c.fd = s->fd;
		} else {
			if ((strncmp(s->endpoint, "http://", 7) == 0 ? connect_tcp(&c)
			                                             : connect_unix(&c)) != 0)
				goto out;
			s->fd = c.fd;
		}
		c.received = 0;
		send_err = send_all(&c, &req);
		if (send_err == ETIMEDOUT) {
			conn_timed_out(&c, "sending the request");
			rc = -1;
		} else {
			rc = receive(&c, resp, &keep);
			if (rc != 0 && send_err != 0)
				conn_send_failed(&c, send_err);
		}
		if (rc == 0 && keep)
			break;
		close(s->fd);
		s->fd = c.fd = -1;
		/* A kept connection the server had closed while it was idle
		 * fails before any byte of a response: that request was not
		 * read, so it goes once more on a new connection. */
		if (rc == 0 || !reused || c.received > 0 || tries > 0 ||
		    (c.deadline > 0 && clock_mono_ms() >= c.deadline))
			break;
		httpc_response_free(resp);
	}
out:
	free(req.p);
	return rc;
}

void httpc_response_free(struct httpc_response *resp)
{
	if (resp == NULL)
		return;
	free(resp->body);
	resp->body = NULL;
	resp->body_len = 0;
}

int httpc_wait_ready(const char *endpoint, int timeout_ms)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int64_t deadline = clock_mono_ms() + timeout_ms;
	size_t len = strlen(endpoint);

	if (strncmp(endpoint, "http://", 7) == 0 || len >= sizeof(sa.sun_path))
		return 0;
	memcpy(sa.sun_path, endpoint, len + 1);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		int e = errno;

		if (fd >= 0)
			close(fd);
		if (ok)
			return 0;
		if ((e != ENOENT && e != ECONNREFUSED) || clock_mono_ms() >= deadline)
			return -1;
		sleep_ms(5);
	}
}

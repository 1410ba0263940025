/* httpc.h — a small blocking HTTP/1.1 client for idem's own peers: idemctl
 * talking to the supervisor's control API, a worker talking to the
 * supplier, and the stress and benchmark clients. One request per
 * connection (Connection: close), or a session that keeps one connection
 * open across requests. */
#ifndef IDEM_HTTPC_H
#define IDEM_HTTPC_H

#include <stddef.h>

struct httpc_response {
	int status; /* e.g. 200 */
	char *body; /* malloc'd, NUL-terminated; may be empty */
	size_t body_len;
};

/* endpoint is a Unix socket path ("run/idem.sock") or "http://HOST:PORT"
 * for TCP. headers is NULL or a NULL-terminated list of "Name: value"
 * lines. body may be NULL. The whole exchange must finish within
 * timeout_ms. Responses with Content-Length or read-until-close bodies
 * are understood; chunked bodies are too.
 * Returns 0 with *resp filled (any HTTP status), or -1 with err naming the
 * endpoint and the cause ("cannot connect to run/idem.sock: No such file
 * or directory (is the server running?)", "timed out after 5000 ms"). */
int httpc_request(const char *endpoint, const char *method, const char *path,
                  const char *const *headers, const char *body, size_t body_len, int timeout_ms,
                  struct httpc_response *resp, char *err, size_t errlen);

void httpc_response_free(struct httpc_response *resp);

/* A session: requests in turn over one kept-alive connection, opened on
 * the first request and again whenever the server closed it. A request
 * that fails on a kept connection before any byte of the response came
 * back (the server had closed it while idle) is sent once more on a new
 * connection; any other failure is returned as httpc_request's. Not for
 * use by two threads at once. */
struct httpc_session;
struct httpc_session *httpc_session_new(const char *endpoint);
void httpc_session_free(struct httpc_session *s);
int httpc_session_request(struct httpc_session *s, const char *method, const char *path,
                          const char *const *headers, const char *body, size_t body_len,
                          int timeout_ms, struct httpc_response *resp, char *err, size_t errlen);

/* Waits up to timeout_ms for a Unix socket endpoint to accept connections
 * (a server that is restarting). Returns 0 once it does, -1 when it still
 * does not. A TCP endpoint returns 0 at once. */
int httpc_wait_ready(const char *endpoint, int timeout_ms);

#endif

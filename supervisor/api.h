/* api.h — the control API: HTTP/1.1 + JSON (evhttp) on the Unix socket
 * SOCKET and, when HTTP_LISTEN is set, on loopback TCP. Owns the
 * listeners and the requests in flight. */
#ifndef IDEM_API_H
#define IDEM_API_H

#include <stddef.h>
#include <stdint.h>

struct sup;

struct api;

int api_start(struct sup *sup, struct api **out, char *err, size_t errlen);
void api_free(struct api *a);

struct api_stats {
	int64_t request_timeouts; /* requests not in within API_REQUEST_TIMEOUT (408) */
};

const struct api_stats *api_stats(const struct api *a);

#endif

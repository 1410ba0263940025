/* metrics.h — GET /metrics: the engine's, the pool's and the API's
 * counters and histograms (engine_stats(), pool_stats(), api_stats()),
 * with the state DB's counts, as Prometheus text. Owns nothing. */
#ifndef IDEM_METRICS_H
#define IDEM_METRICS_H

#include <stddef.h>

struct evbuffer;
struct sup;

/* Appends the Prometheus text of every metric to buf. Returns 0, or -1
 * with err when the state DB could not be read. */
int metrics_write(struct sup *sup, struct evbuffer *buf, char *err, size_t errlen);

#endif

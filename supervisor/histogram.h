/* histogram.h — fixed-bucket histograms in seconds (Prometheus' le
 * buckets, 0.5 ms to 10 s, then +Inf), alone or as a small set labelled
 * by name. A leaf: observing costs a bucket search and three additions,
 * no allocation; metrics.c renders them. */
#ifndef IDEM_HISTOGRAM_H
#define IDEM_HISTOGRAM_H

#include <stdint.h>

#define HISTOGRAM_NBUCKETS 14 /* finite upper bounds; +Inf is the count */
#define HISTOGRAM_LABELS 8    /* labels of a set; the last one is "other" */
#define HISTOGRAM_NAME_MAX 64

/* The upper bounds of the finite buckets, in seconds. */
extern const double histogram_bounds[HISTOGRAM_NBUCKETS];

struct histogram {
	uint64_t buckets[HISTOGRAM_NBUCKETS]; /* per bucket, not cumulative */
	uint64_t count;
	double sum; /* seconds */
};

/* Histograms by label (an activity's name): a new name claims a label
 * while there are free ones, then everything else is "other". */
struct histogram_set {
	struct histogram h[HISTOGRAM_LABELS];
	char name[HISTOGRAM_LABELS][HISTOGRAM_NAME_MAX];
	int n;
};

void histogram_observe(struct histogram *h, double seconds);
/* The histogram of name in set. */
struct histogram *histogram_of(struct histogram_set *set, const char *name);

/* Seconds between two clock_mono_us() readings. */
static inline double histogram_seconds(int64_t from_us, int64_t to_us)
{
	return (double)(to_us - from_us) / 1e6;
}

#endif

/* histogram.c — see histogram.h. */
#include "histogram.h"

#include <stdio.h>
#include <string.h>

const double histogram_bounds[HISTOGRAM_NBUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

void histogram_observe(struct histogram *h, double seconds)
{
	int i = 0;

	if (seconds < 0)
		seconds = 0;
	while (i < HISTOGRAM_NBUCKETS && seconds > histogram_bounds[i])
		i++;
	if (i < HISTOGRAM_NBUCKETS)
		h->buckets[i]++;
	h->count++;
	h->sum += seconds;
}

struct histogram *histogram_of(struct histogram_set *set, const char *name)
{
	int last = HISTOGRAM_LABELS - 1;

	for (int i = 0; i < set->n; i++)
		if (strcmp(set->name[i], name) == 0)
			return &set->h[i];
	if (set->n < last && strlen(name) < HISTOGRAM_NAME_MAX) {
		snprintf(set->name[set->n], HISTOGRAM_NAME_MAX, "%s", name);
		return &set->h[set->n++];
	}
	snprintf(set->name[last], HISTOGRAM_NAME_MAX, "other");
	set->n = HISTOGRAM_LABELS;
	return &set->h[last];
}

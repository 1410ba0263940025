/* prune.c — the pruner: a timer on the loop that hands store_prune() one
 * small batch at a time, so that each turn it joins stays short; the
 * turn's COMMIT carries the deletes. Between passes over the closed
 * workflows it waits PRUNE_IDLE_MS; within a pass, while batches come
 * back full, PRUNE_BUSY_MS, which lets starts, results and timers run in
 * between. */
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>

#include "clock.h"
#include "log.h"
#include "prune.h"
#include "store.h"
#include "sup.h"
#include "timer.h"
#include "xalloc.h"

#define PRUNE_SCAN 64      /* closed workflows looked at per batch */
#define PRUNE_BUSY_MS 10   /* between batches of a pass */
#define PRUNE_IDLE_MS 1000 /* between passes */

struct prune {
	struct sup *sup;
	struct event *timer;
	struct store_prune_cursor cur;
	long long pass_pruned;
};

static void prune_cb(evutil_socket_t fd, short what, void *arg)
{
	struct prune *p = arg;
	char err[512];
	int pruned = 0, seen;

	(void)fd;
	(void)what;
	if (p->sup->stopping)
		return;
	seen = store_prune(p->sup->store, clock_wall_ms(), &p->sup->cfg, &p->cur, PRUNE_SCAN,
	                   &pruned, err, sizeof(err));
	if (seen < 0) {
		/* The turn's COMMIT fails on it, or it passes: try again later. */
		log_warn("pruning failed; trying again", "error=\"%s\"", err);
		timer_in(p->timer, PRUNE_IDLE_MS);
		return;
	}
	p->pass_pruned += pruned;
	if (seen == PRUNE_SCAN) {
		timer_in(p->timer, PRUNE_BUSY_MS);
		return;
	}
	if (p->pass_pruned > 0)
		log_info("pruned closed workflows past their retention", "count=%lld",
		         p->pass_pruned);
	p->pass_pruned = 0;
	timer_in(p->timer, PRUNE_IDLE_MS);
}

struct prune *prune_start(struct sup *sup)
{
	struct prune *p;

	if (config_retention_min(&sup->cfg) == 0)
		return NULL;
	p = xcalloc(1, sizeof(*p));
	p->sup = sup;
	p->cur.closed_at = INT64_MIN;
	p->timer = evtimer_new(sup->base, prune_cb, p);
	timer_in(p->timer, PRUNE_IDLE_MS);
	return p;
}

void prune_free(struct prune *p)
{
	if (p == NULL)
		return;
	event_free(p->timer);
	free(p);
}

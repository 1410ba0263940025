/* spare.c — the spare worker (SPARE_WORKER): one more worker, started
 * and waiting ready as slot nslots, so that a slot whose worker died, or
 * whose new worker is still starting, need not wait for one to start and
 * open the app DB (2-3 ms, a third of a slot's time when a tenth of the
 * attempts kill their worker). The spare never runs an attempt, and
 * gives only a ready worker with its channel open. What moves between
 * the spare and a slot is the worker (pid, channel, a fork on its way,
 * spawn times); the index, the timers, the task and the death history
 * stay with the slot, and both sides change state through the lifecycle
 * table: SE_ADOPT for the slot, SE_HAND_OVER or SE_TRADE for the spare. */
#include "log.h"
#include "pool_internal.h"

/* Gives a's worker to b and b's to a: the pid, the channel, a fork still
 * on its way and the spawn times belong to the worker, not to the slot. */
static void swap_workers(struct slot *a, struct slot *b)
{
	struct slot t = *a;

	a->pid = b->pid;
	a->pid_pending = b->pid_pending;
	a->spawn_token = b->spawn_token;
	a->bev = b->bev;
	a->dec = b->dec;
	a->hist.spawned_at = b->hist.spawned_at;
	a->hist.ready_at = b->hist.ready_at;
	a->expected_exit = b->expected_exit;
	a->cause = b->cause;
	b->pid = t.pid;
	b->pid_pending = t.pid_pending;
	b->spawn_token = t.spawn_token;
	b->bev = t.bev;
	b->dec = t.dec;
	b->hist.spawned_at = t.hist.spawned_at;
	b->hist.ready_at = t.hist.ready_at;
	b->expected_exit = t.expected_exit;
	b->cause = t.cause;
	slot_bind_channel(a);
	slot_bind_channel(b);
}

/* The spare, when it has a ready worker to give, else NULL. */
static struct slot *spare_ready(struct pool *p)
{
	struct slot *sp = p->spare;

	return sp != NULL && sp->state == SLOT_READY && sp->bev != NULL ? sp : NULL;
}

/* A slot still waiting for its new worker (the spare was not ready when
 * its last one died) takes the spare's if that one is ready first; the
 * spare then waits for the new one instead. */
struct slot *spare_trade(struct pool *p)
{
	struct slot *sp = spare_ready(p);

	if (sp == NULL)
		return NULL;
	for (int i = 0; i < p->nslots; i++) {
		struct slot *sl = &p->slots[i];

		if (sl->state != SLOT_SPAWNING)
			continue;
		swap_workers(sl, sp);
		evtimer_del(sl->timer);
		slot_on(sl, SE_ADOPT);
		slot_on(sp, SE_TRADE); /* its worker is sl's new one */
		slot_await_ready(sp);
		log_debug("worker taken from the spare", "slot=%d worker_pid=%ld", sl->index,
		          (long)sl->pid);
		return sl;
	}
	return NULL;
}

/* Only for a death that would respawn at once: a slot in backoff with a
 * delay (a crash loop) waits as before. */
int spare_adopt(struct pool *p, struct slot *sl)
{
	struct slot *sp = spare_ready(p);

	if (sp == NULL || sl == sp)
		return 0;
	swap_workers(sl, sp); /* sp gets the dead worker's empty place */
	sl->expected_exit = 0;
	sl->close_reason[0] = '\0';
	sl->cause = DEATH_UNEXPECTED;
	sl->spawns++;
	sl->restarts++;
	slot_on(sl, SE_ADOPT);
	log_debug("worker taken from the spare", "slot=%d worker_pid=%ld", sl->index,
	          (long)sl->pid);
	slot_on(sp, SE_HAND_OVER); /* its worker now belongs to sl */
	spawn_worker(sp);
	return 1;
}

/* sup.h — idem-supervisor's context (main.c): the configuration, the
 * event loop and the modules that run on it.
 *
 * One event_base; nothing blocks but SQLite. Each loop turn ends in
 * engine_turn_end(): replay workflows that can progress, assign ready
 * steps to idle workers, COMMIT once (group commit), and only once that
 * commit is durable let anything leave: task frames, HTTP replies, waiter
 * wake-ups (with SYNC=full a thread syncs behind the loop: store.c). So
 * a client never hears of a start or completion that is not durable, and
 * no worker runs an activity for a workflow whose start could still be
 * lost. */
#ifndef IDEM_SUP_H
#define IDEM_SUP_H

#include <event2/event.h>
#include <sqlite3.h>
#include <stdint.h>

#include "config.h"
#include "fault.h"
#include "retry.h"

struct api;
struct idem_app;
struct engine;
struct faultctl;
struct pool;
struct store;

struct sup {
	struct idem_config cfg;
	const struct idem_app *app; /* the app it runs (APP) */
	char bindir[512];           /* where idem-worker and idem-supplier live */
	char env_path[512];         /* the .env it read, passed on to children */
	struct event_base *base;
	struct store *store;
	struct appconn *appdb; /* for seeding and the app's endpoints */
	struct pool *pool;
	struct engine *engine;
	struct api *api;
	struct retry_policy retry;
	struct fault_config faults; /* the rates in force (faultctl.h) */
	struct faultctl *faultctl;
	int64_t fault_plan_id; /* their row in the state DB's fault_plans */
	int stopping;          /* SIGTERM/SIGINT seen: no new work */
	int64_t started_mono;
};

#endif

/* faultctl.h — the fault plan a live supervisor runs under: its config's
 * FAULT_* keys, or a plan set at runtime (PUT /v1/faults: idemctl faults
 * set/off/reset) until it is reset, its time is up, or the supervisor
 * stops. The config's plan comes back after a runtime plan; SIGHUP
 * re-reads it.
 *
 * Each plan taken is logged, counted, and recorded as a row of the state
 * DB's fault_plans; sup->faults holds the rates in force and
 * sup->fault_plan_id that row, which each attempt's "started" event
 * names. The seed is the run's: an attempt's fault stays a pure function
 * of (seed, ids, step, attempt, kind) under the rates in force when it
 * was planned, so it can be derived again from the history. */
#ifndef IDEM_FAULTCTL_H
#define IDEM_FAULTCTL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "fault.h"

struct sup;
struct faultctl;

/* Sets sup->faults from sup->cfg, with the seed of FAULT_SEED or a random
 * one. Records nothing yet. */
struct faultctl *faultctl_new(struct sup *sup);
void faultctl_free(struct faultctl *f);

/* Records the config's plan as this run's first, in this turn's
 * transaction. Returns 0, or -1 with err. */
int faultctl_start(struct faultctl *f, char *err, size_t errlen);

/* A change, as PUT /v1/faults's body:
 *   {"kill_rate": 0.2, "error_rate": 0.1, ..., "for": "5m"}  the config's
 *       plan with these FAULT_* keys (lower case, without FAULT_) changed
 *   {"off": true, "for": "30s"}   no fault at all
 *   {"reset": true}               the config's plan again
 * "for" ends it (a duration; without it the plan holds until reset or
 * the end of the run). Returns 0; -1 with err when the body is wrong
 * (nothing changed); -2 with err when the state DB failed. */
int faultctl_apply(struct faultctl *f, const json_t *body, char *err, size_t errlen);

/* The configuration was re-read (SIGHUP): its FAULT_* keys are the new
 * config plan, in force at once unless a runtime plan is. FAULT_SEED and
 * FAULT_VFS keep their values from the start. Returns 0, -1 with err (a
 * state DB failure). */
int faultctl_reload(struct faultctl *f, const struct idem_config *cfg, char *err, size_t errlen);

/* Whether key is a FAULT_* key that may change on a live supervisor
 * (PUT /v1/faults, SIGHUP): all but FAULT_SEED and FAULT_VFS. */
int faultctl_live_key(const char *key);

/* GET /v1/faults without its history: {"source": "config"|"set"|"off",
 * "plan_id", "since", "until", "remaining_ms", "enabled", "in_force",
 * "config", "changes"} (NEW reference). */
json_t *faultctl_json(const struct faultctl *f);

/* Where the plan in force comes from: "config", "set" or "off". */
const char *faultctl_source(const struct faultctl *f);

/* Plans taken since the start's (set, off, reset, expired, reload). */
int64_t faultctl_changes(const struct faultctl *f);

/* The rates of c as the FAULT_* keys say them (NEW reference). */
json_t *faultctl_rates_json(const struct fault_config *c);

#endif

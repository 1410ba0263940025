/* render.h — the API's documents as text for people, on stdout (--json
 * prints the documents instead; see http_print_json). Every function
 * borrows its documents. By document:
 *   render_workflow.c  a workflow (get), its steps, the list of workflows
 *   render_timeline.c  a workflow's history as a timeline (show)
 *   render_stats.c     GET /v1/stats: stats, and each snapshot of top */
#ifndef IDEMCTL_RENDER_H
#define IDEMCTL_RENDER_H

#include <stddef.h>

#include <jansson.h>

/* "took 8ms" or "running for 2.5s"; "" before the workflow was created. */
void render_wf_duration(const json_t *wf, char *buf, size_t len);
/* The result summary of a completed workflow, or the error of a failed one. */
void render_wf_outcome(const json_t *wf, char *buf, size_t len);
/* workflow, status, input, result or error, created, closed: a line each. */
void render_wf_header(const json_t *wf);
/* The step summary of every step, a line each ("no steps yet"). */
void render_steps(const json_t *wf);
/* "step 0 ACTIVITY: completed after 1 attempt", with the last
 * error of a step that did not complete; seq when the step has none. */
void render_step_summary(const json_t *st, long long seq, char *buf, size_t len);
/* The short detail of one history event; st is its step or NULL. */
void render_event_detail(const json_t *ev, const json_t *st, char *buf, size_t len);
/* The workflows of a list as a table ("no workflows"). */
void render_list(const json_t *rows);

/* The history as a timeline: the workflow's start, each step with its
 * attempts (fault, outcome, retry wait, pid, durations), the close. */
void render_timeline(const json_t *wf, const json_t *events);

/* stats: counters, faults, the spare worker, then a row per worker slot. */
void render_stats(const json_t *s);
/* One snapshot of top: totals, rates since prev (NULL: over the uptime),
 * then a row per worker slot. */
void render_top(const json_t *s, const json_t *prev);

#endif

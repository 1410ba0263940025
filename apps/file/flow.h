/* flow.h — workflow types defined in JSON, not in C: a definition is
 * parsed once (flow_parse, which catches every mistake at start-up, with
 * its JSON path and the fix) and interpreted at each replay (flow_run), a
 * pure function of the start's input and the results the activities hand
 * back, like a workflow written in C (shared/idem_app.h).
 *
 * The format (the value of "workflows"."NAME" in an app's file):
 *
 *   {
 *     "id_field": "payment_id",
 *     "input": {"payment_id": "string", "customer": "string", "amount": "integer"},
 *     "defaults": {"currency": "EUR"},
 *     "steps": [
 *       {"name": "charge", "activity": "charge",
 *        "input": {"customer": {"$ref": "/input/customer"}, "key": {"$ref": "/step/key"}},
 *        "compensate": {"activity": "refund",
 *                       "input": {"charge_id": {"$ref": "/steps/charge/result/charge_id"}}}},
 *       {"name": "receipt", "activity": "send_receipt",
 *        "when": {"and": [{"gt": [{"$ref": "/steps/charge/result/amount"}, 0]},
 *                         {"exists": {"$ref": "/input/email"}}]},
 *        "input": {"to": {"$ref": "/input/email"}}}
 *     ],
 *     "result": {"charge_id": {"$ref": "/steps/charge/result/charge_id"},
 *                "receipt_sent": {"$ran": "receipt"}}
 *   }
 *
 * Members (any other member is an error, so that a typo fails at start-up):
 *   id_field  optional: the input field a start's workflow_id defaults to.
 *   input     optional: the required input fields and their JSON types:
 *             string, integer, number (integer or real), boolean, object,
 *             array, any. Other fields are allowed. A start whose input is
 *             not an object, or lacks a field, or has one of another type,
 *             is refused (flow_prepare).
 *   defaults  optional: literal values set at the start for the fields
 *             the input lacks (before the type check; a default must have
 *             the type "input" gives its field).
 *   steps     required: at most 1000, run in order. Each step:
 *     name       unique, 1..64 characters of A-Z a-z 0-9 _ -
 *     activity   an activity the app has
 *     input      optional template (below); default: the whole workflow input
 *     when       optional condition (below): false skips the step (no
 *                activity call, no step number used)
 *     compensate optional {"activity", "input" (a template, default: the
 *                whole workflow input)}: what undoes the step when a later
 *                step fails for good
 *     retry      optional: this step's retry policy, over its activity's
 *     timeout    optional: this step's start-to-close timeout
 *   result    optional template; default: {NAME: result} of each step that
 *             ran, in step order.
 *
 * Templates: any JSON value, built anew at each call. An object that is
 * exactly {"$ref": P} becomes the value at pointer P; {"$ref": [P1, P2,
 * ...]} the value at the first of them that exists; {"$ran": "NAME"}
 * true when step NAME ran and completed, else false. Objects and arrays
 * are templates member by member (at most 32 levels deep). A member whose
 * value is a reference to something missing is left out of its object
 * (in an array it is null; a whole template that is such a reference is
 * null). Member names beginning with "$" are reserved.
 *
 * Pointers (RFC 6901, ~0 for "~" and ~1 for "/", array items by index):
 *   /input/...               the workflow input (after the defaults)
 *   /steps/NAME/result/...   an earlier step's result (missing when the
 *                            step was skipped or has not run)
 *   /steps/NAME/key          that step's idempotency key
 *   /workflow/id, /workflow/namespace
 *   /step/key                the key of the call being built:
 *                            "namespace/workflow_id/SEQ", SEQ its step number
 *   /step/seq                that step number
 * A step's input and when may name only the steps before it; a
 * compensation its own step and those before it; the result any step
 * (but not /step/...).
 *
 * Conditions: true, false, {"eq"|"ne"|"lt"|"le"|"gt"|"ge": [A, B]} with A
 * and B templates (numbers compare by value, an integer with a real too;
 * strings bytewise; other values: eq and ne by equality, the ordering
 * ones are false), {"and": [C, ...]}, {"or": [C, ...]}, {"not": C},
 * {"exists": A} (true when A is not a reference to something missing). A
 * comparison with a missing operand is false (ne too). At most 32 levels.
 *
 * Failure: when a step fails for good, the steps before it that completed
 * and have a compensate are compensated, latest first, each compensation
 * one more step; a pending compensation suspends the workflow (the replay
 * goes on from it). A compensation that fails does not stop the others:
 * once all have been called the workflow fails with the step's error,
 * then "; compensated: B, A" (those that completed, in the order they
 * ran), then "; compensation ACT of step NAME failed: ERROR" for each that
 * failed. A history that no longer matches the definition
 * (nondeterminism) fails the workflow at once, compensating nothing. */
#ifndef IDEM_FLOW_H
#define IDEM_FLOW_H

#include <jansson.h>
#include <stddef.h>

#include "idem_app.h"

#define FLOW_MAX_STEPS 1000
#define FLOW_MAX_DEPTH 32 /* levels of a template or condition */
#define FLOW_NAME_MAX 64  /* bytes of a step name */

struct flow; /* one parsed workflow type */

/* Parses the definition def (BORROWED; nothing of it is kept). Messages
 * start with path_prefix ("examples/payments/idem.json:
 * workflows.payment"), then the JSON path: "PREFIX.steps[1].when:
 * unknown operator \"lte\" (use eq, ne, ...)". activity_known(arg, name)
 * says whether the app has that activity. Returns a new flow (flow_free),
 * or NULL with err. */
struct flow *flow_parse(const json_t *def, const char *path_prefix,
                        int (*activity_known)(void *arg, const char *name), void *arg, char *err,
                        size_t errlen);
void flow_free(struct flow *f);

/* A step's own options: "retry" (the activity's retry members) and
 * "timeout" (a duration), kept as written for the app's loader, which
 * checks them and gives the step its merged options (BORROWED: they must
 * outlive f). flow_run then calls the step's activity with them. */
int flow_step_count(const struct flow *f);
const char *flow_step_activity(const struct flow *f, int i);
const json_t *flow_step_overrides(const struct flow *f, int i); /* NULL: none */
void flow_step_set_options(struct flow *f, int i, const struct idem_activity_options *o);

/* At a start: adds the defaults to input and checks it against the
 * "input" spec. Returns 0, or -1 with err naming the field and what to
 * give ("input.amount: missing (give an integer)", "input.amount is a
 * string; give an integer"). */
int flow_prepare(const struct flow *f, json_t *input, char *err, size_t errlen);

/* The field a start's workflow_id defaults to (BORROWED), or NULL. */
const char *flow_id_field(const struct flow *f);

/* One replay (idem_wf_run in shared/idem_app.h): calls the activities of
 * f in order over run's history and returns SUSPEND, DONE (run->result
 * NEW) or FAIL (run->error). It decides only from run->input and the
 * results idem_wf_activity() hands back. */
enum idem_wf_outcome flow_run(const struct flow *f, struct idem_wf_run *run);

#endif

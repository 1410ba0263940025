/* msg.h — the messages on the worker channel, one JSON object a frame.
 *
 *   worker -> supervisor  {"type":"ready","pid":123}
 *   supervisor -> worker  {"type":"task","task_id":7,"namespace":"default",
 *                          "workflow_id":"A12","step":0,"attempt":1,
 *                          "activity":"update_inventory","input":{...},
 *                          "heartbeat":{...},           (optional)
 *                          "fault":{"kind":"kill","point":"after_commit"}}  (optional)
 *   worker -> supervisor  {"type":"result","task_id":7,"ok":true,"result":{...}}
 *                         {"type":"result","task_id":7,"ok":false,
 *                          "error":{"type":"UnknownProduct","message":"...",
 *                                   "retryable":false}}
 *   worker -> supervisor  {"type":"heartbeat","task_id":7,"details":{...}}
 *
 * Parsers validate with json_unpack_ex and fill a struct whose json_t and
 * string members are BORROWED from the message: keep the message alive
 * while using them. Constructors return a NEW reference. */
#ifndef IDEM_MSG_H
#define IDEM_MSG_H

#include <jansson.h>
#include <stddef.h>

enum msg_type { MSG_READY, MSG_TASK, MSG_RESULT, MSG_HEARTBEAT };

struct msg_ready {
	json_int_t pid;
};

struct msg_task {
	json_int_t task_id;
	const char *namespace_;
	const char *workflow_id;
	json_int_t step;
	json_int_t attempt;
	const char *activity;
	json_t *input;     /* object */
	json_t *heartbeat; /* object or NULL */
	json_t *fault;     /* object or NULL: the fault plan, see fault.h */
};

struct msg_result {
	json_int_t task_id;
	int ok;
	json_t *result;            /* object when ok */
	const char *error_type;    /* when !ok */
	const char *error_message; /* when !ok */
	int retryable;             /* when !ok */
	const char *stderr_tail;   /* optional: the end of a command's stderr */
};

struct msg_heartbeat {
	json_int_t task_id;
	json_t *details; /* object */
};

/* Reads "type". Returns 0, or -1 with err naming the problem
 * ("message: missing \"type\"", "message: unknown type \"hello\""). */
int msg_type_of(const json_t *msg, enum msg_type *type, char *err, size_t errlen);

/* Each returns 0, or -1 with err from json_error_t ("message task: ..."). */
int msg_parse_ready(json_t *msg, struct msg_ready *out, char *err, size_t errlen);
int msg_parse_task(json_t *msg, struct msg_task *out, char *err, size_t errlen);
int msg_parse_result(json_t *msg, struct msg_result *out, char *err, size_t errlen);
int msg_parse_heartbeat(json_t *msg, struct msg_heartbeat *out, char *err, size_t errlen);

json_t *msg_ready_new(long pid);
/* input and heartbeat are borrowed (the message takes its own reference);
 * heartbeat may be NULL. */
json_t *msg_task_new(const struct msg_task *t);
/* result is borrowed. */
json_t *msg_result_ok_new(json_int_t task_id, json_t *result);
json_t *msg_result_error_new(json_int_t task_id, const char *type, const char *message,
                             int retryable);
json_t *msg_heartbeat_new(json_int_t task_id, json_t *details);

/* What a JSON value is, for a message to a person: "a string", "an
 * integer", "a real number", "a boolean", "an object", "an array",
 * "null". */
const char *msg_json_kind(const json_t *v);

#endif

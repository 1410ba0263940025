/* msg.c — the worker channel's messages (see msg.h).
 *
 * Every parser is strict: a key it does not know is an error. A peer that
 * sends one speaks another protocol version, and that must be noticed on
 * its first message rather than show up later as a half-understood task
 * or result.
 *
 * Each field is unpacked on its own with json_unpack_ex rather than the
 * whole message with one JSON_STRICT format: jansson's type errors
 * ("Expected integer, got string") do not say which key they are about,
 * and a message to a person must name the field. */
#include "msg.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const msg_names[] = {
    [MSG_READY] = "ready",
    [MSG_TASK] = "task",
    [MSG_RESULT] = "result",
    [MSG_HEARTBEAT] = "heartbeat",
};

int msg_type_of(const json_t *msg, enum msg_type *type, char *err, size_t errlen)
{
	const json_t *v = NULL; /* borrowed */
	const char *s = NULL;

	if (!json_is_object(msg)) {
		snprintf(err, errlen, "message: not a JSON object");
		return -1;
	}
	v = json_object_get(msg, "type");
	if (v == NULL) {
		snprintf(err, errlen, "message: missing \"type\"");
		return -1;
	}
	if (!json_is_string(v)) {
		snprintf(err, errlen, "message: \"type\" is not a string");
		return -1;
	}
	s = json_string_value(v);
	for (size_t i = 0; i < sizeof(msg_names) / sizeof(msg_names[0]); i++) {
		if (strcmp(s, msg_names[i]) == 0) {
			*type = (enum msg_type)i;
			return 0;
		}
	}
	snprintf(err, errlen, "message: unknown type \"%s\"", s);
	return -1;
}

static const char *msg_json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "real";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_NULL:
		return "null";
	}
	return "unknown";
}

/* Unpacks the member `key` of obj with the json_unpack format fmt (one
 * value, e.g. "I" or "s"); `what` names the message in errors. A missing
 * member is an error unless optional. Returns 0 or -1 (err set). */
static int msg_field(json_t *obj, const char *what, const char *key, int optional, char *err,
                     size_t errlen, const char *fmt, ...)
{
	json_t *v = json_object_get(obj, key); /* borrowed */
	json_error_t jerr;
	va_list ap;
	int rc = 0;

	if (v == NULL) {
		if (optional)
			return 0;
		snprintf(err, errlen, "message %s: missing \"%s\"", what, key);
		return -1;
	}
	va_start(ap, fmt);
	rc = json_vunpack_ex(v, &jerr, 0, fmt, ap);
	va_end(ap);
	if (rc != 0) {
		snprintf(err, errlen, "message %s: \"%s\": %s", what, key, jerr.text);
		return -1;
	}
	return 0;
}

static int msg_int(json_t *obj, const char *what, const char *key, json_int_t min, json_int_t *out,
                   char *err, size_t errlen)
{
	if (msg_field(obj, what, key, 0, err, errlen, "I", out) != 0)
		return -1;
	if (*out < min) {
		snprintf(err, errlen,
		         "message %s: \"%s\" must be >= %" JSON_INTEGER_FORMAT
		         ", got %" JSON_INTEGER_FORMAT,
		         what, key, min, *out);
		return -1;
	}
	return 0;
}

/* A string member; when nonempty, "" is refused. *out is borrowed. */
static int msg_str(json_t *obj, const char *what, const char *key, int nonempty, const char **out,
                   char *err, size_t errlen)
{
	if (msg_field(obj, what, key, 0, err, errlen, "s", out) != 0)
		return -1;
	if (nonempty && **out == '\0') {
		snprintf(err, errlen, "message %s: \"%s\" must not be empty", what, key);
		return -1;
	}
	return 0;
}

/* A string member, or NULL when absent. *out is borrowed. */
static int msg_opt_str(json_t *obj, const char *what, const char *key, const char **out, char *err,
                       size_t errlen)
{
	*out = NULL;
	if (json_object_get(obj, key) == NULL)
		return 0;
	return msg_str(obj, what, key, 0, out, err, errlen);
}

/* An object member, or NULL when optional and absent. *out is borrowed. */
static int msg_obj(json_t *obj, const char *what, const char *key, int optional, json_t **out,
                   char *err, size_t errlen)
{
	*out = NULL;
	if (msg_field(obj, what, key, optional, err, errlen, "o", out) != 0)
		return -1;
	if (*out != NULL && !json_is_object(*out)) {
		snprintf(err, errlen, "message %s: \"%s\" must be an object, got %s", what, key,
		         msg_json_type_name(*out));
		*out = NULL;
		return -1;
	}
	return 0;
}

/* The message is an object whose "type" is t. */
static int msg_check_type(json_t *msg, enum msg_type t, char *err, size_t errlen)
{
	const char *what = msg_names[t];
	const char *s = NULL;

	if (!json_is_object(msg)) {
		snprintf(err, errlen, "message %s: not a JSON object", what);
		return -1;
	}
	if (msg_str(msg, what, "type", 1, &s, err, errlen) != 0)
		return -1;
	if (strcmp(s, what) != 0) {
		snprintf(err, errlen, "message %s: \"type\" is \"%s\", not \"%s\"", what, s, what);
		return -1;
	}
	return 0;
}

/* Refuses a key of obj that is not in the NULL-terminated list keys. */
static int msg_known_keys(json_t *obj, const char *what, const char *const *keys, char *err,
                          size_t errlen)
{
	const char *key = NULL;
	json_t *v = NULL; /* borrowed */
	size_t i = 0;

	json_object_foreach(obj, key, v)
	{
		for (i = 0; keys[i] != NULL && strcmp(keys[i], key) != 0; i++)
			;
		if (keys[i] == NULL) {
			snprintf(err, errlen,
			         "message %s: unknown key \"%s\" (another protocol version?)", what,
			         key);
			return -1;
		}
	}
	return 0;
}

int msg_parse_ready(json_t *msg, struct msg_ready *out, char *err, size_t errlen)
{
	static const char *const keys[] = {"type", "pid", NULL};
	struct msg_ready r = {0};

	if (msg_check_type(msg, MSG_READY, err, errlen) != 0 ||
	    msg_int(msg, "ready", "pid", 1, &r.pid, err, errlen) != 0 ||
	    msg_known_keys(msg, "ready", keys, err, errlen) != 0)
		return -1;
	*out = r;
	return 0;
}

int msg_parse_task(json_t *msg, struct msg_task *out, char *err, size_t errlen)
{
	static const char *const keys[] = {"type",      "task_id", "namespace", "workflow_id",
	                                   "step",      "attempt", "activity",  "input",
	                                   "heartbeat", "fault",   NULL};
	const char *w = "task";
	struct msg_task t = {0};

	if (msg_check_type(msg, MSG_TASK, err, errlen) != 0 ||
	    msg_int(msg, w, "task_id", 1, &t.task_id, err, errlen) != 0 ||
	    msg_str(msg, w, "namespace", 1, &t.namespace_, err, errlen) != 0 ||
	    msg_str(msg, w, "workflow_id", 1, &t.workflow_id, err, errlen) != 0 ||
	    msg_int(msg, w, "step", 0, &t.step, err, errlen) != 0 ||
	    msg_int(msg, w, "attempt", 1, &t.attempt, err, errlen) != 0 ||
	    msg_str(msg, w, "activity", 1, &t.activity, err, errlen) != 0 ||
	    msg_obj(msg, w, "input", 0, &t.input, err, errlen) != 0 ||
	    msg_obj(msg, w, "heartbeat", 1, &t.heartbeat, err, errlen) != 0 ||
	    msg_obj(msg, w, "fault", 1, &t.fault, err, errlen) != 0 ||
	    msg_known_keys(msg, w, keys, err, errlen) != 0)
		return -1;
	*out = t;
	return 0;
}

/* {"ok":true,"result":{...}} */
static int msg_result_ok(json_t *msg, struct msg_result *r, char *err, size_t errlen)
{
	static const char *const keys[] = {"type", "task_id", "ok", "result", "stderr", NULL};

	if (msg_obj(msg, "result", "result", 0, &r->result, err, errlen) != 0 ||
	    msg_opt_str(msg, "result", "stderr", &r->stderr_tail, err, errlen) != 0 ||
	    msg_known_keys(msg, "result", keys, err, errlen) != 0)
		return -1;
	return 0;
}

/* {"ok":false,"error":{"type":"...","message":"...","retryable":false}} */
static int msg_result_error(json_t *msg, struct msg_result *r, char *err, size_t errlen)
{
	static const char *const keys[] = {"type", "task_id", "ok", "error", "stderr", NULL};
	static const char *const error_keys[] = {"type", "message", "retryable", NULL};
	const char *w = "result.error";
	json_t *e = NULL; /* borrowed */

	if (msg_obj(msg, "result", "error", 0, &e, err, errlen) != 0 ||
	    msg_opt_str(msg, "result", "stderr", &r->stderr_tail, err, errlen) != 0 ||
	    msg_known_keys(msg, "result", keys, err, errlen) != 0 ||
	    msg_str(e, w, "type", 1, &r->error_type, err, errlen) != 0 ||
	    msg_str(e, w, "message", 0, &r->error_message, err, errlen) != 0 ||
	    msg_field(e, w, "retryable", 0, err, errlen, "b", &r->retryable) != 0 ||
	    msg_known_keys(e, w, error_keys, err, errlen) != 0)
		return -1;
	return 0;
}

int msg_parse_result(json_t *msg, struct msg_result *out, char *err, size_t errlen)
{
	struct msg_result r = {0};

	if (msg_check_type(msg, MSG_RESULT, err, errlen) != 0 ||
	    msg_int(msg, "result", "task_id", 1, &r.task_id, err, errlen) != 0 ||
	    msg_field(msg, "result", "ok", 0, err, errlen, "b", &r.ok) != 0)
		return -1;
	if (r.ok ? msg_result_ok(msg, &r, err, errlen) : msg_result_error(msg, &r, err, errlen))
		return -1;
	*out = r;
	return 0;
}

int msg_parse_heartbeat(json_t *msg, struct msg_heartbeat *out, char *err, size_t errlen)
{
	static const char *const keys[] = {"type", "task_id", "details", NULL};
	struct msg_heartbeat h = {0};

	if (msg_check_type(msg, MSG_HEARTBEAT, err, errlen) != 0 ||
	    msg_int(msg, "heartbeat", "task_id", 1, &h.task_id, err, errlen) != 0 ||
	    msg_obj(msg, "heartbeat", "details", 0, &h.details, err, errlen) != 0 ||
	    msg_known_keys(msg, "heartbeat", keys, err, errlen) != 0)
		return -1;
	*out = h;
	return 0;
}

/* The constructors return a new reference, or NULL when a required string
 * or object is NULL or a string is not UTF-8 (json_pack refuses both; out
 * of memory aborts, xalloc.h). Objects passed in are borrowed: json_pack's
 * "O" takes the message's own reference. */

json_t *msg_ready_new(long pid)
{
	return json_pack("{s:s, s:I}", "type", "ready", "pid", (json_int_t)pid);
}

json_t *msg_task_new(const struct msg_task *t)
{
	/* "O*": heartbeat and fault are left out when NULL. */
	return json_pack("{s:s, s:I, s:s, s:s, s:I, s:I, s:s, s:O, s:O*, s:O*}", "type", "task",
	                 "task_id", t->task_id, "namespace", t->namespace_, "workflow_id",
	                 t->workflow_id, "step", t->step, "attempt", t->attempt, "activity",
	                 t->activity, "input", t->input, "heartbeat", t->heartbeat, "fault",
	                 t->fault);
}

json_t *msg_result_ok_new(json_int_t task_id, json_t *result)
{
	return json_pack("{s:s, s:I, s:b, s:O}", "type", "result", "task_id", task_id, "ok", 1,
	                 "result", result);
}

json_t *msg_result_error_new(json_int_t task_id, const char *type, const char *message,
                             int retryable)
{
	return json_pack("{s:s, s:I, s:b, s:{s:s, s:s, s:b}}", "type", "result", "task_id", task_id,
	                 "ok", 0, "error", "type", type, "message", message, "retryable",
	                 retryable ? 1 : 0);
}

json_t *msg_heartbeat_new(json_int_t task_id, json_t *details)
{
	return json_pack("{s:s, s:I, s:O}", "type", "heartbeat", "task_id", task_id, "details",
	                 details);
}

const char *msg_json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a real number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

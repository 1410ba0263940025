/* fuzz_msg.c — the worker channel's message validator (shared/msg.c).
 *
 * Input: JSON text, loaded as frame.c loads a payload (JSON_DECODE_ANY).
 * Every value goes through msg_type_of and all four msg_parse_*.
 *
 * Properties checked:
 *  - at most one parser accepts a message, and it is the one msg_type_of
 *    names; a refusal fills err with a "message" prefix;
 *  - an accepted message rebuilt with the constructors (msg_ready_new,
 *    msg_task_new, msg_result_*_new, msg_heartbeat_new) is json_equal to
 *    it (the parsers are strict, so nothing is lost), parses again to the
 *    same fields, and survives a frame round trip. */
#include <string.h>

#include "frame.h"
#include "fuzz.h"
#include "msg.h"

#define ERRLEN 512

static int same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* rebuilt (a NEW ref, consumed) equals the message and frames cleanly. */
static void check_rebuilt(json_t *msg, json_t *rebuilt, const char *what)
{
	char err[ERRLEN] = "";
	struct frame_decoder d;
	unsigned char *buf = NULL;
	json_t *back = NULL;
	size_t len = 0;

	FUZZ_CHECK(rebuilt != NULL, "%s: the constructor failed", what);
	FUZZ_CHECK(json_equal(msg, rebuilt), "%s: the rebuilt message differs", what);
	buf = frame_encode(rebuilt, FRAME_DEFAULT_MAX, &len, err, sizeof(err));
	if (buf != NULL) {
		frame_decoder_init(&d, FRAME_DEFAULT_MAX);
		frame_decoder_feed(&d, buf, len);
		FUZZ_CHECK(frame_decoder_next(&d, &back, err, sizeof(err)) == 1, "%s: %s", what,
		           err);
		FUZZ_CHECK(json_equal(back, rebuilt), "%s: the frame round trip differs", what);
		json_decref(back);
		frame_decoder_free(&d);
		free(buf);
	}
	json_decref(rebuilt);
}

static void check_ready(json_t *msg, const struct msg_ready *r)
{
	char err[ERRLEN] = "";
	json_t *again = msg_ready_new((long)r->pid);
	struct msg_ready r2;

	FUZZ_CHECK(msg_parse_ready(again, &r2, err, sizeof(err)) == 0, "ready again: %s", err);
	FUZZ_CHECK(r2.pid == r->pid, "ready: pid changed");
	check_rebuilt(msg, again, "ready");
}

static void check_task(json_t *msg, const struct msg_task *t)
{
	char err[ERRLEN] = "";
	json_t *again = msg_task_new(t);
	struct msg_task t2;

	FUZZ_CHECK(again != NULL, "task: the constructor failed");
	FUZZ_CHECK(msg_parse_task(again, &t2, err, sizeof(err)) == 0, "task again: %s", err);
	FUZZ_CHECK(t2.task_id == t->task_id && t2.step == t->step && t2.attempt == t->attempt,
	           "task: numbers changed");
	FUZZ_CHECK(same_str(t2.namespace_, t->namespace_) &&
	               same_str(t2.workflow_id, t->workflow_id) &&
	               same_str(t2.activity, t->activity),
	           "task: strings changed");
	FUZZ_CHECK(json_equal(t2.input, t->input), "task: input changed");
	FUZZ_CHECK((t2.heartbeat == NULL) == (t->heartbeat == NULL) &&
	               (t->heartbeat == NULL || json_equal(t2.heartbeat, t->heartbeat)),
	           "task: heartbeat changed");
	FUZZ_CHECK((t2.fault == NULL) == (t->fault == NULL) &&
	               (t->fault == NULL || json_equal(t2.fault, t->fault)),
	           "task: fault changed");
	check_rebuilt(msg, again, "task");
}

static void check_result(json_t *msg, const struct msg_result *r)
{
	char err[ERRLEN] = "";
	json_t *again =
	    r->ok ? msg_result_ok_new(r->task_id, r->result)
	          : msg_result_error_new(r->task_id, r->error_type, r->error_message, r->retryable);
	struct msg_result r2;

	FUZZ_CHECK(again != NULL, "result: the constructor failed");
	FUZZ_CHECK(msg_parse_result(again, &r2, err, sizeof(err)) == 0, "result again: %s", err);
	FUZZ_CHECK(r2.task_id == r->task_id && r2.ok == r->ok, "result: fields changed");
	if (r->ok)
		FUZZ_CHECK(json_equal(r2.result, r->result), "result: result changed");
	else
		FUZZ_CHECK(same_str(r2.error_type, r->error_type) &&
		               same_str(r2.error_message, r->error_message) &&
		               r2.retryable == r->retryable,
		           "result: error changed");
	check_rebuilt(msg, again, "result");
}

static void check_heartbeat(json_t *msg, const struct msg_heartbeat *h)
{
	char err[ERRLEN] = "";
	json_t *again = msg_heartbeat_new(h->task_id, h->details);
	struct msg_heartbeat h2;

	FUZZ_CHECK(again != NULL, "heartbeat: the constructor failed");
	FUZZ_CHECK(msg_parse_heartbeat(again, &h2, err, sizeof(err)) == 0, "heartbeat again: %s",
	           err);
	FUZZ_CHECK(h2.task_id == h->task_id && json_equal(h2.details, h->details),
	           "heartbeat: fields changed");
	check_rebuilt(msg, again, "heartbeat");
}

/* A refusal names the message; err is always a terminated string. */
static void check_refusal(int rc, const char *err)
{
	if (rc != 0)
		FUZZ_CHECK(strncmp(err, "message", 7) == 0, "refusal without prefix: %s", err);
}

static void run_parsers(json_t *msg)
{
	char err[4][ERRLEN] = {"", "", "", ""}, terr[ERRLEN] = "";
	struct msg_ready r;
	struct msg_task t;
	struct msg_result res;
	struct msg_heartbeat h;
	enum msg_type type = MSG_READY;
	int typed = msg_type_of(msg, &type, terr, sizeof(terr)) == 0;
	int ok[4];

	check_refusal(typed ? 0 : -1, terr);
	ok[MSG_READY] = msg_parse_ready(msg, &r, err[0], ERRLEN) == 0;
	ok[MSG_TASK] = msg_parse_task(msg, &t, err[1], ERRLEN) == 0;
	ok[MSG_RESULT] = msg_parse_result(msg, &res, err[2], ERRLEN) == 0;
	ok[MSG_HEARTBEAT] = msg_parse_heartbeat(msg, &h, err[3], ERRLEN) == 0;
	for (int i = 0; i < 4; i++) {
		check_refusal(ok[i] ? 0 : -1, err[i]);
		FUZZ_CHECK(!ok[i] || (typed && (int)type == i),
		           "parser %d accepted a message of type %d", i, typed ? (int)type : -1);
	}
	if (ok[MSG_READY])
		check_ready(msg, &r);
	if (ok[MSG_TASK])
		check_task(msg, &t);
	if (ok[MSG_RESULT])
		check_result(msg, &res);
	if (ok[MSG_HEARTBEAT])
		check_heartbeat(msg, &h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *msg;

	json_object_seed(1); /* the same hash order in every run */
	msg = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
	if (msg == NULL)
		return 0;
	run_parsers(msg);
	/* A message inside a message: the parsers meet nested objects too. */
	if (json_is_object(msg)) {
		const char *key;
		json_t *v;

		json_object_foreach(msg, key, v)
		{
			if (json_is_object(v))
				run_parsers(v);
		}
	}
	json_decref(msg);
	return 0;
}

/* test_flow.c — workflows defined in JSON (apps/file/flow.h), replayed
 * over scripted histories without the engine: which activities they
 * call with which inputs, what they return, how they fail and
 * compensate, the messages of a wrong definition or start, and the
 * inventory workflow written as a definition beside its C original.
 *
 * JSON in this file is written with single quotes ('a') for legibility:
 * json_q() turns them into double quotes before parsing or comparing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "apps.h"
#include "flow.h"
#include "testutil.h"

#define PREFIX "idem.json: workflows.payment"
#define MAX_CALLS 64

/* ---- JSON with single quotes ---- */

/* s with ' made " (malloc'd). */
static char *json_q(const char *s)
{
	char *out = strdup(s);

	for (char *c = out; *c != '\0'; c++)
		if (*c == '\'')
			*c = '"';
	return out;
}

/* Parses s (single quotes) into a NEW value; fails the test when s is not JSON. */
static json_t *jq(const char *s)
{
	char *text = json_q(s);
	json_error_t e;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &e);

	if (v == NULL)
		fail_msg("the test's JSON is wrong (%s): %s", e.text, text);
	free(text);
	return v;
}

/* Asserts v dumps (compact, keys in their order) to expected (single quotes). */
static void assert_json(const json_t *v, const char *expected)
{
	char *want = json_q(expected);
	char *got = v != NULL ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("(none)");

	assert_string_equal(got, want);
	free(got);
	free(want);
}

/* ---- a fake engine that replays a scripted history ---- */

enum hstatus { H_DONE, H_FAILED, H_PENDING };

struct hist {
	const char *activity;
	enum hstatus status;
	const char *result; /* H_DONE: its result (single quotes); H_FAILED: the error */
};

struct fake {
	struct idem_wf_run run; /* first: fake_call casts back */
	const struct hist *hist;
	int nhist;
	json_t *input;
	json_t *results[MAX_CALLS]; /* by step number, lent to the workflow */
	int ncalls;
	char *acts[MAX_CALLS]; /* every call, replayed or new */
	json_t *inputs[MAX_CALLS];
};

/* idem_wf_activity() as the engine's wf_call answers it. */
static int fake_call(struct idem_wf_run *run, const char *activity, json_t *input,
                     const struct idem_activity_options *options, json_t **result)
{
	(void)options;
	struct fake *fk = (struct fake *)run;
	int seq = run->next_step++;
	const struct hist *h = seq < fk->nhist ? &fk->hist[seq] : NULL;

	*result = NULL;
	assert_true(fk->ncalls < MAX_CALLS);
	fk->acts[fk->ncalls] = strdup(activity);
	fk->inputs[fk->ncalls++] = input;
	if (h == NULL)
		return 0;
	if (strcmp(h->activity, activity) != 0) {
		snprintf(run->error, sizeof(run->error),
		         "nondeterminism: step %d was recorded as %s but the workflow code now "
		         "calls %s",
		         seq, h->activity, activity);
		return -1;
	}
	if (h->status == H_FAILED)
		snprintf(run->error, sizeof(run->error),
		         "activity %s (step %d) failed after 1 attempt: Error: %s", activity, seq,
		         h->result);
	if (h->status == H_DONE)
		*result = fk->results[seq];
	return h->status == H_DONE ? 1 : h->status == H_FAILED ? -1 : 0;
}

static void fake_init(struct fake *fk, const char *input, const struct hist *h, int n)
{
	memset(fk, 0, sizeof(*fk));
	assert_true(n <= MAX_CALLS);
	fk->input = jq(input);
	fk->run.input = fk->input;
	fk->run.namespace_ = "ns";
	fk->run.workflow_id = "wf";
	fk->run.call = fake_call;
	fk->hist = h;
	fk->nhist = n;
	for (int i = 0; i < n; i++)
		if (h[i].status == H_DONE && h[i].result != NULL)
			fk->results[i] = jq(h[i].result);
}

static void fake_free(struct fake *fk)
{
	json_decref(fk->input);
	json_decref(fk->run.result);
	for (int i = 0; i < MAX_CALLS; i++)
		json_decref(fk->results[i]);
	for (int i = 0; i < fk->ncalls; i++) {
		free(fk->acts[i]);
		json_decref(fk->inputs[i]);
	}
}

/* Asserts that call i asked for activity with input (single quotes). */
static void assert_call(const struct fake *fk, int i, const char *activity, const char *input)
{
	assert_true(i < fk->ncalls);
	assert_string_equal(fk->acts[i], activity);
	assert_json(fk->inputs[i], input);
}

/* ---- definitions ---- */

static int known(void *arg, const char *name)
{
	static const char *const names[] = {"charge",  "refund", "send_receipt", "reserve",
	                                    "release", "ship",   "notify",       NULL};

	(void)arg;
	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], name) == 0)
			return 1;
	return 0;
}

static struct flow *parse_value(const json_t *def, char *err, size_t len)
{
	err[0] = '\0';
	return flow_parse(def, PREFIX, known, NULL, err, len);
}

/* The definition text (single quotes), parsed; fails the test when it is wrong. */
static struct flow *parse_ok(const char *text)
{
	json_t *def = jq(text);
	char err[512];
	struct flow *f = parse_value(def, err, sizeof(err));

	json_decref(def);
	if (f == NULL)
		fail_msg("flow_parse: %s", err);
	return f;
}

static void assert_value_refused(const json_t *def, const char *expected)
{
	char err[512];
	struct flow *f = parse_value(def, err, sizeof(err));

	if (f != NULL) {
		flow_free(f);
		fail_msg("flow_parse accepted a definition that should say: %s", expected);
	}
	assert_string_equal(err, expected);
}

/* Asserts that the definition (single quotes) is refused with expected. */
static void assert_refused(const char *text, const char *expected)
{
	json_t *def = jq(text);

	assert_value_refused(def, expected);
	json_decref(def);
}

/* Parses def, replays it over h with input into fk: the outcome. */
static enum idem_wf_outcome run_def(struct fake *fk, const char *def, const char *input,
                                    const struct hist *h, int n)
{
	struct flow *f = parse_ok(def);
	enum idem_wf_outcome out;

	fake_init(fk, input, h, n);
	out = flow_run(f, &fk->run);
	flow_free(f);
	return out;
}

/* ---- running ---- */

#define TWO_STEPS                                                                                  \
	"{'steps': ["                                                                              \
	"  {'name': 'charge', 'activity': 'charge',"                                               \
	"   'input': {'customer': {'$ref': '/input/customer'}, 'amount': {'$ref': "                \
	"'/input/amount'}}},"                                                                      \
	"  {'name': 'ship', 'activity': 'ship',"                                                   \
	"   'input': {'charge': {'$ref': '/steps/charge/result/charge_id'},"                       \
	"             'item': {'$ref': '/input/items/1'}, 'odd': {'$ref': '/input/a~1b~0c'}}}]}"

#define TWO_INPUT "{'customer': 'c-1', 'amount': 250, 'items': ['x', 'y'], 'a/b~c': true}"

static void test_two_steps_use_the_first_result(void **state)
{
	const struct hist h[] = {{"charge", H_DONE, "{'charge_id': 'ch-9', 'amount': 250}"},
	                         {"ship", H_DONE, "{'tracking': 'T1'}"}};
	struct fake fk;

	/* nothing recorded yet: the first step is scheduled */
	assert_int_equal(run_def(&fk, TWO_STEPS, TWO_INPUT, h, 0), IDEM_WF_SUSPEND);
	assert_int_equal(fk.ncalls, 1);
	assert_call(&fk, 0, "charge", "{'customer':'c-1','amount':250}");
	assert_null(fk.run.result);
	fake_free(&fk);

	/* the first completed: the second gets its result */
	assert_int_equal(run_def(&fk, TWO_STEPS, TWO_INPUT, h, 1), IDEM_WF_SUSPEND);
	assert_int_equal(fk.ncalls, 2);
	assert_call(&fk, 1, "ship", "{'charge':'ch-9','item':'y','odd':true}");
	fake_free(&fk);

	/* both completed: the default result, each step's result by name */
	assert_int_equal(run_def(&fk, TWO_STEPS, TWO_INPUT, h, 2), IDEM_WF_DONE);
	assert_int_equal(fk.ncalls, 2);
	assert_json(fk.run.result,
	            "{'charge':{'charge_id':'ch-9','amount':250},'ship':{'tracking':'T1'}}");
	fake_free(&fk);
}

static void test_suspends_on_a_pending_step(void **state)
{
	const struct hist h[] = {{"charge", H_PENDING, NULL}};
	struct fake fk;

	assert_int_equal(run_def(&fk, TWO_STEPS, TWO_INPUT, h, 1), IDEM_WF_SUSPEND);
	assert_int_equal(fk.ncalls, 1);
	assert_null(fk.run.result);
	fake_free(&fk);
}

/* A step whose when is false is not called and uses no step number. */
static void test_when_false_skips_without_a_step_number(void **state)
{
	const char *def = "{'steps': ["
	                  " {'name': 'a', 'activity': 'reserve'},"
	                  " {'name': 'b', 'activity': 'notify', 'when': {'gt': [{'$ref': "
	                  "'/input/n'}, 5]}},"
	                  " {'name': 'c', 'activity': 'ship', 'input': {'seq': {'$ref': "
	                  "'/step/seq'}, 'b': {'$ref': '/steps/b/result'}}}],"
	                  " 'result': {'a': {'$ran': 'a'}, 'b': {'$ran': 'b'}, 'b_out': {'$ref': "
	                  "'/steps/b/result'}}}";
	const struct hist h[] = {{"reserve", H_DONE, "{'id': 1}"}, {"ship", H_DONE, "{}"}};
	struct fake fk;

	assert_int_equal(run_def(&fk, def, "{'n': 5}", h, 2), IDEM_WF_DONE);
	assert_int_equal(fk.ncalls, 2);
	assert_call(&fk, 0, "reserve", "{'n':5}"); /* no input template: the whole input */
	assert_call(&fk, 1, "ship", "{'seq':1}");
	assert_json(fk.run.result, "{'a':true,'b':false}");
	fake_free(&fk);

	/* without a result template: only the steps that ran */
	def = "{'steps': [{'name': 'a', 'activity': 'reserve'},"
	      " {'name': 'b', 'activity': 'notify', 'when': false},"
	      " {'name': 'c', 'activity': 'ship'}]}";
	assert_int_equal(run_def(&fk, def, "{}", h, 2), IDEM_WF_DONE);
	assert_json(fk.run.result, "{'a':{'id':1},'c':{}}");
	fake_free(&fk);
}

/* Whether condition cond (single quotes) holds over input. */
static int holds(const char *cond, const char *input)
{
	char *def = tu_fmt("{'steps': [{'name': 'x', 'activity': 'notify', 'when': %s}]}", cond);
	struct fake fk;
	enum idem_wf_outcome out = run_def(&fk, def, input, NULL, 0);
	int n = fk.ncalls;

	/* true: the step is called (and pending); false: skipped, done */
	assert_int_equal(out, n == 1 ? IDEM_WF_SUSPEND : IDEM_WF_DONE);
	fake_free(&fk);
	free(def);
	return n;
}

static void test_conditions(void **state)
{
	static const struct {
		const char *cond;
		int holds;
	} cases[] = {
	    {"true", 1},
	    {"false", 0},
	    /* numbers by value, an integer against a real too */
	    {"{'gt': [{'$ref': '/input/i'}, 2.5]}", 1},
	    {"{'lt': [{'$ref': '/input/i'}, 2.5]}", 0},
	    {"{'eq': [{'$ref': '/input/i'}, 3.0]}", 1},
	    {"{'ne': [{'$ref': '/input/r'}, 0.5]}", 0},
	    {"{'ge': [3, {'$ref': '/input/i'}]}", 1},
	    {"{'le': [{'$ref': '/input/r'}, 0]}", 0},
	    {"{'lt': [9007199254740992, 9007199254740993]}", 1},
	    /* strings bytewise */
	    {"{'eq': [{'$ref': '/input/s'}, 'abc']}", 1},
	    {"{'lt': ['abc', 'abd']}", 1},
	    {"{'lt': ['ab', 'abc']}", 1},
	    {"{'gt': ['B', 'a']}", 0},
	    /* other values: equal or not, never ordered */
	    {"{'eq': [{'$ref': '/input/o'}, {'k': [1, 2]}]}", 1},
	    {"{'ne': ['1', 1]}", 1},
	    {"{'lt': [false, true]}", 0},
	    {"{'ge': [null, null]}", 0},
	    /* a missing operand: false, ne too */
	    {"{'eq': [{'$ref': '/input/none'}, 1]}", 0},
	    {"{'ne': [{'$ref': '/input/none'}, 1]}", 0},
	    {"{'exists': {'$ref': '/input/s'}}", 1},
	    {"{'exists': {'$ref': '/input/none'}}", 0},
	    {"{'exists': {'$ref': ['/input/none', '/input/i']}}", 1},
	    {"{'not': {'exists': {'$ref': '/input/none'}}}", 1},
	    {"{'and': [true, {'gt': [{'$ref': '/input/i'}, 1]}]}", 1},
	    {"{'and': [{'gt': [{'$ref': '/input/i'}, 1]}, false]}", 0},
	    {"{'or': [false, {'eq': [{'$ref': '/input/o/k/1'}, 2]}]}", 1},
	    {"{'or': [false, {'not': true}]}", 0},
	    {"{'and': []}", 1},
	    {"{'or': []}", 0},
	};
	const char *input = "{'i': 3, 'r': 0.5, 's': 'abc', 'o': {'k': [1, 2]}}";

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (holds(cases[i].cond, input) != cases[i].holds)
			fail_msg("%s should be %s", cases[i].cond,
			         cases[i].holds ? "true" : "false");
}

/* /step/key is "namespace/workflow_id/SEQ" of the call being built. */
static void test_keys_and_workflow_refs(void **state)
{
	const char *def =
	    "{'steps': ["
	    " {'name': 'a', 'activity': 'reserve', 'when': false},"
	    " {'name': 'b', 'activity': 'charge', 'input': {'key': {'$ref': '/step/key'},"
	    "  'seq': {'$ref': '/step/seq'}, 'id': {'$ref': '/workflow/id'},"
	    "  'ns': {'$ref': '/workflow/namespace'}}},"
	    " {'name': 'c', 'activity': 'ship', 'input': {'b_key': {'$ref': '/steps/b/key'},"
	    "  'a_key': {'$ref': '/steps/a/key'}, 'key': {'$ref': '/step/key'}}}]}";
	const struct hist h[] = {{"charge", H_DONE, "{}"}};
	struct fake fk;

	assert_int_equal(run_def(&fk, def, "{}", h, 1), IDEM_WF_SUSPEND);
	assert_int_equal(fk.ncalls, 2);
	assert_call(&fk, 0, "charge", "{'key':'ns/wf/0','seq':0,'id':'wf','ns':'ns'}");
	assert_call(&fk, 1, "ship", "{'b_key':'ns/wf/0','key':'ns/wf/1'}");
	fake_free(&fk);
}

/* A member whose ref is missing is left out; in an array it is null; a
 * list of refs takes the first that exists. */
static void test_templates(void **state)
{
	const char *def =
	    "{'steps': [{'name': 'a', 'activity': 'notify', 'input': {"
	    " 'present': {'$ref': '/input/a'}, 'absent': {'$ref': '/input/none'},"
	    " 'list': [{'$ref': '/input/none'}, {'$ref': '/input/a'}],"
	    " 'fallback': {'$ref': ['/input/none', '/input/b', '/input/a']},"
	    " 'nothing': {'$ref': ['/input/none', '/input/also_none']},"
	    " 'deep': {'x': {'$ref': '/input/obj/x/1'}, 'lead0': {'$ref': '/input/obj/x/01'},"
	    "          'past': {'$ref': '/input/obj/x/2'}, 'in_scalar': {'$ref': '/input/a/b'}},"
	    " 'whole': {'$ref': '/input/obj'}, 'literal': {'n': null, 'arr': [1, 'two', 2.5]}}},"
	    " {'name': 'b', 'activity': 'notify', 'input': {'$ref': '/input/none'}}]}";
	const char *input = "{'a': 1, 'b': 2, 'obj': {'x': [10, 20]}}";
	const struct hist h[] = {{"notify", H_DONE, "{}"}};
	struct fake fk;

	assert_int_equal(run_def(&fk, def, input, h, 1), IDEM_WF_SUSPEND);
	assert_call(&fk, 0, "notify",
	            "{'present':1,'list':[null,1],'fallback':2,'deep':{'x':20},"
	            "'whole':{'x':[10,20]},'literal':{'n':null,'arr':[1,'two',2.5]}}");
	/* a whole input that is a missing ref: null */
	assert_call(&fk, 1, "notify", "null");
	fake_free(&fk);
}

/* What the flow hands the engine is its own: changing it changes neither
 * the workflow input nor the recorded results. */
static void test_inputs_share_nothing(void **state)
{
	const char *def = "{'steps': [{'name': 'a', 'activity': 'notify'},"
	                  " {'name': 'b', 'activity': 'notify', 'input': {'r': {'$ref': "
	                  "'/steps/a/result/o'}}}]}";
	const struct hist h[] = {{"notify", H_DONE, "{'o': {'k': 1}}"}};
	struct fake fk;

	assert_int_equal(run_def(&fk, def, "{'o': {'k': 1}}", h, 1), IDEM_WF_SUSPEND);
	json_object_set_new(fk.inputs[0], "o", json_integer(2));
	json_object_set_new(json_object_get(fk.inputs[1], "r"), "k", json_integer(3));
	assert_json(fk.input, "{'o':{'k':1}}");
	assert_json(fk.results[0], "{'o':{'k':1}}");
	fake_free(&fk);
}

/* ---- failing and compensating ---- */

#define SAGA                                                                                       \
	"{'steps': ["                                                                              \
	" {'name': 'reserve', 'activity': 'reserve', 'compensate': {'activity': 'release',"        \
	"   'input': {'reservation': {'$ref': '/steps/reserve/result/id'},"                        \
	"             'key': {'$ref': '/step/key'}}}},"                                            \
	" {'name': 'charge', 'activity': 'charge', 'compensate': {'activity': 'refund',"           \
	"   'input': {'charge_id': {'$ref': '/steps/charge/result/charge_id'},"                    \
	"             'reservation': {'$ref': '/steps/reserve/result/id'}}}},"                     \
	" {'name': 'gift', 'activity': 'reserve', 'when': false,"                                  \
	"   'compensate': {'activity': 'release'}},"                                               \
	" {'name': 'notify', 'activity': 'notify'},"                                               \
	" {'name': 'ship', 'activity': 'ship'}]}"

#define SHIP_FAILED "activity ship (step 3) failed after 1 attempt: Error: out of stock"

static const struct hist saga[] = {
    {"reserve", H_DONE, "{'id': 'r-1'}"},
    {"charge", H_DONE, "{'charge_id': 'ch-1'}"},
    {"notify", H_DONE, "{}"},
    {"ship", H_FAILED, "out of stock"},
    {"refund", H_DONE, "{}"},
    {"release", H_DONE, "{}"},
};

static void test_failure_compensates_in_reverse(void **state)
{
	struct fake fk;

	assert_int_equal(run_def(&fk, SAGA, "{}", saga, 6), IDEM_WF_FAIL);
	assert_int_equal(fk.ncalls, 6);
	assert_call(&fk, 3, "ship", "{}");
	assert_call(&fk, 4, "refund", "{'charge_id':'ch-1','reservation':'r-1'}");
	assert_call(&fk, 5, "release", "{'reservation':'r-1','key':'ns/wf/5'}");
	assert_string_equal(fk.run.error, SHIP_FAILED "; compensated: charge, reserve");
	assert_null(fk.run.result);
	fake_free(&fk);

	/* the failure just recorded: the first compensation is scheduled */
	assert_int_equal(run_def(&fk, SAGA, "{}", saga, 4), IDEM_WF_SUSPEND);
	assert_int_equal(fk.ncalls, 5);
	assert_call(&fk, 4, "refund", "{'charge_id':'ch-1','reservation':'r-1'}");
	fake_free(&fk);
}

static void test_pending_compensation_suspends(void **state)
{
	struct hist h[6];
	struct fake fk;

	memcpy(h, saga, sizeof(h));
	h[4].status = H_PENDING;
	assert_int_equal(run_def(&fk, SAGA, "{}", h, 6), IDEM_WF_SUSPEND);
	assert_int_equal(fk.ncalls, 5);
	fake_free(&fk);
}

/* A compensation that fails does not stop the others; the error says both. */
static void test_failed_compensation(void **state)
{
	struct hist h[6];
	struct fake fk;

	memcpy(h, saga, sizeof(h));
	h[4].status = H_FAILED;
	h[4].result = "card closed";
	assert_int_equal(run_def(&fk, SAGA, "{}", h, 6), IDEM_WF_FAIL);
	assert_int_equal(fk.ncalls, 6);
	assert_call(&fk, 5, "release", "{'reservation':'r-1','key':'ns/wf/5'}");
	assert_string_equal(fk.run.error,
	                    SHIP_FAILED "; compensated: reserve; compensation refund of step "
	                                "charge failed: activity refund (step 4) failed after 1 "
	                                "attempt: Error: card closed");
	fake_free(&fk);
}

/* The first step fails: nothing to compensate, the error as it was. */
static void test_failure_with_nothing_to_compensate(void **state)
{
	const struct hist h[] = {{"reserve", H_FAILED, "no room"}};
	struct fake fk;

	assert_int_equal(run_def(&fk, SAGA, "{}", h, 1), IDEM_WF_FAIL);
	assert_int_equal(fk.ncalls, 1);
	assert_string_equal(fk.run.error,
	                    "activity reserve (step 0) failed after 1 attempt: Error: no room");
	fake_free(&fk);
}

/* A history the definition no longer matches is not compensated. */
static void test_nondeterminism_compensates_nothing(void **state)
{
	const struct hist h[] = {{"reserve", H_DONE, "{'id': 'r-1'}"}, {"ship", H_DONE, "{}"}};
	struct fake fk;

	assert_int_equal(run_def(&fk, SAGA, "{}", h, 2), IDEM_WF_FAIL);
	assert_int_equal(fk.ncalls, 2);
	assert_string_equal(fk.run.error, "nondeterminism: step 1 was recorded as ship but the "
	                                  "workflow code now calls charge");
	fake_free(&fk);
}

/* The same history gives the same calls, the same inputs, the same result. */
static void test_deterministic(void **state)
{
	const char *def =
	    "{'steps': [{'name': 'a', 'activity': 'charge', 'input': {'k': {'$ref': '/step/key'},"
	    " 'v': {'$ref': '/input/v'}}},"
	    " {'name': 'b', 'activity': 'ship', 'when': {'ge': [{'$ref': '/steps/a/result/n'}, 1]},"
	    "  'input': [{'$ref': '/steps/a/result'}, {'$ran': 'a'}]}],"
	    " 'result': {'b': {'$ref': '/steps/b/result'}, 'a': {'$ref': '/steps/a/key'}}}";
	const struct hist h[] = {{"charge", H_DONE, "{'n': 2}"}, {"ship", H_DONE, "{'t': [1]}"}};
	struct flow *f = parse_ok(def);
	struct fake one, two;

	fake_init(&one, "{'v': [1, {'w': 2}]}", h, 2);
	fake_init(&two, "{'v': [1, {'w': 2}]}", h, 2);
	assert_int_equal(flow_run(f, &one.run), IDEM_WF_DONE);
	assert_int_equal(flow_run(f, &two.run), IDEM_WF_DONE);
	assert_int_equal(one.ncalls, 2);
	assert_int_equal(two.ncalls, 2);
	for (int i = 0; i < one.ncalls; i++) {
		assert_string_equal(one.acts[i], two.acts[i]);
		assert_true(json_equal(one.inputs[i], two.inputs[i]));
	}
	assert_true(json_equal(one.run.result, two.run.result));
	assert_json(one.run.result, "{'b':{'t':[1]},'a':'ns/wf/0'}");
	fake_free(&one);
	fake_free(&two);
	flow_free(f);
}

/* ---- a start ---- */

#define TYPED                                                                                      \
	"{'id_field': 'payment_id',"                                                               \
	" 'input': {'payment_id': 'string', 'amount': 'integer', 'rate': 'number',"                \
	"   'ok': 'boolean', 'meta': 'object', 'items': 'array', 'extra': 'any'},"                 \
	" 'defaults': {'currency': 'EUR', 'rate': 1.5, 'ok': true},"                               \
	" 'steps': [{'name': 'a', 'activity': 'charge'}]}"

/* flow_prepare over input (single quotes): its return, err and the input after. */
static int prepare(const struct flow *f, const char *input, char *err, size_t len, json_t **after)
{
	json_t *in = jq(input);
	int rc;

	err[0] = '\0';
	rc = flow_prepare(f, in, err, len);
	*after = in;
	return rc;
}

static void assert_start_refused(const struct flow *f, const char *input, const char *expected)
{
	char err[256];
	json_t *in;

	assert_int_equal(prepare(f, input, err, sizeof(err), &in), -1);
	assert_string_equal(err, expected);
	json_decref(in);
}

static void test_prepare(void **state)
{
	struct flow *f = parse_ok(TYPED);
	char err[256];
	json_t *in;

	assert_string_equal(flow_id_field(f), "payment_id");
	/* defaults fill what is absent, after the given fields, in their order */
	assert_int_equal(prepare(f,
	                         "{'payment_id': 'p1', 'amount': 3, 'ok': false, 'meta': {},"
	                         " 'items': [], 'extra': null, 'other': 1}",
	                         err, sizeof(err), &in),
	                 0);
	assert_json(in, "{'payment_id':'p1','amount':3,'ok':false,'meta':{},'items':[],"
	                "'extra':null,'other':1,'currency':'EUR','rate':1.5}");
	json_decref(in);
	/* number takes an integer */
	assert_int_equal(prepare(f,
	                         "{'payment_id': 'p1', 'amount': 3, 'rate': 2, 'meta': {},"
	                         " 'items': [], 'extra': 'x', 'currency': 'USD'}",
	                         err, sizeof(err), &in),
	                 0);
	assert_json(in, "{'payment_id':'p1','amount':3,'rate':2,'meta':{},'items':[],"
	                "'extra':'x','currency':'USD','ok':true}");
	json_decref(in);

	assert_start_refused(f, "{'amount': 3}", "input.payment_id: missing (give a string)");
	assert_start_refused(f, "{'payment_id': 'p', 'amount': '3'}",
	                     "input.amount is a string; give an integer");
	assert_start_refused(f, "{'payment_id': 'p', 'amount': 2.5}",
	                     "input.amount is a real number; give an integer");
	assert_start_refused(f, "{'payment_id': 'p', 'amount': 1, 'rate': 'x'}",
	                     "input.rate is a string; give a number");
	assert_start_refused(f, "{'payment_id': 'p', 'amount': 1, 'meta': []}",
	                     "input.meta is an array; give an object");
	assert_start_refused(f, "{'payment_id': 'p', 'amount': 1, 'meta': {}, 'items': {}}",
	                     "input.items is an object; give an array");
	assert_start_refused(f, "{'payment_id': 'p', 'amount': 1, 'meta': {}, 'items': []}",
	                     "input.extra: missing (give any JSON value)");
	assert_start_refused(f, "{'payment_id': null}", "input.payment_id is null; give a string");
	assert_start_refused(f, "[1]", "input is an array; give a JSON object");
	assert_start_refused(f, "'text'", "input is a string; give a JSON object");
	flow_free(f);

	f = parse_ok("{'steps': []}");
	assert_null(flow_id_field(f));
	assert_int_equal(prepare(f, "{'anything': 1}", err, sizeof(err), &in), 0);
	assert_json(in, "{'anything':1}");
	json_decref(in);
	flow_free(f);
}

/* ---- definitions refused ---- */

#define STEP0 PREFIX ".steps[0]"
#define STEP1 PREFIX ".steps[1]"

static void test_parse_errors_members(void **state)
{
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge', 'retries': 3}]}",
	               STEP0 ": unknown member \"retries\" (known: name, activity, input, when, "
	                     "compensate, retry, timeout)");
	assert_refused("{'stepz': []}",
	               PREFIX ": unknown member \"stepz\" (known: id_field, input, "
	                      "defaults, steps, result)");
	assert_refused("{'input': {}}", PREFIX ": missing \"steps\" (give an array of steps, each "
	                                       "{\"name\", \"activity\"})");
	assert_refused("[]", PREFIX ": the definition is an array; give an object with \"steps\"");
	assert_refused("{'steps': {}}", PREFIX ".steps is an object; give an array of steps");
	assert_refused("{'steps': ['a']}",
	               STEP0 " is a string; give an object {\"name\", \"activity\", ...}");
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge',"
	               " 'compensate': {'activity': 'refund', 'inputs': {}}}]}",
	               STEP0 ".compensate: unknown member \"inputs\" (known: activity, input)");
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge', 'compensate': 'refund'}]}",
	               STEP0 ".compensate is a string; give {\"activity\": NAME, \"input\": "
	                     "TEMPLATE}");
	assert_refused("{'id_field': 7, 'steps': []}",
	               PREFIX ".id_field is an integer; give the name of an input field");
}

static void test_parse_errors_steps(void **state)
{
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge'},"
	               " {'name': 'b', 'activity': 'chrage'}]}",
	               STEP1 ".activity: unknown activity \"chrage\"");
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge',"
	               " 'compensate': {'activity': 'refnud'}}]}",
	               STEP0 ".compensate.activity: unknown activity \"refnud\"");
	assert_refused("{'steps': [{'name': 'a'}]}", STEP0
	               ": missing \"activity\" (give the name of one of the app's activities)");
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge'},"
	               " {'name': 'a', 'activity': 'ship'}]}",
	               STEP1 ".name: \"a\" is already the name of steps[0] (give each step its own "
	                     "name)");
	assert_refused("{'steps': [{'activity': 'charge'}]}",
	               STEP0 ": missing \"name\" (give the step a unique name: 1..64 characters of "
	                     "A-Z a-z 0-9 _ -)");
	assert_refused("{'steps': [{'name': 'a b', 'activity': 'charge'}]}",
	               STEP0 ".name: \"a b\" is not a step name (use 1..64 characters of A-Z a-z "
	                     "0-9 _ -)");
	assert_refused("{'steps': [{'name': 12, 'activity': 'charge'}]}",
	               STEP0 ".name is an integer; give a unique name: 1..64 characters of A-Z a-z "
	                     "0-9 _ -");
}

/* Refs name only what exists when the value is built. */
static void test_parse_errors_scope(void **state)
{
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge',"
	               " 'input': {'amount': {'$ref': '/steps/later/result'}}},"
	               " {'name': 'later', 'activity': 'ship'}]}",
	               STEP0
	               ".input.amount.$ref: \"/steps/later/result\" refers to step \"later\", "
	               "which runs after this one (a step can refer only to the steps before "
	               "it)");
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge',"
	               " 'when': {'exists': {'$ref': '/steps/a/result'}}}]}",
	               STEP0 ".when.exists.$ref: \"/steps/a/result\" refers to step \"a\" itself, "
	                     "which has not run yet (a step can refer only to the steps before "
	                     "it)");
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge',"
	               " 'compensate': {'activity': 'refund', 'input': {'$ref': "
	               "'/steps/b/result'}}},"
	               " {'name': 'b', 'activity': 'ship'}]}",
	               STEP0 ".compensate.input.$ref: \"/steps/b/result\" refers to step \"b\", "
	                     "which runs after this one (a compensation can refer only to its step "
	                     "and the steps before it)");
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge'},"
	               " {'name': 'b', 'activity': 'ship', 'input': [{'$ref': "
	               "'/steps/chrge/key'}]}]}",
	               STEP1 ".input[0].$ref: \"/steps/chrge/key\" refers to step \"chrge\", which "
	                     "does not exist (steps: a, b)");
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge', 'input': {'$ran': 'b'}},"
	               " {'name': 'b', 'activity': 'ship'}]}",
	               STEP0 ".input.$ran: refers to step \"b\", which runs after this one (a step "
	                     "can refer only to the steps before it)");
	assert_refused("{'steps': [], 'result': {'k': {'$ref': '/step/key'}}}",
	               PREFIX ".result.k.$ref: \"/step/key\" means the step being called, and the "
	                      "result is built after the last one (use /steps/NAME/key)");
}

static void test_parse_errors_pointers(void **state)
{
#define IN(p) "{'steps': [{'name': 'a', 'activity': 'charge', 'input': {'c': {'$ref': " p "}}}]}"
#define AT STEP0 ".input.c.$ref"
	assert_refused(IN("'input/customer'"),
	               AT ": \"input/customer\" is not a JSON pointer (begin it with \"/\": "
	                  "/input/..., /steps/NAME/result/..., /steps/NAME/key, /workflow/id, "
	                  "/workflow/namespace, /step/key or /step/seq)");
	assert_refused(IN("'/input/a~2b'"), AT ": \"/input/a~2b\" has a \"~\" that is not ~0 or ~1 "
	                                       "(write ~0 for \"~\" and ~1 for \"/\")");
	assert_refused(IN("'/input/a~'"), AT ": \"/input/a~\" has a \"~\" that is not ~0 or ~1 "
	                                     "(write ~0 for \"~\" and ~1 for \"/\")");
	assert_refused(IN("'/inputs/x'"),
	               AT ": \"/inputs/x\" begins with \"/inputs\" (use /input/..., "
	                  "/steps/NAME/result/..., /steps/NAME/key, /workflow/id, "
	                  "/workflow/namespace, /step/key or /step/seq)");
	assert_refused(IN("'/steps/a'"), AT ": \"/steps/a\" is incomplete (use "
	                                    "/steps/NAME/result/... or /steps/NAME/key)");
	assert_refused(IN("'/workflow/name'"),
	               AT ": \"/workflow/name\" is not /workflow/id or /workflow/namespace");
	assert_refused(IN("'/step/key/x'"), AT ": \"/step/key/x\" is not /step/key or /step/seq");
	assert_refused(IN("7"), AT " is an integer; give a JSON pointer (\"/input/FIELD\") or an "
	                           "array of them (the first that exists is used)");
	assert_refused(IN("[]"), AT " is an empty array; give a JSON pointer (\"/input/FIELD\") or "
	                            "an array of them (the first that exists is used)");
	assert_refused(IN("['/input/a', 3]"),
	               AT "[1] is an integer; give a JSON pointer (a string)");
#undef IN
#undef AT
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge',"
	               " 'input': {'c': {'$ref': '/input/a', 'd': 1}}}]}",
	               STEP0 ".input.c.$ref: an object with \"$ref\" has no other member (write "
	                     "{\"$ref\": ...} alone)");
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge', 'input': {'$rfe': 'x'}}]}",
	               STEP0 ".input.$rfe: member names beginning with \"$\" are reserved (a "
	                     "reference is {\"$ref\": POINTER}, {\"$ref\": [POINTER, ...]} or "
	                     "{\"$ran\": STEP})");
}

static void test_parse_errors_conditions(void **state)
{
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge'},"
	               " {'name': 'b', 'activity': 'ship', 'when': {'lte': [1, 2]}}]}",
	               STEP1
	               ".when: unknown operator \"lte\" (use eq, ne, lt, le, gt, ge, and, or, "
	               "not, exists)");
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge',"
	               " 'when': {'and': [true, {'not': {'exist': 1}}]}}]}",
	               STEP0
	               ".when.and[1].not: unknown operator \"exist\" (use eq, ne, lt, le, gt, "
	               "ge, and, or, not, exists)");
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge', 'when': {'eq': [1]}}]}",
	               STEP0 ".when.eq has 1 operands; give two: [A, B]");
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge', 'when': 'yes'}]}",
	               STEP0 ".when is a string; give true, false or {\"OPERATOR\": ...} (eq, ne, "
	                     "lt, le, gt, ge, and, or, not, exists)");
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge',"
	               " 'when': {'eq': [1, 1], 'ne': [1, 2]}}]}",
	               STEP0 ".when has 2 members; a condition is one {\"OPERATOR\": ...} (combine "
	                     "several with and, or)");
	assert_refused("{'steps': [{'name': 'a', 'activity': 'charge', 'when': {'or': true}}]}",
	               STEP0 ".when.or is a boolean; give an array of conditions");
}

static void test_parse_errors_types(void **state)
{
	assert_refused("{'input': {'amount': 'int'}, 'steps': []}",
	               PREFIX ".input.amount: unknown type \"int\" (use string, integer, number, "
	                      "boolean, object, array, any)");
	assert_refused("{'input': ['amount'], 'steps': []}",
	               PREFIX ".input is an array; give an object {FIELD: TYPE} (types: string, "
	                      "integer, number, boolean, object, array, any)");
	assert_refused("{'input': {'amount': 'integer'}, 'defaults': {'amount': '5'}, 'steps': []}",
	               PREFIX ".defaults.amount is a string; give an integer (the type of "
	                      "input.amount)");
}

static void test_parse_limits(void **state)
{
	json_t *def = json_object(), *steps = json_array(), *deep = json_integer(1);
	struct flow *f;
	char err[512], path[512] = STEP0 ".input";

	for (int i = 0; i <= FLOW_MAX_STEPS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "s%d", i);
		json_array_append_new(steps,
		                      json_pack("{s:s, s:s}", "name", name, "activity", "notify"));
	}
	json_object_set_new(def, "steps", steps);
	assert_value_refused(def, PREFIX ".steps has 1001 steps; at most 1000 are allowed (split "
	                                 "the work into several workflow types)");
	json_array_remove(steps, FLOW_MAX_STEPS);
	if ((f = parse_value(def, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	flow_free(f);

	/* 32 levels of templates are fine, 33 are not */
	for (int i = 0; i < FLOW_MAX_DEPTH; i++)
		deep = json_pack("[o]", deep);
	json_array_clear(steps);
	json_array_append_new(
	    steps, json_pack("{s:s, s:s, s:O}", "name", "a", "activity", "notify", "input", deep));
	if ((f = parse_value(def, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	flow_free(f);
	json_object_set_new(json_array_get(steps, 0), "input", json_pack("[o]", deep));
	for (int i = 0; i < FLOW_MAX_DEPTH; i++)
		strcat(path, "[0]");
	strcat(path, ": nested more than 32 levels deep (flatten it)");
	assert_value_refused(def, path);
	json_decref(def);
}

/* ---- the inventory workflow as a definition ---- */

static int inventory_known(void *arg, const char *name)
{
	const struct idem_app *app = arg;

	for (const struct idem_activity *a = app->activities; a->name != NULL; a++)
		if (strcmp(a->name, name) == 0)
			return 1;
	return 0;
}

static struct flow *inventory_flow(void)
{
	char *text = tu_read_file(IDEM_SOURCE_DIR "/examples/inventory-flow/idem.json");
	json_error_t e;
	json_t *app, *def;
	struct flow *f;
	char err[512];

	assert_non_null(text);
	app = json_loads(text, 0, &e);
	if (app == NULL)
		fail_msg("examples/inventory-flow/idem.json: %s (line %d)", e.text, e.line);
	def = json_object_get(json_object_get(app, "workflows"), "inventory");
	f = flow_parse(def, "examples/inventory-flow/idem.json: workflows.inventory",
	               inventory_known, (void *)apps_find("inventory"), err, sizeof(err));
	if (f == NULL)
		fail_msg("%s", err);
	json_decref(app);
	free(text);
	return f;
}

static struct idem_config cfg;

/* The C workflow and the definition replayed over the same history: the
 * same outcome, calls, inputs and result, byte for byte. */
static void assert_same_as_c(const struct flow *f, const struct hist *h, int n,
                             enum idem_wf_outcome expected)
{
	const struct idem_workflow *wf = &apps_find("inventory")->workflows[0];
	const char *input = "{'order_id': 'o-1', 'product_id': '123456', 'quantity': 4}";
	struct fake c, j;
	char err[256];
	char *text;

	fake_init(&c, input, h, n);
	fake_init(&j, input, h, n);
	assert_int_equal(wf->prepare(wf, c.input, &cfg, err, sizeof(err)), 0);
	assert_int_equal(flow_prepare(f, j.input, err, sizeof(err)), 0);
	text = json_dumps(c.input, JSON_COMPACT);
	assert_json(j.input, text);
	free(text);
	assert_int_equal(wf->run(&c.run), expected);
	assert_int_equal(flow_run(f, &j.run), expected);
	assert_int_equal(j.ncalls, c.ncalls);
	for (int i = 0; i < c.ncalls; i++) {
		text = json_dumps(c.inputs[i], JSON_COMPACT);
		assert_call(&j, i, c.acts[i], text);
		free(text);
	}
	if (expected == IDEM_WF_DONE) {
		text = json_dumps(c.run.result, JSON_COMPACT);
		assert_json(j.run.result, text);
		free(text);
	}
	if (expected == IDEM_WF_FAIL)
		assert_string_equal(j.run.error, c.run.error);
	fake_free(&c);
	fake_free(&j);
}

static void test_inventory_as_a_definition(void **state)
{
	const struct hist restock[] = {
	    {"update_inventory", H_DONE,
	     "{'order_id': 'o-1', 'product_id': '123456', 'quantity': 4, 'stock': 1, "
	     "'replayed': false}"},
	    {"supplier_order", H_DONE,
	     "{'product_id': '123456', 'quantity': 1000, 'supplier_order_id': 'SO-7', "
	     "'stock': 1001, 'replayed': false, 'source': 'supplier'}"},
	};
	const struct hist enough[] = {
	    {"update_inventory", H_DONE, "{'order_id': 'o-1', 'stock': 2, 'replayed': false}"}};
	const struct hist refused[] = {{"update_inventory", H_FAILED, "InsufficientStock"}};
	struct flow *f = inventory_flow();

	assert_string_equal(flow_id_field(f), "order_id");
	assert_same_as_c(f, restock, 0, IDEM_WF_SUSPEND);
	assert_same_as_c(f, restock, 1, IDEM_WF_SUSPEND);
	assert_same_as_c(f, restock, 2, IDEM_WF_DONE);
	assert_same_as_c(f, enough, 1, IDEM_WF_DONE);
	assert_same_as_c(f, refused, 1, IDEM_WF_FAIL);
	flow_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_two_steps_use_the_first_result),
	    cmocka_unit_test(test_suspends_on_a_pending_step),
	    cmocka_unit_test(test_when_false_skips_without_a_step_number),
	    cmocka_unit_test(test_conditions),
	    cmocka_unit_test(test_keys_and_workflow_refs),
	    cmocka_unit_test(test_templates),
	    cmocka_unit_test(test_inputs_share_nothing),
	    cmocka_unit_test(test_failure_compensates_in_reverse),
	    cmocka_unit_test(test_pending_compensation_suspends),
	    cmocka_unit_test(test_failed_compensation),
	    cmocka_unit_test(test_failure_with_nothing_to_compensate),
	    cmocka_unit_test(test_nondeterminism_compensates_nothing),
	    cmocka_unit_test(test_deterministic),
	    cmocka_unit_test(test_prepare),
	    cmocka_unit_test(test_parse_errors_members),
	    cmocka_unit_test(test_parse_errors_steps),
	    cmocka_unit_test(test_parse_errors_scope),
	    cmocka_unit_test(test_parse_errors_pointers),
	    cmocka_unit_test(test_parse_errors_conditions),
	    cmocka_unit_test(test_parse_errors_types),
	    cmocka_unit_test(test_parse_limits),
	    cmocka_unit_test(test_inventory_as_a_definition),
	};
	char err[256];

	if (apps_add_config_keys(err, sizeof(err)) != 0)
		return 1;
	config_defaults(&cfg);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_workflow.c — the inventory workflow replayed over recorded steps,
 * without processes: what it schedules, what it returns, how it fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "apps.h"
#include "inventory_input.h"
#include "workflow.h"

#define APP apps_find("inventory")

/* One replay of wf with its type from the inventory app. */
static enum idem_wf_outcome replay(struct wf *wf, struct wf_ctx *ctx)
{
	return wf_replay(wf, wf_type_find(APP, wf->type), ctx);
}

/* The check_ids() of the app's type (0 when it has none or no such type). */
static int check_ids(const char *type, const char *ns, const char *id, char *err, size_t len)
{
	const struct idem_workflow *t = wf_type_find(APP, type);

	return t != NULL && t->check_ids != NULL ? t->check_ids(ns, id, err, len) : 0;
}

static struct idem_config cfg;

static void set_threshold(const char *v)
{
	char err[256];

	assert_int_equal(config_set(&cfg, "REORDER_THRESHOLD", v, err, sizeof(err)), 0);
}

static struct wf *new_wf(const char *order, long quantity)
{
	json_t *input = json_pack("{s:s, s:s, s:i}", "order_id", order, "product_id", "123456",
	                          "quantity", (int)quantity);
	const struct idem_workflow *t = wf_type_find(APP, "inventory");
	char err[256];
	struct wf *wf;

	assert_non_null(t);
	assert_int_equal(t->prepare(t, input, &cfg, err, sizeof(err)), 0);
	wf = wf_new(1, "default", order, "inventory", input);
	json_decref(input);
	return wf;
}

static void complete(struct step *st, json_t *result)
{
	st->status = STEP_COMPLETED;
	st->attempt = 1;
	st->result = result;
}

/* wf_json_text writes by hand the object wf_json builds with jansson (the
 * wait replies use the text): the two must say the same, for a running
 * and a closed workflow, with strings that need escaping. */
static void assert_views_agree(struct wf *wf)
{
	json_t *built = wf_json(wf), *parsed;
	char *text = wf_json_text(wf);
	json_error_t jerr;

	assert_non_null(text);
	parsed = json_loads(text, 0, &jerr);
	if (parsed == NULL)
		fail_msg("wf_json_text is not JSON (%s): %s", jerr.text, text);
	if (!json_equal(built, parsed)) {
		char *b = json_dumps(built, JSON_COMPACT | JSON_SORT_KEYS);
		fail_msg("wf_json and wf_json_text differ:\n%s\n%s", b, text);
	}
	json_decref(built);
	json_decref(parsed);
	free(text);
}

static void test_views_agree(void **state)
{
	struct wf *wf = new_wf("A\"1\\2\n\t\x01\x7f", 999);
	struct wf_ctx ctx;

	assert_views_agree(wf);
	assert_int_equal(replay(wf, &ctx), IDEM_WF_SUSPEND);
	assert_views_agree(wf);
	wf->steps[0]->attempt = 2;
	wf->steps[0]->heartbeat = json_pack("{s:i}", "done", 3);
	wf->steps[0]->error_type = strdup("InjectedError");
	wf->steps[0]->error_message = strdup("line 1\nline \"2\"\r");
	wf->steps[0]->next_attempt_at = 1234;
	assert_views_agree(wf);
	complete(wf->steps[0], json_pack("{s:i, s:s}", "stock", 5000, "note", "\xc3\xa9t\xc3\xa9"));
	assert_int_equal(replay(wf, &ctx), IDEM_WF_DONE);
	wf->status = WF_COMPLETED;
	wf->result = ctx.run.result;
	wf->closed_at = 99;
	assert_views_agree(wf);
	wf->error = strdup("failed: \"quoted\"");
	wf->status = WF_FAILED;
	assert_views_agree(wf);
	wf_free(wf);
}

static void test_seed_replay(void **state)
{
	struct wf *wf = new_wf("A12", 999);
	struct wf_ctx ctx;

	/* First run: schedules update_inventory and suspends. */
	assert_int_equal(replay(wf, &ctx), IDEM_WF_SUSPEND);
	assert_int_equal(ctx.scheduled, 1);
	assert_int_equal(wf->nsteps, 1);
	assert_string_equal(wf->steps[0]->activity, "update_inventory");
	assert_int_equal(json_integer_value(json_object_get(wf->steps[0]->input, "quantity")), 999);

	/* A replay with the step still pending schedules nothing new. */
	assert_int_equal(replay(wf, &ctx), IDEM_WF_SUSPEND);
	assert_int_equal(ctx.scheduled, 0);

	/* Stock 1 < threshold 2: supplier_order of 1000 with a stable key. */
	complete(wf->steps[0], json_pack("{s:i}", "stock", 1));
	assert_int_equal(replay(wf, &ctx), IDEM_WF_SUSPEND);
	assert_int_equal(wf->nsteps, 2);
	assert_string_equal(wf->steps[1]->activity, "supplier_order");
	assert_string_equal(json_string_value(json_object_get(wf->steps[1]->input, "key")),
	                    "default/A12/1");
	assert_int_equal(json_integer_value(json_object_get(wf->steps[1]->input, "quantity")),
	                 1000);

	complete(wf->steps[1], json_pack("{s:i, s:s, s:i}", "stock", 1001, "supplier_order_id",
	                                 "SO-1", "quantity", 1000));
	assert_int_equal(replay(wf, &ctx), IDEM_WF_DONE);
	assert_int_equal(json_integer_value(json_object_get(ctx.run.result, "final_stock")), 1001);
	assert_int_equal(json_integer_value(json_object_get(ctx.run.result, "stock_after_order")),
	                 1);
	assert_true(json_is_true(json_object_get(ctx.run.result, "restocked")));
	assert_string_equal(json_string_value(json_object_get(ctx.run.result, "supplier_order_id")),
	                    "SO-1");
	json_decref(ctx.run.result);
	wf_free(wf);
}

static void test_no_restock_above_threshold(void **state)
{
	struct wf *wf = new_wf("B1", 10);
	struct wf_ctx ctx;

	assert_int_equal(replay(wf, &ctx), IDEM_WF_SUSPEND);
	complete(wf->steps[0], json_pack("{s:i}", "stock", 2)); /* not below 2 */
	assert_int_equal(replay(wf, &ctx), IDEM_WF_DONE);
	assert_int_equal(wf->nsteps, 1);
	assert_false(json_is_true(json_object_get(ctx.run.result, "restocked")));
	assert_int_equal(json_integer_value(json_object_get(ctx.run.result, "final_stock")), 2);
	json_decref(ctx.run.result);
	wf_free(wf);
}

/* The threshold is frozen into the input at start: a later config change
 * cannot change what a replay decides. */
static void test_config_change_does_not_change_replay(void **state)
{
	struct wf *wf = new_wf("C1", 10);
	struct wf_ctx ctx;

	set_threshold("1000");
	assert_int_equal(replay(wf, &ctx), IDEM_WF_SUSPEND);
	complete(wf->steps[0], json_pack("{s:i}", "stock", 5));
	assert_int_equal(replay(wf, &ctx), IDEM_WF_DONE);
	assert_int_equal(wf->nsteps, 1);
	json_decref(ctx.run.result);
	wf_free(wf);
	set_threshold("2");
}

static void test_failed_step_fails_workflow(void **state)
{
	struct wf *wf = new_wf("D1", 5);
	struct wf_ctx ctx;

	assert_int_equal(replay(wf, &ctx), IDEM_WF_SUSPEND);
	wf->steps[0]->status = STEP_FAILED;
	wf->steps[0]->attempt = 3;
	wf->steps[0]->error_type = strdup("UnknownProduct");
	wf->steps[0]->error_message = strdup("unknown product \"123456\"");
	assert_int_equal(replay(wf, &ctx), IDEM_WF_FAIL);
	assert_non_null(strstr(ctx.run.error, "update_inventory"));
	assert_non_null(strstr(ctx.run.error, "3 attempts"));
	assert_non_null(strstr(ctx.run.error, "UnknownProduct"));
	wf_free(wf);
}

static void test_nondeterminism_detected(void **state)
{
	struct wf *wf = new_wf("E1", 5);
	struct wf_ctx ctx;

	wf_add_step(wf, "supplier_order", json_object());
	assert_int_equal(replay(wf, &ctx), IDEM_WF_FAIL);
	assert_non_null(strstr(ctx.run.error, "nondeterminism"));
	assert_non_null(strstr(ctx.run.error, "supplier_order"));
	assert_non_null(strstr(ctx.run.error, "update_inventory"));
	wf_free(wf);
}

#define ORDER "\"order_id\":\"A\",\"product_id\":\"1\",\"quantity\":1"

/* Every field of a start is checked, the optional ones too, and none is
 * kept unchecked: each refusal names the field and what to give. */
static void test_prepare_rejects_bad_input(void **state)
{
	const struct idem_workflow *t = wf_type_find(APP, "inventory");
	struct {
		const char *json, *needle, *range;
	} cases[] = {
	    {"{\"product_id\":\"1\",\"quantity\":1}", "order_id", NULL},
	    {"{\"order_id\":\"A\",\"quantity\":1}", "product_id", NULL},
	    {"{\"order_id\":\"A\",\"product_id\":\"1\"}", "quantity", NULL},
	    {"{\"order_id\":\"A\",\"product_id\":\"1\",\"quantity\":0}", "quantity=0", NULL},
	    {"{\"order_id\":\"A\",\"product_id\":\"1\",\"quantity\":-3}", "quantity=-3", NULL},
	    {"{\"order_id\":\"\",\"product_id\":\"1\",\"quantity\":1}", "order_id", NULL},
	    {"{\"order_id\":\"A\",\"product_id\":\"1\",\"quantity\":\"7\"}", "quantity", NULL},
	    /* Accepted before, failed only later (issue 14). */
	    {"{\"order_id\":\"A\",\"product_id\":\"1\",\"quantity\":2147483648}",
	     "input.quantity=2147483648 is out of range", "give an integer 1..1000000000"},
	    {"{\"order_id\":\"A\",\"product_id\":\"1\",\"quantity\":9223372036854775807}",
	     "input.quantity=9223372036854775807", "1..1000000000"},
	    {"{" ORDER ",\"reorder_quantity\":0}", "input.reorder_quantity=0 is out of range",
	     "give an integer 1..1000000000"},
	    {"{" ORDER ",\"reorder_quantity\":-5}", "input.reorder_quantity=-5", "1..1000000000"},
	    {"{" ORDER ",\"reorder_quantity\":\"1000\"}", "input.reorder_quantity is a string",
	     "1..1000000000"},
	    {"{" ORDER ",\"reorder_quantity\":2147483648}", "input.reorder_quantity=2147483648",
	     "1..1000000000"},
	    {"{" ORDER ",\"reorder_threshold\":-1}", "input.reorder_threshold=-1",
	     "give an integer 0..1000000000"},
	    {"{" ORDER ",\"reorder_threshold\":\"2\"}", "input.reorder_threshold is a string",
	     "0..1000000000"},
	    {"{" ORDER ",\"reorder_threshold\":1.5}", "input.reorder_threshold is a real number",
	     "0..1000000000"},
	    {"{" ORDER ",\"reorder_threshold\":null}", "input.reorder_threshold is null",
	     "0..1000000000"},
	    {"{" ORDER ",\"colour\":\"red\"}", "input.colour is not a known field",
	     "order_id, product_id, quantity, reorder_threshold, reorder_quantity"},
	    {"{\"order_id\":\"A\",\"product_id\":"
	     "\"12345678901234567890123456789012345678901234567890123456789012345\","
	     "\"quantity\":1}",
	     "input.product_id is 65 bytes long", "1..64 bytes"},
	};

	assert_null(wf_type_find(APP, "payments"));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *in = json_loads(cases[i].json, 0, NULL);
		char err[256] = "";

		assert_non_null(in);
		if (t->prepare(t, in, &cfg, err, sizeof(err)) != -1)
			fail_msg("case %zu: %s was accepted", i, cases[i].json);
		if (strstr(err, cases[i].needle) == NULL ||
		    (cases[i].range != NULL && strstr(err, cases[i].range) == NULL))
			fail_msg("case %zu: \"%s\" does not say %s (%s)", i, err, cases[i].needle,
			         cases[i].range ? cases[i].range : "");
		json_decref(in);
	}
}

/* The step inputs of a replay of in (prepared), with the first step
 * completed at stock: update_inventory's, then supplier_order's when the
 * stock is below the threshold (NULL otherwise). BORROWED from wf. */
static void step_inputs(struct wf *wf, json_int_t stock, json_t **update, json_t **order)
{
	struct wf_ctx ctx;

	assert_int_equal(replay(wf, &ctx), IDEM_WF_SUSPEND);
	*update = wf->steps[0]->input;
	complete(wf->steps[0], json_pack("{s:I}", "stock", stock));
	*order = replay(wf, &ctx) == IDEM_WF_SUSPEND ? wf->steps[1]->input : NULL;
	json_decref(ctx.run.result);
}

/* The rule of workflow.c: a start that prepare() and check_ids() accept
 * gives activity inputs that the activities' check accepts, at the edges
 * of every range (and the supplier key at exactly 255 bytes). */
static void test_accepted_start_gives_valid_activity_inputs(void **state)
{
	const struct idem_workflow *t = wf_type_find(APP, "inventory");
	char ns[128], id[126], err[512] = "";
	const char *edges[] = {
	    "{\"order_id\":\"A\",\"product_id\":\"1\",\"quantity\":1000000000,"
	    "\"reorder_threshold\":1000000000,\"reorder_quantity\":1000000000}",
	    "{\"order_id\":\"A\",\"product_id\":\"1\",\"quantity\":1,"
	    "\"reorder_threshold\":1,\"reorder_quantity\":1}",
	    "{\"order_id\":\"12345678901234567890123456789012345678901234567890123456789012345678"
	    "901234567890123456789012345678901234567890123456789012345678\","
	    "\"product_id\":\"1234567890123456789012345678901234567890123456789012345678901234\","
	    "\"quantity\":7}",
	};

	memset(ns, 'n', sizeof(ns) - 1);
	ns[sizeof(ns) - 1] = '\0';
	memset(id, 'w', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	assert_int_equal(check_ids("inventory", ns, id, err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		json_t *in = json_loads(edges[i], 0, NULL), *update, *order;
		struct wf *wf;

		assert_int_equal(t->prepare(t, in, &cfg, err, sizeof(err)), 0);
		wf = wf_new(1, ns, id, "inventory", in);
		step_inputs(wf, 0, &update, &order);
		if (inventory_input_check(update, INVENTORY_UPDATE, err, sizeof(err)) != 0)
			fail_msg("case %zu: update_inventory would refuse: %s", i, err);
		assert_non_null(order);
		if (inventory_input_check(order, INVENTORY_SUPPLIER_ORDER, err, sizeof(err)) != 0)
			fail_msg("case %zu: supplier_order would refuse: %s", i, err);
		assert_int_equal(strlen(json_string_value(json_object_get(order, "key"))), 255);
		json_decref(in);
		wf_free(wf);
	}
}

/* A namespace and workflow id whose supplier key would pass the
 * supplier's 255 bytes are refused, naming the field, its limit (what the
 * namespace leaves) and its length. */
static void test_check_ids_bounds_the_supplier_key(void **state)
{
	char ns[128], id[127], err[512] = "";

	memset(ns, 'n', sizeof(ns) - 1);
	ns[sizeof(ns) - 1] = '\0';
	memset(id, 'w', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	assert_int_equal(check_ids("inventory", ns, id, err, sizeof(err)), -1);
	if (strstr(err, "workflow_id is 126 bytes, over the 125") == NULL ||
	    strstr(err, "255") == NULL)
		fail_msg("\"%s\" does not name workflow_id, 126, 125 and 255", err);
	assert_int_equal(check_ids("inventory", "default", id, err, sizeof(err)), 0);
	assert_int_equal(check_ids("payments", ns, id, err, sizeof(err)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_seed_replay),
	    cmocka_unit_test(test_no_restock_above_threshold),
	    cmocka_unit_test(test_config_change_does_not_change_replay),
	    cmocka_unit_test(test_failed_step_fails_workflow),
	    cmocka_unit_test(test_nondeterminism_detected),
	    cmocka_unit_test(test_prepare_rejects_bad_input),
	    cmocka_unit_test(test_accepted_start_gives_valid_activity_inputs),
	    cmocka_unit_test(test_check_ids_bounds_the_supplier_key),
	    cmocka_unit_test(test_views_agree),
	};

	char err[256];

	if (apps_add_config_keys(err, sizeof(err)) != 0)
		return 1;
	config_defaults(&cfg);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_fault.c — the fault planner: a pure function of (seed, namespace,
 * workflow, step, attempt, kind), so a seed replays the same plan whatever
 * the order of the questions; rates hold; restrictions apply. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fault.h"

#define NWF 200
#define NSTEP 2
#define NATT 5

static struct fault_config mixed(uint64_t seed)
{
	struct fault_config c = {.seed = seed};

	for (int i = 0; i < FAULT_NPOINTS; i++)
		c.kill_rate[i] = 0.05;
	c.async_kill_rate = 0.1;
	c.async_kill_max_ms = 40;
	c.error_rate = 0.2;
	c.delay_rate = 0.05;
	c.delay_ms = 900;
	c.peer_rate = 0.2;
	return c;
}

static const char *activity_of(int step)
{
	return step == 0 ? "update_inventory" : "supplier_order";
}

/* One plan, flattened so two can be compared. */
static void plan_at(const struct fault_config *c, int wf, int step, int att, struct fault_plan *p)
{
	char id[16];

	snprintf(id, sizeof(id), "W%d", wf);
	fault_plan_for(c, "default", id, step, att, activity_of(step), step == 1, NULL, p);
}

static int same(const struct fault_plan *a, const struct fault_plan *b)
{
	return a->kind == b->kind && a->point == b->point && a->after_effect == b->after_effect &&
	       a->ms == b->ms && a->mode == b->mode;
}

static void test_same_seed_same_plan_any_order(void **state)
{
	struct fault_config c = mixed(42);
	static struct fault_plan fwd[NWF][NSTEP][NATT];
	struct fault_plan p;

	for (int w = 0; w < NWF; w++)
		for (int s = 0; s < NSTEP; s++)
			for (int a = 0; a < NATT; a++)
				plan_at(&c, w, s, a + 1, &fwd[w][s][a]);
	/* Asked again in reverse order, interleaved differently: the same. */
	for (int a = NATT - 1; a >= 0; a--)
		for (int w = NWF - 1; w >= 0; w--)
			for (int s = NSTEP - 1; s >= 0; s--) {
				plan_at(&c, w, s, a + 1, &p);
				assert_true(same(&p, &fwd[w][s][a]));
			}
}

static void test_other_seed_other_plan(void **state)
{
	struct fault_config a = mixed(42), b = mixed(43);
	struct fault_plan pa, pb;
	int differ = 0;

	for (int w = 0; w < NWF; w++) {
		plan_at(&a, w, 0, 1, &pa);
		plan_at(&b, w, 0, 1, &pb);
		differ += !same(&pa, &pb);
	}
	assert_true(differ > NWF / 10);
}

static void test_rates_hold(void **state)
{
	struct fault_config c = mixed(7);
	int counts[FAULT_NKINDS] = {0}, points[FAULT_NPOINTS] = {0}, after = 0, n = 20000;
	struct fault_plan p;

	for (int w = 0; w < n; w++) {
		plan_at(&c, w, 1, 1, &p);
		counts[p.kind]++;
		if (p.kind == FAULT_KILL)
			points[p.point]++;
		if (p.kind == FAULT_ERROR)
			after += p.after_effect;
		if (p.kind == FAULT_ASYNC_KILL)
			assert_true(p.ms >= 0 && p.ms <= 40);
		if (p.kind == FAULT_DELAY)
			assert_int_equal(p.ms, 900);
	}
	/* kill 0.20 of all; async 0.1 of the rest; error 0.2 of the rest... */
	assert_in_range(counts[FAULT_KILL], n * 0.18, n * 0.22);
	for (int i = 0; i < FAULT_NPOINTS; i++)
		assert_in_range(points[i], n * 0.04, n * 0.06);
	assert_in_range(counts[FAULT_ASYNC_KILL], n * 0.8 * 0.1 * 0.85, n * 0.8 * 0.1 * 1.15);
	assert_in_range(counts[FAULT_ERROR], n * 0.72 * 0.2 * 0.9, n * 0.72 * 0.2 * 1.1);
	assert_in_range(after, counts[FAULT_ERROR] * 0.4, counts[FAULT_ERROR] * 0.6);
	assert_true(counts[FAULT_PEER] > 0);
}

/* An activity that names its own crash points gets the kills of the
 * three standard points before the reply spread evenly over them; the
 * worker's mid_reply keeps its rate. The plan carries the name, and a
 * task frame carries it back. */
static void test_named_points(void **state)
{
	static const char *const points[] = {"before_charge", "after_charge", "after_commit",
	                                     "after_receipt", NULL};
	struct fault_config c = {.seed = 11, .kill_rate = {0.1, 0.1, 0.1, 0.05}, .max_attempt = 0};
	int hits[4] = {0}, mid = 0, n = 20000;
	struct fault_plan p, back;
	char err[256], id[32];

	for (int w = 0; w < n; w++) {
		snprintf(id, sizeof(id), "W%d", w);
		fault_plan_for(&c, "default", id, 0, 1, "charge", 0, points, &p);
		if (p.kind != FAULT_KILL)
			continue;
		if (p.point == FAULT_MID_REPLY) {
			assert_string_equal(p.point_name, "mid_reply");
			mid++;
			continue;
		}
		assert_int_equal(p.point, FAULT_NAMED_POINT);
		for (int i = 0; i < 4; i++)
			hits[i] += strcmp(p.point_name, points[i]) == 0;
	}
	for (int i = 0; i < 4; i++)
		assert_in_range(hits[i], n * 0.3 / 4 * 0.85, n * 0.3 / 4 * 1.15);
	assert_in_range(mid, n * 0.05 * 0.85, n * 0.05 * 1.15);

	p = (struct fault_plan){.kind = FAULT_KILL, .point = FAULT_NAMED_POINT};
	snprintf(p.point_name, sizeof(p.point_name), "after_charge");
	json_t *j = fault_plan_json(&p);
	assert_int_equal(fault_plan_parse(j, &back, err, sizeof(err)), 0);
	assert_int_equal(back.point, FAULT_NAMED_POINT);
	assert_string_equal(back.point_name, "after_charge");
	fault_plan_describe(&back, err, sizeof(err));
	assert_string_equal(err, "kill at after_charge");
	json_decref(j);
}

static void test_no_rates_no_faults(void **state)
{
	struct fault_config c = {.seed = 1};
	struct fault_plan p;

	assert_false(fault_enabled(&c));
	for (int w = 0; w < 1000; w++) {
		plan_at(&c, w, w % 2, 1 + w % 3, &p);
		assert_int_equal(p.kind, FAULT_NONE);
	}
}

/* Supplier faults hit only an activity whose options say it calls the
 * app's outside service (the peer flag). */
static void test_peer_faults_only_for_peer_activities(void **state)
{
	struct fault_config c = {.seed = 3, .peer_rate = 1.0};
	struct fault_plan p;

	plan_at(&c, 1, 0, 1, &p);
	assert_int_equal(p.kind, FAULT_NONE);
	plan_at(&c, 1, 1, 1, &p);
	assert_int_equal(p.kind, FAULT_PEER);
}

static void test_restrictions(void **state)
{
	struct fault_config c = {.seed = 5, .max_attempt = 1};
	struct fault_plan p;

	c.kill_rate[FAULT_AFTER_COMMIT] = 1.0;
	snprintf(c.activities, sizeof(c.activities), "supplier_order");
	fault_plan_for(&c, "default", "A12", 0, 1, "update_inventory", 0, NULL, &p);
	assert_int_equal(p.kind, FAULT_NONE);
	fault_plan_for(&c, "default", "A12", 1, 1, "supplier_order", 1, NULL, &p);
	assert_int_equal(p.kind, FAULT_KILL);
	assert_int_equal(p.point, FAULT_AFTER_COMMIT);
	fault_plan_for(&c, "default", "A12", 1, 2, "supplier_order", 1, NULL, &p);
	assert_int_equal(p.kind, FAULT_NONE);
}

static void test_roll_separates_fields(void **state)
{
	/* ("ab","c") and ("a","bc") are different workflows. */
	assert_true(fault_roll(1, "ab", "c", 0, 1, "kill") !=
	            fault_roll(1, "a", "bc", 0, 1, "kill"));
	assert_true(fault_roll(1, "ns", "w", 0, 1, "kill") !=
	            fault_roll(1, "ns", "w", 0, 2, "kill"));
	assert_true(fault_roll(1, "ns", "w", 0, 1, "kill") !=
	            fault_roll(1, "ns", "w", 0, 1, "error"));
	assert_true(fault_roll(9, "ns", "w", 3, 4, "x") == fault_roll(9, "ns", "w", 3, 4, "x"));
}

static void test_plan_json_round_trip(void **state)
{
	struct fault_plan plans[] = {
	    {.kind = FAULT_KILL, .point = FAULT_MID_REPLY},
	    {.kind = FAULT_ERROR, .after_effect = 1},
	    {.kind = FAULT_ERROR, .after_effect = 0},
	    {.kind = FAULT_DELAY, .ms = 1234},
	    {.kind = FAULT_PEER, .mode = FAULT_PEER_RECORD_THEN_DIE},
	    {.kind = FAULT_PEER, .mode = FAULT_PEER_UNAVAILABLE},
	};
	struct fault_plan back, async = {.kind = FAULT_ASYNC_KILL, .ms = 5}, none = {0};
	char err[256];

	for (size_t i = 0; i < sizeof(plans) / sizeof(plans[0]); i++) {
		json_t *j = fault_plan_json(&plans[i]);

		assert_non_null(j);
		assert_int_equal(fault_plan_parse(j, &back, err, sizeof(err)), 0);
		assert_true(same(&back, &plans[i]));
		json_decref(j);
	}
	/* The supervisor carries out async kills itself: nothing to send. */
	assert_null(fault_plan_json(&async));
	assert_null(fault_plan_json(&none));
	assert_int_equal(fault_plan_parse(NULL, &back, err, sizeof(err)), 0);
	assert_int_equal(back.kind, FAULT_NONE);
}

static void test_plan_parse_errors(void **state)
{
	const char *bad[][2] = {
	    {"{\"kind\":\"meteor\"}", "unknown kind \"meteor\""},
	    {"{\"kind\":\"kill\"}", "kill needs \"point\""},
	    {"{\"kind\":\"kill\",\"point\":\"Lunch!\"}", "kill needs \"point\""},
	    {"{\"kind\":\"kill\",\"point\":\"\"}", "[a-z0-9_], at most 63 bytes"},
	    {"{\"kind\":\"peer\",\"mode\":\"sulk\"}", "record_then_die"},
	    {"{\"kind\":\"error\",\"colour\":1}", "fault:"},
	    {"{\"kind\":\"async_kill\"}", "unknown kind"},
	};
	struct fault_plan p;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i][0], 0, NULL);

		assert_int_equal(fault_plan_parse(j, &p, err, sizeof(err)), -1);
		if (strstr(err, bad[i][1]) == NULL)
			fail_msg("%s: \"%s\" lacks \"%s\"", bad[i][0], err, bad[i][1]);
		json_decref(j);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_same_seed_same_plan_any_order),
	    cmocka_unit_test(test_other_seed_other_plan),
	    cmocka_unit_test(test_rates_hold),
	    cmocka_unit_test(test_no_rates_no_faults),
	    cmocka_unit_test(test_named_points),
	    cmocka_unit_test(test_peer_faults_only_for_peer_activities),
	    cmocka_unit_test(test_restrictions),
	    cmocka_unit_test(test_roll_separates_fields),
	    cmocka_unit_test(test_plan_json_round_trip),
	    cmocka_unit_test(test_plan_parse_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

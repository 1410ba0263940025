/* test_pool.c — the worker slot lifecycle table and respawn throttling,
 * driven without processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pool.h"

static void test_happy_path(void **state)
{
	enum slot_state s = SLOT_EMPTY;

	s = (enum slot_state)slot_next(s, SE_SPAWN);
	assert_int_equal(s, SLOT_SPAWNING);
	s = (enum slot_state)slot_next(s, SE_READY);
	assert_int_equal(s, SLOT_READY);
	s = (enum slot_state)slot_next(s, SE_ASSIGN);
	assert_int_equal(s, SLOT_BUSY);
	s = (enum slot_state)slot_next(s, SE_DONE);
	assert_int_equal(s, SLOT_READY);
}

static void test_death_and_respawn(void **state)
{
	assert_int_equal(slot_next(SLOT_BUSY, SE_CLOSE), SLOT_STOPPING);
	assert_int_equal(slot_next(SLOT_STOPPING, SE_EXIT), SLOT_BACKOFF);
	assert_int_equal(slot_next(SLOT_BUSY, SE_EXIT), SLOT_BACKOFF);
	assert_int_equal(slot_next(SLOT_SPAWNING, SE_EXIT), SLOT_BACKOFF);
	assert_int_equal(slot_next(SLOT_BACKOFF, SE_SPAWN), SLOT_SPAWNING);
	assert_int_equal(slot_next(SLOT_BACKOFF, SE_GIVE_UP), SLOT_FAILED);
}

static void test_invalid_events(void **state)
{
	/* A task only goes to a ready worker; a result only comes from a busy one. */
	assert_int_equal(slot_next(SLOT_SPAWNING, SE_ASSIGN), -1);
	assert_int_equal(slot_next(SLOT_BUSY, SE_ASSIGN), -1);
	assert_int_equal(slot_next(SLOT_READY, SE_DONE), -1);
	assert_int_equal(slot_next(SLOT_READY, SE_READY), -1);
	assert_int_equal(slot_next(SLOT_STOPPING, SE_READY), -1);
	/* A failed slot stays failed. */
	for (int e = 0; e < SE_NEVENTS; e++)
		assert_int_equal(slot_next(SLOT_FAILED, (enum slot_event)e), -1);
	assert_string_equal(slot_state_name(SLOT_BACKOFF), "backoff");
}

static void test_throttle_young_worker(void **state)
{
	struct slot_history h = {.spawned_at = 10000, .ready_at = 10050};

	/* Died 300 ms after its spawn: wait out the rest of the second. */
	assert_int_equal(slot_respawn_delay(&h, 10300, 0), 700);
}

static void test_no_throttle_after_long_ready(void **state)
{
	struct slot_history h = {.spawned_at = 10000, .ready_at = 10050};

	assert_int_equal(slot_respawn_delay(&h, 12000, 0), 0);
}

static void test_never_ready_is_throttled(void **state)
{
	struct slot_history h = {.spawned_at = 10000, .ready_at = 0};

	assert_int_equal(slot_respawn_delay(&h, 15000, 0), 0);
	h.spawned_at = 15000;
	assert_int_equal(slot_respawn_delay(&h, 15010, 0), 990);
}

static void test_burst_gives_up(void **state)
{
	struct slot_history h = {0};
	int64_t now = 100000;

	for (int i = 0; i < POOL_BURST_DEATHS - 1; i++) {
		h.spawned_at = now;
		now += 1000;
		assert_true(slot_respawn_delay(&h, now, 0) >= 0);
	}
	h.spawned_at = now;
	now += 1000;
	assert_int_equal(slot_respawn_delay(&h, now, 0), -1);
}

static void test_burst_window_slides(void **state)
{
	struct slot_history h = {0};
	int64_t now = 100000;

	/* Deaths spread wider than the window never give up. */
	for (int i = 0; i < 3 * POOL_BURST_DEATHS; i++) {
		h.spawned_at = now;
		now += POOL_BURST_WINDOW_MS / (POOL_BURST_DEATHS - 1) + 1;
		assert_true(slot_respawn_delay(&h, now, 0) >= 0);
	}
}

static void test_expected_deaths_do_not_count(void **state)
{
	struct slot_history h = {.spawned_at = 100000};

	/* Killed by the supervisor (timeouts, planned faults): at once, always. */
	for (int i = 0; i < 10 * POOL_BURST_DEATHS; i++)
		assert_int_equal(slot_respawn_delay(&h, 100001 + i, 1), 0);
	assert_int_equal(h.ndeaths, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_happy_path),
	    cmocka_unit_test(test_death_and_respawn),
	    cmocka_unit_test(test_invalid_events),
	    cmocka_unit_test(test_throttle_young_worker),
	    cmocka_unit_test(test_no_throttle_after_long_ready),
	    cmocka_unit_test(test_never_ready_is_throttled),
	    cmocka_unit_test(test_burst_gives_up),
	    cmocka_unit_test(test_burst_window_slides),
	    cmocka_unit_test(test_expected_deaths_do_not_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

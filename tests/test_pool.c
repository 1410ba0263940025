/* test_pool.c — the worker slot lifecycle table (the spare's trades of
 * workers included) and respawn throttling, driven without processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pool.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

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

/* Applies the events of seq from s, each of which must be valid;
 * returns the state it ends in. */
static enum slot_state walk(enum slot_state s, const enum slot_event *seq, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int next = slot_next(s, seq[i]);

		assert_true(next >= 0);
		s = (enum slot_state)next;
	}
	return s;
}

static void test_spare_hands_over_to_a_dead_slot(void **state)
{
	/* The slot's worker dies; it takes the spare's ready one at once. */
	const enum slot_event slot[] = {SE_SPAWN, SE_READY, SE_ASSIGN, SE_CLOSE, SE_EXIT, SE_ADOPT};
	/* The spare gives its worker away, then starts a new one. */
	const enum slot_event spare[] = {SE_SPAWN, SE_READY, SE_HAND_OVER, SE_SPAWN, SE_READY};

	assert_int_equal(walk(SLOT_EMPTY, slot, ARRAY_LEN(slot)), SLOT_READY);
	assert_int_equal(walk(SLOT_EMPTY, spare, ARRAY_LEN(spare)), SLOT_READY);
	assert_int_equal(slot_next(SLOT_BACKOFF, SE_ADOPT), SLOT_READY);
	assert_int_equal(slot_next(SLOT_READY, SE_HAND_OVER), SLOT_EMPTY);
}

static void test_spare_trades_with_a_starting_slot(void **state)
{
	/* The slot's new worker is still starting when the spare is ready:
	 * the slot takes the spare's, the spare waits for the new one. */
	const enum slot_event slot[] = {SE_EXIT, SE_SPAWN, SE_ADOPT, SE_ASSIGN, SE_DONE};
	const enum slot_event spare[] = {SE_SPAWN, SE_READY, SE_TRADE, SE_READY};

	assert_int_equal(walk(SLOT_BUSY, slot, ARRAY_LEN(slot)), SLOT_READY);
	assert_int_equal(walk(SLOT_EMPTY, spare, ARRAY_LEN(spare)), SLOT_READY);
	assert_int_equal(slot_next(SLOT_SPAWNING, SE_ADOPT), SLOT_READY);
	assert_int_equal(slot_next(SLOT_READY, SE_TRADE), SLOT_SPAWNING);
}

static void test_spare_events_refused(void **state)
{
	/* Only a ready spare gives its worker. */
	for (int s = 0; s < SLOT_NSTATES; s++) {
		if (s == SLOT_READY)
			continue;
		assert_int_equal(slot_next((enum slot_state)s, SE_HAND_OVER), -1);
		assert_int_equal(slot_next((enum slot_state)s, SE_TRADE), -1);
	}
	/* Only a slot without a ready worker takes one: not a ready or busy
	 * one, not one whose worker is still being reaped, not a failed one. */
	assert_int_equal(slot_next(SLOT_EMPTY, SE_ADOPT), -1);
	assert_int_equal(slot_next(SLOT_READY, SE_ADOPT), -1);
	assert_int_equal(slot_next(SLOT_BUSY, SE_ADOPT), -1);
	assert_int_equal(slot_next(SLOT_STOPPING, SE_ADOPT), -1);
	assert_int_equal(slot_next(SLOT_FAILED, SE_ADOPT), -1);
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
	    cmocka_unit_test(test_spare_hands_over_to_a_dead_slot),
	    cmocka_unit_test(test_spare_trades_with_a_starting_slot),
	    cmocka_unit_test(test_spare_events_refused),
	    cmocka_unit_test(test_throttle_young_worker),
	    cmocka_unit_test(test_no_throttle_after_long_ready),
	    cmocka_unit_test(test_never_ready_is_throttled),
	    cmocka_unit_test(test_burst_gives_up),
	    cmocka_unit_test(test_burst_window_slides),
	    cmocka_unit_test(test_expected_deaths_do_not_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

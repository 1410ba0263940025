/* test_retry.c — the retry policy's arithmetic: exponential delays, the
 * cap, constant delays, huge attempt numbers, and the attempt limit. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "retry.h"

/* Checks the delays after attempts 1..n. */
static void expect_delays(const struct retry_policy *p, const int64_t *want, int n)
{
	for (int i = 0; i < n; i++) {
		int64_t got = retry_delay_ms(p, i + 1);

		if (got != want[i])
			fail_msg("delay after attempt %d: got %lld, want %lld", i + 1,
			         (long long)got, (long long)want[i]);
	}
}

static void test_default_policy(void **state)
{
	struct retry_policy p;

	retry_policy_default(&p);
	assert_int_equal(p.initial_ms, 1000);
	assert_true(p.coefficient == 2.0);
	assert_int_equal(p.maximum_ms, 0);
	assert_int_equal(p.maximum_attempts, 0);
}

static void test_default_delays(void **state)
{
	/* The cap is 100 x initial; attempt 8 would be 128000. */
	static const int64_t want[] = {1000,  2000,  4000,   8000,   16000,
	                               32000, 64000, 100000, 100000, 100000};
	struct retry_policy p;

	retry_policy_default(&p);
	expect_delays(&p, want, (int)(sizeof(want) / sizeof(want[0])));
}

static void test_explicit_maximum(void **state)
{
	static const int64_t want[] = {1000, 2000, 4000, 5000, 5000, 5000};
	struct retry_policy p;

	retry_policy_default(&p);
	p.maximum_ms = 5000;
	expect_delays(&p, want, (int)(sizeof(want) / sizeof(want[0])));
}

static void test_other_coefficient(void **state)
{
	/* 250 x 3^(n-1), capped at 100 x 250 = 25000. */
	static const int64_t want[] = {250, 750, 2250, 6750, 20250, 25000, 25000};
	struct retry_policy p;

	retry_policy_default(&p);
	p.initial_ms = 250;
	p.coefficient = 3.0;
	expect_delays(&p, want, (int)(sizeof(want) / sizeof(want[0])));
}

static void test_fractional_coefficient_rounds(void **state)
{
	/* 1000 x 1.5^(n-1): 1000, 1500, 2250, 3375, 5062.5 -> 5063. */
	static const int64_t want[] = {1000, 1500, 2250, 3375, 5063};
	struct retry_policy p;

	retry_policy_default(&p);
	p.coefficient = 1.5;
	expect_delays(&p, want, (int)(sizeof(want) / sizeof(want[0])));
}

static void test_constant_delays(void **state)
{
	struct retry_policy p;

	retry_policy_default(&p);
	p.coefficient = 1.0;
	p.initial_ms = 3000;
	for (int attempt = 1; attempt <= 50; attempt++)
		assert_int_equal(retry_delay_ms(&p, attempt), 3000);
	assert_int_equal(retry_delay_ms(&p, 100000), 3000);
}

static void test_huge_attempts(void **state)
{
	struct retry_policy p;

	retry_policy_default(&p);
	assert_int_equal(retry_delay_ms(&p, 64), 100000);
	assert_int_equal(retry_delay_ms(&p, 1100), 100000);
	assert_int_equal(retry_delay_ms(&p, INT_MAX), 100000);
	/* A cap far above any double step: 2^k stays exact, then the cap. */
	p.maximum_ms = (int64_t)1 << 60;
	assert_int_equal(retry_delay_ms(&p, 11), 1024000);
	assert_int_equal(retry_delay_ms(&p, INT_MAX), (int64_t)1 << 60);
	/* The first attempt, and nonsense below it, wait the initial interval. */
	retry_policy_default(&p);
	assert_int_equal(retry_delay_ms(&p, 1), 1000);
	assert_int_equal(retry_delay_ms(&p, 0), 1000);
	assert_int_equal(retry_delay_ms(&p, -3), 1000);
}

static void test_may_retry_unlimited(void **state)
{
	struct retry_policy p;

	retry_policy_default(&p);
	assert_int_equal(p.maximum_attempts, 0);
	assert_true(retry_may_retry(&p, 1));
	assert_true(retry_may_retry(&p, 2));
	assert_true(retry_may_retry(&p, 1000));
	assert_true(retry_may_retry(&p, INT_MAX));
}

static void test_may_retry_limited(void **state)
{
	struct retry_policy p;

	retry_policy_default(&p);
	p.maximum_attempts = 3;
	assert_true(retry_may_retry(&p, 1));
	assert_true(retry_may_retry(&p, 2));
	assert_false(retry_may_retry(&p, 3));
	assert_false(retry_may_retry(&p, 4));
	/* One attempt only: never retried. */
	p.maximum_attempts = 1;
	assert_false(retry_may_retry(&p, 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_policy),
	    cmocka_unit_test(test_default_delays),
	    cmocka_unit_test(test_explicit_maximum),
	    cmocka_unit_test(test_other_coefficient),
	    cmocka_unit_test(test_fractional_coefficient_rounds),
	    cmocka_unit_test(test_constant_delays),
	    cmocka_unit_test(test_huge_attempts),
	    cmocka_unit_test(test_may_retry_unlimited),
	    cmocka_unit_test(test_may_retry_limited),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

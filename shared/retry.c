#include "retry.h"

#include <math.h>

void retry_policy_default(struct retry_policy *p)
{
	p->initial_ms = 1000;
	p->coefficient = 2.0;
	p->maximum_ms = 0;
	p->maximum_attempts = 0;
}

int64_t retry_delay_ms(const struct retry_policy *p, int attempt)
{
	int64_t cap = p->maximum_ms > 0 ? p->maximum_ms : 100 * p->initial_ms;
	double d = (double)p->initial_ms;

	/* The loop ends at the cap, so it runs at most log(cap / initial)
	 * times; a coefficient of 1 or less keeps the initial interval. */
	if (p->coefficient > 1.0)
		for (int i = 1; i < attempt && d < (double)cap; i++)
			d *= p->coefficient;
	if (d > (double)cap)
		d = (double)cap;
	if (d >= 9.2e18)
		return INT64_MAX;
	return (int64_t)llround(d);
}

int retry_may_retry(const struct retry_policy *p, int attempt)
{
	return p->maximum_attempts == 0 || attempt < p->maximum_attempts;
}

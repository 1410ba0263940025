/* retry.h — Temporal's retry policy: the delay before attempt n+1 is
 * initial * coefficient^(n-1), capped at maximum; maximum_attempts 0 is
 * unlimited; a non-retryable error ends the step at once. Pure math. */
#ifndef IDEM_RETRY_H
#define IDEM_RETRY_H

#include <stdint.h>

struct retry_policy {
	int64_t initial_ms;   /* initial_interval, default 1000 */
	double coefficient;   /* backoff_coefficient, default 2.0 */
	int64_t maximum_ms;   /* maximum_interval; 0 = 100 x initial */
	int maximum_attempts; /* 0 = unlimited */
};

void retry_policy_default(struct retry_policy *p);

/* Delay in ms before the next attempt after `attempt` (1-based) failed. */
int64_t retry_delay_ms(const struct retry_policy *p, int attempt);

/* Non-zero when another attempt may follow attempt number `attempt`. */
int retry_may_retry(const struct retry_policy *p, int attempt);

#endif

/* timer.h — one-shot timers on the supervisor's event loop, in ms. */
#ifndef IDEM_TIMER_H
#define IDEM_TIMER_H

#include <event2/event.h>
#include <stdint.h>

/* Arms a timer event to fire in ms milliseconds. */
static inline void timer_in(struct event *ev, int64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

	evtimer_add(ev, &tv);
}

#endif

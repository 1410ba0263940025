/* clock.h — time sources. Monotonic time drives timers and durations;
 * wall time (ms since the epoch) is what gets stored. */
#ifndef IDEM_CLOCK_H
#define IDEM_CLOCK_H

#include <stdint.h>

int64_t clock_mono_ms(void);
int64_t clock_mono_us(void);
int64_t clock_wall_ms(void);
/* Formats wall ms as RFC 3339 UTC with milliseconds into buf (>= 25 bytes). */
void clock_format_wall(int64_t wall_ms, char *buf, unsigned long len);

#endif

/* clock: cowdag's one clock.  Every duration and every timestamp in the
 * tree is read here (design: README.md, "Watching sharing"). */
#ifndef COWDAG_BASE_CLOCK_H
#define COWDAG_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC, in nanoseconds.  It is one clock for the whole machine,
 * not per process, so a timestamp one process writes into the scoreboard
 * (a worker's sample time, the master's restart times) and the time another
 * process reads when it answers GET /stats are comparable: that is what
 * lets any worker say how old every other worker's figures are.  It never
 * goes back and does not follow changes to the wall clock.  Returns 0 if
 * the clock cannot be read (it always can on Linux). */
static inline uint64_t base_now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The same clock in microseconds and milliseconds (rounded down). */
static inline uint64_t base_now_us(void) { return base_now_ns() / 1000u; }
static inline uint64_t base_now_ms(void) { return base_now_ns() / 1000000u; }

/* Sleeps until base_now_ns() reaches t (at once if it has), through
 * signals. */
static inline void base_sleep_until_ns(uint64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
        ;
}

#endif

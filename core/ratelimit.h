/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A rate limit for log lines that report failures: at most `burst` lines per
 * `interval`, then silence until the interval ends; the first line of the next
 * interval says how many were held back.  Failures must be said (one warn line
 * with the cause), but a server that refuses every request must not fill the
 * log.  Internal to koc.
 *
 *   static koc__ratelimit rl = KOC__RATELIMIT_INIT(10 * KOC_USEC_PER_SEC, 1);
 *   koc__log_ratelimited(&rl, KOC_LOG_WARN, "informer", "list %s refused: %s", path, why);
 *
 * Safe to call from any thread (one lock; only failure paths take it).  The
 * clock is CLOCK_BOOTTIME, so a suspended machine does not stretch a window.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct koc__ratelimit {
        uint64_t interval_usec;
        unsigned burst;
        /* Written under the module's lock. */
        uint64_t window_start;
        unsigned used;
        uint64_t suppressed;
} koc__ratelimit;

#define KOC__RATELIMIT_INIT(interval, burst_)                                                      \
        { .interval_usec = (interval), .burst = (burst_) }

/* True when one more event fits in the current window (and counts it); false
 * when it is to be held back.  When a new window opens after held-back events,
 * *ret_suppressed (may be NULL) gets their number, else 0. */
bool koc__ratelimit_below(koc__ratelimit *rl, uint64_t *ret_suppressed);

/* koc_log() through the limit; a line after held-back ones ends with
 * " (N similar suppressed)". */
void koc__log_ratelimited(koc__ratelimit *rl, int level, const char *component,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));

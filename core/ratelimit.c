/* SPDX-License-Identifier: Apache-2.0 */
#include "ratelimit.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "koc/log.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t now_boottime(void) {
        struct timespec ts;
        clock_gettime(CLOCK_BOOTTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

bool koc__ratelimit_below(koc__ratelimit *rl, uint64_t *ret_suppressed) {
        uint64_t now = now_boottime(), suppressed = 0;
        bool ok;

        pthread_mutex_lock(&lock);
        if (rl->window_start == 0 || rl->interval_usec == 0 ||
            now - rl->window_start >= rl->interval_usec) {
                suppressed = rl->suppressed;
                rl->window_start = now;
                rl->used = 0;
                rl->suppressed = 0;
        }
        ok = rl->burst == 0 || rl->used < rl->burst;
        if (ok)
                rl->used++;
        else
                rl->suppressed++;
        pthread_mutex_unlock(&lock);

        if (ret_suppressed)
                *ret_suppressed = ok ? suppressed : 0;
        return ok;
}

void koc__log_ratelimited(koc__ratelimit *rl, int level, const char *component,
                          const char *fmt, ...) {
        uint64_t suppressed;
        char msg[2048];
        va_list ap;

        if (!koc_log_enabled(level))
                return;
        if (!koc__ratelimit_below(rl, &suppressed))
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (suppressed > 0)
                koc_log(level, component, "%s (%llu similar suppressed)", msg,
                        (unsigned long long)suppressed);
        else
                koc_log(level, component, "%s", msg);
}

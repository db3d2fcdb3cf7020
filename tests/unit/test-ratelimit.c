/* SPDX-License-Identifier: Apache-2.0 */
/* The rate limit of failure lines: a burst per window, then silence, and the
 * next window's first line says how many were held back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/ratelimit.h"
#include "koc/log.h"

static char last[4096];
static int lines;

static void capture(int level, const char *component, const char *message, void *userdata) {
        (void)level, (void)component, (void)userdata;
        strncpy(last, message, sizeof last - 1);
        lines++;
}

static void test_burst_then_silence(void **state) {
        (void)state;
        koc__ratelimit rl = KOC__RATELIMIT_INIT(60ull * 1000000, 2);
        uint64_t sup = 99;
        assert_true(koc__ratelimit_below(&rl, &sup));
        assert_int_equal(sup, 0);
        assert_true(koc__ratelimit_below(&rl, NULL));
        assert_false(koc__ratelimit_below(&rl, &sup));
        assert_false(koc__ratelimit_below(&rl, NULL));
        assert_int_equal(rl.suppressed, 2);
}

static void test_next_window_counts_suppressed(void **state) {
        (void)state;
        koc__ratelimit rl = KOC__RATELIMIT_INIT(20000, 1); /* 20 ms */
        koc_log_set_handler(capture, NULL, NULL);
        koc_log_set_level(KOC_LOG_WARN);
        lines = 0;
        for (int i = 0; i < 5; i++)
                koc__log_ratelimited(&rl, KOC_LOG_WARN, "test", "refused %d", i);
        assert_int_equal(lines, 1);
        assert_string_equal(last, "refused 0");
        usleep(30000);
        koc__log_ratelimited(&rl, KOC_LOG_WARN, "test", "refused %d", 5);
        assert_int_equal(lines, 2);
        assert_string_equal(last, "refused 5 (4 similar suppressed)");
        /* Below the level nothing is counted or written. */
        koc__log_ratelimited(&rl, KOC_LOG_DEBUG, "test", "quiet");
        assert_int_equal(lines, 2);
        koc_log_set_handler(NULL, NULL, NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_burst_then_silence),
                cmocka_unit_test(test_next_window_counts_suppressed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/util.h"
#include "koc/time.h"

static void test_microtime_roundtrip(void **state) {
        char buf[KOC_MICROTIME_MAX];
        uint64_t t = UINT64_C(1764000000123456); /* 2025-11-24T16:00:00.123456Z */
        assert_string_equal(koc_format_microtime(t, buf, sizeof buf), "2025-11-24T16:00:00.123456Z");
        uint64_t back = 0;
        assert_int_equal(koc_parse_rfc3339(buf, &back), 0);
        assert_true(back == t);
}

static void test_parse_rfc3339_forms(void **state) {
        uint64_t t;
        assert_int_equal(koc_parse_rfc3339("2025-11-24T16:00:00Z", &t), 0);
        assert_true(t == UINT64_C(1764000000000000));
        /* client-go writes fewer digits when trailing zeros drop. */
        assert_int_equal(koc_parse_rfc3339("2025-11-24T16:00:00.5Z", &t), 0);
        assert_true(t == UINT64_C(1764000000500000));
        /* Offsets are honoured; nanoseconds are truncated to microseconds. */
        assert_int_equal(koc_parse_rfc3339("2025-11-24T17:00:00.123456789+01:00", &t), 0);
        assert_true(t == UINT64_C(1764000000123456));
        assert_int_equal(koc_parse_rfc3339("2025-11-24T15:30:00-00:30", &t), 0);
        assert_true(t == UINT64_C(1764000000000000));
}

static void test_parse_rfc3339_rejects(void **state) {
        static const char *bad[] = {
                "", "now", "2025-11-24", "2025-11-24 16:00:00Z", "2025-11-24T16:00:00",
                "2025-11-24T16:00:00.Z", "2025-11-24T16:00:00Zjunk", "2025-1-24T16:00:00Z",
                "2025-11-24T16:00:00+0100", "2025-13-24T16:00:00Z",
        };
        uint64_t t = 42;
        for (size_t i = 0; i < KOC_ELEMENTSOF(bad); i++) {
                assert_int_equal(koc_parse_rfc3339(bad[i], &t), -EINVAL);
                assert_true(t == 42); /* untouched on failure */
        }
        assert_int_equal(koc_parse_rfc3339(NULL, &t), -EINVAL);
}

static void test_parse_duration(void **state) {
        static const struct {
                const char *s;
                uint64_t usec;
        } ok[] = {
                { "0", 0 },          { "15s", 15000000 },     { "500ms", 500000 },
                { "1m30s", 90000000 }, { "1.5h", 5400000000ULL }, { "250us", 250 },
                { "2s500ms", 2500000 }, { "0.25s", 250000 },    { "1000ns", 1 },
                { "7\u00b5s", 7 },      { "7\u03bcs", 7 },
        };
        for (size_t i = 0; i < KOC_ELEMENTSOF(ok); i++) {
                uint64_t u = 1;
                assert_int_equal(koc_parse_duration(ok[i].s, &u), 0);
                assert_true(u == ok[i].usec);
        }
        static const char *bad[] = { "", "15", "s", "-1s", "1x", "1s2", "1 s", "+1s", "1e3s" };
        for (size_t i = 0; i < KOC_ELEMENTSOF(bad); i++) {
                uint64_t u = 7;
                assert_int_equal(koc_parse_duration(bad[i], &u), -EINVAL);
                assert_true(u == 7);
        }
        uint64_t u;
        assert_int_equal(koc_parse_duration("99999999999999999999h", &u), -ERANGE);
}

static void test_format_duration(void **state) {
        char buf[32];
        assert_string_equal(koc_format_duration(0, buf, sizeof buf), "0s");
        assert_string_equal(koc_format_duration(250000, buf, sizeof buf), "250ms");
        assert_string_equal(koc_format_duration(1500000, buf, sizeof buf), "1.5s");
        assert_string_equal(koc_format_duration(90000000, buf, sizeof buf), "1m30s");
}

static void test_uuid(void **state) {
        char a[37], b[37];
        assert_int_equal(koc_uuid_random(a), 0);
        assert_int_equal(koc_uuid_random(b), 0);
        assert_int_equal(strlen(a), 36);
        assert_true(a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-');
        assert_true(a[14] == '4');                     /* version 4 */
        assert_non_null(strchr("89ab", a[19]));        /* RFC 4122 variant */
        assert_string_not_equal(a, b);
}

static void test_clocks_and_random(void **state) {
        uint64_t a = koc_now_boottime_usec(), b = koc_now_boottime_usec();
        assert_true(a > 0 && b >= a);
        assert_true(koc_now_realtime_usec() > UINT64_C(1700000000000000));
        for (int i = 0; i < 1000; i++)
                assert_true(koc__random_u64(10) < 10);
        assert_true(koc__random_u64(0) == 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_microtime_roundtrip), cmocka_unit_test(test_parse_rfc3339_forms),
                cmocka_unit_test(test_parse_rfc3339_rejects), cmocka_unit_test(test_parse_duration),
                cmocka_unit_test(test_format_duration),     cmocka_unit_test(test_uuid),
                cmocka_unit_test(test_clocks_and_random),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

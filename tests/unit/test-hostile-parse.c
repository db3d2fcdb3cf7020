/* SPDX-License-Identifier: Apache-2.0 */
/* Edge values for the duration and timestamp parsers (tests/fuzz/fuzz-time.c
 * covers the rest): nothing may overflow on the way to a uint64_t. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "koc/time.h"

static void test_duration_at_2_pow_63(void **state) {
        (void)state;
        uint64_t d = 0;
        /* 2^63 usec, and values that round to it as a double: llround()
         * cannot represent them. */
        assert_int_equal(koc_parse_duration("9223372036854775808us", &d), -ERANGE);
        assert_int_equal(koc_parse_duration("9223372036854775807us", &d), -ERANGE);
        assert_int_equal(koc_parse_duration("9223372036854775.808s", &d), -ERANGE);
        assert_int_equal(koc_parse_duration("18446744073709551615us", &d), -ERANGE);
        /* Just below: still parsed, and exact enough. */
        assert_int_equal(koc_parse_duration("2562047h", &d), 0);
        assert_int_equal(d, UINT64_C(2562047) * 3600 * KOC_USEC_PER_SEC);
        assert_int_equal(koc_parse_duration("9223372036854774784us", &d), 0);
        assert_int_equal(d, UINT64_C(9223372036854774784));
}

static void test_duration_number_too_long(void **state) {
        (void)state;
        uint64_t d = 0;
        char s[200];
        for (size_t i = 0; i < sizeof s - 2; i++)
                s[i] = '0';
        s[sizeof s - 2] = 's';
        s[sizeof s - 1] = '\0';
        assert_int_equal(koc_parse_duration(s, &d), -ERANGE);
}

static void test_timestamp_edges(void **state) {
        (void)state;
        uint64_t t = 0;
        assert_int_equal(koc_parse_rfc3339("9999-12-31T23:59:59.999999999Z", &t), 0);
        assert_int_equal(koc_parse_rfc3339("0000-01-01T00:00:00Z", &t), -EINVAL);
        assert_int_equal(koc_parse_rfc3339("1970-01-01T00:00:00+00:01", &t), -EINVAL);
        assert_int_equal(koc_parse_rfc3339("2026-11-24T10:00:00.", &t), -EINVAL);
        assert_int_equal(koc_parse_rfc3339("2026-11-24T10:00:00+0", &t), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_duration_at_2_pow_63),
                cmocka_unit_test(test_duration_number_too_long),
                cmocka_unit_test(test_timestamp_edges),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

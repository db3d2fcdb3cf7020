/* SPDX-License-Identifier: Apache-2.0 */
/* The one resourceVersion comparison: numbers when both are decimal integers
 * without leading zeros, "cannot compare" otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/resource-version.h"

static void test_ordered_form(void **state) {
        static const char *const good[] = {"0", "1", "9", "10", "123456789",
                                           "184467440737095516160000"};
        static const char *const bad[] = {"",   "00", "01",  "-1",  "+1", " 1", "1 ",
                                          "1a", "a1", "abc", "1.0", "0x1", "１"};
        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
                assert_true(koc__rv_is_ordered(good[i]));
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                assert_false(koc__rv_is_ordered(bad[i]));
        assert_false(koc__rv_is_ordered(NULL));
}

static void test_numeric_order(void **state) {
        assert_int_equal(koc__rv_compare("10", "9"), KOC_RV_NEWER);
        assert_int_equal(koc__rv_compare("9", "10"), KOC_RV_OLDER);
        assert_int_equal(koc__rv_compare("42", "42"), KOC_RV_SAME);
        assert_int_equal(koc__rv_compare("0", "0"), KOC_RV_SAME);
        assert_int_equal(koc__rv_compare("1", "0"), KOC_RV_NEWER);
        assert_int_equal(koc__rv_compare("100", "99"), KOC_RV_NEWER);
        assert_int_equal(koc__rv_compare("199", "200"), KOC_RV_OLDER);
        /* No width limit: past 64 bits the order still holds. */
        assert_int_equal(koc__rv_compare("18446744073709551617", "18446744073709551616"),
                         KOC_RV_NEWER);
        assert_int_equal(koc__rv_compare("18446744073709551615", "100000000000000000000"),
                         KOC_RV_OLDER);
}

static void test_cannot_compare(void **state) {
        /* Opaque, empty, absent or zero-padded: no order, not even equality
         * of the same string (equality of opaque strings is the caller's). */
        assert_int_equal(koc__rv_compare("abc", "abc"), KOC_RV_UNORDERED);
        assert_int_equal(koc__rv_compare("abc", "1"), KOC_RV_UNORDERED);
        assert_int_equal(koc__rv_compare("1", "abc"), KOC_RV_UNORDERED);
        assert_int_equal(koc__rv_compare("", "1"), KOC_RV_UNORDERED);
        assert_int_equal(koc__rv_compare("1", ""), KOC_RV_UNORDERED);
        assert_int_equal(koc__rv_compare(NULL, "1"), KOC_RV_UNORDERED);
        assert_int_equal(koc__rv_compare("1", NULL), KOC_RV_UNORDERED);
        assert_int_equal(koc__rv_compare("010", "9"), KOC_RV_UNORDERED);
        assert_int_equal(koc__rv_compare("10", "09"), KOC_RV_UNORDERED);
        assert_int_equal(koc__rv_compare("-1", "1"), KOC_RV_UNORDERED);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ordered_form),
                cmocka_unit_test(test_numeric_order),
                cmocka_unit_test(test_cannot_compare),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

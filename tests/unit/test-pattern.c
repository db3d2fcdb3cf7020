/* SPDX-License-Identifier: Apache-2.0 */
/* RE2 patterns as POSIX extended expressions (core/pattern.c): what matches
 * after the translation is what Go's regexp matches; what POSIX cannot say
 * is refused with a message naming it. */
#include <errno.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/pattern.h"

static int matches(const char *pattern, const char *s) {
        char *posix = NULL, err[200];
        regex_t re;
        assert_int_equal(koc__pattern_to_posix(pattern, &posix, err, sizeof err), 0);
        assert_int_equal(regcomp(&re, posix, REG_EXTENDED | REG_NOSUB), 0);
        int m = regexec(&re, s, 0, NULL, 0) == 0;
        regfree(&re);
        free(posix);
        return m;
}

static void refused(const char *pattern, const char *why) {
        char *posix = NULL, err[200] = "";
        assert_int_equal(koc__pattern_to_posix(pattern, &posix, err, sizeof err), -EINVAL);
        assert_null(posix);
        if (!strstr(err, why))
                fail_msg("%s: \"%s\" does not say \"%s\"", pattern, err, why);
}

static void test_translated(void **state) {
        (void)state;
        assert_true(matches("^(?:a|b)+$", "abba"));
        assert_false(matches("^(?:a|b)+$", "abc"));
        assert_true(matches("^\\d+(\\.\\d+)*$", "1.22.3"));
        assert_false(matches("^\\d+$", "1a"));
        assert_true(matches("^\\w+\\s\\S+$", "a_1 x!"));
        assert_false(matches("^\\s$", "\v")); /* RE2's \s is [\t\n\f\r ] */
        assert_true(matches("^\\D\\W$", "a-"));
        assert_true(matches("^a\\.b\\*\\<\\/$", "a.b*</"));
        assert_false(matches("^a\\.b$", "axb"));
        assert_true(matches("^\\t\\n$", "\t\n"));
        /* Bracket expressions: escaped and leading ], -, ^ and [ are literals. */
        assert_true(matches("^[a\\-z]+$", "a-z"));
        assert_false(matches("^[a\\-z]$", "b"));
        assert_true(matches("^[]a]+$", "]a"));
        assert_true(matches("^[^]a]$", "b"));
        assert_false(matches("^[^]a]$", "]"));
        assert_true(matches("^[\\]\\[\\^]+$", "][^"));
        assert_true(matches("^[[.]+$", "[."));
        assert_true(matches("^[\\w.-]+$", "a-b.c_9"));
        assert_true(matches("^[\\d\\s]+$", "1 2"));
        assert_true(matches("^[\\\\]$", "\\"));
        assert_true(matches("^[[:alpha:][:digit:]]+$", "a1"));
        assert_true(matches("^[[:word:]]+$", "a_1"));
        assert_true(matches("^[!-~]+$", "a]^-["));
        /* { that is no repetition is a literal, as in RE2. */
        assert_true(matches("^a{$", "a{"));
        assert_true(matches("^a{,2}$", "a{,2}"));
        assert_true(matches("^a{1,2}$", "aa"));
        assert_false(matches("^a{1,2}$", "aaa"));
}

static void test_refused(void **state) {
        (void)state;
        refused("(?i)abc", "unsupported group `(?i`");
        refused("^(?!kube-).*$", "unsupported group `(?!`");
        refused("(?P<n>a)", "unsupported group `(?P`");
        refused("\\bword", "`\\b`");
        refused("(a)\\1", "`\\1`");
        refused("\\x41", "`\\x`");
        refused("\\pL", "`\\p`");
        refused("abc\\", "trailing backslash");
        refused("[\\D]", "`\\D` inside a bracket expression");
        refused("[[:^alpha:]]", "`[:^alpha:]`");
        refused("[[:foo:]]", "`[:foo:]`");
        refused("[z-a]", "invalid character class range: `z-a`");
        refused("[a-\\d]", "invalid character class range");
        refused("[abc", "missing closing ]");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_translated),
                cmocka_unit_test(test_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

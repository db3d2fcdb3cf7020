/* SPDX-License-Identifier: Apache-2.0 */
/* DNS-1123 labels and subdomains as apimachinery validates them, and path
 * segments escaped so that no name can change a request's path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/names.h"

static char *repeat(char c, size_t n) {
        char *s = malloc(n + 1);
        assert_non_null(s);
        memset(s, c, n);
        s[n] = '\0';
        return s;
}

static void test_labels(void **state) {
        static const char *const good[] = {"a", "0", "kube-system", "a-b-c", "123-abc", "a--b"};
        static const char *const bad[] = {"",    "-a",  "a-", "A",   "a_b", "a.b", "a/b",
                                          "a?b", "a b", "é",  "a\n", ".",   "..",  "a%2F"};
        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
                assert_null(koc__dns1123_label_error(good[i]));
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                assert_non_null(koc__dns1123_label_error(bad[i]));
        assert_non_null(koc__dns1123_label_error(NULL));
        assert_string_equal(koc__dns1123_label_error(""), "must not be empty");
        assert_non_null(strstr(koc__dns1123_label_error("a_b"), "RFC 1123 label"));
}

static void test_label_lengths(void **state) {
        char *s = repeat('a', 63);
        assert_null(koc__dns1123_label_error(s));
        free(s);
        s = repeat('a', 64);
        assert_string_equal(koc__dns1123_label_error(s), "must be no more than 63 characters");
        free(s);
}

static void test_subdomains(void **state) {
        static const char *const good[] = {"a",   "my-lease", "example.com", "a.b.c",
                                           "0.0", "a-1.b-2",  "x.y--z"};
        static const char *const bad[] = {"",    ".a",   "a.",  "a..b", "a.-b",  "a-.b",
                                          "-a",  "A.b",  "a/b", "../x", "a?x=1", "a#b",
                                          "a b", "a\\b", ".",   "..",   "a%2fb"};
        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
                assert_null(koc__dns1123_subdomain_error(good[i]));
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                assert_non_null(koc__dns1123_subdomain_error(bad[i]));
        assert_non_null(strstr(koc__dns1123_subdomain_error("a/b"), "RFC 1123 subdomain"));
}

static void test_subdomain_lengths(void **state) {
        /* A subdomain's parts are not limited to 63, only the whole to 253. */
        char *s = repeat('a', 253);
        assert_null(koc__dns1123_subdomain_error(s));
        s[100] = '.';
        assert_null(koc__dns1123_subdomain_error(s));
        free(s);
        s = repeat('a', 254);
        assert_string_equal(koc__dns1123_subdomain_error(s), "must be no more than 253 characters");
        free(s);
        /* A hostile, very long value is refused by its length. */
        s = repeat('/', 1 << 20);
        assert_string_equal(koc__dns1123_subdomain_error(s), "must be no more than 253 characters");
        free(s);
}

static void test_path_segment_escape(void **state) {
        static const struct {
                const char *in, *out;
        } cases[] = {
                {"my-lease", "my-lease"},
                {"a.b_c~D", "a.b_c~D"},
                {"a/b", "a%2Fb"},
                {"x?watch=1#f", "x%3Fwatch%3D1%23f"},
                {"100%", "100%25"},
                {"a b", "a%20b"},
                {"..", "%2E%2E"},
                {".", "%2E"},
                {"...", "..."},
                {"\xc3\xa9", "%C3%A9"},
                {"", ""},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char *s = koc__path_segment_escape(cases[i].in);
                assert_non_null(s);
                assert_string_equal(s, cases[i].out);
                free(s);
        }
}

/* apimachinery's IsValidPathSegmentName (client-go's "invalid resource
 * name"), plus what would end the path or break the request line. */
static void test_path_segment_names(void **state) {
        static const char *const good[] = {"coredns", "a.b", "...", "system:controller:x",
                                           "a_b", "A", "\xc3\xa9", "a=b", "a@b", "a;b"};
        static const struct {
                const char *in, *why;
        } bad[] = {
                {"", "must not be empty"},
                {".", "may not be '.'"},
                {"..", "may not be '..'"},
                {"a/b", "may not contain '/'"},
                {"kube-system/configmaps/coredns", "may not contain '/'"},
                {"%2e%2e", "may not contain '%'"},
                {"coredns?x=", "may not contain '?'"},
                {"a#b", "may not contain '#'"},
                {"a b", "may not contain whitespace or control characters"},
                {"a\tb", "may not contain whitespace or control characters"},
                {"a\r\nHost: x", "may not contain whitespace or control characters"},
                {"a\x7f", "may not contain whitespace or control characters"},
                {"\x01", "may not contain whitespace or control characters"},
        };
        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
                assert_null(koc__path_segment_name_error(good[i]));
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                assert_string_equal(koc__path_segment_name_error(bad[i].in), bad[i].why);
        assert_string_equal(koc__path_segment_name_error(NULL), "must not be empty");
}

static void test_name_quote(void **state) {
        char buf[64];
        assert_string_equal(koc__name_quote("coredns?x=", buf, sizeof buf), "coredns?x=");
        assert_string_equal(koc__name_quote("a\nb\x7f\"\\", buf, sizeof buf),
                            "a\\x0ab\\x7f\\x22\\x5c");
        assert_string_equal(koc__name_quote("\xc3\xa9", buf, sizeof buf), "\\xc3\\xa9");
        assert_string_equal(koc__name_quote(NULL, buf, sizeof buf), "(null)");
        assert_string_equal(koc__name_quote("", buf, sizeof buf), "");
        /* Cut at a whole character, with "..." after it, within size. */
        char small[10];
        assert_string_equal(koc__name_quote("abcdefghijk", small, sizeof small), "abcdef...");
        assert_string_equal(koc__name_quote("abcdefghi", small, sizeof small), "abcdefghi");
        assert_string_equal(koc__name_quote("ab\x01\x02", small, sizeof small), "ab\\x01...");
        char *s = repeat('\n', 1000);
        assert_true(strlen(koc__name_quote(s, buf, sizeof buf)) < sizeof buf);
        assert_non_null(strstr(buf, "..."));
        free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_labels),
                cmocka_unit_test(test_label_lengths),
                cmocka_unit_test(test_subdomains),
                cmocka_unit_test(test_subdomain_lengths),
                cmocka_unit_test(test_path_segment_escape),
                cmocka_unit_test(test_path_segment_names),
                cmocka_unit_test(test_name_quote),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Query strings for list and watch requests: encoding, replacement, removal. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "koc/client.h"

static void test_empty(void **state) {
        _koc_cleanup_(koc_query_freep) koc_query *q = NULL;
        assert_int_equal(koc_query_new(&q), 0);
        assert_string_equal(koc_query_string(q), "");
        assert_null(koc_query_string(NULL));
        assert_null(koc_query_free(NULL));
}

static void test_list_parameters_encoded(void **state) {
        _koc_cleanup_(koc_query_freep) koc_query *q = NULL;
        assert_int_equal(koc_query_new(&q), 0);
        assert_int_equal(koc_query_set_label_selector(q, "app in (a,b),tier!=cache"), 0);
        assert_int_equal(koc_query_set_field_selector(q, "metadata.name=x y"), 0);
        assert_int_equal(koc_query_set_limit(q, 500), 0);
        assert_int_equal(koc_query_set_continue(q, "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ+/=="), 0);
        assert_int_equal(koc_query_set_resource_version(q, "12345"), 0);
        assert_int_equal(koc_query_set_resource_version_match(q, "NotOlderThan"), 0);
        assert_int_equal(koc_query_set_timeout_seconds(q, 290), 0);
        assert_int_equal(koc_query_set_allow_watch_bookmarks(q, true), 0);
        assert_string_equal(koc_query_string(q),
                            "labelSelector=app%20in%20%28a%2Cb%29%2Ctier%21%3Dcache"
                            "&fieldSelector=metadata.name%3Dx%20y"
                            "&limit=500"
                            "&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ%2B%2F%3D%3D"
                            "&resourceVersion=12345"
                            "&resourceVersionMatch=NotOlderThan"
                            "&timeoutSeconds=290"
                            "&allowWatchBookmarks=true");
}

static void test_replace_and_remove(void **state) {
        _koc_cleanup_(koc_query_freep) koc_query *q = NULL;
        assert_int_equal(koc_query_new(&q), 0);
        assert_int_equal(koc_query_set_limit(q, 2), 0);
        assert_int_equal(koc_query_set_continue(q, "page2"), 0);
        assert_string_equal(koc_query_string(q), "limit=2&continue=page2");
        /* The next page replaces the token in place. */
        assert_int_equal(koc_query_set_continue(q, "page3"), 0);
        assert_string_equal(koc_query_string(q), "limit=2&continue=page3");
        assert_int_equal(koc_query_set_continue(q, ""), 0);
        assert_int_equal(koc_query_set_limit(q, 0), 0);
        assert_string_equal(koc_query_string(q), "");
        assert_int_equal(koc_query_set_allow_watch_bookmarks(q, true), 0);
        assert_int_equal(koc_query_set_allow_watch_bookmarks(q, false), 0);
        assert_string_equal(koc_query_string(q), "");
        /* Any other parameter, names encoded too; bytes above 0x7f as well. */
        assert_int_equal(koc_query_set(q, "dry run", "All"), 0);
        assert_int_equal(koc_query_set(q, "x", "\xc3\xa9~-._"), 0);
        assert_string_equal(koc_query_string(q), "dry%20run=All&x=%C3%A9~-._");
        assert_int_equal(koc_query_set(q, "dry run", NULL), 0);
        assert_string_equal(koc_query_string(q), "x=%C3%A9~-._");
}

static void test_bad_arguments(void **state) {
        _koc_cleanup_(koc_query_freep) koc_query *q = NULL;
        assert_int_equal(koc_query_new(NULL), -EINVAL);
        assert_int_equal(koc_query_new(&q), 0);
        assert_int_equal(koc_query_set(q, "", "v"), -EINVAL);
        assert_int_equal(koc_query_set(q, NULL, "v"), -EINVAL);
        assert_int_equal(koc_query_set(NULL, "a", "v"), -EINVAL);
        assert_int_equal(koc_query_set_resource_version_match(q, "exact"), -EINVAL);
        assert_int_equal(koc_query_set_resource_version_match(q, "Exact"), 0);
        assert_string_equal(koc_query_string(q), "resourceVersionMatch=Exact");
        assert_int_equal(koc_query_set_limit(NULL, 1), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_list_parameters_encoded),
                cmocka_unit_test(test_replace_and_remove),
                cmocka_unit_test(test_bad_arguments),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* RFC 6902 diff and apply: the exact operations for objects, arrays and
 * scalars, RFC 6901 escaping of '~' and '/', and apply(diff(a, b), a) == b
 * over pairs that exercise every branch. */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/jsonpatch.h"

static char *diff_text(const char *a, const char *b) {
        cJSON *ja = cJSON_Parse(a), *jb = cJSON_Parse(b), *ops = NULL;
        assert_non_null(ja);
        assert_non_null(jb);
        assert_int_equal(koc__jsonpatch_diff(ja, jb, &ops), 0);
        char *s = cJSON_PrintUnformatted(ops);
        cJSON_Delete(ja);
        cJSON_Delete(jb);
        cJSON_Delete(ops);
        return s;
}

static void expect_diff(const char *a, const char *b, const char *want) {
        char *s = diff_text(a, b);
        assert_string_equal(s, want);
        free(s);
}

static void round_trip(const char *a, const char *b) {
        cJSON *ja = cJSON_Parse(a), *jb = cJSON_Parse(b), *ops = NULL, *out = NULL;
        assert_non_null(ja);
        assert_non_null(jb);
        assert_int_equal(koc__jsonpatch_diff(ja, jb, &ops), 0);
        assert_int_equal(koc__jsonpatch_apply(ja, ops, &out), 0);
        assert_true(cJSON_Compare(out, jb, true));
        cJSON_Delete(ja);
        cJSON_Delete(jb);
        cJSON_Delete(ops);
        cJSON_Delete(out);
}

static void test_objects(void **state) {
        expect_diff("{\"a\":1}", "{\"a\":1}", "[]");
        expect_diff("{\"a\":1}", "{\"a\":2}", "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":2}]");
        expect_diff("{\"a\":1}", "{}", "[{\"op\":\"remove\",\"path\":\"/a\"}]");
        expect_diff("{}", "{\"spec\":{\"port\":11211}}",
                    "[{\"op\":\"add\",\"path\":\"/spec\",\"value\":{\"port\":11211}}]");
        expect_diff("{\"spec\":{\"size\":1}}", "{\"spec\":{\"size\":1,\"port\":11211}}",
                    "[{\"op\":\"add\",\"path\":\"/spec/port\",\"value\":11211}]");
        expect_diff("{\"a\":{\"b\":1}}", "{\"a\":[1]}",
                    "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":[1]}]");
        expect_diff("{\"a\":\"1\"}", "{\"a\":1}",
                    "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":1}]");
        expect_diff("{\"a\":true}", "{\"a\":false}",
                    "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":false}]");
        expect_diff("{\"a\":null}", "{\"a\":null}", "[]");
        expect_diff("1", "{}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":{}}]");
}

static void test_escaping(void **state) {
        expect_diff("{}", "{\"a/b~c\":1}", "[{\"op\":\"add\",\"path\":\"/a~1b~0c\",\"value\":1}]");
        expect_diff("{\"metadata\":{\"annotations\":{\"example.com/x\":\"1\"}}}",
                    "{\"metadata\":{\"annotations\":{}}}",
                    "[{\"op\":\"remove\",\"path\":\"/metadata/annotations/example.com~1x\"}]");
        expect_diff("{\"~1\":1}", "{\"~1\":2}",
                    "[{\"op\":\"replace\",\"path\":\"/~01\",\"value\":2}]");
        expect_diff("{\"\":1}", "{\"\":2}", "[{\"op\":\"replace\",\"path\":\"/\",\"value\":2}]");
        round_trip("{\"a/b\":{\"~\":[1]},\"\":{\"\":0}}", "{\"a/b\":{\"~\":[2,3]},\"\":{\"\":1}}");
        char *p = koc__jsonpointer_append("/x", "~/~");
        assert_string_equal(p, "/x/~0~1~0");
        free(p);
}

static void test_arrays(void **state) {
        expect_diff("[1,2]", "[1,3]", "[{\"op\":\"replace\",\"path\":\"/1\",\"value\":3}]");
        expect_diff("[1]", "[1,2,3]",
                    "[{\"op\":\"add\",\"path\":\"/1\",\"value\":2},"
                    "{\"op\":\"add\",\"path\":\"/2\",\"value\":3}]");
        expect_diff("[1,2,3]", "[1]",
                    "[{\"op\":\"remove\",\"path\":\"/2\"},{\"op\":\"remove\",\"path\":\"/1\"}]");
        round_trip("[1,2,3,4]", "[0]");
        round_trip("[]", "[[],{},null]");
        round_trip("{\"c\":[{\"n\":\"a\"},{\"n\":\"b\"}]}", "{\"c\":[{\"n\":\"a\",\"p\":1}]}");
        round_trip("{\"a\":1,\"b\":[1,{\"x\":\"y\"}],\"c\":null}",
                   "{\"b\":[1,{\"x\":\"z\",\"w\":[]},7],\"c\":false,\"d\":\"new\"}");
}

static void test_hostile(void **state) {
        cJSON *a = cJSON_Parse("{\"a\":1,\"a\":2}"), *b = cJSON_Parse("{\"a\":1}"), *ops = NULL;
        assert_int_equal(koc__jsonpatch_diff(a, b, &ops), -EINVAL);
        assert_int_equal(koc__jsonpatch_diff(b, a, &ops), -EINVAL);
        assert_null(ops);
        assert_int_equal(koc__jsonpatch_diff(NULL, b, &ops), -EINVAL);

        /* Deeper than the bound: refused, no crash. */
        cJSON *deep = cJSON_CreateObject(), *cur = deep, *deep2 = cJSON_CreateObject();
        for (int i = 0; i < KOC__JSONPATCH_MAX_DEPTH + 5; i++) {
                cJSON *n = cJSON_CreateObject();
                cJSON_AddItemToObject(cur, "x", n);
                cur = n;
        }
        cJSON_AddNumberToObject(cur, "v", 1);
        cJSON *d2 = cJSON_Duplicate(deep, true);
        cJSON_Delete(deep2);
        cJSON_AddNumberToObject(cJSON_GetObjectItem(d2, "x"), "w", 1);
        cJSON *c = d2;
        while (cJSON_GetObjectItem(c, "x"))
                c = cJSON_GetObjectItem(c, "x");
        cJSON_ReplaceItemInObject(c, "v", cJSON_CreateNumber(2));
        assert_int_equal(koc__jsonpatch_diff(deep, d2, &ops), -ELOOP);
        cJSON_Delete(deep);
        cJSON_Delete(d2);

        /* Patches that do not apply. */
        static const char *const bad[] = {
                "[{\"op\":\"remove\",\"path\":\"/nope\"}]",
                "[{\"op\":\"replace\",\"path\":\"/a\"}]",
                "[{\"op\":\"move\",\"path\":\"/a\",\"from\":\"/b\"}]",
                "[{\"op\":\"add\",\"path\":\"a\",\"value\":1}]",
                "[{\"op\":\"add\",\"path\":\"/x/y\",\"value\":1}]",
                "[{\"op\":\"add\",\"path\":\"/l/01\",\"value\":1}]",
                "[{\"op\":\"add\",\"path\":\"/l/3\",\"value\":1}]",
                "[{\"op\":\"remove\",\"path\":\"/l/-\"}]",
                "[{\"op\":\"add\",\"path\":\"/~2\",\"value\":1}]",
                "[{\"op\":\"remove\",\"path\":\"\"}]",
                "[{\"path\":\"/a\"}]",
                "[1]",
        };
        cJSON *doc = cJSON_Parse("{\"a\":1,\"l\":[1,2]}");
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                cJSON *p = cJSON_Parse(bad[i]), *out = NULL;
                assert_non_null(p);
                assert_int_equal(koc__jsonpatch_apply(doc, p, &out), -EINVAL);
                assert_null(out);
                cJSON_Delete(p);
        }
        cJSON *p = cJSON_Parse("[{\"op\":\"add\",\"path\":\"/l/-\",\"value\":3},"
                               "{\"op\":\"add\",\"path\":\"/l/0\",\"value\":0},"
                               "{\"op\":\"add\",\"path\":\"/l/3\",\"value\":2.5}]"),
              *out = NULL;
        assert_int_equal(koc__jsonpatch_apply(doc, p, &out), 0);
        char *s = cJSON_PrintUnformatted(out);
        assert_string_equal(s, "{\"a\":1,\"l\":[0,1,2,2.5,3]}");
        free(s);
        cJSON_Delete(p);
        cJSON_Delete(out);
        cJSON_Delete(doc);
        cJSON_Delete(a);
        cJSON_Delete(b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_objects),
                cmocka_unit_test(test_escaping),
                cmocka_unit_test(test_arrays),
                cmocka_unit_test(test_hostile),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The one label-selector parser (core/selector.h), shared by the controller
 * runtime and koc-apiserver: apimachinery's syntax and matching rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "core/selector.h"

/* labels: "k=v;k=v" */
static const char *lookup(const char *key, void *userdata) {
        static char buf[64];
        const char *p = userdata;
        size_t kl = strlen(key);
        while (p && *p) {
                size_t n = strcspn(p, ";");
                if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
                        snprintf(buf, sizeof buf, "%.*s", (int)(n - kl - 1), p + kl + 1);
                        return buf;
                }
                p += n + (p[n] == ';');
        }
        return NULL;
}

static bool matches(const char *s, const char *labels) {
        koc_selector *sel = NULL;
        koc_error err = {0};
        assert_int_equal(koc__selector_parse(s, &sel, &err), 0);
        bool m = koc__selector_matches(sel, lookup, (void *)labels);
        koc__selector_free(sel);
        return m;
}

static void test_match(void **state) {
        const char *l = "app=web;tier=front;n=5;neg=-3;word=abc";
        assert_true(matches("", l));
        assert_true(matches(NULL, NULL));
        assert_true(matches("app=web", l));
        assert_true(matches("app==web", l));
        assert_false(matches("app=db", l));
        assert_true(matches("app!=db", l));
        assert_true(matches("missing!=x", l));
        assert_true(matches(" app in ( db , web ) ", l));
        assert_false(matches("app notin (db,web)", l));
        assert_true(matches("missing notin (x)", l));
        assert_true(matches("app,!missing", l));
        assert_false(matches("!app", l));
        assert_true(matches("example.com/key!=v", l));
        assert_true(matches("app=", "app="));
}

static bool includes(const char *sel, const char *part) {
        koc_selector *a = NULL, *b = NULL;
        assert_int_equal(koc__selector_parse(sel, &a, NULL), 0);
        assert_int_equal(koc__selector_parse(part, &b, NULL), 0);
        bool r = koc__selector_includes(a, b);
        koc__selector_free(a);
        koc__selector_free(b);
        return r;
}

/* Whether a cache of what `part` selects can answer a read by `sel`. */
static void test_includes(void **state) {
        assert_true(includes(NULL, NULL));
        assert_true(includes("app=web", NULL));
        assert_true(includes("app=web", ""));
        assert_false(includes(NULL, "app=web"));
        assert_true(includes("app=web", "app=web"));
        assert_true(includes("tier=db,app=web", "app=web"));
        assert_true(includes("app in (web)", "app==web"));
        assert_true(includes("app notin (a,b)", "app notin (b,a)"));
        assert_true(includes("app!=x", "app notin (x)"));
        assert_false(includes("app=web", "app=db"));
        assert_false(includes("app=web", "app!=web"));
        assert_false(includes("app=web", "app=web,tier=db"));
        assert_false(includes("app in (x,y)", "app in (x)"));
        assert_false(includes("n>1", "n>2"));
        assert_true(includes("n>2,!gone", "!gone,n>2"));
}

static void test_numeric(void **state) {
        const char *l = "n=5;neg=-3;word=abc;big=99999999999999999999";
        assert_true(matches("n>3", l));
        assert_false(matches("n>5", l));
        assert_true(matches("n<6", l));
        assert_false(matches("n<3", l));
        assert_true(matches("neg<-2", l));
        assert_true(matches("n > 4, neg < 0", l));
        /* A label that is not an integer (or is absent) matches neither. */
        assert_false(matches("word>0", l));
        assert_false(matches("word<0", l));
        assert_false(matches("missing>0", l));
        assert_false(matches("missing<0", l));
        assert_false(matches("big>0", l));
}

static void test_errors(void **state) {
        static const char *const bad[] = {
                "app in x", "a=b,,", "=b", "a in (b", "a,", "a=b, ", "app=web)", "a===b",
                "a>", "a>x", "a<1.5", "a>99999999999999999999", /* not an int64 */
                "a=b/c",                                         /* no '/' in a value */
                "a in (b/c)", "!", "!a=b", "a b"};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                koc_selector *sel = NULL;
                koc_error err = {0};
                assert_int_equal(koc__selector_parse(bad[i], &sel, &err), -EINVAL);
                assert_null(sel);
                assert_non_null(strstr(err.message, bad[i]));
                assert_int_equal(koc__selector_parse(bad[i], &sel, NULL), -EINVAL);
        }
        koc_selector *sel = NULL;
        assert_int_equal(koc__selector_parse(" ", &sel, NULL), 0);
        assert_true(koc__selector_is_empty(sel));
        koc__selector_free(sel);
        assert_true(koc__selector_is_empty(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_match),
                cmocka_unit_test(test_numeric),
                cmocka_unit_test(test_includes),
                cmocka_unit_test(test_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

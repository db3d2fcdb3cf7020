/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the metrics registry: registration rules, values, the text
 * exposition format, the process collector and lock-free updates. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cmocka.h>

#include "koc/metrics.h"

static char *render(koc_metrics *m) {
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(koc_metrics_render(m, &text, &len), 0);
        assert_int_equal(strlen(text), len);
        return text;
}

static void test_exposition(void **state) {
        koc_metrics *m = NULL;
        koc_metric *a = NULL, *b = NULL, *g = NULL, *h = NULL, *again = NULL;
        assert_int_equal(koc_metrics_new(&m), 0);
        assert_int_equal(koc_metrics_add_counter(m, "req_total", "Requests.\nTwo lines \\ here",
                                                 "code=\"200\"", &a),
                         0);
        assert_int_equal(koc_metrics_add_counter(m, "req_total", "ignored", "code=\"503\"", &b), 0);
        assert_int_equal(koc_metrics_add_counter(m, "req_total", "x", "code=\"200\"", &again), 0);
        assert_ptr_equal(a, again);
        assert_int_equal(koc_metrics_add_gauge(m, "temp", "", NULL, &g), 0);
        static const double bounds[] = {0.5, 1, 2.5};
        assert_int_equal(koc_metrics_add_histogram(m, "lat_seconds", "Latency.", "op=\"put\"",
                                                   bounds, 3, &h),
                         0);
        koc_metric_inc(a);
        koc_metric_add(a, 2);
        koc_metric_add(a, -5); /* counters never go down */
        koc_metric_set(g, -1.25);
        koc_metric_observe(h, 0.1);
        koc_metric_observe(h, 1);
        koc_metric_observe(h, 7);
        assert_true(koc_metric_get(a) == 3);
        assert_true(koc_metric_get(b) == 0);
        assert_true(koc_metric_get(h) == 8.1);
        assert_int_equal(koc_metric_get_count(h), 3);

        char *text = render(m);
        assert_string_equal(text, "# HELP req_total Requests.\\nTwo lines \\\\ here\n"
                                  "# TYPE req_total counter\n"
                                  "req_total{code=\"200\"} 3\n"
                                  "req_total{code=\"503\"} 0\n"
                                  "# TYPE temp gauge\n"
                                  "temp -1.25\n"
                                  "# HELP lat_seconds Latency.\n"
                                  "# TYPE lat_seconds histogram\n"
                                  "lat_seconds_bucket{op=\"put\",le=\"0.5\"} 1\n"
                                  "lat_seconds_bucket{op=\"put\",le=\"1\"} 2\n"
                                  "lat_seconds_bucket{op=\"put\",le=\"2.5\"} 2\n"
                                  "lat_seconds_bucket{op=\"put\",le=\"+Inf\"} 3\n"
                                  "lat_seconds_sum{op=\"put\"} 8.1\n"
                                  "lat_seconds_count{op=\"put\"} 3\n");
        free(text);
        koc_metrics_unref(m);
}

static void test_rules(void **state) {
        koc_metrics *m = NULL;
        koc_metric *x = NULL;
        assert_int_equal(koc_metrics_new(&m), 0);
        assert_int_equal(koc_metrics_add_counter(m, "ok_total", "", NULL, &x), 0);
        assert_int_equal(koc_metrics_add_gauge(m, "ok_total", "", NULL, &x), -EINVAL);
        static const char *const bad_names[] = {"", "1abc", "a-b", "a b", "é"};
        for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
                assert_int_equal(koc_metrics_add_counter(m, bad_names[i], "", NULL, &x), -EINVAL);
        static const char *const bad_labels[] = {"a",        "a=b",    "a=\"b",      "a=\"b\"x",
                                                 "a=\"b\",", "=\"b\"", "a=\"b\nc\"", "a=\"\\q\""};
        for (size_t i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++)
                assert_int_equal(koc_metrics_add_counter(m, "l_total", "", bad_labels[i], &x),
                                 -EINVAL);
        assert_int_equal(koc_metrics_add_counter(m, "l_total", "", "a=\"x\\\"y\",b=\"\"", &x), 0);
        static const double unsorted[] = {1, 0.5};
        assert_int_equal(koc_metrics_add_histogram(m, "h", "", NULL, unsorted, 2, &x), -EINVAL);
        assert_int_equal(koc_metrics_add_counter(NULL, "n", "", NULL, &x), -EINVAL);
        assert_null(koc_metrics_unref(NULL));
        koc_metric_inc(NULL);
        assert_true(koc_metric_get(NULL) == 0);
        koc_metrics_unref(m);
}

static void collector(FILE *out, void *ud) {
        fprintf(out, "custom_value %d\n", *(int *)ud);
}

static void test_collectors(void **state) {
        koc_metrics *m = NULL;
        int v = 42;
        assert_int_equal(koc_metrics_new(&m), 0);
        assert_int_equal(koc_metrics_add_collector(m, collector, &v, NULL), 0);
        assert_int_equal(koc_metrics_add_process_collector(m), 0);
        char *text = render(m);
        assert_non_null(strstr(text, "custom_value 42\n"));
        static const char *const names[] = {
                "process_cpu_seconds_total ",  "process_resident_memory_bytes ",
                "process_open_fds ",           "process_max_fds ",
                "process_start_time_seconds ", "# TYPE process_cpu_seconds_total counter\n"};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                assert_non_null(strstr(text, names[i]));
        /* RSS is a positive number of bytes. */
        const char *rss = strstr(text, "\nprocess_resident_memory_bytes ");
        assert_non_null(rss);
        assert_true(strtod(rss + strlen("\nprocess_resident_memory_bytes "), NULL) > 1e5);
        free(text);
        koc_metrics_unref(m);
}

#define THREADS 4
#define PER_THREAD 100000

static void *hammer(void *ud) {
        koc_metric **x = ud;
        for (int i = 0; i < PER_THREAD; i++) {
                koc_metric_inc(x[0]);
                koc_metric_observe(x[1], 1);
        }
        return NULL;
}

static void test_concurrent_updates(void **state) {
        koc_metrics *m = NULL;
        koc_metric *x[2];
        static const double bounds[] = {1};
        assert_int_equal(koc_metrics_new(&m), 0);
        assert_int_equal(koc_metrics_add_counter(m, "c_total", "", NULL, &x[0]), 0);
        assert_int_equal(koc_metrics_add_histogram(m, "h", "", NULL, bounds, 1, &x[1]), 0);
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++)
                assert_int_equal(pthread_create(&t[i], NULL, hammer, x), 0);
        for (int i = 0; i < THREADS; i++)
                pthread_join(t[i], NULL);
        assert_true(koc_metric_get(x[0]) == THREADS * PER_THREAD);
        assert_int_equal(koc_metric_get_count(x[1]), THREADS * PER_THREAD);
        assert_true(koc_metric_get(x[1]) == THREADS * PER_THREAD);
        koc_metrics_unref(m);
}

static void test_label_escaping_and_canonical_form(void **state) {
        koc_metrics *m = NULL;
        koc_metric *a = NULL, *b = NULL, *c = NULL;
        assert_int_equal(koc_metrics_new(&m), 0);
        /* Escaped quote, backslash and line break come out escaped; spaces
         * around pairs are dropped, so both spellings are one metric. */
        assert_int_equal(
                koc_metrics_add_gauge(m, "info", "Build \"info\".",
                                      "name=\"a\\\"b\", path=\"C:\\\\x\", note=\"l1\\nl2\"", &a),
                0);
        assert_int_equal(koc_metrics_add_gauge(m, "info", NULL,
                                               "name=\"a\\\"b\",path=\"C:\\\\x\",note=\"l1\\nl2\"",
                                               &b),
                         0);
        assert_ptr_equal(a, b);
        /* Order is part of the identity. */
        assert_int_equal(koc_metrics_add_gauge(m, "info", NULL,
                                               "path=\"C:\\\\x\",name=\"a\\\"b\",note=\"l1\\nl2\"",
                                               &c),
                         0);
        assert_ptr_not_equal(a, c);
        koc_metric_set(a, 1);
        koc_metric_inc(c);
        koc_metric_add(c, 0.5);
        char *text = render(m);
        assert_string_equal(text, "# HELP info Build \"info\".\n"
                                  "# TYPE info gauge\n"
                                  "info{name=\"a\\\"b\",path=\"C:\\\\x\",note=\"l1\\nl2\"} 1\n"
                                  "info{path=\"C:\\\\x\",name=\"a\\\"b\",note=\"l1\\nl2\"} 1.5\n");
        free(text);

        static const char *const bad[] = {
                "a=\"1\",a=\"2\"",                                 /* duplicate name */
                "__name__=\"x\"",                                  /* reserved */
                "1a=\"x\"",        "a-b=\"x\"", "a=\"x\" b=\"y\"", /* missing comma */
                ",a=\"x\"",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(koc_metrics_add_gauge(m, "g2", "", bad[i], &a), -EINVAL);
        /* "le" belongs to histograms' buckets; a gauge may use it. */
        static const double bounds[] = {1};
        assert_int_equal(koc_metrics_add_histogram(m, "h_seconds", "", "le=\"1\"", bounds, 1, &a),
                         -EINVAL);
        assert_int_equal(koc_metrics_add_gauge(m, "g3", "", "le=\"1\"", &a), 0);
        koc_metrics_unref(m);
}

static void test_histogram_buckets(void **state) {
        koc_metrics *m = NULL;
        koc_metric *h = NULL, *again = NULL, *plain = NULL;
        assert_int_equal(koc_metrics_new(&m), 0);
        static const double bounds[] = {0.005, 0.1, 1, 10};
        assert_int_equal(
                koc_metrics_add_histogram(m, "d_seconds", "Durations.", NULL, bounds, 4, &h), 0);
        /* The same buckets: the same metric; other buckets: refused. */
        assert_int_equal(koc_metrics_add_histogram(m, "d_seconds", "", NULL, bounds, 4, &again), 0);
        assert_ptr_equal(h, again);
        assert_int_equal(koc_metrics_add_histogram(m, "d_seconds", "", NULL, bounds, 3, &again),
                         -EINVAL);
        /* Upper bounds are inclusive. */
        static const double obs[] = {0, 0.005, 0.0051, 0.1, 0.5, 1, 10, 10.5, 1e9, -3};
        double sum = 0;
        for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) {
                koc_metric_observe(h, obs[i]);
                sum += obs[i];
        }
        koc_metric_observe(h, NAN); /* ignored */
        assert_int_equal(koc_metric_get_count(h), 10);
        assert_true(koc_metric_get(h) == sum);
        char *text = render(m);
        char want[1024];
        snprintf(want, sizeof want,
                 "# HELP d_seconds Durations.\n"
                 "# TYPE d_seconds histogram\n"
                 "d_seconds_bucket{le=\"0.005\"} 3\n"
                 "d_seconds_bucket{le=\"0.1\"} 5\n"
                 "d_seconds_bucket{le=\"1\"} 7\n"
                 "d_seconds_bucket{le=\"10\"} 8\n"
                 "d_seconds_bucket{le=\"+Inf\"} 10\n"
                 "d_seconds_sum %.17g\n"
                 "d_seconds_count 10\n",
                 sum);
        /* The sum is printed in its shortest exact form; compare as numbers. */
        char *sum_line = strstr(text, "d_seconds_sum ");
        assert_non_null(sum_line);
        assert_true(strtod(sum_line + strlen("d_seconds_sum "), NULL) == sum);
        assert_memory_equal(text, want, (size_t)(strstr(want, "d_seconds_sum ") - want));
        assert_string_equal(strstr(text, "d_seconds_count"), "d_seconds_count 10\n");
        free(text);

        /* No buckets at all: only +Inf.  A trailing +Inf bound is implicit. */
        assert_int_equal(koc_metrics_add_histogram(m, "n", "", NULL, NULL, 0, &plain), 0);
        koc_metric_observe(plain, 2);
        static const double with_inf[] = {1, INFINITY};
        assert_int_equal(koc_metrics_add_histogram(m, "i", "", NULL, with_inf, 2, &again), 0);
        koc_metric_observe(again, 5);
        static const double bad1[] = {1, 1}, bad2[] = {NAN}, bad3[] = {-INFINITY, 1};
        assert_int_equal(koc_metrics_add_histogram(m, "b1", "", NULL, bad1, 2, &again), -EINVAL);
        assert_int_equal(koc_metrics_add_histogram(m, "b2", "", NULL, bad2, 1, &again), -EINVAL);
        assert_int_equal(koc_metrics_add_histogram(m, "b3", "", NULL, bad3, 2, &again), -EINVAL);
        assert_int_equal(koc_metrics_add_histogram(m, "b4", "", NULL, NULL, 2, &again), -EINVAL);
        text = render(m);
        assert_non_null(strstr(text, "# TYPE n histogram\n"
                                     "n_bucket{le=\"+Inf\"} 1\n"
                                     "n_sum 2\n"
                                     "n_count 1\n"));
        assert_non_null(strstr(text, "i_bucket{le=\"1\"} 0\n"
                                     "i_bucket{le=\"+Inf\"} 1\n"));
        assert_null(strstr(text, "b1"));
        free(text);
        koc_metrics_unref(m);
}

static void test_values_and_types(void **state) {
        koc_metrics *m = NULL;
        koc_metric *c = NULL, *g = NULL, *h = NULL;
        static const double bounds[] = {1};
        assert_int_equal(koc_metrics_new(&m), 0);
        assert_int_equal(koc_metrics_add_counter(m, "c_total", "", NULL, &c), 0);
        assert_int_equal(koc_metrics_add_gauge(m, "g", "", NULL, &g), 0);
        assert_int_equal(koc_metrics_add_histogram(m, "h", "", NULL, bounds, 1, &h), 0);
        /* Operations of another type are ignored, not applied. */
        koc_metric_set(c, 100);
        koc_metric_observe(c, 1);
        koc_metric_observe(g, 1);
        koc_metric_inc(h);
        koc_metric_set(h, 5);
        assert_true(koc_metric_get(c) == 0);
        assert_true(koc_metric_get(g) == 0);
        assert_int_equal(koc_metric_get_count(h), 0);
        assert_int_equal(koc_metric_get_count(c), 0);
        koc_metric_add(c, NAN);
        assert_true(koc_metric_get(c) == 0);
        /* Gauges go both ways. */
        koc_metric_add(g, -2.5);
        koc_metric_inc(g);
        assert_true(koc_metric_get(g) == -1.5);
        koc_metric_add(c, 1234567);
        koc_metric_set(g, INFINITY);
        char *text = render(m);
        assert_non_null(strstr(text, "\nc_total 1234567\n"));
        assert_non_null(strstr(text, "\ng +Inf\n"));
        free(text);
        koc_metric_set(g, -INFINITY);
        text = render(m);
        assert_non_null(strstr(text, "\ng -Inf\n"));
        free(text);
        koc_metric_set(g, NAN);
        koc_metric_add(c, 0.1);
        text = render(m);
        assert_non_null(strstr(text, "\ng NaN\n"));
        assert_non_null(strstr(text, "\nc_total 1234567.1\n"));
        free(text);
        /* Argument checks. */
        char *out = NULL;
        assert_int_equal(koc_metrics_render(NULL, &out, NULL), -EINVAL);
        assert_int_equal(koc_metrics_render(m, NULL, NULL), -EINVAL);
        assert_int_equal(koc_metrics_add_counter(m, "x", "", NULL, NULL), -EINVAL);
        assert_int_equal(koc_metrics_add_counter(m, NULL, "", NULL, &c), -EINVAL);
        assert_int_equal(koc_metrics_add_collector(m, NULL, NULL, NULL), -EINVAL);
        assert_int_equal(koc_metrics_new(NULL), -EINVAL);
        /* ref/unref */
        assert_ptr_equal(koc_metrics_ref(m), m);
        assert_null(koc_metrics_unref(m));
        assert_int_equal(koc_metrics_render(m, &out, NULL), 0);
        free(out);
        koc_metrics_unref(m);
}

static int calls;
static void counting_collector(FILE *out, void *ud) {
        calls++;
        fprintf(out, "# TYPE %s gauge\n%s %d\n", (const char *)ud, (const char *)ud, calls);
}

static void test_collectors_idempotent_and_process_values(void **state) {
        koc_metrics *m = NULL;
        assert_int_equal(koc_metrics_new(&m), 0);
        assert_int_equal(koc_metrics_add_collector(m, counting_collector, "first", NULL), 0);
        assert_int_equal(koc_metrics_add_collector(m, counting_collector, "first", NULL), 0);
        assert_int_equal(koc_metrics_add_collector(m, counting_collector, "second", NULL), 0);
        assert_int_equal(koc_metrics_add_process_collector(m), 0);
        assert_int_equal(koc_metrics_add_process_collector(m), 0);
        calls = 0;
        char *text = render(m);
        assert_int_equal(calls, 2);
        /* In the order they were added, after the registry's families. */
        char *first = strstr(text, "first 1\n"), *second = strstr(text, "second 2\n");
        assert_non_null(first);
        assert_non_null(second);
        assert_true(first < second);
        /* Each process metric once, with plausible values. */
        static const char *const names[] = {
                "process_cpu_seconds_total",
                "process_resident_memory_bytes",
                "process_virtual_memory_bytes",
                "process_open_fds",
                "process_max_fds",
                "process_start_time_seconds",
        };
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                char key[128];
                snprintf(key, sizeof key, "\n%s ", names[i]);
                char *p = strstr(text, key);
                if (!p)
                        fail_msg("%s missing in:\n%s", names[i], text);
                assert_null(strstr(p + 1, key));
                snprintf(key, sizeof key, "# TYPE %s ", names[i]);
                assert_non_null(strstr(text, key));
                double v = strtod(p + strlen(names[i]) + 2, NULL);
                assert_true(v >= 0);
        }
        struct rlimit rl;
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
        double max_fds = strtod(strstr(text, "\nprocess_max_fds ") + 17, NULL);
        if (rl.rlim_cur != RLIM_INFINITY)
                assert_true(max_fds == (double)rl.rlim_cur);
        /* Open fds: at least stdin/stdout/stderr, and one more when we open
         * one. */
        double fds1 = strtod(strstr(text, "\nprocess_open_fds ") + 18, NULL);
        assert_true(fds1 >= 3);
        free(text);
        FILE *extra = fopen("/dev/null", "r");
        assert_non_null(extra);
        text = render(m);
        double fds2 = strtod(strstr(text, "\nprocess_open_fds ") + 18, NULL);
        assert_true(fds2 == fds1 + 1);
        fclose(extra);
        double start = strtod(strstr(text, "\nprocess_start_time_seconds ") + 28, NULL);
        double now = (double)time(NULL);
        assert_true(start <= now + 1 && start > now - 86400 * 365);
        double vm = strtod(strstr(text, "\nprocess_virtual_memory_bytes ") + 30, NULL);
        double rss = strtod(strstr(text, "\nprocess_resident_memory_bytes ") + 31, NULL);
        assert_true(vm >= rss && rss > 0);
        free(text);
        koc_metrics_unref(m);
}

struct hammer2 {
        koc_metric *counter, *gauge, *hist;
        int id;
};

static void *hammer_mixed(void *ud) {
        struct hammer2 *h = ud;
        for (int i = 0; i < PER_THREAD / 4; i++) {
                koc_metric_add(h->counter, 0.5);
                koc_metric_add(h->gauge, h->id % 2 ? 1 : -1);
                koc_metric_observe(h->hist, (double)(i % 4)); /* 0,1,2,3 */
        }
        return NULL;
}

static void *register_while_rendering(void *ud) {
        koc_metrics *m = ud;
        for (int i = 0; i < 200; i++) {
                char labels[32];
                koc_metric *x = NULL;
                snprintf(labels, sizeof labels, "i=\"%d\"", i);
                assert_int_equal(koc_metrics_add_counter(m, "dyn_total", "", labels, &x), 0);
                koc_metric_inc(x);
        }
        return NULL;
}

static void test_concurrent_mixed(void **state) {
        koc_metrics *m = NULL;
        koc_metric *c = NULL, *g = NULL, *h = NULL;
        static const double bounds[] = {0.5, 1.5, 2.5};
        assert_int_equal(koc_metrics_new(&m), 0);
        assert_int_equal(koc_metrics_add_counter(m, "c_total", "", NULL, &c), 0);
        assert_int_equal(koc_metrics_add_gauge(m, "g", "", NULL, &g), 0);
        assert_int_equal(koc_metrics_add_histogram(m, "h", "", NULL, bounds, 3, &h), 0);
        pthread_t t[THREADS], reg;
        struct hammer2 args[THREADS];
        for (int i = 0; i < THREADS; i++) {
                args[i] = (struct hammer2){c, g, h, i};
                assert_int_equal(pthread_create(&t[i], NULL, hammer_mixed, &args[i]), 0);
        }
        assert_int_equal(pthread_create(&reg, NULL, register_while_rendering, m), 0);
        /* Render while others update and register: every render is whole. */
        for (int i = 0; i < 50; i++) {
                char *text = render(m);
                assert_non_null(strstr(text, "# TYPE h histogram\n"));
                free(text);
        }
        for (int i = 0; i < THREADS; i++)
                pthread_join(t[i], NULL);
        pthread_join(reg, NULL);
        const int per = PER_THREAD / 4;
        assert_true(koc_metric_get(c) == 0.5 * THREADS * per);
        assert_true(koc_metric_get(g) == 0); /* THREADS is even */
        assert_int_equal(koc_metric_get_count(h), THREADS * per);
        assert_true(koc_metric_get(h) == 1.5 * THREADS * per);
        char *text = render(m);
        char want[256];
        snprintf(want, sizeof want,
                 "h_bucket{le=\"0.5\"} %d\nh_bucket{le=\"1.5\"} %d\nh_bucket{le=\"2.5\"} %d\n"
                 "h_bucket{le=\"+Inf\"} %d\n",
                 THREADS * per / 4, THREADS * per / 2, THREADS * per * 3 / 4, THREADS * per);
        assert_non_null(strstr(text, want));
        assert_non_null(strstr(text, "dyn_total{i=\"199\"} 1\n"));
        free(text);
        koc_metrics_unref(m);
}

static int fn_destroyed;

static double fn_value(void *userdata) {
        return *(double *)userdata;
}

static void fn_destroy(void *userdata) {
        fn_destroyed++;
        *(double *)userdata = -1;
}

static void test_gauge_function(void **state) {
        koc_metrics *m = NULL;
        double v1 = 0, v2 = 7;
        koc_metric *g = NULL;
        char *out = NULL;
        fn_destroyed = 0;
        assert_int_equal(koc_metrics_new(&m), 0);
        assert_int_equal(koc_metrics_add_gauge_function(m, "up_now", "Computed when read.", "a=\"b\"",
                                                        fn_value, &v1, fn_destroy, &g),
                         0);
        /* The value is read at render time, not stored. */
        v1 = 1;
        assert_true(koc_metric_get(g) == 1);
        assert_int_equal(koc_metrics_render(m, &out, NULL), 0);
        assert_non_null(strstr(out, "# TYPE up_now gauge\nup_now{a=\"b\"} 1\n"));
        free(out);
        v1 = 0;
        assert_int_equal(koc_metrics_render(m, &out, NULL), 0);
        assert_non_null(strstr(out, "up_now{a=\"b\"} 0\n"));
        free(out);
        /* Re-registering replaces the function and destroys the old userdata. */
        assert_int_equal(koc_metrics_add_gauge_function(m, "up_now", "Computed when read.", "a=\"b\"",
                                                        fn_value, &v2, fn_destroy, NULL),
                         0);
        assert_int_equal(fn_destroyed, 1);
        assert_true(v1 == -1);
        assert_true(koc_metric_get(g) == 7);
        /* A counter of that name cannot take a function; NULL fn is refused. */
        assert_int_equal(koc_metrics_add_gauge_function(m, "up_now", NULL, NULL, NULL, NULL, NULL, NULL),
                         -EINVAL);
        koc_metric *c = NULL;
        assert_int_equal(koc_metrics_add_counter(m, "c_total", NULL, NULL, &c), 0);
        assert_int_equal(koc_metrics_add_gauge_function(m, "c_total", NULL, NULL, fn_value, &v2,
                                                        NULL, NULL),
                         -EINVAL);
        koc_metrics_unref(m);
        assert_int_equal(fn_destroyed, 2);
        assert_true(v2 == -1);
}

static void count_destroy(void *userdata) {
        (*(int *)userdata)++;
}

static void empty_collector(FILE *out, void *userdata) {
}

/* A collector's destroy runs once, when the registry is freed; adding the
 * same collector again does not register a second destroy. */
static void test_collector_destroy(void **state) {
        koc_metrics *m = NULL;
        int n = 0, dup = 0;

        assert_int_equal(koc_metrics_new(&m), 0);
        assert_int_equal(koc_metrics_add_collector(m, empty_collector, &n, count_destroy), 0);
        assert_int_equal(koc_metrics_add_collector(m, empty_collector, &n, NULL), 0);
        assert_int_equal(koc_metrics_add_collector(m, NULL, &dup, count_destroy), -EINVAL);
        assert_int_equal(n, 0);
        koc_metrics_unref(m);
        assert_int_equal(n, 1);
        assert_int_equal(dup, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_collector_destroy),
                cmocka_unit_test(test_exposition),
                cmocka_unit_test(test_rules),
                cmocka_unit_test(test_collectors),
                cmocka_unit_test(test_concurrent_updates),
                cmocka_unit_test(test_label_escaping_and_canonical_form),
                cmocka_unit_test(test_histogram_buckets),
                cmocka_unit_test(test_values_and_types),
                cmocka_unit_test(test_collectors_idempotent_and_process_values),
                cmocka_unit_test(test_concurrent_mixed),
                cmocka_unit_test(test_gauge_function),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

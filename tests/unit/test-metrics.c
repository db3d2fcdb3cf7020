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
        static const double bounds[] = { 0.5, 1, 2.5 };
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
        static const char *const bad_names[] = { "", "1abc", "a-b", "a b", "é" };
        for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
                assert_int_equal(koc_metrics_add_counter(m, bad_names[i], "", NULL, &x), -EINVAL);
        static const char *const bad_labels[] = { "a", "a=b", "a=\"b", "a=\"b\"x",
                                                  "a=\"b\",", "=\"b\"", "a=\"b\nc\"",
                                                  "a=\"\\q\"" };
        for (size_t i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++)
                assert_int_equal(koc_metrics_add_counter(m, "l_total", "", bad_labels[i], &x),
                                 -EINVAL);
        assert_int_equal(koc_metrics_add_counter(m, "l_total", "", "a=\"x\\\"y\",b=\"\"", &x),
                         0);
        static const double unsorted[] = { 1, 0.5 };
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
        assert_int_equal(koc_metrics_add_collector(m, collector, &v), 0);
        assert_int_equal(koc_metrics_add_process_collector(m), 0);
        char *text = render(m);
        assert_non_null(strstr(text, "custom_value 42\n"));
        static const char *const names[] = { "process_cpu_seconds_total ",
                                             "process_resident_memory_bytes ",
                                             "process_open_fds ", "process_max_fds ",
                                             "process_start_time_seconds ",
                                             "# TYPE process_cpu_seconds_total counter\n" };
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
        static const double bounds[] = { 1 };
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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_exposition),
                cmocka_unit_test(test_rules),
                cmocka_unit_test(test_collectors),
                cmocka_unit_test(test_concurrent_updates),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Figures for the metrics registry (not a test): the cost of an update alone
 * and with threads contending on one metric, and of rendering a registry of
 * a thousand series.  Bounded loops; prints one line per figure. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koc/metrics.h"
#include "koc/time.h"

#define OPS 2000000

typedef struct job {
        koc_metric *m;
        int histogram;
        long ops;
} job;

static void *run(void *userdata) {
        job *j = userdata;
        for (long i = 0; i < j->ops; i++) {
                if (j->histogram)
                        koc_metric_observe(j->m, (double)(i % 1000) / 100.0);
                else
                        koc_metric_inc(j->m);
        }
        return NULL;
}

static double bench_updates(koc_metric *m, int histogram, int threads) {
        pthread_t t[16];
        job j = {.m = m, .histogram = histogram, .ops = OPS / threads};
        uint64_t start = koc_now_boottime_usec();
        for (int i = 0; i < threads; i++)
                if (pthread_create(&t[i], NULL, run, &j) != 0)
                        exit(1);
        for (int i = 0; i < threads; i++)
                pthread_join(t[i], NULL);
        uint64_t usec = koc_now_boottime_usec() - start;
        return (double)usec * 1000.0 / (double)OPS;
}

int main(void) {
        koc_metrics *reg = NULL;
        koc_metric *c = NULL, *h = NULL;
        static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
        if (koc_metrics_new(&reg) < 0 ||
            koc_metrics_add_counter(reg, "bench_total", "Bench.", NULL, &c) < 0 ||
            koc_metrics_add_histogram(reg, "bench_seconds", "Bench.", NULL, buckets,
                                      sizeof buckets / sizeof buckets[0], &h) < 0)
                return 1;
        for (int threads = 1; threads <= 4; threads *= 2) {
                printf("counter inc, %d thread(s): %.1f ns/op (wall, all threads)\n", threads,
                       bench_updates(c, 0, threads));
                printf("histogram observe (11 buckets), %d thread(s): %.1f ns/op\n", threads,
                       bench_updates(h, 1, threads));
        }
        /* 1000 series in 10 families. */
        for (int f = 0; f < 10; f++)
                for (int s = 0; s < 100; s++) {
                        char name[32], labels[64];
                        koc_metric *x = NULL;
                        snprintf(name, sizeof name, "family_%d_total", f);
                        snprintf(labels, sizeof labels, "series=\"%d\",code=\"200\"", s);
                        if (koc_metrics_add_counter(reg, name, "A family.", labels, &x) < 0)
                                return 1;
                        koc_metric_add(x, s * 1.5);
                }
        koc_metrics_add_process_collector(reg);
        const int renders = 200;
        size_t len = 0;
        uint64_t start = koc_now_boottime_usec();
        for (int i = 0; i < renders; i++) {
                char *text = NULL;
                if (koc_metrics_render(reg, &text, &len) < 0)
                        return 1;
                free(text);
        }
        uint64_t usec = koc_now_boottime_usec() - start;
        printf("render, 1002 series + process collector (%zu bytes): %.1f us/render\n", len,
               (double)usec / renders);
        koc_metrics_unref(reg);
        return 0;
}

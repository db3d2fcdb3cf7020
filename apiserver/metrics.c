/* SPDX-License-Identifier: Apache-2.0 */
/* /metrics: request counts and durations in the Prometheus text format.
 * Verbs are named as the real server names them: GET, LIST, WATCH, POST,
 * PUT, PATCH, DELETE, DELETECOLLECTION. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"

static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define N_BUCKETS KOC_ELEMENTSOF(buckets)

typedef struct series {
        char *verb, *resource;
        int code; /* 0 for duration series */
        uint64_t count;
        double sum;
        uint64_t bucket[N_BUCKETS];
} series;

static series *get_series(server *srv, const char *verb, const char *resource, int code) {
        char key[300];
        snprintf(key, sizeof key, "%s|%s|%d", verb, resource, code);
        series *s = strmap_get(&srv->metrics, key);
        if (s)
                return s;
        s = calloc(1, sizeof *s);
        if (!s)
                return NULL;
        s->verb = strdup(verb);
        s->resource = strdup(resource);
        s->code = code;
        if (!s->verb || !s->resource || strmap_put(&srv->metrics, key, s) < 0) {
                free(s->verb);
                free(s->resource);
                free(s);
                return NULL;
        }
        return s;
}

void metrics_observe(server *srv, const char *verb, const char *resource, int code,
                     double seconds) {
        series *c = get_series(srv, verb, resource ? resource : "", code);
        series *d = get_series(srv, verb, resource ? resource : "", 0);
        if (c)
                c->count++;
        if (d) {
                d->count++;
                d->sum += seconds;
                for (size_t i = 0; i < N_BUCKETS; i++)
                        if (seconds <= buckets[i])
                                d->bucket[i]++;
        }
}

static int cmp_entry(const void *a, const void *b) {
        return strcmp((*(strmap_entry *const *)a)->key, (*(strmap_entry *const *)b)->key);
}

char *metrics_render(server *srv) {
        strbuf b = {0};
        strmap_entry **all = malloc((srv->metrics.n + 1) * sizeof *all);
        size_t n = 0, bucket = 0;

        if (!all)
                return NULL;
        for (strmap_entry *e = strmap_next(&srv->metrics, &bucket, NULL); e;
             e = strmap_next(&srv->metrics, &bucket, e))
                all[n++] = e;
        qsort(all, n, sizeof *all, cmp_entry);
        strbuf_appends(&b,
                       "# HELP apiserver_request_total Counter of apiserver requests broken out "
                       "for each verb, resource and HTTP response code.\n"
                       "# TYPE apiserver_request_total counter\n");
        for (size_t i = 0; i < n; i++) {
                series *s = all[i]->value;
                if (s->code)
                        strbuf_printf(&b,
                                      "apiserver_request_total{verb=\"%s\",resource=\"%s\",code=\"%"
                                      "d\"} %lu\n",
                                      s->verb, s->resource, s->code, (unsigned long)s->count);
        }
        strbuf_appends(&b,
                       "# HELP apiserver_request_duration_seconds Response latency distribution "
                       "in seconds for each verb and resource.\n"
                       "# TYPE apiserver_request_duration_seconds histogram\n");
        for (size_t i = 0; i < n; i++) {
                series *s = all[i]->value;
                if (s->code)
                        continue;
                for (size_t k = 0; k < N_BUCKETS; k++)
                        strbuf_printf(&b,
                                      "apiserver_request_duration_seconds_bucket{verb=\"%s\","
                                      "resource=\"%s\",le=\"%g\"} %lu\n",
                                      s->verb, s->resource, buckets[k],
                                      (unsigned long)s->bucket[k]);
                strbuf_printf(
                        &b,
                        "apiserver_request_duration_seconds_bucket{verb=\"%s\",resource=\"%s\",le="
                        "\"+Inf\"} %lu\n"
                        "apiserver_request_duration_seconds_sum{verb=\"%s\",resource=\"%s\"} %.6f\n"
                        "apiserver_request_duration_seconds_count{verb=\"%s\",resource=\"%s\"} "
                        "%lu\n",
                        s->verb, s->resource, (unsigned long)s->count, s->verb, s->resource, s->sum,
                        s->verb, s->resource, (unsigned long)s->count);
        }
        strbuf_printf(&b,
                      "# HELP apiserver_watches Number of open watch streams.\n"
                      "# TYPE apiserver_watches gauge\napiserver_watches %zu\n",
                      srv->n_watches);
        strbuf_printf(&b,
                      "# HELP apiserver_resource_version The current resourceVersion.\n"
                      "# TYPE apiserver_resource_version gauge\napiserver_resource_version %lu\n",
                      (unsigned long)srv->rv);
        free(all);
        return b.data ? b.data : strdup("");
}

static void series_free(void *p) {
        series *s = p;
        free(s->verb);
        free(s->resource);
        free(s);
}

void metrics_free(server *srv) {
        strmap_clear(&srv->metrics, series_free);
}

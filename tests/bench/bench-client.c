/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-client: figures for the API client against koc-apiserver over HTTPS.
 *
 *   bench-client [requests] [in-flight] [watches] [updates]
 *
 * Prints throughput and latency percentiles of asynchronous GETs with a
 * fixed number in flight, of the synchronous facade from worker threads, and
 * how fast watch events reach many watches.  Asserts nothing: it measures.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/apiserver.h"
#include "koc/client.h"
#include "koc/config.h"
#include "koc/log.h"
#include "koc/time.h"

#define LEASES "/apis/coordination.k8s.io/v1/namespaces/default/leases"
#define SAFETY_USEC (120 * KOC_USEC_PER_SEC)

typedef struct bench {
        sd_event *event;
        koc_client *client;
        unsigned total, in_flight, started, done, failed;
        uint64_t *latency; /* per request, usec */
        uint64_t *sent;
} bench;

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static void print_percentiles(const char *what, uint64_t *v, unsigned n) {
        if (n == 0)
                return;
        qsort(v, n, sizeof *v, cmp_u64);
        printf("%s latency: p50=%.2f ms p90=%.2f ms p99=%.2f ms max=%.2f ms\n", what,
               (double)v[n / 2] / 1000.0, (double)v[n * 9 / 10] / 1000.0,
               (double)v[n * 99 / 100] / 1000.0, (double)v[n - 1] / 1000.0);
}

static void start_one(bench *b);

static void on_get(koc_client *c, koc_response *r, void *userdata) {
        bench *b = userdata;
        unsigned i = b->done++;
        b->latency[i] = koc_now_boottime_usec() - b->sent[i];
        if (r->error < 0 || r->status != 200)
                b->failed++;
        if (b->started < b->total)
                start_one(b);
}

static void start_one(bench *b) {
        b->sent[b->started++] = koc_now_boottime_usec();
        if (koc_client_request(b->client,
                               &(koc_request_spec){.method = "GET", .path = LEASES "/bench"},
                               on_get, b, NULL) < 0) {
                b->failed++;
                b->done++;
        }
}

static int run_loop_until(sd_event *e, const unsigned *a, unsigned target) {
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (*a < target) {
                if (koc_now_boottime_usec() > end)
                        return -ETIMEDOUT;
                if (sd_event_run(e, 100 * KOC_USEC_PER_MSEC) < 0)
                        return -EIO;
        }
        return 0;
}

/* --- synchronous facade -------------------------------------------------- */

typedef struct sync_worker {
        koc_client *client;
        unsigned calls, ok;
        atomic_uint *finished;
} sync_worker;

static void *sync_main(void *p) {
        sync_worker *w = p;
        for (unsigned i = 0; i < w->calls; i++) {
                koc_response *r = NULL;
                if (koc_client_call(w->client,
                                    &(koc_request_spec){.method = "GET", .path = LEASES "/bench"},
                                    &r) == 0 &&
                    r->status == 200)
                        w->ok++;
                koc_response_free(r);
        }
        atomic_fetch_add(w->finished, 1);
        return NULL;
}

/* --- watches ------------------------------------------------------------- */

typedef struct watch_bench {
        unsigned events;
        uint64_t last_event;
} watch_bench;

static void on_event(koc_watch *w, koc_watch_event *e, void *userdata) {
        watch_bench *wb = userdata;
        if (e->type == KOC_WATCH_MODIFIED) {
                wb->events++;
                wb->last_event = koc_now_boottime_usec();
        }
}

typedef struct put_state {
        koc_client *client;
        unsigned left, done, failed;
        char rv[64];
} put_state;

static void put_next(put_state *p);

static void on_put(koc_client *c, koc_response *r, void *userdata) {
        put_state *p = userdata;
        const cJSON *meta = r->body ? cJSON_GetObjectItemCaseSensitive(r->body, "metadata") : NULL;
        const char *rv =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion"));
        if ((r->status == 200 || r->status == 201) && rv)
                snprintf(p->rv, sizeof p->rv, "%s", rv);
        else
                p->failed++;
        p->done++;
        if (p->left > 0)
                put_next(p);
}

static void put_next(put_state *p) {
        char body[512];
        p->left--;
        snprintf(body, sizeof body,
                 "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":"
                 "{\"name\":\"bench\",\"namespace\":\"default\",\"resourceVersion\":\"%s\"},"
                 "\"spec\":{\"holderIdentity\":\"h%u\"}}",
                 p->rv, p->left);
        cJSON *b = cJSON_Parse(body);
        if (koc_client_request(
                    p->client,
                    &(koc_request_spec){.method = "PUT", .path = LEASES "/bench", .body = b},
                    on_put, p, NULL) < 0) {
                p->failed++;
                p->done++;
        }
        cJSON_Delete(b);
}

int main(int argc, char **argv) {
        unsigned total = argc > 1 ? (unsigned)atoi(argv[1]) : 5000;
        unsigned in_flight = argc > 2 ? (unsigned)atoi(argv[2]) : 32;
        unsigned n_watches = argc > 3 ? (unsigned)atoi(argv[3]) : 50;
        unsigned updates = argc > 4 ? (unsigned)atoi(argv[4]) : 200;
        koc_test_apiserver srv;
        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        bench b = {.total = total, .in_flight = in_flight};
        int r;

        if (total == 0 || in_flight == 0 || in_flight > total) {
                fprintf(stderr, "usage: %s [requests] [in-flight<=requests] [watches] [updates]\n",
                        argv[0]);
                return 2;
        }
        koc_log_set_level(KOC_LOG_WARN);
        r = koc_test_apiserver_start(&srv, "--log-level warn");
        if (r < 0) {
                fprintf(stderr, "koc-apiserver: %s\n", strerror(-r));
                return 1;
        }
        if (koc_cluster_config_from_kubeconfig(srv.kubeconfig, NULL, &cfg, &err) < 0 ||
            sd_event_new(&b.event) < 0 || koc_client_new(b.event, cfg, &b.client) < 0) {
                fprintf(stderr, "setup failed: %s\n", err.message);
                koc_test_apiserver_stop(&srv);
                return 1;
        }
        b.latency = calloc(total, sizeof *b.latency);
        b.sent = calloc(total, sizeof *b.sent);
        if (!b.latency || !b.sent)
                return 1;

        /* The object every GET reads. */
        put_state p = {.client = b.client};
        cJSON *lease = cJSON_Parse("{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
                                   "\"metadata\":{\"name\":\"bench\",\"namespace\":\"default\"},"
                                   "\"spec\":{\"holderIdentity\":\"h\"}}");
        koc_client_request(b.client,
                           &(koc_request_spec){.method = "POST", .path = LEASES, .body = lease},
                           on_put, &p, NULL);
        cJSON_Delete(lease);
        if (run_loop_until(b.event, &p.done, 1) < 0 || !p.rv[0]) {
                fprintf(stderr, "could not create the lease\n");
                return 1;
        }
        p.done = p.failed = 0;

        /* 1. Asynchronous GETs, in_flight at a time. */
        uint64_t t0 = koc_now_boottime_usec();
        for (unsigned i = 0; i < in_flight; i++)
                start_one(&b);
        r = run_loop_until(b.event, &b.done, total);
        uint64_t t1 = koc_now_boottime_usec();
        printf("async GET: %u requests, %u in flight, %u failed%s: %.0f req/s\n", total, in_flight,
               b.failed, r < 0 ? " (incomplete)" : "", (double)b.done * 1e6 / (double)(t1 - t0));
        print_percentiles("async GET", b.latency, b.done);

        /* 2. The synchronous facade from 4 workers. */
        enum { N_WORKERS = 4 };
        pthread_t threads[N_WORKERS];
        sync_worker workers[N_WORKERS];
        atomic_uint finished = 0;
        unsigned per = total / 4 / N_WORKERS + 1;
        t0 = koc_now_boottime_usec();
        for (unsigned i = 0; i < N_WORKERS; i++) {
                workers[i] = (sync_worker){.client = b.client, .calls = per, .finished = &finished};
                pthread_create(&threads[i], NULL, sync_main, &workers[i]);
        }
        uint64_t end = t0 + SAFETY_USEC;
        while (atomic_load(&finished) < N_WORKERS && koc_now_boottime_usec() < end)
                sd_event_run(b.event, 100 * KOC_USEC_PER_MSEC);
        t1 = koc_now_boottime_usec();
        unsigned ok = 0;
        for (unsigned i = 0; i < N_WORKERS; i++) {
                pthread_join(threads[i], NULL);
                ok += workers[i].ok;
        }
        printf("sync GET: %d workers x %u calls, %u ok: %.0f req/s\n", N_WORKERS, per, ok,
               (double)(per * N_WORKERS) * 1e6 / (double)(t1 - t0));

        /* 3. Watch fan-out: n_watches watches see every update. */
        watch_bench *wb = calloc(n_watches ? n_watches : 1, sizeof *wb);
        koc_watch **ws = calloc(n_watches ? n_watches : 1, sizeof *ws);
        char rv[64];
        snprintf(rv, sizeof rv, "%s", p.rv);
        for (unsigned i = 0; i < n_watches; i++)
                koc_client_watch(b.client,
                                 &(koc_watch_spec){.path = LEASES,
                                                   .field_selector = "metadata.name=bench",
                                                   .resource_version = rv},
                                 on_event, &wb[i], NULL, &ws[i]);
        p.left = updates;
        t0 = koc_now_boottime_usec();
        if (updates > 0)
                put_next(&p);
        r = run_loop_until(b.event, &p.done, updates);
        /* Every watch has every event once the last one reached them all. */
        end = koc_now_boottime_usec() + SAFETY_USEC;
        for (;;) {
                unsigned all = 0;
                for (unsigned i = 0; i < n_watches; i++)
                        all += wb[i].events >= updates - p.failed;
                if (all == n_watches || koc_now_boottime_usec() > end)
                        break;
                sd_event_run(b.event, 100 * KOC_USEC_PER_MSEC);
        }
        uint64_t last = t0;
        unsigned long events = 0;
        for (unsigned i = 0; i < n_watches; i++) {
                events += wb[i].events;
                if (wb[i].last_event > last)
                        last = wb[i].last_event;
                koc_watch_stop(ws[i]);
        }
        if (n_watches > 0 && updates > 0)
                printf("watch fan-out: %u watches x %u sequential updates (%u failed): %lu events "
                       "in %.1f ms, %.0f events/s\n",
                       n_watches, updates, p.failed, events, (double)(last - t0) / 1000.0,
                       (double)events * 1e6 / (double)(last - t0));

        free(wb);
        free(ws);
        free(b.latency);
        free(b.sent);
        koc_client_unref(b.client);
        koc_cluster_config_unref(cfg);
        sd_event_unref(b.event);
        koc_test_apiserver_stop(&srv);
        return 0;
}

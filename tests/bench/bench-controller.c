/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-controller: the koc side of `./scripts/bench.sh controller` (a
 * benchmark, not a test).  Three commands, run by tests/bench/bench-controller.sh
 * against koc-apiserver and kube-apiserver:
 *
 *   bench-controller create  --kubeconfig K --namespace NS --objects N [--size B]
 *       creates NS and N ConfigMaps labelled bench=1 (64 requests in flight);
 *   bench-controller touch   --kubeconfig K --namespace NS --objects N --count M
 *       patches M of them one after the other with annotation bench/sent=<unix us>;
 *   bench-controller floor   --kubeconfig K --namespace NS --mode pages|stream|watch [--count M]
 *       the floors: pages: one paginated list (500 a page) of the ConfigMaps
 *       labelled bench=1, stream: one streaming list of them (up to the
 *       k8s.io/initial-events-end bookmark), both printing
 *         unix_us=... event=floor mode=M n=N ms=T
 *       watch: a bare watch that prints event=latency us=U for each of M
 *       bench/sent stamps it receives (what `touch` sends), then exits;
 *   bench-controller replica --kubeconfig K --namespace NS --expect N [--mode noop|write]
 *                            [--identity I] [--lease L] [--workers W]
 *       a manager with one controller on those ConfigMaps (leader election on
 *       Lease L, 2 s / 1.5 s / 250 ms; --mode write adds annotation
 *       bench/done-L to each object once), printing one line per event, as
 *       tests/peers/controller-runtime-bench does:
 *         unix_us=... event=started | leading | synced | first-reconcile
 *         unix_us=... event=reconciled-all n=N
 *         unix_us=... event=latency us=U key=K
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <koc/koc.h>

static const koc_resource configmaps = {
        .version = "v1", .resource = "configmaps", .kind = "ConfigMap", .namespaced = true};

struct opts {
        const char *kubeconfig, *ns, *mode, *identity, *lease;
        long objects, count, size, expect, workers;
};

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...) {
        char line[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        printf("unix_us=%" PRIu64 " %s\n", koc_now_realtime_usec(), line);
        fflush(stdout);
}

static int usage(void) {
        fprintf(stderr, "usage: bench-controller create|touch|replica|floor --kubeconfig K --namespace NS "
                        "[--objects N] [--count M] [--size B] [--expect N] [--mode noop|write|pages|stream|watch] "
                        "[--identity I] [--lease L] [--workers W]\n");
        return 2;
}

/* --- create and touch: the async client, a bounded number in flight -------------- */

struct loader {
        sd_event *event;
        koc_client *client;
        const struct opts *o;
        long next, done, failed, in_flight;
        char *payload;
};

static void on_created(koc_client *c, koc_response *r, void *userdata);

static void submit_create(struct loader *L) {
        char path[256], name[64];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps", L->o->ns);
        snprintf(name, sizeof name, "bench-%06ld", L->next++);
        cJSON *cm = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(cm, "metadata");
        cJSON_AddStringToObject(md, "name", name);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "labels"), "bench", "1");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(cm, "data"), "payload", L->payload);
        if (koc_client_request(L->client,
                               &(koc_request_spec){.method = "POST", .path = path, .body = cm},
                               on_created, L, NULL) == 0)
                L->in_flight++;
        else
                L->failed++;
        cJSON_Delete(cm);
}

static void on_created(koc_client *c, koc_response *r, void *userdata) {
        struct loader *L = userdata;
        L->in_flight--;
        if (r->error == 0 && (r->status == 201 || r->status == 409))
                L->done++;
        else {
                if (L->failed++ < 3)
                        fprintf(stderr, "bench-controller: create: %ld %s\n", r->status, r->message);
        }
        while (L->next < L->o->objects && L->in_flight < 64)
                submit_create(L);
        if (L->in_flight == 0)
                sd_event_exit(L->event, 0);
}

static int open_client(const struct opts *o, sd_event **ret_event, koc_client **ret_client) {
        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        int r = sd_event_default(ret_event);
        if (r < 0)
                return r;
        r = koc_cluster_config_from_kubeconfig(o->kubeconfig, NULL, &cfg, &err);
        if (r < 0) {
                fprintf(stderr, "bench-controller: %s\n", err.message);
                return r;
        }
        r = koc_client_new(*ret_event, cfg, ret_client);
        koc_cluster_config_unref(cfg);
        return r;
}

static void on_answered(koc_client *c, koc_response *r, void *userdata) {
        *(bool *)userdata = true;
}

static int cmd_create(const struct opts *o) {
        struct loader L = {.o = o};
        char body[256];
        int r = open_client(o, &L.event, &L.client);
        if (r < 0)
                return 1;
        L.payload = malloc((size_t)o->size + 1);
        memset(L.payload, 'x', (size_t)o->size);
        L.payload[o->size] = 0;
        snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"%s\"}}", o->ns);
        /* The namespace first (201, or 409 when it exists). */
        cJSON *nsobj = cJSON_Parse(body);
        bool ns_done = false;
        koc_client_request(L.client,
                           &(koc_request_spec){.method = "POST",
                                               .path = "/api/v1/namespaces",
                                               .body = nsobj},
                           on_answered, &ns_done, NULL);
        cJSON_Delete(nsobj);
        while (!ns_done)
                sd_event_run(L.event, UINT64_MAX);
        uint64_t t0 = koc_now_boottime_usec();
        while (L.next < o->objects && L.in_flight < 64)
                submit_create(&L);
        if (L.in_flight > 0)
                sd_event_loop(L.event);
        double s = (double)(koc_now_boottime_usec() - t0) / 1e6;
        printf("created %ld objects (%ld failed) in %.2f s: %.0f/s\n", L.done, L.failed, s,
               (double)L.done / s);
        free(L.payload);
        koc_client_unref(L.client);
        sd_event_unref(L.event);
        return L.failed ? 1 : 0;
}

struct toucher {
        sd_event *event;
        bool answered;
        long status;
};

static void on_touched(koc_client *c, koc_response *r, void *userdata) {
        struct toucher *t = userdata;
        t->answered = true;
        t->status = r->error < 0 ? r->error : r->status;
}

static int cmd_touch(const struct opts *o) {
        struct toucher t = {0};
        koc_client *client = NULL;
        long failed = 0;
        if (open_client(o, &t.event, &client) < 0)
                return 1;
        for (long i = 0; i < o->count; i++) {
                char path[256], patch[128];
                snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps/bench-%06ld", o->ns,
                         (i * 7919) % o->objects);
                snprintf(patch, sizeof patch,
                         "{\"metadata\":{\"annotations\":{\"bench/sent\":\"%" PRIu64 "\"}}}",
                         koc_now_realtime_usec());
                cJSON *body = cJSON_Parse(patch);
                t.answered = false;
                koc_client_request(client,
                                   &(koc_request_spec){.method = "PATCH",
                                                       .path = path,
                                                       .body = body,
                                                       .content_type =
                                                               "application/merge-patch+json"},
                                   on_touched, &t, NULL);
                cJSON_Delete(body);
                while (!t.answered)
                        sd_event_run(t.event, UINT64_MAX);
                if (t.status != 200)
                        failed++;
                usleep(20000); /* one change at a time: latency, not throughput */
        }
        printf("touched %ld objects (%ld failed)\n", o->count - failed, failed);
        koc_client_unref(client);
        sd_event_unref(t.event);
        return failed ? 1 : 0;
}

/* --- floor: one list, one streaming list, a bare watch ------------------------------- */

struct floor {
        sd_event *event;
        koc_client *client;
        koc_query *q;
        char path[256];
        long n, want;
        int failed;
        bool pending_end;
        char **seen; /* watch: the stamps seen (one per change) */
};

static void on_floor_page(koc_client *c, koc_response *r, void *userdata);

static void floor_page(struct floor *F, const char *cont) {
        koc_query_set_continue(F->q, cont);
        if (koc_client_request(F->client,
                               &(koc_request_spec){.method = "GET",
                                                   .path = F->path,
                                                   .query = koc_query_string(F->q)},
                               on_floor_page, F, NULL) < 0) {
                F->failed = 1;
                sd_event_exit(F->event, 0);
        }
}

static void on_floor_page(koc_client *c, koc_response *r, void *userdata) {
        struct floor *F = userdata;
        if (r->error < 0 || r->status != 200) {
                fprintf(stderr, "bench-controller: floor: list: %ld %s\n", r->status, r->message);
                F->failed = 1;
                sd_event_exit(F->event, 0);
                return;
        }
        F->n += cJSON_GetArraySize(cJSON_GetObjectItem(r->body, "items"));
        const char *cont = cJSON_GetStringValue(
                cJSON_GetObjectItem(cJSON_GetObjectItem(r->body, "metadata"), "continue"));
        if (cont && *cont)
                floor_page(F, cont);
        else
                sd_event_exit(F->event, 0);
}

static void on_floor_watch(koc_watch *w, koc_watch_event *ev, void *userdata) {
        struct floor *F = userdata;
        if (ev->type == KOC_WATCH_CLOSED || ev->type == KOC_WATCH_ERROR) {
                fprintf(stderr, "bench-controller: floor: watch ended: %ld\n", ev->status);
                F->failed = 1;
                sd_event_exit(F->event, 0);
                return;
        }
        const cJSON *md = cJSON_GetObjectItem(ev->object, "metadata");
        const cJSON *ann = cJSON_GetObjectItem(md, "annotations");
        if (ev->type == KOC_WATCH_BOOKMARK) {
                if (F->pending_end &&
                    cJSON_GetStringValue(cJSON_GetObjectItem(ann, "k8s.io/initial-events-end"))) {
                        F->pending_end = false;
                        if (F->want == 0)
                                sd_event_exit(F->event, 0);
                }
                return;
        }
        if (F->pending_end) {
                F->n++;
                return;
        }
        const char *sent = cJSON_GetStringValue(cJSON_GetObjectItem(ann, "bench/sent"));
        if (!sent)
                return;
        emit("event=latency us=%" PRIu64, koc_now_realtime_usec() - (uint64_t)strtoull(sent, NULL, 10));
        if (++F->n >= F->want)
                sd_event_exit(F->event, 0);
}

struct rv_answer {
        char *rv;
        size_t size;
        bool done;
};

static void on_rv(koc_client *c, koc_response *r, void *userdata) {
        struct rv_answer *a = userdata;
        const char *v = r->status == 200 ? cJSON_GetStringValue(cJSON_GetObjectItem(
                                                   cJSON_GetObjectItem(r->body, "metadata"),
                                                   "resourceVersion"))
                                         : NULL;
        snprintf(a->rv, a->size, "%s", v ? v : "");
        a->done = true;
}

static int cmd_floor(const struct opts *o) {
        struct floor F = {0};
        koc_watch *w = NULL;
        if (open_client(o, &F.event, &F.client) < 0 || koc_query_new(&F.q) < 0)
                return 1;
        snprintf(F.path, sizeof F.path, "/api/v1/namespaces/%s/configmaps", o->ns);
        koc_query_set_label_selector(F.q, "bench=1");
        koc_query_set_limit(F.q, 500);
        uint64_t t0 = koc_now_boottime_usec();
        if (strcmp(o->mode, "pages") == 0)
                floor_page(&F, NULL);
        else {
                bool stream = strcmp(o->mode, "stream") == 0;
                F.pending_end = stream;
                F.want = stream ? 0 : o->count;
                /* The bare watch starts at the collection's current
                 * resourceVersion: without one the server would first send
                 * every object, with the stamps of earlier runs. */
                char rv[64] = "";
                if (!stream) {
                        struct rv_answer a = {.rv = rv, .size = sizeof rv};
                        if (koc_client_request(F.client,
                                               &(koc_request_spec){.method = "GET",
                                                                   .path = F.path,
                                                                   .query = "limit=1"},
                                               on_rv, &a, NULL) < 0)
                                return 1;
                        while (!a.done)
                                sd_event_run(F.event, UINT64_MAX);
                        if (!*rv)
                                return 1;
                }
                if (koc_client_watch(F.client,
                                     &(koc_watch_spec){.path = F.path,
                                                       .label_selector = "bench=1",
                                                       .resource_version = *rv ? rv : NULL,
                                                       .allow_bookmarks = true,
                                                       .send_initial_events = stream},
                                     on_floor_watch, &F, NULL, &w) < 0)
                        return 1;
                if (!stream)
                        emit("event=watching");
        }
        sd_event_loop(F.event);
        if (strcmp(o->mode, "watch") != 0)
                emit("event=floor mode=%s n=%ld ms=%.1f", o->mode, F.n,
                     (double)(koc_now_boottime_usec() - t0) / 1000.0);
        koc_watch_stop(w);
        koc_query_free(F.q);
        koc_client_unref(F.client);
        sd_event_unref(F.event);
        return F.failed;
}

/* --- replica: the manager and one controller ------------------------------------------ */

struct bench {
        koc_controller *controller;
        bool write;
        char done_annotation[128]; /* "bench/done-LEASE": each run writes its own */
        long expect;
        atomic_long count;
        atomic_bool first;
        /* Which objects (by number) were reconciled, guarded by lock. */
        pthread_mutex_t lock;
        bool *done;
};

static bool mark_done(struct bench *b, const char *key) {
        /* Keys are "NS/bench-NNNNNN": the number indexes a bitmap. */
        const char *dash = strrchr(key, '-');
        long i = dash ? strtol(dash + 1, NULL, 10) : -1;
        bool fresh = false;
        if (i < 0 || i >= b->expect)
                return false;
        pthread_mutex_lock(&b->lock);
        fresh = !b->done[i];
        b->done[i] = true;
        pthread_mutex_unlock(&b->lock);
        return fresh;
}

/* Where the heap stands (glibc): bytes in use, free inside the heap
 * (fragmentation or not yet returned), and in mmap'd chunks. */
static void emit_heap(const char *when) {
#ifdef __GLIBC__
        struct mallinfo2 mi = mallinfo2();
        emit("event=heap when=%s in_use=%zu free=%zu arena=%zu mmap=%zu", when, mi.uordblks,
             mi.fordblks, mi.arena, mi.hblkhd);
        /* KOC_BENCH_MALLOC_INFO=PREFIX: glibc's free-chunk histograms too. */
        const char *prefix = getenv("KOC_BENCH_MALLOC_INFO");
        if (prefix) {
                char path[512];
                snprintf(path, sizeof path, "%s-%d-%s.xml", prefix, (int)getpid(), when);
                FILE *f = fopen(path, "w");
                if (f) {
                        (void)malloc_info(0, f);
                        fclose(f);
                }
        }
#else
        (void)when;
#endif
}

static koc_result reconcile(koc_reconcile_context *ctx, void *userdata) {
        struct bench *b = userdata;
        bool no = false;
        if (atomic_compare_exchange_strong(&b->first, &no, true))
                emit("event=first-reconcile");
        const cJSON *cm = koc_reconcile_get_object(ctx);
        if (!cm)
                return koc_result_done();
        const cJSON *ann = cJSON_GetObjectItem(cJSON_GetObjectItem(cm, "metadata"), "annotations");
        const char *sent = cJSON_GetStringValue(cJSON_GetObjectItem(ann, "bench/sent"));
        if (sent) {
                /* Each touch carries a new stamp; the cache is read-your-own-
                 * writes, so a stamp is seen once per change. */
                uint64_t us = strtoull(sent, NULL, 10);
                emit("event=latency us=%" PRIu64 " key=%s", koc_now_realtime_usec() - us,
                     koc_reconcile_get_key(ctx));
        }
        if (b->write && !cJSON_GetObjectItem(ann, b->done_annotation)) {
                char body[256];
                snprintf(body, sizeof body, "{\"metadata\":{\"annotations\":{\"%s\":\"1\"}}}",
                         b->done_annotation);
                cJSON *patch = cJSON_Parse(body);
                koc_response *resp = NULL;
                int r = koc_reconcile_patch(ctx, &configmaps, koc_reconcile_get_namespace(ctx),
                                            koc_reconcile_get_name(ctx), KOC_PATCH_MERGE, patch,
                                            &resp);
                cJSON_Delete(patch);
                bool ok = r == 0 && resp->error == 0 && resp->status == 200;
                koc_response_free(resp);
                if (!ok)
                        return koc_result_error(r < 0 ? r : -EIO);
        }
        if (mark_done(b, koc_reconcile_get_key(ctx)) && atomic_fetch_add(&b->count, 1) + 1 == b->expect) {
                emit("event=reconciled-all n=%ld", b->expect);
                emit_heap("reconciled-all");
        }
        return koc_result_done();
}

static void on_synced(koc_controller *c, void *userdata) {
        emit("event=synced");
        emit_heap("synced");
}

static void on_started(koc_manager *m, uint64_t term, void *userdata) {
        emit("event=leading term=%" PRIu64, term);
}

static int cmd_replica(const struct opts *o) {
        struct bench b = {.write = strcmp(o->mode, "write") == 0, .expect = o->expect};
        koc_manager_config cfg;
        koc_controller_options co;
        koc_manager *m = NULL;
        koc_error err = {0};
        int r;

        pthread_mutex_init(&b.lock, NULL);
        snprintf(b.done_annotation, sizeof b.done_annotation, "bench/done-%s", o->lease);
        b.done = calloc((size_t)(o->expect > 0 ? o->expect : 1), sizeof *b.done);
        emit("event=started identity=%s", o->identity);
        koc_manager_config_init(&cfg);
        cfg.kubeconfig = o->kubeconfig;
        cfg.identity = o->identity;
        cfg.leader_election_id = o->lease;
        cfg.leader_election_namespace = o->ns;
        cfg.lease_duration_usec = 2 * KOC_USEC_PER_SEC;
        cfg.renew_deadline_usec = 1500 * KOC_USEC_PER_MSEC;
        cfg.retry_period_usec = 250 * KOC_USEC_PER_MSEC;
        cfg.health_probe_bind_address = "0";
        cfg.metrics_bind_address = "0";
        cfg.shutdown_budget_usec = 5 * KOC_USEC_PER_SEC;
        if ((r = koc_manager_new(NULL, &cfg, &m, &err)) < 0) {
                fprintf(stderr, "bench-controller: %s\n", err.message);
                return 1;
        }
        koc_manager_set_callbacks(m, &(koc_manager_callbacks){.started_leading = on_started}, NULL,
                                  NULL);
        koc_controller_options_init(&co);
        co.name = "bench";
        co.resource = configmaps;
        co.namespace_ = o->ns;
        co.label_selector = "bench=1";
        co.workers = (unsigned)o->workers;
        co.reconcile = reconcile;
        co.userdata = &b;
        if ((r = koc_controller_new(m, &co, &b.controller, &err)) < 0) {
                fprintf(stderr, "bench-controller: %s\n", err.message);
                return 1;
        }
        (void)koc_controller_on_synced(b.controller, on_synced, NULL, NULL);
        r = koc_manager_run(m);
        koc_controller_unref(b.controller);
        koc_manager_unref(m);
        free(b.done);
        return r;
}

int main(int argc, char *argv[]) {
        struct opts o = {.ns = "bench", .mode = "noop", .identity = "koc", .lease = "bench-koc",
                         .objects = 1000, .count = 200, .size = 100, .workers = 1};
        if (argc < 2)
                return usage();
        for (int i = 2; i < argc; i++) {
                const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
                if (!v)
                        return usage();
#define S(flag, field)                                                                             \
        if (strcmp(a, flag) == 0) {                                                                \
                o.field = v;                                                                       \
                i++;                                                                               \
                continue;                                                                          \
        }
#define L(flag, field)                                                                             \
        if (strcmp(a, flag) == 0) {                                                                \
                o.field = strtol(v, NULL, 10);                                                     \
                i++;                                                                               \
                continue;                                                                          \
        }
                S("--kubeconfig", kubeconfig)
                S("--namespace", ns)
                S("--mode", mode)
                S("--identity", identity)
                S("--lease", lease)
                L("--objects", objects)
                L("--count", count)
                L("--size", size)
                L("--expect", expect)
                L("--workers", workers)
                return usage();
        }
        if (!o.kubeconfig)
                return usage();
        if (strcmp(argv[1], "create") == 0)
                return cmd_create(&o);
        if (strcmp(argv[1], "touch") == 0)
                return cmd_touch(&o);
        if (strcmp(argv[1], "replica") == 0)
                return cmd_replica(&o);
        if (strcmp(argv[1], "floor") == 0)
                return cmd_floor(&o);
        return usage();
}

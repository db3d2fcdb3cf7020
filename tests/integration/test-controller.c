/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller runtime against an API server over HTTPS (koc-apiserver by
 * default, the real kube-apiserver through the same harness).
 *
 * Each case runs a manager with one controller on the test's main thread and
 * a driver thread that changes objects with plain HTTP requests and waits
 * (with generous bounds) for what the reconciler observed; the driver ends
 * the case by asking the loop to shut down.  Every ordering asserted is forced
 * by the driver, never by sleeping.  Names are unique per case and every
 * namespace is created first, since a real server keeps state between cases.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "core/reflector.h"
#include "framework/controller/controller-internal.h"
#include "harness/apiserver.h"
#include "koc/controller.h"
#include "koc/log.h"
#include "koc/manager.h"
#include "koc/time.h"

static koc_test_apiserver api;
/* The server the helpers and the manager talk to (api but in one case). */
static koc_test_apiserver *srv = &api;

/* The bound of every wait: 30 s, 90 s under valgrind (KOC_UNDER_VALGRIND,
 * valgrind-test-controller), which slows the manager about twenty times.
 * Waits end as soon as their condition holds. */
static uint64_t wait_usec(void) {
        const char *v = getenv("KOC_UNDER_VALGRIND");
        return (v && *v ? 90 : 30) * KOC_USEC_PER_SEC;
}

static const koc_resource configmaps = {
        .version = "v1", .resource = "configmaps", .kind = "ConfigMap", .namespaced = true};

/* --- the environment of one case ----------------------------------------------- */

typedef struct env env;
typedef koc_result (*reconcile_fn)(env *e, koc_reconcile_context *ctx);
typedef const char *(*driver_fn)(env *e);

struct env {
        const char *ns;
        koc_manager *m;
        koc_controller *c;
        int wake_fd;
        sd_event_source *wake;
        reconcile_fn reconcile;
        driver_fn driver;
        const char *failure; /* the driver's verdict */
        int run_result;

        pthread_mutex_t lock;
        pthread_cond_t cond;
        char seen[65536]; /* one line per reconcile: "key value\n" */
        size_t seen_len;
        int count;
        /* Case-specific state. */
        int attempts;
        int conflicts;
        int cleanups;
        int applies;
        int fenced;
        bool cancelled_seen;
        bool release;
        bool in_reconcile;
        bool stopping_seen;
        unsigned relists_gone;
        unsigned lists;
        unsigned watches;
        uint16_t health_port;
        bool synced_before_run;
        /* koc_controller_on_synced: calls (under lock), the one registered
         * from inside the first call, destroys, and reconciles that ran
         * before the first call. */
        int synced_calls;
        int late_synced_calls;
        int synced_destroys;
        int reconciles_before_synced;
        int synced_early;
        int late_register_rc;
        int stuck_starts;
        int stuck_write;
        char stuck_log[1024];
        koc_reflector_stats stats;
        /* Failures said out loud: what the reconcile got, and the warn lines. */
        int event_rc[8];
        int n_event_rc;
        int fin_rc[4];
        int n_fin_rc;
        char last_error[600];
        char warn_lines[8192];
        size_t warn_len;
};

static uint64_t now_usec(void) {
        return koc_now_boottime_usec();
}

/* The condition variable waits on CLOCK_REALTIME; the bound is generous. */
static bool wait_until(env *e, bool (*pred)(env *e, const void *arg), const void *arg) {
        uint64_t deadline = now_usec() + wait_usec();
        pthread_mutex_lock(&e->lock);
        while (!pred(e, arg) && now_usec() < deadline) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 50 * 1000 * 1000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&e->cond, &e->lock, &ts);
        }
        bool ok = pred(e, arg);
        pthread_mutex_unlock(&e->lock);
        return ok;
}

static bool seen_line(env *e, const void *arg) {
        return strstr(e->seen, arg) != NULL;
}

/* Whether the reconcilers noted text; the driver thread reads e->seen under
 * the lock the worker threads write it under. */
static bool seen_has(env *e, const char *text) {
        pthread_mutex_lock(&e->lock);
        bool r = strstr(e->seen, text) != NULL;
        pthread_mutex_unlock(&e->lock);
        return r;
}

static bool wait_seen(env *e, const char *key, const char *value) {
        char line[600];
        snprintf(line, sizeof line, "\n%s %s\n", key, value);
        return wait_until(e, seen_line, line);
}

static void note(env *e, const char *key, const char *value) {
        pthread_mutex_lock(&e->lock);
        if (e->seen_len == 0)
                e->seen[e->seen_len++] = '\n';
        int n = snprintf(e->seen + e->seen_len, sizeof e->seen - e->seen_len, "%s %s\n", key,
                         value);
        if (n > 0 && (size_t)n < sizeof e->seen - e->seen_len)
                e->seen_len += (size_t)n;
        e->count++;
        pthread_cond_broadcast(&e->cond);
        pthread_mutex_unlock(&e->lock);
}

static const char *data_value(const cJSON *obj) {
        const char *v =
                cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(obj, "data"), "v"));
        return v ? v : "-";
}

static koc_result on_reconcile(koc_reconcile_context *ctx, void *userdata) {
        env *e = userdata;
        return e->reconcile(e, ctx);
}

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        env *e = userdata;
        uint64_t n;
        (void)!read(fd, &n, sizeof n);
        (void)koc_manager_shutdown(e->m);
        return 0;
}

static void request_shutdown(env *e) {
        uint64_t one = 1;
        (void)!write(e->wake_fd, &one, sizeof one);
}

static void *driver_main(void *p) {
        env *e = p;
        e->failure = e->driver(e);
        request_shutdown(e);
        return NULL;
}

/* --- HTTP helpers (blocking, from the driver) ------------------------------------- */

static long http(const char *method, const char *path, const char *body, const char *ctype,
                 char **ret) {
        return koc_test_apiserver_http(srv, method, path, body, ctype, ret);
}

static void ensure_namespace(const char *ns) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{"
                 "\"name\":\"%s\"}}",
                 ns);
        long st = http("POST", "/api/v1/namespaces", body, NULL, NULL);
        assert_true(st == 201 || st == 409);
}

static long put_configmap(const char *ns, const char *name, const char *labels, const char *value) {
        char path[256], body[1024];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps", ns);
        snprintf(body, sizeof body,
                 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\","
                 "\"labels\":%s},\"data\":{\"v\":\"%s\"}}",
                 name, labels, value);
        return http("POST", path, body, NULL, NULL);
}

static long patch_configmap(const char *ns, const char *name, const char *value) {
        char path[256], body[256];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps/%s", ns, name);
        snprintf(body, sizeof body, "{\"data\":{\"v\":\"%s\"}}", value);
        return http("PATCH", path, body, "application/merge-patch+json", NULL);
}

static long delete_configmap(const char *ns, const char *name) {
        char path[256];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps/%s", ns, name);
        return http("DELETE", path, NULL, NULL, NULL);
}

static cJSON *get_configmap(const char *ns, const char *name, long *ret_status) {
        char path[256], *body = NULL;
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps/%s", ns, name);
        *ret_status = http("GET", path, NULL, NULL, &body);
        cJSON *j = body ? cJSON_Parse(body) : NULL;
        free(body);
        return j;
}

/* --- running a case ---------------------------------------------------------------- */

typedef struct case_opts {
        const char *ns;
        const char *name;
        const char *label_selector;
        bool leader_elect;
        unsigned workers;
        uint64_t resync_usec;
        uint64_t timeout_usec;
        koc_list_mode list_mode;
        bool metadata_only;
        const char *kubeconfig; /* NULL: the server's (admin) kubeconfig */
        void (*setup)(env *e);  /* after the controller is made, before run */
        /* After the run, before the controller goes: on the loop thread,
         * with the loop stopped, so the controller's state is quiet. */
        void (*after)(env *e);
} case_opts;

static void run_case(env *e, const case_opts *o) {
        koc_manager_config cfg;
        koc_error err = {0};

        e->ns = o->ns;
        pthread_mutex_init(&e->lock, NULL);
        pthread_cond_init(&e->cond, NULL);
        ensure_namespace(o->ns);

        koc_manager_config_init(&cfg);
        cfg.kubeconfig = o->kubeconfig ? o->kubeconfig : srv->kubeconfig;
        cfg.leader_elect = o->leader_elect;
        cfg.leader_election_id = o->name;
        cfg.leader_election_namespace = o->ns;
        cfg.lease_duration_usec = 2 * KOC_USEC_PER_SEC;
        cfg.renew_deadline_usec = 1500 * KOC_USEC_PER_MSEC;
        cfg.retry_period_usec = 250 * KOC_USEC_PER_MSEC;
        cfg.health_probe_bind_address = "127.0.0.1:0";
        cfg.metrics_bind_address = "0";
        cfg.handle_signals = false;
        cfg.shutdown_budget_usec = 20 * KOC_USEC_PER_SEC;
        int r = koc_manager_new(NULL, &cfg, &e->m, &err);
        if (r < 0)
                fail_msg("manager: %s", err.message);

        koc_controller_options co;
        koc_controller_options_init(&co);
        co.name = o->name;
        co.resource = configmaps;
        co.namespace_ = o->ns;
        co.label_selector = o->label_selector;
        co.workers = o->workers ? o->workers : 1;
        co.resync_period_usec = o->resync_usec;
        co.reconcile_timeout_usec = o->timeout_usec;
        co.list_mode = o->list_mode;
        co.metadata_only = o->metadata_only;
        co.reconcile = on_reconcile;
        co.userdata = e;
        r = koc_controller_new(e->m, &co, &e->c, &err);
        if (r < 0)
                fail_msg("controller: %s", err.message);
        if (o->setup)
                o->setup(e);
        /* Nothing was listed yet: the cache-sync check must fail now. */
        e->synced_before_run = koc_controller_has_synced(e->c);
        (void)koc_manager_get_health_port(e->m, &e->health_port);

        e->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(e->wake_fd >= 0);
        assert_int_equal(sd_event_add_io(koc_manager_get_event(e->m), &e->wake, e->wake_fd, EPOLLIN,
                                         on_wake, e),
                         0);
        pthread_t t;
        pthread_create(&t, NULL, driver_main, e);
        e->run_result = koc_manager_run(e->m);
        pthread_join(t, NULL);

        sd_event_source_disable_unref(e->wake);
        close(e->wake_fd);
        if (o->after && !e->failure)
                o->after(e);
        koc_controller_unref(e->c);
        koc_manager_unref(e->m);
        pthread_cond_destroy(&e->cond);
        pthread_mutex_destroy(&e->lock);
        if (e->failure)
                fail_msg("%s", e->failure);
}

/* --- create, update and delete reach the reconciler ----------------------------- */

static koc_result crud_reconcile(env *e, koc_reconcile_context *ctx) {
        const cJSON *obj = koc_reconcile_get_object(ctx);
        pthread_mutex_lock(&e->lock);
        if (e->synced_calls == 0)
                e->reconciles_before_synced++;
        pthread_mutex_unlock(&e->lock);
        note(e, koc_reconcile_get_key(ctx), obj ? data_value(obj) : "<deleted>");
        return koc_result_done();
}

/* GET /readyz/NAME on the replica's health port: the HTTP status. */
static long readyz(env *e, const char *check) {
        char url[256];
        long code = -1;
        snprintf(url, sizeof url, "http://127.0.0.1:%u/readyz/%s", e->health_port, check);
        CURL *h = curl_easy_init();
        koc_test_buffer b = {0};
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, koc_test_buffer_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        if (curl_easy_perform(h) == CURLE_OK)
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(h);
        free(b.data);
        return code;
}

static void crud_late_synced(koc_controller *c, void *userdata) {
        env *e = userdata;
        pthread_mutex_lock(&e->lock);
        e->late_synced_calls++;
        pthread_cond_broadcast(&e->cond);
        pthread_mutex_unlock(&e->lock);
}

static void crud_synced_destroy(void *userdata) {
        env *e = userdata;
        e->synced_destroys++;
}

/* On the loop thread, once: registers another handler, which the loop then
 * calls too (the controller has synced already). */
static void crud_synced(koc_controller *c, void *userdata) {
        env *e = userdata;
        int r = koc_controller_on_synced(c, crud_late_synced, e, crud_synced_destroy);
        pthread_mutex_lock(&e->lock);
        e->synced_calls++;
        e->synced_early += !koc_controller_has_synced(c);
        e->late_register_rc = r;
        pthread_mutex_unlock(&e->lock);
}

static void crud_setup(env *e) {
        assert_int_equal(koc_controller_on_synced(e->c, NULL, NULL, NULL), -EINVAL);
        assert_int_equal(koc_controller_on_synced(e->c, crud_synced, e, crud_synced_destroy), 0);
}

static bool late_synced_called(env *e, const void *arg) {
        return e->late_synced_calls > 0;
}

static const char *crud_driver(env *e) {
        if (put_configmap(e->ns, "crud-a", "{\"test\":\"crud\"}", "1") != 201)
                return "create failed";
        /* Not selected: never reconciled. */
        if (put_configmap(e->ns, "crud-other", "{\"test\":\"other\"}", "1") != 201)
                return "create failed";
        if (!wait_seen(e, "ctrl-crud/crud-a", "1"))
                return "the create did not reach the reconciler";
        if (patch_configmap(e->ns, "crud-a", "2") != 200)
                return "patch failed";
        if (!wait_seen(e, "ctrl-crud/crud-a", "2"))
                return "the update did not reach the reconciler";
        if (delete_configmap(e->ns, "crud-a") != 200)
                return "delete failed";
        if (!wait_seen(e, "ctrl-crud/crud-a", "<deleted>"))
                return "the delete did not reach the reconciler";
        if (seen_has(e, "crud-other"))
                return "an object outside the label selector was reconciled";
        if (!koc_controller_has_synced(e->c))
                return "not synced";
        if (readyz(e, "cache-sync-crud") != 200)
                return "the cache-sync readiness check fails after the sync";
        if (!wait_until(e, late_synced_called, NULL))
                return "a synced handler registered after the sync was not called";
        return NULL;
}

static void crud_after(env *e);

static void test_create_update_delete(void **state) {
        env e = {.reconcile = crud_reconcile, .driver = crud_driver};
        run_case(&e, &(case_opts){.ns = "ctrl-crud",
                                  .name = "crud",
                                  .label_selector = "test=crud",
                                  .setup = crud_setup,
                                  .after = crud_after});
        assert_int_equal(e.run_result, 0);
        assert_false(e.synced_before_run);
        /* Each handler once, no reconcile before the first, both destroyed. */
        assert_int_equal(e.synced_calls, 1);
        assert_int_equal(e.synced_early, 0);
        assert_int_equal(e.late_register_rc, 0);
        assert_int_equal(e.late_synced_calls, 1);
        assert_int_equal(e.reconciles_before_synced, 0);
        assert_int_equal(e.synced_destroys, 2);
}

static void crud_after(env *e) {
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(koc_metrics_render(koc_manager_get_metrics(e->m), &text, &len), 0);
        const char *want[] = {
                "controller_runtime_reconcile_total{controller=\"crud\",result=\"success\"} ",
                "controller_runtime_reconcile_errors_total{controller=\"crud\"} 0",
                "controller_runtime_max_concurrent_reconciles{controller=\"crud\"} 1",
                "controller_runtime_active_workers{controller=\"crud\"} 0",
                "controller_runtime_reconcile_time_seconds_count{controller=\"crud\"} ",
                "workqueue_adds_total{name=\"crud\",controller=\"crud\"} ",
                "workqueue_depth{name=\"crud\",controller=\"crud\"} ",
                "workqueue_retries_total{name=\"crud\",controller=\"crud\"} 0",
                "workqueue_queue_duration_seconds_count{name=\"crud\",controller=\"crud\"} ",
                "workqueue_work_duration_seconds_count{name=\"crud\",controller=\"crud\"} ",
                "workqueue_unfinished_work_seconds{name=\"crud\",controller=\"crud\"} 0",
                "workqueue_longest_running_processor_seconds{name=\"crud\",controller=\"crud\"} 0",
                "koc_informer_cached_objects{",
        };
        for (size_t i = 0; i < sizeof want / sizeof *want; i++)
                if (!strstr(text, want[i]))
                        fail_msg("metric missing: %s", want[i]);
        /* Three reconciles succeeded: create, update, delete. */
        const char *s = strstr(text, want[0]);
        assert_true(atof(s + strlen(want[0])) >= 3);
        free(text);
}

/* --- owned and watched objects enqueue their primary ----------------------------- */

static const koc_resource secrets = {
        .version = "v1", .resource = "secrets", .kind = "Secret", .namespaced = true};

static koc_result own_reconcile(env *e, koc_reconcile_context *ctx) {
        char n[32];
        pthread_mutex_lock(&e->lock);
        int count = ++e->attempts;
        pthread_mutex_unlock(&e->lock);
        snprintf(n, sizeof n, "#%d", count);
        note(e, koc_reconcile_get_key(ctx), n);
        return koc_result_done();
}

static void map_to_primary(const cJSON *obj, koc_keys *out, void *userdata) {
        const char *target = cJSON_GetStringValue(cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(obj, "metadata"), "annotations"),
                "target"));
        if (target)
                koc_keys_add(out, "ctrl-own", target);
}

static void own_setup(env *e) {
        koc_error err = {0};
        if (koc_controller_owns(e->c, &secrets, &err) < 0 ||
            koc_controller_watches(e->c, &configmaps, "test=mapped", map_to_primary, NULL, NULL,
                                   &err) < 0)
                fail_msg("sources: %s", err.message);
}

static const char *own_driver(env *e) {
        char body[1024];
        long st;
        if (put_configmap(e->ns, "own-p", "{\"test\":\"own\"}", "1") != 201)
                return "create failed";
        if (!wait_seen(e, "ctrl-own/own-p", "#1"))
                return "the primary was not reconciled";
        cJSON *p = get_configmap(e->ns, "own-p", &st);
        const char *uid = cJSON_GetStringValue(
                cJSON_GetObjectItem(cJSON_GetObjectItem(p, "metadata"), "uid"));
        snprintf(body, sizeof body,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"own-s\","
                 "\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
                 "\"name\":\"own-p\",\"uid\":\"%s\",\"controller\":true}]},"
                 "\"stringData\":{\"k\":\"v\"}}",
                 uid ? uid : "");
        cJSON_Delete(p);
        if (http("POST", "/api/v1/namespaces/ctrl-own/secrets", body, NULL, NULL) != 201)
                return "secret create failed";
        if (!wait_seen(e, "ctrl-own/own-p", "#2"))
                return "the owned secret did not enqueue its owner";
        if (http("POST", "/api/v1/namespaces/ctrl-own/configmaps",
                 "{\"metadata\":{\"name\":\"own-w\",\"labels\":{\"test\":\"mapped\"},"
                 "\"annotations\":{\"target\":\"own-p\"}}}",
                 NULL, NULL) != 201)
                return "watched create failed";
        if (!wait_seen(e, "ctrl-own/own-p", "#3"))
                return "the watched object did not enqueue the mapped key";
        if (seen_has(e, "own-w") || seen_has(e, "own-s"))
                return "a secondary object was reconciled as a primary";
        return NULL;
}

static void test_owns_and_watches(void **state) {
        env e = {.reconcile = own_reconcile, .driver = own_driver};
        run_case(&e, &(case_opts){.ns = "ctrl-own",
                                  .name = "own",
                                  .label_selector = "test=own",
                                  .setup = own_setup});
        assert_int_equal(e.run_result, 0);
}

/* --- a periodic resync enqueues unchanged objects ------------------------------- */

static const char *resync_driver(env *e) {
        if (put_configmap(e->ns, "resync-a", "{\"test\":\"resync\"}", "1") != 201)
                return "create failed";
        /* No change after the create: the later runs come from the resync. */
        if (!wait_seen(e, "ctrl-resync/resync-a", "#3"))
                return "the resync did not enqueue the object again";
        return NULL;
}

static void test_resync(void **state) {
        env e = {.reconcile = own_reconcile, .driver = resync_driver};
        run_case(&e, &(case_opts){.ns = "ctrl-resync",
                                  .name = "resync",
                                  .label_selector = "test=resync",
                                  .resync_usec = 200 * KOC_USEC_PER_MSEC});
        assert_int_equal(e.run_result, 0);
}

/* --- a list larger than one page ------------------------------------------------- */

#define PAGE_OBJECTS 520

static bool all_reconciled(env *e, const void *arg) {
        return e->count >= PAGE_OBJECTS;
}

static const char *page_driver(env *e) {
        if (!wait_until(e, all_reconciled, NULL))
                return "not every object of the paginated list was reconciled";
        koc_object **list = NULL;
        size_t n = 0;
        if (koc_controller_list(e->c, e->ns, "test=page", &list, &n) < 0)
                return "list failed";
        koc_object_list_free(list, n);
        if (n != PAGE_OBJECTS)
                return "the cache does not hold every object";
        return NULL;
}

static void page_after(env *e) {
        koc_reflector_stats st;
        koc__informer_get_stats(e->c->primary, &st);
        e->lists = st.list_requests;
}

static void test_paginated_list(void **state) {
        char name[64];
        ensure_namespace("ctrl-page");
        for (int i = 0; i < PAGE_OBJECTS; i++) {
                snprintf(name, sizeof name, "page-%d", i);
                assert_int_equal(put_configmap("ctrl-page", name, "{\"test\":\"page\"}", "1"), 201);
        }
        env e = {.reconcile = crud_reconcile, .driver = page_driver};
        run_case(&e, &(case_opts){.ns = "ctrl-page",
                                  .name = "page",
                                  .label_selector = "test=page",
                                  .list_mode = KOC_LIST_PAGES,
                                  .workers = 4,
                                  .after = page_after});
        /* 520 objects at 500 a page: at least two requests. */
        assert_true(e.lists >= 2);
}

/* --- events: events.k8s.io/v1, series, the spam filter, the core fallback ---------- */

#define EVENT_TRIES 60

static int event_bad[4];

static koc_result event_reconcile(env *e, koc_reconcile_context *ctx) {
        const cJSON *obj = koc_reconcile_get_object(ctx);
        if (!obj || e->attempts > 0)
                return koc_result_done();
        /* A series of three, and another action's Event about the same object. */
        int series_rc = 0;
        for (int i = 0; i < 3; i++)
                series_rc |= koc_reconcile_record_event_action(ctx, obj, "Warning", "ScaleFailed",
                                                               "Scale", "could not scale");
        series_rc |= koc_reconcile_record_event_action(ctx, obj, "Normal", "Scaled", "Scale",
                                                       "scaled to 3");
        char long_reason[200];
        memset(long_reason, 'R', 129);
        long_reason[129] = '\0';
        event_bad[0] = koc_reconcile_record_event_action(ctx, obj, "Info", "X", "Y", "");
        event_bad[1] = koc_reconcile_record_event_action(ctx, obj, "Normal", "X", "", "");
        event_bad[2] = koc_reconcile_record_event_action(ctx, obj, "Normal", long_reason, "Y", "");
        event_bad[3] = koc_reconcile_record_event_action(ctx, obj, "Normal", "X", NULL, "");
        /* Then a tight loop of the compatible call: the object's bucket had
         * 25 and four went to the Events above. */
        int ok = 0, busy = 0;
        for (int i = 0; i < EVENT_TRIES; i++) {
                int r = koc_reconcile_record_event(ctx, obj, "Warning", "TestFailure",
                                                   "something failed");
                ok += r == 0;
                busy += r == -EBUSY;
        }
        pthread_mutex_lock(&e->lock);
        e->attempts = ok;
        e->conflicts = busy;
        e->applies = series_rc;
        pthread_mutex_unlock(&e->lock);
        note(e, "events", "recorded");
        return koc_result_done();
}

static const cJSON *str_field(const cJSON *o, const char *a, const char *b) {
        const cJSON *x = cJSON_GetObjectItem(o, a);
        return b ? cJSON_GetObjectItem(x, b) : x;
}

static bool field_is(const cJSON *o, const char *a, const char *b, const char *want) {
        const char *v = cJSON_GetStringValue(str_field(o, a, b));
        return v && strcmp(v, want) == 0;
}

static int series_count(const cJSON *ev) {
        const cJSON *c = str_field(ev, "series", "count");
        return cJSON_IsNumber(c) ? c->valueint : 1;
}

/* The events.k8s.io Events about NAME in ns, as a parsed list (or NULL). */
static cJSON *events_about(const char *ns, const char *name) {
        char path[512], *body = NULL;
        snprintf(path, sizeof path, "/apis/events.k8s.io/v1/namespaces/%s/events", ns);
        long st = http("GET", path, NULL, NULL, &body);
        cJSON *list = st == 200 && body ? cJSON_Parse(body) : NULL;
        free(body);
        cJSON *out = cJSON_CreateArray(), *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(list, "items")) if (
                field_is(it, "regarding", "name", name))
                cJSON_AddItemToArray(out, cJSON_Duplicate(it, true));
        cJSON_Delete(list);
        return out;
}

static const char *event_driver(env *e) {
        if (put_configmap(e->ns, "event-a", "{\"test\":\"event\"}", "1") != 201)
                return "create failed";
        if (!wait_seen(e, "events", "recorded"))
                return "the reconcile did not run";
        cJSON *evs = events_about(e->ns, "event-a");
        const char *why = NULL;
        const cJSON *it, *scale_failed = NULL, *scaled = NULL, *failure = NULL;
        cJSON_ArrayForEach(it, evs) {
                if (field_is(it, "reason", NULL, "ScaleFailed"))
                        scale_failed = it;
                else if (field_is(it, "reason", NULL, "Scaled"))
                        scaled = it;
                else if (field_is(it, "reason", NULL, "TestFailure"))
                        failure = it;
        }
        if (cJSON_GetArraySize(evs) != 3 || !scale_failed || !scaled || !failure)
                why = "not exactly three Events (ScaleFailed, Scaled, TestFailure)";
        else if (series_count(scale_failed) != 3 || series_count(scaled) != 1 ||
                 series_count(failure) != 21)
                why = "series counts are not 3, 1 (none) and 21";
        else if (!field_is(scale_failed, "action", NULL, "Scale") ||
                 !field_is(scale_failed, "type", NULL, "Warning") ||
                 !field_is(scale_failed, "note", NULL, "could not scale") ||
                 !field_is(scale_failed, "reportingController", NULL, "event") ||
                 strncmp(cJSON_GetStringValue(str_field(scale_failed, "reportingInstance", NULL))
                                 ?: "",
                         "event-", 6) != 0 ||
                 !field_is(scale_failed, "regarding", "kind", "ConfigMap") ||
                 !field_is(scale_failed, "regarding", "apiVersion", "v1") ||
                 !field_is(scale_failed, "regarding", "namespace", e->ns) ||
                 !cJSON_GetStringValue(str_field(scale_failed, "regarding", "uid")) ||
                 !cJSON_GetStringValue(str_field(scale_failed, "series", "lastObservedTime")) ||
                 !cJSON_GetStringValue(str_field(scale_failed, "eventTime", NULL)))
                why = "the ScaleFailed Event lacks a field";
        else if (!field_is(failure, "action", NULL, "TestFailure") ||
                 !field_is(failure, "note", NULL, "something failed"))
                why = "the compatible call's Event has no action = reason";
        cJSON_Delete(evs);
        return why;
}

static char event_metrics[8192];

static void event_after(env *e) {
        char *text = NULL;
        size_t len = 0;
        event_metrics[0] = '\0';
        if (koc_metrics_render(koc_manager_get_metrics(e->m), &text, &len) >= 0 && text) {
                const char *p = strstr(text, "koc_controller_events_");
                snprintf(event_metrics, sizeof event_metrics, "%s", p ? p : "");
        }
        free(text);
}

static void test_events_recorded_and_limited(void **state) {
        env e = {.reconcile = event_reconcile, .driver = event_driver};
        run_case(&e, &(case_opts){.ns = "ctrl-event",
                                  .name = "event",
                                  .label_selector = "test=event",
                                  .after = event_after});
        assert_int_equal(e.applies, 0);
        for (int i = 0; i < 4; i++)
                assert_int_equal(event_bad[i], -EINVAL);
        /* The object's spam filter: a burst of 25, then one every 5 minutes. */
        assert_int_equal(e.attempts, 21);
        assert_int_equal(e.conflicts, EVENT_TRIES - 21);
        if (!strstr(event_metrics,
                    "koc_controller_events_dropped_total{controller=\"event\"} 39") ||
            !strstr(event_metrics,
                    "koc_controller_events_recorded_total{controller=\"event\"} 25") ||
            !strstr(event_metrics,
                    "koc_controller_events_rejected_total{controller=\"event\"} 0"))
                fail_msg("metrics: %s", event_metrics);
}

/* A series ends 6 minutes after its last repeat, and the spam filter
 * refills one Event every 5 minutes (an injected clock). */
static _Atomic uint64_t clock_offset;
static uint64_t shifted_clock(void) {
        return koc_now_boottime_usec() + atomic_load(&clock_offset);
}

static koc_result finish_reconcile(env *e, koc_reconcile_context *ctx) {
        const cJSON *obj = koc_reconcile_get_object(ctx);
        if (!obj || e->attempts > 0)
                return koc_result_done();
        int rc[6];
        rc[0] = koc_reconcile_record_event_action(ctx, obj, "Normal", "Synced", "Sync", "one");
        rc[1] = koc_reconcile_record_event_action(ctx, obj, "Normal", "Synced", "Sync", "two");
        atomic_fetch_add(&clock_offset, 5 * 60 * KOC_USEC_PER_SEC + KOC_USEC_PER_SEC);
        /* 5 min later: still the series. */
        rc[2] = koc_reconcile_record_event_action(ctx, obj, "Normal", "Synced", "Sync", "three");
        atomic_fetch_add(&clock_offset, 6 * 60 * KOC_USEC_PER_SEC + KOC_USEC_PER_SEC);
        /* 6 min after the last: a new Event. */
        rc[3] = koc_reconcile_record_event_action(ctx, obj, "Normal", "Synced", "Sync", "four");
        /* Drain the bucket, then 5 minutes buy exactly one more. */
        int ok = 0;
        for (int i = 0; i < 40; i++)
                ok += koc_reconcile_record_event_action(ctx, obj, "Normal", "Spam", "Spam", "") ==
                      0;
        rc[4] = koc_reconcile_record_event_action(ctx, obj, "Normal", "Spam", "Spam", "");
        atomic_fetch_add(&clock_offset, 5 * 60 * KOC_USEC_PER_SEC + KOC_USEC_PER_SEC);
        rc[5] = koc_reconcile_record_event_action(ctx, obj, "Normal", "Spam", "Spam", "");
        pthread_mutex_lock(&e->lock);
        e->attempts = 1;
        e->conflicts = ok;
        memcpy(e->event_rc, rc, sizeof rc);
        e->n_event_rc = 6;
        pthread_mutex_unlock(&e->lock);
        note(e, "events", "recorded");
        return koc_result_done();
}

static void finish_setup(env *e) {
        atomic_store(&clock_offset, 0);
        koc__events_set_clock(e->c->events, shifted_clock);
}

static const char *finish_driver(env *e) {
        if (put_configmap(e->ns, "finish-a", "{\"test\":\"finish\"}", "1") != 201)
                return "create failed";
        if (!wait_seen(e, "events", "recorded"))
                return "the reconcile did not run";
        cJSON *evs = events_about(e->ns, "finish-a");
        int synced = 0, counts = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, evs) if (field_is(it, "reason", NULL, "Synced")) {
                synced++;
                counts += series_count(it) * 10 + 0;
        }
        cJSON_Delete(evs);
        /* One series of three (30) and a new Event of one (10). */
        return synced == 2 && counts == 40 ? NULL : "the series did not end after 6 minutes";
}

static void test_event_series_finish_and_refill(void **state) {
        env e = {.reconcile = finish_reconcile, .driver = finish_driver};
        run_case(&e, &(case_opts){.ns = "ctrl-evfinish",
                                  .name = "finish",
                                  .label_selector = "test=finish",
                                  .setup = finish_setup});
        for (int i = 0; i < 4; i++)
                assert_int_equal(e.event_rc[i], 0);
        /* 25 - 4, plus one for each of the two waits of over 5 minutes, left
         * in the bucket for the loop; then empty, then one more after 5
         * minutes. */
        assert_int_equal(e.conflicts, 23);
        assert_int_equal(e.event_rc[4], -EBUSY);
        assert_int_equal(e.event_rc[5], 0);
}

/* A server without events.k8s.io/v1 (its create answered 404): core/v1
 * Events, with the series as count and lastTimestamp. */
static koc_result evcore_reconcile(env *e, koc_reconcile_context *ctx) {
        const cJSON *obj = koc_reconcile_get_object(ctx);
        if (!obj || e->attempts > 0)
                return koc_result_done();
        int rc = 0;
        for (int i = 0; i < 3; i++)
                rc |= koc_reconcile_record_event_action(ctx, obj, "Warning", "Fallback", "Check",
                                                        "no events.k8s.io");
        pthread_mutex_lock(&e->lock);
        e->attempts = 1;
        e->applies = rc;
        pthread_mutex_unlock(&e->lock);
        note(e, "events", "recorded");
        return koc_result_done();
}

static void evcore_setup(env *e) {
        assert_int_equal(koc_test_apiserver_fault(
                                 &api, "{\"group\":\"events.k8s.io\",\"resource\":\"events\","
                                       "\"verb\":\"create\",\"error_code\":404}"),
                         200);
}

static const char *evcore_driver(env *e) {
        if (put_configmap(e->ns, "evcore-a", "{\"test\":\"evcore\"}", "1") != 201)
                return "create failed";
        if (!wait_seen(e, "events", "recorded"))
                return "the reconcile did not run";
        char *body = NULL;
        long st = http("GET",
                       "/api/v1/namespaces/ctrl-evcore/events?fieldSelector=involvedObject.name%3D"
                       "evcore-a",
                       NULL, NULL, &body);
        cJSON *list = body ? cJSON_Parse(body) : NULL;
        free(body);
        const cJSON *items = cJSON_GetObjectItem(list, "items");
        const cJSON *first = cJSON_GetArrayItem(items, 0);
        const cJSON *count = cJSON_GetObjectItem(first, "count");
        bool ok = st == 200 && cJSON_GetArraySize(items) == 1 &&
                  field_is(first, "reason", NULL, "Fallback") &&
                  field_is(first, "action", NULL, "Check") &&
                  field_is(first, "message", NULL, "no events.k8s.io") &&
                  field_is(first, "involvedObject", "kind", "ConfigMap") &&
                  field_is(first, "reportingComponent", NULL, "evcore") &&
                  cJSON_IsNumber(count) && count->valueint == 3;
        cJSON_Delete(list);
        return ok ? NULL : "not one core/v1 Event with count 3";
}

static void test_event_core_fallback(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&api);
        env e = {.reconcile = evcore_reconcile, .driver = evcore_driver};
        run_case(&e, &(case_opts){.ns = "ctrl-evcore",
                                  .name = "evcore",
                                  .label_selector = "test=evcore",
                                  .setup = evcore_setup});
        assert_int_equal(koc_test_apiserver_clear_faults(&api), 200);
        assert_int_equal(e.applies, 0);
}

/* --- a conflict is retried with backoff, and read-your-own-writes ---------------- */

static koc_result conflict_reconcile(env *e, koc_reconcile_context *ctx) {
        const cJSON *obj = koc_reconcile_get_object(ctx);
        koc_response *resp = NULL;
        if (!obj)
                return koc_result_done();
        if (strcmp(data_value(obj), "done") == 0) {
                note(e, koc_reconcile_get_key(ctx), "done");
                return koc_result_done();
        }
        pthread_mutex_lock(&e->lock);
        int attempt = ++e->attempts;
        pthread_mutex_unlock(&e->lock);
        if (attempt == 1) {
                /* Change the object behind the cached copy's back: the cached
                 * resourceVersion is now stale, and the update must get 409. */
                cJSON *p = cJSON_Parse("{\"metadata\":{\"annotations\":{\"touched\":\"yes\"}}}");
                int r = koc_reconcile_patch(ctx, &configmaps, koc_reconcile_get_namespace(ctx),
                                            koc_reconcile_get_name(ctx), KOC_PATCH_MERGE, p, &resp);
                cJSON_Delete(p);
                if (r < 0 || resp->status != 200)
                        note(e, "patch", "failed");
                koc_response_free(resp);
                resp = NULL;
        }
        cJSON *copy = cJSON_Duplicate(obj, true);
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(copy, "data"), "v",
                                  cJSON_CreateString("done"));
        int r = koc_reconcile_update(ctx, &configmaps, copy, &resp);
        cJSON_Delete(copy);
        if (r < 0)
                return koc_result_error(r);
        koc_result res = koc_result_done();
        if (resp->reason == KOC_REASON_CONFLICT) {
                pthread_mutex_lock(&e->lock);
                e->conflicts++;
                pthread_mutex_unlock(&e->lock);
                res = koc_result_error(-EBUSY);
        } else if (resp->status != 200)
                res = koc_result_error(-EIO);
        else {
                /* Read-your-own-writes: the cache already has what we wrote. */
                koc_object *o = koc_controller_ref_object(e->c, koc_reconcile_get_namespace(ctx),
                                                          koc_reconcile_get_name(ctx));
                const char *rv = cJSON_GetStringValue(cJSON_GetObjectItem(
                        cJSON_GetObjectItem(resp->body, "metadata"), "resourceVersion"));
                if (!o || !rv || strcmp(koc_object_get_resource_version(o), rv) != 0)
                        note(e, "ryw", "stale");
                else
                        note(e, "ryw", "ok");
                koc_object_unref(o);
        }
        koc_response_free(resp);
        return res;
}

static const char *conflict_driver(env *e) {
        if (put_configmap(e->ns, "conflict-a", "{\"test\":\"conflict\"}", "start") != 201)
                return "create failed";
        if (!wait_seen(e, "ryw", "ok"))
                return "the update never succeeded";
        long st;
        cJSON *cm = get_configmap(e->ns, "conflict-a", &st);
        bool ok = st == 200 && strcmp(data_value(cm), "done") == 0;
        cJSON_Delete(cm);
        if (!ok)
                return "the server does not have the update";
        if (seen_has(e, "ryw stale"))
                return "the cache was older than our own write";
        if (seen_has(e, "patch failed"))
                return "the first patch failed";
        return NULL;
}

static void test_conflict_retried(void **state) {
        env e = {.reconcile = conflict_reconcile, .driver = conflict_driver};
        run_case(&e, &(case_opts){.ns = "ctrl-conflict",
                                  .name = "conflict",
                                  .label_selector = "test=conflict"});
        assert_int_equal(e.conflicts, 1);
        assert_true(e.attempts >= 2);
        assert_int_equal(e.run_result, 0);
}

/* --- the drain waits for a reconcile in flight ----------------------------------- */

static koc_result drain_reconcile(env *e, koc_reconcile_context *ctx) {
        if (!koc_reconcile_get_object(ctx))
                return koc_result_done();
        pthread_mutex_lock(&e->lock);
        e->in_reconcile = true;
        pthread_cond_broadcast(&e->cond);
        while (!e->release)
                pthread_cond_wait(&e->cond, &e->lock);
        e->stopping_seen = koc_manager_is_stopping(e->m);
        e->cancelled_seen = koc_reconcile_is_cancelled(ctx);
        pthread_mutex_unlock(&e->lock);
        /* Still allowed during the drain: the replica leads until step-down. */
        cJSON *p = cJSON_Parse("{\"data\":{\"v\":\"drained\"}}");
        koc_response *resp = NULL;
        int r = koc_reconcile_patch(ctx, &configmaps, koc_reconcile_get_namespace(ctx),
                                    koc_reconcile_get_name(ctx), KOC_PATCH_MERGE, p, &resp);
        cJSON_Delete(p);
        note(e, "drain-write", r == 0 && resp->status == 200 ? "ok" : "failed");
        koc_response_free(resp);
        return koc_result_done();
}

static bool in_reconcile(env *e, const void *arg) {
        return e->in_reconcile;
}

static bool is_stopping(env *e, const void *arg) {
        return koc_manager_is_stopping(e->m);
}

static const char *drain_driver(env *e) {
        if (put_configmap(e->ns, "drain-a", "{\"test\":\"drain\"}", "1") != 201)
                return "create failed";
        if (!wait_until(e, in_reconcile, NULL))
                return "the reconcile did not start";
        request_shutdown(e);
        if (!wait_until(e, is_stopping, NULL))
                return "the shutdown did not start";
        /* The manager is draining and must be waiting for this reconcile. */
        if (koc_manager_in_flight(e->m) != 1)
                return "the reconcile is not counted in flight";
        pthread_mutex_lock(&e->lock);
        e->release = true;
        pthread_cond_broadcast(&e->cond);
        pthread_mutex_unlock(&e->lock);
        if (!wait_seen(e, "drain-write", "ok"))
                return "the write during the drain failed";
        return NULL;
}

static void test_drain_waits_for_reconcile(void **state) {
        env e = {.reconcile = drain_reconcile, .driver = drain_driver};
        run_case(&e,
                 &(case_opts){.ns = "ctrl-drain", .name = "drain", .label_selector = "test=drain"});
        assert_true(e.stopping_seen);
        assert_true(e.cancelled_seen);
        /* A clean drain: the run ended only after the reconcile had finished. */
        assert_int_equal(e.run_result, 0);
        long st;
        cJSON *cm = get_configmap("ctrl-drain", "drain-a", &st);
        assert_int_equal(st, 200);
        assert_string_equal(data_value(cm), "drained");
        cJSON_Delete(cm);
}

/* --- a reconcile past the timeout is reported and cancelled --------------------- */

static koc_result stuck_reconcile(env *e, koc_reconcile_context *ctx) {
        const cJSON *obj = koc_reconcile_get_object(ctx);
        const char *v = obj ? data_value(obj) : "<deleted>";
        if (strcmp(koc_reconcile_get_name(ctx), "stuck-a") != 0 || strcmp(v, "1") != 0) {
                note(e, koc_reconcile_get_key(ctx), v);
                return koc_result_done();
        }
        /* Blocks until the driver says so, watching the cancellation flag. */
        pthread_mutex_lock(&e->lock);
        e->stuck_starts++;
        e->in_reconcile = true;
        pthread_cond_broadcast(&e->cond);
        while (!e->release) {
                if (!e->cancelled_seen && koc_reconcile_is_cancelled(ctx)) {
                        e->cancelled_seen = true;
                        pthread_cond_broadcast(&e->cond);
                }
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 10 * 1000 * 1000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&e->cond, &e->lock, &ts);
        }
        pthread_mutex_unlock(&e->lock);
        /* Past its timeout, a reconcile's writes are refused. */
        cJSON *p = cJSON_Parse("{\"data\":{\"late\":\"yes\"}}");
        koc_response *resp = NULL;
        int r = koc_reconcile_patch(ctx, &configmaps, koc_reconcile_get_namespace(ctx),
                                    koc_reconcile_get_name(ctx), KOC_PATCH_MERGE, p, &resp);
        cJSON_Delete(p);
        koc_response_free(resp);
        pthread_mutex_lock(&e->lock);
        e->stuck_write = r;
        pthread_mutex_unlock(&e->lock);
        note(e, koc_reconcile_get_key(ctx), "returned");
        return koc_result_done();
}

static void stuck_log(int level, const char *component, const char *message, void *userdata) {
        env *e = userdata;
        if (level == KOC_LOG_WARN && strstr(message, "stuck")) {
                pthread_mutex_lock(&e->lock);
                snprintf(e->stuck_log, sizeof e->stuck_log, "%s", message);
                pthread_mutex_unlock(&e->lock);
        }
}

static bool stuck_cancelled(env *e, const void *arg) {
        return e->cancelled_seen;
}

static bool stuck_gauge(env *e, const void *arg) {
        return koc_metric_get(e->c->metrics.stuck) == *(const double *)arg;
}

static const char *stuck_driver(env *e) {
        static const double one = 1, zero = 0;
        if (put_configmap(e->ns, "stuck-a", "{\"test\":\"stuck\"}", "1") != 201)
                return "create failed";
        if (!wait_until(e, in_reconcile, NULL))
                return "the reconcile did not start";
        if (!wait_until(e, stuck_cancelled, NULL))
                return "the stuck reconcile's context never read cancelled";
        if (!wait_until(e, stuck_gauge, &one))
                return "koc_controller_stuck_reconciles is not 1";
        if (koc_metric_get(e->c->metrics.timeouts) != 1)
                return "koc_controller_reconcile_timeouts_total is not 1";
        /* A change of the stuck key waits for its worker; the other worker
         * stays free for other keys. */
        if (patch_configmap(e->ns, "stuck-a", "2") != 200)
                return "patch failed";
        if (put_configmap(e->ns, "stuck-b", "{\"test\":\"stuck\"}", "1") != 201)
                return "create failed";
        if (!wait_seen(e, "ctrl-stuck/stuck-b", "1"))
                return "another key was not reconciled while one was stuck";
        pthread_mutex_lock(&e->lock);
        bool twice = strstr(e->seen, "ctrl-stuck/stuck-a ") != NULL || e->stuck_starts != 1;
        e->release = true;
        pthread_cond_broadcast(&e->cond);
        pthread_mutex_unlock(&e->lock);
        if (twice)
                return "the stuck key was handed to another worker";
        if (!wait_seen(e, "ctrl-stuck/stuck-a", "returned"))
                return "the stuck reconcile did not return";
        if (!wait_seen(e, "ctrl-stuck/stuck-a", "2"))
                return "the change made while stuck did not run after the reconcile returned";
        if (!wait_until(e, stuck_gauge, &zero))
                return "koc_controller_stuck_reconciles did not go back to 0";
        return NULL;
}

static void test_reconcile_timeout(void **state) {
        env e = {.reconcile = stuck_reconcile, .driver = stuck_driver};
        koc_log_set_handler(stuck_log, &e, NULL);
        run_case(&e, &(case_opts){.ns = "ctrl-stuck",
                                  .name = "stuck",
                                  .label_selector = "test=stuck",
                                  .workers = 2,
                                  .timeout_usec = 300 * KOC_USEC_PER_MSEC});
        koc_log_set_handler(NULL, NULL, NULL);
        assert_int_equal(e.stuck_write, -ETIMEDOUT);
        assert_int_equal(e.stuck_starts, 1);
        /* The warning names the controller, the object and how long. */
        assert_non_null(strstr(e.stuck_log, "controller=stuck "));
        assert_non_null(strstr(e.stuck_log, "namespace=ctrl-stuck name=stuck-a "));
        assert_non_null(strstr(e.stuck_log, "reconcile stuck for "));
        assert_non_null(strstr(e.stuck_log, "(timeout 0.300s)"));
        long st;
        cJSON *cm = get_configmap("ctrl-stuck", "stuck-a", &st);
        assert_int_equal(st, 200);
        assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(cm, "data"), "late"));
        cJSON_Delete(cm);
}

/* --- server-side apply from a reconcile ------------------------------------------- */

static cJSON *ssa_config(const char *ns, const char *v, bool with_owned) {
        char buf[1024];
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"ssa-out\","
                 "\"namespace\":\"%s\",\"labels\":{\"test\":\"ssa-out\"}},\"data\":{\"v\":\"%s\"%s}"
                 "}",
                 ns, v, with_owned ? ",\"owned\":\"yes\"" : "");
        return cJSON_Parse(buf);
}

static const char *first_cause_field(const koc_response *resp) {
        const cJSON *causes =
                cJSON_GetObjectItem(cJSON_GetObjectItem(resp->body, "details"), "causes");
        return cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(causes, 0), "field"));
}

static koc_result ssa_reconcile(env *e, koc_reconcile_context *ctx) {
        const cJSON *src = koc_reconcile_get_object(ctx);
        char what[300];
        if (!src)
                return koc_result_done();
        const char *v = data_value(src);
        /* From "3" on, the field "owned" is no longer applied. */
        cJSON *cfg = ssa_config(koc_reconcile_get_namespace(ctx), v, strcmp(v, "3") < 0);
        koc_response *resp = NULL;
        int r = koc_reconcile_apply(ctx, &configmaps, cfg, "ssa-ctrl", 0, &resp);
        if (r == 0 && resp->status == 409 && resp->reason == KOC_REASON_CONFLICT) {
                snprintf(what, sizeof what, "conflict %s", first_cause_field(resp) ?: "?");
                note(e, "ssa", what);
                koc_response_free(resp);
                resp = NULL;
                r = koc_reconcile_apply(ctx, &configmaps, cfg, "ssa-ctrl", KOC_APPLY_FORCE, &resp);
                snprintf(what, sizeof what, "forced-%s %ld", v, r == 0 ? resp->status : (long)r);
        } else
                snprintf(what, sizeof what, "%s %ld", v, r == 0 ? resp->status : (long)r);
        note(e, "ssa", what);
        koc_response_free(resp);
        cJSON_Delete(cfg);
        return koc_result_done();
}

/* Applies as another manager with plain HTTP. */
static long ssa_apply_as(const char *ns, const char *manager, bool force, const char *data) {
        char path[512], body[1024];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps/ssa-out?fieldManager=%s%s",
                 ns, manager, force ? "&force=true" : "");
        snprintf(
                body, sizeof body,
                "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"ssa-out\"},"
                "\"data\":%s}",
                data);
        return http("PATCH", path, body, "application/apply-patch+yaml", NULL);
}

/* The managers of ssa-out's field data.KEY, as "manager/operation ...". */
static void ssa_owners(const char *ns, const char *key, char *buf, size_t size) {
        long st;
        char f[128];
        cJSON *cm = get_configmap(ns, "ssa-out", &st);
        const cJSON *mf = cJSON_GetObjectItem(cJSON_GetObjectItem(cm, "metadata"), "managedFields"),
                    *en;
        snprintf(f, sizeof f, "f:%s", key);
        buf[0] = 0;
        cJSON_ArrayForEach(en, mf) {
                const cJSON *fs = cJSON_GetObjectItem(
                        cJSON_GetObjectItem(cJSON_GetObjectItem(en, "fieldsV1"), "f:data"), f);
                if (fs)
                        snprintf(buf + strlen(buf), size - strlen(buf), "%s/%s ",
                                 cJSON_GetStringValue(cJSON_GetObjectItem(en, "manager")),
                                 cJSON_GetStringValue(cJSON_GetObjectItem(en, "operation")));
        }
        cJSON_Delete(cm);
}

static const char *ssa_data(const char *ns, const char *key, char *buf, size_t size) {
        long st;
        cJSON *cm = get_configmap(ns, "ssa-out", &st);
        const char *v =
                cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(cm, "data"), key));
        snprintf(buf, size, "%s", v ? v : "<none>");
        cJSON_Delete(cm);
        return buf;
}

static const char *ssa_driver(env *e) {
        char owners[512], v[128];
        if (put_configmap(e->ns, "ssa-src", "{\"test\":\"ssa\"}", "1") != 201)
                return "create failed";
        /* Absent: the apply creates it. */
        if (!wait_seen(e, "ssa", "1 201"))
                return "the first apply did not create the object (201)";
        ssa_owners(e->ns, "v", owners, sizeof owners);
        if (strcmp(owners, "ssa-ctrl/Apply ") != 0)
                return "data.v is not owned by the apply's field manager";
        /* Another manager adds a field of its own: no conflict, and the
         * controller's next apply keeps it. */
        if (ssa_apply_as(e->ns, "driver", false, "{\"x\":\"d\"}") != 200)
                return "the other manager's apply of a new field failed";
        if (patch_configmap(e->ns, "ssa-src", "2") != 200)
                return "patch failed";
        if (!wait_seen(e, "ssa", "2 200"))
                return "the second apply did not succeed";
        if (strcmp(ssa_data(e->ns, "v", v, sizeof v), "2") != 0)
                return "the applied field was not merged";
        if (strcmp(ssa_data(e->ns, "x", v, sizeof v), "d") != 0)
                return "another manager's field was lost";
        /* Changing a field the controller owns conflicts; force takes it. */
        if (ssa_apply_as(e->ns, "driver", false, "{\"v\":\"hijack\"}") != 409)
                return "an apply changing another manager's field did not conflict";
        if (ssa_apply_as(e->ns, "driver", true, "{\"v\":\"hijack\",\"x\":\"d\"}") != 200)
                return "the forced apply failed";
        ssa_owners(e->ns, "v", owners, sizeof owners);
        if (strcmp(owners, "driver/Apply ") != 0)
                return "the forced apply did not take the field over";
        /* Now the controller conflicts, and forces. */
        if (patch_configmap(e->ns, "ssa-src", "3") != 200)
                return "patch failed";
        if (!wait_seen(e, "ssa", "conflict .data.v"))
                return "the controller's apply did not conflict on .data.v";
        if (!wait_seen(e, "ssa", "forced-3 200"))
                return "the controller's forced apply failed";
        if (strcmp(ssa_data(e->ns, "v", v, sizeof v), "3") != 0)
                return "the forced value is not stored";
        /* A field the controller no longer applies, owned by nobody else, goes. */
        if (strcmp(ssa_data(e->ns, "owned", v, sizeof v), "<none>") != 0)
                return "a field no longer applied was kept";
        if (strcmp(ssa_data(e->ns, "x", v, sizeof v), "d") != 0)
                return "another manager's field was lost";
        /* The field manager is required by the server. */
        char path[256];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps/ssa-out", e->ns);
        if (http("PATCH", path, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\"}",
                 "application/apply-patch+yaml", NULL) != 422)
                return "an apply without fieldManager was not refused with 422";
        return NULL;
}

static void test_server_side_apply(void **state) {
        env e = {.reconcile = ssa_reconcile, .driver = ssa_driver};
        run_case(&e, &(case_opts){.ns = "ctrl-ssa", .name = "ssa", .label_selector = "test=ssa"});
        assert_int_equal(e.run_result, 0);
}

/* --- streaming lists, and the fallback to pages ----------------------------------- */

static bool stream_synced(env *e, const void *arg) {
        return koc_controller_has_synced(e->c);
}

static const char *stream_driver(env *e) {
        static const char *const names[] = {"stream-a", "stream-b", "stream-c"};
        char key[128];
        for (size_t i = 0; i < 3; i++) {
                snprintf(key, sizeof key, "%s/%s", e->ns, names[i]);
                if (!wait_seen(e, key, "1"))
                        return "an object from before the start was not reconciled";
        }
        /* Objects reach the handlers as they stream in, before the end
         * marker syncs the cache. */
        if (!wait_until(e, stream_synced, NULL))
                return "not synced after the initial objects";
        /* The stream goes on as the watch. */
        if (put_configmap(e->ns, "stream-d", "{\"test\":\"stream\"}", "1") != 201)
                return "create failed";
        snprintf(key, sizeof key, "%s/stream-d", e->ns);
        if (!wait_seen(e, key, "1"))
                return "a create after the sync was not reconciled";
        if (patch_configmap(e->ns, "stream-a", "2") != 200)
                return "patch failed";
        snprintf(key, sizeof key, "%s/stream-a", e->ns);
        if (!wait_seen(e, key, "2"))
                return "an update after the sync was not reconciled";
        return NULL;
}

static void stream_after(env *e) {
        koc__informer_get_stats(e->c->primary, &e->stats);
}

static void stream_case(const char *ns, koc_list_mode mode, env *e) {
        ensure_namespace(ns);
        assert_int_equal(put_configmap(ns, "stream-a", "{\"test\":\"stream\"}", "1"), 201);
        assert_int_equal(put_configmap(ns, "stream-b", "{\"test\":\"stream\"}", "1"), 201);
        assert_int_equal(put_configmap(ns, "stream-c", "{\"test\":\"stream\"}", "1"), 201);
        /* Not selected: never cached. */
        assert_int_equal(put_configmap(ns, "stream-x", "{\"test\":\"other\"}", "1"), 201);
        *e = (env){.reconcile = crud_reconcile, .driver = stream_driver};
        run_case(e, &(case_opts){.ns = ns,
                                 .name = "stream",
                                 .label_selector = "test=stream",
                                 .list_mode = mode,
                                 .after = stream_after});
        assert_int_equal(e->run_result, 0);
        assert_null(strstr(e->seen, "stream-x"));
}

/* The server refuses streaming lists (kube-apiserver with the WatchList
 * gate off answers 422): the informer listed with pages. */
static void assert_fell_back(const env *e) {
        assert_true(e->stats.stream_unsupported);
        assert_true(e->stats.streams >= 1);
        assert_int_equal(e->stats.streams_done, 0);
        assert_true(e->stats.list_requests >= 1);
        assert_true(e->stats.lists >= 1);
}

static void test_streaming_list(void **state) {
        env e;
        stream_case("ctrl-stream", KOC_LIST_STREAM_AUTO, &e);
        /* tests/k8s runs this case once more on a kube-apiserver started with
         * --feature-gates=WatchList=false. */
        if (getenv("KOC_TEST_WATCHLIST_OFF")) {
                assert_fell_back(&e);
                return;
        }
        /* kube-apiserver v1.36 and koc-apiserver stream: no list request. */
        assert_false(e.stats.stream_unsupported);
        assert_int_equal(e.stats.list_requests, 0);
        assert_int_equal(e.stats.streams, 1);
        assert_int_equal(e.stats.streams_done, 1);
        assert_int_equal(e.stats.lists, 1);
}

static void test_streaming_list_fallback(void **state) {
        /* A second koc-apiserver, with the gate off. */
        KOC_TEST_NEEDS_KOC_APISERVER(&api);
        koc_test_apiserver off = {0};
        assert_int_equal(koc_test_apiserver_start(&off, "--feature-gates WatchList=false"), 0);
        srv = &off;
        env e;
        stream_case("ctrl-stream-off", KOC_LIST_STREAM_AUTO, &e);
        srv = &api;
        koc_test_apiserver_stop(&off);
        assert_fell_back(&e);
}

/* --- metadata-only informers ------------------------------------------------------ */

static const char *shape(const cJSON *obj) {
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(obj, "kind"));
        const char *av = cJSON_GetStringValue(cJSON_GetObjectItem(obj, "apiVersion"));
        const cJSON *labels = cJSON_GetObjectItem(cJSON_GetObjectItem(obj, "metadata"), "labels");
        if (!kind || strcmp(kind, "ConfigMap") != 0 || !av || strcmp(av, "v1") != 0 ||
            !cJSON_GetObjectItem(labels, "test"))
                return "bad-type-meta";
        return cJSON_GetObjectItem(obj, "data") ? "full" : "meta";
}

static koc_result meta_reconcile(env *e, koc_reconcile_context *ctx) {
        const cJSON *obj = koc_reconcile_get_object(ctx);
        if (!obj)
                return koc_result_done();
        note(e, koc_reconcile_get_key(ctx), shape(obj));
        /* A write's answer (the whole object) is cached as metadata too. */
        cJSON *p = cJSON_Parse("{\"metadata\":{\"annotations\":{\"seen\":\"yes\"}}}");
        koc_response *resp = NULL;
        int r = koc_reconcile_patch(ctx, &configmaps, koc_reconcile_get_namespace(ctx),
                                    koc_reconcile_get_name(ctx), KOC_PATCH_MERGE, p, &resp);
        cJSON_Delete(p);
        if (r == 0 && resp->status == 200) {
                koc_object *o = koc_controller_ref_object(koc_reconcile_get_controller(ctx),
                                                          koc_reconcile_get_namespace(ctx),
                                                          koc_reconcile_get_name(ctx));
                cJSON *cached = NULL;
                if (o && koc_object_parse(o, &cached) == 0)
                        note(e, "ryw", shape(cached));
                cJSON_Delete(cached);
                koc_object_unref(o);
        }
        koc_response_free(resp);
        return koc_result_done();
}

static const char *meta_driver(env *e) {
        char key[128];
        snprintf(key, sizeof key, "%s/meta-a", e->ns);
        if (!wait_seen(e, key, "meta"))
                return "the listed object did not reach the reconciler as metadata only";
        if (!wait_seen(e, "ryw", "meta"))
                return "the write's answer was not cached as metadata only";
        if (put_configmap(e->ns, "meta-b", "{\"test\":\"meta\"}", "1") != 201)
                return "create failed";
        snprintf(key, sizeof key, "%s/meta-b", e->ns);
        if (!wait_seen(e, key, "meta"))
                return "the watched object did not reach the reconciler as metadata only";
        /* The workers still note what they reconcile: seen_has() locks. */
        if (seen_has(e, " full\n") || seen_has(e, "bad-type-meta"))
                return "an object was cached with more than metadata, or without its kind";
        return NULL;
}

static void meta_case(const char *ns, koc_list_mode mode) {
        ensure_namespace(ns);
        assert_int_equal(put_configmap(ns, "meta-a", "{\"test\":\"meta\"}", "1"), 201);
        env e = {.reconcile = meta_reconcile, .driver = meta_driver};
        run_case(&e, &(case_opts){.ns = ns,
                                  .name = "meta",
                                  .label_selector = "test=meta",
                                  .list_mode = mode,
                                  .metadata_only = true,
                                  .after = stream_after});
        assert_int_equal(e.run_result, 0);
        if (mode == KOC_LIST_STREAM_AUTO)
                assert_int_equal(e.stats.streams_done, 1);
}

static void test_metadata_only(void **state) {
        meta_case("ctrl-meta", KOC_LIST_PAGES);
        meta_case("ctrl-meta-stream", KOC_LIST_STREAM_AUTO);
}

/* --- a finalizer's cleanup runs exactly once ------------------------------------- */

static koc_result fin_apply(koc_reconcile_context *ctx, const cJSON *obj, void *userdata) {
        env *e = userdata;
        pthread_mutex_lock(&e->lock);
        e->applies++;
        pthread_mutex_unlock(&e->lock);
        note(e, "apply", "ok");
        return koc_result_done();
}

static koc_result fin_cleanup(koc_reconcile_context *ctx, const cJSON *obj, void *userdata) {
        env *e = userdata;
        pthread_mutex_lock(&e->lock);
        e->cleanups++;
        pthread_mutex_unlock(&e->lock);
        note(e, "cleanup", koc_reconcile_get_key(ctx));
        return koc_result_done();
}

static koc_result fin_reconcile(env *e, koc_reconcile_context *ctx) {
        koc_result r = koc_reconcile_finalizer(ctx, "koc.test/cleanup", fin_apply, fin_cleanup, e);
        if (!koc_reconcile_get_object(ctx))
                note(e, koc_reconcile_get_key(ctx), "<gone>");
        return r;
}

static const char *fin_driver(env *e) {
        if (put_configmap(e->ns, "fin-a", "{\"test\":\"fin\"}", "1") != 201)
                return "create failed";
        if (!wait_seen(e, "apply", "ok"))
                return "apply never ran";
        long st;
        cJSON *cm = get_configmap(e->ns, "fin-a", &st);
        bool has = st == 200 && koc_object_has_finalizer(cm, "koc.test/cleanup");
        cJSON_Delete(cm);
        if (!has)
                return "the finalizer was not added";
        if (delete_configmap(e->ns, "fin-a") != 200)
                return "delete failed";
        if (!wait_seen(e, "ctrl-fin/fin-a", "<gone>"))
                return "the object did not go";
        cm = get_configmap(e->ns, "fin-a", &st);
        cJSON_Delete(cm);
        if (st != 404)
                return "the object still exists";
        return NULL;
}

static void test_finalizer_cleanup_once(void **state) {
        env e = {.reconcile = fin_reconcile, .driver = fin_driver};
        run_case(&e, &(case_opts){.ns = "ctrl-fin", .name = "fin", .label_selector = "test=fin"});
        assert_int_equal(e.cleanups, 1);
        assert_true(e.applies >= 1);
}

/* --- failures are said out loud, with their cause -------------------------------- */

/* Two refused Events and a refused finalizer patch per attempt: the Event
 * writes are answered 403 (RBAC without events), the finalizer's patch 422
 * twice, then the patch goes through. */
static koc_result loud_reconcile(env *e, koc_reconcile_context *ctx) {
        const cJSON *obj = koc_reconcile_get_object(ctx);
        if (!obj)
                return koc_result_done();
        if (strcmp(koc_reconcile_get_name(ctx), "loud-t") == 0) {
                /* A terminal error whose cause is a read's 404. */
                koc_response *resp = NULL;
                int r = koc_reconcile_get(ctx, &configmaps, koc_reconcile_get_namespace(ctx),
                                          "loud-missing", &resp);
                if (r == 0)
                        r = koc_response_errno(resp);
                koc_response_free(resp);
                note(e, "terminal", "returned");
                return koc_result_terminal(r);
        }
        for (int i = 0; i < 2; i++) {
                int r = koc_reconcile_record_event(ctx, obj, "Warning", "LoudTest", "a test");
                pthread_mutex_lock(&e->lock);
                if (e->n_event_rc < (int)(sizeof e->event_rc / sizeof e->event_rc[0]))
                        e->event_rc[e->n_event_rc++] = r;
                pthread_mutex_unlock(&e->lock);
        }
        koc_result res = koc_reconcile_finalizer(ctx, "koc.test/loud", fin_apply, NULL, e);
        /* A Warning Event about the failure, itself refused (403), must not
         * hide the failed write from the reconcile's last error. */
        if (res.type == KOC_RESULT_ERROR)
                (void)koc_reconcile_record_event(ctx, obj, "Warning", "LoudTest", "it failed");
        koc_error err = {0};
        int code = koc_reconcile_get_last_error(ctx, &err);
        pthread_mutex_lock(&e->lock);
        if (res.type == KOC_RESULT_ERROR && e->n_fin_rc < 4) {
                e->fin_rc[e->n_fin_rc++] = res.error;
                if (code == res.error)
                        snprintf(e->last_error, sizeof e->last_error, "%s", err.message);
        }
        pthread_mutex_unlock(&e->lock);
        return res;
}

static void loud_log(int level, const char *component, const char *message, void *userdata) {
        env *e = userdata;
        if (level != KOC_LOG_WARN || strcmp(component, "controller") != 0)
                return;
        pthread_mutex_lock(&e->lock);
        int n = snprintf(e->warn_lines + e->warn_len, sizeof e->warn_lines - e->warn_len, "%s\n",
                         message);
        if (n > 0 && (size_t)n < sizeof e->warn_lines - e->warn_len)
                e->warn_len += (size_t)n;
        pthread_mutex_unlock(&e->lock);
}

static void loud_setup(env *e) {
        assert_int_equal(koc_test_apiserver_fault(
                                 &api, "{\"resource\":\"events\",\"verb\":\"create\","
                                       "\"error_code\":403}"),
                         200);
        assert_int_equal(koc_test_apiserver_fault(
                                 &api, "{\"resource\":\"configmaps\",\"verb\":\"patch\","
                                       "\"error_code\":422,\"count\":2}"),
                         200);
}

static const char *loud_driver(env *e) {
        if (put_configmap(e->ns, "loud-a", "{\"test\":\"loud\"}", "1") != 201)
                return "create failed";
        if (!wait_seen(e, "apply", "ok"))
                return "the finalizer was never added";
        if (put_configmap(e->ns, "loud-t", "{\"test\":\"loud\"}", "1") != 201)
                return "create failed";
        if (!wait_seen(e, "terminal", "returned"))
                return "the terminal reconcile did not run";
        return NULL;
}

/* Counts the lines of text that contain every one of the needles. */
static int count_lines(const char *text, const char *const *needles, size_t n) {
        int count = 0;
        for (const char *line = text; *line;) {
                const char *end = strchr(line, '\n');
                size_t len = end ? (size_t)(end - line) : strlen(line);
                char buf[2048];
                snprintf(buf, sizeof buf, "%.*s", (int)len, line);
                bool all = true;
                for (size_t i = 0; i < n; i++)
                        all &= strstr(buf, needles[i]) != NULL;
                count += all;
                line += len + (end ? 1 : 0);
        }
        return count;
}

static void test_failures_said_with_cause(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&api);
        env e = {.reconcile = loud_reconcile, .driver = loud_driver};
        koc_log_set_handler(loud_log, &e, NULL);
        run_case(&e, &(case_opts){.ns = "ctrl-loud",
                                  .name = "loud",
                                  .label_selector = "test=loud",
                                  .setup = loud_setup});
        koc_log_set_handler(NULL, NULL, NULL);
        assert_int_equal(koc_test_apiserver_clear_faults(&api), 200);

        /* A 403 on an Event write is -EACCES, every time, and said once. */
        assert_true(e.n_event_rc >= 6);
        for (int i = 0; i < e.n_event_rc; i++)
                assert_int_equal(e.event_rc[i], -EACCES);
        static const char *const event_line_plain[] = {
                "controller=loud ",
                "event reason=LoudTest ",
                "ConfigMap ctrl-loud/loud-a ",
                "POST /apis/events.k8s.io/v1/namespaces/ctrl-loud/events ",
                "status=403 ",
                "reason=Forbidden ",
                "cannot create resource",
        };
        static const char *const any_event[] = {"event reason=LoudTest "};
        assert_int_equal(count_lines(e.warn_lines, event_line_plain, 7), 1);
        assert_int_equal(count_lines(e.warn_lines, any_event, 1), 1);

        /* A 422 from the finalizer helper is -EINVAL, and the Status message
         * is there for the reconcile. */
        assert_int_equal(e.n_fin_rc, 2);
        assert_int_equal(e.fin_rc[0], -EINVAL);
        assert_int_equal(e.fin_rc[1], -EINVAL);
        assert_string_equal(e.last_error, "PATCH /api/v1/namespaces/ctrl-loud/configmaps/loud-a: "
                                          "422 Invalid: injected fault");

        /* The failed reconcile is said at warn with its cause, once for the
         * two failures in a row of the key. */
        static const char *const failed_line[] = {
                "controller=loud ",
                "key=ctrl-loud/loud-a ",
                "reconcile failed after ",
                "s: Invalid argument (-22) ",
                "method=PATCH ",
                "path=/api/v1/namespaces/ctrl-loud/configmaps/loud-a ",
                "status=422 ",
                "reason=Invalid ",
                "message=\"injected fault\"",
        };
        static const char *const any_failed[] = {"reconcile failed"};
        assert_int_equal(count_lines(e.warn_lines, failed_line, 9), 1);
        assert_int_equal(count_lines(e.warn_lines, any_failed, 1), 1);
        assert_true(e.applies >= 1);

        /* A terminal error too, with the read that caused it. */
        static const char *const terminal_line[] = {
                "controller=loud ",
                "key=ctrl-loud/loud-t ",
                "terminal error after ",
                "s: No such file or directory (-2) ",
                "method=GET ",
                "path=/api/v1/namespaces/ctrl-loud/configmaps/loud-missing ",
                "status=404 ",
                "reason=NotFound ",
                "message=\"configmaps \"loud-missing\" not found\"",
        };
        assert_int_equal(count_lines(e.warn_lines, terminal_line, 9), 1);
}

/* On kube-apiserver's RBAC: an operator whose Role lacks events.  Its Event
 * writes are -EACCES, said once at warn with the real server's answer. */
static koc_result rbac_reconcile(env *e, koc_reconcile_context *ctx) {
        const cJSON *obj = koc_reconcile_get_object(ctx);
        if (!obj)
                return koc_result_done();
        for (int i = 0; i < 3; i++) {
                int r = koc_reconcile_record_event(ctx, obj, "Normal", "RbacTest", "a test");
                pthread_mutex_lock(&e->lock);
                if (e->n_event_rc < (int)(sizeof e->event_rc / sizeof e->event_rc[0]))
                        e->event_rc[e->n_event_rc++] = r;
                pthread_mutex_unlock(&e->lock);
        }
        note(e, "events", "tried");
        return koc_result_done();
}

static const char *rbac_driver(env *e) {
        if (put_configmap(e->ns, "rbac-a", "{\"test\":\"rbac\"}", "1") != 201)
                return "create failed";
        return wait_seen(e, "events", "tried") ? NULL : "the reconcile did not run";
}

static void test_event_forbidden_by_rbac(void **state) {
        if (!api.real)
                skip(); /* koc-apiserver has no RBAC: test_failures_said_with_cause injects 403 */
        const char *ns = "ctrl-rbac";
        char path[256];
        ensure_namespace(ns);
        snprintf(path, sizeof path, "/apis/rbac.authorization.k8s.io/v1/namespaces/%s/roles", ns);
        long st = http("POST", path,
                       "{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"Role\","
                       "\"metadata\":{\"name\":\"no-events\"},\"rules\":[{\"apiGroups\":[\"\"],"
                       "\"resources\":[\"configmaps\"],\"verbs\":[\"get\",\"list\",\"watch\","
                       "\"create\",\"update\",\"patch\",\"delete\"]}]}",
                       NULL, NULL);
        assert_true(st == 201 || st == 409);
        snprintf(path, sizeof path,
                 "/apis/rbac.authorization.k8s.io/v1/namespaces/%s/rolebindings", ns);
        st = http("POST", path,
                  "{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"RoleBinding\","
                  "\"metadata\":{\"name\":\"no-events\"},\"roleRef\":{\"apiGroup\":"
                  "\"rbac.authorization.k8s.io\",\"kind\":\"Role\",\"name\":\"no-events\"},"
                  "\"subjects\":[{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"User\","
                  "\"name\":\"koc-user\"}]}",
                  NULL, NULL);
        assert_true(st == 201 || st == 409);

        env e = {.reconcile = rbac_reconcile, .driver = rbac_driver};
        koc_log_set_handler(loud_log, &e, NULL);
        run_case(&e, &(case_opts){.ns = ns,
                                  .name = "rbac",
                                  .label_selector = "test=rbac",
                                  .kubeconfig = api.user_kubeconfig});
        koc_log_set_handler(NULL, NULL, NULL);
        assert_int_equal(e.n_event_rc, 3);
        for (int i = 0; i < e.n_event_rc; i++)
                assert_int_equal(e.event_rc[i], -EACCES);
        static const char *const event_line[] = {
                "controller=rbac ",
                "event reason=RbacTest ",
                "ConfigMap ctrl-rbac/rbac-a ",
                "POST /apis/events.k8s.io/v1/namespaces/ctrl-rbac/events ",
                "status=403 ",
                "reason=Forbidden ",
                "User \"koc-user\" cannot create resource \"events\"",
        };
        static const char *const any_event[] = {"event reason=RbacTest "};
        assert_int_equal(count_lines(e.warn_lines, event_line, 7), 1);
        assert_int_equal(count_lines(e.warn_lines, any_event, 1), 1);
}

/* --- the finalizer helper on a changed object: a conflict, read again ---------- */

static koc_result stale_fin_reconcile(env *e, koc_reconcile_context *ctx) {
        if (!koc_reconcile_get_object(ctx))
                return koc_result_done();
        pthread_mutex_lock(&e->lock);
        int attempt = ++e->attempts;
        pthread_mutex_unlock(&e->lock);
        if (attempt == 1) {
                /* The object changes after the reconcile's snapshot was taken. */
                koc_response *resp = NULL;
                cJSON *p = cJSON_Parse("{\"metadata\":{\"annotations\":{\"touched\":\"yes\"}}}");
                int r = koc_reconcile_patch(ctx, &configmaps, koc_reconcile_get_namespace(ctx),
                                            koc_reconcile_get_name(ctx), KOC_PATCH_MERGE, p, &resp);
                cJSON_Delete(p);
                if (r < 0 || resp->status != 200)
                        note(e, "patch", "failed");
                koc_response_free(resp);
        }
        koc_result res = koc_reconcile_finalizer(ctx, "koc.test/stale", fin_apply, NULL, e);
        koc_error err = {0};
        pthread_mutex_lock(&e->lock);
        if (res.type == KOC_RESULT_ERROR && e->n_fin_rc < 4) {
                e->fin_rc[e->n_fin_rc++] = res.error;
                if (koc_reconcile_get_last_error(ctx, &err) == res.error)
                        snprintf(e->last_error, sizeof e->last_error, "%s", err.message);
        }
        pthread_mutex_unlock(&e->lock);
        return res;
}

static const char *stale_fin_driver(env *e) {
        if (put_configmap(e->ns, "stale-a", "{\"test\":\"stale\"}", "1") != 201)
                return "create failed";
        if (!wait_seen(e, "apply", "ok"))
                return "the finalizer was never added";
        if (seen_has(e, "patch failed"))
                return "the first patch failed";
        long st;
        cJSON *cm = get_configmap(e->ns, "stale-a", &st);
        bool has = st == 200 && koc_object_has_finalizer(cm, "koc.test/stale");
        cJSON_Delete(cm);
        return has ? NULL : "the finalizer is not on the server";
}

static void test_finalizer_on_changed_object_conflicts(void **state) {
        env e = {.reconcile = stale_fin_reconcile, .driver = stale_fin_driver};
        run_case(&e, &(case_opts){.ns = "ctrl-stale",
                                  .name = "stale",
                                  .label_selector = "test=stale"});
        /* A conflict (-EBUSY, read again), not 422 Invalid (-EINVAL). */
        assert_int_equal(e.n_fin_rc, 1);
        assert_int_equal(e.fin_rc[0], -EBUSY);
        assert_non_null(strstr(e.last_error, "PATCH /api/v1/namespaces/ctrl-stale/configmaps/"
                                             "stale-a: 409 Conflict: "));
        assert_true(e.attempts >= 2);
}

/* --- 410 on the watch forces a re-list ------------------------------------------- */

static const char *gone_driver(env *e) {
        if (!wait_seen(e, "ctrl-gone/gone-a", "1"))
                return "the object from before the 410 was not reconciled";
        if (put_configmap(e->ns, "gone-b", "{\"test\":\"gone\"}", "1") != 201)
                return "create failed";
        if (!wait_seen(e, "ctrl-gone/gone-b", "1"))
                return "a change after the re-list was not reconciled";
        return NULL;
}

static void gone_setup(env *e) {
        /* The first watch after the initial list is answered 410. */
        int r = koc_test_apiserver_fault(
                &api, "{\"resource\":\"configmaps\",\"verb\":\"watch\",\"error_code\":410,"
                      "\"count\":1}");
        assert_int_equal(r, 200);
}

static void gone_after(env *e) {
        koc_reflector_stats st;
        koc__informer_get_stats(e->c->primary, &st);
        e->relists_gone = st.relists_gone;
        e->lists = st.lists;
}

static void test_gone_relists(void **state) {
        /* Fault injection (or koc-apiserver's flags and metrics). */
        KOC_TEST_NEEDS_KOC_APISERVER(&api);
        ensure_namespace("ctrl-gone");
        assert_int_equal(put_configmap("ctrl-gone", "gone-a", "{\"test\":\"gone\"}", "1"), 201);
        env e = {.reconcile = crud_reconcile, .driver = gone_driver};
        run_case(&e, &(case_opts){.ns = "ctrl-gone",
                                  .name = "gone",
                                  .label_selector = "test=gone",
                                  /* a watch after a list: the streaming list's own
                                   * 410 is test-informer-hostile's */
                                  .list_mode = KOC_LIST_PAGES,
                                  .setup = gone_setup,
                                  .after = gone_after});
        koc_test_apiserver_clear_faults(&api);
        /* The 410 made the reflector list again. */
        assert_true(e.relists_gone >= 1);
        assert_true(e.lists >= 2);
}

/* --- a watch that ends is resumed, not re-listed ------------------------------- */

#define WATCHES_METRIC "apiserver_request_total{verb=\"WATCH\",resource=\"configmaps\""

static double watches_before;

static bool second_watch(env *e, const void *arg) {
        return koc_test_apiserver_metric(&api, WATCHES_METRIC) >= watches_before + 2;
}

static const char *resume_driver(env *e) {
        if (put_configmap(e->ns, "resume-a", "{\"test\":\"resume\"}", "1") != 201)
                return "create failed";
        if (!wait_seen(e, "ctrl-resume/resume-a", "1"))
                return "the first object was not reconciled";
        /* The first watch ends (cleanly, as a server-side timeout would);
         * once the second one is open, a new object must arrive on it. */
        if (!wait_until(e, second_watch, NULL))
                return "the watch was not started again";
        if (put_configmap(e->ns, "resume-b", "{\"test\":\"resume\"}", "1") != 201)
                return "create failed";
        if (!wait_seen(e, "ctrl-resume/resume-b", "1"))
                return "a change after the watch ended was not reconciled";
        return NULL;
}

static void resume_setup(env *e) {
        watches_before = koc_test_apiserver_metric(&api, WATCHES_METRIC);
        assert_true(watches_before >= 0);
        int r = koc_test_apiserver_fault(&api, "{\"resource\":\"configmaps\",\"verb\":\"watch\","
                                               "\"watch_close_after_ms\":1500,\"count\":1}");
        assert_int_equal(r, 200);
}

static void resume_after(env *e) {
        koc_reflector_stats st;
        koc__informer_get_stats(e->c->primary, &st);
        e->lists = st.lists;
        e->watches = st.watches;
}

static void test_watch_resumed(void **state) {
        /* Fault injection (or koc-apiserver's flags and metrics). */
        KOC_TEST_NEEDS_KOC_APISERVER(&api);
        env e = {.reconcile = crud_reconcile, .driver = resume_driver};
        run_case(&e, &(case_opts){.ns = "ctrl-resume",
                                  .name = "resume",
                                  .label_selector = "test=resume",
                                  .setup = resume_setup,
                                  .after = resume_after});
        koc_test_apiserver_clear_faults(&api);
        /* Resumed from the last resourceVersion: one list, two watches. */
        assert_int_equal(e.lists, 1);
        assert_true(e.watches >= 2);
}

/* --- a watch resumed past the server's history gets 410 and re-lists ---------- */

static const char *expired_driver(env *e) {
        char name[64];
        if (!wait_seen(e, "ctrl-expired/expired-a", "1"))
                return "the listed object was not reconciled";
        /* The watch is held back by the server; meanwhile more changes than
         * its history keeps go by, none of them selected, so the watch's
         * resourceVersion falls out of the window. */
        for (int i = 0; i < 10; i++) {
                snprintf(name, sizeof name, "expired-other-%d", i);
                if (put_configmap(e->ns, name, "{\"test\":\"unrelated\"}", "1") != 201)
                        return "create failed";
        }
        if (put_configmap(e->ns, "expired-b", "{\"test\":\"expired\"}", "1") != 201)
                return "create failed";
        /* Released, the watch starts from a resourceVersion that is too old. */
        if (koc_test_apiserver_clear_faults(srv) != 200)
                return "cannot clear the faults";
        if (!wait_seen(e, "ctrl-expired/expired-b", "1"))
                return "the object created meanwhile was not reconciled";
        return NULL;
}

static void expired_setup(env *e) {
        assert_int_equal(
                koc_test_apiserver_fault(
                        srv, "{\"resource\":\"configmaps\",\"verb\":\"watch\",\"hang\":true}"),
                200);
}

static void test_expired_resource_version_relists(void **state) {
        koc_test_apiserver small;
        /* Fault injection (or koc-apiserver's flags and metrics). */
        KOC_TEST_NEEDS_KOC_APISERVER(&api);
        assert_int_equal(koc_test_apiserver_start(&small, "--history 3 --bookmark-interval 0"), 0);
        srv = &small;
        ensure_namespace("ctrl-expired");
        assert_int_equal(put_configmap("ctrl-expired", "expired-a", "{\"test\":\"expired\"}", "1"),
                         201);
        env e = {.reconcile = crud_reconcile, .driver = expired_driver};
        run_case(&e, &(case_opts){.ns = "ctrl-expired",
                                  .name = "expired",
                                  .label_selector = "test=expired",
                                  .setup = expired_setup,
                                  .after = gone_after});
        srv = &api;
        koc_test_apiserver_stop(&small);
        assert_true(e.relists_gone >= 1);
        assert_true(e.lists >= 2);
}

/* --- writes are fenced once leadership may be lost ------------------------------- */

static koc_result fence_reconcile(env *e, koc_reconcile_context *ctx) {
        if (!koc_reconcile_get_object(ctx))
                return koc_result_done();
        pthread_mutex_lock(&e->lock);
        /* Only the first run writes: once the fault is cleared this replica
         * may lead again and reconcile the key once more. */
        if (e->in_reconcile) {
                pthread_mutex_unlock(&e->lock);
                return koc_result_done();
        }
        e->in_reconcile = true;
        pthread_cond_broadcast(&e->cond);
        while (!e->release)
                pthread_cond_wait(&e->cond, &e->lock);
        e->cancelled_seen = koc_reconcile_is_cancelled(ctx);
        pthread_mutex_unlock(&e->lock);
        cJSON *p = cJSON_Parse("{\"data\":{\"v\":\"written-after-loss\"}}");
        koc_response *resp = NULL;
        int r = koc_reconcile_patch(ctx, &configmaps, koc_reconcile_get_namespace(ctx),
                                    koc_reconcile_get_name(ctx), KOC_PATCH_MERGE, p, &resp);
        cJSON_Delete(p);
        koc_response_free(resp);
        pthread_mutex_lock(&e->lock);
        e->fenced = r;
        pthread_mutex_unlock(&e->lock);
        note(e, "fence", r == -ENOLCK ? "refused" : "sent");
        return koc_result_done();
}

static bool not_leader(env *e, const void *arg) {
        return !koc_manager_is_leader(e->m);
}

static const char *fence_driver(env *e) {
        if (put_configmap(e->ns, "fence-a", "{\"test\":\"fence\"}", "1") != 201)
                return "create failed";
        if (!wait_until(e, in_reconcile, NULL))
                return "the reconcile did not start";
        /* Every renewal fails from now on: leadership ends at the renew
         * deadline while the reconcile still runs. */
        if (koc_test_apiserver_fault(&api, "{\"resource\":\"leases\",\"verb\":\"update\","
                                           "\"error_code\":503}") != 200)
                return "cannot add the fault";
        if (!wait_until(e, not_leader, NULL))
                return "leadership did not end";
        pthread_mutex_lock(&e->lock);
        e->release = true;
        pthread_cond_broadcast(&e->cond);
        pthread_mutex_unlock(&e->lock);
        if (!wait_seen(e, "fence", "refused"))
                return "the write after the loss was not refused";
        koc_test_apiserver_clear_faults(&api);
        return NULL;
}

static void test_write_fenced_after_loss(void **state) {
        /* Fault injection (or koc-apiserver's flags and metrics). */
        KOC_TEST_NEEDS_KOC_APISERVER(&api);
        env e = {.reconcile = fence_reconcile, .driver = fence_driver};
        run_case(&e, &(case_opts){.ns = "ctrl-fence",
                                  .name = "fence",
                                  .label_selector = "test=fence",
                                  .leader_elect = true});
        koc_test_apiserver_clear_faults(&api);
        assert_int_equal(e.fenced, -ENOLCK);
        assert_true(e.cancelled_seen);
        long st;
        cJSON *cm = get_configmap("ctrl-fence", "fence-a", &st);
        assert_int_equal(st, 200);
        assert_string_equal(data_value(cm), "1");
        cJSON_Delete(cm);
}

/* --- bad options are refused with a message naming them ------------------------- */

static void test_bad_options(void **state) {
        koc_manager_config cfg;
        koc_error err = {0};
        koc_manager *m = NULL;
        koc_controller *c = NULL;

        koc_manager_config_init(&cfg);
        cfg.kubeconfig = api.kubeconfig;
        cfg.leader_elect = false;
        cfg.health_probe_bind_address = "0";
        cfg.metrics_bind_address = "0";
        cfg.handle_signals = false;
        assert_int_equal(koc_manager_new(NULL, &cfg, &m, &err), 0);

        koc_controller_options o;
        koc_controller_options_init(&o);
        o.name = "Bad_Name";
        o.resource = configmaps;
        o.reconcile = on_reconcile;
        assert_int_equal(koc_controller_new(m, &o, &c, &err), -EINVAL);
        assert_non_null(strstr(err.message, "Bad_Name"));
        o.name = "ok";
        o.label_selector = "a in b";
        assert_int_equal(koc_controller_new(m, &o, &c, &err), -EINVAL);
        assert_string_equal(err.message,
                            "controller ok: label selector \"a in b\": cannot parse \"a in b\"");
        o.label_selector = NULL;
        o.reconcile = NULL;
        assert_int_equal(koc_controller_new(m, &o, &c, &err), -EINVAL);
        assert_non_null(strstr(err.message, "reconcile"));
        o.reconcile = on_reconcile;
        o.resource.kind = NULL;
        assert_int_equal(koc_controller_new(m, &o, &c, &err), -EINVAL);
        assert_non_null(strstr(err.message, "kind"));
        o.resource = configmaps;
        assert_int_equal(koc_controller_new(m, &o, &c, &err), 0);
        koc_controller *c2 = NULL;
        assert_int_equal(koc_controller_new(m, &o, &c2, &err), -EEXIST);
        assert_non_null(strstr(err.message, "\"ok\""));
        koc_controller_unref(c);
        koc_manager_unref(m);
}

/* --- names never change a request's path ------------------------------------------- */

/* Names as an annotation or a spec field could carry them: each would reach
 * another object (or another namespace) if it became part of a path as it
 * is.  Every write with one must return -EINVAL and send nothing. */
static const char *const hostile_names[] = {
        "coredns?x=", "a/b", "..", "%2e%2e", "kube-system/configmaps/coredns", ".", "",
        "coredns#x", "a b", "coredns\r\nX-Evil: 1",
};
static const char *const hostile_namespaces[] = {
        "kube-system/configmaps/coredns?x=", "..", "%2e%2e", "kube-system/", "Kube-System",
};

/* Requests koc-apiserver answered that could touch an object: every write,
 * and the reads of ConfigMaps and Events (-1 on the real server). */
static double hostile_requests(void) {
        if (srv->real)
                return -1;
        static const char *const prefixes[] = {
                "apiserver_request_total{verb=\"POST\"",
                "apiserver_request_total{verb=\"PUT\"",
                "apiserver_request_total{verb=\"PATCH\"",
                "apiserver_request_total{verb=\"DELETE\"",
                "apiserver_request_total{verb=\"GET\",resource=\"configmaps\"",
        };
        double sum = 0;
        for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
                double v = koc_test_apiserver_metric(srv, prefixes[i]);
                sum += v > 0 ? v : 0;
        }
        return sum;
}

static cJSON *hostile_object(const char *ns, const char *name) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "apiVersion", "v1");
        cJSON_AddStringToObject(o, "kind", "ConfigMap");
        cJSON *md = cJSON_AddObjectToObject(o, "metadata");
        cJSON_AddStringToObject(md, "name", name);
        cJSON_AddStringToObject(md, "namespace", ns);
        cJSON_AddStringToObject(md, "resourceVersion", "1");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "data"), "v", "hijacked");
        return o;
}

/* Each kind of call with (ns, name); counts -EINVAL in e->attempts and any
 * other outcome in e->conflicts. */
static void hostile_calls(env *e, koc_reconcile_context *ctx, const char *ns, const char *name,
                          const cJSON *real_object) {
        cJSON *obj = hostile_object(ns, name);
        cJSON *patch = cJSON_Parse("{\"data\":{\"v\":\"hijacked\"}}");
        cJSON *opts = cJSON_Parse("{\"preconditions\":{\"resourceVersion\":\"1\"}}");
        cJSON *ev_obj = cJSON_Duplicate(real_object, true);
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(ev_obj, "metadata"), "namespace",
                                  cJSON_CreateString(ns));
        /* A create and an Event name only the namespace in their path: they
         * are tried with hostile namespaces only. */
        bool ns_ok = strcmp(ns, e->ns) == 0 || strcmp(ns, "kube-system") == 0;
        int r[9];
        koc_response *resp[8] = {0};
        size_t n = ns_ok ? 7 : 9;
        r[0] = koc_reconcile_delete(ctx, &configmaps, ns, name, &resp[0]);
        r[1] = koc_reconcile_patch(ctx, &configmaps, ns, name, KOC_PATCH_MERGE, patch, &resp[1]);
        r[2] = koc_reconcile_update(ctx, &configmaps, obj, &resp[2]);
        r[3] = koc_reconcile_update_status(ctx, &configmaps, obj, &resp[3]);
        r[4] = koc_reconcile_apply(ctx, &configmaps, obj, "hostile", KOC_APPLY_FORCE, &resp[4]);
        r[5] = koc_reconcile_delete_with_options(ctx, &configmaps, ns, name, opts, &resp[5]);
        r[6] = koc_reconcile_get(ctx, &configmaps, ns, name, &resp[6]);
        if (!ns_ok) {
                r[7] = koc_reconcile_create(ctx, &configmaps, ns, obj, &resp[7]);
                r[8] = koc_reconcile_record_event(ctx, ev_obj, "Warning", "Hostile", "x");
        }
        for (size_t i = 0; i < n; i++) {
                pthread_mutex_lock(&e->lock);
                if (r[i] == -EINVAL)
                        e->attempts++;
                else {
                        e->conflicts++;
                        fprintf(stderr, "hostile ns=\"%s\" name=\"%s\" call %zu: %d\n", ns, name,
                                i, r[i]);
                }
                pthread_mutex_unlock(&e->lock);
        }
        for (size_t i = 0; i < 8; i++)
                koc_response_free(resp[i]);
        cJSON_Delete(obj);
        cJSON_Delete(patch);
        cJSON_Delete(opts);
        cJSON_Delete(ev_obj);
}

static koc_result hostile_reconcile(env *e, koc_reconcile_context *ctx) {
        const cJSON *obj = koc_reconcile_get_object(ctx);
        if (!obj || e->cleanups++ > 0)
                return koc_result_done();
        double before = hostile_requests();
        for (size_t i = 0; i < sizeof hostile_names / sizeof *hostile_names; i++) {
                hostile_calls(e, ctx, e->ns, hostile_names[i], obj);
                hostile_calls(e, ctx, "kube-system", hostile_names[i], obj);
        }
        for (size_t i = 0; i < sizeof hostile_namespaces / sizeof *hostile_namespaces; i++)
                hostile_calls(e, ctx, hostile_namespaces[i], "coredns", obj);
        /* A namespaced object without a namespace would name the collection
         * of every namespace. */
        koc_response *none = NULL;
        int r0 = koc_reconcile_delete(ctx, &configmaps, "", "coredns", &none);
        int r1 = koc_reconcile_get(ctx, &configmaps, NULL, "coredns", &none);
        pthread_mutex_lock(&e->lock);
        e->attempts += (r0 == -EINVAL) + (r1 == -EINVAL);
        pthread_mutex_unlock(&e->lock);
        double after = hostile_requests();
        pthread_mutex_lock(&e->lock);
        e->fenced = before < 0 ? 0 : (int)(after - before);
        pthread_mutex_unlock(&e->lock);
        /* An ordinary write still goes out. */
        koc_response *resp = NULL;
        cJSON *patch = cJSON_Parse("{\"data\":{\"v\":\"checked\"}}");
        int r = koc_reconcile_patch(ctx, &configmaps, e->ns, "hostile-a", KOC_PATCH_MERGE, patch,
                                    &resp);
        cJSON_Delete(patch);
        note(e, "hostile", r == 0 && resp->status == 200 ? "done" : "the plain write failed");
        koc_response_free(resp);
        return koc_result_done();
}

static char hostile_rv_before[64];

static const char *coredns_rv(char *buf, size_t size) {
        long st;
        cJSON *cm = get_configmap("kube-system", "coredns", &st);
        const char *rv = cJSON_GetStringValue(
                cJSON_GetObjectItem(cJSON_GetObjectItem(cm, "metadata"), "resourceVersion"));
        snprintf(buf, size, "%s", st == 200 && rv ? rv : "(none)");
        cJSON_Delete(cm);
        return buf;
}

static const char *hostile_driver(env *e) {
        ensure_namespace("kube-system");
        long st = put_configmap("kube-system", "coredns", "{\"test\":\"other\"}", "original");
        if (st != 201 && st != 409)
                return "cannot create kube-system/coredns";
        coredns_rv(hostile_rv_before, sizeof hostile_rv_before);
        if (put_configmap(e->ns, "coredns", "{\"test\":\"other\"}", "original") != 201 ||
            put_configmap(e->ns, "hostile-a", "{\"test\":\"hostile\"}", "1") != 201)
                return "create failed";
        if (!wait_seen(e, "hostile", "done"))
                return "the reconcile did not finish, or its plain write failed";
        return NULL;
}

static void test_hostile_names_send_nothing(void **state) {
        env e = {.reconcile = hostile_reconcile, .driver = hostile_driver};
        run_case(&e, &(case_opts){.ns = "ctrl-hostile",
                                  .name = "hostile",
                                  .label_selector = "test=hostile"});
        size_t n_names = sizeof hostile_names / sizeof *hostile_names;
        size_t n_ns = sizeof hostile_namespaces / sizeof *hostile_namespaces;
        /* Per name: 7 calls in the test's namespace and 7 in kube-system; 9
         * per hostile namespace; 2 without a namespace. */
        assert_int_equal(e.conflicts, 0);
        assert_int_equal(e.attempts, (int)(n_names * (7 + 7) + n_ns * 9 + 2));
        /* Nothing reached the server (koc-apiserver counts what it answers). */
        assert_int_equal(e.fenced, 0);
        /* And what the names aimed at is untouched. */
        char rv[64];
        assert_string_equal(coredns_rv(rv, sizeof rv), hostile_rv_before);
        long st;
        cJSON *cm = get_configmap("ctrl-hostile", "coredns", &st);
        assert_int_equal(st, 200);
        assert_string_equal(data_value(cm), "original");
        cJSON_Delete(cm);
        cm = get_configmap("kube-system", "coredns", &st);
        assert_int_equal(st, 200);
        assert_string_equal(data_value(cm), "original");
        cJSON_Delete(cm);
}

static int setup(void **state) {
        signal(SIGPIPE, SIG_IGN);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        return koc_test_apiserver_start(&api, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state) {
        koc_test_apiserver_stop(&api);
        curl_global_cleanup();
        return 0;
}

int main(void) {
        /* tests/k8s: the streaming-list case alone, on a server with the
         * WatchList gate off. */
        if (getenv("KOC_TEST_WATCHLIST_OFF"))
                cmocka_set_test_filter("test_streaming_list");
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bad_options),
                cmocka_unit_test(test_create_update_delete),
                cmocka_unit_test(test_owns_and_watches),
                cmocka_unit_test(test_resync),
                cmocka_unit_test(test_paginated_list),
                cmocka_unit_test(test_events_recorded_and_limited),
                cmocka_unit_test(test_event_series_finish_and_refill),
                cmocka_unit_test(test_event_core_fallback),
                cmocka_unit_test(test_conflict_retried),
                cmocka_unit_test(test_drain_waits_for_reconcile),
                cmocka_unit_test(test_reconcile_timeout),
                cmocka_unit_test(test_failures_said_with_cause),
                cmocka_unit_test(test_finalizer_on_changed_object_conflicts),
                cmocka_unit_test(test_event_forbidden_by_rbac),
                cmocka_unit_test(test_server_side_apply),
                cmocka_unit_test(test_streaming_list),
                cmocka_unit_test(test_streaming_list_fallback),
                cmocka_unit_test(test_metadata_only),
                cmocka_unit_test(test_finalizer_cleanup_once),
                cmocka_unit_test(test_gone_relists),
                cmocka_unit_test(test_watch_resumed),
                cmocka_unit_test(test_expired_resource_version_relists),
                cmocka_unit_test(test_write_fenced_after_loss),
                cmocka_unit_test(test_hostile_names_send_nothing),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

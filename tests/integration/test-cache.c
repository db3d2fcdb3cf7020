/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cache as state of a manager (framework/cache, koc/cache.h), against
 * koc-apiserver over HTTPS: two managers in one process keep two caches that
 * share no informer and no controller name.
 *
 * The managers share one sd-event loop, which the test runs itself: informers
 * start listing when they are made, so no manager needs to run.  Every wait is
 * bounded in time and in loop iterations.
 *
 * And every cached type is readable (koc_cache_ref_object, _list,
 * _list_index): a reconciler of ConfigMaps that owns Secrets finds its child
 * in the cache without a GET (koc-apiserver's request counter), lists by
 * label, reads an index, and reads a type the program asked the cache to
 * keep.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "framework/cache/cache-internal.h"
#include "framework/controller/controller-internal.h"
#include "harness/apiserver.h"
#include "koc/cache.h"
#include "koc/controller.h"
#include "koc/manager.h"
#include "koc/time.h"

static koc_test_apiserver api;

static const koc_resource configmaps = {
        .version = "v1", .resource = "configmaps", .kind = "ConfigMap", .namespaced = true};

static long http(const char *method, const char *path, const char *body, char **ret) {
        return koc_test_apiserver_http(&api, method, path, body, NULL, ret);
}

static void ensure_namespace(const char *ns) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\"}}",
                 ns);
        long st = http("POST", "/api/v1/namespaces", body, NULL);
        assert_true(st == 201 || st == 409);
}

static void put_configmap(const char *ns, const char *name, const char *labels) {
        char path[256], body[1024];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps", ns);
        snprintf(body, sizeof body,
                 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\","
                 "\"labels\":%s},\"data\":{\"v\":\"1\"}}",
                 name, labels ? labels : "{}");
        assert_int_equal(http("POST", path, body, NULL), 201);
}

static koc_result reconcile_nothing(koc_reconcile_context *ctx, void *userdata) {
        return koc_result_done();
}

static koc_manager *manager_new(sd_event *event) {
        koc_manager_config cfg;
        koc_error err = {0};
        koc_manager_config_init(&cfg);
        cfg.kubeconfig = api.kubeconfig;
        cfg.leader_elect = false;
        cfg.health_probe_bind_address = "0";
        cfg.metrics_bind_address = "0";
        cfg.handle_signals = false;
        koc_manager *m = NULL;
        if (koc_manager_new(event, &cfg, &m, &err) < 0)
                fail_msg("manager: %s", err.message);
        return m;
}

static int controller_new(koc_manager *m, const char *name, const char *ns, koc_controller **ret,
                          koc_error *err) {
        koc_controller_options o;
        koc_controller_options_init(&o);
        o.name = name;
        o.resource = configmaps;
        o.namespace_ = ns;
        o.reconcile = reconcile_nothing;
        return koc_controller_new(m, &o, ret, err);
}

/* Runs the loop until pred holds: at most 30 s and 3000 iterations. */
static bool run_until(sd_event *event, bool (*pred)(void *), void *arg) {
        uint64_t deadline = koc_now_boottime_usec() + 30 * KOC_USEC_PER_SEC;
        for (int i = 0; i < 3000 && !pred(arg) && koc_now_boottime_usec() < deadline; i++)
                (void)sd_event_run(event, 10 * KOC_USEC_PER_MSEC);
        return pred(arg);
}

static bool both_synced(void *arg) {
        koc_controller **c = arg;
        return koc_controller_has_synced(c[0]) && koc_controller_has_synced(c[1]);
}

/* Two managers, one controller each, of the same name, on the same resource
 * and namespace: both are accepted, each manager's cache holds an informer
 * of its own that lists the objects, and a second controller of that name on
 * one manager is refused while its first lives, accepted after. */
static void test_two_managers_side_by_side(void **state) {
        const char *ns = "cache-two";
        ensure_namespace(ns);
        put_configmap(ns, "one", NULL);

        sd_event *event = NULL;
        assert_int_equal(sd_event_new(&event), 0);
        koc_manager *m[2] = {manager_new(event), manager_new(event)};
        koc_cache *cache[2] = {koc_manager_get_cache(m[0]), koc_manager_get_cache(m[1])};
        assert_non_null(cache[0]);
        assert_non_null(cache[1]);
        assert_ptr_not_equal(cache[0], cache[1]);

        koc_controller *c[2] = {NULL, NULL};
        koc_error err = {0};
        for (int i = 0; i < 2; i++)
                if (controller_new(m[i], "same", ns, &c[i], &err) < 0)
                        fail_msg("controller %d: %s", i, err.message);
        /* One informer in each registry, not one shared. */
        for (int i = 0; i < 2; i++)
                assert_int_equal(koc__cache_count_informers(cache[i]), 1);
        assert_ptr_equal(c[0]->primary, cache[0]->informers);
        assert_ptr_equal(c[1]->primary, cache[1]->informers);

        assert_true(run_until(event, both_synced, c));
        for (int i = 0; i < 2; i++) {
                koc_object *o = koc_controller_ref_object(c[i], ns, "one");
                assert_non_null(o);
                koc_object_unref(o);
        }

        /* Names are unique per manager. */
        koc_controller *dup = NULL;
        assert_int_equal(controller_new(m[0], "same", ns, &dup, &err), -EEXIST);
        assert_null(dup);
        c[0] = koc_controller_unref(c[0]);
        assert_int_equal(koc__cache_count_informers(cache[0]), 0);
        assert_int_equal(koc__cache_count_informers(cache[1]), 1);
        assert_int_equal(controller_new(m[0], "same", ns, &c[0], &err), 0);

        for (int i = 0; i < 2; i++) {
                koc_controller_unref(c[i]);
                koc_manager_unref(m[i]);
        }
        (void)sd_event_run(event, 0);
        sd_event_unref(event);
}


/* --- every cached type readable ---------------------------------------------- */

static const koc_resource secrets = {
        .version = "v1", .resource = "secrets", .kind = "Secret", .namespaced = true};
static const koc_resource serviceaccounts = {.version = "v1",
                                             .resource = "serviceaccounts",
                                             .kind = "ServiceAccount",
                                             .namespaced = true};
static const koc_resource deployments = {.group = "apps", .version = "v1",
                                         .resource = "deployments", .kind = "Deployment",
                                         .namespaced = true};

typedef struct reads {
        pthread_mutex_t lock;
        koc_manager *m;
        int wake_fd;
        int creates;      /* children created after -ENOENT */
        int found;        /* reconciles that found the child in the cache */
        int list_n;       /* koc_cache_list of the children with the label */
        int index_n;      /* koc_cache_list_index of the parents */
        int kept_rc;      /* koc_cache_ref_object of the kept type */
        int unkept_rc;    /* of a type nobody keeps */
        const char *ns;
        bool rv_match;    /* the cached copy is the write's answer */
        char failure[256];
} reads;

static int index_by_v(const cJSON *obj, koc_index_values *out, void *userdata) {
        const char *v =
                cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(obj, "data"), "v"));
        return v ? koc_index_values_add(out, v) : 0;
}

static koc_result reconcile_reads(koc_reconcile_context *ctx, void *userdata) {
        reads *rd = userdata;
        const cJSON *parent = koc_reconcile_get_object(ctx);
        if (!parent)
                return koc_result_done();
        koc_cache *cache = koc_reconcile_get_cache(ctx);
        const char *ns = koc_reconcile_get_namespace(ctx);
        char child[300];
        snprintf(child, sizeof child, "%s-child", koc_reconcile_get_name(ctx));
        koc_object *o = NULL;
        int r = koc_cache_ref_object(cache, &secrets, ns, child, &o);
        if (r == -ENOENT) {
                cJSON *s = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"Secret\","
                                       "\"metadata\":{\"labels\":{\"role\":\"child\"}}}");
                cJSON_AddStringToObject(cJSON_GetObjectItem(s, "metadata"), "name", child);
                koc_object_set_controller_reference(s, parent, "v1", "ConfigMap");
                koc_response *resp = NULL;
                r = koc_reconcile_create(ctx, &secrets, ns, s, &resp);
                cJSON_Delete(s);
                koc_response_free(resp);
                pthread_mutex_lock(&rd->lock);
                rd->creates++;
                pthread_mutex_unlock(&rd->lock);
                return r < 0 ? koc_result_error(r) : koc_result_done();
        }
        if (r < 0) {
                pthread_mutex_lock(&rd->lock);
                snprintf(rd->failure, sizeof rd->failure, "ref_object: %d", r);
                pthread_mutex_unlock(&rd->lock);
                return koc_result_terminal(r);
        }
        koc_object_unref(o);
        koc_object **list = NULL;
        size_t n = 0, n_index = 0;
        int lr = koc_cache_list(cache, &secrets, ns, "role=child", &list, &n);
        koc_object_list_free(list, n);
        int ir = koc_cache_list_index(cache, &configmaps, "by-v", "parent", &list, &n_index);
        koc_object_list_free(list, n_index);
        int kept = koc_cache_ref_object(cache, &serviceaccounts, ns, "default-sa", &o);
        koc_object_unref(kept == 0 ? o : NULL);
        int unkept = koc_cache_ref_object(cache, &deployments, ns, "web", &o);
        pthread_mutex_lock(&rd->lock);
        rd->found++;
        rd->list_n = lr < 0 ? lr : (int)n;
        rd->index_n = ir < 0 ? ir : (int)n_index;
        rd->kept_rc = kept;
        rd->unkept_rc = unkept;
        pthread_mutex_unlock(&rd->lock);
        return koc_result_done();
}

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        reads *rd = userdata;
        uint64_t n;
        (void)!read(fd, &n, sizeof n);
        (void)koc_manager_shutdown(rd->m);
        return 0;
}

static void *driver(void *p) {
        reads *rd = p;
        const char *ns = rd->ns;
        /* Two parents with data.v=parent, one ConfigMap the controller's
         * selector leaves out. */
        char path[256], body[512];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps", ns);
        for (int i = 0; i < (strcmp(ns, "cache-reads") == 0 ? 2 : 1); i++) {
                snprintf(body, sizeof body,
                         "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
                         "\"name\":\"p%d\",\"labels\":{\"role\":\"parent\"}},"
                         "\"data\":{\"v\":\"parent\"}}",
                         i);
                (void)http("POST", path, body, NULL);
        }
        uint64_t deadline = koc_now_boottime_usec() + 30 * KOC_USEC_PER_SEC;
        for (int i = 0; i < 3000 && koc_now_boottime_usec() < deadline; i++) {
                pthread_mutex_lock(&rd->lock);
                bool done = rd->found >= (strcmp(ns, "cache-reads") == 0 ? 2 : 1) ||
                            rd->failure[0];
                pthread_mutex_unlock(&rd->lock);
                if (done)
                        break;
                usleep(10 * 1000);
        }
        uint64_t one = 1;
        (void)!write(rd->wake_fd, &one, sizeof one);
        return NULL;
}

static void test_every_cached_type_readable(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&api);
        const char *ns = "cache-reads";
        ensure_namespace(ns);
        char path[256];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/serviceaccounts", ns);
        assert_int_equal(http("POST", path,
                              "{\"apiVersion\":\"v1\",\"kind\":\"ServiceAccount\","
                              "\"metadata\":{\"name\":\"default-sa\"}}",
                              NULL),
                         201);

        reads rd = {.lock = PTHREAD_MUTEX_INITIALIZER, .kept_rc = 1, .unkept_rc = 1, .ns = ns};
        rd.m = manager_new(NULL);
        koc_cache *cache = koc_manager_get_cache(rd.m);
        koc_error err = {0};
        assert_int_equal(koc_cache_add_informer(cache, &serviceaccounts, ns, NULL, &err), 0);
        /* Refused: no plural. */
        assert_int_equal(koc_cache_add_informer(cache, &(koc_resource){.version = "v1"}, ns,
                                                NULL, &err),
                         -EINVAL);

        koc_controller_options o;
        koc_controller_options_init(&o);
        o.name = "reads";
        o.resource = configmaps;
        o.namespace_ = ns;
        o.label_selector = "role=parent";
        o.reconcile = reconcile_reads;
        o.userdata = &rd;
        koc_controller *c = NULL;
        if (koc_controller_new(rd.m, &o, &c, &err) < 0)
                fail_msg("controller: %s", err.message);
        assert_int_equal(koc_controller_add_index(c, "by-v", index_by_v, NULL, NULL), 0);
        if (koc_controller_owns(c, &secrets, &err) < 0)
                fail_msg("owns: %s", err.message);

        double gets_before = koc_test_apiserver_metric(
                &api, "apiserver_request_total{verb=\"GET\",resource=\"secrets\"");
        rd.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(rd.wake_fd >= 0);
        sd_event_source *wake = NULL;
        assert_int_equal(sd_event_add_io(koc_manager_get_event(rd.m), &wake, rd.wake_fd, EPOLLIN,
                                         on_wake, &rd),
                         0);
        pthread_t t;
        pthread_create(&t, NULL, driver, &rd);
        (void)koc_manager_run(rd.m);
        pthread_join(t, NULL);
        sd_event_source_disable_unref(wake);
        close(rd.wake_fd);

        /* Outside the reconcile, on this thread, the same reads. */
        koc_object *child = NULL;
        assert_int_equal(koc_cache_ref_object(cache, &secrets, ns, "p0-child", &child), 0);
        assert_string_equal(koc_object_get_name(child), "p0-child");
        koc_object_unref(child);
        assert_int_equal(koc_cache_ref_object(cache, &secrets, ns, "nope", &child), -ENOENT);
        assert_int_equal(koc_cache_ref_object(cache, &secrets, "other-ns", "p0-child", &child),
                         -ENXIO);
        assert_int_equal(koc_cache_list_index(cache, &configmaps, "no-such-index", "x",
                                              &(koc_object **){NULL}, &(size_t){0}),
                         -ENOENT);
        koc_controller_unref(c);
        koc_manager_unref(rd.m);

        double gets_after = koc_test_apiserver_metric(
                &api, "apiserver_request_total{verb=\"GET\",resource=\"secrets\"");
        assert_string_equal(rd.failure, "");
        assert_int_equal(rd.creates, 2);
        assert_true(rd.found >= 2);
        assert_int_equal(rd.list_n, 2);
        assert_int_equal(rd.index_n, 2);
        assert_int_equal(rd.kept_rc, 0);
        assert_int_equal(rd.unkept_rc, -ENXIO);
        /* The children were read from the cache: not one GET of a Secret,
         * where one GET counts. */
        assert_true(gets_before == 0);
        assert_true(gets_after == 0);
        char get_path[256];
        snprintf(get_path, sizeof get_path, "/api/v1/namespaces/%s/secrets/p0-child", ns);
        assert_int_equal(http("GET", get_path, NULL, NULL), 200);
        assert_true(koc_test_apiserver_metric(
                            &api, "apiserver_request_total{verb=\"GET\",resource=\"secrets\"") ==
                    1);
}

/* --- read-your-own-writes for every cached type -------------------------------- */

static koc_result reconcile_writes(koc_reconcile_context *ctx, void *userdata) {
        reads *rd = userdata;
        const cJSON *parent = koc_reconcile_get_object(ctx);
        if (!parent)
                return koc_result_done();
        const char *ns = koc_reconcile_get_namespace(ctx);
        char child[300];
        snprintf(child, sizeof child, "%s-written", koc_reconcile_get_name(ctx));
        cJSON *s = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{}}");
        cJSON_AddStringToObject(cJSON_GetObjectItem(s, "metadata"), "name", child);
        koc_response *resp = NULL;
        int r = koc_reconcile_create(ctx, &secrets, ns, s, &resp);
        cJSON_Delete(s);
        if (r < 0 || resp->status != 201) {
                pthread_mutex_lock(&rd->lock);
                snprintf(rd->failure, sizeof rd->failure, "create: %d, status %ld", r,
                         resp ? (long)resp->status : 0L);
                pthread_mutex_unlock(&rd->lock);
                koc_response_free(resp);
                return koc_result_terminal(-EIO);
        }
        const char *rv = cJSON_GetStringValue(cJSON_GetObjectItem(
                cJSON_GetObjectItem(resp->body, "metadata"), "resourceVersion"));
        /* Right after the write returns: the kept informer of Secrets, which
         * no controller owns and whose watch the server holds back, has it. */
        koc_object *o = NULL;
        int got = koc_cache_ref_object(koc_reconcile_get_cache(ctx), &secrets, ns, child, &o);
        pthread_mutex_lock(&rd->lock);
        rd->found++;
        rd->kept_rc = got;
        rd->rv_match = got == 0 && rv && strcmp(koc_object_get_resource_version(o), rv) == 0;
        pthread_mutex_unlock(&rd->lock);
        koc_object_unref(o);
        koc_response_free(resp);
        return koc_result_done();
}

static void test_own_writes_reach_every_informer(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&api);
        const char *ns = "cache-ryow";
        ensure_namespace(ns);
        /* Secrets are listed, never watched: only this process's own write
         * can bring the new one into the cache. */
        const char *hang = "{\"resource\":\"secrets\",\"verb\":\"watch\",\"hang\":true}";
        assert_int_equal(koc_test_apiserver_fault(&api, hang), 200);
        reads rd = {.lock = PTHREAD_MUTEX_INITIALIZER, .kept_rc = 1, .ns = ns};
        rd.m = manager_new(NULL);
        koc_cache *cache = koc_manager_get_cache(rd.m);
        koc_error err = {0};
        assert_int_equal(koc_cache_add_informer(cache, &secrets, ns, NULL, &err), 0);

        koc_controller_options o;
        koc_controller_options_init(&o);
        o.name = "writes";
        o.resource = configmaps;
        o.namespace_ = ns;
        o.label_selector = "role=parent";
        o.reconcile = reconcile_writes;
        o.userdata = &rd;
        koc_controller *c = NULL;
        if (koc_controller_new(rd.m, &o, &c, &err) < 0)
                fail_msg("controller: %s", err.message);

        rd.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(rd.wake_fd >= 0);
        sd_event_source *wake = NULL;
        assert_int_equal(sd_event_add_io(koc_manager_get_event(rd.m), &wake, rd.wake_fd, EPOLLIN,
                                         on_wake, &rd),
                         0);
        pthread_t t;
        pthread_create(&t, NULL, driver, &rd);
        (void)koc_manager_run(rd.m);
        pthread_join(t, NULL);
        sd_event_source_disable_unref(wake);
        close(rd.wake_fd);
        koc_controller_unref(c);
        koc_manager_unref(rd.m);
        assert_int_equal(koc_test_apiserver_clear_faults(&api), 200);

        assert_string_equal(rd.failure, "");
        assert_int_equal(rd.found, 1);
        assert_int_equal(rd.kept_rc, 0);
        assert_true(rd.rv_match);
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
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_two_managers_side_by_side),
                cmocka_unit_test(test_every_cached_type_readable),
                cmocka_unit_test(test_own_writes_reach_every_informer),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cache as state of a manager (framework/cache, koc/cache.h), against
 * koc-apiserver over HTTPS: two managers in one process keep two caches that
 * share no informer and no controller name.
 *
 * The managers share one sd-event loop, which the test runs itself: informers
 * start listing when they are made, so no manager needs to run.  Every wait is
 * bounded in time and in loop iterations.
 */
#include <curl/curl.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scoped informers of the manager's cache (koc/cache.h, "Scopes"), against
 * koc-apiserver over HTTPS and, as k8s-test-cache-scopes, the real
 * kube-apiserver:
 *
 * - what a controller owns and watches is kept in the namespace, label
 *   selector, field selector and metadata-only mode its registration names
 *   (koc_controller_owns_with_options, _watches_with_options): objects
 *   outside the scope never reach the map function, in the first list or
 *   later on the watch;
 * - a read is answered only by an informer that covers its namespace and
 *   selectors, with what that informer holds; a read no informer covers is
 *   -ENXIO, one only metadata-only informers cover is -ENOMEDIUM, never an
 *   empty or partial answer;
 * - a reconcile's write is in every informer whose scope holds it (and in
 *   no other) when the write returns, as metadata in a metadata-only one;
 * - koc_cache_add_index keeps an informer of any type and scope with an
 *   index that koc_cache_list_index reads.
 *
 * The test runs the manager's sd-event loop itself: informers start listing
 * when they are made, so no manager needs to run.  Every wait is bounded in
 * time and in loop iterations.
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
#include "harness/apiserver.h"
#include "koc/cache.h"
#include "koc/controller.h"
#include "koc/manager.h"
#include "koc/metrics.h"
#include "koc/time.h"

static koc_test_apiserver api;

static const koc_resource configmaps = {
        .version = "v1", .resource = "configmaps", .kind = "ConfigMap", .namespaced = true};
static const koc_resource secrets = {
        .version = "v1", .resource = "secrets", .kind = "Secret", .namespaced = true};

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

/* Creates an object (kind "configmaps" or "secrets") with labels (a JSON
 * object or NULL) and more metadata (JSON members or NULL); returns its uid
 * (static buffer). */
static const char *create(const char *plural, const char *ns, const char *name,
                          const char *labels, const char *more_metadata) {
        static char uid[128];
        char path[256], body[2048];
        bool cm = strcmp(plural, "configmaps") == 0;
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/%s", ns, plural);
        snprintf(body, sizeof body,
                 "{\"apiVersion\":\"v1\",\"kind\":\"%s\",\"metadata\":{\"name\":\"%s\","
                 "\"labels\":%s%s%s},\"data\":{\"v\":\"%s\"}}",
                 cm ? "ConfigMap" : "Secret", name, labels ? labels : "{}",
                 more_metadata ? "," : "", more_metadata ? more_metadata : "",
                 cm ? "1" : "MQ==");
        char *answer = NULL;
        long st = http("POST", path, body, &answer);
        if (st != 201)
                fail_msg("POST %s %s: %ld %s", path, name, st, answer ? answer : "");
        cJSON *j = cJSON_Parse(answer);
        snprintf(uid, sizeof uid, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metadata"),
                                                          "uid")));
        cJSON_Delete(j);
        free(answer);
        return uid;
}

static void patch_configmap(const char *ns, const char *name, const char *value) {
        char path[256], body[256];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps/%s", ns, name);
        snprintf(body, sizeof body, "{\"data\":{\"v\":\"%s\"}}", value);
        assert_int_equal(koc_test_apiserver_http(&api, "PATCH", path, body,
                                                 "application/merge-patch+json", NULL),
                         200);
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

/* Runs the loop until pred holds: at most 60 s and 6000 iterations. */
static bool run_until(sd_event *event, bool (*pred)(void *), void *arg) {
        uint64_t deadline = koc_now_boottime_usec() + 60 * KOC_USEC_PER_SEC;
        for (int i = 0; i < 6000 && !pred(arg) && koc_now_boottime_usec() < deadline; i++)
                (void)sd_event_run(event, 10 * KOC_USEC_PER_MSEC);
        return pred(arg);
}

/* --- the scoped sources, seen from a driver thread ---------------------------- */

#define MAX_SEEN 64

/* What the map functions saw (on the loop thread) and what the driver
 * found (on its thread), under lock; main asserts once the manager has
 * returned (cmocka's asserts belong to the test's thread). */
typedef struct seen {
        char key[MAX_SEEN][160];
        unsigned count[MAX_SEEN];
        size_t n;
        bool data_seen; /* an object with a "data" member reached a map */
} seen;

typedef struct scenario {
        pthread_mutex_t lock;
        koc_manager *m;
        koc_controller *c;
        koc_cache *cache;
        int wake_fd;
        seen all;   /* the watches of the three selected scopes */
        seen owned; /* the metadata-only watch of NS_A's Secrets */
        bool wrote; /* the reconcile of p0 wrote and read back */
        char failure[512];
} scenario;

static unsigned seen_count(scenario *sc, seen *s, const char *key) {
        unsigned n = 0;
        pthread_mutex_lock(&sc->lock);
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->key[i], key) == 0)
                        n = s->count[i];
        pthread_mutex_unlock(&sc->lock);
        return n;
}

static scenario *the_scenario;

static void map_record(const cJSON *object, koc_keys *out, void *userdata) {
        seen *s = userdata;
        const cJSON *md = cJSON_GetObjectItem(object, "metadata");
        char key[160];
        /* Watch events carry kind (list items may not, but lists happen
         * before the controller is active and reach no map). */
        snprintf(key, sizeof key, "%s/%s/%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(object, "kind")),
                 cJSON_GetStringValue(cJSON_GetObjectItem(md, "namespace")),
                 cJSON_GetStringValue(cJSON_GetObjectItem(md, "name")));
        pthread_mutex_lock(&the_scenario->lock);
        if (cJSON_GetObjectItem(object, "data"))
                s->data_seen = true;
        size_t i = 0;
        while (i < s->n && strcmp(s->key[i], key) != 0)
                i++;
        if (i < s->n)
                s->count[i]++;
        else if (s->n < MAX_SEEN) {
                snprintf(s->key[s->n], sizeof s->key[s->n], "%s", key);
                s->count[s->n++] = 1;
        }
        pthread_mutex_unlock(&the_scenario->lock);
}

/* The driver's checks: the first that fails is kept for main to report. */
#define CHECK(sc, got, want)                                                                       \
        check_int((sc), __LINE__, #got, (long)(got), (long)(want))

static bool check_int(scenario *sc, int line, const char *what, long got, long want) {
        if (got == want)
                return true;
        pthread_mutex_lock(&sc->lock);
        if (!sc->failure[0])
                snprintf(sc->failure, sizeof sc->failure, "line %d: %s is %ld, want %ld", line,
                         what, got, want);
        pthread_mutex_unlock(&sc->lock);
        return false;
}

/* Polls until the map of s has seen key at least n times (or the
 * controller synced, with key NULL): at most 60 s. */
static bool wait_seen(scenario *sc, seen *s, const char *key, unsigned n) {
        uint64_t deadline = koc_now_boottime_usec() + 60 * KOC_USEC_PER_SEC;
        for (int i = 0; i < 6000 && koc_now_boottime_usec() < deadline; i++) {
                if (koc_controller_has_synced(sc->c) && koc_manager_is_leader(sc->m) &&
                    (!key || seen_count(sc, s, key) >= n))
                        return true;
                usleep(10 * 1000);
        }
        return check_int(sc, __LINE__, key ? key : "synced", 0, 1);
}

static size_t list_n(koc_cache *cache, const koc_resource *res, const koc_informer_options *o,
                     int *ret_rc) {
        koc_object **list = NULL;
        size_t n = 0;
        *ret_rc = koc_cache_list_with_options(cache, res, o, &list, &n);
        koc_object_list_free(list, n);
        return n;
}

#define NS_A "cache-scope-a"
#define NS_B "cache-scope-b"

static void reads(scenario *sc) {
        koc_cache *cache = sc->cache;
        int rc;
        koc_informer_options o;
        koc_informer_options_init(&o);
        o.namespace_ = NS_B;
        o.label_selector = "team=x";
        CHECK(sc, list_n(cache, &secrets, &o, &rc), 3); /* s-in, s-in2, w-in */
        CHECK(sc, rc, 0);
        o.label_selector = "team=x,other=1"; /* covered too, and filtered */
        CHECK(sc, list_n(cache, &secrets, &o, &rc), 0);
        CHECK(sc, rc, 0);
        koc_object *obj = NULL;
        o.label_selector = "team=x";
        CHECK(sc, koc_cache_ref_object_with_options(cache, &secrets, &o, "s-in", &obj), 0);
        obj = koc_object_unref(obj);
        CHECK(sc, koc_cache_ref_object_with_options(cache, &secrets, &o, "s-out", &obj), -ENOENT);
        /* No informer holds every Secret of NS_B, or of every namespace. */
        koc_object **list = NULL;
        size_t n = 0;
        CHECK(sc, koc_cache_list(cache, &secrets, NS_B, NULL, &list, &n), -ENXIO);
        CHECK(sc, koc_cache_list(cache, &secrets, NS_B, "team=y", &list, &n), -ENXIO);
        CHECK(sc, koc_cache_list(cache, &secrets, NULL, "team=x", &list, &n), -ENXIO);
        CHECK(sc, koc_cache_ref_object(cache, &secrets, NS_B, "s-out", &obj), -ENXIO);
        CHECK(sc, list == NULL, 1);
        /* ConfigMaps of NS_B: by the field selector, or by spread=1 from the
         * cluster-wide informer; nothing covers all of them. */
        CHECK(sc, koc_cache_list(cache, &configmaps, NS_B, NULL, &list, &n), -ENXIO);
        koc_informer_options_init(&o);
        o.namespace_ = NS_B;
        o.field_selector = "metadata.name=cm-sel";
        CHECK(sc, list_n(cache, &configmaps, &o, &rc), 1);
        CHECK(sc, rc, 0);
        o.field_selector = "metadata.name=cm-other";
        CHECK(sc, list_n(cache, &configmaps, &o, &rc), 0);
        CHECK(sc, rc, -ENXIO);
        CHECK(sc, koc_cache_list(cache, &configmaps, NULL, "spread=1", &list, &n), 0);
        CHECK(sc, n, 2);
        koc_object_list_free(list, n);
        CHECK(sc, koc_cache_list(cache, &configmaps, NS_B, "spread=1", &list, &n), 0);
        CHECK(sc, n, 1);
        koc_object_list_free(list, n);
        /* The primary's scope. */
        CHECK(sc, koc_cache_list(cache, &configmaps, NS_A, "role=parent", &list, &n), 0);
        CHECK(sc, n, 1);
        koc_object_list_free(list, n);
        /* The owned Secrets of NS_A are metadata only: a read of whole
         * objects is refused, a read of metadata gets them without data. */
        CHECK(sc, koc_cache_ref_object(cache, &secrets, NS_A, "child", &obj), -ENOMEDIUM);
        CHECK(sc, koc_cache_list(cache, &secrets, NS_A, NULL, &list, &n), -ENOMEDIUM);
        koc_informer_options_init(&o);
        o.namespace_ = NS_A;
        o.metadata_only = true;
        if (CHECK(sc, koc_cache_ref_object_with_options(cache, &secrets, &o, "child", &obj), 0)) {
                cJSON *j = NULL;
                CHECK(sc, koc_object_parse(obj, &j), 0);
                CHECK(sc, cJSON_GetObjectItem(j, "data") == NULL, 1);
                CHECK(sc, cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metadata"),
                                              "ownerReferences") != NULL,
                      1);
                CHECK(sc, strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j, "kind")), "Secret"),
                      0);
                cJSON_Delete(j);
                koc_object_unref(obj);
        }
        CHECK(sc, list_n(cache, &secrets, &o, &rc), 4); /* child, a-x, a-x2, w-meta */
        CHECK(sc, rc, 0);
}

static int write_secret(koc_reconcile_context *ctx, const char *ns, const char *name,
                        const char *team) {
        cJSON *o = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{},"
                               "\"data\":{\"v\":\"MQ==\"}}");
        cJSON *md = cJSON_GetObjectItem(o, "metadata");
        cJSON_AddStringToObject(md, "name", name);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "labels"), "team", team);
        koc_response *resp = NULL;
        int r = koc_reconcile_create(ctx, &secrets, ns, o, &resp);
        long st = resp ? resp->status : 0;
        cJSON_Delete(o);
        koc_response_free(resp);
        return r < 0 ? r : (int)st;
}

/* Read-your-own-writes by scope: right after each write returns, the
 * informers whose scope holds the answer have it, and only those. */
static koc_result reconcile_writes(koc_reconcile_context *ctx, void *userdata) {
        scenario *sc = userdata;
        if (strcmp(koc_reconcile_get_name(ctx), "p0") != 0)
                return koc_result_done();
        pthread_mutex_lock(&sc->lock);
        bool wrote = sc->wrote;
        pthread_mutex_unlock(&sc->lock);
        if (wrote)
                return koc_result_done();
        koc_cache *cache = koc_reconcile_get_cache(ctx);
        koc_informer_options o;
        koc_informer_options_init(&o);
        o.namespace_ = NS_B;
        o.label_selector = "team=x";
        koc_object *obj = NULL;
        CHECK(sc, write_secret(ctx, NS_B, "w-in", "x"), 201);
        CHECK(sc, koc_cache_ref_object_with_options(cache, &secrets, &o, "w-in", &obj), 0);
        obj = koc_object_unref(obj);
        CHECK(sc, write_secret(ctx, NS_B, "w-out", "y"), 201);
        CHECK(sc, koc_cache_ref_object_with_options(cache, &secrets, &o, "w-out", &obj), -ENOENT);
        CHECK(sc, write_secret(ctx, NS_A, "w-meta", "z"), 201);
        o.namespace_ = NS_A;
        o.label_selector = NULL;
        o.metadata_only = true;
        if (CHECK(sc, koc_cache_ref_object_with_options(cache, &secrets, &o, "w-meta", &obj), 0)) {
                size_t len = 0;
                CHECK(sc, strstr(koc_object_get_json(obj, &len), "\"data\"") == NULL, 1);
                koc_object_unref(obj);
        }
        pthread_mutex_lock(&sc->lock);
        sc->wrote = true;
        pthread_mutex_unlock(&sc->lock);
        return koc_result_done();
}

static void *driver(void *p) {
        scenario *sc = p;
        if (wait_seen(sc, &sc->all, NULL, 0)) {
                /* Objects outside the scopes, then one inside each: the same
                 * streams would carry the outsiders first. */
                create("secrets", NS_B, "s-out2", "{\"team\":\"y\"}", NULL);
                create("secrets", NS_A, "a-x2", "{\"team\":\"x\"}", NULL);
                create("configmaps", NS_B, "cm-other2", NULL, NULL);
                create("configmaps", NS_B, "no-spread", NULL, NULL);
                create("secrets", NS_B, "s-in2", "{\"team\":\"x\"}", NULL);
                patch_configmap(NS_B, "cm-sel", "2");
                patch_configmap(NS_A, "spread", "2");
                (void)(wait_seen(sc, &sc->all, "Secret/" NS_B "/s-in2", 1) &&
                       wait_seen(sc, &sc->all, "ConfigMap/" NS_B "/cm-sel", 1) &&
                       wait_seen(sc, &sc->all, "ConfigMap/" NS_A "/spread", 1) &&
                       wait_seen(sc, &sc->owned, "Secret/" NS_A "/a-x2", 1) &&
                       wait_seen(sc, &sc->all, "Secret/" NS_B "/w-in", 1) &&
                       wait_seen(sc, &sc->owned, "Secret/" NS_A "/w-meta", 1));
                pthread_mutex_lock(&sc->lock);
                bool wrote = sc->wrote;
                pthread_mutex_unlock(&sc->lock);
                CHECK(sc, wrote, 1);
                reads(sc);
        }
        uint64_t one = 1;
        (void)!write(sc->wake_fd, &one, sizeof one);
        return NULL;
}

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        scenario *sc = userdata;
        uint64_t n;
        (void)!read(fd, &n, sizeof n);
        (void)koc_manager_shutdown(sc->m);
        return 0;
}

/* Owned and watched informers in their own scopes; reads answered by the
 * informer that covers them, distinct errors when none does. */
static void test_scoped_sources(void **state) {
        ensure_namespace(NS_A);
        ensure_namespace(NS_B);
        const char *p0_uid = create("configmaps", NS_A, "p0", "{\"role\":\"parent\"}", NULL);
        char owner[512];
        snprintf(owner, sizeof owner,
                 "\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
                 "\"name\":\"p0\",\"uid\":\"%s\",\"controller\":true}]",
                 p0_uid);
        create("secrets", NS_A, "child", NULL, owner);
        create("secrets", NS_A, "a-x", "{\"team\":\"x\"}", NULL);
        create("secrets", NS_B, "s-in", "{\"team\":\"x\"}", NULL);
        create("secrets", NS_B, "s-out", "{\"team\":\"y\"}", NULL);
        create("configmaps", NS_B, "cm-sel", NULL, NULL);
        create("configmaps", NS_B, "cm-other", NULL, NULL);
        create("configmaps", NS_A, "spread", "{\"spread\":\"1\"}", NULL);
        create("configmaps", NS_B, "spread", "{\"spread\":\"1\"}", NULL);

        static scenario sc;
        memset(&sc, 0, sizeof sc);
        pthread_mutex_init(&sc.lock, NULL);
        the_scenario = &sc;
        sc.m = manager_new(NULL);
        koc_cache *cache = sc.cache = koc_manager_get_cache(sc.m);
        koc_error err = {0};
        koc_controller_options co;
        koc_controller_options_init(&co);
        co.name = "scopes";
        co.resource = configmaps;
        co.namespace_ = NS_A;
        co.label_selector = "role=parent";
        co.reconcile = reconcile_writes;
        co.userdata = &sc;
        if (koc_controller_new(sc.m, &co, &sc.c, &err) < 0)
                fail_msg("controller: %s", err.message);
        koc_controller *c = sc.c;

        koc_informer_options o;
        koc_informer_options_init(&o);
        o.namespace_ = NS_B;
        o.label_selector = "team=x";
        if (koc_controller_watches_with_options(c, &secrets, &o, map_record, &sc.all, NULL,
                                                &err) < 0)
                fail_msg("watches secrets: %s", err.message);
        koc_informer_options_init(&o);
        o.namespace_ = NS_B;
        o.field_selector = "metadata.name=cm-sel";
        if (koc_controller_watches_with_options(c, &configmaps, &o, map_record, &sc.all, NULL,
                                                &err) < 0)
                fail_msg("watches configmaps by field: %s", err.message);
        koc_informer_options_init(&o);
        o.all_namespaces = true;
        o.label_selector = "spread=1";
        if (koc_controller_watches_with_options(c, &configmaps, &o, map_record, &sc.all, NULL,
                                                &err) < 0)
                fail_msg("watches configmaps everywhere: %s", err.message);
        /* Owned Secrets, metadata only, in the controller's namespace; a
         * watch of the same scope shares the informer, and its map sees
         * metadata only. */
        koc_informer_options_init(&o);
        o.metadata_only = true;
        if (koc_controller_owns_with_options(c, &secrets, &o, &err) < 0)
                fail_msg("owns: %s", err.message);
        if (koc_controller_watches_with_options(c, &secrets, &o, map_record, &sc.owned, NULL,
                                                &err) < 0)
                fail_msg("watches metadata: %s", err.message);
        assert_int_equal(koc__cache_count_informers(cache), 5);
        /* Refused scopes. */
        koc_informer_options_init(&o);
        o.namespace_ = NS_B;
        o.all_namespaces = true;
        assert_int_equal(koc_controller_owns_with_options(c, &secrets, &o, &err), -EINVAL);
        koc_informer_options_init(&o);
        o.namespace_ = "Not_A_Label";
        assert_int_equal(koc_controller_owns_with_options(c, &secrets, &o, &err), -EINVAL);
        assert_non_null(strstr(err.message, "Not_A_Label"));
        assert_int_equal(koc__cache_count_informers(cache), 5);

        sc.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(sc.wake_fd >= 0);
        sd_event_source *wake = NULL;
        assert_int_equal(sd_event_add_io(koc_manager_get_event(sc.m), &wake, sc.wake_fd, EPOLLIN,
                                         on_wake, &sc),
                         0);
        pthread_t t;
        pthread_create(&t, NULL, driver, &sc);
        (void)koc_manager_run(sc.m);
        pthread_join(t, NULL);
        sd_event_source_disable_unref(wake);
        close(sc.wake_fd);

        for (size_t i = 0; i < sc.all.n; i++)
                print_message("seen %s %u\n", sc.all.key[i], sc.all.count[i]);
        assert_string_equal(sc.failure, "");
        /* Only what each scope selects reached a map: the in-scope objects
         * (an update is seen twice, as its old and new object), never the
         * ones created before them outside the scopes. */
        assert_int_equal(seen_count(&sc, &sc.all, "Secret/" NS_B "/s-in2"), 1);
        assert_int_equal(seen_count(&sc, &sc.all, "ConfigMap/" NS_B "/cm-sel"), 2);
        assert_int_equal(seen_count(&sc, &sc.all, "ConfigMap/" NS_A "/spread"), 2);
        assert_int_equal(seen_count(&sc, &sc.all, "Secret/" NS_B "/w-in"), 1);
        assert_int_equal(sc.all.n, 4); /* not w-out */
        assert_true(sc.all.data_seen);
        assert_int_equal(seen_count(&sc, &sc.owned, "Secret/" NS_A "/a-x2"), 1);
        assert_int_equal(seen_count(&sc, &sc.owned, "Secret/" NS_A "/w-meta"), 1);
        assert_int_equal(sc.owned.n, 2);
        assert_false(sc.owned.data_seen);

        koc_controller_unref(c);
        assert_int_equal(koc__cache_count_informers(cache), 0);
        koc_manager_unref(sc.m);
        pthread_mutex_destroy(&sc.lock);
}

/* --- indexes of any cached type -------------------------------------------- */

static int index_by_team(const cJSON *obj, koc_index_values *out, void *userdata) {
        const char *v = cJSON_GetStringValue(
                cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(obj, "metadata"),
                                                        "labels"),
                                    "team"));
        return v ? koc_index_values_add(out, v) : 0;
}

static int count_unsynced(koc_informer *inf, void *userdata) {
        if (!koc__informer_has_synced(inf))
                ++*(int *)userdata;
        return 0;
}

static bool cache_synced(void *arg) {
        int unsynced = 0;
        (void)koc__cache_foreach_informer(arg, count_unsynced, &unsynced);
        return unsynced == 0;
}

static void destroy_count(void *userdata) {
        ++*(int *)userdata;
}

static void test_cache_add_index(void **state) {
        const char *ns = "cache-index";
        ensure_namespace(ns);
        create("secrets", ns, "s1", "{\"team\":\"x\"}", NULL);
        create("secrets", ns, "s2", "{\"team\":\"x\"}", NULL);
        create("secrets", ns, "s3", "{\"team\":\"y\"}", NULL);

        sd_event *event = NULL;
        assert_int_equal(sd_event_new(&event), 0);
        koc_manager *m = manager_new(event);
        koc_cache *cache = koc_manager_get_cache(m);
        koc_error err = {0};
        int destroyed = 0;
        koc_informer_options o;
        koc_informer_options_init(&o);
        o.namespace_ = ns;
        assert_int_equal(koc_cache_add_index(cache, &secrets, &o, "by-team", index_by_team,
                                             &destroyed, destroy_count, &err),
                         0);
        /* One informer per index name: another scope may not take it. */
        koc_informer_options meta = o;
        meta.metadata_only = true;
        assert_int_equal(koc_cache_add_index(cache, &secrets, &meta, "by-team", index_by_team,
                                             NULL, NULL, &err),
                         -EEXIST);
        assert_non_null(strstr(err.message, "by-team"));
        assert_int_equal(koc_cache_add_index(cache, &secrets, &meta, "meta-team", index_by_team,
                                             &destroyed, destroy_count, &err),
                         0);
        assert_int_equal(koc_cache_add_index(cache, &secrets, NULL, NULL, index_by_team, NULL,
                                             NULL, &err),
                         -EINVAL);
        assert_int_equal(koc__cache_count_informers(cache), 2);
        assert_true(run_until(event, cache_synced, cache));

        koc_object **list = NULL;
        size_t n = 0;
        assert_int_equal(koc_cache_list_index(cache, &secrets, "by-team", "x", &list, &n), 0);
        assert_int_equal(n, 2);
        cJSON *j = NULL;
        assert_int_equal(koc_object_parse(list[0], &j), 0);
        assert_non_null(cJSON_GetObjectItem(j, "data"));
        cJSON_Delete(j);
        koc_object_list_free(list, n);
        assert_int_equal(koc_cache_list_index(cache, &secrets, "by-team", "y", &list, &n), 0);
        assert_int_equal(n, 1);
        koc_object_list_free(list, n);
        assert_int_equal(koc_cache_list_index(cache, &secrets, "meta-team", "x", &list, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(koc_object_parse(list[0], &j), 0);
        assert_null(cJSON_GetObjectItem(j, "data"));
        cJSON_Delete(j);
        koc_object_list_free(list, n);
        assert_int_equal(koc_cache_list_index(cache, &secrets, "nope", "x", &list, &n), -ENOENT);
        assert_int_equal(koc_cache_list_index(cache, &configmaps, "by-team", "x", &list, &n),
                         -ENOENT);
        /* Each informer has gauges of its own: the two scopes differ only
         * in metadata_only. */
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(koc_metrics_render(koc_manager_get_metrics(m), &text, &len), 0);
        const char *gauges[] = {
                "koc_informer_cached_objects{resource=\"/api/v1/namespaces/cache-index/secrets\","
                "namespace=\"cache-index\",selector=\"\",field_selector=\"\","
                "metadata_only=\"false\"} 3",
                "koc_informer_cached_objects{resource=\"/api/v1/namespaces/cache-index/secrets\","
                "namespace=\"cache-index\",selector=\"\",field_selector=\"\","
                "metadata_only=\"true\"} 3",
        };
        for (size_t i = 0; i < sizeof gauges / sizeof *gauges; i++)
                if (!strstr(text, gauges[i]))
                        fail_msg("metric missing: %s in\n%s", gauges[i], text);
        free(text);
        /* Too late once the informer holds objects. */
        assert_int_equal(koc_cache_add_index(cache, &secrets, &o, "late", index_by_team, NULL,
                                             NULL, &err),
                         -EBUSY);
        /* A new object is indexed as it arrives. */
        create("secrets", ns, "s4", "{\"team\":\"y\"}", NULL);
        uint64_t deadline = koc_now_boottime_usec() + 60 * KOC_USEC_PER_SEC;
        for (int i = 0; i < 6000 && koc_now_boottime_usec() < deadline; i++) {
                assert_int_equal(koc_cache_list_index(cache, &secrets, "by-team", "y", &list,
                                                      &n),
                                 0);
                koc_object_list_free(list, n);
                if (n == 2)
                        break;
                (void)sd_event_run(event, 10 * KOC_USEC_PER_MSEC);
        }
        assert_int_equal(n, 2);

        assert_int_equal(destroyed, 0);
        koc_manager_unref(m);
        assert_int_equal(destroyed, 2);
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
                cmocka_unit_test(test_scoped_sources),
                cmocka_unit_test(test_cache_add_index),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

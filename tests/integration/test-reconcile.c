/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc/reconcile.h against an API server over HTTPS (koc-apiserver, and the
 * real kube-apiserver through the same harness): create-or-update and
 * create-or-patch with what they sent, apply with its outcome, owner
 * references that are not stolen, status patches next to another writer of
 * the status, conditions over time, and a finalizer whose cleanup writes the
 * status.
 *
 * Each case runs a manager with one controller; its reconcile runs the
 * case's steps once and notes the first failed check; a driver thread
 * creates the objects, waits (bounded) for the reconcile and ends the case.
 * Request counts come from koc-apiserver's apiserver_request_total (not on
 * the real server, where the steps still run and check the outcomes).
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

#include "harness/apiserver.h"
#include "koc/cache.h"
#include "koc/controller.h"
#include "koc/manager.h"
#include "koc/reconcile.h"
#include "koc/time.h"

static koc_test_apiserver api;

static const koc_resource configmaps = {
        .version = "v1", .resource = "configmaps", .kind = "ConfigMap", .namespaced = true};
static const koc_resource secrets = {
        .version = "v1", .resource = "secrets", .kind = "Secret", .namespaced = true};
static const koc_resource serviceaccounts = {.version = "v1",
                                             .resource = "serviceaccounts",
                                             .kind = "ServiceAccount",
                                             .namespaced = true};
static const koc_resource widgets = {.group = "test.koc.dev",
                                     .version = "v1",
                                     .resource = "widgets",
                                     .kind = "Widget",
                                     .namespaced = true};

static uint64_t wait_usec(void) {
        const char *v = getenv("KOC_UNDER_VALGRIND");
        return (v && *v ? 90 : 30) * KOC_USEC_PER_SEC;
}

static long http(const char *method, const char *path, const char *body, const char *ctype,
                 char **ret) {
        return koc_test_apiserver_http(&api, method, path, body, ctype, ret);
}

static void ensure_namespace(const char *ns) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\"}}",
                 ns);
        long st = http("POST", "/api/v1/namespaces", body, NULL, NULL);
        assert_true(st == 201 || st == 409);
}

/* The requests koc-apiserver served for verb and resource; 0 on the real
 * server, which has no such counter (the checks that use it are skipped). */
static double reqs(const char *verb, const char *resource) {
        if (api.real)
                return 0;
        char prefix[200];
        snprintf(prefix, sizeof prefix, "apiserver_request_total{verb=\"%s\",resource=\"%s\"", verb,
                 resource);
        double v = koc_test_apiserver_metric(&api, prefix);
        return v < 0 ? 0 : v;
}

/* Every write verb of a resource at once. */
static double writes(const char *resource) {
        return reqs("POST", resource) + reqs("PUT", resource) + reqs("PATCH", resource) +
               reqs("GET", resource);
}

/* --- one case ---------------------------------------------------------------------- */

typedef struct tcase tcase;
struct tcase {
        pthread_mutex_t lock;
        koc_manager *m;
        int wake_fd;
        const char *ns;
        koc_result (*reconcile)(tcase *t, koc_reconcile_context *ctx);
        const char *(*driver)(tcase *t);
        const char *verdict;
        char failure[512];
        bool started;
        bool done;
        int cleanups;
        int applies;
        const cJSON *owner;   /* the reconcile's object, for the mutate callbacks */
        const char *data;     /* what the mutate callbacks write */
        const char *selector; /* of the controller's primary informer */
};

static void failed(tcase *t, int line, const char *what) {
        pthread_mutex_lock(&t->lock);
        if (!t->failure[0])
                snprintf(t->failure, sizeof t->failure, "line %d: %s", line, what);
        t->done = true;
        pthread_mutex_unlock(&t->lock);
}

#define CHECK(t, cond)                                                                             \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        failed((t), __LINE__, #cond);                                              \
                        return koc_result_terminal(-EIO);                                          \
                }                                                                                  \
        } while (0)

static koc_result reconcile_case(koc_reconcile_context *ctx, void *userdata) {
        tcase *t = userdata;
        return t->reconcile(t, ctx);
}

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        tcase *t = userdata;
        uint64_t n;
        (void)!read(fd, &n, sizeof n);
        (void)koc_manager_shutdown(t->m);
        return 0;
}

static bool wait_for(tcase *t, bool (*pred)(tcase *t)) {
        uint64_t deadline = koc_now_boottime_usec() + wait_usec();
        for (int i = 0; i < 100000 && koc_now_boottime_usec() < deadline; i++) {
                pthread_mutex_lock(&t->lock);
                bool ok = pred(t) || t->failure[0];
                pthread_mutex_unlock(&t->lock);
                if (ok)
                        return true;
                usleep(10 * 1000);
        }
        return false;
}

static bool is_done(tcase *t) {
        return t->done;
}

static void *driver_main(void *p) {
        tcase *t = p;
        t->verdict = t->driver(t);
        uint64_t one = 1;
        (void)!write(t->wake_fd, &one, sizeof one);
        return NULL;
}

static void run_case(tcase *t, const char *name, const koc_resource *primary,
                     const koc_resource *owned) {
        koc_manager_config cfg;
        koc_error err = {0};
        koc_manager_config_init(&cfg);
        cfg.kubeconfig = api.kubeconfig;
        cfg.leader_elect = false;
        cfg.health_probe_bind_address = "0";
        cfg.metrics_bind_address = "0";
        cfg.handle_signals = false;
        if (koc_manager_new(NULL, &cfg, &t->m, &err) < 0)
                fail_msg("manager: %s", err.message);
        koc_controller_options o;
        koc_controller_options_init(&o);
        o.name = name;
        o.resource = *primary;
        o.namespace_ = t->ns;
        o.label_selector = t->selector;
        o.reconcile = reconcile_case;
        o.userdata = t;
        koc_controller *c = NULL;
        if (koc_controller_new(t->m, &o, &c, &err) < 0)
                fail_msg("controller: %s", err.message);
        if (owned && koc_controller_owns(c, owned, &err) < 0)
                fail_msg("owns: %s", err.message);
        t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(t->wake_fd >= 0);
        sd_event_source *wake = NULL;
        assert_int_equal(sd_event_add_io(koc_manager_get_event(t->m), &wake, t->wake_fd, EPOLLIN,
                                         on_wake, t),
                         0);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, driver_main, t), 0);
        (void)koc_manager_run(t->m);
        pthread_join(th, NULL);
        sd_event_source_disable_unref(wake);
        close(t->wake_fd);
        koc_controller_unref(c);
        koc_manager_unref(t->m);
        if (t->failure[0])
                fail_msg("reconcile: %s", t->failure);
        if (t->verdict)
                fail_msg("driver: %s", t->verdict);
}

/* --- create or update, create or patch, apply ------------------------------------ */

/* Secret data "v" = t->data (base64 of one digit), owned by the parent. */
static int mutate_secret(cJSON *obj, void *userdata) {
        tcase *t = userdata;
        cJSON *data = cJSON_GetObjectItem(obj, "data");
        if (!data)
                data = cJSON_AddObjectToObject(obj, "data");
        cJSON_DeleteItemFromObject(data, "v");
        cJSON_AddStringToObject(data, "v", t->data);
        return koc_object_set_owner_reference(obj, t->owner, KOC_OWNER_CONTROLLER, NULL);
}

static int mutate_rename(cJSON *obj, void *userdata) {
        cJSON *md = cJSON_GetObjectItem(obj, "metadata");
        cJSON_ReplaceItemInObject(md, "name", cJSON_CreateString("elsewhere"));
        return 0;
}

static int mutate_move(cJSON *obj, void *userdata) {
        cJSON *md = cJSON_GetObjectItem(obj, "metadata");
        cJSON_DeleteItemFromObject(md, "namespace");
        cJSON_AddStringToObject(md, "namespace", "default");
        return 0;
}

static int mutate_label(cJSON *obj, void *userdata) {
        cJSON *md = cJSON_GetObjectItem(obj, "metadata");
        cJSON *labels = cJSON_GetObjectItem(md, "labels");
        if (!labels)
                labels = cJSON_AddObjectToObject(md, "labels");
        cJSON_DeleteItemFromObject(labels, "koc.test/touched");
        cJSON_AddStringToObject(labels, "koc.test/touched", "yes");
        return 0;
}

/* The cached Secret's data.v, or "" */
static void cached_data(koc_reconcile_context *ctx, const char *name, char *buf, size_t size) {
        koc_object *o = NULL;
        cJSON *j = NULL;
        buf[0] = 0;
        if (koc_cache_ref_object(koc_reconcile_get_cache(ctx), &secrets,
                                 koc_reconcile_get_namespace(ctx), name, &o) == 0 &&
            koc_object_parse(o, &j) == 0) {
                const char *v = cJSON_GetStringValue(
                        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"), "v"));
                snprintf(buf, size, "%s", v ? v : "");
        }
        cJSON_Delete(j);
        koc_object_unref(o);
}

static koc_result cou_reconcile(tcase *t, koc_reconcile_context *ctx) {
        const cJSON *parent = koc_reconcile_get_object(ctx);
        const char *ns = koc_reconcile_get_namespace(ctx);
        pthread_mutex_lock(&t->lock);
        bool first = parent && !t->started;
        if (first)
                t->started = true;
        pthread_mutex_unlock(&t->lock);
        if (!first)
                return koc_result_done();
        t->owner = parent;
        koc_op_result op = 99;
        char v[64];

        /* Created, then unchanged without a request. */
        t->data = "MQ==";
        double post0 = reqs("POST", "secrets"), all0 = writes("secrets");
        CHECK(t, koc_reconcile_create_or_update(ctx, &secrets, ns, "child", mutate_secret, t,
                                                &op) == 0);
        CHECK(t, op == KOC_OP_CREATED);
        CHECK(t, reqs("POST", "secrets") == post0 + (api.real ? 0 : 1));
        CHECK(t, writes("secrets") == all0 + (api.real ? 0 : 1));
        cached_data(ctx, "child", v, sizeof v);
        CHECK(t, strcmp(v, "MQ==") == 0); /* read your own write */
        double all1 = writes("secrets");
        CHECK(t, koc_reconcile_create_or_update(ctx, &secrets, ns, "child", mutate_secret, t,
                                                &op) == 0);
        CHECK(t, op == KOC_OP_UNCHANGED);
        CHECK(t, writes("secrets") == all1);

        /* Updated with one PUT. */
        t->data = "Mg==";
        double put0 = reqs("PUT", "secrets");
        CHECK(t, koc_reconcile_create_or_update(ctx, &secrets, ns, "child", mutate_secret, t,
                                                &op) == 0);
        CHECK(t, op == KOC_OP_UPDATED);
        CHECK(t, reqs("PUT", "secrets") == put0 + (api.real ? 0 : 1));
        cached_data(ctx, "child", v, sizeof v);
        CHECK(t, strcmp(v, "Mg==") == 0);

        /* Patched with one merge patch of the difference; then unchanged. */
        t->data = "Mw==";
        double patch0 = reqs("PATCH", "secrets"), all2 = writes("secrets");
        CHECK(t, koc_reconcile_create_or_patch(ctx, &secrets, ns, "child", mutate_secret, t, &op) ==
                         0);
        CHECK(t, op == KOC_OP_UPDATED);
        CHECK(t, reqs("PATCH", "secrets") == patch0 + (api.real ? 0 : 1));
        CHECK(t, writes("secrets") == all2 + (api.real ? 0 : 1));
        cached_data(ctx, "child", v, sizeof v);
        CHECK(t, strcmp(v, "Mw==") == 0);
        double all3 = writes("secrets");
        CHECK(t, koc_reconcile_create_or_patch(ctx, &secrets, ns, "child", mutate_secret, t, &op) ==
                         0);
        CHECK(t, op == KOC_OP_UNCHANGED);
        CHECK(t,
              koc_reconcile_create_or_patch(ctx, &secrets, ns, "child", mutate_label, t, &op) == 0);
        CHECK(t, op == KOC_OP_UPDATED);
        CHECK(t, writes("secrets") == all3 + (api.real ? 0 : 1));

        /* A mutate that moves the object is refused, nothing sent. */
        double all4 = writes("secrets");
        op = 99;
        CHECK(t, koc_reconcile_create_or_update(ctx, &secrets, ns, "child", mutate_rename, t,
                                                &op) == -EINVAL);
        koc_error err = {0};
        CHECK(t, koc_reconcile_get_last_error(ctx, &err) == -EINVAL &&
                         strstr(err.message, "changed metadata.name (to \"elsewhere\")"));
        CHECK(t, koc_reconcile_create_or_patch(ctx, &secrets, ns, "child", mutate_move, t, &op) ==
                         -EINVAL);
        CHECK(t, koc_reconcile_create_or_update(ctx, &secrets, ns, "fresh", mutate_rename, t,
                                                &op) == -EINVAL);
        CHECK(t, op == 99);
        CHECK(t, writes("secrets") == all4);

        /* Controlled by someone else: not taken over, nothing sent. */
        CHECK(t, koc_reconcile_create_or_update(ctx, &secrets, ns, "stolen", mutate_secret, t,
                                                &op) == -EADDRINUSE);
        CHECK(t, writes("secrets") == all4);

        /* No informer of ServiceAccounts: read with a GET. */
        double sa_get0 = reqs("GET", "serviceaccounts");
        CHECK(t, koc_reconcile_create_or_update(ctx, &serviceaccounts, ns, "sa-x", mutate_label, t,
                                                &op) == 0);
        CHECK(t, op == KOC_OP_CREATED);
        CHECK(t, koc_reconcile_create_or_update(ctx, &serviceaccounts, ns, "sa-x", mutate_label, t,
                                                &op) == 0);
        CHECK(t, op == KOC_OP_UNCHANGED);
        CHECK(t, reqs("GET", "serviceaccounts") == sa_get0 + (api.real ? 0 : 2));

        /* ConfigMaps: only the primary's label-selected informer, which
         * cannot say that one outside its selector is absent: a GET. */
        double cm_get0 = reqs("GET", "configmaps");
        CHECK(t, koc_reconcile_create_or_update(ctx, &configmaps, ns, "cm-x", mutate_label, t,
                                                &op) == 0);
        CHECK(t, op == KOC_OP_CREATED);
        CHECK(t, koc_reconcile_create_or_update(ctx, &configmaps, ns, "cm-x", mutate_label, t,
                                                &op) == 0);
        CHECK(t, op == KOC_OP_UNCHANGED);
        CHECK(t, reqs("GET", "configmaps") == cm_get0 + (api.real ? 0 : 2));

        /* create_or_patch_owned: created controlled by the parent, the
         * object after the write returned; the same again sends nothing;
         * an object nobody controls or someone else controls is not
         * adopted, nothing sent, and the last error says so. */
        cJSON *want = cJSON_Parse("{\"metadata\":{\"name\":\"owned\",\"labels\":{\"a\":\"1\"}},"
                                  "\"data\":{\"v\":\"MQ==\"}}");
        cJSON *got = NULL;
        CHECK(t, koc_reconcile_create_or_patch_owned(ctx, &secrets, parent, want, &op, &got) == 0);
        CHECK(t, op == KOC_OP_CREATED && got);
        const cJSON *gref = koc_object_get_controller_reference(got);
        CHECK(t, gref && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(gref, "name")),
                                "parent") == 0);
        CHECK(t, cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(got, "metadata"),
                                                          "resourceVersion")) != NULL);
        cJSON_Delete(got);
        got = NULL;
        double all5 = writes("secrets");
        CHECK(t, koc_reconcile_create_or_patch_owned(ctx, &secrets, parent, want, &op, NULL) == 0);
        CHECK(t, op == KOC_OP_UNCHANGED && writes("secrets") == all5);
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(want, "data"), "v", cJSON_CreateString("Mg=="));
        CHECK(t, koc_reconcile_create_or_patch_owned(ctx, &secrets, parent, want, &op, &got) == 0);
        CHECK(t, op == KOC_OP_UPDATED && got &&
                         strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(
                                        cJSON_GetObjectItem(got, "data"), "v")),
                                "Mg==") == 0);
        cJSON_Delete(got);
        got = NULL;
        double all6 = writes("secrets");
        const char *taken[] = {"orphan", "stolen"};
        for (int i = 0; i < 2; i++) {
                cJSON_ReplaceItemInObject(cJSON_GetObjectItem(want, "metadata"), "name",
                                          cJSON_CreateString(taken[i]));
                CHECK(t, koc_reconcile_create_or_patch_owned(ctx, &secrets, parent, want, &op,
                                                             &got) == -EADDRINUSE);
                CHECK(t, got == NULL);
                koc_error oerr = {0};
                CHECK(t, koc_reconcile_get_last_error(ctx, &oerr) == -EADDRINUSE &&
                                 strstr(oerr.message, taken[i]));
        }
        CHECK(t, writes("secrets") == all6);
        cJSON_Delete(want);

        /* Server-side apply with its outcome. */
        cJSON *desired =
                cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"Secret\","
                            "\"metadata\":{\"name\":\"applied\"},\"data\":{\"v\":\"MQ==\"}}");
        cJSON_AddStringToObject(cJSON_GetObjectItem(desired, "metadata"), "namespace", ns);
        int r1 = koc_reconcile_apply_op(ctx, &secrets, desired, "koc-test", 0, &op);
        koc_op_result op1 = op;
        int r2 = koc_reconcile_apply_op(ctx, &secrets, desired, "koc-test", 0, &op);
        koc_op_result op2 = op;
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(desired, "data"), "v",
                                  cJSON_CreateString("Mg=="));
        int r3 = koc_reconcile_apply_op(ctx, &secrets, desired, "koc-test", 0, &op);
        cJSON_Delete(desired);
        CHECK(t, r1 == 0 && op1 == KOC_OP_CREATED);
        CHECK(t, r2 == 0 && op2 == KOC_OP_UNCHANGED);
        CHECK(t, r3 == 0 && op == KOC_OP_UPDATED);
        cached_data(ctx, "applied", v, sizeof v);
        CHECK(t, strcmp(v, "Mg==") == 0);

        pthread_mutex_lock(&t->lock);
        t->done = true;
        pthread_mutex_unlock(&t->lock);
        return koc_result_done();
}

static const char *cou_driver(tcase *t) {
        char path[256];
        /* Controlled by a ConfigMap that is not the parent: one that exists,
         * so that a garbage collector keeps the Secret. */
        char *someone = NULL, owned[512];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps", t->ns);
        if (http("POST", path,
                 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"someone\"}}",
                 NULL, &someone) != 201)
                return "cannot create the other owner";
        cJSON *so = cJSON_Parse(someone);
        free(someone);
        const char *uid = cJSON_GetStringValue(cJSON_GetObjectItem(
                cJSON_GetObjectItem(so, "metadata"), "uid"));
        if (!uid) {
                cJSON_Delete(so);
                return "the other owner has no uid";
        }
        snprintf(owned, sizeof owned,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"stolen\","
                 "\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
                 "\"name\":\"someone\",\"uid\":\"%s\",\"controller\":true}]}}",
                 uid);
        cJSON_Delete(so);
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/secrets", t->ns);
        if (http("POST", path, owned, NULL, NULL) != 201)
                return "cannot create the owned Secret";
        /* Controlled by no one. */
        if (http("POST", path,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"orphan\"}}",
                 NULL, NULL) != 201)
                return "cannot create the orphan Secret";
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps", t->ns);
        if (http("POST", path,
                 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"parent\","
                 "\"labels\":{\"role\":\"parent\"}}}",
                 NULL, NULL) != 201)
                return "cannot create the parent";
        if (!wait_for(t, is_done))
                return "the reconcile did not finish";
        /* On the server: the child carries the last data and the parent as
         * its controller; the stolen one kept its owner. */
        char *body = NULL;
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/secrets/child", t->ns);
        if (http("GET", path, NULL, NULL, &body) != 200) {
                free(body);
                return "no child";
        }
        cJSON *child = cJSON_Parse(body);
        free(body);
        const cJSON *ref = koc_object_get_controller_reference(child);
        bool ok = ref &&
                  strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(ref, "name")), "parent") == 0 &&
                  strcmp(cJSON_GetStringValue(
                                 cJSON_GetObjectItem(cJSON_GetObjectItem(child, "data"), "v")),
                         "Mw==") == 0;
        cJSON_Delete(child);
        if (!ok)
                return "the child on the server is not what was written";
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/secrets/stolen", t->ns);
        if (http("GET", path, NULL, NULL, &body) != 200) {
                free(body);
                return "no stolen";
        }
        child = cJSON_Parse(body);
        free(body);
        ref = koc_object_get_controller_reference(child);
        ok = ref && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(ref, "name")), "someone") == 0;
        cJSON_Delete(child);
        return ok ? NULL : "the other owner's Secret was taken over";
}

static void test_create_or_update(void **state) {
        tcase t = {.lock = PTHREAD_MUTEX_INITIALIZER, .ns = "rec-cou", .selector = "role=parent"};
        ensure_namespace(t.ns);
        t.reconcile = cou_reconcile;
        t.driver = cou_driver;
        run_case(&t, "cou", &configmaps, &secrets);
}

/* --- a stale cache: update conflicts, patch merges ------------------------------- */

static long external_secret_label(const char *ns, const char *name) {
        char path[256];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/secrets/%s", ns, name);
        return http("PATCH", path, "{\"metadata\":{\"labels\":{\"other\":\"writer\"}}}",
                    "application/merge-patch+json", NULL);
}

static koc_result stale_reconcile(tcase *t, koc_reconcile_context *ctx) {
        const cJSON *parent = koc_reconcile_get_object(ctx);
        const char *ns = koc_reconcile_get_namespace(ctx);
        pthread_mutex_lock(&t->lock);
        bool first = parent && !t->started;
        if (first)
                t->started = true;
        pthread_mutex_unlock(&t->lock);
        if (!first)
                return koc_result_done();
        t->owner = parent;
        koc_op_result op = 99;
        t->data = "MQ==";
        CHECK(t, koc_reconcile_create_or_update(ctx, &secrets, ns, "child", mutate_secret, t,
                                                &op) == 0);
        CHECK(t, op == KOC_OP_CREATED);
        /* Someone else changes it; the watch that would say so is held. */
        CHECK(t, external_secret_label(ns, "child") == 200);
        t->data = "Mg==";
        double put0 = reqs("PUT", "secrets");
        CHECK(t, koc_reconcile_create_or_update(ctx, &secrets, ns, "child", mutate_secret, t,
                                                &op) == -EBUSY);
        CHECK(t, reqs("PUT", "secrets") == put0 + 1);
        /* A merge patch of the difference has no precondition: the other
         * writer's label stays, ours arrives. */
        CHECK(t, koc_reconcile_create_or_patch(ctx, &secrets, ns, "child", mutate_secret, t, &op) ==
                         0);
        CHECK(t, op == KOC_OP_UPDATED);
        koc_object *o = NULL;
        cJSON *j = NULL;
        CHECK(t,
              koc_cache_ref_object(koc_reconcile_get_cache(ctx), &secrets, ns, "child", &o) == 0);
        int pr = koc_object_parse(o, &j);
        koc_object_unref(o);
        const char *label = cJSON_GetStringValue(cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metadata"), "labels"), "other"));
        bool ok = pr == 0 && label && strcmp(label, "writer") == 0;
        cJSON_Delete(j);
        CHECK(t, ok);
        pthread_mutex_lock(&t->lock);
        t->done = true;
        pthread_mutex_unlock(&t->lock);
        return koc_result_done();
}

static const char *stale_driver(tcase *t) {
        char path[256];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps", t->ns);
        if (http("POST", path,
                 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"parent\"}"
                 "}",
                 NULL, NULL) != 201)
                return "cannot create the parent";
        return wait_for(t, is_done) ? NULL : "the reconcile did not finish";
}

static void test_stale_cache_update_conflicts(void **state) {
        /* Fault injection holds the watch of Secrets. */
        KOC_TEST_NEEDS_KOC_APISERVER(&api);
        tcase t = {.lock = PTHREAD_MUTEX_INITIALIZER, .ns = "rec-stale"};
        ensure_namespace(t.ns);
        assert_int_equal(
                koc_test_apiserver_fault(
                        &api, "{\"resource\":\"secrets\",\"verb\":\"watch\",\"hang\":true}"),
                200);
        t.reconcile = stale_reconcile;
        t.driver = stale_driver;
        run_case(&t, "stale", &configmaps, &secrets);
        assert_int_equal(koc_test_apiserver_clear_faults(&api), 200);
}

/* --- a custom resource with a status subresource --------------------------------- */

static void ensure_crd(void) {
        static const char crd[] =
                "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
                "\"metadata\":{\"name\":\"widgets.test.koc.dev\"},\"spec\":{\"group\":"
                "\"test.koc.dev\",\"scope\":\"Namespaced\",\"names\":{\"plural\":\"widgets\","
                "\"singular\":\"widget\",\"kind\":\"Widget\",\"listKind\":\"WidgetList\"},"
                "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"
                "\"subresources\":{\"status\":{}},\"schema\":{\"openAPIV3Schema\":{"
                "\"type\":\"object\",\"properties\":{\"spec\":{\"type\":\"object\","
                "\"x-kubernetes-preserve-unknown-fields\":true},\"status\":{\"type\":\"object\","
                "\"x-kubernetes-preserve-unknown-fields\":true}}}}}]}}";
        long st = http("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, NULL,
                       NULL);
        assert_true(st == 201 || st == 409);
        /* Served once established; bounded. */
        for (int i = 0; i < 300; i++) {
                if (http("GET", "/apis/test.koc.dev/v1/widgets", NULL, NULL, NULL) == 200)
                        return;
                usleep(100 * 1000);
        }
        fail_msg("the CRD was never served");
}

static long post_widget(const char *ns, const char *name, const char *extra) {
        char path[256], body[512];
        snprintf(path, sizeof path, "/apis/test.koc.dev/v1/namespaces/%s/widgets", ns);
        snprintf(body, sizeof body,
                 "{\"apiVersion\":\"test.koc.dev/v1\",\"kind\":\"Widget\",\"metadata\":{"
                 "\"name\":\"%s\"%s},\"spec\":{\"size\":1}}",
                 name, extra ? extra : "");
        return http("POST", path, body, NULL, NULL);
}

/* Another writer of the status (an HTTP merge patch of status.external). */
static long external_status(const char *ns, const char *name, const char *value) {
        char path[256], body[128];
        snprintf(path, sizeof path, "/apis/test.koc.dev/v1/namespaces/%s/widgets/%s/status", ns,
                 name);
        snprintf(body, sizeof body, "{\"status\":{\"external\":\"%s\"}}", value);
        return http("PATCH", path, body, "application/merge-patch+json", NULL);
}

static cJSON *get_widget(const char *ns, const char *name, long *st) {
        char path[256], *body = NULL;
        snprintf(path, sizeof path, "/apis/test.koc.dev/v1/namespaces/%s/widgets/%s", ns, name);
        *st = http("GET", path, NULL, NULL, &body);
        cJSON *j = *st == 200 && body ? cJSON_Parse(body) : NULL;
        free(body);
        return j;
}

static const char *ltt(const cJSON *obj, const char *type) {
        return cJSON_GetStringValue(
                cJSON_GetObjectItem(koc_object_find_condition(obj, type), "lastTransitionTime"));
}

/* The cached widget (parsed), which the reconcile's own writes reach. */
static cJSON *cached_widget(koc_reconcile_context *ctx) {
        koc_object *o = NULL;
        cJSON *j = NULL;
        if (koc_cache_ref_object(koc_reconcile_get_cache(ctx), &widgets,
                                 koc_reconcile_get_namespace(ctx), koc_reconcile_get_name(ctx),
                                 &o) == 0)
                (void)koc_object_parse(o, &j);
        koc_object_unref(o);
        return j;
}

static koc_result status_reconcile(tcase *t, koc_reconcile_context *ctx) {
        const cJSON *obj = koc_reconcile_get_object(ctx);
        const char *ns = koc_reconcile_get_namespace(ctx);
        const char *name = koc_reconcile_get_name(ctx);
        pthread_mutex_lock(&t->lock);
        bool first = obj && !t->started;
        if (first)
                t->started = true;
        pthread_mutex_unlock(&t->lock);
        if (!first)
                return koc_result_done();

        /* First sight: Available Unknown, with observedGeneration. */
        cJSON *mod = cJSON_Duplicate(obj, true);
        CHECK(t, koc_object_set_condition(mod, "Available", "Unknown", "Reconciling", "") == 1);
        CHECK(t, koc_object_set_observed_generation(mod) == 1);
        double patch0 = reqs("PATCH", "widgets");
        CHECK(t, koc_reconcile_patch_status(ctx, NULL, obj, mod, 0) == 1);
        CHECK(t, reqs("PATCH", "widgets") == patch0 + (api.real ? 0 : 1));
        cJSON *c1 = cached_widget(ctx);
        CHECK(t, c1 && koc_object_condition_is_unknown(c1, "Available") &&
                         koc_object_find_condition(c1, "Available"));
        cJSON_Delete(c1);

        /* Someone else writes the status; the patch from the reconcile's
         * older copy merges next to it, no conflict. */
        CHECK(t, external_status(ns, name, "x") == 200);
        cJSON *mod2 = cJSON_Duplicate(mod, true);
        CHECK(t, koc_object_set_condition(mod2, "Available", "True", "Ready", "1 replica") == 1);
        CHECK(t, koc_reconcile_patch_status(ctx, NULL, mod, mod2, 0) == 1);
        /* With the optimistic lock the same older copy is a conflict. */
        cJSON *mod3 = cJSON_Duplicate(mod2, true);
        CHECK(t, koc_object_set_condition(mod3, "Degraded", "False", "Fine", "") == 1);
        CHECK(t, koc_reconcile_patch_status(ctx, NULL, mod, mod3, KOC_STATUS_OPTIMISTIC_LOCK) ==
                         -EBUSY);
        cJSON_Delete(mod3);
        cJSON_Delete(mod);

        /* Equal statuses: nothing sent. */
        double patch1 = reqs("PATCH", "widgets");
        CHECK(t, koc_reconcile_patch_status(ctx, NULL, mod2, mod2, 0) == 0);
        CHECK(t, reqs("PATCH", "widgets") == patch1);
        cJSON_Delete(mod2);

        /* The same status with a new message a second later keeps the
         * transition time; the server and the cache agree. */
        cJSON *cur = cached_widget(ctx);
        CHECK(t, cur && koc_object_condition_is_true(cur, "Available"));
        CHECK(t, strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(cur, "status"),
                                                                 "external")),
                        "x") == 0);
        char t1[64];
        snprintf(t1, sizeof t1, "%s", ltt(cur, "Available"));
        usleep(1100 * 1000);
        cJSON *mod4 = cJSON_Duplicate(cur, true);
        CHECK(t, koc_object_set_condition(mod4, "Available", "True", "Ready", "2 replicas") == 1);
        CHECK(t, koc_reconcile_patch_status(ctx, NULL, cur, mod4, 0) == 1);
        cJSON_Delete(mod4);
        cJSON_Delete(cur);
        cur = cached_widget(ctx);
        CHECK(t, cur && strcmp(ltt(cur, "Available"), t1) == 0);
        /* A new status moves it. */
        mod4 = cJSON_Duplicate(cur, true);
        CHECK(t, koc_object_set_condition(mod4, "Available", "False", "Down", "0 replicas") == 1);
        CHECK(t, koc_reconcile_patch_status(ctx, NULL, cur, mod4, 0) == 1);
        cJSON_Delete(mod4);
        cJSON_Delete(cur);
        cur = cached_widget(ctx);
        CHECK(t, cur && koc_object_condition_is_false(cur, "Available") &&
                         strcmp(ltt(cur, "Available"), t1) != 0);
        cJSON_Delete(cur);

        /* koc_reconcile_set_condition: set and patched in one call, the
         * message formatted; the same again sends nothing; the snapshot
         * given is not changed. */
        cur = cached_widget(ctx);
        char *before = cJSON_PrintUnformatted(cur);
        double patch2 = reqs("PATCH", "widgets");
        CHECK(t, koc_reconcile_set_condition(ctx, cur, "Degraded", "True", "Finalizing",
                                             "%d of %s", 2, "three") == 1);
        CHECK(t, reqs("PATCH", "widgets") == patch2 + (api.real ? 0 : 1));
        char *after = cJSON_PrintUnformatted(cur);
        CHECK(t, before && after && strcmp(before, after) == 0);
        free(before);
        free(after);
        cJSON_Delete(cur);
        cur = cached_widget(ctx);
        const cJSON *dg = koc_object_find_condition(cur, "Degraded");
        CHECK(t, koc_object_condition_is_true(cur, "Degraded") &&
                         strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(dg, "message")),
                                "2 of three") == 0);
        CHECK(t, koc_object_condition_is_false(cur, "Available"));
        patch2 = reqs("PATCH", "widgets");
        CHECK(t, koc_reconcile_set_condition(ctx, cur, "Degraded", "True", "Finalizing",
                                             "%d of %s", 2, "three") == 0);
        CHECK(t, reqs("PATCH", "widgets") == patch2);
        CHECK(t, koc_reconcile_set_condition(ctx, NULL, "Degraded", "True", "x", "y") == -EINVAL);
        cJSON_Delete(cur);

        /* Server-side apply of the status: the real server takes it;
         * koc-apiserver refuses applies to subresources (400). */
        cJSON *ap = cJSON_Parse("{\"apiVersion\":\"test.koc.dev/v1\",\"kind\":\"Widget\","
                                "\"metadata\":{\"resourceVersion\":\"1\"},"
                                "\"status\":{\"applied\":\"yes\"}}");
        cJSON_AddStringToObject(cJSON_GetObjectItem(ap, "metadata"), "name", name);
        cJSON_AddStringToObject(cJSON_GetObjectItem(ap, "metadata"), "namespace", ns);
        int ar = koc_reconcile_apply_status(ctx, NULL, ap, "koc-test", KOC_APPLY_FORCE);
        cJSON_Delete(ap);
        koc_error aerr = {0};
        if (ar < 0 && koc_reconcile_get_last_error(ctx, &aerr) == ar)
                fprintf(stderr, "apply_status: %d: %s\n", ar, aerr.message);
        if (api.real) {
                CHECK(t, ar == 0);
                cur = cached_widget(ctx);
                CHECK(t, cur && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(
                                               cJSON_GetObjectItem(cur, "status"), "applied")),
                                       "yes") == 0);
                cJSON_Delete(cur);
        } else {
                CHECK(t, ar == -EINVAL);
        }

        pthread_mutex_lock(&t->lock);
        t->done = true;
        pthread_mutex_unlock(&t->lock);
        return koc_result_done();
}

static const char *status_driver(tcase *t) {
        if (post_widget(t->ns, "w", NULL) != 201)
                return "cannot create the widget";
        if (!wait_for(t, is_done))
                return "the reconcile did not finish";
        long st;
        cJSON *w = get_widget(t->ns, "w", &st);
        const cJSON *status = cJSON_GetObjectItem(w, "status");
        const char *ext = cJSON_GetStringValue(cJSON_GetObjectItem(status, "external"));
        bool ok = w && ext && strcmp(ext, "x") == 0 &&
                  koc_object_condition_is_false(w, "Available") &&
                  cJSON_GetObjectItem(status, "observedGeneration");
        cJSON_Delete(w);
        return ok ? NULL : "the status on the server lost a writer's field or a condition";
}

static void test_status_patch_and_conditions(void **state) {
        tcase t = {.lock = PTHREAD_MUTEX_INITIALIZER, .ns = "rec-status"};
        ensure_namespace(t.ns);
        ensure_crd();
        t.reconcile = status_reconcile;
        t.driver = status_driver;
        run_case(&t, "status", &widgets, NULL);
}

/* --- a finalizer whose cleanup writes the status --------------------------------- */

static koc_result fin_apply(koc_reconcile_context *ctx, const cJSON *obj, void *userdata) {
        tcase *t = userdata;
        pthread_mutex_lock(&t->lock);
        t->applies++;
        pthread_mutex_unlock(&t->lock);
        return koc_result_done();
}

static koc_result fin_cleanup(koc_reconcile_context *ctx, const cJSON *obj, void *userdata) {
        tcase *t = userdata;
        pthread_mutex_lock(&t->lock);
        t->cleanups++;
        pthread_mutex_unlock(&t->lock);
        /* The reconcile says it is cleaning up, and so does someone else:
         * two writes after the snapshot the finalizer helper started from. */
        cJSON *mod = cJSON_Duplicate(obj, true);
        koc_object_set_condition(mod, "Available", "False", "Deleting", "");
        int r = koc_reconcile_patch_status(ctx, NULL, obj, mod, 0);
        cJSON_Delete(mod);
        CHECK(t, r >= 0); /* 0: a second cleanup finds it written */
        long code = external_status(koc_reconcile_get_namespace(ctx), koc_reconcile_get_name(ctx),
                                    "cleaning");
        if (code != 200) {
                char what[160];
                snprintf(what, sizeof what, "the external status write answered %ld (cleanup %d, rv %s)",
                         code, t->cleanups,
                         cJSON_GetStringValue(cJSON_GetObjectItem(
                                 cJSON_GetObjectItem(obj, "metadata"), "resourceVersion")));
                failed(t, __LINE__, what);
                return koc_result_terminal(-EIO);
        }
        return koc_result_done();
}

static koc_result fin_reconcile(tcase *t, koc_reconcile_context *ctx) {
        return koc_reconcile_finalizer(ctx, "koc.test/fin", fin_apply, fin_cleanup, t);
}

static bool applied(tcase *t) {
        return t->applies >= 1;
}

static const char *fin_driver(tcase *t) {
        if (post_widget(t->ns, "f", NULL) != 201)
                return "cannot create the widget";
        if (!wait_for(t, applied))
                return "the finalizer was never added";
        char path[256];
        snprintf(path, sizeof path, "/apis/test.koc.dev/v1/namespaces/%s/widgets/f", t->ns);
        if (http("DELETE", path, NULL, NULL, NULL) != 200)
                return "cannot delete the widget";
        uint64_t deadline = koc_now_boottime_usec() + wait_usec();
        long st = 0;
        while (koc_now_boottime_usec() < deadline) {
                cJSON_Delete(get_widget(t->ns, "f", &st));
                if (st == 404)
                        break;
                usleep(20 * 1000);
        }
        if (st != 404)
                return "the widget is still there: the finalizer was not removed";
        /* Time for a second cleanup to show, had the removal failed. */
        usleep(300 * 1000);
        return NULL;
}

static void test_finalizer_with_status_write(void **state) {
        tcase t = {.lock = PTHREAD_MUTEX_INITIALIZER, .ns = "rec-fin"};
        ensure_namespace(t.ns);
        ensure_crd();
        t.reconcile = fin_reconcile;
        t.driver = fin_driver;
        run_case(&t, "fin", &widgets, NULL);
        assert_int_equal(t.cleanups, 1);
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
                cmocka_unit_test(test_create_or_update),
                cmocka_unit_test(test_stale_cache_update_conflicts),
                cmocka_unit_test(test_status_patch_and_conditions),
                cmocka_unit_test(test_finalizer_with_status_write),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

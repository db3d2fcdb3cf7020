/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc-example-configmap-mirror: a small operator on the controller runtime.
 *
 * ConfigMaps labelled koc.example/mirror=true are copied into every namespace
 * listed in their annotation koc.example/mirror-to ("a,b,c") and kept in sync;
 * a changed or deleted copy is restored.  When the source goes, a finalizer
 * makes sure its copies go first.  The source's annotation
 * koc.example/mirror-status says how many copies are in sync ("2/2 in sync"),
 * and a failure is recorded as a Warning Event on the source.
 *
 *   koc-example-configmap-mirror --kubeconfig=kc.yaml --identity=a
 *
 * Run two or more copies: one reconciles, the others keep a warm cache and
 * take over when it goes.  Every flag of the manager is accepted (--help).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <koc/koc.h>

#define FINALIZER "koc.example/mirror"
#define TARGETS "koc.example/mirror-to"
#define STATUS "koc.example/mirror-status"
#define ORIGIN "koc.example/mirror-of"
#define COPY_LABEL "koc.example/mirror-copy"

static const koc_resource configmaps = {
        .version = "v1", .resource = "configmaps", .kind = "ConfigMap", .namespaced = true};

/* metadata.SECTION.KEY as a string, "" when absent. */
static const char *meta(const cJSON *o, const char *section, const char *key) {
        const cJSON *md = cJSON_GetObjectItem(o, "metadata");
        const char *v =
                cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(md, section), key));
        return v ? v : "";
}

static const char *meta_rv(const cJSON *o) {
        const char *v = cJSON_GetStringValue(
                cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metadata"), "resourceVersion"));
        return v ? v : "";
}

/* Calls fn for each namespace in the source's target list except its own. */
static int for_each_target(koc_reconcile_context *ctx, const cJSON *src,
                           int (*fn)(koc_reconcile_context *, const cJSON *, const char *)) {
        char list[1024];
        int ok = 0;
        snprintf(list, sizeof list, "%s", meta(src, "annotations", TARGETS));
        for (char *save = NULL, *ns = strtok_r(list, ", ", &save); ns;
             ns = strtok_r(NULL, ", ", &save))
                if (strcmp(ns, koc_reconcile_get_namespace(ctx)) != 0)
                        ok += fn(ctx, src, ns);
        return ok;
}

/* Makes the copy in ns match the source; 1 when it does. */
static int sync_copy(koc_reconcile_context *ctx, const cJSON *src, const char *ns) {
        _koc_cleanup_(koc_response_freep) koc_response *cur = NULL, *resp = NULL;
        const char *name = koc_reconcile_get_name(ctx);
        char origin[512];
        snprintf(origin, sizeof origin, "%s/%s", koc_reconcile_get_namespace(ctx), name);

        if (koc_reconcile_get(ctx, &configmaps, ns, name, &cur) < 0 || cur->error < 0)
                return 0;
        const cJSON *data = cJSON_GetObjectItem(src, "data");
        if (cur->status == 200 && cJSON_Compare(cJSON_GetObjectItem(cur->body, "data"), data, true))
                return 1;
        cJSON *copy = cJSON_CreateObject();
        cJSON *md = cJSON_AddObjectToObject(copy, "metadata");
        cJSON_AddStringToObject(md, "name", name);
        cJSON_AddStringToObject(md, "namespace", ns);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "labels"), COPY_LABEL, "true");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "annotations"), ORIGIN, origin);
        cJSON_AddItemToObject(copy, "data",
                              data ? cJSON_Duplicate(data, true) : cJSON_CreateObject());
        int r;
        if (cur->status == 200) {
                /* Optimistic concurrency: replace exactly the copy we read. */
                cJSON_AddStringToObject(md, "resourceVersion", meta_rv(cur->body));
                r = koc_reconcile_update(ctx, &configmaps, copy, &resp);
        } else
                r = koc_reconcile_create(ctx, &configmaps, ns, copy, &resp);
        cJSON_Delete(copy);
        if (r < 0 || resp->error < 0 || resp->status >= 300) {
                char msg[256];
                snprintf(msg, sizeof msg, "cannot write the copy in namespace %s: %s", ns,
                         r < 0 ? strerror(-r) : resp->message);
                koc_reconcile_record_event(ctx, src, "Warning", "MirrorFailed", msg);
                return 0;
        }
        return 1;
}

static int delete_copy(koc_reconcile_context *ctx, const cJSON *src, const char *ns) {
        _koc_cleanup_(koc_response_freep) koc_response *resp = NULL;
        int r = koc_reconcile_delete(ctx, &configmaps, ns, koc_reconcile_get_name(ctx), &resp);
        return r == 0 && resp->error == 0 && (resp->status < 300 || resp->status == 404);
}

static int count_one(koc_reconcile_context *ctx, const cJSON *src, const char *ns) {
        return 1;
}

static koc_result apply(koc_reconcile_context *ctx, const cJSON *src, void *userdata) {
        int want = for_each_target(ctx, src, count_one);
        int in_sync = for_each_target(ctx, src, sync_copy);
        char status[64];
        snprintf(status, sizeof status, "%d/%d in sync", in_sync, want);
        if (strcmp(meta(src, "annotations", STATUS), status) != 0) {
                _koc_cleanup_(koc_response_freep) koc_response *resp = NULL;
                cJSON *p = cJSON_CreateObject();
                cJSON_AddStringToObject(
                        cJSON_AddObjectToObject(cJSON_AddObjectToObject(p, "metadata"),
                                                "annotations"),
                        STATUS, status);
                int r = koc_reconcile_patch(ctx, &configmaps, koc_reconcile_get_namespace(ctx),
                                            koc_reconcile_get_name(ctx), KOC_PATCH_MERGE, p, &resp);
                cJSON_Delete(p);
                if (r < 0 || resp->status >= 300)
                        return koc_result_error(r < 0 ? r : -EIO);
        }
        /* Failed copies are retried with backoff; healthy ones re-checked hourly. */
        return in_sync < want ? koc_result_error(-EAGAIN)
                              : koc_result_requeue_after(3600 * KOC_USEC_PER_SEC);
}

static koc_result cleanup(koc_reconcile_context *ctx, const cJSON *src, void *userdata) {
        int want = for_each_target(ctx, src, count_one);
        return for_each_target(ctx, src, delete_copy) == want ? koc_result_done()
                                                              : koc_result_error(-EAGAIN);
}

static koc_result reconcile(koc_reconcile_context *ctx, void *userdata) {
        return koc_reconcile_finalizer(ctx, FINALIZER, apply, cleanup, NULL);
}

/* A copy's event reconciles its source, so tampering is undone. */
static void copy_to_source(const cJSON *copy, koc_keys *out, void *userdata) {
        char origin[512];
        snprintf(origin, sizeof origin, "%s", meta(copy, "annotations", ORIGIN));
        char *slash = strchr(origin, '/');
        if (slash) {
                *slash = '\0';
                koc_keys_add(out, origin, slash + 1);
        }
}

int main(int argc, char *argv[]) {
        koc_manager_config cfg;
        koc_error err = {0};
        koc_manager_config_init(&cfg);
        cfg.leader_election_id = "koc-example-configmap-mirror";
        int r = koc_manager_parse_flags(&cfg, argc, argv, &err);
        if (r != 0)
                return r > 0 ? 0 : (fprintf(stderr, "%s\n", err.message), 2);

        _koc_cleanup_(koc_manager_unrefp) koc_manager *m = NULL;
        if (koc_manager_new(NULL, &cfg, &m, &err) < 0)
                return fprintf(stderr, "%s\n", err.message), 1;
        /* The identity in the User-Agent lets the API server's logs (audit,
         * koc-apiserver --log-writes) tell the replicas' requests apart. */
        char ua[320];
        snprintf(ua, sizeof ua, "koc-example-configmap-mirror/0.1 (%s)",
                 koc_manager_get_identity(m));
        koc_client_set_user_agent(koc_manager_get_client(m), ua);

        koc_controller_options o;
        koc_controller_options_init(&o);
        o.name = "configmap-mirror";
        o.resource = configmaps;
        o.label_selector = "koc.example/mirror=true";
        o.reconcile = reconcile;
        koc_controller *c = NULL;
        if (koc_controller_new(m, &o, &c, &err) < 0 ||
            koc_controller_watches(c, &configmaps, COPY_LABEL "=true", copy_to_source, NULL, NULL,
                                   &err) < 0)
                return fprintf(stderr, "%s\n", err.message), 1;
        r = koc_manager_run(m);
        koc_controller_unref(c);
        return r;
}

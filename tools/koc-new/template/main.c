/*
 * __NAME__: a highly available operator built on koc.
 *
 * One controller: every ConfigMap labelled __NAME__/mirror=true gets a copy
 * named <name>-mirror in its namespace, kept equal to it; a changed or
 * deleted copy is restored.  The finalizer __NAME__/mirror deletes the copy
 * before the source goes.  The operator watches the namespace it runs in
 * (POD_NAMESPACE, the Lease's namespace), which is what the chart's Role
 * allows.
 *
 * Every replica runs this program and keeps a warm cache; one leads (holds
 * the Lease) and reconciles, the others stand by and take over within
 * milliseconds when the leader steps down (SIGTERM), or when its Lease
 * expires (crash).  See --help for the flags (kubeconfig, lease timings,
 * probes, shutdown).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <koc/koc.h>

#define SOURCE_LABEL "__NAME__/mirror"
#define COPY_LABEL "__NAME__/mirror-copy"
#define ORIGIN "__NAME__/mirror-of"
#define FINALIZER "__NAME__/mirror"

static const koc_resource configmaps = {
        .version = "v1", .resource = "configmaps", .kind = "ConfigMap", .namespaced = true};

static void copy_name(koc_reconcile_context *ctx, char *buf, size_t size) {
        snprintf(buf, size, "%s-mirror", koc_reconcile_get_name(ctx));
}

/* Makes the copy match the source: created when missing, updated (with the
 * resourceVersion read, so a concurrent change is a conflict) when it
 * differs. */
static koc_result apply(koc_reconcile_context *ctx, const cJSON *src, void *userdata) {
        _koc_cleanup_(koc_response_freep) koc_response *cur = NULL, *resp = NULL;
        const char *ns = koc_reconcile_get_namespace(ctx);
        char name[300];
        int r;

        (void) userdata;
        copy_name(ctx, name, sizeof name);
        r = koc_reconcile_get(ctx, &configmaps, ns, name, &cur);
        if (r < 0 || cur->error < 0)
                return koc_result_error(r < 0 ? r : cur->error);
        const cJSON *data = cJSON_GetObjectItem(src, "data");
        if (cur->status == 200 && cJSON_Compare(cJSON_GetObjectItem(cur->body, "data"), data, true))
                return koc_result_done();

        cJSON *copy = cJSON_CreateObject();
        cJSON *md = cJSON_AddObjectToObject(copy, "metadata");
        cJSON_AddStringToObject(md, "name", name);
        cJSON_AddStringToObject(md, "namespace", ns);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "labels"), COPY_LABEL, "true");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "annotations"), ORIGIN,
                                koc_reconcile_get_name(ctx));
        cJSON_AddItemToObject(copy, "data", data ? cJSON_Duplicate(data, true) : cJSON_CreateObject());
        if (cur->status == 200) {
                const cJSON *rv = cJSON_GetObjectItem(cJSON_GetObjectItem(cur->body, "metadata"),
                                                      "resourceVersion");
                cJSON_AddStringToObject(md, "resourceVersion", cJSON_GetStringValue(rv) ?: "");
                r = koc_reconcile_update(ctx, &configmaps, copy, &resp);
        } else
                r = koc_reconcile_create(ctx, &configmaps, ns, copy, &resp);
        cJSON_Delete(copy);
        if (r < 0 || resp->error < 0 || resp->status >= 300) {
                /* Retried with backoff (a conflict, -EBUSY: read again and
                 * decide); koc logs the failure at warn with the server's
                 * answer, and koc_response_errno() gives each answer its own
                 * errno (-EACCES for 403, -EINVAL for 422, ...). */
                return koc_result_error(r < 0 ? r : koc_response_errno(resp));
        }
        koc_log_info("__IDENT__", "mirrored %s/%s to %s", ns, koc_reconcile_get_name(ctx), name);
        return koc_result_done();
}

/* The source is being deleted: its copy goes first, then the finalizer. */
static koc_result cleanup(koc_reconcile_context *ctx, const cJSON *src, void *userdata) {
        _koc_cleanup_(koc_response_freep) koc_response *resp = NULL;
        char name[300];

        (void) src;
        (void) userdata;
        copy_name(ctx, name, sizeof name);
        int r = koc_reconcile_delete(ctx, &configmaps, koc_reconcile_get_namespace(ctx), name, &resp);
        if (r < 0 || resp->error < 0 || (resp->status >= 300 && resp->status != 404))
                return koc_result_error(r < 0 ? r : koc_response_errno(resp));
        return koc_result_done();
}

/* Runs on a worker thread while this replica leads; writes are fenced (none
 * leaves the process once leadership reads false). */
static koc_result reconcile(koc_reconcile_context *ctx, void *userdata) {
        return koc_reconcile_finalizer(ctx, FINALIZER, apply, cleanup, userdata);
}

/* An event of a copy reconciles its source, so tampering is undone. */
static void copy_to_source(const cJSON *copy, koc_keys *out, void *userdata) {
        const cJSON *md = cJSON_GetObjectItem(copy, "metadata");
        const char *ns = cJSON_GetStringValue(cJSON_GetObjectItem(md, "namespace"));
        const char *origin =
                cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(md, "annotations"), ORIGIN));

        (void) userdata;
        if (ns && origin)
                koc_keys_add(out, ns, origin);
}

int main(int argc, char *argv[]) {
        koc_manager_config cfg;
        koc_error err = {0};
        int r;

        koc_manager_config_init(&cfg);
        cfg.leader_election_id = "__NAME__";
        /* Every replica is Ready; set true when only the leader should get
         * Service traffic (see the chart's README about rollouts). */
        cfg.gate_readiness_on_leader = false;
        r = koc_manager_parse_flags(&cfg, argc, argv, &err);
        if (r == KOC_MANAGER_FLAGS_HELP)
                return 0;
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", argv[0], err.message);
                return 2;
        }

        _koc_cleanup_(koc_manager_unrefp) koc_manager *m = NULL;
        r = koc_manager_new(NULL, &cfg, &m, &err);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", argv[0], err.message);
                return 1;
        }

        koc_controller_options o;
        koc_controller_options_init(&o);
        o.name = "mirror";
        o.resource = configmaps;
        /* The namespace the operator runs in.  NULL watches all namespaces:
         * then set rbac.allNamespaces in the chart. */
        o.namespace_ = koc_manager_get_lease_namespace(m);
        o.label_selector = SOURCE_LABEL "=true";
        o.reconcile = reconcile;
        _koc_cleanup_(koc_controller_unrefp) koc_controller *c = NULL;
        if (koc_controller_new(m, &o, &c, &err) < 0 ||
            koc_controller_watches(c, &configmaps, COPY_LABEL "=true", copy_to_source, NULL, NULL,
                                   &err) < 0) {
                fprintf(stderr, "%s: %s\n", argv[0], err.message);
                return 1;
        }

        /* Until SIGTERM/SIGINT: 0 after a clean drain and release. */
        return koc_manager_run(m);
}

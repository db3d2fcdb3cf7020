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
 * The name of the copy comes from the source, which anyone who may create a
 * ConfigMap there chooses; the operator acts with its own rights.  So it
 * writes only what it made: it creates <name>-mirror only where none
 * exists, and updates or deletes it only when it carries this operator's
 * label and names this source in its annotation, with the write conditional
 * on the version it checked (a 409 means read again).  Any other
 * <name>-mirror is left untouched, with a warn line.  Keep that pattern when
 * you replace the controller.
 *
 * Every replica runs this program and keeps a warm cache; one leads (holds
 * the Lease) and reconciles, the others stand by and take over within
 * milliseconds when the leader steps down (SIGTERM), or when its Lease
 * expires (crash).  See --help for the flags (kubeconfig, lease timings,
 * probes, shutdown).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <koc/koc.h>
/* koc-new api: the API controllers' headers */

#define SOURCE_LABEL "__NAME__/mirror"
#define COPY_LABEL "__NAME__/mirror-copy"
#define ORIGIN "__NAME__/mirror-of"
#define FINALIZER "__NAME__/mirror"

static const koc_resource configmaps = {
        .version = "v1", .resource = "configmaps", .kind = "ConfigMap", .namespaced = true};

static void copy_name(koc_reconcile_context *ctx, char *buf, size_t size) {
        snprintf(buf, size, "%s-mirror", koc_reconcile_get_name(ctx));
}

static const char *meta_str(const cJSON *obj, const char *section, const char *key) {
        const cJSON *md = cJSON_GetObjectItem(obj, "metadata");
        const char *v = cJSON_GetStringValue(
                section ? cJSON_GetObjectItem(cJSON_GetObjectItem(md, section), key)
                        : cJSON_GetObjectItem(md, key));
        return v ? v : "";
}

/* Whether cur (the copy as read) was made by this operator for this source. */
static bool owned(koc_reconcile_context *ctx, const cJSON *cur) {
        return strcmp(meta_str(cur, "labels", COPY_LABEL), "true") == 0 &&
               strcmp(meta_str(cur, "annotations", ORIGIN), koc_reconcile_get_name(ctx)) == 0;
}

/* A ConfigMap of the copy's name that is not ours: left alone, said at warn
 * (at most 5 lines per 10 s, so that many such sources cannot flood the
 * log), and checked again later, when it may be gone. */
static koc_result refuse(koc_reconcile_context *ctx, const char *name) {
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        static uint64_t window;
        static unsigned used;
        uint64_t now = koc_now_boottime_usec();
        pthread_mutex_lock(&lock);
        if (window == 0 || now - window >= 10 * KOC_USEC_PER_SEC) {
                window = now;
                used = 0;
        }
        bool say = used < 5;
        if (say)
                used++;
        pthread_mutex_unlock(&lock);
        if (say)
                koc_log_warn("__IDENT__",
                             "source=%s/%s: ConfigMap %s exists and was not made by this operator "
                             "for this source; left untouched",
                             koc_reconcile_get_namespace(ctx), koc_reconcile_get_name(ctx), name);
        return koc_result_requeue_after(600 * KOC_USEC_PER_SEC);
}

/* Reads the copy into *ret: 0 with the answer (200 or 404), or the
 * failure's errno. */
static int read_copy(koc_reconcile_context *ctx, const char *name, koc_response **ret) {
        int r = koc_reconcile_get(ctx, &configmaps, koc_reconcile_get_namespace(ctx), name, ret);
        if (r < 0)
                return r;
        if ((*ret)->error < 0 || ((*ret)->status != 200 && (*ret)->status != 404)) {
                r = koc_response_errno(*ret);
                return r < 0 ? r : -EPROTO; /* another 2xx: not what a GET answers */
        }
        return 0;
}

/* Makes the copy match the source: created when missing, updated (with the
 * resourceVersion checked, so a concurrent change is a conflict) when it is
 * ours and differs. */
static koc_result apply(koc_reconcile_context *ctx, const cJSON *src, void *userdata) {
        _koc_cleanup_(koc_response_freep) koc_response *cur = NULL, *resp = NULL;
        const char *ns = koc_reconcile_get_namespace(ctx);
        char name[300];
        int r;

        (void) userdata;
        copy_name(ctx, name, sizeof name);
        r = read_copy(ctx, name, &cur);
        if (r < 0)
                return koc_result_error(r);
        if (cur->status == 200 && !owned(ctx, cur->body))
                return refuse(ctx, name);
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
                /* Exactly the version checked above: changed since, 409. */
                cJSON_AddStringToObject(md, "resourceVersion",
                                        meta_str(cur->body, NULL, "resourceVersion"));
                r = koc_reconcile_update(ctx, &configmaps, copy, &resp);
        } else
                /* Only where none exists: one created since, 409. */
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

/* The source is being deleted: its copy goes first, then the finalizer.  A
 * ConfigMap of that name that is not ours stays, and does not hold the
 * source back. */
static koc_result cleanup(koc_reconcile_context *ctx, const cJSON *src, void *userdata) {
        _koc_cleanup_(koc_response_freep) koc_response *cur = NULL, *resp = NULL;
        char name[300];

        (void) src;
        (void) userdata;
        copy_name(ctx, name, sizeof name);
        int r = read_copy(ctx, name, &cur);
        if (r < 0)
                return koc_result_error(r);
        if (cur->status == 404)
                return koc_result_done();
        if (!owned(ctx, cur->body)) {
                refuse(ctx, name);
                return koc_result_done();
        }
        /* Delete exactly the object checked (uid and resourceVersion
         * preconditions): replaced or changed since, 409, read again. */
        cJSON *opts = cJSON_CreateObject();
        cJSON *pre = cJSON_AddObjectToObject(opts, "preconditions");
        cJSON_AddStringToObject(pre, "uid", meta_str(cur->body, NULL, "uid"));
        cJSON_AddStringToObject(pre, "resourceVersion", meta_str(cur->body, NULL, "resourceVersion"));
        r = koc_reconcile_delete_with_options(ctx, &configmaps, koc_reconcile_get_namespace(ctx), name,
                                              opts, &resp);
        cJSON_Delete(opts);
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
        /* The writes and reads it makes besides its informers' (list, watch):
         * --print-rbac prints them for the chart. */
        r = koc_manager_declare_access(m, &configmaps, "get,create,update,delete");
        if (r < 0) {
                fprintf(stderr, "%s: cannot declare the ConfigMaps' access\n", argv[0]);
                return 1;
        }
        /* koc-new api: the API controllers */

        /* Until SIGTERM/SIGINT: 0 after a clean drain and release. */
        return koc_manager_run(m);
}

/*
 * The __KIND__ controller (__GROUP__/__VERSION__), written by `koc-new api`:
 * for every __KIND__ a Deployment of the same name runs spec.size replicas,
 * owned by it (the garbage collector deletes it with its owner; a
 * hand-edited Deployment is corrected through the owned-object watch), and
 * status.conditions says Available.  The types come from the CRD's schema
 * (charts/__NAME__/crds/__GROUP_____PLURAL__.yaml, generated at build time
 * into __KIDENT__-types.h) and from koc's built-in ones (<koc/types/k8s.h>):
 * a mistyped field is a compile error.  Replace the Deployment with what your
 * operator runs; keep the pattern (read typed, build typed, create-or-update,
 * status patch).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <koc/koc.h>
#include <koc/types/k8s.h>

#include "__KIDENT___controller.h"
#include "__KIDENT__-types.h"

/* What the pods run: replace it (koc_manager_add_flag_string in main.c makes it a flag). */
#define __KUPPER___IMAGE "registry.k8s.io/pause:3.10"

static const koc_resource __KIDENT___resource = {.group = "__GROUP__",
                                                .version = "__VERSION__",
                                                .resource = "__PLURAL__",
                                                .kind = "__KIND__",
                                                .namespaced = __NAMESPACED__};
static const koc_resource __KIDENT___deployments = {.group = "apps",
                                                   .version = "v1",
                                                   .resource = "deployments",
                                                   .kind = "Deployment",
                                                   .namespaced = true};

/* What the Deployment must look like, for __KIDENT___mutate_deployment. */
struct __KIDENT___desired {
        const cJSON *owner;
        cJSON *deployment; /* the whole object, for a creation */
        int32_t replicas;
};

/* The Deployment as read (or a fresh one with only its name): a new one gets
 * the whole desired object; an existing one only the fields this operator
 * owns (spec.replicas), so that what the server defaults is kept and an
 * unchanged Deployment sends nothing.  Then the controller ownerReference
 * (refused when another object controls it). */
static int __KIDENT___mutate_deployment(cJSON *d, void *userdata) {
        const struct __KIDENT___desired *want = userdata;
        koc_error err = {0};
        int r;

        cJSON *spec = cJSON_GetObjectItem(d, "spec");
        if (!spec)
                r = koc_mutate_merge(d, want->deployment);
        else if (!cJSON_IsObject(spec))
                r = -EINVAL;
        else {
                cJSON_DeleteItemFromObjectCaseSensitive(spec, "replicas");
                r = cJSON_AddNumberToObject(spec, "replicas", want->replicas) ? 0 : -ENOMEM;
        }
        if (r < 0)
                return r;
        r = koc_object_set_owner_reference(d, want->owner, KOC_OWNER_CONTROLLER, &err);
        if (r < 0)
                koc_log_warn("__IDENT__", "Deployment: %s", err.message);
        return r;
}

/* The Available condition: koc_reconcile_set_condition sets it on a copy
 * of obj and sends the difference with koc_reconcile_patch_status (nothing
 * when nothing changed).  A failed write is said; its errno is returned for
 * the reconcile to be retried. */
static int __KIDENT___set_available(koc_reconcile_context *ctx, const cJSON *obj,
                                    const char *status, const char *reason, const char *message) {
        int r = koc_reconcile_set_condition(ctx, obj, "Available", status, reason, "%s", message);
        if (r < 0)
                koc_log_warn("__IDENT__", "%s: cannot set the Available condition (%s): %s",
                             koc_reconcile_get_key(ctx), reason, strerror(-r));
        return r;
}

/* Runs on a worker thread while this replica leads; writes are fenced. */
static koc_result __KIDENT___reconcile(koc_reconcile_context *ctx, void *userdata) {
        const cJSON *obj = koc_reconcile_get_object(ctx);
        const char *ns = userdata;
        char err[256], message[160];
        __KIDENT__ cr;
        int r;

        if (!obj)
                return koc_result_done(); /* deleted: the garbage collector takes the Deployment */
        /* The schema's types and bounds: the server checked them already, but
         * an object from an older version of the CRD may not follow them. */
        r = __KIDENT___parse(obj, &cr, err, sizeof err);
        if (r >= 0 && (r = __KIDENT___validate(&cr, err, sizeof err)) < 0)
                __KIDENT___free(&cr);
        if (r < 0) {
                koc_log_warn("__IDENT__", "%s: %s", koc_reconcile_get_key(ctx), err);
                if (__KIDENT___set_available(ctx, obj, "False", "InvalidSpec", err) < 0)
                        return koc_result_error(r); /* the condition is not written yet */
                return koc_result_terminal(r);      /* until the object changes */
        }
        int32_t size = cr.spec.size;
        __KIDENT___free(&cr);
        if (__KIDENT___resource.namespaced)
                ns = koc_reconcile_get_namespace(ctx);
        if (!ns || !*ns) /* a cluster-scoped __KIND__ without leader election */
                return koc_result_terminal(-EINVAL);

        /* The Deployment, built with the typed builders.  Its name is a label
         * value too, which Kubernetes bounds at 63 characters. */
        const char *name = koc_reconcile_get_name(ctx);
        if (strlen(name) > 63) {
                if (__KIDENT___set_available(ctx, obj, "False", "NameTooLong",
                                             "the name is longer than 63 characters (a label value)") < 0)
                        return koc_result_error(-EINVAL);
                return koc_result_terminal(-EINVAL);
        }
        koc_string_entry labels[] = {{"app.kubernetes.io/name", "__SINGULAR__"},
                                     {"app.kubernetes.io/instance", (char *) name},
                                     {"app.kubernetes.io/managed-by", "__NAME__"}};
        size_t n_labels = sizeof labels / sizeof labels[0];
        koc_core_v1_container container = {.name = "__SINGULAR__", .image = __KUPPER___IMAGE};
        koc_apps_v1_deployment d = {
                .metadata = {.name = (char *) name, .namespace_ = (char *) ns, .labels = labels,
                             .labels_len = n_labels},
                .spec = {.replicas = size,
                         .has_replicas = true,
                         .selector = {.match_labels = labels, .match_labels_len = n_labels},
                         .template_ = {.metadata = {.labels = labels, .labels_len = n_labels},
                                       .spec = {.containers = &container, .containers_len = 1}}}};
        struct __KIDENT___desired want = {
                .owner = obj, .deployment = koc_apps_v1_deployment_to_json(&d), .replicas = size};
        if (!want.deployment)
                return koc_result_error(-ENOMEM);
        koc_op_result op;
        r = koc_reconcile_create_or_update(ctx, &__KIDENT___deployments, ns, name,
                                           __KIDENT___mutate_deployment, &want, &op);
        cJSON_Delete(want.deployment);
        if (r < 0) {
                /* -EADDRINUSE: another object controls a Deployment of that
                 * name; said in the condition, not retried until it changes. */
                if (r == -EADDRINUSE) {
                        if (__KIDENT___set_available(
                                    ctx, obj, "False", "DeploymentNotOwned",
                                    "a Deployment of this name is controlled by another object") < 0)
                                return koc_result_error(r);
                        return koc_result_terminal(r);
                }
                return koc_result_error(r); /* retried with backoff; koc logs the answer */
        }
        if (op == KOC_OP_CREATED)
                koc_reconcile_record_event(ctx, obj, "Normal", "Created", "Deployment created");

        /* A real operator would wait for the Deployment's readyReplicas
         * here (the owned-object watch reconciles again when they change). */
        snprintf(message, sizeof message, "Deployment %s has %d replicas wanted", name, (int) size);
        r = __KIDENT___set_available(ctx, obj, "True", "Reconciled", message);
        return r < 0 ? koc_result_error(r) : koc_result_done();
}

int __KIDENT___controller_setup(koc_manager *m, koc_controller **ret, koc_error *err) {
        koc_controller_options o;
        _koc_cleanup_(koc_controller_unrefp) koc_controller *c = NULL;
        int r;

        koc_controller_options_init(&o);
        o.name = "__PLURAL__"; /* a DNS-1123 label, unique among the controllers */
        o.resource = __KIDENT___resource;
        /* A namespaced __KIND__ is watched in the operator's namespace (the
         * Lease's, what the chart's Role allows; NULL: every namespace, then
         * set rbac.allNamespaces); a cluster-scoped one everywhere, with its
         * Deployment in the operator's namespace. */
        o.namespace_ = __KIDENT___resource.namespaced ? koc_manager_get_lease_namespace(m) : NULL;
        o.reconcile = __KIDENT___reconcile;
        o.userdata = (void *) koc_manager_get_lease_namespace(m);
        r = koc_controller_new(m, &o, &c, err);
        if (r < 0)
                return r;
        r = koc_controller_owns(c, &__KIDENT___deployments, err);
        if (r < 0)
                return r;
        /* The writes it makes (--print-rbac prints them with the reads its
         * informers need, for the chart). */
        r = koc_manager_declare_access(m, &__KIDENT___deployments, "get,create,update");
        if (r >= 0)
                r = koc_manager_declare_access(m, &__KIDENT___resource, "status/patch");
        if (r < 0)
                return koc_error_set(err, r, "cannot declare the controller's RBAC");
        *ret = c;
        c = NULL;
        return 0;
}

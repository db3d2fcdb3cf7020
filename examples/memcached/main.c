/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc-example-memcached: the operator-sdk tutorial's Memcached operator on koc.
 *
 * For every Memcached (cache.example.com/v1alpha1, chart/crds/) it keeps a
 * Deployment of the same name and namespace running spec.size replicas of
 * memcached (--image, memcached:1.6.26-alpine by default) listening on
 * spec.containerPort, controlled by the Memcached (an ownerReference, so the
 * garbage collector removes it with its owner).  The Deployment is watched
 * (owned), so a hand-edited replica count is set back at once; a Deployment
 * of that name that someone else made is left alone (DeploymentNotOwned).
 *
 * status.conditions[Available] says how it goes: Unknown "Reconciling" on
 * first sight, then what the Deployment's own status says (on a cluster
 * without nodes it stays False: no pod ever becomes ready).  The finalizer
 * cache.example.com/finalizer sets Degraded while it records a Warning Event
 * "Deleting" when a Memcached goes, then lets it go.
 *
 *   koc-example-memcached --kubeconfig=kc.yaml --identity=a [--image=IMAGE]
 *   koc-example-memcached --print-rbac      the chart's rules (rbac-values.yaml)
 *
 * With --webhook-bind-address (e.g. ":9443"), admission webhooks too
 * (koc/webhook.h): a defaulter (spec.containerPort defaults to 11211) and a
 * validator (metadata.name at most 40 characters; spec.size changes by at
 * most 3 at once), served by every replica, and the conversion between
 * v1alpha1 (the hub, stored) and v1, where spec.size is called spec.replicas,
 * for a CRD that serves both with a Webhook conversion strategy (webhooks.c).
 *
 * The Memcached's C types come from the CRD (koc_generate_types in
 * CMakeLists.txt), the Deployment's from <koc/types/k8s.h>.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <koc/koc.h>
#include <koc/types/k8s.h>

#include "failure.h"
#include "memcached-types.h"
#include "webhooks.h"

static const koc_resource memcacheds = {.group = "cache.example.com", .version = "v1alpha1",
        .resource = "memcacheds", .kind = "Memcached", .namespaced = true};
static const koc_resource deployments = {.group = "apps", .version = "v1",
        .resource = "deployments", .kind = "Deployment", .namespaced = true};
static const char *image; /* --image */

/* The Deployment this Memcached asks for (its owner reference aside). */
static cJSON *deployment(const char *name, const memcached_spec *s) {
        koc_string_entry labels[] = {{"app.kubernetes.io/name", "memcached"},
                                     {"app.kubernetes.io/instance", (char *)name},
                                     {"app.kubernetes.io/managed-by", "koc-example-memcached"}};
        int32_t p = s->has_container_port ? s->container_port : 11211;
        koc_core_v1_container_port port = {.name = "memcached", KOC_HAS(container_port, p)};
        koc_core_v1_container c = {
                .name = "memcached", .image = (char *)image, .image_pull_policy = "IfNotPresent",
                .command = (char *[]){"memcached", "--memory-limit=64", "-o", "modern", "-v"},
                .command_len = 5, .ports = &port, .ports_len = 1,
                .security_context = {KOC_HAS(run_as_non_root, true), KOC_HAS(run_as_user, 1001),
                                     KOC_HAS(allow_privilege_escalation, false),
                                     .capabilities = {.drop = (char *[]){"ALL"}, .drop_len = 1}}};
        koc_core_v1_pod_security_context psc = {KOC_HAS(run_as_non_root, true),
                                                .seccomp_profile = {.type = "RuntimeDefault"}};
        koc_apps_v1_deployment d = {
                .metadata = {.name = (char *)name, .labels = labels, .labels_len = 3},
                .spec = {KOC_HAS(replicas, s->size),
                         .selector = {.match_labels = labels, .match_labels_len = 3},
                         .template_ = {.metadata = {.labels = labels, .labels_len = 3},
                                       .spec = {.security_context = psc, .containers = &c,
                                                .containers_len = 1}}}};
        return koc_apps_v1_deployment_to_json(&d);
}

static koc_result apply(koc_reconcile_context *ctx, const cJSON *mc, void *userdata) {
        const char *name = koc_reconcile_get_name(ctx);
        _koc_cleanup_(memcached_free) memcached m = {0};
        _koc_cleanup_(koc_apps_v1_deployment_free) koc_apps_v1_deployment d = {0};
        char why[256] = "metadata.name: at most 63 characters (a label value of the Deployment)";
        cJSON *want = NULL, *cur = NULL;
        if (!koc_object_find_condition(mc, "Available"))
                koc_reconcile_set_condition(ctx, mc, "Available", "Unknown", "Reconciling",
                                            "Starting reconciliation");
        if (strlen(name) > 63 || memcached_parse(mc, &m, why, sizeof why) < 0 ||
            memcached_validate(&m, why, sizeof why) < 0)
                return koc_reconcile_set_condition(ctx, mc, "Available", "False", "InvalidSpec",
                                                   "%s", why),
                       koc_result_terminal(-EINVAL);
        int r = (want = deployment(name, &m.spec)) ? 0 : -ENOMEM;
        r = r < 0 ? r
                  : koc_reconcile_create_or_patch_owned(ctx, &deployments, mc, want, NULL, &cur);
        r = r < 0 ? r : koc_apps_v1_deployment_parse(cur, &d, why, sizeof why);
        memcached_deployment_failure(ctx, r, want, cur, why, sizeof why); /* its message */
        cJSON_Delete(want);
        cJSON_Delete(cur);
        if (r < 0) {
                const char *reason = r == -EADDRINUSE ? "DeploymentNotOwned" : "Resizing";
                koc_reconcile_record_event_action(ctx, mc, "Warning", reason, "Reconcile", why);
                koc_reconcile_set_condition(ctx, mc, "Available", "False", reason, "%s", why);
                return koc_result_error(r);
        }
        int avail = d.status.available_replicas, size = m.spec.size;
        bool seen = d.status.observed_generation >= d.metadata.generation;
        bool ok = seen && avail >= size;
        r = koc_reconcile_set_condition(
                ctx, mc, "Available", ok ? "True" : "False",
                ok ? "ReplicasAvailable" : "ReplicasUnavailable",
                "Deployment %s has %d of %d replicas available (%d present%s)", name, avail, size,
                d.status.replicas, seen ? "" : ", rollout not yet observed");
        return r < 0 ? koc_result_error(r) : koc_result_done();
}

/* As the Go sample: Degraded Unknown, the Event, Degraded True; then
 * koc_reconcile_finalizer removes the finalizer (on the current resourceVersion). */
static koc_result cleanup(koc_reconcile_context *ctx, const cJSON *mc, void *userdata) {
        const char *name = koc_reconcile_get_name(ctx);
        char msg[600];
        snprintf(msg, sizeof msg, "Custom Resource %s is being deleted from the namespace %s",
                 name, koc_reconcile_get_namespace(ctx));
        int r = koc_reconcile_set_condition(
                ctx, mc, "Degraded", "Unknown", "Finalizing",
                "Performing finalizer operations for the custom resource: %s", name);
        koc_reconcile_record_event(ctx, mc, "Warning", "Deleting", msg);
        if (r >= 0)
                r = koc_reconcile_set_condition(ctx, mc, "Degraded", "True", "Finalizing",
                                                "Finalizer operations for custom resource %s "
                                                "name were successfully accomplished", name);
        return r < 0 ? koc_result_error(r) : koc_result_done();
}

static koc_result reconcile(koc_reconcile_context *ctx, void *userdata) {
        return koc_reconcile_finalizer(ctx, "cache.example.com/finalizer", apply, cleanup, NULL);
}

int main(int argc, char *argv[]) {
        koc_manager_config cfg;
        koc_error err = {0};
        koc_manager_config_init(&cfg);
        cfg.leader_election_id = "koc-example-memcached";
        koc_manager_add_flag_string(&cfg, "image", "memcached:1.6.26-alpine",
                                    "The memcached container image of the Deployments.", &image);
        int r = koc_manager_parse_flags(&cfg, argc, argv, &err);
        if (r != 0)
                return r == KOC_MANAGER_FLAGS_HELP ? 0 : (fprintf(stderr, "%s\n", err.message), 2);
        _koc_cleanup_(koc_manager_unrefp) koc_manager *m = NULL;
        _koc_cleanup_(koc_controller_unrefp) koc_controller *c = NULL;
        koc_controller_options o;
        koc_controller_options_init(&o);
        o.name = "memcached";
        o.resource = memcacheds;
        o.reconcile = reconcile;
        if (koc_manager_new(NULL, &cfg, &m, &err) < 0 || koc_controller_new(m, &o, &c, &err) < 0 ||
            koc_controller_owns(c, &deployments, &err) < 0)
                return fprintf(stderr, "%s\n", err.message), 1;
        koc_manager_declare_access(m, &deployments, "get,create,patch");
        koc_manager_declare_access(m, &memcacheds, "get,patch,status/patch");
        if (memcached_add_webhooks(m, &cfg, &memcacheds) < 0)
                return 1; /* the cause is logged */
        return koc_manager_run(m);
}

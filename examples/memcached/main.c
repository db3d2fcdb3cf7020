/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc-example-memcached: the operator-sdk tutorial's Memcached operator on koc.
 *
 * For every Memcached (cache.example.com/v1alpha1, config/crd.yaml) it keeps a
 * Deployment of the same name and namespace running spec.size replicas of
 * memcached (--image, memcached:1.6.26-alpine by default) listening on
 * spec.containerPort, controlled by the Memcached (an ownerReference, so the
 * garbage collector removes it with its owner).  The Deployment is watched
 * (owned), so a hand-edited replica count is set back at once.
 *
 * status.conditions[Available] says how it goes: Unknown "Reconciling" on
 * first sight, then what the Deployment's own status says: True when
 * spec.size replicas are available, False with the counts otherwise (on a
 * cluster without nodes it stays False: no pod ever becomes ready).  The
 * finalizer cache.example.com/finalizer records a Warning Event "Deleting"
 * when a Memcached goes, then lets it go.
 *
 *   koc-example-memcached --kubeconfig=kc.yaml --identity=a [--image=IMAGE]
 *
 * Run two or more copies: one reconciles, the others keep a warm cache and
 * take over when it goes.  Every flag of the manager is accepted (--help).
 *
 * The structure keeps what will become typed code local: spec() reads and
 * checks the spec, desired_deployment() builds the Deployment,
 * deployment_drifted() compares, availability() computes the condition.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <koc/koc.h>

#define FINALIZER "cache.example.com/finalizer"
#define DEFAULT_IMAGE "memcached:1.6.26-alpine"

static const koc_resource memcacheds = {.group = "cache.example.com",
                                        .version = "v1alpha1",
                                        .resource = "memcacheds",
                                        .kind = "Memcached",
                                        .namespaced = true};
static const koc_resource deployments = {.group = "apps",
                                         .version = "v1",
                                         .resource = "deployments",
                                         .kind = "Deployment",
                                         .namespaced = true};

/* --image; TODO: a flag of the manager's parser once it takes programs' flags. */
static const char *image = DEFAULT_IMAGE;

typedef struct memcached_spec {
        int size;
        int container_port;
} memcached_spec;

static cJSON *at(const cJSON *o, const char *key) {
        return cJSON_GetObjectItemCaseSensitive(o, key);
}

static double number_at(const cJSON *o, const char *a, const char *b, double dflt) {
        const cJSON *v = at(at(o, a), b);
        return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* The spec, checked as the CRD's schema says (an API server that does not
 * enforce the schema may hand anything over): 0, or -EINVAL with why. */
static int spec(const cJSON *mc, memcached_spec *ret, char *why, size_t size) {
        const cJSON *s = at(mc, "spec");
        const char *name = cJSON_GetStringValue(at(at(mc, "metadata"), "name"));
        /* The name is the value of the Deployment's instance label. */
        if (!name || strlen(name) > 63)
                return snprintf(why, size, "metadata.name must be at most 63 characters (a label "
                                           "value of the Deployment)"),
                       -EINVAL;
        const cJSON *n = at(s, "size");
        const cJSON *p = at(s, "containerPort");
        if (!cJSON_IsNumber(n) || n->valuedouble != (int)n->valuedouble || n->valueint < 1 ||
            n->valueint > 5)
                return snprintf(why, size, "spec.size must be an integer from 1 to 5"), -EINVAL;
        if (p && (!cJSON_IsNumber(p) || p->valuedouble != (int)p->valuedouble ||
                  p->valueint < 1 || p->valueint > 65535))
                return snprintf(why, size, "spec.containerPort must be an integer from 1 to 65535"),
                       -EINVAL;
        ret->size = n->valueint;
        ret->container_port = p ? p->valueint : 11211;
        return 0;
}

static cJSON *labels(const char *name) {
        cJSON *l = cJSON_CreateObject();
        cJSON_AddStringToObject(l, "app.kubernetes.io/name", "memcached");
        cJSON_AddStringToObject(l, "app.kubernetes.io/instance", name);
        cJSON_AddStringToObject(l, "app.kubernetes.io/managed-by", "koc-example-memcached");
        return l;
}

/* The Deployment this Memcached asks for, owned by it. */
static cJSON *desired_deployment(const cJSON *mc, const memcached_spec *s, const char *ns,
                                 const char *name) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "apiVersion", "apps/v1");
        cJSON_AddStringToObject(d, "kind", "Deployment");
        cJSON *md = cJSON_AddObjectToObject(d, "metadata");
        cJSON_AddStringToObject(md, "name", name);
        cJSON_AddStringToObject(md, "namespace", ns);
        cJSON_AddItemToObject(md, "labels", labels(name));
        koc_object_set_controller_reference(d, mc, "cache.example.com/v1alpha1", "Memcached");
        cJSON *spec = cJSON_AddObjectToObject(d, "spec");
        cJSON_AddNumberToObject(spec, "replicas", s->size);
        cJSON_AddItemToObject(cJSON_AddObjectToObject(spec, "selector"), "matchLabels",
                              labels(name));
        cJSON *tmpl = cJSON_AddObjectToObject(spec, "template");
        cJSON_AddItemToObject(cJSON_AddObjectToObject(tmpl, "metadata"), "labels", labels(name));
        cJSON *ps = cJSON_AddObjectToObject(tmpl, "spec");
        cJSON *psc = cJSON_AddObjectToObject(ps, "securityContext");
        cJSON_AddBoolToObject(psc, "runAsNonRoot", true);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(psc, "seccompProfile"), "type",
                                "RuntimeDefault");
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToArray(cJSON_AddArrayToObject(ps, "containers"), c);
        cJSON_AddStringToObject(c, "name", "memcached");
        cJSON_AddStringToObject(c, "image", image);
        cJSON_AddStringToObject(c, "imagePullPolicy", "IfNotPresent");
        const char *cmd[] = {"memcached", "--memory-limit=64", "-o", "modern", "-v"};
        cJSON_AddItemToObject(c, "command", cJSON_CreateStringArray(cmd, 5));
        cJSON *port = cJSON_CreateObject();
        cJSON_AddNumberToObject(port, "containerPort", s->container_port);
        cJSON_AddStringToObject(port, "name", "memcached");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(c, "ports"), port);
        cJSON *csc = cJSON_AddObjectToObject(c, "securityContext");
        cJSON_AddBoolToObject(csc, "runAsNonRoot", true);
        cJSON_AddNumberToObject(csc, "runAsUser", 1001);
        cJSON_AddBoolToObject(csc, "allowPrivilegeEscalation", false);
        const char *drop[] = {"ALL"};
        cJSON_AddItemToObject(cJSON_AddObjectToObject(csc, "capabilities"), "drop",
                              cJSON_CreateStringArray(drop, 1));
        return d;
}

static const cJSON *first_container(const cJSON *d) {
        const cJSON *t = at(at(d, "spec"), "template");
        return cJSON_GetArrayItem(at(at(t, "spec"), "containers"), 0);
}

/* Whether the Deployment as cached differs from what the Memcached asks for
 * in a field this operator sets. */
static bool deployment_drifted(const cJSON *cur, const memcached_spec *s) {
        const cJSON *c = first_container(cur);
        const char *img = cJSON_GetStringValue(at(c, "image"));
        const cJSON *p = cJSON_GetArrayItem(at(c, "ports"), 0);
        return number_at(cur, "spec", "replicas", -1) != s->size || !img ||
               strcmp(img, image) != 0 ||
               number_at(p, "containerPort", NULL, -1) != s->container_port;
}

/* The index of the Deployment's controller ownerReference when it names
 * this Memcached, -1 otherwise. */
static int controlled_by(const cJSON *d, const char *uid) {
        const cJSON *refs = at(at(d, "metadata"), "ownerReferences");
        const cJSON *r;
        int i = 0;
        cJSON_ArrayForEach(r, refs) {
                if (cJSON_IsTrue(at(r, "controller")))
                        return strcmp(cJSON_GetStringValue(at(r, "uid")) ?: "", uid) == 0
                                       ? i
                                       : -1;
                i++;
        }
        return -1;
}

static void add_op(cJSON *p, const char *op, const char *path, cJSON *value) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "op", op);
        cJSON_AddStringToObject(o, "path", path);
        cJSON_AddItemToObject(o, "value", value);
        cJSON_AddItemToArray(p, o);
}

/* A JSON patch that sets the fields this operator owns to want's, applied
 * only while the Deployment is still controlled by this Memcached (the test
 * op): a status update of the Deployment controller in between does not
 * make it fail, a change of controller does. */
static cJSON *drift_patch(const cJSON *cur, const cJSON *want, const char *uid) {
        char path[64];
        cJSON *p = cJSON_CreateArray();
        snprintf(path, sizeof path, "/metadata/ownerReferences/%d/uid", controlled_by(cur, uid));
        add_op(p, "test", path, cJSON_CreateString(uid));
        const cJSON *spec = at(want, "spec");
        const cJSON *containers = at(at(at(spec, "template"), "spec"), "containers");
        add_op(p, "replace", "/spec/replicas", cJSON_Duplicate(at(spec, "replicas"), true));
        add_op(p, "replace", "/spec/template/spec/containers", cJSON_Duplicate(containers, true));
        return p;
}

/* Available from the Deployment's own status, as the Deployment controller
 * reports it. */
static int availability(cJSON *mc, const cJSON *d, const memcached_spec *s) {
        int gen = (int)number_at(d, "metadata", "generation", 0);
        int seen = (int)number_at(d, "status", "observedGeneration", 0);
        int avail = (int)number_at(d, "status", "availableReplicas", 0);
        int present = (int)number_at(d, "status", "replicas", 0);
        const char *name = cJSON_GetStringValue(at(at(d, "metadata"), "name"));
        char msg[512];
        if (seen >= gen && avail >= s->size) {
                snprintf(msg, sizeof msg, "Deployment %.253s has %d of %d replicas available",
                         name ?: "", avail, s->size);
                return koc_object_set_condition(mc, "Available", "True", "ReplicasAvailable", msg);
        }
        snprintf(msg, sizeof msg,
                 "Deployment %.253s has %d of %d replicas available (%d present%s)", name ?: "",
                 avail, s->size, present, seen < gen ? ", rollout not yet observed" : "");
        return koc_object_set_condition(mc, "Available", "False", "ReplicasUnavailable", msg);
}

/* Writes *mc's status (a PUT of the status subresource with its
 * resourceVersion) and takes the server's answer as *mc. */
static int write_status(koc_reconcile_context *ctx, cJSON **mc) {
        _koc_cleanup_(koc_response_freep) koc_response *resp = NULL;
        int r = koc_reconcile_update_status(ctx, &memcacheds, *mc, &resp);
        if (r < 0)
                return r;
        if (resp->error < 0 || resp->status >= 300 || !cJSON_IsObject(resp->body))
                return koc_response_errno(resp) ?: -EBADMSG;
        cJSON_Delete(*mc);
        *mc = cJSON_Duplicate(resp->body, true);
        return *mc ? 0 : -ENOMEM;
}

/* Sets Available False with reason and message, writes it, and returns
 * error (retried with backoff; terminal when it cannot succeed as is). */
static koc_result fail(koc_reconcile_context *ctx, cJSON **mc, const char *reason,
                       const char *msg, int error, bool terminal) {
        /* The controller logs the failed reconcile (rate-limited), with
         * the failed call's answer; the condition tells the object's owner. */
        if (koc_object_set_condition(*mc, "Available", "False", reason, msg) > 0)
                write_status(ctx, mc);
        return terminal ? koc_result_terminal(error) : koc_result_error(error);
}

/* Creates the Deployment, or patches the fields that drifted; *ret: the
 * Deployment as the server (or the cache) has it now. */
static koc_result ensure_deployment(koc_reconcile_context *ctx, cJSON **mc,
                                    const memcached_spec *s, cJSON **ret) {
        const char *ns = koc_reconcile_get_namespace(ctx), *name = koc_reconcile_get_name(ctx);
        const char *uid = cJSON_GetStringValue(at(at(*mc, "metadata"), "uid"));
        if (!uid || !*uid)
                return koc_result_terminal(-EINVAL);
        _koc_cleanup_(koc_object_unrefp) koc_object *cached = NULL;
        _koc_cleanup_(koc_response_freep) koc_response *resp = NULL;
        char msg[512];
        cJSON *cur = NULL;
        int r = koc_cache_ref_object(koc_reconcile_get_cache(ctx), &deployments, ns, name, &cached);
        if (r < 0 && r != -ENOENT)
                return koc_result_error(r);
        if (r >= 0 && koc_object_parse(cached, &cur) < 0)
                return koc_result_error(-ENOMEM);
        if (cur && controlled_by(cur, uid) < 0) {
                cJSON_Delete(cur);
                snprintf(msg, sizeof msg,
                         "Deployment %.253s exists and is not controlled by this Memcached; "
                         "it is left untouched",
                         name);
                koc_reconcile_record_event(ctx, *mc, "Warning", "DeploymentNotOwned", msg);
                return fail(ctx, mc, "DeploymentNotOwned", msg, -EEXIST, false);
        }
        if (cur && !deployment_drifted(cur, s)) {
                *ret = cur;
                return koc_result_done();
        }
        cJSON *want = desired_deployment(*mc, s, ns, name);
        if (cur) {
                cJSON *p = drift_patch(cur, want, uid);
                r = koc_reconcile_patch(ctx, &deployments, ns, name, KOC_PATCH_JSON, p, &resp);
                cJSON_Delete(p);
                cJSON_Delete(cur);
        } else
                r = koc_reconcile_create(ctx, &deployments, ns, want, &resp);
        cJSON_Delete(want);
        if (r < 0 || resp->error < 0 || resp->status >= 300) {
                snprintf(msg, sizeof msg, "Failed to %s Deployment %.253s: %.200s",
                         cached ? "update" : "create", name, r < 0 ? strerror(-r) : resp->message);
                return fail(ctx, mc, cached ? "Resizing" : "Reconciling", msg,
                            r < 0 ? r : koc_response_errno(resp), false);
        }
        *ret = cJSON_Duplicate(resp->body, true);
        return koc_result_done();
}

static koc_result apply(koc_reconcile_context *ctx, const cJSON *obj, void *userdata) {
        cJSON *mc = cJSON_Duplicate(obj, true), *d = NULL;
        memcached_spec s = {0};
        char why[160];
        koc_result res = koc_result_done();
        if (!cJSON_GetArraySize(at(at(mc, "status"), "conditions"))) {
                koc_object_set_condition(mc, "Available", "Unknown", "Reconciling",
                                         "Starting reconciliation");
                int r = write_status(ctx, &mc);
                if (r < 0)
                        res = koc_result_error(r);
        }
        if (res.type == KOC_RESULT_DONE && spec(mc, &s, why, sizeof why) < 0)
                res = fail(ctx, &mc, "InvalidSpec", why, -EINVAL, true);
        if (res.type == KOC_RESULT_DONE)
                res = ensure_deployment(ctx, &mc, &s, &d);
        if (res.type == KOC_RESULT_DONE && availability(mc, d, &s) > 0) {
                int r = write_status(ctx, &mc);
                if (r < 0)
                        res = koc_result_error(r);
        }
        cJSON_Delete(d);
        cJSON_Delete(mc);
        return res;
}

static koc_result cleanup(koc_reconcile_context *ctx, const cJSON *mc, void *userdata) {
        char msg[600];
        snprintf(msg, sizeof msg,
                 "Custom Resource %.253s is being deleted from the namespace %.63s",
                 koc_reconcile_get_name(ctx), koc_reconcile_get_namespace(ctx));
        koc_reconcile_record_event(ctx, mc, "Warning", "Deleting", msg);
        return koc_result_done();
}

static koc_result reconcile(koc_reconcile_context *ctx, void *userdata) {
        return koc_reconcile_finalizer(ctx, FINALIZER, apply, cleanup, NULL);
}

/* Takes --image=IMAGE (or "--image IMAGE", one or two dashes) out of argv so
 * that the manager parses the rest; -EINVAL with a message on stderr for a
 * missing or malformed value.  TODO: the manager's parser, once it takes
 * programs' flags. */
static int take_image_flag(int *argc, char *argv[]) {
        int out = 1;
        for (int i = 1; i < *argc; i++) {
                const char *a = argv[i];
                const char *name = a[0] == '-' ? a + 1 + (a[1] == '-') : NULL;
                if (!name || strncmp(name, "image", 5) != 0 || (name[5] && name[5] != '=')) {
                        argv[out++] = argv[i];
                        continue;
                }
                if (name[5] == '=')
                        image = name + 6;
                else if (i + 1 < *argc)
                        image = argv[++i];
                else
                        return fprintf(stderr, "flag --image needs a value (see --help)\n"),
                               -EINVAL;
        }
        argv[out] = NULL;
        *argc = out;
        size_t n = strlen(image);
        bool ok = n > 0 && n <= 512;
        for (size_t i = 0; ok && i < n; i++)
                ok = (unsigned char)image[i] > ' ' && (unsigned char)image[i] < 0x7f;
        if (!ok)
                return fprintf(stderr, "invalid --image: 1 to 512 printable characters without "
                                       "spaces, as in " DEFAULT_IMAGE "\n"),
                       -EINVAL;
        return 0;
}

int main(int argc, char *argv[]) {
        koc_manager_config cfg;
        koc_error err = {0};
        koc_manager_config_init(&cfg);
        cfg.leader_election_id = "koc-example-memcached";
        if (take_image_flag(&argc, argv) < 0)
                return 2;
        int r = koc_manager_parse_flags(&cfg, argc, argv, &err);
        if (r == KOC_MANAGER_FLAGS_HELP) {
                printf("\nThis program's own flag:\n"
                       "  --image string\n"
                       "        The memcached container image of the Deployments (default "
                       "\"" DEFAULT_IMAGE "\")\n");
                return 0;
        }
        if (r != 0)
                return fprintf(stderr, "%s\n", err.message), 2;

        _koc_cleanup_(koc_manager_unrefp) koc_manager *m = NULL;
        if (koc_manager_new(NULL, &cfg, &m, &err) < 0)
                return fprintf(stderr, "%s\n", err.message), 1;
        char ua[320];
        snprintf(ua, sizeof ua, "koc-example-memcached/0.1 (%s)", koc_manager_get_identity(m));
        koc_client_set_user_agent(koc_manager_get_client(m), ua);

        koc_controller_options o;
        koc_controller_options_init(&o);
        o.name = "memcached";
        o.resource = memcacheds;
        o.reconcile = reconcile;
        koc_controller *c = NULL;
        if (koc_controller_new(m, &o, &c, &err) < 0 ||
            koc_controller_owns(c, &deployments, &err) < 0)
                return fprintf(stderr, "%s\n", err.message), 1;
        r = koc_manager_run(m);
        koc_controller_unref(c);
        return r;
}

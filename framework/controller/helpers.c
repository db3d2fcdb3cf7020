/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers for reconcilers: finalizers, owner references, status conditions,
 * and kube-rs's finalizer() flow on top of the fenced client.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller-internal.h"
#include "core/util.h"
#include "koc/time.h"

/* obj's metadata, added when absent; NULL when it is there but not an object
 * (what would be added under it would never reach the server). */
static cJSON *metadata(cJSON *obj) {
        cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        if (!md)
                return cJSON_AddObjectToObject(obj, "metadata");
        return cJSON_IsObject(md) ? md : NULL;
}

static bool str_eq(const cJSON *o, const char *field, const char *want) {
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, field));
        return v && want && strcmp(v, want) == 0;
}

/* The index of the first copy of finalizer in metadata.finalizers, or -1;
 * finalizers that are not an array hold none. */
static int finalizer_index(const cJSON *object, const char *finalizer) {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(object, "metadata");
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(md, "finalizers");
        if (!cJSON_IsObject(md) || !cJSON_IsArray(list))
                return -1;
        int i = 0;
        const cJSON *f;
        cJSON_ArrayForEach(f, list) {
                if (cJSON_IsString(f) && strcmp(f->valuestring, finalizer) == 0)
                        return i;
                i++;
        }
        return -1;
}

KOC_EXPORT bool koc_object_has_finalizer(const cJSON *object, const char *finalizer) {
        return object && finalizer && finalizer_index(object, finalizer) >= 0;
}

KOC_EXPORT int koc_object_add_finalizer(cJSON *object, const char *finalizer) {
        if (!cJSON_IsObject(object) || !finalizer || !*finalizer)
                return -EINVAL;
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(object, "metadata");
        if (old && !cJSON_IsObject(old))
                return -EINVAL;
        if (finalizer_index(object, finalizer) >= 0)
                return 0;
        cJSON *md = metadata(object);
        if (!md)
                return -ENOMEM;
        cJSON *list = cJSON_GetObjectItemCaseSensitive(md, "finalizers");
        if (!cJSON_IsArray(list)) {
                koc__json_delete_all(md, "finalizers");
                list = cJSON_AddArrayToObject(md, "finalizers");
        }
        if (!list || !cJSON_AddItemToArray(list, cJSON_CreateString(finalizer)))
                return -ENOMEM;
        return 1;
}

/* Removes every copy (controller-runtime's RemoveFinalizer does too): a
 * duplicate left behind would keep the object from being deleted. */
KOC_EXPORT int koc_object_remove_finalizer(cJSON *object, const char *finalizer) {
        if (!cJSON_IsObject(object) || !finalizer)
                return -EINVAL;
        int removed = 0, i;
        while ((i = finalizer_index(object, finalizer)) >= 0) {
                cJSON_DeleteItemFromArray(
                        cJSON_GetObjectItemCaseSensitive(
                                cJSON_GetObjectItemCaseSensitive(object, "metadata"), "finalizers"),
                        i);
                removed = 1;
        }
        return removed;
}

KOC_EXPORT bool koc_object_is_deleting(const cJSON *object) {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(object, "metadata");
        return cJSON_IsString(cJSON_GetObjectItemCaseSensitive(md, "deletionTimestamp"));
}

/* The group of an apiVersion ("apps/v1" -> "apps", "v1" -> ""), as a length. */
static size_t group_len(const char *api_version) {
        const char *slash = strchr(api_version, '/');
        return slash ? (size_t)(slash - api_version) : 0;
}

/* controllerutil's referSameObject: the same group, kind and name (an owner
 * recreated under the same name is the same owner), or the same uid. */
static bool same_owner(const cJSON *ref, const char *api_version, const char *kind,
                       const char *name, const char *uid) {
        const char *ruid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ref, "uid"));
        if (ruid && strcmp(ruid, uid) == 0)
                return true;
        const char *rav = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ref, "apiVersion"));
        if (!rav || !str_eq(ref, "kind", kind) || !str_eq(ref, "name", name))
                return false;
        size_t a = group_len(rav), b = group_len(api_version);
        return a == b && strncmp(rav, api_version, a) == 0;
}

static int set_owner(cJSON *object, const char *api_version, const char *kind, const char *name,
                     const char *uid, unsigned flags, koc_error *err) {
        if (!cJSON_IsObject(object))
                return koc_error_set(err, -EINVAL,
                                     "ownerReference: the owned object is not an object");
        if (!api_version || !*api_version || !kind || !*kind || !name || !*name || !uid || !*uid)
                return koc_error_set(err, -EINVAL, "ownerReference: the owner has no %s",
                                     !api_version || !*api_version ? "apiVersion"
                                     : !kind || !*kind             ? "kind"
                                     : !name || !*name             ? "metadata.name"
                                                                   : "metadata.uid");
        if (flags & ~(KOC_OWNER_CONTROLLER | KOC_OWNER_NO_BLOCK_DELETION | KOC_OWNER_NO_ADOPT))
                return koc_error_set(err, -EINVAL, "ownerReference: unknown flags 0x%x", flags);
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(object, "metadata");
        if (old && !cJSON_IsObject(old))
                return koc_error_set(err, -EINVAL, "ownerReference: metadata is not an object");
        const cJSON *refs0 = cJSON_GetObjectItemCaseSensitive(old, "ownerReferences");
        const cJSON *ref;
        /* One controller per object: another controller is an error the
         * caller must see (controllerutil's AlreadyOwnedError), checked
         * before anything changes. */
        if ((flags & KOC_OWNER_CONTROLLER) && cJSON_IsArray(refs0))
                cJSON_ArrayForEach(ref, refs0) {
                        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ref, "controller")) ||
                            same_owner(ref, api_version, kind, name, uid))
                                continue;
                        const char *okind =
                                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ref, "kind"));
                        const char *oname =
                                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ref, "name"));
                        const char *oname_self =
                                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(old, "name"));
                        return koc_error_set(
                                err, -EADDRINUSE,
                                "%.253s is already controlled by %.63s %.253s, not taken over by "
                                "%.63s %.253s",
                                oname_self ? oname_self : "the object", okind ? okind : "?",
                                oname ? oname : "?", kind, name);
                }
        /* KOC_OWNER_NO_ADOPT: an object that exists (it has a uid) and is
         * not yet controlled by this owner stays someone else's. */
        bool ours = false;
        if ((flags & KOC_OWNER_NO_ADOPT) && cJSON_IsArray(refs0))
                cJSON_ArrayForEach(ref, refs0)
                        ours |= cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ref, "controller")) &&
                                same_owner(ref, api_version, kind, name, uid);
        const char *self = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(old, "name"));
        if ((flags & KOC_OWNER_NO_ADOPT) && !ours &&
            cJSON_GetObjectItemCaseSensitive(old, "uid"))
                return koc_error_set(err, -EADDRINUSE,
                                     "%.253s exists and is not controlled by %.63s %.253s; not "
                                     "adopted",
                                     self ? self : "the object", kind, name);
        cJSON *md = metadata(object);
        if (!md)
                return -ENOMEM;
        cJSON *refs = cJSON_GetObjectItemCaseSensitive(md, "ownerReferences");
        if (!cJSON_IsArray(refs)) {
                koc__json_delete_all(md, "ownerReferences");
                refs = cJSON_AddArrayToObject(md, "ownerReferences");
                if (!refs)
                        return -ENOMEM;
        }
        cJSON *n = cJSON_CreateObject();
        if (!n || !cJSON_AddStringToObject(n, "apiVersion", api_version) ||
            !cJSON_AddStringToObject(n, "kind", kind) ||
            !cJSON_AddStringToObject(n, "name", name) || !cJSON_AddStringToObject(n, "uid", uid) ||
            ((flags & KOC_OWNER_CONTROLLER) && !cJSON_AddBoolToObject(n, "controller", true)) ||
            !cJSON_AddBoolToObject(n, "blockOwnerDeletion",
                                   !(flags & KOC_OWNER_NO_BLOCK_DELETION))) {
                cJSON_Delete(n);
                return -ENOMEM;
        }
        /* The first reference to the same owner is replaced, later copies
         * dropped: a stale duplicate could still claim to be the controller. */
        bool placed = false;
        cJSON *r = refs->child;
        while (r) {
                cJSON *next = r->next;
                if (same_owner(r, api_version, kind, name, uid)) {
                        if (!placed)
                                cJSON_ReplaceItemViaPointer(refs, r, n);
                        else
                                cJSON_Delete(cJSON_DetachItemViaPointer(refs, r));
                        placed = true;
                }
                r = next;
        }
        if (!placed)
                cJSON_AddItemToArray(refs, n);
        return 0;
}

static const char *owner_str(const cJSON *owner, const char *field) {
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(owner, "metadata"), field));
}

KOC_EXPORT int koc_object_set_owner_reference(cJSON *object, const cJSON *owner, unsigned flags,
                                              koc_error *err) {
        const char *av =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(owner, "apiVersion"));
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(owner, "kind"));
        /* The garbage collector deletes a namespaced object whose owner is
         * in another namespace: refuse what cannot work. */
        const char *ons = owner_str(owner, "namespace");
        const char *ns = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(object, "metadata"), "namespace"));
        if (ons && *ons && ns && *ns && strcmp(ons, ns) != 0)
                return koc_error_set(err, -EINVAL,
                                     "ownerReference: owner namespace %.63s differs from the "
                                     "object's %.63s",
                                     ons, ns);
        return set_owner(object, av, kind, owner_str(owner, "name"), owner_str(owner, "uid"), flags,
                         err);
}

KOC_EXPORT int koc_object_set_owner_reference_to_sized(cJSON *object, size_t res_size,
                                                       const koc_resource *owner_res,
                                                       const char *owner_name,
                                                       const char *owner_uid, unsigned flags,
                                                       koc_error *err) {
        koc_resource res;
        if (!owner_res || KOC__IMPORT(&res, owner_res, res_size, group) < 0 || !res.version ||
            !res.kind)
                return koc_error_set(err, -EINVAL, "ownerReference: no owner resource");
        char av[256];
        if (koc__api_version_format(res.group, res.version, av, sizeof av) < 0)
                return koc_error_set(err, -EINVAL, "ownerReference: apiVersion too long");
        return set_owner(object, av, res.kind, owner_name, owner_uid, flags, err);
}

KOC_EXPORT const cJSON *koc_object_get_controller_reference(const cJSON *object) {
        const cJSON *refs = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(object, "metadata"), "ownerReferences");
        const cJSON *ref;
        if (cJSON_IsArray(refs))
                cJSON_ArrayForEach(ref, refs) if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                                                          ref, "controller"))) return ref;
        return NULL;
}

KOC_EXPORT int koc_object_set_controller_reference(cJSON *object, const cJSON *owner,
                                                   const char *owner_api_version,
                                                   const char *owner_kind) {
        return set_owner(object, owner_api_version, owner_kind, owner_str(owner, "name"),
                         owner_str(owner, "uid"), KOC_OWNER_CONTROLLER, NULL);
}

/* --- conditions -------------------------------------------------------------------- */

KOC_EXPORT cJSON *koc_conditions_find(const cJSON *conditions, const char *type) {
        cJSON *c;
        if (!cJSON_IsArray(conditions) || !type)
                return NULL;
        cJSON_ArrayForEach(c, conditions) if (str_eq(c, "type", type)) return c;
        return NULL;
}

KOC_EXPORT int koc_conditions_remove(cJSON *conditions, const char *type) {
        int removed = 0;
        cJSON *c;
        while ((c = koc_conditions_find(conditions, type))) {
                cJSON_Delete(cJSON_DetachItemViaPointer(conditions, c));
                removed = 1;
        }
        return removed;
}

static bool valid_status(const char *s) {
        return strcmp(s, "True") == 0 || strcmp(s, "False") == 0 || strcmp(s, "Unknown") == 0;
}

KOC_EXPORT int koc_conditions_set(cJSON *conditions, const char *type, const char *status,
                                  const char *reason, const char *message,
                                  int64_t observed_generation) {
        if (!cJSON_IsArray(conditions) || !type || !*type || !status || !valid_status(status))
                return -EINVAL;
        cJSON *cond = koc_conditions_find(conditions, type);
        const cJSON *og =
                cond ? cJSON_GetObjectItemCaseSensitive(cond, "observedGeneration") : NULL;
        bool og_same =
                observed_generation < 0
                        ? !og
                        : cJSON_IsNumber(og) && og->valuedouble == (double)observed_generation;
        if (cond && str_eq(cond, "status", status) &&
            str_eq(cond, "reason", reason ? reason : "") &&
            str_eq(cond, "message", message ? message : "") && og_same &&
            cJSON_IsString(cJSON_GetObjectItemCaseSensitive(cond, "lastTransitionTime")))
                return 0;
        char now[64];
        /* Conditions carry metav1.Time: RFC 3339 in whole seconds. */
        uint64_t t = koc_now_realtime_usec() / KOC_USEC_PER_SEC * KOC_USEC_PER_SEC;
        koc_format_microtime(t, now, sizeof now);
        char *dot = strchr(now, '.');
        if (dot)
                memmove(dot, dot + 7, strlen(dot + 7) + 1);
        bool transition = !cond || !str_eq(cond, "status", status);
        const cJSON *old_time =
                cond ? cJSON_GetObjectItemCaseSensitive(cond, "lastTransitionTime") : NULL;
        cJSON *n = cJSON_CreateObject();
        if (!n || !cJSON_AddStringToObject(n, "type", type) ||
            !cJSON_AddStringToObject(n, "status", status) ||
            !cJSON_AddStringToObject(n, "reason", reason ? reason : "") ||
            !cJSON_AddStringToObject(n, "message", message ? message : "") ||
            !cJSON_AddStringToObject(n, "lastTransitionTime",
                                     !transition && cJSON_IsString(old_time) ? old_time->valuestring
                                                                             : now) ||
            (observed_generation >= 0 &&
             !cJSON_AddNumberToObject(n, "observedGeneration", (double)observed_generation))) {
                cJSON_Delete(n);
                return -ENOMEM;
        }
        if (cond)
                cJSON_ReplaceItemViaPointer(conditions, cond, n);
        else
                cJSON_AddItemToArray(conditions, n);
        return 1;
}

static const cJSON *object_conditions(const cJSON *object) {
        return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(object, "status"),
                                                "conditions");
}

static int64_t generation_of(const cJSON *object) {
        const cJSON *gen = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(object, "metadata"), "generation");
        return cJSON_IsNumber(gen) && gen->valuedouble >= 0 && gen->valuedouble < 9.0e15
                       ? (int64_t)gen->valuedouble
                       : -1;
}

KOC_EXPORT int koc_object_set_condition(cJSON *object, const char *type, const char *status,
                                        const char *reason, const char *message) {
        if (!cJSON_IsObject(object) || !type || !status)
                return -EINVAL;
        cJSON *st = cJSON_GetObjectItemCaseSensitive(object, "status");
        if (!cJSON_IsObject(st)) {
                koc__json_delete_all(object, "status");
                st = cJSON_AddObjectToObject(object, "status");
        }
        cJSON *conds = cJSON_GetObjectItemCaseSensitive(st, "conditions");
        if (st && !cJSON_IsArray(conds)) {
                koc__json_delete_all(st, "conditions");
                conds = cJSON_AddArrayToObject(st, "conditions");
        }
        if (!conds)
                return -ENOMEM;
        return koc_conditions_set(conds, type, status, reason, message, generation_of(object));
}

KOC_EXPORT const cJSON *koc_object_find_condition(const cJSON *object, const char *type) {
        return koc_conditions_find(object_conditions(object), type);
}

KOC_EXPORT int koc_object_remove_condition(cJSON *object, const char *type) {
        if (!cJSON_IsObject(object) || !type)
                return -EINVAL;
        return koc_conditions_remove((cJSON *)object_conditions(object), type);
}

static bool condition_is(const cJSON *object, const char *type, const char *status) {
        return str_eq(koc_object_find_condition(object, type), "status", status);
}

KOC_EXPORT bool koc_object_condition_is_true(const cJSON *object, const char *type) {
        return condition_is(object, type, "True");
}
KOC_EXPORT bool koc_object_condition_is_false(const cJSON *object, const char *type) {
        return condition_is(object, type, "False");
}
KOC_EXPORT bool koc_object_condition_is_unknown(const cJSON *object, const char *type) {
        const cJSON *c = koc_object_find_condition(object, type);
        return !c || str_eq(c, "status", "Unknown");
}

KOC_EXPORT int koc_object_set_observed_generation(cJSON *object) {
        if (!cJSON_IsObject(object))
                return -EINVAL;
        int64_t gen = generation_of(object);
        if (gen < 0)
                return 0;
        cJSON *st = cJSON_GetObjectItemCaseSensitive(object, "status");
        if (!cJSON_IsObject(st)) {
                koc__json_delete_all(object, "status");
                st = cJSON_AddObjectToObject(object, "status");
                if (!st)
                        return -ENOMEM;
        }
        const cJSON *og = cJSON_GetObjectItemCaseSensitive(st, "observedGeneration");
        if (cJSON_IsNumber(og) && og->valuedouble == (double)gen)
                return 0;
        koc__json_delete_all(st, "observedGeneration");
        return cJSON_AddNumberToObject(st, "observedGeneration", (double)gen) ? 1 : -ENOMEM;
}

/* A JSON patch that applies to exactly the object the reconcile looked at:
 * it sets the resourceVersion the reconcile saw, which the server takes as a
 * precondition of the write (controller-runtime's optimistic lock), so a
 * changed object is 409 Conflict (-EBUSY: read again), never 422 Invalid
 * (-EINVAL), which a "test" operation would give and which must mean that
 * the request itself is wrong. */
static cJSON *guarded_patch(const cJSON *object) {
        cJSON *p = cJSON_CreateArray();
        const char *rv = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(object, "metadata"), "resourceVersion"));
        if (p && rv) {
                cJSON *t = cJSON_CreateObject();
                cJSON_AddStringToObject(t, "op", "replace");
                cJSON_AddStringToObject(t, "path", "/metadata/resourceVersion");
                cJSON_AddStringToObject(t, "value", rv);
                cJSON_AddItemToArray(p, t);
        }
        return p;
}

/* The errno of a failed patch is koc_response_errno()'s (-EBUSY for a
 * conflict, -EINVAL for 422, -EACCES for 403, ...); the reconcile's context
 * keeps the answer (koc_reconcile_get_last_error). */
static koc_result patch_result(int r, koc_response *resp) {
        if (r < 0)
                return koc_result_error(r);
        if (resp->error == 0 && resp->status == 404)
                return koc_result_done(); /* gone: nothing left to do */
        r = koc_response_errno(resp);
        return r < 0 ? koc_result_error(r) : koc_result_done();
}

/* The object as fresh as this process knows it: the primary cache holds the
 * answers of this reconcile's own writes (a status written during cleanup),
 * which the context's snapshot predates.  NULL when the cache has none. */
static cJSON *fresh_copy(koc_reconcile_context *ctx) {
        koc_object *o = koc_controller_ref_object(ctx->c, ctx->namespace_, ctx->name);
        cJSON *j = NULL;
        if (o && koc_object_parse(o, &j) < 0)
                j = NULL;
        koc_object_unref(o);
        return j;
}

/* The memory of objects finalized and deleted by the server (see
 * koc_controller's `finalized`): noted after the removal, looked up before
 * cleanup. */
static const char *meta_str(const cJSON *obj, const char *field) {
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(obj, "metadata"), field));
}

static void finalized_note(koc_controller *c, const char *key, const char *uid) {
        uint64_t now = koc_now_boottime_usec();
        pthread_mutex_lock(&c->finalized_lock);
        struct koc__finalized *slot = &c->finalized[0];
        for (size_t i = 0; i < KOC__FINALIZED_MAX; i++) {
                struct koc__finalized *f = &c->finalized[i];
                if (!f->key || now - f->at > KOC__FINALIZED_TTL_USEC) {
                        slot = f;
                        break;
                }
                if (f->at < slot->at)
                        slot = f; /* the oldest, when all are in use */
        }
        free(slot->key);
        free(slot->uid);
        slot->key = strdup(key);
        slot->uid = strdup(uid);
        slot->at = now;
        if (!slot->key || !slot->uid) {
                free(slot->key);
                free(slot->uid);
                slot->key = slot->uid = NULL;
        }
        pthread_mutex_unlock(&c->finalized_lock);
}

static bool finalized_seen(koc_controller *c, const char *key, const char *uid) {
        uint64_t now = koc_now_boottime_usec();
        bool seen = false;
        pthread_mutex_lock(&c->finalized_lock);
        for (size_t i = 0; i < KOC__FINALIZED_MAX && !seen; i++) {
                const struct koc__finalized *f = &c->finalized[i];
                seen = f->key && now - f->at <= KOC__FINALIZED_TTL_USEC &&
                       strcmp(f->key, key) == 0 && strcmp(f->uid, uid) == 0;
        }
        pthread_mutex_unlock(&c->finalized_lock);
        return seen;
}

/* How often a removal meets a conflict and reads the object again before
 * the reconcile fails (and cleanup, which must be idempotent, runs again). */
#define FINALIZER_ATTEMPTS 4

/* Removes the finalizer after a successful cleanup with a JSON patch
 * guarded by the resourceVersion of the freshest copy: first the cache's
 * (the reconcile's own writes reached it), and after a 409 Conflict (someone
 * wrote the object meanwhile: a status write during cleanup) the server's,
 * read again, so that the removal does not fail and run cleanup twice. */
static koc_result remove_finalizer(koc_reconcile_context *ctx, const koc_resource *res,
                                   const cJSON *snapshot, const char *finalizer) {
        cJSON *cur = fresh_copy(ctx);
        koc_result out = koc_result_done();
        for (int attempt = 0; attempt < FINALIZER_ATTEMPTS; attempt++) {
                const cJSON *o = cur ? cur : snapshot;
                int idx = finalizer_index(o, finalizer);
                if (idx < 0 || !koc_object_is_deleting(o)) {
                        out = koc_result_done(); /* removed by someone else */
                        break;
                }
                /* The resourceVersion guard makes the index exact: the list
                 * is the one read, or the write is refused.  An object
                 * without one (not from an API server) gets the weaker guard
                 * of a test. */
                cJSON *p = guarded_patch(o);
                char path[64];
                snprintf(path, sizeof path, "/metadata/finalizers/%d", idx);
                if (cJSON_GetArraySize(p) == 0) {
                        cJSON *t = cJSON_CreateObject();
                        cJSON_AddStringToObject(t, "op", "test");
                        cJSON_AddStringToObject(t, "path", path);
                        cJSON_AddStringToObject(t, "value", finalizer);
                        cJSON_AddItemToArray(p, t);
                }
                cJSON *rm = cJSON_CreateObject();
                cJSON_AddStringToObject(rm, "op", "remove");
                cJSON_AddStringToObject(rm, "path", path);
                cJSON_AddItemToArray(p, rm);
                koc_response *resp = NULL;
                int r = koc_reconcile_patch(ctx, res, ctx->namespace_, ctx->name, KOC_PATCH_JSON, p,
                                            &resp);
                cJSON_Delete(p);
                bool conflict = r >= 0 && resp->error == 0 && resp->status == 409 &&
                                resp->reason == KOC_REASON_CONFLICT;
                /* Removing the last finalizer of an object being deleted
                 * deletes it, and kube-apiserver answers the object without
                 * the finalizer but with the resourceVersion of the last state
                 * it stored, which still lists it: the cache keeps that state
                 * (same version) until the deletion arrives by watch. */
                const char *uid = meta_str(o, "uid"), *rv = meta_str(o, "resourceVersion");
                const char *arv = r >= 0 && resp->error == 0 && resp->status == 200
                                          ? meta_str(resp->body, "resourceVersion")
                                          : NULL;
                if (uid && rv && arv && strcmp(rv, arv) == 0)
                        finalized_note(ctx->c, ctx->key, uid);
                out = patch_result(r, resp);
                koc_response_free(resp);
                if (!conflict || attempt + 1 == FINALIZER_ATTEMPTS)
                        break;
                /* Read it again from the server: the cache may not have seen
                 * the other writer yet. */
                cJSON_Delete(cur);
                cur = NULL;
                r = koc_reconcile_get(ctx, res, ctx->namespace_, ctx->name, &resp);
                if (r >= 0 && resp->error == 0 && resp->status == 404) {
                        koc_response_free(resp);
                        out = koc_result_done();
                        break;
                }
                if (r < 0 || koc_response_errno(resp) < 0 || !cJSON_IsObject(resp->body)) {
                        out = koc_result_error(r < 0 ? r
                                               : koc_response_errno(resp) < 0
                                                       ? koc_response_errno(resp)
                                                       : -EBADMSG);
                        koc_response_free(resp);
                        break;
                }
                cur = cJSON_Duplicate(resp->body, true);
                koc_response_free(resp);
                if (!cur) {
                        out = koc_result_error(-ENOMEM);
                        break;
                }
        }
        cJSON_Delete(cur);
        return out.type == KOC_RESULT_DONE ? koc_result_done() : out;
}

KOC_EXPORT koc_result koc_reconcile_finalizer(koc_reconcile_context *ctx, const char *finalizer,
                                              koc_finalizer_step_t apply,
                                              koc_finalizer_step_t cleanup, void *userdata) {
        const cJSON *obj = koc_reconcile_get_object(ctx);
        const koc_resource *res = koc__informer_get_resource(ctx->c->primary);
        koc_response *resp = NULL;

        if (!obj)
                return koc_result_done();
        int idx = finalizer_index(obj, finalizer);
        if (!koc_object_is_deleting(obj)) {
                if (idx >= 0)
                        return apply ? apply(ctx, obj, userdata) : koc_result_done();
                cJSON *p = guarded_patch(obj);
                cJSON *op = cJSON_CreateObject();
                const cJSON *list = cJSON_GetObjectItemCaseSensitive(
                        cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "finalizers");
                cJSON_AddStringToObject(op, "op", "add");
                if (cJSON_IsArray(list)) {
                        cJSON_AddStringToObject(op, "path", "/metadata/finalizers/-");
                        cJSON_AddStringToObject(op, "value", finalizer);
                } else {
                        cJSON_AddStringToObject(op, "path", "/metadata/finalizers");
                        cJSON_AddItemToArray(cJSON_AddArrayToObject(op, "value"),
                                             cJSON_CreateString(finalizer));
                }
                cJSON_AddItemToArray(p, op);
                int r = koc_reconcile_patch(ctx, res, ctx->namespace_, ctx->name, KOC_PATCH_JSON, p,
                                            &resp);
                cJSON_Delete(p);
                koc_result pr = patch_result(r, resp);
                bool ok = r >= 0 && resp->error == 0 && resp->status < 300;
                koc_result out = pr;
                if (ok && apply)
                        out = apply(ctx, resp->body ? resp->body : obj, userdata);
                koc_response_free(resp);
                return out;
        }
        if (idx < 0)
                return koc_result_done();
        /* Cleaned up already, and the server deleted it (the cache lags):
         * no second cleanup; the removal below then finds it gone. */
        const char *uid = meta_str(obj, "uid");
        bool finalized = uid && finalized_seen(ctx->c, ctx->key, uid);
        koc_result cr = cleanup && !finalized ? cleanup(ctx, obj, userdata) : koc_result_done();
        if (cr.type != KOC_RESULT_DONE && cr.type != KOC_RESULT_REQUEUE)
                return cr;
        return remove_finalizer(ctx, res, obj, finalizer);
}

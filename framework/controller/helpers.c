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

KOC_EXPORT int koc_object_set_controller_reference(cJSON *object, const cJSON *owner,
                                                   const char *owner_api_version,
                                                   const char *owner_kind) {
        const cJSON *omd = cJSON_GetObjectItemCaseSensitive(owner, "metadata");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(omd, "name"));
        const char *uid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(omd, "uid"));
        if (!cJSON_IsObject(object) || !name || !uid || !owner_api_version || !owner_kind)
                return -EINVAL;
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(object, "metadata");
        if (old && !cJSON_IsObject(old))
                return -EINVAL;
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
        /* One controller per object: another controller reference is an
         * error the caller must see, as in controller-runtime. */
        int i = 0, same = -1;
        cJSON *ref;
        cJSON_ArrayForEach(ref, refs) {
                const char *ruid =
                        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ref, "uid"));
                if (ruid && strcmp(ruid, uid) == 0)
                        same = i;
                else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ref, "controller")))
                        return -EEXIST;
                i++;
        }
        cJSON *n = cJSON_CreateObject();
        if (!n)
                return -ENOMEM;
        cJSON_AddStringToObject(n, "apiVersion", owner_api_version);
        cJSON_AddStringToObject(n, "kind", owner_kind);
        cJSON_AddStringToObject(n, "name", name);
        cJSON_AddStringToObject(n, "uid", uid);
        cJSON_AddBoolToObject(n, "controller", true);
        cJSON_AddBoolToObject(n, "blockOwnerDeletion", true);
        if (same >= 0)
                cJSON_ReplaceItemInArray(refs, same, n);
        else
                cJSON_AddItemToArray(refs, n);
        return 0;
}

static bool str_eq(const cJSON *o, const char *field, const char *want) {
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, field));
        return v && want && strcmp(v, want) == 0;
}

KOC_EXPORT int koc_object_set_condition(cJSON *object, const char *type, const char *status,
                                        const char *reason, const char *message) {
        if (!cJSON_IsObject(object) || !type || !status)
                return -EINVAL;
        cJSON *st = cJSON_GetObjectItemCaseSensitive(object, "status");
        if (!cJSON_IsObject(st)) {
                cJSON_DeleteItemFromObjectCaseSensitive(object, "status");
                st = cJSON_AddObjectToObject(object, "status");
        }
        cJSON *conds = cJSON_GetObjectItemCaseSensitive(st, "conditions");
        if (!cJSON_IsArray(conds)) {
                cJSON_DeleteItemFromObjectCaseSensitive(st, "conditions");
                conds = cJSON_AddArrayToObject(st, "conditions");
        }
        if (!conds)
                return -ENOMEM;
        const cJSON *gen = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(object, "metadata"), "generation");
        cJSON *cond = NULL, *c;
        cJSON_ArrayForEach(c, conds) if (str_eq(c, "type", type)) cond = c;
        if (cond && str_eq(cond, "status", status) &&
            str_eq(cond, "reason", reason ? reason : "") &&
            str_eq(cond, "message", message ? message : "") &&
            (!cJSON_IsNumber(gen) ||
             cJSON_Compare(cJSON_GetObjectItemCaseSensitive(cond, "observedGeneration"), gen,
                           true)))
                return 0;
        char now[64];
        /* Conditions carry metav1.Time: RFC 3339 in whole seconds. */
        uint64_t t = koc_now_realtime_usec() / KOC_USEC_PER_SEC * KOC_USEC_PER_SEC;
        koc_format_microtime(t, now, sizeof now);
        char *dot = strchr(now, '.');
        if (dot)
                memmove(dot, dot + 7, strlen(dot + 7) + 1);
        bool transition = !cond || !str_eq(cond, "status", status);
        cJSON *n = cJSON_CreateObject();
        if (!n)
                return -ENOMEM;
        cJSON_AddStringToObject(n, "type", type);
        cJSON_AddStringToObject(n, "status", status);
        cJSON_AddStringToObject(n, "reason", reason ? reason : "");
        cJSON_AddStringToObject(n, "message", message ? message : "");
        const cJSON *old_time =
                cond ? cJSON_GetObjectItemCaseSensitive(cond, "lastTransitionTime") : NULL;
        if (!transition && cJSON_IsString(old_time))
                cJSON_AddStringToObject(n, "lastTransitionTime", old_time->valuestring);
        else
                cJSON_AddStringToObject(n, "lastTransitionTime", now);
        if (cJSON_IsNumber(gen))
                cJSON_AddNumberToObject(n, "observedGeneration", gen->valuedouble);
        if (cond)
                cJSON_ReplaceItemViaPointer(conds, cond, n);
        else
                cJSON_AddItemToArray(conds, n);
        return 1;
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
        koc_result cr = cleanup ? cleanup(ctx, obj, userdata) : koc_result_done();
        if (cr.type != KOC_RESULT_DONE && cr.type != KOC_RESULT_REQUEUE)
                return cr;
        /* The resourceVersion guard makes the index exact: the list is the
         * one the reconcile saw, or the write is refused.  An object without
         * one (not from an API server) gets the weaker guard of a test. */
        cJSON *p = guarded_patch(obj);
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
        int r = koc_reconcile_patch(ctx, res, ctx->namespace_, ctx->name, KOC_PATCH_JSON, p, &resp);
        cJSON_Delete(p);
        koc_result out = patch_result(r, resp);
        koc_response_free(resp);
        return out.type == KOC_RESULT_DONE ? koc_result_done() : out;
}

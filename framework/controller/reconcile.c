/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Create-or-update, create-or-patch, apply with its outcome, and status
 * patches and applies (koc/reconcile.h), on top of the reconcile's fenced
 * client (writer.c), whose answers reach the manager's cache.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller-internal.h"
#include "core/ratelimit.h"
#include "core/util.h"
#include "framework/cache/cache-internal.h"
#include "koc/log.h"

#define LOG "controller"

static const char *meta_str(const cJSON *obj, const char *field) {
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(obj, "metadata"), field));
}

static void response_freep(koc_response **r) {
        koc_response_free(*r);
}
#define _response_ _koc_cleanup_(response_freep)

static void json_deletep(cJSON **j) {
        cJSON_Delete(*j);
}
#define _json_ _koc_cleanup_(json_deletep)

/* The answer's errno (koc/client.h's table), 0 for a 2xx. */
static int answer_errno(int r, const koc_response *resp) {
        return r < 0 ? r : koc_response_errno(resp);
}

/* Objects read from a list carry no apiVersion and kind: a write needs them. */
static int ensure_type(cJSON *obj, const koc_resource *res) {
        char av[256];
        if (koc__api_version_format(res->group, res->version, av, sizeof av) < 0)
                return -EINVAL;
        return koc__json_fill_type(obj, av, res->kind);
}

/* The current object: from the manager's cache, or with a GET when no
 * informer of the manager holds every object of res in that namespace in
 * full (none; or only label-selected, metadata-only or not yet listed ones).
 * -ENOENT when it does not exist. */
static int read_current(koc_reconcile_context *ctx, const koc_resource *res, const char *namespace_,
                        const char *name, cJSON **ret) {
        koc_object *o = NULL;
        int r = koc__cache_ref_covered(koc_reconcile_get_cache(ctx), res, namespace_, name, true,
                                       &o);
        if (r == 0) {
                r = koc_object_parse(o, ret);
                koc_object_unref(o);
                return r;
        }
        if (r == -ENOENT)
                return r;
        _response_ koc_response *resp = NULL;
        r = koc__reconcile_submit(ctx, res, "GET", namespace_, name, NULL, NULL, NULL, NULL, &resp);
        if ((r = answer_errno(r, resp)) < 0)
                return r;
        if (!cJSON_IsObject(resp->body))
                return -EBADMSG;
        *ret = cJSON_Duplicate(resp->body, true);
        return *ret ? 0 : -ENOMEM;
}

/* mutate may not move the object to another key: the write would reach
 * another object than the one that was read. */
static int check_key(koc_reconcile_context *ctx, const koc_resource *res, const cJSON *obj,
                     const char *namespace_, const char *name) {
        const char *field = NULL, *got = NULL;
        if (!cJSON_IsObject(obj))
                field = "object";
        else if (!koc__streq_null(meta_str(obj, "name"), name))
                field = "metadata.name", got = meta_str(obj, "name");
        else if (!koc__streq_null(meta_str(obj, "namespace"),
                                  res->namespaced ? namespace_ : NULL))
                field = "metadata.namespace", got = meta_str(obj, "namespace");
        if (!field)
                return 0;
        /* koc_reconcile_get_last_error() names it too. */
        ctx->last_error.code = -EINVAL;
        ctx->last_error.mutating = false;
        ctx->last_error.status = 0;
        ctx->last_error.reason = KOC_REASON_NONE;
        snprintf(ctx->last_error.method, sizeof ctx->last_error.method, "mutate");
        snprintf(ctx->last_error.path, sizeof ctx->last_error.path, "%s %s%s%s", res->resource,
                 namespace_ ? namespace_ : "", namespace_ ? "/" : "", name);
        snprintf(ctx->last_error.message, sizeof ctx->last_error.message,
                 "the mutate callback changed %s (to \"%.253s\"); nothing was sent", field,
                 got ? got : "");
        static koc__ratelimit rl = KOC__RATELIMIT_INIT(10 * KOC_USEC_PER_SEC, 5);
        koc__log_ratelimited(&rl, KOC_LOG_WARN, LOG,
                             "controller=%s key=%s %s %s/%s refused: the mutate callback changed "
                             "%s (to \"%.253s\")",
                             ctx->c->name, ctx->key, res->resource, namespace_ ? namespace_ : "",
                             name, field, got ? got : "");
        return -EINVAL;
}

/* RFC 7386: the merge patch that turns a into b (NULL when equal). */
static cJSON *merge_diff(const cJSON *a, const cJSON *b) {
        if (!cJSON_IsObject(a) || !cJSON_IsObject(b))
                return cJSON_Compare(a, b, true) ? NULL : cJSON_Duplicate(b, true);
        cJSON *p = cJSON_CreateObject();
        const cJSON *i;
        if (!p)
                return NULL;
        cJSON_ArrayForEach(i, a) {
                if (i->string && !cJSON_GetObjectItemCaseSensitive(b, i->string))
                        cJSON_AddNullToObject(p, i->string);
        }
        cJSON_ArrayForEach(i, b) {
                if (!i->string)
                        continue;
                const cJSON *old = cJSON_GetObjectItemCaseSensitive(a, i->string);
                cJSON *d = !old ? cJSON_Duplicate(i, true) : merge_diff(old, i);
                /* A nested object equal on both sides has no entry. */
                if (d)
                        cJSON_AddItemToObject(p, i->string, d);
        }
        if (!p->child) {
                cJSON_Delete(p);
                return NULL;
        }
        return p;
}

/* RFC 7386's apply, in place. */
static int merge_apply(cJSON *target, const cJSON *patch) {
        const cJSON *i;
        cJSON_ArrayForEach(i, patch) {
                if (!i->string)
                        continue;
                if (cJSON_IsNull(i)) {
                        koc__json_delete_all(target, i->string);
                        continue;
                }
                cJSON *cur = cJSON_GetObjectItemCaseSensitive(target, i->string);
                if (cJSON_IsObject(i) && cJSON_IsObject(cur)) {
                        int r = merge_apply(cur, i);
                        if (r < 0)
                                return r;
                        continue;
                }
                cJSON *dup = cJSON_Duplicate(i, true);
                if (!dup)
                        return -ENOMEM;
                /* In place, so that the object keeps its order. */
                if (cur ? !cJSON_ReplaceItemViaPointer(target, cur, dup)
                        : !cJSON_AddItemToObject(target, i->string, dup)) {
                        cJSON_Delete(dup);
                        return -ENOMEM;
                }
        }
        return 0;
}

KOC_EXPORT int koc_mutate_merge(cJSON *object, void *desired) {
        const cJSON *d = desired;
        if (!cJSON_IsObject(object) || !cJSON_IsObject(d))
                return -EINVAL;
        return merge_apply(object, d);
}

/* object without its status, or only {"status": ...}. */
static cJSON *split_status(const cJSON *obj, bool status) {
        if (status) {
                cJSON *o = cJSON_CreateObject();
                const cJSON *st = cJSON_GetObjectItemCaseSensitive(obj, "status");
                if (o && st)
                        cJSON_AddItemToObject(o, "status", cJSON_Duplicate(st, true));
                return o;
        }
        cJSON *o = cJSON_Duplicate(obj, true);
        if (o)
                koc__json_delete_all(o, "status");
        return o;
}

static int send_merge(koc_reconcile_context *ctx, const koc_resource *res, const char *namespace_,
                      const char *name, const char *sub, const cJSON *patch) {
        _response_ koc_response *resp = NULL;
        int r = koc__reconcile_submit(ctx, res, "PATCH", namespace_, name, sub, NULL, patch,
                                      "application/merge-patch+json", &resp);
        return answer_errno(r, resp);
}

static int create_or(koc_reconcile_context *ctx, size_t res_size, const koc_resource *res_in,
                     const char *namespace_, const char *name, koc_mutate_t mutate, void *userdata,
                     bool patch, koc_op_result *ret_op) {
        koc_resource res;
        _json_ cJSON *cur = NULL, *obj = NULL;
        _response_ koc_response *resp = NULL;

        if (!ctx || !res_in || KOC__IMPORT(&res, res_in, res_size, group) < 0 || !name || !*name ||
            !mutate || !res.resource || !res.version)
                return -EINVAL;
        if (!res.namespaced)
                namespace_ = NULL;
        int r = read_current(ctx, &res, namespace_, name, &cur);
        if (r < 0 && r != -ENOENT)
                return r;
        if (r == -ENOENT) {
                obj = cJSON_CreateObject();
                cJSON *md = obj ? cJSON_AddObjectToObject(obj, "metadata") : NULL;
                if (!md || ensure_type(obj, &res) < 0 ||
                    !cJSON_AddStringToObject(md, "name", name) ||
                    (namespace_ && !cJSON_AddStringToObject(md, "namespace", namespace_)))
                        return -ENOMEM;
                if ((r = mutate(obj, userdata)) < 0)
                        return r;
                if ((r = check_key(ctx, &res, obj, namespace_, name)) < 0)
                        return r;
                r = koc__reconcile_submit(ctx, &res, "POST", namespace_, NULL, NULL, NULL, obj,
                                          NULL, &resp);
                if ((r = answer_errno(r, resp)) < 0)
                        return r;
                if (ret_op)
                        *ret_op = KOC_OP_CREATED;
                return 0;
        }
        if ((r = ensure_type(cur, &res)) < 0)
                return r;
        obj = cJSON_Duplicate(cur, true);
        if (!obj)
                return -ENOMEM;
        if ((r = mutate(obj, userdata)) < 0)
                return r;
        if ((r = check_key(ctx, &res, obj, namespace_, name)) < 0)
                return r;
        if (cJSON_Compare(cur, obj, true)) {
                if (ret_op)
                        *ret_op = KOC_OP_UNCHANGED;
                return 0;
        }
        if (!patch) {
                /* The resourceVersion that was read is the precondition:
                 * whatever mutate did with it. */
                cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
                const char *rv = meta_str(cur, "resourceVersion");
                koc__json_delete_all(md, "resourceVersion");
                if (rv && !cJSON_AddStringToObject(md, "resourceVersion", rv))
                        return -ENOMEM;
                r = koc__reconcile_submit(ctx, &res, "PUT", namespace_, name, NULL, NULL, obj, NULL,
                                          &resp);
                if ((r = answer_errno(r, resp)) < 0)
                        return r;
                if (ret_op)
                        *ret_op = KOC_OP_UPDATED;
                return 0;
        }
        _json_ cJSON *a = split_status(cur, false), *b = split_status(obj, false);
        _json_ cJSON *as = split_status(cur, true), *bs = split_status(obj, true);
        if (!a || !b || !as || !bs)
                return -ENOMEM;
        /* A resourceVersion mutate changed is not sent: the patch is not
         * meant to be conditional. */
        koc__json_delete_all(cJSON_GetObjectItemCaseSensitive(a, "metadata"), "resourceVersion");
        koc__json_delete_all(cJSON_GetObjectItemCaseSensitive(b, "metadata"), "resourceVersion");
        _json_ cJSON *main_patch = merge_diff(a, b), *status_patch = merge_diff(as, bs);
        if (main_patch && (r = send_merge(ctx, &res, namespace_, name, NULL, main_patch)) < 0)
                return r;
        if (status_patch &&
            (r = send_merge(ctx, &res, namespace_, name, "status", status_patch)) < 0)
                return r;
        if (ret_op)
                *ret_op = !status_patch ? (main_patch ? KOC_OP_UPDATED : KOC_OP_UNCHANGED)
                          : main_patch  ? KOC_OP_UPDATED_STATUS
                                        : KOC_OP_UPDATED_STATUS_ONLY;
        return 0;
}

KOC_EXPORT int koc_reconcile_create_or_update_sized(koc_reconcile_context *ctx, size_t res_size,
                                                    const koc_resource *res, const char *namespace_,
                                                    const char *name, koc_mutate_t mutate,
                                                    void *userdata, koc_op_result *ret_op) {
        return create_or(ctx, res_size, res, namespace_, name, mutate, userdata, false, ret_op);
}

KOC_EXPORT int koc_reconcile_create_or_patch_sized(koc_reconcile_context *ctx, size_t res_size,
                                                   const koc_resource *res, const char *namespace_,
                                                   const char *name, koc_mutate_t mutate,
                                                   void *userdata, koc_op_result *ret_op) {
        return create_or(ctx, res_size, res, namespace_, name, mutate, userdata, true, ret_op);
}

struct owned {
        const cJSON *owner;
        const cJSON *desired;
        koc_error err;
};

static int owned_mutate(cJSON *object, void *userdata) {
        struct owned *o = userdata;
        int r = koc_object_set_owner_reference(object, o->owner,
                                               KOC_OWNER_CONTROLLER | KOC_OWNER_NO_ADOPT, &o->err);
        return r < 0 ? r : koc_mutate_merge(object, (void *)o->desired);
}

KOC_EXPORT int koc_reconcile_create_or_patch_owned_sized(koc_reconcile_context *ctx,
                                                         size_t res_size, const koc_resource *res_in,
                                                         const cJSON *owner, const cJSON *desired,
                                                         koc_op_result *ret_op,
                                                         cJSON **ret_object) {
        koc_resource res;
        if (!ctx || !res_in || KOC__IMPORT(&res, res_in, res_size, group) < 0 ||
            !cJSON_IsObject(owner) || !cJSON_IsObject(desired))
                return -EINVAL;
        const char *name = meta_str(desired, "name"), *ns = meta_str(desired, "namespace");
        if (res.namespaced && !ns)
                ns = meta_str(owner, "namespace");
        struct owned o = {.owner = owner, .desired = desired};
        koc_op_result op = KOC_OP_UNCHANGED;
        int r = create_or(ctx, sizeof res, &res, ns, name, owned_mutate, &o, true, &op);
        if (r < 0 && o.err.code < 0) {
                /* The ownerReference was refused: nothing was sent. */
                ctx->last_error.code = o.err.code;
                ctx->last_error.mutating = false;
                ctx->last_error.status = 0;
                ctx->last_error.reason = KOC_REASON_NONE;
                snprintf(ctx->last_error.method, sizeof ctx->last_error.method, "owner");
                snprintf(ctx->last_error.path, sizeof ctx->last_error.path, "%s %s%s%.253s",
                         res.resource, ns ? ns : "", ns ? "/" : "", name ? name : "");
                snprintf(ctx->last_error.message, sizeof ctx->last_error.message, "%s",
                         o.err.message);
        }
        if (r < 0)
                return r;
        if (ret_op)
                *ret_op = op;
        /* The write's answer is in the cache already (read-your-writes). */
        return ret_object ? read_current(ctx, &res, res.namespaced ? ns : NULL, name, ret_object)
                          : 0;
}

KOC_EXPORT int koc_reconcile_apply_op_sized(koc_reconcile_context *ctx, size_t res_size,
                                            const koc_resource *res_in, const cJSON *object,
                                            const char *field_manager, unsigned flags,
                                            koc_op_result *ret_op) {
        koc_resource res;
        _json_ cJSON *cur = NULL;
        _response_ koc_response *resp = NULL;

        if (!ctx || !res_in || KOC__IMPORT(&res, res_in, res_size, group) < 0 || !object)
                return -EINVAL;
        const char *name = meta_str(object, "name");
        const char *ns = res.namespaced ? meta_str(object, "namespace") : NULL;
        if (!name)
                return -EINVAL;
        int r = read_current(ctx, &res, ns, name, &cur);
        if (r < 0 && r != -ENOENT)
                return r;
        r = koc_reconcile_apply_sized(ctx, sizeof res, &res, object, field_manager, flags, &resp);
        if ((r = answer_errno(r, resp)) < 0)
                return r;
        const char *before = cur ? meta_str(cur, "resourceVersion") : NULL;
        const char *after = meta_str(resp->body, "resourceVersion");
        if (ret_op)
                *ret_op = resp->status == 201                             ? KOC_OP_CREATED
                          : before && after && strcmp(before, after) == 0 ? KOC_OP_UNCHANGED
                                                                          : KOC_OP_UPDATED;
        return 0;
}

static const koc_resource *status_resource(koc_reconcile_context *ctx, size_t res_size,
                                           const koc_resource *res, koc_resource *copy) {
        if (!res)
                return koc__informer_get_resource(ctx->c->primary);
        if (KOC__IMPORT(copy, res, res_size, group) < 0)
                return NULL;
        return copy;
}

KOC_EXPORT int koc_reconcile_patch_status_sized(koc_reconcile_context *ctx, size_t res_size,
                                                const koc_resource *res, const cJSON *original,
                                                const cJSON *modified, unsigned flags) {
        koc_resource copy;

        if (!ctx || !cJSON_IsObject(original) || !cJSON_IsObject(modified) ||
            (flags & ~KOC_STATUS_OPTIMISTIC_LOCK))
                return -EINVAL;
        if (!(res = status_resource(ctx, res_size, res, &copy)))
                return -EINVAL;
        const char *name = meta_str(original, "name");
        if (!name)
                return -EINVAL;
        _json_ cJSON *a = split_status(original, true), *b = split_status(modified, true);
        if (!a || !b)
                return -ENOMEM;
        _json_ cJSON *patch = merge_diff(a, b);
        if (!patch)
                return 0;
        if (flags & KOC_STATUS_OPTIMISTIC_LOCK) {
                const char *rv = meta_str(original, "resourceVersion");
                cJSON *md = rv ? cJSON_AddObjectToObject(patch, "metadata") : NULL;
                if (!rv)
                        return -EINVAL; /* nothing to lock on */
                if (!md || !cJSON_AddStringToObject(md, "resourceVersion", rv))
                        return -ENOMEM;
        }
        int r = send_merge(ctx, res, res->namespaced ? meta_str(original, "namespace") : NULL, name,
                           "status", patch);
        return r < 0 ? r : 1;
}

KOC_EXPORT int koc_reconcile_set_condition(koc_reconcile_context *ctx, const cJSON *object,
                                           const char *type, const char *status,
                                           const char *reason, const char *fmt, ...) {
        char msg[1024];
        va_list ap;

        if (!ctx || !cJSON_IsObject(object) || !fmt)
                return -EINVAL;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        _json_ cJSON *changed = cJSON_Duplicate(object, true);
        if (!changed)
                return -ENOMEM;
        int r = koc_object_set_condition(changed, type, status, reason, msg);
        if (r <= 0)
                return r;
        return koc_reconcile_patch_status(ctx, NULL, object, changed, 0);
}

KOC_EXPORT int koc_reconcile_apply_status_sized(koc_reconcile_context *ctx, size_t res_size,
                                                const koc_resource *res, const cJSON *object,
                                                const char *field_manager, unsigned flags) {
        koc_resource copy;
        _response_ koc_response *resp = NULL;

        if (!ctx || !cJSON_IsObject(object) ||
            (flags & ~(KOC_STATUS_OPTIMISTIC_LOCK | KOC_APPLY_FORCE)))
                return -EINVAL;
        if (!(res = status_resource(ctx, res_size, res, &copy)))
                return -EINVAL;
        _json_ cJSON *body = cJSON_Duplicate(object, true);
        if (!body)
                return -ENOMEM;
        cJSON *md = cJSON_GetObjectItemCaseSensitive(body, "metadata");
        /* The server rejects an apply that carries managedFields, and a
         * resourceVersion would make it conditional. */
        koc__json_delete_all(md, "managedFields");
        if (!(flags & KOC_STATUS_OPTIMISTIC_LOCK))
                koc__json_delete_all(md, "resourceVersion");
        int r = koc__reconcile_apply(ctx, res, body, field_manager, flags & KOC_APPLY_FORCE,
                                     "status", &resp);
        return answer_errno(r, resp);
}

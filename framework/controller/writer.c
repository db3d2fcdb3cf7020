/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reconcile context's client: fenced writes and read-your-own-writes.
 *
 * A worker runs its call through core's one post-and-wait mechanism
 * (core/sync.h) on the controller's mailbox: the call lives on the worker's
 * stack and the worker waits on its own condition variable.  The fence is a
 * hook of that mechanism: on the loop thread, right before the request is
 * handed to the client, it is checked: the controller must still be active in the term the reconcile
 * started in, and koc_manager_is_leader() (which applies the renew-deadline
 * rule when read) must be true; otherwise nothing is sent and the call
 * returns -ENOLCK.  The answer also arrives on the loop thread, where a
 * successful write's object is applied to the controller's caches before the
 * worker is woken, so no later reconcile can read an older object.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller-internal.h"
#include "core/ratelimit.h"
#include "core/sync.h"
#include "core/util.h"
#include "framework/cache/cache-internal.h"
#include "koc/log.h"
#include "koc/time.h"

#define LOG "controller"

struct write_call {
        write_call *next, *prev;
        koc_reconcile_context *ctx;
        const koc_resource *res;
        bool mutating;
        bool is_delete;
        char key[512];
        char path[1024];
        koc__call call; /* core's post-and-wait; its hooks below */
};

static void unlink_call(koc_controller *c, write_call *call) {
        if (call->prev)
                call->prev->next = call->next;
        else if (c->writes == call)
                c->writes = call->next;
        if (call->next)
                call->next->prev = call->prev;
        call->next = call->prev = NULL;
}

static bool same_resource(const koc_resource *a, const koc_resource *b) {
        return koc__streq_null(a->group, b->group) && strcmp(a->resource, b->resource) == 0;
}

static void apply_to(koc_controller *c, koc_informer *inf, write_call *call, cJSON *body) {
        if (!same_resource(koc__informer_get_resource(inf), call->res))
                return;
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "kind"));
        bool is_status = kind && strcmp(kind, "Status") == 0;
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(body, "metadata");
        bool deleting = cJSON_GetObjectItemCaseSensitive(md, "deletionTimestamp") != NULL;
        if (call->is_delete && (is_status || !cJSON_IsObject(body) || !deleting))
                /* An object answer carries the deletion's resourceVersion. */
                koc__informer_apply_delete(
                        inf, call->key,
                        is_status ? NULL
                                  : cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                                            md, "resourceVersion")));
        else if (!is_status && cJSON_IsObject(body))
                koc__informer_apply_write(inf, body);
}

static void apply_answer(koc_controller *c, write_call *call, const koc_response *resp) {
        if (!call->mutating || resp->error < 0 || resp->status < 200 || resp->status >= 300)
                return;
        /* The store transforms objects in place: work on a copy, the caller
         * gets the answer as the server sent it. */
        cJSON *body = resp->body ? cJSON_Duplicate(resp->body, true) : NULL;
        if (resp->body && !body)
                return;
        /* Every informer of the type in the manager's cache: this
         * controller's primary, owned and watched ones, other controllers'
         * and those the program keeps (koc_cache_add_informer). */
        koc_informer **infs = NULL;
        size_t n = 0;
        if (koc__cache_ref_informers(koc_manager_get_cache(c->m), call->res, &infs, &n) < 0)
                n = 0;
        for (size_t i = 0; i < n; i++) {
                cJSON *copy = i == 0 || !body ? NULL : cJSON_Duplicate(resp->body, true);
                if (i == 0 || !body || copy)
                        apply_to(c, infs[i], call, i == 0 ? body : copy);
                cJSON_Delete(copy);
                koc__informer_unref(infs[i]);
        }
        free(infs);
        cJSON_Delete(body);
}

/* The hooks of core's call (core/sync.h), all on the loop thread. */

static void on_answer(const koc_response *resp, void *userdata) {
        write_call *call = userdata;
        koc_controller *c = call->ctx->c;

        unlink_call(c, call);
        apply_answer(c, call, resp);
}

static void on_dropped(void *userdata) {
        write_call *call = userdata;

        unlink_call(call->ctx->c, call);
}

static void on_submitted(void *userdata) {
        write_call *call = userdata;
        koc_controller *c = call->ctx->c;

        call->next = c->writes;
        if (c->writes)
                c->writes->prev = call;
        c->writes = call;
}

/* The fence, checked as late as this process can: right before the request
 * is handed to the client. */
static int fence(void *userdata) {
        write_call *call = userdata;
        koc_controller *c = call->ctx->c;
        const koc_request_spec *spec = &call->call.spec;

        if (c->closing)
                return -ECANCELED;
        if (call->mutating && koc__controller_timed_out(call->ctx)) {
                koc_log_debug(LOG, "controller=%s key=%s %s %s refused: reconcile timed out",
                              c->name, call->ctx->key, spec->method, call->path);
                return -ETIMEDOUT;
        }
        if (call->mutating && !koc__controller_may_write(call->ctx)) {
                koc_log_debug(LOG, "controller=%s key=%s %s %s refused: not leading", c->name,
                              call->ctx->key, spec->method, call->path);
                return -ENOLCK;
        }
        /* The fence passed: say when (CLOCK_BOOTTIME, us) and under which
         * fencing token, so that a chaos run or a post-mortem can check that
         * no two replicas wrote in one instant and that terms only grow. */
        if (call->mutating)
                koc_log_debug(
                        LOG, "fenced write controller=%s key=%s %s %s term=%" PRIu64 " at=%" PRIu64,
                        c->name, call->ctx->key, spec->method, call->path, call->ctx->term,
                        koc_now_boottime_usec());
        return 0;
}

static const koc__call_hooks write_hooks = {
        .before_submit = fence,
        .submitted = on_submitted,
        .answered = on_answer,
        .dropped = on_dropped,
};

void koc__controller_cancel_writes(koc_controller *c) {
        while (c->writes) {
                write_call *call = c->writes;
                unlink_call(c, call);
                koc__call_cancel(&call->call);
        }
}

/* Remembers a failed call for the reconcile's failure line and
 * koc_reconcile_get_last_error() (on the worker, which owns ctx). */
static void note_failure(koc_reconcile_context *ctx, const write_call *call,
                         const koc_response *resp) {
        int e = koc_response_errno(resp);
        if (e == 0)
                return;
        ctx->last_error.code = e;
        ctx->last_error.mutating = call->mutating;
        /* A transport failure is reported as one even when a status line
         * came before the answer broke off (a 200 with a cut body). */
        ctx->last_error.status = resp->error < 0 ? 0 : resp->status;
        ctx->last_error.reason = resp->error < 0 ? KOC_REASON_NONE : resp->reason;
        snprintf(ctx->last_error.method, sizeof ctx->last_error.method, "%s",
                 call->call.spec.method);
        snprintf(ctx->last_error.path, sizeof ctx->last_error.path, "%s", call->path);
        snprintf(ctx->last_error.message, sizeof ctx->last_error.message, "%s",
                 resp->message ? resp->message : "");
}

static int submit_query(koc_reconcile_context *ctx, const koc_resource *res, const char *method,
                        const char *namespace_, const char *name, const char *sub,
                        const char *query, const cJSON *body, const char *content_type,
                        bool mutating, bool is_delete, koc_response **ret) {
        if (!ctx || !res || !ret)
                return -EINVAL;
        koc_controller *c = ctx->c;
        if (koc__mailbox_on_loop(c->mb))
                return -EDEADLK; /* the loop would wait for itself */
        write_call call = {.ctx = ctx, .res = res, .mutating = mutating, .is_delete = is_delete};
        koc_error err = {0};
        int r = 0;
        /* A namespaced object is always written in its namespace: without
         * one the path would name every namespace's collection. */
        if (res->namespaced && (!namespace_ || !*namespace_))
                r = koc_error_set(&err, -EINVAL, "invalid namespace \"\": must not be empty");
        else
                r = koc__resource_path(res, res->namespaced ? namespace_ : NULL, name, sub,
                                       call.path, sizeof call.path, &err);
        if (r < 0) {
                /* Nothing is sent: a name that is not one path segment would
                 * make the request reach another object. */
                static koc__ratelimit rl = KOC__RATELIMIT_INIT(10 * KOC_USEC_PER_SEC, 5);
                koc__log_ratelimited(&rl, KOC_LOG_WARN, LOG,
                                     "controller=%s key=%s %s %s refused: %s", c->name, ctx->key,
                                     method, res->resource ? res->resource : "", err.message);
                return r;
        }
        if (name && koc_object_key_format(res->namespaced ? namespace_ : NULL, name, call.key,
                                          sizeof call.key) < 0)
                return -ENAMETOOLONG;
        /* Refuse early too, so a reconcile that lost leadership does not
         * even queue work for the loop; the loop checks again. */
        if (mutating && koc__controller_timed_out(ctx))
                return -ETIMEDOUT;
        if (mutating && !koc__controller_may_write(ctx))
                return -ENOLCK;
        call.call = (koc__call){.client = koc_manager_get_client(c->m),
                                .spec = {.method = method,
                                         .path = call.path,
                                         .query = query,
                                         .body = body,
                                         .content_type = content_type},
                                .hooks = &write_hooks,
                                .userdata = &call};
        koc_response *resp = NULL;
        r = koc__call_run(c->mb, &call.call, &resp);
        if (r < 0)
                return r;
        note_failure(ctx, &call, resp);
        *ret = resp;
        return 0;
}

static int submit(koc_reconcile_context *ctx, const koc_resource *res, const char *method,
                  const char *namespace_, const char *name, const char *sub, const cJSON *body,
                  const char *content_type, bool mutating, bool is_delete, koc_response **ret) {
        return submit_query(ctx, res, method, namespace_, name, sub, NULL, body, content_type,
                            mutating, is_delete, ret);
}

int koc__reconcile_submit(koc_reconcile_context *ctx, const koc_resource *res, const char *method,
                          const char *namespace_, const char *name, const char *sub,
                          const char *query, const cJSON *body, const char *content_type,
                          koc_response **ret) {
        bool mutating = strcmp(method, "GET") != 0;
        return submit_query(ctx, res, method, namespace_, name, sub, query, body, content_type,
                            mutating, strcmp(method, "DELETE") == 0, ret);
}

static const char *meta_str(const cJSON *obj, const char *field) {
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(obj, "metadata"), field));
}

/* The caller's koc_resource, read at the size it was compiled with. */
#define IMPORT_RESOURCE(copy, res, res_size)                                                       \
        do {                                                                                       \
                if (KOC__IMPORT(&(copy), (res), (res_size), group) < 0)                            \
                        return -EINVAL;                                                            \
                (res) = &(copy);                                                                   \
        } while (0)

KOC_EXPORT int koc_reconcile_create_sized(koc_reconcile_context *ctx, size_t res_size,
                                          const koc_resource *res, const char *namespace_,
                                          const cJSON *object, koc_response **ret) {
        koc_resource copy;

        IMPORT_RESOURCE(copy, res, res_size);
        if (!object)
                return -EINVAL;
        const char *ns = namespace_ ? namespace_ : meta_str(object, "namespace");
        return submit(ctx, res, "POST", ns, NULL, NULL, object, NULL, true, false, ret);
}

static int update(koc_reconcile_context *ctx, const koc_resource *res, const cJSON *object,
                  const char *sub, koc_response **ret) {
        const char *name = object ? meta_str(object, "name") : NULL;
        if (!name)
                return -EINVAL;
        return submit(ctx, res, "PUT", meta_str(object, "namespace"), name, sub, object, NULL, true,
                      false, ret);
}

KOC_EXPORT int koc_reconcile_update_sized(koc_reconcile_context *ctx, size_t res_size,
                                          const koc_resource *res, const cJSON *object,
                                          koc_response **ret) {
        koc_resource copy;

        IMPORT_RESOURCE(copy, res, res_size);
        return update(ctx, res, object, NULL, ret);
}

KOC_EXPORT int koc_reconcile_update_status_sized(koc_reconcile_context *ctx, size_t res_size,
                                                 const koc_resource *res, const cJSON *object,
                                                 koc_response **ret) {
        koc_resource copy;

        IMPORT_RESOURCE(copy, res, res_size);
        return update(ctx, res, object, "status", ret);
}

KOC_EXPORT int koc_reconcile_patch_sized(koc_reconcile_context *ctx, size_t res_size,
                                         const koc_resource *res, const char *namespace_,
                                         const char *name, koc_patch_type type, const cJSON *patch,
                                         koc_response **ret) {
        koc_resource copy;

        IMPORT_RESOURCE(copy, res, res_size);
        if (!name || !patch || (type != KOC_PATCH_MERGE && type != KOC_PATCH_JSON))
                return -EINVAL;
        return submit(ctx, res, "PATCH", namespace_, name, NULL, patch,
                      type == KOC_PATCH_MERGE ? "application/merge-patch+json"
                                              : "application/json-patch+json",
                      true, false, ret);
}

int koc__reconcile_apply(koc_reconcile_context *ctx, const koc_resource *res, const cJSON *object,
                         const char *field_manager, bool force, const char *sub,
                         koc_response **ret) {
        _koc_cleanup_(koc_query_freep) koc_query *q = NULL;

        if (!field_manager || !*field_manager || strlen(field_manager) > 128)
                return -EINVAL;
        const char *name = meta_str(object, "name");
        if (!name ||
            !cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(object, "apiVersion")) ||
            !cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(object, "kind")))
                return -EINVAL;
        /* The one query encoder (core/query.c): whatever the field manager
         * holds stays a value. */
        if (koc_query_new(&q) < 0 || koc_query_set(q, "fieldManager", field_manager) < 0 ||
            (force && koc_query_set(q, "force", "true") < 0))
                return -ENOMEM;
        const char *query = koc_query_string(q);
        if (!query)
                return -ENOMEM;
        return submit_query(ctx, res, "PATCH", meta_str(object, "namespace"), name, sub, query,
                            object, "application/apply-patch+yaml", true, false, ret);
}

KOC_EXPORT int koc_reconcile_apply_sized(koc_reconcile_context *ctx, size_t res_size,
                                         const koc_resource *res, const cJSON *object,
                                         const char *field_manager, unsigned flags,
                                         koc_response **ret) {
        koc_resource copy;

        IMPORT_RESOURCE(copy, res, res_size);
        if (!object || (flags & ~KOC_APPLY_FORCE))
                return -EINVAL;
        return koc__reconcile_apply(ctx, res, object, field_manager, flags & KOC_APPLY_FORCE, NULL,
                                    ret);
}

KOC_EXPORT int koc_reconcile_delete_sized(koc_reconcile_context *ctx, size_t res_size,
                                          const koc_resource *res, const char *namespace_,
                                          const char *name, koc_response **ret) {
        koc_resource copy;

        IMPORT_RESOURCE(copy, res, res_size);
        if (!name)
                return -EINVAL;
        return submit(ctx, res, "DELETE", namespace_, name, NULL, NULL, NULL, true, true, ret);
}

KOC_EXPORT int koc_reconcile_delete_with_options_sized(koc_reconcile_context *ctx,
                                                       size_t res_size, const koc_resource *res,
                                                       const char *namespace_, const char *name,
                                                       const cJSON *options, koc_response **ret) {
        koc_resource copy;

        IMPORT_RESOURCE(copy, res, res_size);
        if (!name || (options && !cJSON_IsObject(options)))
                return -EINVAL;
        return submit(ctx, res, "DELETE", namespace_, name, NULL, options, NULL, true, true, ret);
}

KOC_EXPORT int koc_reconcile_get_sized(koc_reconcile_context *ctx, size_t res_size,
                                       const koc_resource *res, const char *namespace_,
                                       const char *name, koc_response **ret) {
        koc_resource copy;

        IMPORT_RESOURCE(copy, res, res_size);
        if (!name)
                return -EINVAL;
        return submit(ctx, res, "GET", namespace_, name, NULL, NULL, NULL, false, false, ret);
}

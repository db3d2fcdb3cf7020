/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc/reconcile.h: what a reconcile does around its own logic, as
 * controller-runtime's controllerutil and client helpers do it: create or
 * update owned objects, owner references, status patches and applies,
 * conditions.  Included by koc/controller.h.
 *
 *   static int deployment(cJSON *d, void *ud) {     // current object or a fresh one
 *           const cJSON *owner = ud;
 *           ... set spec.replicas ...
 *           return koc_object_set_owner_reference(d, owner, KOC_OWNER_CONTROLLER, NULL);
 *   }
 *   koc_op_result op;
 *   r = koc_reconcile_create_or_patch(ctx, &deployments, ns, name, deployment, (void *)cr, &op);
 *
 *   cJSON *cr2 = cJSON_Duplicate(cr, true);
 *   koc_object_set_condition(cr2, "Available", "True", "Ready", "3 replicas");
 *   r = koc_reconcile_patch_status(ctx, NULL, cr, cr2, 0);   // 0: nothing to send
 *
 * Every write goes through the reconcile context: fenced (-ENOLCK when this
 * replica may no longer lead, nothing sent), and its answer reaches every
 * informer of its type in the manager's cache before the call returns
 * (read-your-own-writes), so the next reconcile reads what was written.
 * Calls that return an errno for an API answer use koc/client.h's table
 * (-EBUSY for 409 Conflict, -EEXIST for AlreadyExists, -EINVAL for 422,
 * ...); koc_reconcile_get_last_error() gives the server's words.
 *
 * Threads: the koc_reconcile_* functions on the worker running that
 * reconcile; the koc_object_* and koc_conditions_* ones anywhere (they send
 * nothing).
 */
#ifndef KOC_RECONCILE_H
#define KOC_RECONCILE_H

#include <koc/controller.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- create or update ------------------------------------------------------------ */

typedef enum koc_op_result {
        KOC_OP_UNCHANGED,           /* equal after mutate: no request was sent */
        KOC_OP_CREATED,             /* it did not exist and was created */
        KOC_OP_UPDATED,             /* the object (not its status) was written */
        KOC_OP_UPDATED_STATUS,      /* create_or_patch: the object and its status */
        KOC_OP_UPDATED_STATUS_ONLY, /* create_or_patch: only its status */
} koc_op_result;

/* The mutate callback: brings object to the wanted state in place.  object
 * is the current one (a copy of the cached object, with apiVersion and kind
 * set) or, when it does not exist, a fresh {apiVersion, kind,
 * metadata: {name, namespace}}.  It must not change metadata.name or
 * metadata.namespace.  0 to go on, a negative errno to stop (returned as
 * is, nothing is sent). */
typedef int (*koc_mutate_t)(cJSON *object, void *userdata);

/* controllerutil.CreateOrUpdate: reads namespace_/name of res from the
 * manager's cache, from an informer that holds every object of res in that
 * namespace in full and has listed once; without one (no informer of res
 * there, or only label-selected, metadata-only or still listing ones, whose
 * cache may lack an object or hold only its metadata) it sends a GET, so
 * keep an informer of what you write: koc_controller_owns() or
 * koc_cache_add_informer() without a selector.  Then it calls mutate,
 * and then: creates it when it did not exist (KOC_OP_CREATED); sends
 * nothing when the object is equal to what was read (cJSON_Compare,
 * KOC_OP_UNCHANGED); else replaces it (PUT) with the resourceVersion that
 * was read, so that a write by someone else since is -EBUSY (retry the
 * reconcile) and never overwritten.  A create that meets an object the
 * cache did not hold yet is -EEXIST.  mutate changing name or namespace is
 * -EINVAL (nothing sent; a warn line and koc_reconcile_get_last_error() name
 * the field).  *ret_op (may be
 * NULL) is written on success.  0 or a negative errno. */
KOC_EXPORT int koc_reconcile_create_or_update_sized(koc_reconcile_context *ctx, size_t res_size,
                                                    const koc_resource *res, const char *namespace_,
                                                    const char *name, koc_mutate_t mutate,
                                                    void *userdata, koc_op_result *ret_op);
#define koc_reconcile_create_or_update(ctx, ...)                                                   \
        koc_reconcile_create_or_update_sized((ctx), sizeof(koc_resource), __VA_ARGS__)

/* controllerutil.CreateOrPatch: as create_or_update, but an existing object
 * gets a JSON merge patch (RFC 7386) of what mutate changed outside status,
 * without a resourceVersion (fields that others changed meanwhile are kept),
 * and a change of status goes to the status subresource as a second merge
 * patch (KOC_OP_UPDATED_STATUS or _STATUS_ONLY).  Only the difference is
 * sent. */
KOC_EXPORT int koc_reconcile_create_or_patch_sized(koc_reconcile_context *ctx, size_t res_size,
                                                   const koc_resource *res, const char *namespace_,
                                                   const char *name, koc_mutate_t mutate,
                                                   void *userdata, koc_op_result *ret_op);
#define koc_reconcile_create_or_patch(ctx, ...)                                                    \
        koc_reconcile_create_or_patch_sized((ctx), sizeof(koc_resource), __VA_ARGS__)

/* The usual case of create-or-patch, in one call: an object this reconcile's
 * primary owner controls.  desired (a JSON object with metadata.name, and
 * metadata.namespace for a namespaced res: the owner's when absent) is
 * merged into the current object as koc_mutate_merge does, with a controller
 * ownerReference to owner (koc_object_set_owner_reference with
 * KOC_OWNER_CONTROLLER | KOC_OWNER_NO_ADOPT): an existing object of that name
 * that owner does not control already -- someone else's, or no one's -- is
 * -EADDRINUSE, nothing sent, and koc_reconcile_get_last_error() says who
 * controls it.  *ret_op (may be NULL) as koc_reconcile_create_or_patch.
 * *ret_object (may be NULL): the object as it is after the call (the write's
 * answer, from the cache), to free with cJSON_Delete; on error it is not
 * written.  0 or a negative errno. */
KOC_EXPORT int koc_reconcile_create_or_patch_owned_sized(koc_reconcile_context *ctx,
                                                         size_t res_size, const koc_resource *res,
                                                         const cJSON *owner, const cJSON *desired,
                                                         koc_op_result *ret_op,
                                                         cJSON **ret_object);
#define koc_reconcile_create_or_patch_owned(ctx, ...)                                              \
        koc_reconcile_create_or_patch_owned_sized((ctx), sizeof(koc_resource), __VA_ARGS__)

/* A mutate that makes the object carry every field of the desired object
 * given as userdata (a const cJSON *): desired is merged into the current
 * object as a JSON merge patch would be (objects field by field, everything
 * else replaced; null fields of desired are removed), so fields the server
 * or others set and desired does not name are kept.  For callers that hold a
 * desired object rather than a callback:
 *   koc_reconcile_create_or_patch(ctx, &res, ns, name, koc_mutate_merge, desired, &op); */
KOC_EXPORT int koc_mutate_merge(cJSON *object, void *desired);

/* Server-side apply (koc_reconcile_apply) that says what happened: 201 is
 * KOC_OP_CREATED, an answer whose resourceVersion is the one the cache held
 * before is KOC_OP_UNCHANGED (the server does not write an apply that
 * changes nothing), else KOC_OP_UPDATED.  The request is always sent.
 * 0 or a negative errno (the API answer's, see koc/client.h). */
KOC_EXPORT int koc_reconcile_apply_op_sized(koc_reconcile_context *ctx, size_t res_size,
                                            const koc_resource *res, const cJSON *object,
                                            const char *field_manager, unsigned flags,
                                            koc_op_result *ret_op);
#define koc_reconcile_apply_op(ctx, ...)                                                           \
        koc_reconcile_apply_op_sized((ctx), sizeof(koc_resource), __VA_ARGS__)

/* --- owner references ------------------------------------------------------------ */

#define KOC_OWNER_CONTROLLER (1u << 0)        /* controller: true (one per object) */
#define KOC_OWNER_NO_BLOCK_DELETION (1u << 1) /* blockOwnerDeletion false (default true) */
/* Adopt nothing: an object that exists (it has metadata.uid) and is not
 * already controlled by owner is -EADDRINUSE, unchanged; so an owned object's
 * name taken by someone else's object is refused instead of taken over (what
 * a create-or-patch mutate wants: a fresh object has no uid).  With
 * KOC_OWNER_CONTROLLER. */
#define KOC_OWNER_NO_ADOPT (1u << 2)

/* Adds (or updates in place) an ownerReference to owner on object:
 * apiVersion, kind, name and uid from owner, blockOwnerDeletion true unless
 * KOC_OWNER_NO_BLOCK_DELETION, controller true with KOC_OWNER_CONTROLLER.  A
 * reference to the same owner (same uid, or same group, kind and name) is
 * replaced, so calling it on every reconcile changes nothing.  An object
 * whose controller is already another owner is not taken over:
 * -EADDRINUSE (a code no API answer has; -EEXIST would read as
 * AlreadyExists) with err naming both owners, object unchanged.  -EINVAL
 * (err says which) when owner lacks apiVersion, kind, metadata.name or
 * metadata.uid, or object is not an object; a namespaced object owned by an
 * object of another namespace is also -EINVAL, as the garbage collector
 * would delete it.  0 on success. */
KOC_EXPORT int koc_object_set_owner_reference(cJSON *object, const cJSON *owner, unsigned flags,
                                              koc_error *err);
/* The same from the owner's resource, name and uid (apiVersion and kind
 * from res). */
KOC_EXPORT int koc_object_set_owner_reference_to_sized(cJSON *object, size_t res_size,
                                                       const koc_resource *owner_res,
                                                       const char *owner_name,
                                                       const char *owner_uid, unsigned flags,
                                                       koc_error *err);
#define koc_object_set_owner_reference_to(object, ...)                                             \
        koc_object_set_owner_reference_to_sized((object), sizeof(koc_resource), __VA_ARGS__)
/* The controller ownerReference of object, or NULL. */
KOC_EXPORT const cJSON *koc_object_get_controller_reference(const cJSON *object);

/* --- status ---------------------------------------------------------------------- */

/* With KOC_STATUS_OPTIMISTIC_LOCK the patch carries original's
 * metadata.resourceVersion (client.MergeFromWithOptimisticLock): a status
 * written by someone else since is -EBUSY instead of merged.  A bit apart
 * from KOC_APPLY_FORCE, which koc_reconcile_apply_status also takes. */
#define KOC_STATUS_OPTIMISTIC_LOCK (1u << 1)

/* Status().Patch(ctx, modified, client.MergeFrom(original)): sends a JSON
 * merge patch of what differs between original's and modified's `status` to
 * the status subresource of res (NULL: the controller's resource), named by
 * original's metadata.  No resourceVersion unless KOC_STATUS_OPTIMISTIC_LOCK,
 * so a concurrent status write to other fields is kept, not a conflict.
 * A changed list (status.conditions) is sent whole, as merge patches do:
 * when another writer changes the same list, use the lock.
 * 1 when a patch was accepted, 0 when the statuses are equal (nothing sent),
 * or a negative errno (-ENOENT when the object is gone, -EBUSY for a
 * conflict, ...). */
KOC_EXPORT int koc_reconcile_patch_status_sized(koc_reconcile_context *ctx, size_t res_size,
                                                const koc_resource *res, const cJSON *original,
                                                const cJSON *modified, unsigned flags);
#define koc_reconcile_patch_status(ctx, res, ...)                                                  \
        koc_reconcile_patch_status_sized((ctx), sizeof(koc_resource), (res), __VA_ARGS__)

/* Server-side apply of the status subresource (res NULL: the controller's
 * resource): object holds apiVersion, kind, metadata.name (and namespace)
 * and the status fields this manager owns; a resourceVersion in it is
 * dropped unless KOC_STATUS_OPTIMISTIC_LOCK.  flags may also hold
 * KOC_APPLY_FORCE.  0 or a negative errno.  (koc-apiserver refuses applies
 * to subresources with 400: -EINVAL.) */
KOC_EXPORT int koc_reconcile_apply_status_sized(koc_reconcile_context *ctx, size_t res_size,
                                                const koc_resource *res, const cJSON *object,
                                                const char *field_manager, unsigned flags);
#define koc_reconcile_apply_status(ctx, res, ...)                                                  \
        koc_reconcile_apply_status_sized((ctx), sizeof(koc_resource), (res), __VA_ARGS__)

/* status.observedGeneration = metadata.generation: 1 when changed, 0 when
 * already so or the object has no generation, -EINVAL for a non-object. */
KOC_EXPORT int koc_object_set_observed_generation(cJSON *object);

/* meta.SetStatusCondition and Status().Patch in one call: sets the condition
 * (koc_object_set_condition: lastTransitionTime only on a change of status,
 * observedGeneration from metadata.generation) on a copy of object, the
 * controller's primary as the reconcile read it, and when anything changed
 * sends the difference as a merge patch of the status subresource
 * (koc_reconcile_patch_status without lock).  The message is printf-style,
 * cut at 1023 bytes.  object is not changed: several calls in one reconcile
 * each patch from the same snapshot, so the last one of a type wins.
 * 1 when a patch was accepted, 0 when the condition was already so (nothing
 * sent), or a negative errno (-EINVAL for bad arguments, the patch's errno). */
KOC_EXPORT int koc_reconcile_set_condition(koc_reconcile_context *ctx, const cJSON *object,
                                           const char *type, const char *status,
                                           const char *reason, const char *fmt, ...)
        __attribute__((format(printf, 6, 7)));

/* --- conditions ------------------------------------------------------------------ */

/* metav1.Condition lists (type, status "True"/"False"/"Unknown", reason,
 * message, lastTransitionTime, observedGeneration), as
 * k8s.io/apimachinery/pkg/api/meta's SetStatusCondition and friends.  The
 * koc_conditions_* functions work on the list itself (a JSON array, for
 * code that keeps it outside an object); the koc_object_* ones on
 * status.conditions of an object. */

/* Sets the condition of this type: lastTransitionTime is now when the
 * condition is new or its status changed, and kept otherwise; reason and
 * message NULL are "".  observed_generation < 0 leaves it out.  1 when
 * anything changed, 0 when not, -EINVAL for a bad argument. */
KOC_EXPORT int koc_conditions_set(cJSON *conditions, const char *type, const char *status,
                                  const char *reason, const char *message,
                                  int64_t observed_generation);
/* The condition of this type (borrowed), or NULL. */
KOC_EXPORT cJSON *koc_conditions_find(const cJSON *conditions, const char *type);
/* 1 when removed, 0 when there was none. */
KOC_EXPORT int koc_conditions_remove(cJSON *conditions, const char *type);

/* koc_object_set_condition (koc/controller.h) sets one on an object, with
 * observedGeneration from metadata.generation. */
KOC_EXPORT const cJSON *koc_object_find_condition(const cJSON *object, const char *type);
KOC_EXPORT int koc_object_remove_condition(cJSON *object, const char *type);
/* False when the condition is absent. */
KOC_EXPORT bool koc_object_condition_is_true(const cJSON *object, const char *type);
KOC_EXPORT bool koc_object_condition_is_false(const cJSON *object, const char *type);
/* True when the condition is absent or its status is "Unknown". */
KOC_EXPORT bool koc_object_condition_is_unknown(const cJSON *object, const char *type);

#ifdef __cplusplus
}
#endif
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc/controller.h: the controller runtime.
 *
 * Register a reconcile callback for a resource, and koc delivers every change
 * to it, once per key ("namespace/name"), with retries, only while this
 * replica leads:
 *
 *   static koc_result reconcile(koc_reconcile_context *ctx, void *ud) {
 *           const cJSON *cm = koc_reconcile_get_object(ctx);   // NULL: deleted
 *           if (!cm)
 *                   return koc_result_done();
 *           ... koc_reconcile_update(ctx, &res, copy, &resp) ...  // fenced write
 *           return koc_result_requeue_after(60 * KOC_USEC_PER_SEC);
 *   }
 *
 *   koc_controller_options o;
 *   koc_controller_options_init(&o);
 *   o.name = "configmap-mirror";
 *   o.resource = (koc_resource){ .version = "v1", .resource = "configmaps",
 *                                .kind = "ConfigMap", .namespaced = true };
 *   o.label_selector = "koc.example/mirror=true";
 *   o.reconcile = reconcile;
 *   koc_controller *c;
 *   koc_controller_new(manager, &o, &c, &err);           // before koc_manager_run()
 *   koc_manager_run(manager);
 *   koc_controller_unref(c);                             // after it returns
 *
 * How it runs.  An informer (paginated list, then a watch from the list's
 * resourceVersion with bookmarks, resumed from the last seen resourceVersion
 * after a disconnect, re-listed after 410 Gone/Expired, with backoff) fills a
 * cache on every replica, leader or not (warm standby).  Informers are shared
 * by every controller of the same client with the same resource, namespace
 * and selectors.  Workers (threads) run only while this replica leads: on
 * becoming leader the queue is filled from the warm cache at once; on losing
 * leadership pending keys are dropped, the context of a running reconcile
 * reads cancelled, and its writes are refused.  Each reconcile is bracketed by
 * koc_manager_work_begin()/end(), so the shutdown drain waits for running
 * reconciles (within its budget) before the Lease is released.  A readiness
 * check "cache-sync-NAME" fails until the informers have listed once, and
 * workers start only then (as controller-runtime's WaitForCacheSync), also
 * on a successor that becomes leader before its caches are warm:
 * koc_controller_on_synced() says when; the option start_before_synced
 * starts them at once, with the danger its comment says.
 *
 * The queue follows client-go's rate-limited work queue: a key is queued once
 * however often it changes, never handed to two workers at a time, a change
 * during a reconcile runs after it; errors are retried per key with backoff
 * 5 ms doubling to 1000 s, reset on success; the initial fill does not starve
 * live changes.
 *
 * Fenced writes.  The context's write calls (create, update, update_status,
 * patch, delete) are checked right before the request is sent, on the loop
 * thread: when this replica may no longer lead (koc_manager_is_leader() with
 * its renew-deadline rule) or the term the reconcile started in has ended,
 * the call returns -ENOLCK and nothing is sent.  Answers carry the typed
 * reason (KOC_REASON_CONFLICT, KOC_REASON_NOT_FOUND, ...).
 *
 * Reading other types.  The manager's cache (koc/cache.h, from
 * koc_reconcile_get_cache()) reads every type a controller owns or watches,
 * and those the program keeps with koc_cache_add_informer(), without a
 * request: a reconcile finds its children there instead of GETting them.
 * Owned and watched types are kept in a scope of their own when registered
 * with koc_controller_owns_with_options() / _watches_with_options()
 * (namespace, label and field selectors, metadata only); a read of the
 * cache is answered only by an informer whose scope covers it (-ENXIO or
 * -ENOMEDIUM otherwise, see koc/cache.h).
 *
 * Read-your-own-writes.  The answer of a successful write (create, update,
 * patch, apply, delete) is applied to every informer of its type in the
 * manager's cache (when its resourceVersion is newer than the cached one, and
 * it matches the informer's namespace and selectors) before the write call
 * returns: the controller's own resource, what it owns or watches, other
 * controllers' informers and those koc_cache_add_informer() keeps.  So the
 * next read of the cache never sees an object older than what this process
 * wrote.
 *
 * Extensible structs.  koc_controller_options and koc_resource are filled by
 * programs: every function that takes one is an exported _sized variant
 * called through a macro of the plain name that passes sizeof, as in
 * koc/common.h ("Extensible structs"); -EINVAL for a size it cannot accept.
 * A koc_resource embedded in koc_controller_options is part of the options'
 * size.  Registrations that keep userdata (the options' reconcile userdata,
 * watches, predicates, indexes, the transform) take a destroy callback (may
 * be NULL), run when the controller (for indexes and the transform: its
 * cache) is freed, and not when the registration fails.
 *
 * Threads: koc_controller_new, _owns, _watches, _add_*, _on_synced and _unref on the loop
 * thread, before koc_manager_run(); the reconcile context's functions on the
 * worker thread running that reconcile; koc_controller_ref_object, _list,
 * _list_index, _has_synced and _enqueue on any thread.
 */
#ifndef KOC_CONTROLLER_H
#define KOC_CONTROLLER_H

#include <cjson/cJSON.h>
#include <koc/cache.h>
#include <koc/client.h>
#include <koc/common.h>
#include <koc/manager.h>
#include <koc/object.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct koc_controller koc_controller;
typedef struct koc_reconcile_context koc_reconcile_context;

/* --- reconcile ------------------------------------------------------------------- */

typedef enum koc_result_type {
        KOC_RESULT_DONE,     /* success: the key's backoff is reset */
        KOC_RESULT_REQUEUE,  /* success, run again after requeue_after_usec (0: with the
                              * key's backoff, as controller-runtime's Requeue) */
        KOC_RESULT_ERROR,    /* failed: retried with the key's backoff */
        KOC_RESULT_TERMINAL, /* failed for good: counted, not retried */
} koc_result_type;

typedef struct koc_result {
        koc_result_type type;
        uint64_t requeue_after_usec;
        int error; /* negative errno for ERROR and TERMINAL, for logs */
} koc_result;

/* Plain initialisers rather than compound literals, so that C++ includes
 * this header too. */
static inline koc_result koc_result_done(void) {
        koc_result r = {KOC_RESULT_DONE, 0, 0};
        return r;
}
static inline koc_result koc_result_requeue_after(uint64_t usec) {
        koc_result r = {KOC_RESULT_REQUEUE, usec, 0};
        return r;
}
static inline koc_result koc_result_error(int error) {
        koc_result r = {KOC_RESULT_ERROR, 0, error};
        return r;
}
static inline koc_result koc_result_terminal(int error) {
        koc_result r = {KOC_RESULT_TERMINAL, 0, error};
        return r;
}

/* Runs on a worker thread; may block (writes through the context do). */
typedef koc_result (*koc_reconcile_t)(koc_reconcile_context *ctx, void *userdata);

/* The request and what the cache holds for it. */
KOC_EXPORT const char *koc_reconcile_get_namespace(koc_reconcile_context *ctx); /* "" */
KOC_EXPORT const char *koc_reconcile_get_name(koc_reconcile_context *ctx);
KOC_EXPORT const char *koc_reconcile_get_key(koc_reconcile_context *ctx);
/* The cached object parsed (owned by the context), or NULL when it does not
 * exist (deleted, or not in the cache). */
KOC_EXPORT const cJSON *koc_reconcile_get_object(koc_reconcile_context *ctx);
/* The cached record itself (a borrowed reference), or NULL. */
KOC_EXPORT koc_object *koc_reconcile_get_cached(koc_reconcile_context *ctx);
/* True once leadership may be lost, the term has ended, shutdown started or
 * the reconcile ran past the controller's reconcile timeout: finish quickly.
 * Checked when read. */
KOC_EXPORT bool koc_reconcile_is_cancelled(koc_reconcile_context *ctx);
/* The fencing token: the Lease's leaseTransitions when the reconcile
 * started (0 without leader election). */
KOC_EXPORT uint64_t koc_reconcile_get_term(koc_reconcile_context *ctx);
KOC_EXPORT koc_controller *koc_reconcile_get_controller(koc_reconcile_context *ctx);
/* The manager's cache (koc/cache.h): every type a controller of the manager
 * reconciles, owns or watches, and those koc_cache_add_informer() keeps,
 * read without a request to the API server. */
KOC_EXPORT koc_cache *koc_reconcile_get_cache(koc_reconcile_context *ctx);
/* The last call of this reconcile (a write, a get, an Event) that failed,
 * with an API answer that is not 2xx or in transport: fills *ret with the
 * errno koc_response_errno() gives for it (see the table in koc/client.h)
 * and one line naming the call and the server's answer, for example
 * "PATCH /api/v1/namespaces/ns/configmaps/x: 422 Invalid: <Status message>",
 * and returns that errno; 0 (*ret untouched) when no call failed.  A failed
 * reconcile is logged at warn with the same detail when its errno is that
 * call's (or, as "last failed write", when the call was a write other than
 * an Event, which is said on its own line). */
KOC_EXPORT int koc_reconcile_get_last_error(koc_reconcile_context *ctx, koc_error *ret);

/* Writes from a reconcile.  Each blocks until the answer arrives and returns
 * 0 with *ret set when an HTTP answer came (check (*ret)->status and
 * (*ret)->reason: KOC_REASON_CONFLICT, KOC_REASON_NOT_FOUND, ..., or turn it
 * into an errno with koc_response_errno(); free it with koc_response_free),
 * -ENOLCK when the write was refused because this replica may no longer lead
 * (nothing was sent), or another negative errno (transport
 * errors, -ECANCELED when the client is going away, -ETIMEDOUT when the
 * reconcile ran past the controller's reconcile_timeout_usec).  The namespace and name
 * of update and update_status come from the object's metadata.  A namespace or
 * name that is not exactly one path segment (see koc_resource_path), or a
 * namespaced resource without a namespace, returns -EINVAL: nothing is sent
 * and a warn line (rate-limited) names the field and the value. */
KOC_EXPORT int koc_reconcile_create_sized(koc_reconcile_context *ctx, size_t res_size,
                                          const koc_resource *res, const char *namespace_,
                                          const cJSON *object, koc_response **ret);
#define koc_reconcile_create(ctx, ...)                                                             \
        koc_reconcile_create_sized((ctx), sizeof(koc_resource), __VA_ARGS__)
KOC_EXPORT int koc_reconcile_update_sized(koc_reconcile_context *ctx, size_t res_size,
                                          const koc_resource *res, const cJSON *object,
                                          koc_response **ret);
#define koc_reconcile_update(ctx, ...)                                                             \
        koc_reconcile_update_sized((ctx), sizeof(koc_resource), __VA_ARGS__)
KOC_EXPORT int koc_reconcile_update_status_sized(koc_reconcile_context *ctx, size_t res_size,
                                                 const koc_resource *res, const cJSON *object,
                                                 koc_response **ret);
#define koc_reconcile_update_status(ctx, ...)                                                      \
        koc_reconcile_update_status_sized((ctx), sizeof(koc_resource), __VA_ARGS__)
typedef enum koc_patch_type {
        KOC_PATCH_MERGE, /* application/merge-patch+json */
        KOC_PATCH_JSON,  /* application/json-patch+json */
} koc_patch_type;
KOC_EXPORT int koc_reconcile_patch_sized(koc_reconcile_context *ctx, size_t res_size,
                                         const koc_resource *res, const char *namespace_,
                                         const char *name, koc_patch_type type, const cJSON *patch,
                                         koc_response **ret);
#define koc_reconcile_patch(ctx, ...)                                                              \
        koc_reconcile_patch_sized((ctx), sizeof(koc_resource), __VA_ARGS__)
/* Server-side apply: a PATCH with application/apply-patch+yaml (the object
 * as JSON, which is YAML) and fieldManager=field_manager (required: 1 to 128
 * characters, the owner the server records in metadata.managedFields), fenced
 * like every write.  object must carry apiVersion, kind and metadata.name
 * (and metadata.namespace for a namespaced resource); it holds only the
 * fields this manager wants to own.  The server creates the object when it
 * does not exist (201), merges the fields otherwise, removes the fields this
 * manager applied before and no longer applies, and answers 409
 * (KOC_REASON_CONFLICT, the conflicting fields in the Status' causes) when
 * another manager owns a field this one would change, unless flags has
 * KOC_APPLY_FORCE, which takes those fields over. */
#define KOC_APPLY_FORCE (1u << 0)
KOC_EXPORT int koc_reconcile_apply_sized(koc_reconcile_context *ctx, size_t res_size,
                                         const koc_resource *res, const cJSON *object,
                                         const char *field_manager, unsigned flags,
                                         koc_response **ret);
#define koc_reconcile_apply(ctx, ...)                                                              \
        koc_reconcile_apply_sized((ctx), sizeof(koc_resource), __VA_ARGS__)
KOC_EXPORT int koc_reconcile_delete_sized(koc_reconcile_context *ctx, size_t res_size,
                                          const koc_resource *res, const char *namespace_,
                                          const char *name, koc_response **ret);
#define koc_reconcile_delete(ctx, ...)                                                             \
        koc_reconcile_delete_sized((ctx), sizeof(koc_resource), __VA_ARGS__)
/* DELETE with a DeleteOptions object as the body (NULL: none), for example
 * {"preconditions":{"resourceVersion":"42","uid":"..."}}: the server deletes
 * only the object version that was checked (409 otherwise), so a check of
 * what the object is and the delete are one conflict-safe step. */
KOC_EXPORT int koc_reconcile_delete_with_options_sized(koc_reconcile_context *ctx,
                                                       size_t res_size, const koc_resource *res,
                                                       const char *namespace_, const char *name,
                                                       const cJSON *options, koc_response **ret);
#define koc_reconcile_delete_with_options(ctx, ...)                                                \
        koc_reconcile_delete_with_options_sized((ctx), sizeof(koc_resource), __VA_ARGS__)
/* Not fenced: reads are always allowed. */
KOC_EXPORT int koc_reconcile_get_sized(koc_reconcile_context *ctx, size_t res_size,
                                       const koc_resource *res, const char *namespace_,
                                       const char *name, koc_response **ret);
#define koc_reconcile_get(ctx, ...)                                                                \
        koc_reconcile_get_sized((ctx), sizeof(koc_resource), __VA_ARGS__)

/* --- predicates and secondary sources ---------------------------------------- */

/* Decides whether an event of the primary resource enqueues its key.  old is
 * NULL for an add, new_ NULL for a delete. */
typedef bool (*koc_predicate_t)(const cJSON *old, const cJSON *new_, void *userdata);
/* Built-in predicates: true for adds and deletes, and for updates when
 * metadata.generation, metadata.labels or metadata.annotations changed. */
KOC_EXPORT bool koc_predicate_generation_changed(const cJSON *old, const cJSON *new_,
                                                 void *userdata);
KOC_EXPORT bool koc_predicate_labels_changed(const cJSON *old, const cJSON *new_, void *userdata);
KOC_EXPORT bool koc_predicate_annotations_changed(const cJSON *old, const cJSON *new_,
                                                  void *userdata);

/* Maps an object of a watched resource to the keys to reconcile. */
typedef struct koc_keys koc_keys;
KOC_EXPORT int koc_keys_add(koc_keys *keys, const char *namespace_, const char *name);
typedef void (*koc_map_func_t)(const cJSON *object, koc_keys *out, void *userdata);

/* --- the controller --------------------------------------------------------------- */

typedef struct koc_controller_options {
        /* Unique among this manager's controllers; a DNS label-like name
         * ([a-z0-9-], 1 to 63 characters), used in metrics and logs. */
        const char *name;
        koc_resource resource;
        const char *namespace_;     /* NULL: all namespaces */
        const char *label_selector; /* NULL: everything */
        const char *field_selector; /* NULL: everything */
        unsigned workers;           /* default 1 */
        koc_reconcile_t reconcile;
        void *userdata;
        /* Every key in the cache is enqueued this often (0: never). */
        uint64_t resync_period_usec;
        /* Backoff of failed keys; 0: 5 ms and 1000 s. */
        uint64_t backoff_base_usec;
        uint64_t backoff_max_usec;
        /* Runs on userdata when the controller is freed (NULL: nothing). */
        koc_destroy_t destroy;
        /* A reconcile that runs longer than this (0: no limit, the default)
         * is reported stuck: a warning naming the controller, the key and
         * how long it has run, the gauge koc_controller_stuck_reconciles and
         * the counter koc_controller_reconcile_timeouts_total; its context
         * reads cancelled and its writes are refused with -ETIMEDOUT.  The
         * worker cannot be taken from it (C has no safe way to stop a
         * thread): the key stays with that worker, is not handed to another
         * one, and runs again after the reconcile returns if it changed
         * meanwhile. */
        uint64_t reconcile_timeout_usec;
        /* How the controller's informers (the primary's and the sources')
         * list; KOC_LIST_STREAM_AUTO (streaming lists, pages where the
         * server refuses them) by default. */
        koc_list_mode list_mode;
        /* The primary's informer lists and watches metadata only (Accept
         * application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1
         * for lists, as=PartialObjectMetadata for watches, controller-
         * runtime's metadata-only watches): its cache holds objects with
         * apiVersion, kind (the resource's, as controller-runtime sets them)
         * and metadata only, also for the answers of this process's own
         * writes.  For resources whose reconcile needs only labels,
         * annotations, owners or finalizers; the reconcile reads the rest
         * with koc_reconcile_get() when it needs it. */
        bool metadata_only;
        /* Caps on one list of the controller's informers, so that a server
         * that sends pages without end cannot take the process's memory:
         * objects (0: 1,000,000) and bytes of the objects as cached, that is
         * minified JSON after the transform (0: 4 GiB).  A list over either
         * cap, or whose continue token repeats, is abandoned with a warning
         * (and koc_informer_rejected_answers_total{reason="list_too_large"}
         * or "continue_loop") and retried with backoff: none of a paginated
         * list's objects reaches the cache; a streaming list's, applied as
         * they came, stay (at most the cap; the next list is authoritative
         * again). */
        size_t max_list_objects;
        uint64_t max_list_bytes;
        /* By default (false) the workers of a leading controller start only
         * once every informer of the controller (the primary's and those of
         * owns() and watches()) has listed once, on start and on becoming
         * leader; a warm standby whose caches have synced starts at once.
         * true starts them as soon as this replica leads, while the first
         * lists may still be arriving (seconds at tens of thousands of
         * objects): a reconcile then sees a partial cache, and one that
         * lists the cache to find orphans or count children takes objects
         * still on their way for missing, and can delete what it should
         * keep.  Only for reconcilers that never read anything but their
         * own object from the cache.  With the default, an informer that
         * cannot list (its resource or scope not allowed by RBAC: a
         * controller without a namespace lists every namespace) holds the
         * workers back;
         * the readiness check "cache-sync-NAME" fails and a warn line every
         * 30 s names the resource. */
        bool start_before_synced;
} koc_controller_options;

/* Fills o with the defaults (o_size bytes; newer fields zero).  Like every
 * function that takes koc_controller_options, called through a macro that
 * passes sizeof(koc_controller_options); -EINVAL for a wrong size. */
KOC_EXPORT int koc_controller_options_init_sized(size_t o_size, koc_controller_options *o);
#define koc_controller_options_init(o)                                                             \
        koc_controller_options_init_sized(sizeof(koc_controller_options), (o))

/* Creates the controller on the manager (before koc_manager_run(); -EBUSY
 * after) and starts its informers.  -EINVAL with err naming the option for a
 * bad name, resource, selector or missing callback, -EEXIST for a name used
 * twice on this manager. */
KOC_EXPORT int koc_controller_new_sized(koc_manager *m, size_t o_size,
                                        const koc_controller_options *o, koc_controller **ret,
                                        koc_error *err);
#define koc_controller_new(m, ...)                                                                 \
        koc_controller_new_sized((m), sizeof(koc_controller_options), __VA_ARGS__)
/* Stops the workers and informers; after koc_manager_run() has returned. */
KOC_EXPORT koc_controller *koc_controller_unref(koc_controller *c);
KOC_DEFINE_POINTER_CLEANUP_FUNC(koc_controller, koc_controller_unref)

/* Events of objects of `owned` whose ownerReferences name a primary of this
 * controller (kind and apiVersion; controller: true) enqueue that owner.
 * Owned objects are kept in the controller's namespace (every namespace
 * when it has none), without selectors, as whole objects. */
KOC_EXPORT int koc_controller_owns_sized(koc_controller *c, size_t owned_size,
                                         const koc_resource *owned, koc_error *err);
#define koc_controller_owns(c, ...)                                                                \
        koc_controller_owns_sized((c), sizeof(koc_resource), __VA_ARGS__)
/* The same with the informer's scope (koc/cache.h, koc_informer_options; o
 * NULL: the defaults above): o->namespace_ names another namespace than
 * the controller's, all_namespaces asks for every one, a label or field
 * selector keeps (and enqueues for) only the owned objects that match, and
 * metadata_only keeps their metadata only (ownerReferences are metadata, so
 * owners are still found).  The informer is shared with every registration
 * of the same scope, and the controller's workers wait for it to sync. */
KOC_EXPORT int koc_controller_owns_with_options_sized(koc_controller *c, size_t owned_size,
                                                      const koc_resource *owned, size_t o_size,
                                                      const koc_informer_options *o,
                                                      koc_error *err);
#define koc_controller_owns_with_options(c, owned, o, err)                                         \
        koc_controller_owns_with_options_sized((c), sizeof(koc_resource), (owned),                 \
                                               sizeof(koc_informer_options), (o), (err))
/* Events of objects of `res` (optionally label-selected) enqueue the keys
 * that map returns.  A namespaced `res` is watched in the controller's
 * namespace when the controller has one (koc_controller_options.namespace_),
 * cluster-wide otherwise, so a namespaced operator needs no cluster-wide
 * rights.  destroy (may be NULL) runs on userdata when the controller is
 * freed. */
KOC_EXPORT int koc_controller_watches_sized(koc_controller *c, size_t res_size,
                                            const koc_resource *res, const char *label_selector,
                                            koc_map_func_t map, void *userdata,
                                            koc_destroy_t destroy, koc_error *err);
#define koc_controller_watches(c, ...)                                                             \
        koc_controller_watches_sized((c), sizeof(koc_resource), __VA_ARGS__)
/* The same with the informer's scope (as for owns: another namespace or
 * every one, label and field selectors, metadata only; o NULL: the
 * controller's namespace, no selectors, whole objects).  Events of objects
 * outside the scope never reach map; with metadata_only, map sees apiVersion,
 * kind and metadata only. */
KOC_EXPORT int koc_controller_watches_with_options_sized(koc_controller *c, size_t res_size,
                                                         const koc_resource *res, size_t o_size,
                                                         const koc_informer_options *o,
                                                         koc_map_func_t map, void *userdata,
                                                         koc_destroy_t destroy, koc_error *err);
#define koc_controller_watches_with_options(c, res, o, ...)                                        \
        koc_controller_watches_with_options_sized((c), sizeof(koc_resource), (res),                \
                                                  sizeof(koc_informer_options), (o), __VA_ARGS__)
/* All predicates must agree (AND); none: every event enqueues.  destroy (may
 * be NULL) runs on userdata when the controller is freed. */
KOC_EXPORT int koc_controller_add_predicate(koc_controller *c, koc_predicate_t fn, void *userdata,
                                            koc_destroy_t destroy);
/* An index over the primary cache, and a transform applied to objects
 * before they are cached.  Both only before the cache holds objects (-EBUSY
 * after; call them right after koc_controller_new()).  The cache is shared
 * with every controller of this manager that watches the same resource,
 * namespace and selectors, so they see the indexes and the transform too.
 * The index's destroy (may be NULL) runs on userdata when the cache is freed
 * (with the last controller that uses it). */
KOC_EXPORT int koc_controller_add_index(koc_controller *c, const char *name, koc_index_func_t fn,
                                        void *userdata, koc_destroy_t destroy);
/* destroy (may be NULL) runs on userdata when the transform is replaced with
 * another userdata or the cache is freed. */
KOC_EXPORT int koc_controller_set_transform(koc_controller *c, koc_transform_t fn, void *userdata,
                                            koc_destroy_t destroy);

KOC_EXPORT const char *koc_controller_get_name(koc_controller *c);
/* True once every informer of the controller (primary, owned, watched) has
 * listed once; any thread. */
KOC_EXPORT bool koc_controller_has_synced(koc_controller *c);
/* Calls fn on the loop thread, once, when koc_controller_has_synced()
 * becomes true (after the readiness check "cache-sync-NAME" passes, before
 * the workers of a leading controller start).  Registered after that, fn
 * runs from the loop soon after, never from inside this call.  destroy (may
 * be NULL) runs on userdata when the controller is freed.  Loop thread;
 * -EINVAL without c or fn. */
typedef void (*koc_controller_synced_t)(koc_controller *c, void *userdata);
KOC_EXPORT int koc_controller_on_synced(koc_controller *c, koc_controller_synced_t fn,
                                        void *userdata, koc_destroy_t destroy);
/* Enqueues a key (loop thread or any thread); dropped when not leading, and
 * while a leading controller waits for its caches to sync (the queue is
 * filled from the cache when they have). */
KOC_EXPORT int koc_controller_enqueue(koc_controller *c, const char *namespace_, const char *name);

/* Reads of the primary cache, any thread.  koc_controller_ref_object
 * returns a new reference to the cached object (release it with
 * koc_object_unref), or NULL when the cache has none: the cache may replace
 * the record at any moment, so a borrowed pointer could not be used safely
 * on another thread. */
KOC_EXPORT koc_object *koc_controller_ref_object(koc_controller *c, const char *namespace_,
                                                 const char *name);
/* namespace_ NULL: all; label_selector NULL: everything (-EINVAL when it
 * does not parse).  The array holds new references (koc_object_list_free). */
KOC_EXPORT int koc_controller_list(koc_controller *c, const char *namespace_,
                                   const char *label_selector, koc_object ***ret, size_t *ret_n);
KOC_EXPORT int koc_controller_list_index(koc_controller *c, const char *index, const char *value,
                                         koc_object ***ret, size_t *ret_n);

/* --- helpers for reconcilers ------------------------------------------------------- */

/* These work on a parsed object and send no request. */
KOC_EXPORT bool koc_object_has_finalizer(const cJSON *object, const char *finalizer);
/* 1 when changed, 0 when already so; -EINVAL for an object that is not a
 * JSON object (or whose metadata is not) or an empty finalizer. */
KOC_EXPORT int koc_object_add_finalizer(cJSON *object, const char *finalizer);
/* Removes every copy: 1 when changed, 0 when already so. */
KOC_EXPORT int koc_object_remove_finalizer(cJSON *object, const char *finalizer);
KOC_EXPORT bool koc_object_is_deleting(const cJSON *object);
/* Adds (or replaces) a controller ownerReference to owner on object: 0, or
 * -EADDRINUSE when another owner is already the controller, -EINVAL when
 * owner has no name or uid.  koc/reconcile.h's koc_object_set_owner_reference
 * does the same with the error's detail. */
KOC_EXPORT int koc_object_set_controller_reference(cJSON *object, const cJSON *owner,
                                                   const char *owner_api_version,
                                                   const char *owner_kind);
/* Sets status.conditions[type] (status "True"/"False"/"Unknown"), keeping
 * lastTransitionTime when the status did not change; observedGeneration from
 * metadata.generation.  1 when anything changed, 0 when not.  Reading them
 * back, removing them: koc/reconcile.h. */
KOC_EXPORT int koc_object_set_condition(cJSON *object, const char *type, const char *status,
                                        const char *reason, const char *message);

/* kube-rs's finalizer(): when the cached object is not being deleted, makes
 * sure it carries `finalizer` (a fenced JSON patch) and then calls apply;
 * when it is being deleted and carries the finalizer, calls cleanup and, if
 * that succeeded (DONE or REQUEUE), removes the finalizer; cleanup therefore
 * runs until it succeeds and the finalizer goes once.  NULL object: done.
 * The removal is a JSON patch guarded by the freshest resourceVersion this
 * process knows (the cache, which holds the answers of the reconcile's own
 * writes, such as a status written during cleanup); after a 409 Conflict the
 * object is read again (GET) and the removal retried, up to 4 times, so that
 * another writer does not make cleanup run twice.  When the removal deletes
 * the object, kube-apiserver answers with the resourceVersion of the state
 * that still listed the finalizer, which the cache keeps until the deletion
 * arrives by watch; the controller remembers such objects (by key and uid,
 * 32 of them, for 5 minutes) and does not clean them up again meanwhile.
 * Cleanup must still be
 * idempotent: a crash or a leader change between cleanup and removal runs it
 * again.  The addition is guarded by the reconcile's snapshot and is a
 * conflict when the object changed since (the reconcile is retried).
 * A refused patch is an error result with the errno of koc/client.h's table
 * (-EBUSY when the object changed since the cache saw it, -EINVAL for 422
 * Invalid, -EACCES for 403, ...); koc_reconcile_get_last_error() gives the
 * server's answer. */
typedef koc_result (*koc_finalizer_step_t)(koc_reconcile_context *ctx, const cJSON *object,
                                           void *userdata);
KOC_EXPORT koc_result koc_reconcile_finalizer(koc_reconcile_context *ctx, const char *finalizer,
                                              koc_finalizer_step_t apply,
                                              koc_finalizer_step_t cleanup, void *userdata);

/* Records an events.k8s.io/v1 Event about object (its `regarding`): type
 * "Normal" or "Warning"; reason (why, CamelCase) and action (what was done
 * or tried, e.g. "Scale"), 1 to 128 characters each; note (may be NULL) is
 * cut to the API's 1024 bytes.  reportingController is the controller's
 * name, reportingInstance "NAME-IDENTITY" (the manager's identity, or the
 * host name), eventTime now.  An object without kind (a list's item) is
 * taken for the controller's primary.
 *
 * Repeats are one Event with a series, as client-go's tools/events: the same
 * action, reason and object (kind, apiVersion, namespace, name, uid) within
 * 6 minutes of the last one patch the Event's series (count,
 * lastObservedTime) instead of creating another; an Event that the server
 * has dropped meanwhile (its TTL) is created again with the count.  A spam
 * filter per object (a burst of 25, then one every 5 minutes, as
 * tools/record) drops the rest: -EBUSY, counted in
 * koc_controller_events_dropped_total{controller}.  When the server does not
 * serve events.k8s.io/v1, core/v1 Events are written instead (count and
 * lastTimestamp for the series).
 *
 * It sends one request (two when the Event had to be created again or the
 * group is not served), fenced like every write (-ENOLCK without
 * leadership), on the calling worker, within the client's request timeout;
 * it never changes the reconcile's result or its last error by itself.
 * Returns 0, -EINVAL for bad arguments, -EBUSY when dropped, or the errno of
 * koc/client.h's table when the server refused the Event (-EACCES when the
 * operator may not create events, ...): then one warn line per answer's
 * reason every 5 minutes names the object, the Event's reason and the
 * answer, and koc_controller_events_rejected_total{controller} counts it. */
KOC_EXPORT int koc_reconcile_record_event_action(koc_reconcile_context *ctx, const cJSON *object,
                                                 const char *type, const char *reason,
                                                 const char *action, const char *note);
/* koc_reconcile_record_event_action() with action = reason and note =
 * message. */
KOC_EXPORT int koc_reconcile_record_event(koc_reconcile_context *ctx, const cJSON *object,
                                          const char *type, const char *reason,
                                          const char *message);

#ifdef __cplusplus
}
#endif

/* Create-or-update, owner references, status patches, conditions. */
#include <koc/reconcile.h>
#endif

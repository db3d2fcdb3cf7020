/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc/cache.h: the cache of a manager.
 *
 * Every manager owns one cache: the informers of its controllers (their
 * primary resources, what they own and what they watch), shared by every
 * controller that asks for the same resource, namespace, selectors and
 * list mode.  Nothing is process-global: two managers in one process have
 * two caches that share nothing.
 *
 * Any resource the cache keeps can be read, on any thread, without a request
 * to the API server: the primary resource of every controller, every type a
 * controller owns or watches, and the types a program asks the cache to keep
 * with koc_cache_add_informer() (on the loop thread, before
 * koc_manager_run()).  In a reconcile:
 *
 *   static const koc_resource deployments = { .group = "apps", .version = "v1",
 *           .resource = "deployments", .kind = "Deployment", .namespaced = true };
 *   koc_cache *cache = koc_reconcile_get_cache(ctx);    // koc/controller.h
 *   koc_object *d = NULL;
 *   int r = koc_cache_ref_object(cache, &deployments, ns, name, &d);
 *   if (r == -ENOENT)
 *           ... create it ...
 *   else if (r >= 0)
 *           ... koc_object_parse(d, &json) ...; koc_object_unref(d);
 *
 *   koc_object **list; size_t n;
 *   koc_cache_list(cache, &deployments, ns, "app=web", &list, &n);
 *   ...
 *   koc_object_list_free(list, n);
 *
 * Scopes.  An informer keeps one resource in one scope, koc_informer_options:
 * a namespace (or every namespace), a label selector, a field selector, and
 * whole objects or metadata only (PartialObjectMetadata, as
 * controller-runtime's metadata-only watches).  Informers are shared in the
 * cache by resource and scope (and list mode): two registrations of the same
 * scope share one informer, two scopes make two.  The controllers' primaries
 * and what they own or watch (koc_controller_owns_with_options(),
 * koc_controller_watches_with_options()) are registered the same way.
 *
 * Which informer answers a read.  A read names the scope it needs, with the
 * same options (the plain reads: the namespace and label selector given,
 * no field selector, whole objects).  An informer covers the read when all
 * of these hold:
 *   - namespace: the informer's is the read's, or the informer keeps every
 *     namespace (a read of every namespace needs such an informer: a
 *     namespaced one would answer a part as if it were all);
 *   - label selector: every requirement of the informer's selector is one
 *     of the read's ("app=web" covers a read by "app=web,tier=db", not one
 *     by "tier=db" or by nothing), so the informer holds every object the
 *     read asks for; the read's selector then filters what it holds;
 *   - field selector: the same as the read's (the cache cannot evaluate
 *     one, so an informer with a field selector answers only reads that
 *     name it, and one without answers no read that names one);
 *   - metadata: a read of whole objects needs an informer of whole
 *     objects; a read with metadata_only is answered by either.
 * Among the informers that cover a read, one answers (the one without a
 * label selector, cluster-wide, of whole objects first): each holds all the
 * read asks for.  A read that no informer covers fails, never answering
 * with nothing or with a part: -ENXIO when no informer of the resource
 * covers its namespace and selectors, -ENOMEDIUM when only metadata-only
 * informers do and the read asks for whole objects.  Until an informer has
 * listed once (koc_controller_has_synced()), its part of the cache is
 * incomplete.
 *
 * Indexes.  koc_cache_add_index() adds an index to the informer of a
 * resource and scope (keeping that informer as koc_cache_add_informer()
 * does); koc_controller_add_index() adds one to a controller's primary.
 * koc_cache_list_index() reads the index of that name of the resource:
 * koc_cache_add_index() refuses (-EEXIST) a name another informer of the
 * resource has already, so a name means one informer.
 *
 * Errors: -EINVAL for a missing argument, a resource without version or
 * plural, options of a size this library cannot take, a registration's
 * namespace that is not a DNS-1123 label, or a label selector that does not
 * parse; -ENXIO
 * and -ENOMEDIUM as above; -ENOENT when an informer covers the read and the
 * object is not in it (with a label selector: no object of that name
 * matches it); for an index, -ENOENT when no informer of the resource has
 * an index of that name.
 *
 * Threads: koc_cache_add_informer* and koc_cache_add_index on the loop
 * thread before koc_manager_run(); koc_informer_options_init and the reads
 * on any thread.
 */
#ifndef KOC_CACHE_H
#define KOC_CACHE_H

#include <koc/common.h>
#include <koc/object.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct koc_cache koc_cache;

/* The scope of an informer, and the scope a read needs (see "Scopes" and
 * "Which informer answers a read" above).  Filled by programs: start with
 * koc_informer_options_init(), which passes sizeof; every function that takes
 * one is a _sized variant called through a macro of its plain name. */
typedef struct koc_informer_options {
        /* One namespace (a DNS-1123 label); NULL or "": every namespace,
         * except for koc_controller_owns_with_options() and
         * _watches_with_options(), where NULL means the controller's
         * namespace (every namespace when it has none) and all_namespaces
         * asks for every namespace.  Ignored for cluster-scoped resources. */
        const char *namespace_;
        const char *label_selector; /* NULL: everything */
        /* Sent to the server as fieldSelector (NULL: everything); the cache
         * never evaluates one. */
        const char *field_selector;
        /* The informer lists and watches metadata only (Accept
         * application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1):
         * it keeps apiVersion, kind and metadata of each object, also of the
         * answers of this process's own writes.  For a read: metadata
         * suffices, so a metadata-only informer may answer it. */
        bool metadata_only;
        /* Every namespace, even for a controller that has one (owns and
         * watches); -EINVAL together with a namespace_. */
        bool all_namespaces;
} koc_informer_options;

/* Fills o with the defaults: every field zero (o_size bytes; -EINVAL for a
 * size this library cannot take). */
KOC_EXPORT int koc_informer_options_init_sized(size_t o_size, koc_informer_options *o);
#define koc_informer_options_init(o)                                                               \
        koc_informer_options_init_sized(sizeof(koc_informer_options), (o))

/* Keeps an informer of res in the scope o (NULL: every namespace, no
 * selectors, whole objects) in the cache, shared with the controllers and
 * registrations that ask for the same scope, started at once and kept as
 * long as the manager.  -EINVAL with err naming what is wrong. */
KOC_EXPORT int koc_cache_add_informer_with_options_sized(koc_cache *cache, size_t res_size,
                                                         const koc_resource *res, size_t o_size,
                                                         const koc_informer_options *o,
                                                         koc_error *err);
#define koc_cache_add_informer_with_options(cache, res, o, err)                                    \
        koc_cache_add_informer_with_options_sized((cache), sizeof(koc_resource), (res),            \
                                                  sizeof(koc_informer_options), (o), (err))

/* The same with a namespace (NULL or "": every namespace) and a label
 * selector (may be NULL) only. */
KOC_EXPORT int koc_cache_add_informer_sized(koc_cache *cache, size_t res_size,
                                            const koc_resource *res, const char *namespace_,
                                            const char *label_selector, koc_error *err);
#define koc_cache_add_informer(cache, ...)                                                         \
        koc_cache_add_informer_sized((cache), sizeof(koc_resource), __VA_ARGS__)

/* An index over the informer of res in the scope o (NULL as above), which
 * the cache keeps (koc_cache_add_informer_with_options()): fn adds the
 * values of each object (as the informer keeps it: metadata only for a
 * metadata-only informer); koc_cache_list_index() reads it.  Before the
 * informer holds objects (-EBUSY after: before koc_manager_run()), -EEXIST
 * for a name that an informer of res already has.  destroy (may be NULL)
 * runs on userdata when the informer is freed, not when the call fails. */
KOC_EXPORT int koc_cache_add_index_sized(koc_cache *cache, size_t res_size,
                                         const koc_resource *res, size_t o_size,
                                         const koc_informer_options *o, const char *name,
                                         koc_index_func_t fn, void *userdata,
                                         koc_destroy_t destroy, koc_error *err);
#define koc_cache_add_index(cache, res, o, ...)                                                    \
        koc_cache_add_index_sized((cache), sizeof(koc_resource), (res),                            \
                                  sizeof(koc_informer_options), (o), __VA_ARGS__)

/* The cached object namespace_/name of res: a new reference in *ret. */
KOC_EXPORT int koc_cache_ref_object_sized(koc_cache *cache, size_t res_size,
                                          const koc_resource *res, const char *namespace_,
                                          const char *name, koc_object **ret);
#define koc_cache_ref_object(cache, ...)                                                           \
        koc_cache_ref_object_sized((cache), sizeof(koc_resource), __VA_ARGS__)

/* The cached objects of res in namespace_ (NULL or "": all) that match
 * label_selector (NULL: all); free the array with koc_object_list_free(). */
KOC_EXPORT int koc_cache_list_sized(koc_cache *cache, size_t res_size, const koc_resource *res,
                                    const char *namespace_, const char *label_selector,
                                    koc_object ***ret, size_t *ret_n);
#define koc_cache_list(cache, ...) koc_cache_list_sized((cache), sizeof(koc_resource), __VA_ARGS__)

/* Reads in the scope o (NULL: every namespace, no selectors, whole
 * objects): o->namespace_ is the object's namespace (required for a
 * namespaced resource); the object must match o->label_selector, if any;
 * all_namespaces is not used. */
KOC_EXPORT int koc_cache_ref_object_with_options_sized(koc_cache *cache, size_t res_size,
                                                       const koc_resource *res, size_t o_size,
                                                       const koc_informer_options *o,
                                                       const char *name, koc_object **ret);
#define koc_cache_ref_object_with_options(cache, res, o, ...)                                      \
        koc_cache_ref_object_with_options_sized((cache), sizeof(koc_resource), (res),              \
                                                sizeof(koc_informer_options), (o), __VA_ARGS__)
KOC_EXPORT int koc_cache_list_with_options_sized(koc_cache *cache, size_t res_size,
                                                 const koc_resource *res, size_t o_size,
                                                 const koc_informer_options *o,
                                                 koc_object ***ret, size_t *ret_n);
#define koc_cache_list_with_options(cache, res, o, ...)                                            \
        koc_cache_list_with_options_sized((cache), sizeof(koc_resource), (res),                    \
                                          sizeof(koc_informer_options), (o), __VA_ARGS__)

/* The cached objects of res for which the index named index holds value:
 * an index of koc_cache_add_index(), or of koc_controller_add_index() on a
 * controller whose primary res is.  When informers of several scopes of res
 * carry an index of that name (only koc_controller_add_index() allows it),
 * the first that covers most answers (no label selector, cluster-wide,
 * whole objects). */
KOC_EXPORT int koc_cache_list_index_sized(koc_cache *cache, size_t res_size,
                                          const koc_resource *res, const char *index,
                                          const char *value, koc_object ***ret, size_t *ret_n);
#define koc_cache_list_index(cache, ...)                                                           \
        koc_cache_list_index_sized((cache), sizeof(koc_resource), __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif

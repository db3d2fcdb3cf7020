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
 * Which informer answers.  The cache may keep several informers of one
 * resource (other namespaces, selectors or list modes); a read uses those
 * whose namespace covers the one asked for (a cluster-wide informer covers
 * every namespace), preferring the one without selectors; a namespace of
 * NULL or "" asks for every namespace, answered by the best informer of the
 * resource.  An informer with a label selector holds only the objects that
 * match it, and a metadata-only informer only their metadata.  Until an
 * informer has listed once (koc_controller_has_synced()), its part of the
 * cache is incomplete.
 *
 * Errors: -EINVAL for a missing argument, a resource without version or
 * plural, or a label selector that does not parse; -ENXIO when the cache
 * keeps no informer of that resource for that namespace; -ENOENT when it
 * does and the object is not in it (for an index: no informer of the
 * resource has an index of that name).
 *
 * Threads: koc_cache_add_informer on the loop thread before
 * koc_manager_run(); the reads on any thread.
 */
#ifndef KOC_CACHE_H
#define KOC_CACHE_H

#include <koc/common.h>
#include <koc/object.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct koc_cache koc_cache;

/* Keeps an informer of res in the cache (shared with the controllers that
 * ask for the same resource, namespace and selector), started at once and
 * kept as long as the manager.  namespace_ NULL or "" (or a cluster-scoped
 * resource): every namespace; label_selector may be NULL. */
KOC_EXPORT int koc_cache_add_informer_sized(koc_cache *cache, size_t res_size,
                                            const koc_resource *res, const char *namespace_,
                                            const char *label_selector, koc_error *err);
#define koc_cache_add_informer(cache, ...)                                                         \
        koc_cache_add_informer_sized((cache), sizeof(koc_resource), __VA_ARGS__)

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

/* The cached objects of res for which the index named index (added with
 * koc_controller_add_index() to the controller whose primary res is) holds
 * value. */
KOC_EXPORT int koc_cache_list_index_sized(koc_cache *cache, size_t res_size,
                                          const koc_resource *res, const char *index,
                                          const char *value, koc_object ***ret, size_t *ret_n);
#define koc_cache_list_index(cache, ...)                                                           \
        koc_cache_list_index_sized((cache), sizeof(koc_resource), __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif

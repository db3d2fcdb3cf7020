/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc/object.h: what the cache serves.
 *
 * Kubernetes resources (koc_resource) and the paths built from them, and the
 * immutable, reference-counted objects an informer caches (koc_object), with
 * the index functions and transforms that shape a cache and the ways an
 * informer lists (koc_list_mode).  The cache (koc/cache.h) and the controller
 * runtime (koc/controller.h) take and return these:
 *
 *   const koc_resource cms = { .version = "v1", .resource = "configmaps",
 *                              .kind = "ConfigMap", .namespaced = true };
 *   char path[256];
 *   koc_resource_path(&cms, "default", "settings", NULL, path, sizeof(path));
 *   // "/api/v1/namespaces/default/configmaps/settings"
 *
 *   koc_object *o = ...;                     // from the cache: a new reference
 *   printf("%s at %s\n", koc_object_get_key(o), koc_object_get_resource_version(o));
 *   koc_object_unref(o);
 *
 * Threads: every function here on any thread.
 */
#ifndef KOC_OBJECT_H
#define KOC_OBJECT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <koc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- cached objects ---------------------------------------------------------- */

/* An immutable, reference-counted cached object: minified JSON (with
 * metadata.managedFields and the last-applied-configuration annotation
 * stripped) plus the fields lookups use.  Safe to read on any thread. */
typedef struct koc_object koc_object;

KOC_EXPORT koc_object *koc_object_ref(koc_object *o);
KOC_EXPORT koc_object *koc_object_unref(koc_object *o);
KOC_DEFINE_POINTER_CLEANUP_FUNC(koc_object, koc_object_unref)
/* "namespace/name", or "name" for cluster-scoped objects. */
KOC_EXPORT const char *koc_object_get_key(const koc_object *o);
KOC_EXPORT const char *koc_object_get_namespace(const koc_object *o); /* "" when none */
KOC_EXPORT const char *koc_object_get_name(const koc_object *o);
KOC_EXPORT const char *koc_object_get_resource_version(const koc_object *o);
KOC_EXPORT const char *koc_object_get_uid(const koc_object *o);
KOC_EXPORT const char *koc_object_get_label(const koc_object *o, const char *key);
KOC_EXPORT const char *koc_object_get_json(const koc_object *o, size_t *ret_len);
/* Parses the object (the caller frees *ret with cJSON_Delete). */
KOC_EXPORT int koc_object_parse(const koc_object *o, cJSON **ret);
/* Frees an array from koc_controller_list() and friends. */
KOC_EXPORT void koc_object_list_free(koc_object **list, size_t n);
/* Writes the key of an object; -ENAMETOOLONG when it does not fit. */
KOC_EXPORT int koc_object_key_format(const char *namespace_, const char *name, char *buf,
                                     size_t size);

/* Index functions add zero or more values for an object. */
typedef struct koc_index_values koc_index_values;
KOC_EXPORT int koc_index_values_add(koc_index_values *out, const char *value);
typedef int (*koc_index_func_t)(const cJSON *object, koc_index_values *out, void *userdata);
/* Changes an object in place before it is cached (after the default strip).
 * The cache still files it under the name, namespace, resourceVersion, uid
 * and labels the API server sent, so a transform may trim metadata freely;
 * indexes and readers see the transformed object. */
typedef void (*koc_transform_t)(cJSON *object, void *userdata);

/* --- resources ------------------------------------------------------------------ */

/* group "" (or NULL) is the core group ("/api/v1").  Filled by programs:
 * the functions that take one pass sizeof(koc_resource) through their
 * macros. */
typedef struct koc_resource {
        const char *group;
        const char *version;
        const char *resource; /* plural, lower case: "configmaps" */
        const char *kind;     /* "ConfigMap": matched against ownerReferences */
        bool namespaced;
} koc_resource;

/* "/api/v1/namespaces/NS/configmaps/NAME/SUB"; namespace_ (NULL or ""),
 * name and sub (NULL) may be left out.  Names never change the path: each
 * part must be exactly one segment, or the call returns -EINVAL, writes
 * nothing to buf and logs why at warn (rate-limited).  The namespace must be
 * a DNS-1123 label; the name, the subresource and the resource's group,
 * version and plural follow client-go's rule for a name in a path (not
 * empty, not "." or "..", no "/" or "%"), and may not hold "?", "#",
 * whitespace or control characters either.  -EINVAL also for a resource
 * without version or plural or a subresource without a name; -ENAMETOOLONG
 * when buf is too small.  Every reconcile write builds its path here, so a
 * name read from an object (an annotation, a spec field) can never make a
 * write reach another object. */
KOC_EXPORT int koc_resource_path_sized(size_t res_size, const koc_resource *res,
                                       const char *namespace_, const char *name,
                                       const char *subresource, char *buf, size_t size);
#define koc_resource_path(...) koc_resource_path_sized(sizeof(koc_resource), __VA_ARGS__)

/* How informers fill their cache. */
typedef enum koc_list_mode {
        /* A streaming list (kube-apiserver's WatchList, on by default since
         * v1.34, as client-go's WatchListClient): one watch with
         * sendInitialEvents=true whose initial events fill the cache as they
         * arrive and whose bookmark annotated k8s.io/initial-events-end ends
         * the list (the informer is synced there, and a re-list removes what
         * it did not send); the watch then goes on.  No list request, no
         * page copies.  When the server refuses it (422 with the WatchList
         * gate off, another 4xx, a stream that ends without the end marker,
         * or one that stays silent without it for 10 s), that informer says
         * so once (info) and lists with pages from then on.  The default. */
        KOC_LIST_STREAM_AUTO = 0,
        /* A paginated list (500 per page), then a watch from its
         * resourceVersion; a list's objects reach the cache when it ends. */
        KOC_LIST_PAGES = 1,
        /* Streaming lists only: refusals are retried with backoff. */
        KOC_LIST_STREAM = 2,
} koc_list_mode;

#ifdef __cplusplus
}
#endif
#endif

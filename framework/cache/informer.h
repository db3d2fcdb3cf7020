/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared informers: one reflector and one store per (client, collection path,
 * label selector, field selector, list mode, metadata-only, list caps), shared
 * by every controller and registration that asks for the same one, with event
 * handlers that run on the loop thread.
 */
#pragma once

#include "koc/cache.h"
#include "koc/client.h"
#include "koc/object.h"
#include "koc/metrics.h"
#include "store.h"

typedef struct koc_informer koc_informer;

typedef struct koc_informer_handler {
        void (*on_add)(koc_object *obj, void *userdata);
        void (*on_update)(koc_object *old, koc_object *new_, void *userdata);
        void (*on_delete)(koc_object *old, void *userdata);
        /* The first list completed. */
        void (*on_synced)(void *userdata);
} koc_informer_handler;

/* How the informer lists (koc_list_mode) and what it keeps; informers are
 * shared only between users that ask for the same. */
typedef struct koc_informer_opts {
        koc_list_mode list_mode;
        bool metadata_only;
        /* Caps on one list (koc_controller_options): objects (0:
         * 1,000,000) and bytes of the objects as cached, minified JSON
         * after the transform (0: 4 GiB).  A list over either is abandoned
         * (none of a paginated list's objects reaches the cache; a streaming
         * list's, applied as they came, stay). */
        size_t max_list_objects;
        uint64_t max_list_bytes;
} koc_informer_opts;

#define KOC_INFORMER_MAX_LIST_BYTES_DEFAULT ((uint64_t)4 << 30)

/* Finds or creates (and starts) the informer in cache's registry; returns a
 * new reference.  opts and metrics may be NULL. */
int koc__informer_get(koc_cache *cache, koc_client *c, const koc_resource *res,
                      const char *namespace_, const char *label_selector,
                      const char *field_selector, const koc_informer_opts *opts,
                      koc_metrics *metrics, koc_informer **ret, koc_error *err);
koc_informer *koc__informer_unref(koc_informer *inf);

int koc__informer_add_handler(koc_informer *inf, const koc_informer_handler *h, void *userdata);
void koc__informer_remove_handlers(koc_informer *inf, void *userdata);

koc_store *koc__informer_get_store(koc_informer *inf);
bool koc__informer_has_synced(koc_informer *inf);
const koc_resource *koc__informer_get_resource(koc_informer *inf);

/* koc_resource_path() with the reason of a refusal in *err (may be NULL):
 * -EINVAL for a part that is not one path segment by its rule (namespaces
 * DNS-1123 labels, everything else koc__path_segment_name_error), for a
 * subresource without a name, or a resource without version or plural;
 * -ENAMETOOLONG.  Logs nothing. */
int koc__resource_path(const koc_resource *res, const char *namespace_, const char *name,
                       const char *subresource, char *buf, size_t size, koc_error *err);
const char *koc__informer_get_namespace(koc_informer *inf); /* NULL: all */
/* Its scope, for the cache's reads: the parsed label selector (NULL:
 * none), the field selector (NULL: none) and whether it keeps metadata
 * only. */
const koc_selector *koc__informer_get_selector(koc_informer *inf);
const char *koc__informer_get_field_selector(koc_informer *inf);
/* It was given a label or field selector (a read of every object of its
 * scope cannot be answered from it). */
bool koc__informer_has_selectors(koc_informer *inf);
bool koc__informer_is_metadata_only(koc_informer *inf);

/* Read-your-own-writes: applies an object this process wrote (a write's
 * answer) when it belongs to this informer (namespace and selectors) and
 * is newer than the cached one; handlers see it as an add or update.  An
 * answer that no longer matches the label selector removes the cached copy
 * (a delete for the handlers); with a field selector, only objects already
 * cached are refreshed.  obj is borrowed. */
void koc__informer_apply_write(koc_informer *inf, cJSON *obj);
/* The object with this key is gone (a DELETE answered with a Status, or
 * with an object that is not being deleted): removed from the cache, a
 * delete for the handlers when it was there.  rv: the deletion's
 * resourceVersion (the answer's object's), NULL when the answer had none;
 * a re-list in progress does not bring the object back (store.h). */
void koc__informer_apply_delete(koc_informer *inf, const char *key, const char *rv);

/* A watch event (ADDED, MODIFIED, DELETED), as the reflector delivers it;
 * for tests. */
void koc__informer_deliver(koc_informer *inf, koc_watch_event_type type, cJSON *obj);

/* For tests: the reflector's counters. */
struct koc_reflector_stats;
void koc__informer_get_stats(koc_informer *inf, struct koc_reflector_stats *ret);

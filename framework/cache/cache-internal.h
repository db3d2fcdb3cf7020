/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cache of one manager: its informer registry (informers shared by every
 * user that asks for the same resource, namespace, selectors and mode), the
 * names its users claim, and the informers a program asked it to keep.
 * Nothing here is process-global: two managers in one process have two
 * caches that share nothing.
 */
#pragma once

#include <pthread.h>

#include "informer.h"
#include "koc/cache.h"

struct koc_cache {
        /* Covers the registry, the informers' reference counts and the
         * names, for processes that run several loops in several threads;
         * each informer is used on its client's loop thread only. */
        pthread_mutex_t lock;
        koc_informer *informers; /* the registry (informer.c) */
        koc_client *client;
        koc_metrics *metrics;
        char **names;
        size_t n_names;
        /* koc_cache_add_informer: a reference each, until the cache is freed. */
        koc_informer **kept;
        size_t n_kept;
};

/* A cache for informers of client (referenced) that register their gauges
 * in metrics (may be NULL; the caller keeps it alive as long as the cache). */
int koc__cache_new(koc_client *client, koc_metrics *metrics, koc_cache **ret);
/* Releases the kept informers; every other informer must be gone already
 * (the manager outlives its controllers).  On the loop thread. */
koc_cache *koc__cache_free(koc_cache *cache);

/* How many informers the registry holds (tests). */
size_t koc__cache_count_informers(koc_cache *cache);
/* Calls fn for the informers of the registry, under the cache's lock (so
 * none goes away meanwhile), until fn returns non-zero, which is returned. */
int koc__cache_foreach_informer(koc_cache *cache, int (*fn)(koc_informer *inf, void *userdata),
                                void *userdata);
/* New references to the informers of the registry of res (its group and
 * plural), to work on outside the cache's lock (handlers may read the
 * cache); the caller unrefs each and frees the array. */
int koc__cache_ref_informers(koc_cache *cache, const koc_resource *res, koc_informer ***ret,
                             size_t *ret_n);
/* The object of res named name in namespace_ (NULL: cluster-scoped) from
 * the informer that answers a read of whole objects without selectors
 * (koc_cache_ref_object()'s rule); with synced_only, only an informer
 * without label or field selector that has listed once.  -ENXIO (-ENOMEDIUM: metadata only) when
 * none covers it, -ENOENT when it covers it and has no such object. */
int koc__cache_ref_covered(koc_cache *cache, const koc_resource *res, const char *namespace_,
                           const char *name, bool synced_only, koc_object **ret);

/* Names unique among the users of one cache (the controllers of one
 * manager): -EEXIST when taken. */
int koc__cache_claim_name(koc_cache *cache, const char *name);
void koc__cache_release_name(koc_cache *cache, const char *name);

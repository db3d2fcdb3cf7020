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
 *   koc_cache *cache = koc_manager_get_cache(manager);   // owned by the manager
 */
#ifndef KOC_CACHE_H
#define KOC_CACHE_H

#include <koc/common.h>
#include <koc/object.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct koc_cache koc_cache;

#ifdef __cplusplus
}
#endif
#endif

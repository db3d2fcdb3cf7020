/* SPDX-License-Identifier: Apache-2.0 */
#include "cache-internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>



int koc__cache_new(koc_client *client, koc_metrics *metrics, koc_cache **ret) {
        koc_cache *cache = calloc(1, sizeof *cache);
        if (!cache)
                return -ENOMEM;
        pthread_mutex_init(&cache->lock, NULL);
        cache->client = koc_client_ref(client);
        cache->metrics = metrics;
        *ret = cache;
        return 0;
}

koc_cache *koc__cache_free(koc_cache *cache) {
        if (!cache)
                return NULL;
        for (size_t i = 0; i < cache->n_kept; i++)
                koc__informer_unref(cache->kept[i]);
        free(cache->kept);
        /* Every user of the cache has let its informers go by now. */
        assert(!cache->informers);
        for (size_t i = 0; i < cache->n_names; i++)
                free(cache->names[i]);
        free(cache->names);
        koc_client_unref(cache->client);
        pthread_mutex_destroy(&cache->lock);
        free(cache);
        return NULL;
}

int koc__cache_claim_name(koc_cache *cache, const char *name) {
        int r = 0;
        pthread_mutex_lock(&cache->lock);
        for (size_t i = 0; i < cache->n_names; i++)
                if (strcmp(cache->names[i], name) == 0)
                        r = -EEXIST;
        char **n = r < 0 ? NULL : realloc(cache->names, (cache->n_names + 1) * sizeof *n);
        char *copy = n ? strdup(name) : NULL;
        if (n)
                cache->names = n;
        if (copy)
                cache->names[cache->n_names++] = copy;
        else if (r == 0)
                r = -ENOMEM;
        pthread_mutex_unlock(&cache->lock);
        return r;
}

void koc__cache_release_name(koc_cache *cache, const char *name) {
        pthread_mutex_lock(&cache->lock);
        for (size_t i = 0; i < cache->n_names; i++)
                if (strcmp(cache->names[i], name) == 0) {
                        free(cache->names[i]);
                        cache->names[i] = cache->names[--cache->n_names];
                        break;
                }
        pthread_mutex_unlock(&cache->lock);
}

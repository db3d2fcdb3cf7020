/* SPDX-License-Identifier: Apache-2.0 */
#include "cache-internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/selector.h"
#include "core/util.h"



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

KOC_EXPORT int koc_cache_add_informer_sized(koc_cache *cache, size_t res_size,
                                            const koc_resource *user_res, const char *namespace_,
                                            const char *label_selector, koc_error *err) {
        koc_resource res;
        if (!cache || !user_res)
                return koc_error_set(err, -EINVAL, "koc_cache_add_informer: missing argument");
        if (KOC__IMPORT(&res, user_res, res_size, group) < 0)
                return koc_error_set(err, -EINVAL,
                                     "koc_cache_add_informer: resource size %zu does not match "
                                     "this library (%zu)",
                                     res_size, sizeof res);
        if (!res.version || !*res.version || !res.resource || !*res.resource)
                return koc_error_set(err, -EINVAL,
                                     "koc_cache_add_informer: resource version and plural are "
                                     "required");
        koc_informer **n = realloc(cache->kept, (cache->n_kept + 1) * sizeof *n);
        if (!n)
                return koc_error_set(err, -ENOMEM, "out of memory");
        cache->kept = n;
        koc_informer *inf = NULL;
        int r = koc__informer_get(cache, cache->client, &res, namespace_, label_selector, NULL,
                                  NULL, cache->metrics, &inf, err);
        if (r < 0)
                return r;
        cache->kept[cache->n_kept++] = inf;
        return 0;
}

static bool same_str(const char *a, const char *b) {
        return strcmp(a ? a : "", b ? b : "") == 0;
}

/* A read: which resource and namespace, and what it does with the stores. */
typedef struct read_op {
        const koc_resource *res;
        const char *namespace_; /* NULL: every namespace */
        int (*fn)(struct read_op *op, koc_store *store);
        /* The best informer (list, index): none with selectors if there is
         * one, cluster-wide before namespaced. */
        koc_informer *best;
        int best_rank;
        bool every; /* get: try every covering informer, not only the best */
        bool found_informer;
        const char *name;
        const char *index, *value;
        const koc_selector *selector;
        koc_object *object;
        koc_object **list;
        size_t n;
} read_op;

static bool covers(koc_informer *inf, const read_op *op) {
        const koc_resource *r = koc__informer_get_resource(inf);
        if (!same_str(r->group, op->res->group) || !same_str(r->version, op->res->version) ||
            !same_str(r->resource, op->res->resource))
                return false;
        const char *ns = koc__informer_get_namespace(inf);
        return !ns || !op->namespace_ || strcmp(ns, op->namespace_) == 0;
}

static int visit(koc_informer *inf, void *userdata) {
        read_op *op = userdata;
        if (!covers(inf, op))
                return 0;
        op->found_informer = true;
        if (op->every)
                return op->fn(op, koc__informer_get_store(inf));
        int rank = (koc__informer_has_selectors(inf) ? 2 : 0) +
                   (koc__informer_get_namespace(inf) ? 1 : 0);
        if (!op->best || rank < op->best_rank) {
                op->best = inf;
                op->best_rank = rank;
        }
        return 0;
}

/* Runs op under the cache's lock: the informers cannot go away meanwhile. */
static int run_best(koc_informer *inf, void *userdata) {
        read_op *op = userdata;
        return inf == op->best ? op->fn(op, koc__informer_get_store(inf)) : 0;
}

static int read_cache(koc_cache *cache, read_op *op) {
        int r = koc__cache_foreach_informer(cache, visit, op);
        if (r == 0 && !op->found_informer)
                return -ENXIO;
        if (r == 0 && !op->every)
                r = koc__cache_foreach_informer(cache, run_best, op);
        return r;
}

static int get_one(read_op *op, koc_store *store) {
        char key[512];
        if (koc_object_key_format(op->res->namespaced ? op->namespace_ : NULL, op->name, key,
                                  sizeof key) < 0)
                return -EINVAL;
        op->object = koc__store_get(store, key);
        return op->object ? 1 : 0;
}

KOC_EXPORT int koc_cache_ref_object_sized(koc_cache *cache, size_t res_size,
                                          const koc_resource *user_res, const char *namespace_,
                                          const char *name, koc_object **ret) {
        koc_resource res;
        if (!cache || !user_res || !name || !*name || !ret ||
            KOC__IMPORT(&res, user_res, res_size, group) < 0)
                return -EINVAL;
        read_op op = {.res = &res,
                      .namespace_ = res.namespaced && namespace_ && *namespace_ ? namespace_
                                                                                 : NULL,
                      .fn = get_one,
                      .every = true,
                      .name = name};
        if (res.namespaced && !op.namespace_)
                return -EINVAL;
        int r = read_cache(cache, &op);
        if (r < 0)
                return r;
        if (!op.object)
                return -ENOENT;
        *ret = op.object;
        return 0;
}

static int list_some(read_op *op, koc_store *store) {
        int r = koc__store_list(store, op->namespace_, op->selector, &op->list, &op->n);
        return r < 0 ? r : 1;
}

KOC_EXPORT int koc_cache_list_sized(koc_cache *cache, size_t res_size, const koc_resource *user_res,
                                    const char *namespace_, const char *label_selector,
                                    koc_object ***ret, size_t *ret_n) {
        koc_resource res;
        if (!cache || !user_res || !ret || !ret_n ||
            KOC__IMPORT(&res, user_res, res_size, group) < 0)
                return -EINVAL;
        koc_selector *sel = NULL;
        int r = koc__selector_parse(label_selector, &sel, NULL);
        if (r < 0)
                return r;
        read_op op = {.res = &res,
                      .namespace_ = res.namespaced && namespace_ && *namespace_ ? namespace_
                                                                                 : NULL,
                      .fn = list_some,
                      .selector = sel};
        r = read_cache(cache, &op);
        koc__selector_free(sel);
        if (r < 0)
                return r;
        *ret = op.list;
        *ret_n = op.n;
        return 0;
}

/* The first covering informer whose store has the index answers. */
static int list_index(read_op *op, koc_store *store) {
        int r = koc__store_list_index(store, op->index, op->value, &op->list, &op->n);
        return r == -ENOENT ? 0 : r < 0 ? r : 1;
}

KOC_EXPORT int koc_cache_list_index_sized(koc_cache *cache, size_t res_size,
                                          const koc_resource *user_res, const char *index,
                                          const char *value, koc_object ***ret, size_t *ret_n) {
        koc_resource res;
        if (!cache || !user_res || !index || !value || !ret || !ret_n ||
            KOC__IMPORT(&res, user_res, res_size, group) < 0)
                return -EINVAL;
        read_op op = {
                .res = &res, .fn = list_index, .every = true, .index = index, .value = value};
        int r = read_cache(cache, &op);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        *ret = op.list;
        *ret_n = op.n;
        return 0;
}

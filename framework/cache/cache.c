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

KOC_EXPORT int koc_informer_options_init_sized(size_t o_size, koc_informer_options *o) {
        if (!o || o_size < KOC__STRUCT_MIN_SIZE(koc_informer_options, namespace_))
                return -EINVAL;
        memset(o, 0, o_size);
        return 0;
}

/* The caller's resource and options in the library's own structs; o NULL:
 * the defaults.  -EINVAL with err naming the caller. */
static int import_args(const char *who, size_t res_size, const koc_resource *user_res,
                       size_t o_size, const koc_informer_options *user_o, koc_resource *res,
                       koc_informer_options *o, koc_error *err) {
        *o = (koc_informer_options){0};
        if (!user_res)
                return koc_error_set(err, -EINVAL, "%s: missing argument", who);
        if (KOC__IMPORT(res, user_res, res_size, group) < 0)
                return koc_error_set(err, -EINVAL,
                                     "%s: resource size %zu does not match this library (%zu)",
                                     who, res_size, sizeof *res);
        if (user_o && KOC__IMPORT(o, user_o, o_size, namespace_) < 0)
                return koc_error_set(err, -EINVAL,
                                     "%s: options size %zu does not match this library (%zu)",
                                     who, o_size, sizeof *o);
        if (!res->version || !*res->version || !res->resource || !*res->resource)
                return koc_error_set(err, -EINVAL, "%s: resource version and plural are required",
                                     who);
        if (o->all_namespaces && o->namespace_ && *o->namespace_)
                return koc_error_set(err, -EINVAL,
                                     "%s: all_namespaces and namespace \"%s\" contradict", who,
                                     o->namespace_);
        return 0;
}

/* Finds or creates the informer of the scope and keeps a reference in the
 * cache; *ret is borrowed. */
static int keep_informer(koc_cache *cache, const koc_resource *res, const koc_informer_options *o,
                         koc_informer **ret, koc_error *err) {
        koc_informer **n = realloc(cache->kept, (cache->n_kept + 1) * sizeof *n);
        if (!n)
                return koc_error_set(err, -ENOMEM, "out of memory");
        cache->kept = n;
        koc_informer *inf = NULL;
        koc_informer_opts opts = {.list_mode = KOC_LIST_PAGES, .metadata_only = o->metadata_only};
        int r = koc__informer_get(cache, cache->client, res,
                                  o->all_namespaces ? NULL : o->namespace_, o->label_selector,
                                  o->field_selector, &opts, cache->metrics, &inf, err);
        if (r < 0)
                return r;
        cache->kept[cache->n_kept++] = inf;
        *ret = inf;
        return 0;
}

KOC_EXPORT int koc_cache_add_informer_with_options_sized(koc_cache *cache, size_t res_size,
                                                         const koc_resource *user_res,
                                                         size_t o_size,
                                                         const koc_informer_options *user_o,
                                                         koc_error *err) {
        koc_resource res;
        koc_informer_options o;
        if (!cache)
                return koc_error_set(err, -EINVAL, "koc_cache_add_informer: missing argument");
        int r = import_args("koc_cache_add_informer", res_size, user_res, o_size, user_o, &res,
                            &o, err);
        koc_informer *inf;
        return r < 0 ? r : keep_informer(cache, &res, &o, &inf, err);
}

KOC_EXPORT int koc_cache_add_informer_sized(koc_cache *cache, size_t res_size,
                                            const koc_resource *user_res, const char *namespace_,
                                            const char *label_selector, koc_error *err) {
        koc_informer_options o = {.namespace_ = namespace_, .label_selector = label_selector};
        return koc_cache_add_informer_with_options_sized(cache, res_size, user_res, sizeof o, &o,
                                                         err);
}

static bool same_resource(koc_informer *inf, const koc_resource *res) {
        const koc_resource *r = koc__informer_get_resource(inf);
        return koc__streq_null(r->group, res->group) &&
               koc__streq_null(r->version, res->version) &&
               koc__streq_null(r->resource, res->resource);
}

struct index_name {
        const koc_resource *res;
        const char *name;
};

static int has_index(koc_informer *inf, void *userdata) {
        struct index_name *in = userdata;
        return same_resource(inf, in->res) &&
               koc__store_has_index(koc__informer_get_store(inf), in->name);
}

KOC_EXPORT int koc_cache_add_index_sized(koc_cache *cache, size_t res_size,
                                         const koc_resource *user_res, size_t o_size,
                                         const koc_informer_options *user_o, const char *name,
                                         koc_index_func_t fn, void *userdata,
                                         koc_destroy_t destroy, koc_error *err) {
        koc_resource res;
        koc_informer_options o;
        if (!cache || !name || !*name || !fn)
                return koc_error_set(err, -EINVAL, "koc_cache_add_index: missing argument");
        int r = import_args("koc_cache_add_index", res_size, user_res, o_size, user_o, &res, &o,
                            err);
        if (r < 0)
                return r;
        /* One informer per index name and resource, so that
         * koc_cache_list_index() means one scope. */
        if (koc__cache_foreach_informer(cache, has_index, &(struct index_name){&res, name}))
                return koc_error_set(err, -EEXIST,
                                     "koc_cache_add_index: an informer of %s has an index named "
                                     "\"%s\" already",
                                     res.resource, name);
        koc_informer *inf = NULL;
        r = keep_informer(cache, &res, &o, &inf, err);
        if (r < 0)
                return r;
        r = koc__store_add_index(koc__informer_get_store(inf), name, fn, userdata, destroy);
        if (r == -EBUSY)
                return koc_error_set(err, r,
                                     "koc_cache_add_index %s: the informer of %s holds objects "
                                     "already (add indexes before koc_manager_run())",
                                     name, res.resource);
        return r < 0 ? koc_error_set(err, r, "koc_cache_add_index %s: %s", name, strerror(-r)) : 0;
}

/* A read: which resource and scope, and what it does with the store of the
 * informer that answers. */
typedef struct read_op {
        const koc_resource *res;
        const char *namespace_;       /* NULL: every namespace */
        const koc_selector *selector; /* the read's label selector; NULL: none */
        const char *field_selector;   /* NULL: none */
        bool metadata_ok;
        /* Only informers without label or field selector that have listed
         * once: absent from them means absent. */
        bool synced_only;
        int (*fn)(struct read_op *op, koc_store *store);
        /* The informer that answers (see koc/cache.h): none with a label
         * selector if there is one, cluster-wide before namespaced, whole
         * objects before metadata. */
        koc_informer *best;
        int best_rank;
        bool metadata_only_covers; /* a metadata-only informer would cover it */
        const char *name;
        const char *index, *value;
        koc_object *object;
        koc_object **list;
        size_t n;
} read_op;

/* Lower answers first: whole objects, no label selector, cluster-wide. */
static int read_rank(koc_informer *inf) {
        return (koc__informer_is_metadata_only(inf) ? 4 : 0) +
               (koc__selector_is_empty(koc__informer_get_selector(inf)) ? 0 : 2) +
               (koc__informer_get_namespace(inf) ? 1 : 0);
}

static int visit(koc_informer *inf, void *userdata) {
        read_op *op = userdata;
        if (!same_resource(inf, op->res))
                return 0;
        const char *ns = koc__informer_get_namespace(inf);
        if (ns && (!op->namespace_ || strcmp(ns, op->namespace_) != 0))
                return 0;
        if (!koc__selector_includes(op->selector, koc__informer_get_selector(inf)) ||
            !koc__streq_null(koc__informer_get_field_selector(inf), op->field_selector))
                return 0;
        if (op->synced_only &&
            (koc__informer_has_selectors(inf) || !koc__informer_has_synced(inf)))
                return 0;
        bool meta = koc__informer_is_metadata_only(inf);
        if (meta && !op->metadata_ok) {
                op->metadata_only_covers = true;
                return 0;
        }
        int rank = read_rank(inf);
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
        if (r == 0 && !op->best)
                return op->metadata_only_covers ? -ENOMEDIUM : -ENXIO;
        if (r == 0)
                r = koc__cache_foreach_informer(cache, run_best, op);
        return r;
}

static const char *object_label(const char *key, void *userdata) {
        return koc_object_get_label(userdata, key);
}

static int get_one(read_op *op, koc_store *store) {
        char key[512];
        if (koc_object_key_format(op->res->namespaced ? op->namespace_ : NULL, op->name, key,
                                  sizeof key) < 0)
                return -EINVAL;
        op->object = koc__store_get(store, key);
        if (op->object && !koc__selector_matches(op->selector, object_label, op->object))
                op->object = koc_object_unref(op->object);
        return 1;
}

/* The read's scope from the caller's options: the namespace (NULL: every
 * one; none for a cluster-scoped resource) and the parsed label selector. */
static int read_scope(read_op *op, const koc_resource *res, const koc_informer_options *o,
                      koc_selector **ret_sel) {
        op->res = res;
        op->namespace_ = res->namespaced && o->namespace_ && *o->namespace_ ? o->namespace_ : NULL;
        op->field_selector = o->field_selector && *o->field_selector ? o->field_selector : NULL;
        op->metadata_ok = o->metadata_only;
        int r = koc__selector_parse(o->label_selector, ret_sel, NULL);
        op->selector = koc__selector_is_empty(*ret_sel) ? NULL : *ret_sel;
        return r;
}

KOC_EXPORT int koc_cache_ref_object_with_options_sized(koc_cache *cache, size_t res_size,
                                                       const koc_resource *user_res,
                                                       size_t o_size,
                                                       const koc_informer_options *user_o,
                                                       const char *name, koc_object **ret) {
        koc_resource res;
        koc_informer_options o;
        if (!cache || !name || !*name || !ret ||
            import_args("read", res_size, user_res, o_size, user_o, &res, &o, NULL) < 0)
                return -EINVAL;
        read_op op = {.fn = get_one, .name = name};
        koc_selector *sel = NULL;
        int r = read_scope(&op, &res, &o, &sel);
        if (r >= 0 && res.namespaced && !op.namespace_)
                r = -EINVAL;
        if (r >= 0)
                r = read_cache(cache, &op);
        koc__selector_free(sel);
        if (r < 0)
                return r;
        if (!op.object)
                return -ENOENT;
        *ret = op.object;
        return 0;
}

KOC_EXPORT int koc_cache_ref_object_sized(koc_cache *cache, size_t res_size,
                                          const koc_resource *user_res, const char *namespace_,
                                          const char *name, koc_object **ret) {
        koc_informer_options o = {.namespace_ = namespace_};
        return koc_cache_ref_object_with_options_sized(cache, res_size, user_res, sizeof o, &o,
                                                       name, ret);
}

static int list_some(read_op *op, koc_store *store) {
        int r = koc__store_list(store, op->namespace_, op->selector, &op->list, &op->n);
        return r < 0 ? r : 1;
}

int koc__cache_ref_covered(koc_cache *cache, const koc_resource *res, const char *namespace_,
                           const char *name, bool synced_only, koc_object **ret) {
        read_op op = {.res = res,
                      .namespace_ = namespace_,
                      .synced_only = synced_only,
                      .fn = get_one,
                      .name = name};
        int r = read_cache(cache, &op);
        if (r < 0)
                return r;
        if (!op.object)
                return -ENOENT;
        *ret = op.object;
        return 0;
}

KOC_EXPORT int koc_cache_list_with_options_sized(koc_cache *cache, size_t res_size,
                                                 const koc_resource *user_res, size_t o_size,
                                                 const koc_informer_options *user_o,
                                                 koc_object ***ret, size_t *ret_n) {
        koc_resource res;
        koc_informer_options o;
        if (!cache || !ret || !ret_n ||
            import_args("read", res_size, user_res, o_size, user_o, &res, &o, NULL) < 0)
                return -EINVAL;
        read_op op = {.fn = list_some};
        koc_selector *sel = NULL;
        int r = read_scope(&op, &res, &o, &sel);
        if (r >= 0)
                r = read_cache(cache, &op);
        koc__selector_free(sel);
        if (r < 0)
                return r;
        *ret = op.list;
        *ret_n = op.n;
        return 0;
}

KOC_EXPORT int koc_cache_list_sized(koc_cache *cache, size_t res_size, const koc_resource *user_res,
                                    const char *namespace_, const char *label_selector,
                                    koc_object ***ret, size_t *ret_n) {
        koc_informer_options o = {.namespace_ = namespace_, .label_selector = label_selector};
        return koc_cache_list_with_options_sized(cache, res_size, user_res, sizeof o, &o, ret,
                                                 ret_n);
}

/* The informers of the resource that have the index, the best of them by
 * the ranking of reads. */
static int visit_index(koc_informer *inf, void *userdata) {
        read_op *op = userdata;
        if (!has_index(inf, &(struct index_name){op->res, op->index}))
                return 0;
        int rank = read_rank(inf);
        if (!op->best || rank < op->best_rank) {
                op->best = inf;
                op->best_rank = rank;
        }
        return 0;
}

static int list_index(read_op *op, koc_store *store) {
        int r = koc__store_list_index(store, op->index, op->value, &op->list, &op->n);
        return r < 0 ? r : 1;
}

KOC_EXPORT int koc_cache_list_index_sized(koc_cache *cache, size_t res_size,
                                          const koc_resource *user_res, const char *index,
                                          const char *value, koc_object ***ret, size_t *ret_n) {
        koc_resource res;
        if (!cache || !user_res || !index || !value || !ret || !ret_n ||
            KOC__IMPORT(&res, user_res, res_size, group) < 0)
                return -EINVAL;
        read_op op = {.res = &res, .fn = list_index, .index = index, .value = value};
        int r = koc__cache_foreach_informer(cache, visit_index, &op);
        if (r == 0 && !op.best)
                return -ENOENT;
        if (r == 0)
                r = koc__cache_foreach_informer(cache, run_best, &op);
        if (r < 0)
                return r;
        *ret = op.list;
        *ret_n = op.n;
        return 0;
}

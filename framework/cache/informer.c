/* SPDX-License-Identifier: Apache-2.0 */
#include "informer.h"
#include "cache-internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/names.h"
#include "core/ratelimit.h"
#include "core/reflector.h"
#include "core/resource-version.h"
#include "core/util.h"
#include "core/strmap.h"
#include "koc/log.h"

#define LOG "informer"
#define ACCEPT_LIST "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
#define ACCEPT_ONE "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

typedef struct handler_slot {
        koc_informer_handler h;
        void *userdata;
} handler_slot;

struct koc_informer {
        unsigned ref;
        koc_informer *next; /* the registry of its cache */
        koc_cache *cache;
        koc_client *client;
        char *path;
        char *namespace_;
        char *label_selector;
        char *field_selector;
        koc_resource res;
        koc_informer_opts opts;
        char *group, *version, *resource, *kind;
        koc_selector *selector;
        koc_reflector *reflector;
        koc_store *store;
        handler_slot *handlers;
        size_t n_handlers;
        atomic_bool synced; /* read by readiness checks and any thread */
        bool live_list;     /* the list in progress is applied as it arrives */
        /* Keys the watch reported deleted, with the deletion's
         * resourceVersion: a write's answer that arrives after the deletion
         * event must not bring the object back (read-your-own-writes). */
        strmap tombstones;
        koc_metric *objects_gauge;
        koc_metric *bytes_gauge;
        koc_metric *rejected[_KOC_REFLECTOR_REJECT_MAX];
};

/* One segment of the path, checked by its rule; the message names the field
 * and the value (quoted printable). */
static int check_segment(const char *field, const char *value, bool dns_label, koc_error *err) {
        const char *why = dns_label ? koc__dns1123_label_error(value)
                                    : koc__path_segment_name_error(value);
        if (!why)
                return 0;
        char q[160];
        return koc_error_set(err, -EINVAL, "invalid %s \"%s\": %s", field,
                             koc__name_quote(value, q, sizeof q), why);
}

int koc__resource_path(const koc_resource *res, const char *namespace_, const char *name,
                       const char *subresource, char *buf, size_t size, koc_error *err) {
        if (!res || !buf)
                return koc_error_set(err, -EINVAL, "no resource or buffer given");
        bool core = !res->group || !*res->group;
        bool ns = namespace_ && *namespace_;
        int r = 0;
        /* Every part is one segment: the resource's own parts come from the
         * program, but the names may come from an object anyone could write
         * (an annotation, a spec field), and a "/", "..", "?" or "%" in them
         * would make the request reach another object. */
        if ((!core && (r = check_segment("resource group", res->group, false, err)) < 0) ||
            (r = check_segment("resource version", res->version, false, err)) < 0 ||
            (r = check_segment("resource", res->resource, false, err)) < 0 ||
            (ns && (r = check_segment("namespace", namespace_, true, err)) < 0) ||
            (name && (r = check_segment("name", name, false, err)) < 0) ||
            (subresource && (r = check_segment("subresource", subresource, false, err)) < 0))
                return r;
        char q[160], q2[160];
        if (subresource && !name)
                return koc_error_set(err, -EINVAL, "subresource \"%s\" without a name",
                                     koc__name_quote(subresource, q, sizeof q));
        int n = snprintf(buf, size, "%s%s/%s%s%s/%s%s%s%s%s", core ? "/api" : "/apis/",
                         core ? "" : res->group, res->version, ns ? "/namespaces/" : "",
                         ns ? namespace_ : "", res->resource, name ? "/" : "", name ? name : "",
                         subresource ? "/" : "", subresource ? subresource : "");
        if (n < 0 || (size_t)n >= size)
                return koc_error_set(err, -ENAMETOOLONG, "path of %s \"%s\" is too long",
                                     koc__name_quote(res->resource, q, 64),
                                     koc__name_quote(name ? name : "", q2, sizeof q2));
        return 0;
}

KOC_EXPORT int koc_resource_path_sized(size_t res_size, const koc_resource *user_res,
                                       const char *namespace_, const char *name,
                                       const char *subresource, char *buf, size_t size) {
        static koc__ratelimit rl = KOC__RATELIMIT_INIT(10 * KOC_USEC_PER_SEC, 5);
        koc_resource copy;
        koc_error err = {0};

        if (KOC__IMPORT(&copy, user_res, res_size, group) < 0)
                return -EINVAL;
        int r = koc__resource_path(&copy, namespace_, name, subresource, buf, size, &err);
        if (r == -EINVAL)
                koc__log_ratelimited(&rl, KOC_LOG_WARN, LOG, "path refused: %s", err.message);
        return r;
}

static void set_gauges(koc_informer *inf) {
        if (inf->objects_gauge)
                koc_metric_set(inf->objects_gauge, (double)koc__store_count(inf->store));
        if (inf->bytes_gauge)
                koc_metric_set(inf->bytes_gauge, (double)koc__store_bytes(inf->store));
}

static void notify_add(koc_informer *inf, koc_object *o) {
        for (size_t i = 0; i < inf->n_handlers; i++)
                if (inf->handlers[i].h.on_add)
                        inf->handlers[i].h.on_add(o, inf->handlers[i].userdata);
}

static void notify_update(koc_informer *inf, koc_object *old, koc_object *o) {
        for (size_t i = 0; i < inf->n_handlers; i++)
                if (inf->handlers[i].h.on_update)
                        inf->handlers[i].h.on_update(old, o, inf->handlers[i].userdata);
}

static void notify_delete(koc_informer *inf, koc_object *old) {
        for (size_t i = 0; i < inf->n_handlers; i++)
                if (inf->handlers[i].h.on_delete)
                        inf->handlers[i].h.on_delete(old, inf->handlers[i].userdata);
}

/* A metadata-only informer keeps metadata, with the resource's apiVersion
 * and kind (what the server sends is PartialObjectMetadata; a write's
 * answer is the whole object). */
static void keep_metadata(koc_informer *inf, cJSON *obj) {
        cJSON *c = obj->child;
        while (c) {
                cJSON *next = c->next;
                if (!c->string || strcmp(c->string, "metadata") != 0)
                        cJSON_Delete(cJSON_DetachItemViaPointer(obj, c));
                c = next;
        }
        char av[300];
        (void)koc__api_version_format(inf->group, inf->version, av, sizeof av);
        cJSON_AddStringToObject(obj, "apiVersion", av);
        cJSON_AddStringToObject(obj, "kind", inf->kind);
}

static void upsert_and_notify(koc_informer *inf, cJSON *obj) {
        koc_object *old = NULL, *o = NULL;
        if (inf->opts.metadata_only)
                keep_metadata(inf, obj);
        int r = koc__store_upsert(inf->store, obj, KOC_STORE_ONLY_NEWER, &old, &o);
        if (r < 0)
                koc_log_warn(LOG, "cannot cache an object path=%s: %s", inf->path, strerror(-r));
        if (r > 0) {
                if (old)
                        notify_update(inf, old, o);
                else
                        notify_add(inf, o);
        }
        koc_object_unref(old);
        koc_object_unref(o);
        set_gauges(inf);
}

/* A paginated list fills the store's staging; its objects replace the
 * cache's content only when it ends (koc__store_replace_end: the list is
 * authoritative, with the read-your-own-writes exception explained there),
 * so the objects of a list that is abandoned never reach the cache or the
 * handlers.  A streaming list is applied as it arrives (each object to the
 * cache and the handlers at once, by the same rules), so that the burst is
 * neither held twice nor handed out in one go at its end; its end marker
 * removes what it did not send and marks the informer synced. */
static void on_listed(koc_object *old, koc_object *o, void *userdata);

static void on_list_begin(void *userdata) {
        koc_informer *inf = userdata;
        inf->live_list = koc__reflector_is_streaming(inf->reflector);
        if (inf->live_list)
                koc__store_replace_begin_live(inf->store);
        else
                koc__store_replace_begin(inf->store);
}

struct removal {
        koc_informer *inf;
        const char *list_rv;
};

static int on_list_item(cJSON *obj, void *userdata) {
        koc_informer *inf = userdata;
        if (inf->opts.metadata_only)
                keep_metadata(inf, obj);
        int r;
        if (inf->live_list) {
                struct removal rm = {inf, NULL};
                r = koc__store_replace_add_live(
                        inf->store, obj, &(koc_store_replace_handlers){.changed = on_listed}, &rm);
        } else
                r = koc__store_replace_add(inf->store, obj);
        if (r == -EINVAL)
                return 0; /* no name: not an object the cache can hold */
        if (r < 0)
                return r;
        uint64_t max = inf->opts.max_list_bytes ? inf->opts.max_list_bytes
                                                : KOC_INFORMER_MAX_LIST_BYTES_DEFAULT;
        return koc__store_replace_bytes(inf->store) > max ? -EFBIG : 0;
}

static void on_list_abort(void *userdata) {
        koc_informer *inf = userdata;
        koc__store_replace_abort(inf->store);
}

static void on_rejected(koc_reflector_reject why, void *userdata) {
        koc_informer *inf = userdata;
        if (inf->rejected[why])
                koc_metric_inc(inf->rejected[why]);
}

static void tombstone_set(koc_informer *inf, const char *key, const char *rv);

static void on_removed(koc_object *old, void *userdata) {
        struct removal *r = userdata;
        /* Gone by the list's resourceVersion at the latest. */
        tombstone_set(r->inf, koc_object_get_key(old), r->list_rv);
        notify_delete(r->inf, old);
}

static void on_listed(koc_object *old, koc_object *o, void *userdata) {
        struct removal *r = userdata;
        if (old)
                notify_update(r->inf, old, o);
        else
                notify_add(r->inf, o);
}

/* Lists smaller than this leave too little to give back for a walk of the
 * heap. */
#define HEAP_RELEASE_MIN_OBJECTS 1000

static void on_list_end(const char *rv, void *userdata) {
        koc_informer *inf = userdata;
        struct removal rm = {inf, rv};
        size_t listed = koc__store_replace_count(inf->store);
        koc__store_replace_end(inf->store, rv,
                               &(koc_store_replace_handlers){.changed = on_listed,
                                                             .removed = on_removed},
                               &rm);
        set_gauges(inf);
        /* What a large list's parse trees and pages took goes back to the
         * system now (not only at the heap's top). */
        if (listed >= HEAP_RELEASE_MIN_OBJECTS)
                koc__heap_release();
        if (!atomic_load(&inf->synced)) {
                atomic_store(&inf->synced, true);
                koc_log_debug(LOG, "synced path=%s objects=%zu", inf->path,
                              koc__store_count(inf->store));
                for (size_t i = 0; i < inf->n_handlers; i++)
                        if (inf->handlers[i].h.on_synced)
                                inf->handlers[i].h.on_synced(inf->handlers[i].userdata);
        }
}

/* Bounds the memory of tombstones; past it they are forgotten at once, and
 * read-your-own-writes only loses its guard against a rare late answer. */
#define MAX_TOMBSTONES 10000

static void tombstones_clear(koc_informer *inf) {
        size_t it;
        for (strmap_entry *e = koc__strmap_first(&inf->tombstones, &it); e;
             e = koc__strmap_next(&inf->tombstones, e, &it))
                free(e->value);
        koc__strmap_clear(&inf->tombstones);
}

static void tombstone_set(koc_informer *inf, const char *key, const char *rv) {
        if (inf->tombstones.size >= MAX_TOMBSTONES)
                tombstones_clear(inf);
        char *v = strdup(rv ? rv : "");
        void *old = NULL;
        if (!v || koc__strmap_put(&inf->tombstones, key, v, &old) < 0)
                free(v);
        free(old);
}

static void tombstone_drop(koc_informer *inf, const char *key) {
        free(koc__strmap_remove(&inf->tombstones, key));
}

static const char *meta_rv(const cJSON *obj) {
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "resourceVersion"));
}

/* rv: the deletion's resourceVersion, when known. */
static void delete_and_notify(koc_informer *inf, const char *key, const char *rv, cJSON *last) {
        koc_object *old = NULL;
        if (koc__store_delete_at(inf->store, key, rv, &old) > 0) {
                /* Handlers see the object's final state when the event has it. */
                koc_object *fin = NULL;
                if (last && inf->opts.metadata_only)
                        keep_metadata(inf, last);
                if (last && koc__store_make_object(inf->store, last, &fin) == 0) {
                        notify_delete(inf, fin);
                        koc_object_unref(fin);
                } else
                        notify_delete(inf, old);
        }
        koc_object_unref(old);
        set_gauges(inf);
}

static int object_key(const cJSON *obj, char *key, size_t size) {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(md, "namespace");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(md, "name");
        if (!cJSON_IsString(name))
                return -EINVAL;
        return koc_object_key_format(cJSON_IsString(ns) ? ns->valuestring : NULL, name->valuestring,
                                     key, size);
}

void koc__informer_deliver(koc_informer *inf, koc_watch_event_type type, cJSON *obj) {
        char key[512];
        if (object_key(obj, key, sizeof key) < 0)
                return;
        if (type != KOC_WATCH_DELETED) {
                tombstone_drop(inf, key);
                upsert_and_notify(inf, obj);
                return;
        }
        tombstone_set(inf, key, meta_rv(obj));
        delete_and_notify(inf, key, meta_rv(obj), obj);
}

static void on_event(koc_watch_event_type type, cJSON *obj, void *userdata) {
        koc__informer_deliver(userdata, type, obj);
}

static const koc_reflector_handlers reflector_handlers = {
        .list_begin = on_list_begin,
        .list_item = on_list_item,
        .list_end = on_list_end,
        .list_abort = on_list_abort,
        .rejected = on_rejected,
        .event = on_event,
};

static void informer_free(koc_informer *inf) {
        koc__reflector_free(inf->reflector);
        tombstones_clear(inf);
        koc__store_free(inf->store);
        koc__selector_free(inf->selector);
        koc_client_unref(inf->client);
        free(inf->path);
        free(inf->namespace_);
        free(inf->label_selector);
        free(inf->field_selector);
        free(inf->group);
        free(inf->version);
        free(inf->resource);
        free(inf->kind);
        free(inf->handlers);
        free(inf);
}

koc_informer *koc__informer_unref(koc_informer *inf) {
        if (!inf)
                return NULL;
        koc_cache *cache = inf->cache;
        pthread_mutex_lock(&cache->lock);
        bool last = --inf->ref == 0;
        for (koc_informer **p = &cache->informers; last && *p; p = &(*p)->next)
                if (*p == inf) {
                        *p = inf->next;
                        break;
                }
        pthread_mutex_unlock(&cache->lock);
        if (last)
                informer_free(inf);
        return NULL;
}

static char *dup_opt(const char *s) {
        return s && *s ? strdup(s) : NULL;
}

static void register_gauges(koc_informer *inf, koc_metrics *m) {
        char labels[1024];
        if (!m)
                return;
        /* Every part of the scope: two informers that differ only in their
         * field selector or in keeping metadata must not share a gauge. */
        snprintf(labels, sizeof labels,
                 "resource=\"%s\",namespace=\"%s\",selector=\"%s\",field_selector=\"%s\","
                 "metadata_only=\"%s\"",
                 inf->path, inf->namespace_ ? inf->namespace_ : "",
                 inf->label_selector ? inf->label_selector : "",
                 inf->field_selector ? inf->field_selector : "",
                 inf->opts.metadata_only ? "true" : "false");
        koc_metrics_add_gauge(m, "koc_informer_cached_objects",
                              "Objects held in an informer's cache.", labels, &inf->objects_gauge);
        koc_metrics_add_gauge(m, "koc_informer_cached_bytes",
                              "Bytes of JSON held in an informer's cache.", labels,
                              &inf->bytes_gauge);
        for (int i = 0; i < _KOC_REFLECTOR_REJECT_MAX; i++) {
                char l[1100];
                snprintf(l, sizeof l, "%s,reason=\"%s\"", labels,
                         koc__reflector_reject_to_string((koc_reflector_reject)i));
                koc_metrics_add_counter(m, "koc_informer_rejected_answers_total",
                                        "Answers to an informer's lists and watches that were "
                                        "rejected, by reason.",
                                        l, &inf->rejected[i]);
        }
}

static koc_reflector_list_mode reflector_mode(koc_list_mode m) {
        switch (m) {
        case KOC_LIST_STREAM_AUTO:
                return KOC_REFLECTOR_LIST_AUTO;
        case KOC_LIST_STREAM:
                return KOC_REFLECTOR_LIST_STREAM;
        default:
                return KOC_REFLECTOR_LIST_PAGES;
        }
}

int koc__informer_get(koc_cache *cache, koc_client *c, const koc_resource *res,
                      const char *namespace_, const char *label_selector,
                      const char *field_selector, const koc_informer_opts *opts,
                      koc_metrics *metrics, koc_informer **ret, koc_error *err) {
        static const koc_informer_opts defaults = {.list_mode = KOC_LIST_STREAM_AUTO};
        char path[512];
        if (!opts)
                opts = &defaults;
        koc_error why = {0};
        int r = koc__resource_path(res, res->namespaced ? namespace_ : NULL, NULL, NULL, path,
                                   sizeof path, &why);
        if (r < 0)
                return koc_error_set(err, r, "informer for %s: %s",
                                     res->resource ? res->resource : "(no resource)", why.message);
        pthread_mutex_lock(&cache->lock);
        for (koc_informer *i = cache->informers; i; i = i->next)
                if (i->client == c && strcmp(i->path, path) == 0 &&
                    koc__streq_null(i->label_selector, label_selector) &&
                    koc__streq_null(i->field_selector, field_selector) &&
                    i->opts.list_mode == opts->list_mode &&
                    i->opts.metadata_only == opts->metadata_only &&
                    i->opts.max_list_objects == opts->max_list_objects &&
                    i->opts.max_list_bytes == opts->max_list_bytes) {
                        i->ref++;
                        pthread_mutex_unlock(&cache->lock);
                        *ret = i;
                        return 0;
                }
        pthread_mutex_unlock(&cache->lock);

        koc_informer *inf = calloc(1, sizeof *inf);
        if (!inf)
                return -ENOMEM;
        inf->ref = 1;
        inf->cache = cache;
        inf->opts = *opts;
        inf->client = koc_client_ref(c);
        inf->path = strdup(path);
        inf->namespace_ = res->namespaced ? dup_opt(namespace_) : NULL;
        inf->label_selector = dup_opt(label_selector);
        inf->field_selector = dup_opt(field_selector);
        inf->group = strdup(res->group ? res->group : "");
        inf->version = strdup(res->version);
        inf->resource = strdup(res->resource);
        inf->kind = strdup(res->kind ? res->kind : "");
        if (!inf->path || !inf->group || !inf->version || !inf->resource || !inf->kind) {
                informer_free(inf);
                return -ENOMEM;
        }
        inf->res =
                (koc_resource){inf->group, inf->version, inf->resource, inf->kind, res->namespaced};
        r = koc__selector_parse(label_selector, &inf->selector, err);
        if (r >= 0)
                r = koc__store_new(&inf->store);
        if (r >= 0)
                r = koc__reflector_new(
                        c,
                        &(koc_reflector_spec){.path = inf->path,
                                              .label_selector = label_selector,
                                              .field_selector = field_selector,
                                              .list_mode = reflector_mode(opts->list_mode),
                                              .max_list_objects = opts->max_list_objects},
                        &reflector_handlers, inf, &inf->reflector);
        if (r >= 0)
                r = koc__reflector_start(inf->reflector);
        if (r < 0) {
                informer_free(inf);
                return r;
        }
        register_gauges(inf, metrics);
        pthread_mutex_lock(&cache->lock);
        inf->next = cache->informers;
        cache->informers = inf;
        pthread_mutex_unlock(&cache->lock);
        *ret = inf;
        return 0;
}

size_t koc__cache_count_informers(koc_cache *cache) {
        size_t n = 0;
        pthread_mutex_lock(&cache->lock);
        for (koc_informer *i = cache->informers; i; i = i->next)
                n++;
        pthread_mutex_unlock(&cache->lock);
        return n;
}

int koc__cache_foreach_informer(koc_cache *cache, int (*fn)(koc_informer *inf, void *userdata),
                                void *userdata) {
        int r = 0;
        pthread_mutex_lock(&cache->lock);
        for (koc_informer *i = cache->informers; i && r == 0; i = i->next)
                r = fn(i, userdata);
        pthread_mutex_unlock(&cache->lock);
        return r;
}

int koc__cache_ref_informers(koc_cache *cache, const koc_resource *res, koc_informer ***ret,
                             size_t *ret_n) {
        koc_informer **v = NULL;
        size_t n = 0;
        int r = 0;
        pthread_mutex_lock(&cache->lock);
        for (koc_informer *i = cache->informers; i && r == 0; i = i->next) {
                if (!koc__streq_null(i->res.group, res->group) ||
                    !koc__streq_null(i->res.resource, res->resource))
                        continue;
                koc_informer **nv = realloc(v, (n + 1) * sizeof *nv);
                if (!nv) {
                        r = -ENOMEM;
                        break;
                }
                v = nv;
                i->ref++;
                v[n++] = i;
        }
        pthread_mutex_unlock(&cache->lock);
        if (r < 0) {
                for (size_t k = 0; k < n; k++)
                        koc__informer_unref(v[k]);
                free(v);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int koc__informer_add_handler(koc_informer *inf, const koc_informer_handler *h, void *userdata) {
        handler_slot *n = realloc(inf->handlers, (inf->n_handlers + 1) * sizeof *n);
        if (!n)
                return -ENOMEM;
        inf->handlers = n;
        n[inf->n_handlers++] = (handler_slot){*h, userdata};
        return 0;
}

void koc__informer_remove_handlers(koc_informer *inf, void *userdata) {
        size_t j = 0;
        for (size_t i = 0; i < inf->n_handlers; i++)
                if (inf->handlers[i].userdata != userdata)
                        inf->handlers[j++] = inf->handlers[i];
        inf->n_handlers = j;
}

koc_store *koc__informer_get_store(koc_informer *inf) {
        return inf->store;
}

bool koc__informer_has_synced(koc_informer *inf) {
        return atomic_load(&inf->synced);
}

const koc_resource *koc__informer_get_resource(koc_informer *inf) {
        return &inf->res;
}

const char *koc__informer_get_namespace(koc_informer *inf) {
        return inf->namespace_;
}

const koc_selector *koc__informer_get_selector(koc_informer *inf) {
        return inf->selector;
}

bool koc__informer_has_selectors(koc_informer *inf) {
        return inf->label_selector || inf->field_selector;
}

const char *koc__informer_get_field_selector(koc_informer *inf) {
        return inf->field_selector;
}

bool koc__informer_is_metadata_only(koc_informer *inf) {
        return inf->opts.metadata_only;
}

void koc__informer_get_stats(koc_informer *inf, struct koc_reflector_stats *ret) {
        koc__reflector_get_stats(inf->reflector, ret);
}

static const char *json_label(const char *key, void *userdata) {
        const cJSON *labels = userdata;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(labels, key);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

void koc__informer_apply_write(koc_informer *inf, cJSON *obj) {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(md, "namespace");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(md, "name");
        char key[512];

        if (!cJSON_IsString(name) ||
            koc_object_key_format(cJSON_IsString(ns) ? ns->valuestring : NULL, name->valuestring,
                                  key, sizeof key) < 0)
                return;
        if (inf->namespace_ && (!cJSON_IsString(ns) || strcmp(ns->valuestring, inf->namespace_)))
                return;
        koc_object *cur = koc__store_get(inf->store, key);
        bool cached = cur != NULL;
        koc_object_unref(cur);
        /* The watch may report a deletion before the answer of the write
         * that led to it arrives (the real API server does so on finalizer
         * removal): an answer not newer than the deletion is history. */
        const char *dead = cached ? NULL : koc__strmap_get(&inf->tombstones, key);
        if (dead && koc__rv_compare(meta_rv(obj), dead) != KOC_RV_NEWER)
                return;
        bool matches = koc__selector_matches(inf->selector, json_label,
                                             cJSON_GetObjectItemCaseSensitive(md, "labels"));
        /* A field selector cannot be evaluated here: only objects the informer
         * already holds are refreshed then. */
        if (inf->field_selector && !cached)
                return;
        if (!matches) {
                /* The write moved the object out of this informer's view. */
                if (cached)
                        delete_and_notify(inf, key, meta_rv(obj), NULL);
                return;
        }
        upsert_and_notify(inf, obj);
}

void koc__informer_apply_delete(koc_informer *inf, const char *key, const char *rv) {
        delete_and_notify(inf, key, rv, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

struct koc_object {
        atomic_uint ref;
        char *key;
        char *namespace_; /* "" for cluster-scoped objects */
        char *name;
        char *resource_version;
        char *uid;
        char **labels; /* key, value, key, value, ... */
        size_t n_labels;
        char *json;
        size_t json_len;
};

struct koc_index_values {
        char **v;
        size_t n;
};

typedef struct store_index {
        char *name;
        koc_index_func_t fn;
        void *userdata;
        koc_destroy_t destroy;
        strmap values; /* value -> strmap of keys (value: the entry) */
} store_index;

typedef struct store_entry {
        koc_object *obj;
        uint64_t gen;
        struct koc_index_values *values; /* one per index */
} store_entry;

struct koc_store {
        pthread_rwlock_t lock;
        strmap entries;
        store_index *indexes;
        size_t n_indexes;
        koc_transform_t transform;
        void *transform_userdata;
        koc_destroy_t transform_destroy;
        uint64_t gen;
        size_t bytes;
};

/* --- objects ---------------------------------------------------------------------- */

KOC_EXPORT koc_object *koc_object_ref(koc_object *o) {
        if (o)
                atomic_fetch_add(&o->ref, 1);
        return o;
}

KOC_EXPORT koc_object *koc_object_unref(koc_object *o) {
        if (!o || atomic_fetch_sub(&o->ref, 1) != 1)
                return NULL;
        free(o->key);
        free(o->namespace_);
        free(o->name);
        free(o->resource_version);
        free(o->uid);
        for (size_t i = 0; i < 2 * o->n_labels; i++)
                free(o->labels[i]);
        free(o->labels);
        cJSON_free(o->json);
        free(o);
        return NULL;
}

KOC_EXPORT const char *koc_object_get_key(const koc_object *o) {
        return o->key;
}
KOC_EXPORT const char *koc_object_get_namespace(const koc_object *o) {
        return o->namespace_;
}
KOC_EXPORT const char *koc_object_get_name(const koc_object *o) {
        return o->name;
}
KOC_EXPORT const char *koc_object_get_resource_version(const koc_object *o) {
        return o->resource_version;
}
KOC_EXPORT const char *koc_object_get_uid(const koc_object *o) {
        return o->uid;
}

KOC_EXPORT const char *koc_object_get_label(const koc_object *o, const char *key) {
        for (size_t i = 0; i < o->n_labels; i++)
                if (strcmp(o->labels[2 * i], key) == 0)
                        return o->labels[2 * i + 1];
        return NULL;
}

KOC_EXPORT const char *koc_object_get_json(const koc_object *o, size_t *ret_len) {
        if (ret_len)
                *ret_len = o->json_len;
        return o->json;
}

KOC_EXPORT int koc_object_parse(const koc_object *o, cJSON **ret) {
        cJSON *j = cJSON_ParseWithLength(o->json, o->json_len);
        if (!j)
                return -ENOMEM; /* the bytes were printed by cJSON itself */
        *ret = j;
        return 0;
}

KOC_EXPORT void koc_object_list_free(koc_object **list, size_t n) {
        for (size_t i = 0; list && i < n; i++)
                koc_object_unref(list[i]);
        free(list);
}

static const char *str_field(const cJSON *o, const char *name) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

KOC_EXPORT int koc_object_key_format(const char *namespace_, const char *name, char *buf,
                                     size_t size) {
        int n = namespace_ && *namespace_ ? snprintf(buf, size, "%s/%s", namespace_, name)
                                          : snprintf(buf, size, "%s", name);
        return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Deletes every member called name: a hostile body may give one twice, and
 * cJSON's lookups find only the first. */
static void delete_all(cJSON *o, const char *name) {
        while (cJSON_IsObject(o) && cJSON_GetObjectItemCaseSensitive(o, name))
                cJSON_DeleteItemFromObjectCaseSensitive(o, name);
}

/* The fields that only cost memory in a controller's cache, every copy of
 * them in metadata. */
static void default_strip(cJSON *obj) {
        cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata"), *c;
        delete_all(md, "managedFields");
        cJSON_ArrayForEach(c, (cJSON_IsObject(md) ? md : NULL)) {
                if (c->string && strcmp(c->string, "annotations") == 0)
                        delete_all(c, "kubectl.kubernetes.io/last-applied-configuration");
        }
}

static char *dup_or_empty(const char *s) {
        return strdup(s ? s : "");
}

/* The record's own fields, from the object as the API server sent it. */
static bool fill_record(koc_object *o, const cJSON *md, const char *name, const char *ns) {
        size_t klen = strlen(name) + (ns ? strlen(ns) : 0) + 2;
        o->key = malloc(klen);
        o->namespace_ = dup_or_empty(ns);
        o->name = strdup(name);
        o->resource_version = dup_or_empty(str_field(md, "resourceVersion"));
        o->uid = dup_or_empty(str_field(md, "uid"));
        if (!o->key || !o->namespace_ || !o->name || !o->resource_version || !o->uid)
                return false;
        koc_object_key_format(ns, name, o->key, klen);
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(md, "labels");
        size_t n = 0;
        const cJSON *l;
        cJSON_ArrayForEach(l, labels) if (cJSON_IsString(l)) n++;
        if (n == 0)
                return true;
        o->labels = calloc(2 * n, sizeof *o->labels);
        if (!o->labels)
                return false;
        cJSON_ArrayForEach(l, labels) {
                if (!cJSON_IsString(l))
                        continue;
                o->labels[2 * o->n_labels] = strdup(l->string);
                o->labels[2 * o->n_labels + 1] = strdup(l->valuestring);
                o->n_labels++;
                if (!o->labels[2 * o->n_labels - 2] || !o->labels[2 * o->n_labels - 1])
                        return false;
        }
        return true;
}

/* The key, name, namespace, resourceVersion, uid and labels are read before
 * the transform runs: it may rebuild or drop metadata (the strings would be
 * freed under us), and the cache's bookkeeping (keys, the newer-only rule,
 * selectors) must follow the API server's object, not the trimmed copy. */
int koc__store_make_object(koc_store *s, cJSON *obj, koc_object **ret) {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        const char *name = str_field(md, "name");
        const char *ns = str_field(md, "namespace");

        if (!name || !*name)
                return -EINVAL;
        koc_object *o = calloc(1, sizeof *o);
        if (!o)
                return -ENOMEM;
        atomic_init(&o->ref, 1);
        bool ok = fill_record(o, md, name, ns);
        if (ok) {
                default_strip(obj);
                if (s && s->transform)
                        s->transform(obj, s->transform_userdata);
                o->json = cJSON_PrintUnformatted(obj);
                ok = o->json != NULL;
        }
        if (!ok) {
                koc_object_unref(o);
                return -ENOMEM;
        }
        o->json_len = strlen(o->json);
        *ret = o;
        return 0;
}

/* --- index values ------------------------------------------------------------------ */

KOC_EXPORT int koc_index_values_add(koc_index_values *out, const char *value) {
        if (!out || !value)
                return -EINVAL;
        for (size_t i = 0; i < out->n; i++)
                if (strcmp(out->v[i], value) == 0)
                        return 0;
        char **nv = realloc(out->v, (out->n + 1) * sizeof *nv);
        if (!nv)
                return -ENOMEM;
        out->v = nv;
        if (!(out->v[out->n] = strdup(value)))
                return -ENOMEM;
        out->n++;
        return 0;
}

static void values_clear(struct koc_index_values *v) {
        for (size_t i = 0; i < v->n; i++)
                free(v->v[i]);
        free(v->v);
        *v = (struct koc_index_values){0};
}

/* --- the store --------------------------------------------------------------------- */

int koc__store_new(koc_store **ret) {
        koc_store *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        pthread_rwlock_init(&s->lock, NULL);
        *ret = s;
        return 0;
}

static void entry_free(koc_store *s, store_entry *e) {
        for (size_t i = 0; e->values && i < s->n_indexes; i++)
                values_clear(&e->values[i]);
        free(e->values);
        koc_object_unref(e->obj);
        free(e);
}

koc_store *koc__store_free(koc_store *s) {
        if (!s)
                return NULL;
        size_t it;
        for (strmap_entry *e = koc__strmap_first(&s->entries, &it); e;
             e = koc__strmap_next(&s->entries, e, &it))
                entry_free(s, e->value);
        koc__strmap_clear(&s->entries);
        for (size_t i = 0; i < s->n_indexes; i++) {
                size_t j;
                strmap *vals = &s->indexes[i].values;
                for (strmap_entry *e = koc__strmap_first(vals, &j); e;
                     e = koc__strmap_next(vals, e, &j)) {
                        koc__strmap_clear(e->value);
                        free(e->value);
                }
                koc__strmap_clear(vals);
                free(s->indexes[i].name);
                if (s->indexes[i].destroy)
                        s->indexes[i].destroy(s->indexes[i].userdata);
        }
        free(s->indexes);
        if (s->transform_destroy)
                s->transform_destroy(s->transform_userdata);
        pthread_rwlock_destroy(&s->lock);
        free(s);
        return NULL;
}

void koc__store_set_transform(koc_store *s, koc_transform_t fn, void *userdata,
                              koc_destroy_t destroy) {
        /* The previous userdata is released when it is replaced, as the
         * leader's and manager's callbacks are. */
        if (s->transform_destroy && s->transform_userdata != userdata)
                s->transform_destroy(s->transform_userdata);
        s->transform = fn;
        s->transform_userdata = userdata;
        s->transform_destroy = destroy;
}

int koc__store_add_index(koc_store *s, const char *name, koc_index_func_t fn, void *userdata,
                         koc_destroy_t destroy) {
        if (s->entries.size > 0)
                return -EBUSY;
        for (size_t i = 0; i < s->n_indexes; i++)
                if (strcmp(s->indexes[i].name, name) == 0)
                        return -EEXIST;
        store_index *n = realloc(s->indexes, (s->n_indexes + 1) * sizeof *n);
        if (!n)
                return -ENOMEM;
        s->indexes = n;
        n[s->n_indexes] = (store_index){
                .name = strdup(name), .fn = fn, .userdata = userdata, .destroy = destroy};
        if (!n[s->n_indexes].name)
                return -ENOMEM;
        s->n_indexes++;
        return 0;
}

int koc__resource_version_newer(const char *a, const char *b) {
        if (!a || !b || !*a || !*b || strspn(a, "0123456789") != strlen(a) ||
            strspn(b, "0123456789") != strlen(b))
                return -1;
        while (*a == '0' && a[1])
                a++;
        while (*b == '0' && b[1])
                b++;
        size_t la = strlen(a), lb = strlen(b);
        if (la != lb)
                return la > lb;
        return strcmp(a, b) > 0;
}

/* Lock held for writing. */
static void index_unlink(koc_store *s, store_entry *e) {
        for (size_t i = 0; e->values && i < s->n_indexes; i++)
                for (size_t j = 0; j < e->values[i].n; j++) {
                        strmap *keys = koc__strmap_get(&s->indexes[i].values, e->values[i].v[j]);
                        if (!keys)
                                continue;
                        koc__strmap_remove(keys, e->obj->key);
                        if (keys->size == 0) {
                                koc__strmap_remove(&s->indexes[i].values, e->values[i].v[j]);
                                koc__strmap_clear(keys);
                                free(keys);
                        }
                }
}

static int index_link(koc_store *s, store_entry *e) {
        for (size_t i = 0; e->values && i < s->n_indexes; i++)
                for (size_t j = 0; j < e->values[i].n; j++) {
                        strmap *keys = koc__strmap_get(&s->indexes[i].values, e->values[i].v[j]);
                        if (!keys) {
                                keys = calloc(1, sizeof *keys);
                                if (!keys || koc__strmap_put(&s->indexes[i].values,
                                                             e->values[i].v[j], keys, NULL) < 0) {
                                        free(keys);
                                        return -ENOMEM;
                                }
                        }
                        if (koc__strmap_put(keys, e->obj->key, e, NULL) < 0)
                                return -ENOMEM;
                }
        return 0;
}

static int compute_values(koc_store *s, const cJSON *obj, store_entry *e) {
        if (s->n_indexes == 0)
                return 0;
        e->values = calloc(s->n_indexes, sizeof *e->values);
        if (!e->values)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_indexes; i++) {
                int r = s->indexes[i].fn(obj, &e->values[i], s->indexes[i].userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

int koc__store_upsert(koc_store *s, cJSON *obj, unsigned flags, koc_object **ret_old,
                      koc_object **ret_new) {
        koc_object *o = NULL;
        int r = koc__store_make_object(s, obj, &o);
        if (r < 0)
                return r;

        /* Only the loop thread writes, so reading the old entry without the
         * lock is safe here; the lock is for the readers. */
        store_entry *old = koc__strmap_get(&s->entries, o->key);
        if (old && (flags & KOC_STORE_ONLY_NEWER) &&
            (strcmp(old->obj->resource_version, o->resource_version) == 0 ||
             koc__resource_version_newer(old->obj->resource_version, o->resource_version) == 1)) {
                old->gen = s->gen;
                koc_object_unref(o);
                return 0;
        }
        store_entry *e = calloc(1, sizeof *e);
        if (!e) {
                koc_object_unref(o);
                return -ENOMEM;
        }
        e->obj = o;
        e->gen = s->gen;
        r = compute_values(s, obj, e);
        if (r < 0) {
                entry_free(s, e);
                return r;
        }

        pthread_rwlock_wrlock(&s->lock);
        if (old)
                index_unlink(s, old);
        r = koc__strmap_put(&s->entries, o->key, e, NULL);
        if (r >= 0)
                r = index_link(s, e);
        if (r < 0) {
                /* Out of memory half-way: drop the key entirely rather than
                 * leave indexes that disagree with the records; the next
                 * event or re-list brings it back. */
                index_unlink(s, e);
                koc__strmap_remove(&s->entries, o->key);
        }
        if (r >= 0)
                s->bytes += o->json_len;
        if (old)
                s->bytes -= old->obj->json_len;
        pthread_rwlock_unlock(&s->lock);

        if (ret_old)
                *ret_old = old ? koc_object_ref(old->obj) : NULL;
        if (ret_new && r >= 0)
                *ret_new = koc_object_ref(o);
        if (old)
                entry_free(s, old);
        if (r < 0) {
                entry_free(s, e);
                return r;
        }
        return 1;
}

int koc__store_delete(koc_store *s, const char *key, koc_object **ret_old) {
        store_entry *e = koc__strmap_get(&s->entries, key);
        if (!e)
                return 0;
        pthread_rwlock_wrlock(&s->lock);
        index_unlink(s, e);
        koc__strmap_remove(&s->entries, key);
        s->bytes -= e->obj->json_len;
        pthread_rwlock_unlock(&s->lock);
        if (ret_old)
                *ret_old = koc_object_ref(e->obj);
        entry_free(s, e);
        return 1;
}

void koc__store_replace_begin(koc_store *s) {
        s->gen++;
}

void koc__store_replace_end(koc_store *s, void (*removed)(koc_object *old, void *userdata),
                            void *userdata) {
        char **keys = NULL;
        size_t n = 0, it;

        for (strmap_entry *e = koc__strmap_first(&s->entries, &it); e;
             e = koc__strmap_next(&s->entries, e, &it)) {
                store_entry *se = e->value;
                if (se->gen == s->gen)
                        continue;
                char **nk = realloc(keys, (n + 1) * sizeof *nk);
                if (!nk)
                        break; /* the rest stays until the next re-list */
                keys = nk;
                keys[n++] = e->key;
        }
        for (size_t i = 0; i < n; i++) {
                koc_object *old = NULL;
                char *k = strdup(keys[i]);
                if (k && koc__store_delete(s, k, &old) > 0 && removed)
                        removed(old, userdata);
                koc_object_unref(old);
                free(k);
        }
        free(keys);
}

koc_object *koc__store_get(koc_store *s, const char *key) {
        pthread_rwlock_rdlock(&s->lock);
        store_entry *e = koc__strmap_get(&s->entries, key);
        koc_object *o = e ? koc_object_ref(e->obj) : NULL;
        pthread_rwlock_unlock(&s->lock);
        return o;
}

static const char *lookup_label(const char *key, void *userdata) {
        return koc_object_get_label(userdata, key);
}

static int push(koc_object ***list, size_t *n, size_t *cap, koc_object *o) {
        if (*n == *cap) {
                size_t c = *cap ? *cap * 2 : 16;
                koc_object **nl = realloc(*list, c * sizeof *nl);
                if (!nl)
                        return -ENOMEM;
                *list = nl;
                *cap = c;
        }
        (*list)[(*n)++] = koc_object_ref(o);
        return 0;
}

int koc__store_list(koc_store *s, const char *namespace_, const koc_selector *sel,
                    koc_object ***ret, size_t *ret_n) {
        koc_object **list = NULL;
        size_t n = 0, cap = 0, it;
        int r = 0;

        pthread_rwlock_rdlock(&s->lock);
        for (strmap_entry *e = koc__strmap_first(&s->entries, &it); e && r == 0;
             e = koc__strmap_next(&s->entries, e, &it)) {
                koc_object *o = ((store_entry *)e->value)->obj;
                if (namespace_ && strcmp(o->namespace_, namespace_) != 0)
                        continue;
                if (!koc__selector_matches(sel, lookup_label, o))
                        continue;
                r = push(&list, &n, &cap, o);
        }
        pthread_rwlock_unlock(&s->lock);
        if (r < 0) {
                koc_object_list_free(list, n);
                return r;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

int koc__store_list_index(koc_store *s, const char *index, const char *value, koc_object ***ret,
                          size_t *ret_n) {
        koc_object **list = NULL;
        size_t n = 0, cap = 0, it;
        int r = -ENOENT;

        pthread_rwlock_rdlock(&s->lock);
        for (size_t i = 0; i < s->n_indexes; i++) {
                if (strcmp(s->indexes[i].name, index) != 0)
                        continue;
                r = 0;
                strmap *keys = koc__strmap_get(&s->indexes[i].values, value);
                for (strmap_entry *e = keys ? koc__strmap_first(keys, &it) : NULL; e && r == 0;
                     e = koc__strmap_next(keys, e, &it))
                        r = push(&list, &n, &cap, ((store_entry *)e->value)->obj);
        }
        pthread_rwlock_unlock(&s->lock);
        if (r < 0) {
                koc_object_list_free(list, n);
                return r;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

int koc__store_keys(koc_store *s, char ***ret, size_t *ret_n) {
        size_t n = 0, it;

        pthread_rwlock_rdlock(&s->lock);
        char **keys = calloc(s->entries.size + 1, sizeof *keys);
        for (strmap_entry *e = keys ? koc__strmap_first(&s->entries, &it) : NULL; e;
             e = koc__strmap_next(&s->entries, e, &it))
                if ((keys[n] = strdup(e->key)))
                        n++;
        pthread_rwlock_unlock(&s->lock);
        if (!keys)
                return -ENOMEM;
        *ret = keys;
        *ret_n = n;
        return 0;
}

size_t koc__store_count(koc_store *s) {
        pthread_rwlock_rdlock(&s->lock);
        size_t n = s->entries.size;
        pthread_rwlock_unlock(&s->lock);
        return n;
}

size_t koc__store_bytes(koc_store *s) {
        pthread_rwlock_rdlock(&s->lock);
        size_t n = s->bytes;
        pthread_rwlock_unlock(&s->lock);
        return n;
}

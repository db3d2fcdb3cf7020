/* SPDX-License-Identifier: Apache-2.0 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/resource-version.h"
#include "core/util.h"
#include "core/strmap.h"

/* One allocation per record: the header, then the strings, each
 * NUL-terminated, at the offsets the header gives (key, namespace,
 * resourceVersion, uid, the labels as key\0value\0 pairs, and the minified
 * JSON last).  The name is the key's tail.  A record is immutable once made,
 * so readers need no lock to use one they hold a reference to. */
struct koc_object {
        atomic_uint ref;
        uint32_t hash; /* of the key, for the store's table */
        uint32_t json_len;
        uint32_t n_labels;
        uint32_t name_off, ns_off, rv_off, uid_off, labels_off, json_off;
        char data[];
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

/* A slot of the store's open-addressing table (linear probing, at most 3/4
 * full): the record, its index values and the re-list generation, in place,
 * with no allocation of its own and no copy of the key (the record has it).
 * Slots move when the table grows or an entry is removed, so nothing keeps
 * a pointer to one: the indexes map to the records. */
typedef struct store_entry {
        koc_object *obj;                 /* NULL: free */
        struct koc_index_values *values; /* one per index, or NULL */
        uint64_t gen;
} store_entry;

typedef struct entry_table {
        store_entry *slots;
        size_t cap; /* a power of two, or 0 */
        size_t size;
} entry_table;

/* A listed object.  shared: obj is the cached record itself (the list had
 * the same resourceVersion and the same bytes), referenced rather than
 * copied, and values were not computed (they are the cached entry's, or
 * computed at the end if that entry changed meanwhile). */
typedef struct staged_entry {
        koc_object *obj;
        struct koc_index_values *values;
        bool shared;
} staged_entry;

/* A key this process deleted while a re-list was in progress (a DELETE's
 * answer): the list's snapshot may predate the deletion and still hold it.
 * gen: the store's generation at the deletion; rv: the deletion's
 * resourceVersion ("" when the answer had none); uid: the deleted record's
 * ("" when it was not cached). */
typedef struct deleted_key {
        uint64_t gen;
        char *uid;
        char rv[];
} deleted_key;

struct koc_store {
        pthread_rwlock_t lock;
        entry_table entries;
        store_index *indexes;
        size_t n_indexes;
        koc_transform_t transform;
        void *transform_userdata;
        koc_destroy_t transform_destroy;
        uint64_t gen;
        size_t bytes;
        /* The re-list in progress (between replace_begin and replace_end or
         * replace_abort): its generation and the records it listed, not in
         * the table yet. */
        bool replacing;
        bool live; /* replace_begin_live: listed records go to the table at once */
        uint64_t list_gen;
        staged_entry *staged;
        size_t n_staged, staged_cap, staged_bytes;
        size_t staged_copied; /* bytes of the staged records that are copies */
        size_t n_live;        /* objects a live re-list applied so far */
        strmap deleted;       /* key -> deleted_key, while replacing */
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
        free(o);
        return NULL;
}

KOC_EXPORT const char *koc_object_get_key(const koc_object *o) {
        return o->data;
}
KOC_EXPORT const char *koc_object_get_namespace(const koc_object *o) {
        return o->data + o->ns_off;
}
KOC_EXPORT const char *koc_object_get_name(const koc_object *o) {
        return o->data + o->name_off;
}
KOC_EXPORT const char *koc_object_get_resource_version(const koc_object *o) {
        return o->data + o->rv_off;
}
KOC_EXPORT const char *koc_object_get_uid(const koc_object *o) {
        return o->data + o->uid_off;
}

KOC_EXPORT const char *koc_object_get_label(const koc_object *o, const char *key) {
        const char *p = o->data + o->labels_off;
        for (uint32_t i = 0; i < o->n_labels; i++) {
                const char *v = p + strlen(p) + 1;
                if (strcmp(p, key) == 0)
                        return v;
                p = v + strlen(v) + 1;
        }
        return NULL;
}

KOC_EXPORT const char *koc_object_get_json(const koc_object *o, size_t *ret_len) {
        if (ret_len)
                *ret_len = o->json_len;
        return o->data + o->json_off;
}

KOC_EXPORT int koc_object_parse(const koc_object *o, cJSON **ret) {
        cJSON *j = cJSON_ParseWithLength(o->data + o->json_off, o->json_len);
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

/* The fields that only cost memory in a controller's cache, every copy of
 * them in metadata. */
static void default_strip(cJSON *obj) {
        cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata"), *c;
        koc__json_delete_all(md, "managedFields");
        cJSON_ArrayForEach(c, (cJSON_IsObject(md) ? md : NULL)) {
                if (c->string && strcmp(c->string, "annotations") == 0)
                        koc__json_delete_all(c, "kubectl.kubernetes.io/last-applied-configuration");
        }
}

static uint32_t hash_key(const char *s) {
        return (uint32_t)koc__strmap_hash(s);
}

/* Appends a string and its NUL at *off. */
static uint32_t put_str(char *data, size_t *off, const char *s, size_t n) {
        uint32_t at = (uint32_t)*off;
        memcpy(data + *off, s, n);
        data[*off + n] = '\0';
        *off += n + 1;
        return at;
}

/* The record's own fields, from the object as the API server sent it. */
/* The key, name, namespace, resourceVersion, uid and labels are read before
 * the transform runs: it may rebuild or drop metadata (the strings would be
 * freed under us), and the cache's bookkeeping (keys, the newer-only rule,
 * selectors) must follow the API server's object, not the trimmed copy.
 * They are copied into the record's header first; the minified JSON of the
 * transformed object follows them in the same block. */
int koc__store_make_object(koc_store *s, cJSON *obj, koc_object **ret) {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        const char *name = str_field(md, "name");

        if (!name || !*name)
                return -EINVAL;
        const char *ns = str_field(md, "namespace");
        const char *rv = str_field(md, "resourceVersion");
        const char *uid = str_field(md, "uid");
        ns = ns ? ns : "";
        rv = rv ? rv : "";
        uid = uid ? uid : "";
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(md, "labels"), *l;

        size_t nslen = strlen(ns), namelen = strlen(name);
        size_t keylen = (nslen ? nslen + 1 : 0) + namelen;
        size_t head = keylen + 1 + nslen + 1 + strlen(rv) + 1 + strlen(uid) + 1;
        uint32_t n_labels = 0;
        cJSON_ArrayForEach(l, labels) if (cJSON_IsString(l)) {
                head += strlen(l->string) + 1 + strlen(l->valuestring) + 1;
                n_labels++;
        }
        if (head > UINT32_MAX)
                return -E2BIG;
        /* The head and the JSON are built in buffers on the stack when they
         * fit (nearly always), so that the record is the only allocation:
         * temporaries freed between records would leave the heap holed
         * with free chunks of a JSON's size, one per object cached. */
        char hbuf[1024], jbuf[16384];
        char *h = head <= sizeof hbuf ? hbuf : malloc(head);
        if (!h)
                return -ENOMEM;
        size_t off = 0;
        if (nslen) {
                memcpy(h, ns, nslen);
                h[nslen] = '/';
                off = nslen + 1;
        }
        uint32_t name_off = (uint32_t)off;
        put_str(h, &off, name, namelen);
        uint32_t ns_off = put_str(h, &off, ns, nslen);
        uint32_t rv_off = put_str(h, &off, rv, strlen(rv));
        uint32_t uid_off = put_str(h, &off, uid, strlen(uid));
        uint32_t labels_off = (uint32_t)off;
        cJSON_ArrayForEach(l, labels) if (cJSON_IsString(l)) {
                put_str(h, &off, l->string, strlen(l->string));
                put_str(h, &off, l->valuestring, strlen(l->valuestring));
        }

        /* From here on md and the strings above may be gone. */
        default_strip(obj);
        if (s && s->transform)
                s->transform(obj, s->transform_userdata);
        /* cJSON wants 5 bytes more than it prints. */
        char *json = cJSON_PrintPreallocated(obj, jbuf, (int)sizeof jbuf - 5, false)
                             ? jbuf
                             : cJSON_PrintUnformatted(obj);
        if (!json) {
                if (h != hbuf)
                        free(h);
                return -ENOMEM;
        }
        size_t jlen = strlen(json);
        koc_object *o = head + jlen + 1 > UINT32_MAX ? NULL : malloc(sizeof *o + head + jlen + 1);
        if (!o) {
                int r = head + jlen + 1 > UINT32_MAX ? -E2BIG : -ENOMEM;
                if (h != hbuf)
                        free(h);
                if (json != jbuf)
                        cJSON_free(json);
                return r;
        }
        memcpy(o->data, h, head);
        if (h != hbuf)
                free(h);
        o->name_off = name_off;
        o->ns_off = ns_off;
        o->rv_off = rv_off;
        o->uid_off = uid_off;
        o->labels_off = labels_off;
        o->n_labels = n_labels;
        off = head;
        o->json_off = put_str(o->data, &off, json, jlen);
        o->json_len = (uint32_t)jlen;
        if (json != jbuf)
                cJSON_free(json);
        atomic_init(&o->ref, 1);
        o->hash = hash_key(o->data);
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

/* --- the entry table (loop thread writes with the write lock, readers hold
 * the read lock) ------------------------------------------------------------------ */

static store_entry *table_find(const entry_table *t, const char *key) {
        if (t->cap == 0)
                return NULL;
        size_t mask = t->cap - 1;
        for (size_t i = hash_key(key) & mask;; i = (i + 1) & mask) {
                store_entry *e = &t->slots[i];
                if (!e->obj)
                        return NULL;
                if (strcmp(e->obj->data, key) == 0)
                        return e;
        }
}

/* A free slot for a key that is not in the table; the table has room. */
static store_entry *table_free_slot(entry_table *t, uint32_t hash) {
        size_t mask = t->cap - 1, i = hash & mask;
        while (t->slots[i].obj)
                i = (i + 1) & mask;
        return &t->slots[i];
}

/* Makes room for one more entry (load at most 3/4). */
static int table_reserve(entry_table *t) {
        if ((t->size + 1) * 4 <= t->cap * 3)
                return 0;
        size_t cap = t->cap ? t->cap * 2 : 16;
        store_entry *slots = calloc(cap, sizeof *slots);
        if (!slots)
                return -ENOMEM;
        entry_table n = {slots, cap, t->size};
        for (size_t i = 0; i < t->cap; i++)
                if (t->slots[i].obj)
                        *table_free_slot(&n, t->slots[i].obj->hash) = t->slots[i];
        free(t->slots);
        *t = n;
        return 0;
}

/* Removes the entry at e (linear probing's backward shift: no tombstones). */
static void table_remove(entry_table *t, store_entry *e) {
        size_t mask = t->cap - 1, i = (size_t)(e - t->slots);
        for (size_t j = (i + 1) & mask; t->slots[j].obj; j = (j + 1) & mask) {
                size_t home = t->slots[j].obj->hash & mask;
                /* j's entry may move to i when its home is not in (i, j]. */
                bool in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
                if (!in_range) {
                        t->slots[i] = t->slots[j];
                        i = j;
                }
        }
        t->slots[i] = (store_entry){0};
        t->size--;
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

static void values_free(koc_store *s, struct koc_index_values *values) {
        for (size_t i = 0; values && i < s->n_indexes; i++)
                values_clear(&values[i]);
        free(values);
}

static void staged_clear(koc_store *s);
static void deleted_forget(koc_store *s, const char *key);

koc_store *koc__store_free(koc_store *s) {
        if (!s)
                return NULL;
        staged_clear(s);
        for (size_t i = 0; i < s->entries.cap; i++)
                if (s->entries.slots[i].obj) {
                        values_free(s, s->entries.slots[i].values);
                        koc_object_unref(s->entries.slots[i].obj);
                }
        free(s->entries.slots);
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

/* The one place the store orders resourceVersions (core's comparison):
 * 1 when a is newer than b, 0 when not, -1 when they cannot be ordered. */
static int rv_newer(const char *a, const char *b) {
        switch (koc__rv_compare(a, b)) {
        case KOC_RV_NEWER:
                return 1;
        case KOC_RV_UNORDERED:
                return -1;
        default:
                return 0;
        }
}

/* Lock held for writing.  Index maps: value -> (key -> record). */
static void index_unlink(koc_store *s, koc_object *o, struct koc_index_values *values) {
        for (size_t i = 0; values && i < s->n_indexes; i++)
                for (size_t j = 0; j < values[i].n; j++) {
                        strmap *keys = koc__strmap_get(&s->indexes[i].values, values[i].v[j]);
                        if (!keys)
                                continue;
                        koc__strmap_remove(keys, o->data);
                        if (keys->size == 0) {
                                koc__strmap_remove(&s->indexes[i].values, values[i].v[j]);
                                koc__strmap_clear(keys);
                                free(keys);
                        }
                }
}

static int index_link(koc_store *s, koc_object *o, struct koc_index_values *values) {
        for (size_t i = 0; values && i < s->n_indexes; i++)
                for (size_t j = 0; j < values[i].n; j++) {
                        strmap *keys = koc__strmap_get(&s->indexes[i].values, values[i].v[j]);
                        if (!keys) {
                                keys = calloc(1, sizeof *keys);
                                if (!keys || koc__strmap_put(&s->indexes[i].values, values[i].v[j],
                                                             keys, NULL) < 0) {
                                        free(keys);
                                        return -ENOMEM;
                                }
                        }
                        if (koc__strmap_put(keys, o->data, o, NULL) < 0)
                                return -ENOMEM;
                }
        return 0;
}

static int compute_values(koc_store *s, const cJSON *obj, struct koc_index_values **ret) {
        *ret = NULL;
        if (s->n_indexes == 0)
                return 0;
        struct koc_index_values *v = calloc(s->n_indexes, sizeof *v);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_indexes; i++) {
                int r = s->indexes[i].fn(obj, &v[i], s->indexes[i].userdata);
                if (r < 0) {
                        values_free(s, v);
                        return r;
                }
        }
        *ret = v;
        return 0;
}

/* Stores o (with its index values, both taken over) in place of old (NULL:
 * a new key) under the write lock.  1 and *ret_old (a reference, may be
 * NULL) on success, a negative errno (o and values freed) on failure. */
static int store_commit(koc_store *s, store_entry *old, koc_object *o,
                        struct koc_index_values *values, uint64_t gen, koc_object **ret_old) {
        koc_object *old_obj = NULL;
        struct koc_index_values *old_values = NULL;
        int r = 0;

        pthread_rwlock_wrlock(&s->lock);
        if (old) {
                index_unlink(s, old->obj, old->values);
                old_obj = old->obj;
                old_values = old->values;
                s->bytes -= old_obj->json_len;
                *old = (store_entry){o, values, gen};
        } else {
                r = table_reserve(&s->entries);
                if (r >= 0) {
                        *table_free_slot(&s->entries, o->hash) = (store_entry){o, values, gen};
                        s->entries.size++;
                }
        }
        if (r >= 0) {
                s->bytes += o->json_len;
                r = index_link(s, o, values);
                if (r < 0) {
                        /* Out of memory half-way: drop the key entirely rather
                         * than leave indexes that disagree with the records;
                         * the next event or re-list brings it back. */
                        index_unlink(s, o, values);
                        table_remove(&s->entries, table_find(&s->entries, o->data));
                        s->bytes -= o->json_len;
                }
        }
        pthread_rwlock_unlock(&s->lock);

        if (ret_old)
                *ret_old = koc_object_ref(old_obj);
        values_free(s, old_values);
        koc_object_unref(old_obj);
        if (r < 0) {
                values_free(s, values);
                koc_object_unref(o);
                return r;
        }
        return 1;
}

int koc__store_upsert(koc_store *s, cJSON *obj, unsigned flags, koc_object **ret_old,
                      koc_object **ret_new) {
        koc_object *o = NULL;
        int r = koc__store_make_object(s, obj, &o);
        if (r < 0)
                return r;

        /* Only the loop thread writes, so reading the old entry without the
         * lock is safe here; the lock is for the readers. */
        const char *key = koc_object_get_key(o);
        store_entry *old = table_find(&s->entries, key);
        if (old && (flags & KOC_STORE_ONLY_NEWER)) {
                const char *orv = koc_object_get_resource_version(old->obj);
                const char *nrv = koc_object_get_resource_version(o);
                /* Only an answer known to be older (or the same record)
                 * is skipped: one that cannot be ordered is taken. */
                if (strcmp(orv, nrv) == 0 || rv_newer(orv, nrv) == 1) {
                        /* Not a write: the entry keeps its generation (a
                         * re-list in progress must not take a skipped
                         * answer for a write made after it began). */
                        koc_object_unref(o);
                        return 0;
                }
        }
        struct koc_index_values *values = NULL;
        r = compute_values(s, obj, &values);
        if (r < 0) {
                koc_object_unref(o);
                return r;
        }
        /* A newer state of an object a live re-list already applied is
         * still listed: the end must not take it for one the list lacked. */
        uint64_t gen = s->gen;
        if (old && s->replacing && s->live && old->gen == s->list_gen + 1)
                gen = old->gen;
        koc_object_ref(o);
        r = store_commit(s, old, o, values, gen, ret_old);
        if (r > 0 && s->replacing)
                deleted_forget(s, key); /* written again since its deletion */
        if (r > 0 && ret_new)
                *ret_new = koc_object_ref(o);
        koc_object_unref(o);
        return r;
}

static void deleted_clear(koc_store *s) {
        size_t it;
        for (strmap_entry *e = koc__strmap_first(&s->deleted, &it); e;
             e = koc__strmap_next(&s->deleted, e, &it)) {
                deleted_key *d = e->value;
                free(d->uid);
                free(d);
        }
        koc__strmap_clear(&s->deleted);
}

static void deleted_forget(koc_store *s, const char *key) {
        deleted_key *d = koc__strmap_remove(&s->deleted, key);
        if (d) {
                free(d->uid);
                free(d);
        }
}

/* Notes a deletion made while a re-list is in progress.  Out of memory the
 * note is lost, and the listed object may come back until the watch reports
 * the deletion (as before the note existed). */
static void deleted_note(koc_store *s, const char *key, const char *rv, const koc_object *old) {
        rv = rv ? rv : "";
        deleted_key *d = malloc(sizeof *d + strlen(rv) + 1);
        if (!d)
                return;
        d->gen = s->gen;
        strcpy(d->rv, rv);
        d->uid = strdup(old ? koc_object_get_uid(old) : "");
        void *prev = NULL;
        if (!d->uid || koc__strmap_put(&s->deleted, key, d, &prev) < 0) {
                free(d->uid);
                free(d);
                return;
        }
        if (prev) {
                free(((deleted_key *)prev)->uid);
                free(prev);
        }
}

int koc__store_delete_at(koc_store *s, const char *key, const char *rv, koc_object **ret_old) {
        store_entry *e = table_find(&s->entries, key);
        if (s->replacing)
                deleted_note(s, key, rv, e ? e->obj : NULL);
        if (!e)
                return 0;
        koc_object *o = e->obj;
        struct koc_index_values *values = e->values;
        pthread_rwlock_wrlock(&s->lock);
        index_unlink(s, o, values);
        table_remove(&s->entries, e);
        s->bytes -= o->json_len;
        pthread_rwlock_unlock(&s->lock);
        if (ret_old)
                *ret_old = koc_object_ref(o);
        values_free(s, values);
        koc_object_unref(o);
        return 1;
}

int koc__store_delete(koc_store *s, const char *key, koc_object **ret_old) {
        return koc__store_delete_at(s, key, NULL, ret_old);
}

static void staged_clear(koc_store *s) {
        for (size_t i = 0; i < s->n_staged; i++) {
                values_free(s, s->staged[i].values);
                koc_object_unref(s->staged[i].obj);
        }
        free(s->staged);
        s->staged = NULL;
        s->n_staged = s->staged_cap = s->staged_bytes = s->staged_copied = s->n_live = 0;
        deleted_clear(s);
}

void koc__store_replace_begin(koc_store *s) {
        staged_clear(s);
        s->replacing = true;
        s->live = false;
        s->list_gen = ++s->gen;
}

void koc__store_replace_begin_live(koc_store *s) {
        koc__store_replace_begin(s);
        s->live = true;
}

void koc__store_replace_abort(koc_store *s) {
        staged_clear(s);
        s->replacing = s->live = false;
}

static bool same_record(const koc_object *a, const koc_object *b) {
        return a == b ||
               (a->json_len == b->json_len &&
                strcmp(koc_object_get_resource_version(a), koc_object_get_resource_version(b)) ==
                        0 &&
                memcmp(a->data + a->json_off, b->data + b->json_off, a->json_len) == 0);
}

int koc__store_replace_add(koc_store *s, cJSON *obj) {
        if (!s->replacing || s->live)
                return -EINVAL;
        if (s->n_staged == s->staged_cap) {
                size_t cap = s->staged_cap ? s->staged_cap * 2 : 64;
                staged_entry *n = realloc(s->staged, cap * sizeof *n);
                if (!n)
                        return -ENOMEM;
                s->staged = n;
                s->staged_cap = cap;
        }
        koc_object *o = NULL;
        int r = koc__store_make_object(s, obj, &o);
        if (r < 0)
                return r;
        /* Most objects of a re-list are what the cache holds already: those
         * stage a reference to the cached record, so that a re-list does not
         * hold a second copy of the cache until it ends. */
        const store_entry *e = table_find(&s->entries, koc_object_get_key(o));
        if (e && same_record(e->obj, o)) {
                koc_object_unref(o);
                s->staged[s->n_staged++] =
                        (staged_entry){koc_object_ref(e->obj), NULL, s->n_indexes > 0};
                s->staged_bytes += e->obj->json_len;
                return 0;
        }
        struct koc_index_values *values = NULL;
        r = compute_values(s, obj, &values);
        if (r < 0) {
                koc_object_unref(o);
                return r;
        }
        s->staged[s->n_staged++] = (staged_entry){o, values, false};
        s->staged_bytes += o->json_len;
        s->staged_copied += o->json_len;
        return 0;
}

size_t koc__store_replace_count(koc_store *s) {
        return s->n_staged + s->n_live;
}

size_t koc__store_replace_bytes(koc_store *s) {
        return s->staged_bytes;
}

size_t koc__store_replace_copied_bytes(koc_store *s) {
        return s->staged_copied;
}

static bool written_since_list(koc_store *s, const store_entry *e, const char *than_rv);
static bool deleted_since_list(koc_store *s, const koc_object *listed);
static bool keep_cached(koc_store *s, store_entry *e, const koc_object *listed_obj,
                        uint64_t listed);

/* The generation a live re-list gives what it listed: the one replace_end
 * takes (++gen), while the store's own writes keep list_gen meanwhile. */
static uint64_t live_gen(const koc_store *s) {
        return s->list_gen + 1;
}

int koc__store_replace_add_live(koc_store *s, cJSON *obj, const koc_store_replace_handlers *h,
                                void *userdata) {
        if (!s->replacing || !s->live)
                return -EINVAL;
        koc_object *o = NULL;
        int r = koc__store_make_object(s, obj, &o);
        if (r < 0)
                return r;
        uint64_t listed = live_gen(s);
        s->n_live++;
        s->staged_bytes += o->json_len;
        /* replace_end's rules for one staged record, at once. */
        store_entry *e = table_find(&s->entries, koc_object_get_key(o));
        if (keep_cached(s, e, o, listed)) {
                koc_object_unref(o);
                return 0;
        }
        struct koc_index_values *values = NULL;
        r = compute_values(s, obj, &values);
        if (r < 0) {
                koc_object_unref(o);
                return r;
        }
        s->staged_copied += o->json_len;
        koc_object *old = NULL;
        koc_object_ref(o);
        r = store_commit(s, e, o, values, listed, &old);
        if (r > 0 && h && h->changed)
                h->changed(old, o, userdata);
        koc_object_unref(old);
        koc_object_unref(o);
        return r < 0 ? r : 0;
}

/* The re-list is authoritative (client-go's Store.Replace): what it listed
 * replaces the cached record whatever their resourceVersions say (a server
 * restored from an etcd backup, or one that went back, lists objects older
 * than those cached), and what it did not list is removed.
 *
 * The exceptions are this process's own writes made while the list was in
 * progress, that is since its first request was sent (replace_begin; the
 * list's snapshot may be older than they are):
 * - read-your-own-writes: a record written since (the answer of a write,
 *   applied with the list's generation, list_gen) stays when its
 *   resourceVersion orders after the listed object's, or, for a key the list
 *   did not have, after the list's resourceVersion; the watch, which starts
 *   from the list's resourceVersion, then reports it anyway.
 *   resourceVersions that cannot be ordered (not decimal integers) give the
 *   list the last word.  A record written before the list began (an older
 *   generation) never outranks the list.
 * - a deletion since (a DELETE's answer, deleted_note) is not undone by a
 *   listed object unless that object is another one (another uid) or orders
 *   after the deletion's resourceVersion (created again since).  When they
 *   cannot be ordered (a Status answer has no resourceVersion), the deletion
 *   wins, since it was answered after the list's request went out; if the
 *   list saw the object re-created, the watch reports it again. */
static bool written_since_list(koc_store *s, const store_entry *e, const char *than_rv) {
        return e->gen == s->list_gen &&
               rv_newer(koc_object_get_resource_version(e->obj), than_rv) == 1;
}

static bool deleted_since_list(koc_store *s, const koc_object *listed) {
        const deleted_key *d = koc__strmap_get(&s->deleted, koc_object_get_key(listed));
        if (!d || d->gen != s->list_gen)
                return false;
        const char *uid = koc_object_get_uid(listed);
        if (*d->uid && *uid && strcmp(d->uid, uid) != 0)
                return false; /* another object of the same name */
        int newer = rv_newer(koc_object_get_resource_version(listed), d->rv);
        return newer != 1;
}

/* Whether the re-list leaves the cache as it is for listed_obj (e: its key's
 * record, or NULL): the record stays, marked listed, when it is this
 * process's write since the list or the same record; a key deleted since
 * the list stays deleted. */
static bool keep_cached(koc_store *s, store_entry *e, const koc_object *listed_obj,
                        uint64_t listed) {
        if (!e)
                return deleted_since_list(s, listed_obj);
        if ((e->gen != listed &&
             written_since_list(s, e, koc_object_get_resource_version(listed_obj))) ||
            same_record(e->obj, listed_obj)) {
                e->gen = listed;
                return true;
        }
        return false;
}

void koc__store_replace_end(koc_store *s, const char *list_rv,
                            const koc_store_replace_handlers *h, void *userdata) {
        if (!s->replacing)
                return;
        s->replacing = s->live = false;
        uint64_t listed = ++s->gen;
        staged_entry *staged = s->staged;
        size_t n_staged = s->n_staged;
        s->staged = NULL;
        s->n_staged = s->staged_cap = s->staged_bytes = s->staged_copied = s->n_live = 0;

        for (size_t i = 0; i < n_staged; i++) {
                koc_object *o = staged[i].obj;
                store_entry *e = table_find(&s->entries, koc_object_get_key(o));
                if (keep_cached(s, e, o, listed)) {
                        values_free(s, staged[i].values);
                        koc_object_unref(o);
                        continue;
                }
                /* A shared record whose cached entry changed meanwhile (an
                 * own write, or a deletion the list outranks) needs its index
                 * values again; out of memory it is left to the watch. */
                if (staged[i].shared) {
                        cJSON *j = NULL;
                        if (koc_object_parse(o, &j) < 0 ||
                            compute_values(s, j, &staged[i].values) < 0) {
                                cJSON_Delete(j);
                                koc_object_unref(o);
                                continue;
                        }
                        cJSON_Delete(j);
                }
                koc_object *old = NULL;
                koc_object_ref(o);
                if (store_commit(s, e, o, staged[i].values, listed, &old) > 0 && h && h->changed)
                        h->changed(old, o, userdata);
                koc_object_unref(old);
                koc_object_unref(o);
        }
        free(staged);
        deleted_clear(s);

        /* What the list did not have; references, since each removal moves
         * slots and frees records.  The array grows geometrically: a re-list
         * may drop hundreds of thousands of objects. */
        koc_object **gone = NULL;
        size_t n = 0, cap = 0;
        for (size_t i = 0; i < s->entries.cap; i++) {
                store_entry *se = &s->entries.slots[i];
                if (!se->obj || se->gen == listed || written_since_list(s, se, list_rv))
                        continue;
                if (n == cap) {
                        size_t c = cap ? cap * 2 : 64;
                        koc_object **ng = realloc(gone, c * sizeof *ng);
                        if (!ng)
                                break; /* the rest stays until the next re-list */
                        gone = ng;
                        cap = c;
                }
                gone[n++] = koc_object_ref(se->obj);
        }
        for (size_t i = 0; i < n; i++) {
                koc_object *old = NULL;
                if (koc__store_delete(s, koc_object_get_key(gone[i]), &old) > 0 && h &&
                    h->removed)
                        h->removed(old, userdata);
                koc_object_unref(old);
                koc_object_unref(gone[i]);
        }
        free(gone);
}

koc_object *koc__store_get(koc_store *s, const char *key) {
        pthread_rwlock_rdlock(&s->lock);
        store_entry *e = table_find(&s->entries, key);
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
        size_t n = 0, cap = 0;
        int r = 0;

        pthread_rwlock_rdlock(&s->lock);
        for (size_t i = 0; i < s->entries.cap && r == 0; i++) {
                koc_object *o = s->entries.slots[i].obj;
                if (!o)
                        continue;
                if (namespace_ && strcmp(koc_object_get_namespace(o), namespace_) != 0)
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
                        r = push(&list, &n, &cap, e->value);
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

bool koc__store_has_index(koc_store *s, const char *index) {
        bool found = false;
        pthread_rwlock_rdlock(&s->lock);
        for (size_t i = 0; !found && i < s->n_indexes; i++)
                found = strcmp(s->indexes[i].name, index) == 0;
        pthread_rwlock_unlock(&s->lock);
        return found;
}

int koc__store_keys(koc_store *s, char ***ret, size_t *ret_n) {
        size_t n = 0;

        pthread_rwlock_rdlock(&s->lock);
        char **keys = calloc(s->entries.size + 1, sizeof *keys);
        for (size_t i = 0; keys && i < s->entries.cap; i++)
                if (s->entries.slots[i].obj &&
                    (keys[n] = strdup(koc_object_get_key(s->entries.slots[i].obj))))
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

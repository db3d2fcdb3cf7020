/* SPDX-License-Identifier: Apache-2.0 */
#include "strmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a: keys are short ("namespace/name"), and the map is not exposed to
 * keys chosen to collide beyond what the API server lets a user name. */
size_t koc__strmap_hash(const char *s) {
        uint64_t h = UINT64_C(1469598103934665603);
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
        return (size_t)h;
}

strmap_entry *koc__strmap_find(const strmap *m, const char *key) {
        if (m->n_buckets == 0)
                return NULL;
        size_t h = koc__strmap_hash(key);
        for (strmap_entry *e = m->buckets[h & (m->n_buckets - 1)]; e; e = e->next)
                if (e->hash == h && strcmp(e->key, key) == 0)
                        return e;
        return NULL;
}

void *koc__strmap_get(const strmap *m, const char *key) {
        strmap_entry *e = koc__strmap_find(m, key);
        return e ? e->value : NULL;
}

static int grow(strmap *m) {
        size_t n = m->n_buckets ? m->n_buckets * 2 : 16;
        strmap_entry **b = calloc(n, sizeof *b);
        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_buckets; i++)
                for (strmap_entry *e = m->buckets[i], *next; e; e = next) {
                        next = e->next;
                        e->next = b[e->hash & (n - 1)];
                        b[e->hash & (n - 1)] = e;
                }
        free(m->buckets);
        m->buckets = b;
        m->n_buckets = n;
        return 0;
}

int koc__strmap_put(strmap *m, const char *key, void *value, void **ret_old) {
        strmap_entry *e = koc__strmap_find(m, key);
        if (e) {
                if (ret_old)
                        *ret_old = e->value;
                e->value = value;
                return 0;
        }
        if (m->size >= m->n_buckets && grow(m) < 0)
                return -ENOMEM;
        size_t len = strlen(key);
        e = malloc(sizeof *e + len + 1);
        if (!e)
                return -ENOMEM;
        memcpy(e->key, key, len + 1);
        e->hash = koc__strmap_hash(key);
        e->value = value;
        e->next = m->buckets[e->hash & (m->n_buckets - 1)];
        m->buckets[e->hash & (m->n_buckets - 1)] = e;
        m->size++;
        if (ret_old)
                *ret_old = NULL;
        return 0;
}

void *koc__strmap_remove(strmap *m, const char *key) {
        if (m->n_buckets == 0)
                return NULL;
        size_t h = koc__strmap_hash(key);
        for (strmap_entry **p = &m->buckets[h & (m->n_buckets - 1)]; *p; p = &(*p)->next) {
                strmap_entry *e = *p;
                if (e->hash == h && strcmp(e->key, key) == 0) {
                        void *v = e->value;
                        *p = e->next;
                        free(e);
                        m->size--;
                        return v;
                }
        }
        return NULL;
}

void koc__strmap_clear(strmap *m) {
        for (size_t i = 0; i < m->n_buckets; i++)
                for (strmap_entry *e = m->buckets[i], *next; e; e = next) {
                        next = e->next;
                        free(e);
                }
        free(m->buckets);
        *m = (strmap){0};
}

strmap_entry *koc__strmap_first(const strmap *m, size_t *iter) {
        for (*iter = 0; *iter < m->n_buckets; (*iter)++)
                if (m->buckets[*iter])
                        return m->buckets[*iter];
        return NULL;
}

strmap_entry *koc__strmap_next(const strmap *m, strmap_entry *e, size_t *iter) {
        if (e->next)
                return e->next;
        for ((*iter)++; *iter < m->n_buckets; (*iter)++)
                if (m->buckets[*iter])
                        return m->buckets[*iter];
        return NULL;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small string-keyed hash map (chained, power-of-two buckets, grows at load
 * factor 1) for the controller runtime's queue, store and indexes.  The map
 * owns copies of the keys, never the values.  Not thread-safe: callers hold
 * their own lock.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct strmap_entry {
        struct strmap_entry *next;
        size_t hash;
        void *value;
        char key[]; /* NUL-terminated */
} strmap_entry;

typedef struct strmap {
        strmap_entry **buckets;
        size_t n_buckets;
        size_t size;
} strmap;

/* The map's hash of a key (FNV-1a), for other tables keyed the same way. */
size_t koc__strmap_hash(const char *s);
/* Returns the value, or NULL when absent. */
void *koc__strmap_get(const strmap *m, const char *key);
/* Looks up the entry itself (its key is stable while it is in the map). */
strmap_entry *koc__strmap_find(const strmap *m, const char *key);
/* Inserts or replaces; returns 0 or -ENOMEM.  *ret_old (may be NULL) gets the
 * replaced value or NULL. */
int koc__strmap_put(strmap *m, const char *key, void *value, void **ret_old);
/* Removes the key; returns its value or NULL. */
void *koc__strmap_remove(strmap *m, const char *key);
/* Frees the table; values are not touched. */
void koc__strmap_clear(strmap *m);

/* Iteration: for (strmap_entry *e = koc__strmap_first(m, &i); e; e = koc__strmap_next(m, e, &i)).
 * The map must not change meanwhile. */
strmap_entry *koc__strmap_first(const strmap *m, size_t *iter);
strmap_entry *koc__strmap_next(const strmap *m, strmap_entry *e, size_t *iter);

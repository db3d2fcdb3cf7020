/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The informer's cache of objects.
 *
 * Written only on the loop thread (by the informer and by the
 * read-your-own-writes path of the fenced client, whose answers arrive on the
 * loop); read from any thread.  Each object is an immutable, reference-counted
 * koc_object (minified JSON plus the few fields lookups need); a write builds
 * the new record first and then takes the write lock only to swap pointers and
 * update the indexes, and a reader takes the read lock only to find a record
 * and take a reference.  So the loop never waits for a reconciler, and a
 * reader never sees half an update.
 */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "koc/object.h"
#include "core/selector.h"

typedef struct koc_store koc_store;

int koc__store_new(koc_store **ret);
koc_store *koc__store_free(koc_store *s);

/* Runs after the default strip of metadata.managedFields and the
 * last-applied-configuration annotation (every copy of them).  Before the
 * first write only.  The record's key, resourceVersion, uid and labels come
 * from the object before the transform. */
/* destroy (may be NULL) runs on userdata when the transform is replaced by
 * another userdata or the store is freed. */
void koc__store_set_transform(koc_store *s, koc_transform_t fn, void *userdata,
                              koc_destroy_t destroy);
/* -EBUSY once the store holds objects, -EEXIST for a name used twice.
 * destroy (may be NULL) runs on userdata when the store is freed; not on
 * failure. */
int koc__store_add_index(koc_store *s, const char *name, koc_index_func_t fn, void *userdata,
                         koc_destroy_t destroy);

/* Builds a record from obj (transformed in place).  -EINVAL when the object
 * has no metadata.name. */
int koc__store_make_object(koc_store *s, cJSON *obj, koc_object **ret);

#define KOC_STORE_ONLY_NEWER 1u /* keep a stored record whose resourceVersion is newer */

/* Inserts or replaces obj's record.  Returns 1 when stored, 0 when skipped
 * (ONLY_NEWER and the stored one is newer, or the same resourceVersion),
 * or a negative errno.  *ret_old / *ret_new (may be NULL) get references. */
int koc__store_upsert(koc_store *s, cJSON *obj, unsigned flags, koc_object **ret_old,
                      koc_object **ret_new);
/* Returns 1 and *ret_old (may be NULL) when the key was stored, else 0. */
int koc__store_delete(koc_store *s, const char *key, koc_object **ret_old);
/* The same for a deletion this process made (a DELETE's answer), with the
 * deletion's resourceVersion when the answer had one (NULL: unknown).
 * While a re-list is in progress the key is noted, so that the list, whose
 * snapshot may predate the deletion, does not bring the object back (the
 * rule is in store.c). */
int koc__store_delete_at(koc_store *s, const char *key, const char *rv, koc_object **ret_old);

/* A re-list (client-go's Store.Replace).  begin starts it, when the list's
 * first request is sent (writes and deletions answered after that may be
 * newer than the list's snapshot); add stages each
 * listed object (transformed, with its index values; not visible to readers
 * yet); end makes the list the cache's content at once: a listed object
 * replaces the cached one even when its resourceVersion orders lower, and
 * every record the list did not have is removed, except a record written
 * (upsert) after begin that is newer than the list (read-your-own-writes;
 * the rule is in store.c).  changed() runs for each record added (old NULL)
 * or replaced, removed() for each removed one.  abort drops what was staged
 * (an abandoned list never reaches the cache); begin also drops an earlier
 * unfinished list.  The staging grows geometrically; a listed object with
 * the same resourceVersion and bytes as the cached one is staged as a
 * reference to the cached record, not a copy. */
typedef struct koc_store_replace_handlers {
        void (*changed)(koc_object *old, koc_object *new_, void *userdata);
        void (*removed)(koc_object *old, void *userdata);
} koc_store_replace_handlers;

void koc__store_replace_begin(koc_store *s);
/* -EINVAL outside begin/end or for an object without metadata.name. */
int koc__store_replace_add(koc_store *s, cJSON *obj);
/* A re-list applied as it arrives (a streaming list): each listed object
 * replaces the cached record at once, by the rules replace_end applies to a
 * staged one (h->changed said then), and replace_end only removes what the
 * list did not have.  Nothing is staged, so the burst is never held twice;
 * abort keeps what was applied (each was the server's state; the next
 * re-list is authoritative again). */
void koc__store_replace_begin_live(koc_store *s);
int koc__store_replace_add_live(koc_store *s, cJSON *obj, const koc_store_replace_handlers *h,
                                void *userdata);
void koc__store_replace_abort(koc_store *s);
void koc__store_replace_end(koc_store *s, const char *list_rv,
                            const koc_store_replace_handlers *h, void *userdata);
/* What is staged so far: objects, and bytes of their minified JSON. */
size_t koc__store_replace_count(koc_store *s);
size_t koc__store_replace_bytes(koc_store *s);
/* ... of which bytes are new records (not references to cached ones). */
size_t koc__store_replace_copied_bytes(koc_store *s);

/* Any thread. */
koc_object *koc__store_get(koc_store *s, const char *key);
/* namespace_ NULL: all; sel NULL: everything. *ret: array of references,
 * free with koc_object_list_free. */
int koc__store_list(koc_store *s, const char *namespace_, const koc_selector *sel,
                    koc_object ***ret, size_t *ret_n);
int koc__store_list_index(koc_store *s, const char *index, const char *value, koc_object ***ret,
                          size_t *ret_n);
bool koc__store_has_index(koc_store *s, const char *index);
/* Every key (malloc'ed strings, free each and the array). */
int koc__store_keys(koc_store *s, char ***ret, size_t *ret_n);
size_t koc__store_count(koc_store *s);
size_t koc__store_bytes(koc_store *s);


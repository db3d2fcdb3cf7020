/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Label selectors as the API server reads them (apimachinery's
 * labels.Parse): equality-based ("a=b", "a==b", "a!=b"), set-based
 * ("a in (x,y)", "a notin (x)", "a", "!a") and numeric ("a>1", "a<1"),
 * comma-separated, all requirements ANDed.  The one parser of koc, internal
 * (not part of the public API): the controller runtime matches cached objects
 * with it (lists by selector, and whether an object this process wrote
 * belongs to an informer's cache), and koc-apiserver selects what it lists
 * and watches with it, so that an object the client keeps is one the server
 * would have listed.
 *
 * Keys are letters, digits and "-_./"; values the same without "/" (a label
 * value has no "/"); the value of ">" and "<" is a decimal integer, and a
 * label matches them only when its value is one too.  An object without the
 * label matches "!=" and "notin", as on the API server.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "koc/common.h"

typedef struct koc_selector koc_selector;

/* Looks a label up: its value, or NULL when the object has no such label. */
typedef const char *(*koc_label_lookup_t)(const char *key, void *userdata);

/* s NULL or "" selects everything.  -EINVAL with err (NULL allowed) naming
 * the selector and the offending part; -ENOMEM. */
int koc__selector_parse(const char *s, koc_selector **ret, koc_error *err);
koc_selector *koc__selector_free(koc_selector *sel);
bool koc__selector_matches(const koc_selector *sel, koc_label_lookup_t lookup, void *userdata);
/* True for NULL and for a selector without requirements (it matches everything). */
bool koc__selector_is_empty(const koc_selector *sel);
/* True when every requirement of part is also one of sel's (the order and
 * "=" against "in (...)" with one value do not matter), so that every object
 * sel matches, part matches too: a cache that holds what part selects can
 * answer a read by sel.  An empty part is included in every selector.  It
 * compares requirements, not what they mean: "a in (x)" does not include
 * "a in (x,y)", though it selects fewer objects. */
bool koc__selector_includes(const koc_selector *sel, const koc_selector *part);

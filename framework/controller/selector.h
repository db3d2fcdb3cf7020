/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Label selectors as the API server reads them: equality-based ("a=b",
 * "a==b", "a!=b") and set-based ("a in (x,y)", "a notin (x)", "a", "!a"),
 * comma-separated, all requirements ANDed.  The controller runtime matches
 * them against cached objects (lists by selector, and deciding whether an
 * object this process wrote belongs to an informer's cache).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "koc/common.h"

typedef struct koc_selector koc_selector;

/* Looks a label up: its value, or NULL when the object has no such label. */
typedef const char *(*koc_label_lookup_t)(const char *key, void *userdata);

/* s NULL or "" selects everything.  -EINVAL with err naming the selector
 * and the offending part. */
int koc_selector_parse(const char *s, koc_selector **ret, koc_error *err);
koc_selector *koc_selector_free(koc_selector *sel);
bool koc_selector_matches(const koc_selector *sel, koc_label_lookup_t lookup, void *userdata);
bool koc_selector_is_empty(const koc_selector *sel);

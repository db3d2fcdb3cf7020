/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one resourceVersion comparison of koc.  Internal (the library and its
 * tests), not part of the public API.
 *
 * The API conventions call resourceVersion opaque: clients may only test two
 * of them for equality.  Both servers koc talks to (the kube-apiserver, whose
 * resourceVersions are etcd revisions, and koc-apiserver) write them as
 * decimal integers that grow with every write, and koc needs the order in a
 * few places (a watch event that lags behind a write's answer, a re-list
 * racing with a write, an answer older than a deletion).  The rule, written
 * once here:
 *
 *   - both strings are decimal integers without leading zeros ("0" itself is
 *     one; any number of digits, no sign, no space): they are ordered as
 *     numbers;
 *   - otherwise (NULL, "", a sign, a leading zero, anything else): they
 *     cannot be compared, even when they are equal strings.
 *
 * What "cannot compare" means is each caller's decision, written at the
 * caller: the cache lets the list have the last word, the leader takes a
 * different Lease record as the newer one.
 */
#pragma once

#include <stdbool.h>

enum koc_rv_order {
        KOC_RV_OLDER,     /* a was written before b */
        KOC_RV_SAME,      /* the same resourceVersion */
        KOC_RV_NEWER,     /* a was written after b */
        KOC_RV_UNORDERED, /* at least one is not a decimal integer as above */
};

/* True when s is a decimal integer without leading zeros (see above). */
bool koc__rv_is_ordered(const char *s);

/* Orders a against b by the rule above. */
enum koc_rv_order koc__rv_compare(const char *a, const char *b);

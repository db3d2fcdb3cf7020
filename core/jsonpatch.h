/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON Patch (RFC 6902) between two documents: what an admission webhook's
 * defaulter answers (the difference between the object it received and the
 * object it returns), and the application of such a patch (for tests and
 * for checking a diff).  Only add, remove and replace are produced; apply
 * knows those three.  Paths are JSON Pointers (RFC 6901) with '~' written
 * "~0" and '/' written "~1".  Internal to koc.
 *
 *   cJSON *ops = NULL;
 *   koc__jsonpatch_diff(original, defaulted, &ops);   (a JSON array)
 */
#pragma once

#include <cjson/cJSON.h>

/* Nesting deeper than this is refused (-ELOOP) by both functions. */
#define KOC__JSONPATCH_MAX_DEPTH 512

/* The operations that turn a into b, as a new cJSON array (empty when equal).
 * -EINVAL when a document holds an object with a key twice (its meaning is
 * not defined), -ELOOP too deep, -ENOMEM. */
int koc__jsonpatch_diff(const cJSON *a, const cJSON *b, cJSON **ret);

/* Applies patch (an array of add/remove/replace) to a copy of doc; the result
 * is new.  -EINVAL with no result for a malformed patch or a path that does
 * not resolve. */
int koc__jsonpatch_apply(const cJSON *doc, const cJSON *patch, cJSON **ret);

/* Appends the RFC 6901 escape of token (~ as ~0, / as ~1) to a pointer:
 * a new string "<pointer>/<escaped token>", or NULL (out of memory). */
char *koc__jsonpointer_append(const char *pointer, const char *token);

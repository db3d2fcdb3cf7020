/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kubernetes object names, as apimachinery's validation defines them, and the
 * escaping of a name that becomes one segment of a request path.  Internal to
 * koc (the library and koc-apiserver), not part of the public API.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define KOC_DNS1123_LABEL_MAX 63
#define KOC_DNS1123_SUBDOMAIN_MAX 253

/* NULL when value is a DNS-1123 label (namespaces: at most 63 lower-case
 * letters, digits and '-', starting and ending with a letter or digit);
 * otherwise why not, in apimachinery's words (a static string). */
const char *koc__dns1123_label_error(const char *value);
/* NULL when value is a DNS-1123 subdomain (most object names, Leases among
 * them: at most 253 characters, dot-separated labels); otherwise why not. */
const char *koc__dns1123_subdomain_error(const char *value);

/* A newly allocated copy of segment with everything but RFC 3986's
 * unreserved characters (letters, digits, "-._~") percent-encoded, so that a
 * name can never add a segment ("/"), a query ("?") or a fragment ("#") to a
 * path.  NULL on allocation failure. */
char *koc__path_segment_escape(const char *segment);

/* NULL when value may be one segment of a request path as an object's name
 * (or a subresource): client-go's rest client refuses the same names as
 * "invalid resource name" (apimachinery's IsValidPathSegmentName): empty,
 * "." and "..", and any "/" or "%".  koc also refuses what would end the
 * path ("?" query, "#" fragment) or break the request line (control
 * characters, whitespace, DEL).  Otherwise why not (a static string). */
const char *koc__path_segment_name_error(const char *value);

/* value made printable for a message, in buf: printable ASCII as it is,
 * '"' and '\\' and every other byte as \xNN, cut at a bounded length with
 * "..." after it.  NULL reads "(null)".  Returns buf. */
char *koc__name_quote(const char *value, char *buf, size_t size);

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
const char *koc_dns1123_label_error(const char *value);
/* NULL when value is a DNS-1123 subdomain (most object names, Leases among
 * them: at most 253 characters, dot-separated labels); otherwise why not. */
const char *koc_dns1123_subdomain_error(const char *value);

/* A newly allocated copy of segment with everything but RFC 3986's
 * unreserved characters (letters, digits, "-._~") percent-encoded, so that a
 * name can never add a segment ("/"), a query ("?") or a fragment ("#") to a
 * path.  NULL on allocation failure. */
char *koc_path_segment_escape(const char *segment);

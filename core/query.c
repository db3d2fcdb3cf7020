/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Query strings for list and watch requests (koc_query in koc/client.h).
 *
 * Parameters are kept as decoded name/value pairs and encoded only when the
 * string is asked for, so that replacing the continue token of the next page
 * does not re-parse anything.  Encoding keeps RFC 3986's unreserved
 * characters and percent-encodes every other byte, which is what Go's
 * url.Values.Encode produces for the characters that matter here (selectors
 * carry '=', '!', ',', '(' and spaces; continue tokens carry '=' and '/').
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koc/client.h"
#include "util.h"

typedef struct query_param {
        char *name;
        char *value;
} query_param;

struct koc_query {
        query_param *params;
        size_t n_params, n_alloc;
        char *string; /* the last encoding, NULL when stale */
};

KOC_EXPORT int koc_query_new(koc_query **ret) {
        if (!ret)
                return -EINVAL;
        koc_query *q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        *ret = q;
        return 0;
}

KOC_EXPORT koc_query *koc_query_free(koc_query *q) {
        if (!q)
                return NULL;
        for (size_t i = 0; i < q->n_params; i++) {
                free(q->params[i].name);
                free(q->params[i].value);
        }
        free(q->params);
        free(q->string);
        free(q);
        return NULL;
}

static void query_remove(koc_query *q, size_t i) {
        free(q->params[i].name);
        free(q->params[i].value);
        memmove(q->params + i, q->params + i + 1, (q->n_params - i - 1) * sizeof *q->params);
        q->n_params--;
}

KOC_EXPORT int koc_query_set(koc_query *q, const char *name, const char *value) {
        if (!q || !name || !name[0])
                return -EINVAL;
        size_t i = 0;
        while (i < q->n_params && strcmp(q->params[i].name, name) != 0)
                i++;
        free(q->string);
        q->string = NULL;
        if (!value) {
                if (i < q->n_params)
                        query_remove(q, i);
                return 0;
        }
        char *v = strdup(value);
        if (!v)
                return -ENOMEM;
        if (i < q->n_params) {
                free(q->params[i].value);
                q->params[i].value = v;
                return 0;
        }
        if (q->n_params == q->n_alloc) {
                size_t n = q->n_alloc ? q->n_alloc * 2 : 8;
                query_param *a = realloc(q->params, n * sizeof *a);
                if (!a) {
                        free(v);
                        return -ENOMEM;
                }
                q->params = a;
                q->n_alloc = n;
        }
        char *nm = strdup(name);
        if (!nm) {
                free(v);
                return -ENOMEM;
        }
        q->params[q->n_params++] = (query_param){.name = nm, .value = v};
        return 0;
}

static int set_string(koc_query *q, const char *name, const char *value) {
        return koc_query_set(q, name, value && value[0] ? value : NULL);
}

static int set_uint(koc_query *q, const char *name, uint64_t value) {
        char s[24];
        snprintf(s, sizeof s, "%" PRIu64, value);
        return koc_query_set(q, name, value ? s : NULL);
}

KOC_EXPORT int koc_query_set_label_selector(koc_query *q, const char *selector) {
        return set_string(q, "labelSelector", selector);
}

KOC_EXPORT int koc_query_set_field_selector(koc_query *q, const char *selector) {
        return set_string(q, "fieldSelector", selector);
}

KOC_EXPORT int koc_query_set_limit(koc_query *q, uint64_t limit) {
        return set_uint(q, "limit", limit);
}

KOC_EXPORT int koc_query_set_continue(koc_query *q, const char *token) {
        return set_string(q, "continue", token);
}

KOC_EXPORT int koc_query_set_resource_version(koc_query *q, const char *resource_version) {
        return set_string(q, "resourceVersion", resource_version);
}

KOC_EXPORT int koc_query_set_resource_version_match(koc_query *q, const char *match) {
        /* The API server rejects any other value with a 400; refusing it here
         * names the mistake where it is made. */
        if (match && match[0] && strcmp(match, "Exact") != 0 && strcmp(match, "NotOlderThan") != 0)
                return -EINVAL;
        return set_string(q, "resourceVersionMatch", match);
}

KOC_EXPORT int koc_query_set_timeout_seconds(koc_query *q, uint64_t seconds) {
        return set_uint(q, "timeoutSeconds", seconds);
}

KOC_EXPORT int koc_query_set_allow_watch_bookmarks(koc_query *q, bool allow) {
        return koc_query_set(q, "allowWatchBookmarks", allow ? "true" : NULL);
}

static bool unreserved(unsigned char ch) {
        return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
               ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

char *koc__percent_encode_into(char *out, const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (unreserved(*p))
                        *out++ = (char)*p;
                else {
                        *out++ = '%';
                        *out++ = hex[*p >> 4];
                        *out++ = hex[*p & 15];
                }
        }
        return out;
}

KOC_EXPORT const char *koc_query_string(koc_query *q) {
        if (!q)
                return NULL;
        if (q->string)
                return q->string;
        /* Every byte encodes to at most three. */
        size_t size = 1;
        for (size_t i = 0; i < q->n_params; i++)
                size += 3 * (strlen(q->params[i].name) + strlen(q->params[i].value)) + 2;
        char *s = malloc(size);
        if (!s)
                return NULL;
        char *p = s;
        for (size_t i = 0; i < q->n_params; i++) {
                if (i > 0)
                        *p++ = '&';
                p = koc__percent_encode_into(p, q->params[i].name);
                *p++ = '=';
                p = koc__percent_encode_into(p, q->params[i].value);
        }
        *p = 0;
        q->string = s;
        return s;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The probes server's answer to one request, without a socket: routing, the
 * method and body rules, the checks and /metrics.  probes.c serves it over
 * libmicrohttpd; tests/fuzz/fuzz-probes.c drives it directly.  Internal to
 * koc.
 *
 *   koc__probes_request req = { .method = "GET", .url = "/readyz", ... };
 *   koc__probes_answer a;
 *   if (koc__probes_dispatch(p, KOC_PROBES_HEALTH, &req, &a) >= 0) {
 *           ... a.code, a.body (and a.text, a.len) ...
 *           koc__probes_answer_done(&a);
 *   }
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "koc/probes.h"

typedef struct koc__probes_request {
        const char *method;
        const char *url; /* the path, without the query; MHD has decoded it */
        /* The headers that say whether a body follows (NULL: absent). */
        const char *content_length;
        const char *transfer_encoding;
        /* Calls fn(cls, key, value) for each query argument in order (value
         * NULL for "?verbose"); NULL when there are none. */
        void (*each_arg)(void *userdata, void (*fn)(void *cls, const char *key, const char *value),
                         void *cls);
        void *userdata;
} koc__probes_request;

enum koc__probes_body {
        KOC__PROBES_BODY_OK,          /* "ok" */
        KOC__PROBES_BODY_NOT_FOUND,   /* "404 page not found" */
        KOC__PROBES_BODY_NOT_ALLOWED, /* "405 method not allowed", Allow: GET, HEAD */
        KOC__PROBES_BODY_TOO_LARGE,   /* "413 request body not allowed", then close */
        KOC__PROBES_BODY_TEXT,        /* text (check results), text/plain */
        KOC__PROBES_BODY_METRICS,     /* text (the registry), Prometheus' type */
};

typedef struct koc__probes_answer {
        unsigned code; /* HTTP status */
        unsigned path; /* the request counter's path label */
        enum koc__probes_body body;
        char *text; /* BODY_TEXT and BODY_METRICS: malloc'ed, owned by the answer */
        size_t len;
} koc__probes_answer;

/* Answers req as a listener serving `kinds` (KOC_PROBES_HEALTH and/or
 * KOC_PROBES_METRICS) would.  Runs the checks.  -ENOMEM, or the metrics
 * registry's error; *ret is written only on success. */
int koc__probes_dispatch(koc_probes *p, unsigned kinds, const koc__probes_request *req,
                         koc__probes_answer *ret);
/* Frees the answer's text. */
void koc__probes_answer_done(koc__probes_answer *a);

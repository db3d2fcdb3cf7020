/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The filter that lets only those the cluster allows read what a server
 * serves (controller-runtime's filters.WithAuthenticationAndAuthorization):
 * the request's bearer token is checked with a TokenReview
 * (authentication.k8s.io/v1), then the request is authorised with a
 * SubjectAccessReview (authorization.k8s.io/v1) for the non-resource URL
 * (the request's path) and verb (its method, lower case).  Both answers are
 * cached as k8s.io/apiserver's delegating authenticator and authorizer cache
 * them: token reviews 1 min (both outcomes), allowed 5 min, denied 30 s;
 * failures are not cached.  The caches are bounded (oldest entry out).
 *
 *   401  no bearer token, or the token is not authenticated
 *   403  authenticated, not allowed
 *   503  a review could not be made or its answer makes no sense (a
 *        rate-limited warn line and koc_serving_auth_review_errors_total);
 *        never let through
 *
 * Reviews go through the client on the loop: the request's connection is
 * suspended meanwhile, nothing blocks.  Internal to koc.
 *
 *   koc__serving_authz_new(&(koc__serving_authz_config){ .client = c,
 *                          .metrics = reg, .server_name = "metrics" }, &a);
 *   koc__serving_set_filter(server, koc__serving_authz_filter, a);
 *   ...
 *   koc__serving_free(server);   (first: it cancels reviews under way)
 *   koc__serving_authz_free(a);
 */
#pragma once

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "koc/client.h"
#include "koc/metrics.h"
#include "serving/serving.h"

typedef struct koc__serving_authz koc__serving_authz;

typedef struct koc__serving_authz_config {
        koc_client *client;      /* a reference is taken */
        koc_metrics *metrics;    /* may be NULL */
        const char *server_name; /* the metrics' server label */
        uint64_t authn_ttl_usec; /* 0: 1 min */
        uint64_t allow_ttl_usec; /* 0: 5 min */
        uint64_t deny_ttl_usec;  /* 0: 30 s */
        size_t max_entries;      /* per cache; 0: 1024 */
        uint64_t review_timeout_usec; /* 0: 10 s */
} koc__serving_authz_config;

int koc__serving_authz_new(const koc__serving_authz_config *cfg, koc__serving_authz **ret);
koc__serving_authz *koc__serving_authz_free(koc__serving_authz *a);
/* A koc_serving_handler_t for koc__serving_set_filter (userdata: the authz). */
void koc__serving_authz_filter(koc_serving_request *req, void *userdata);

/* The parsing of the reviews' answers, apart for the fuzzers. */
#define KOC__SERVING_MAX_GROUPS 64
#define KOC__SERVING_MAX_NAME 512 /* a user name, uid or group longer than this is refused */
typedef struct koc__serving_identity {
        char *user;
        char *uid; /* NULL when none */
        char *groups[KOC__SERVING_MAX_GROUPS];
        size_t n_groups;
} koc__serving_identity;
void koc__serving_identity_clear(koc__serving_identity *w);
/* A TokenReview answer's body: 1 and *ret filled when it authenticated the
 * token; 0 when it did not (status.authenticated false or absent); a negative
 * -EBADMSG and *why when the answer makes no sense (or memory ran out), *ret
 * then left empty. */
int koc__serving_parse_token_review(const cJSON *body, koc__serving_identity *ret,
                                    const char **why);
/* A SubjectAccessReview answer's body: 1 allowed, 0 not, -EBADMSG without a
 * boolean status.allowed. */
int koc__serving_parse_access_review(const cJSON *body);

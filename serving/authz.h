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

/* SPDX-License-Identifier: Apache-2.0 */
/* Internal helpers of the manager, shared with its tests. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* The "leader-renewal" liveness verdict, as client-go's HealthzAdaptor:
 * elector_error (negative) when the elector stopped itself on an error, so
 * that the replica is restarted instead of standing by forever; otherwise
 * healthy (0) when this replica does not believe it leads (`leading` is the
 * callbacks' view), or when its leadership state still reads true (then
 * *confirmed_at becomes now), or when the state has read false for at most
 * `limit` since *confirmed_at.  -ETIMEDOUT otherwise: the elector thinks it
 * leads but has not renewed, so it is wedged. */
int koc__manager_renewal_verdict(bool leading, bool state_is_leader, int elector_error,
                                 uint64_t now, uint64_t *confirmed_at, uint64_t limit);

/* The accesses a manager's program declared (rbac.c), for --print-rbac. */
#include <stdio.h>

#include "koc/cache.h"
#include "koc/common.h"

struct koc__rbac_rule;
typedef struct koc__rbac {
        struct koc__rbac_rule *rules;
        size_t n;
} koc__rbac;

/* Adds verbs ("get,list" or "status/update": comma-separated verbs, each
 * optionally of a subresource) on group/resource in namespace_ (NULL or "":
 * every namespace).  -EINVAL with err naming the bad item. */
int koc__rbac_declare(koc__rbac *r, const char *group, const char *resource,
                      const char *namespace_, const char *verbs, koc_error *err);
void koc__rbac_free(koc__rbac *r);
/* Prints the declared rules, list and watch of every informer of cache, and
 * the Lease's rules when lease, as Helm values for charts/koc-example. */
int koc__rbac_print(koc__rbac *declared, koc_cache *cache, bool lease, const char *under,
                    FILE *out);

/* Secure metrics (secure-metrics.c): /metrics of `metrics` over HTTPS on
 * cfg->metrics_bind_address, behind the TokenReview and SubjectAccessReview
 * filter that uses `client`.  Errors name the flag and the file. */
struct sd_event;
struct koc_client;
struct koc_metrics;
struct koc_manager_config;
struct koc_error;
typedef struct koc__secure_metrics koc__secure_metrics;
int koc__secure_metrics_new(struct sd_event *event, struct koc_client *client,
                            struct koc_metrics *metrics, const struct koc_manager_config *cfg,
                            koc__secure_metrics **ret, struct koc_error *err);
void koc__secure_metrics_stop(koc__secure_metrics *sm);
koc__secure_metrics *koc__secure_metrics_free(koc__secure_metrics *sm);
uint16_t koc__secure_metrics_port(const koc__secure_metrics *sm);

/* Admission webhooks (webhook.c): the manager's webhook server, started by
 * the first koc__webhooks_add(). */
#define KOC__WEBHOOK_DEFAULT_TIMEOUT_USEC (8 * KOC_USEC_PER_SEC)
/* At shutdown, handlers still running this long after their timeout are
 * left behind (their requests were answered at the timeout). */
#define KOC__WEBHOOK_EXIT_GRACE_USEC (2 * KOC_USEC_PER_SEC)
struct koc_probes;
struct koc_resource;
typedef struct koc__webhooks koc__webhooks;
typedef struct koc__webhooks_config {
        const char *address; /* NULL, "" or "0": ":9443" */
        const char *cert_dir;
        uint64_t timeout_usec;
        bool allow_on_timeout;
        bool disabled;     /* --print-rbac */
        bool leader_gated; /* --leader-elect-gate-readiness: warned about */
} koc__webhooks_config;
int koc__webhooks_new(struct sd_event *event, struct koc_metrics *metrics,
                      struct koc_probes *probes, const koc__webhooks_config *cfg,
                      koc__webhooks **ret);
void koc__webhooks_stop(koc__webhooks *w);
koc__webhooks *koc__webhooks_free(koc__webhooks *w);
uint16_t koc__webhooks_port(const koc__webhooks *w);
char *koc__webhooks_cert_pem(const koc__webhooks *w);
#include "koc/webhook.h"
int koc__webhooks_add(koc__webhooks *w, const koc_resource *res,
                      koc_webhook_validator_t validate, koc_webhook_defaulter_t set_defaults,
                      void *userdata, koc_error *err);
koc__webhooks *koc__manager_webhooks(struct koc_manager *m);
/* Behind koc_webhook_add_conversion and _spoke. */
int koc__webhooks_add_conversion(koc__webhooks *w, const char *group, const char *kind,
                                 const char *hub, koc_error *err);
int koc__webhooks_add_conversion_spoke(koc__webhooks *w, const char *group, const char *kind,
                                       const char *version, koc_webhook_convert_t to_hub,
                                       koc_webhook_convert_t from_hub, void *userdata,
                                       koc_error *err);
/* The checks of a request's body (webhook.c, apart for the fuzzers): NULL
 * and *ret_request (the review's "request") when it is a well-formed
 * AdmissionReview / ConversionReview, else what is wrong. */
const char *koc__webhook_check_review(const cJSON *review, const cJSON **ret_request);
const char *koc__webhook_check_conversion_review(const cJSON *review, const cJSON **ret_request);
/* The ConversionReview answer to a checked request: its objects converted
 * through the hub, or a Failure naming the first that cannot be; NULL when
 * out of memory.  Called on a handler's thread. */
cJSON *koc__webhooks_convert(const koc__webhooks *w, const cJSON *request, const char *uid);

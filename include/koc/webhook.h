/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admission webhooks served by the manager: validators that accept or refuse
 * an object, and defaulters that fill in what the user left out, as
 * controller-runtime's webhook.Validator and webhook.Defaulter.
 *
 * The manager owns one HTTPS server for them (serving/, the same TLS server
 * as secure metrics): --webhook-bind-address (":9443" when a webhook is
 * registered and the flag is left at "0"), the pair from --webhook-cert-dir
 * (tls.crt and tls.key, reloaded when they change; self-signed when the
 * directory is not given, logged).  Every replica serves, leader or not, and
 * the readiness check "webhook" says whether the server listens with a
 * certificate that has not expired (it names the file past its notAfter).  Paths are
 * kubebuilder's:
 *
 *   /validate-<group with '.' as '-'>-<version>-<kind lower case>
 *   /mutate-<group with '.' as '-'>-<version>-<kind lower case>
 *
 * (the core group is "core").  Requests are AdmissionReview
 * admission.k8s.io/v1; the answer echoes the uid.  A validator allows by
 * returning 0; a negative return (or koc_admission_deny()) refuses with HTTP
 * status code 403 and the message, which kubectl shows.  A defaulter changes
 * the copy of the object it is given; the answer is the JSON Patch (RFC
 * 6902) from the object received to the object returned.  Both may add
 * warnings.
 *
 * Handlers run on worker threads, never on the loop, one thread per request
 * (at most 64 at once; beyond that the request is answered 429), so they
 * may block, but must be thread-safe.  A handler that has not returned
 * within --webhook-timeout (default 8s, below the API server's default 10s)
 * is answered without it: refused with a message saying so, or allowed with
 * --webhook-allow-on-timeout; its thread finishes on its own and its result
 * is dropped.  At exit the manager waits for running handlers at most the
 * timeout and 2 s more, then says how many it left behind (warn) and exits
 * without them: a handler that never returns cannot hold the exit up, and
 * its userdata must outlive the manager.  Requests that are not a well-formed AdmissionReview v1
 * (malformed JSON, wrong kind or apiVersion, no request.uid, no object where
 * one is needed, more than 3 MiB) are answered 400 with a message.
 *
 *   static int validate(koc_admission *a, void *userdata) {
 *           const cJSON *spec = cJSON_GetObjectItem(koc_admission_get_object(a), "spec");
 *           if (!cJSON_IsObject(spec))
 *                   return koc_admission_deny(a, "spec: required");
 *           return 0;
 *   }
 *   static int set_defaults(koc_admission *a, cJSON *object, void *userdata) {
 *           ... cJSON_AddNumberToObject(spec, "containerPort", 11211) ...
 *           return 0;
 *   }
 *   koc_webhook_add_validator(m, &memcached_resource, validate, NULL);
 *   koc_webhook_add_defaulter(m, &memcached_resource, set_defaults, NULL);
 */
#ifndef KOC_WEBHOOK_H
#define KOC_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "koc/common.h"
#include "koc/manager.h"
#include "koc/object.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One admission request and the answer being built; valid during the
 * handler's call only, on its thread. */
typedef struct koc_admission koc_admission;

/* "CREATE", "UPDATE", "DELETE" or "CONNECT". */
KOC_EXPORT const char *koc_admission_get_operation(const koc_admission *a);
/* request.object (NULL for DELETE) and request.oldObject (UPDATE, DELETE;
 * else NULL): borrowed. */
KOC_EXPORT const cJSON *koc_admission_get_object(const koc_admission *a);
KOC_EXPORT const cJSON *koc_admission_get_old_object(const koc_admission *a);
/* The whole request (userInfo, dryRun, namespace, name...): borrowed. */
KOC_EXPORT const cJSON *koc_admission_get_request(const koc_admission *a);
/* Refuses with a message (printf format; the first call's message is kept)
 * and returns -EPERM, so that a validator can `return koc_admission_deny(...)`. */
KOC_EXPORT int koc_admission_deny(koc_admission *a, const char *format, ...)
        __attribute__((format(printf, 2, 3)));
/* Adds a warning shown to the client (at most 16, each cut at 512 bytes):
 * 0, -E2BIG, -ENOMEM. */
KOC_EXPORT int koc_admission_warn(koc_admission *a, const char *format, ...)
        __attribute__((format(printf, 2, 3)));

/* 0 allows; negative refuses (with the message of koc_admission_deny(), or
 * else the errno's text). */
typedef int (*koc_webhook_validator_t)(koc_admission *a, void *userdata);
/* Changes object (a copy of request.object); 0 allows with the patch,
 * negative refuses as a validator does. */
typedef int (*koc_webhook_defaulter_t)(koc_admission *a, cJSON *object, void *userdata);

/* Serves the validator (defaulter) for res's kind at its kubebuilder path,
 * starting the manager's webhook server on the first registration.  Call on
 * the loop's thread before koc_manager_run().  -EEXIST (that path is taken),
 * -EINVAL (missing group version kind), -EADDRINUSE and the server's other
 * errors (logged with the flag).  With --print-rbac nothing listens and 0 is
 * returned. */
KOC_EXPORT int koc_webhook_add_validator_sized(koc_manager *m, size_t res_size,
                                               const koc_resource *res,
                                               koc_webhook_validator_t fn, void *userdata);
#define koc_webhook_add_validator(m, res, fn, userdata)                                            \
        koc_webhook_add_validator_sized((m), sizeof(koc_resource), (res), (fn), (userdata))
KOC_EXPORT int koc_webhook_add_defaulter_sized(koc_manager *m, size_t res_size,
                                               const koc_resource *res,
                                               koc_webhook_defaulter_t fn, void *userdata);
#define koc_webhook_add_defaulter(m, res, fn, userdata)                                            \
        koc_webhook_add_defaulter_sized((m), sizeof(koc_resource), (res), (fn), (userdata))

/* Conversion (ConversionReview apiextensions.k8s.io/v1 at /convert, for a
 * CRD whose conversion strategy is Webhook), hub and spoke as
 * controller-runtime: one version of the kind is the hub; every other
 * version (a spoke) converts to and from it, so an object goes from any
 * version to any other through the hub.  A function changes the object in
 * place (a copy); the framework sets apiVersion.  A failure (negative) fails
 * the whole review with a message naming the kind, the object and the
 * versions (result.status Failure).  Conversions run on worker threads as
 * admission handlers do.  Call on the loop's thread before
 * koc_manager_run(): the kind first (-EEXIST twice, -EINVAL), then its
 * spokes (-ENOENT without the kind, -EEXIST, -EINVAL for the hub's version
 * or a missing function). */
typedef int (*koc_webhook_convert_t)(cJSON *object, void *userdata);
KOC_EXPORT int koc_webhook_add_conversion(koc_manager *m, const char *group, const char *kind,
                                          const char *hub_version);
KOC_EXPORT int koc_webhook_add_conversion_spoke(koc_manager *m, const char *group,
                                                const char *kind, const char *version,
                                                koc_webhook_convert_t to_hub,
                                                koc_webhook_convert_t from_hub, void *userdata);

/* The webhook server's port: -ENOENT when it is not running. */
KOC_EXPORT int koc_manager_get_webhook_port(koc_manager *m, uint16_t *ret_port);
/* The serving certificate in PEM (malloc'ed; what a webhook configuration's
 * caBundle holds for a self-signed pair), or NULL. */
KOC_EXPORT char *koc_manager_get_webhook_cert_pem(koc_manager *m);

#ifdef __cplusplus
}
#endif

#endif

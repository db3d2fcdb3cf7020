/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admission webhooks (koc/webhook.h) on the manager's webhook server
 * (serving/).  The loop parses and checks each AdmissionReview, then hands
 * the request to a thread of its own that runs the handler and builds the
 * answer; the thread posts it back through a mailbox.  A timer answers the
 * request first when the handler is late: whichever comes first answers, the
 * other finds the request gone.  The job (the parsed review and the answer)
 * lives until its thread's post runs on the loop.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/jsonpatch.h"
#include "core/mailbox.h"
#include "core/ratelimit.h"
#include "core/util.h"
#include "framework/manager/manager-internal.h"
#include "koc/log.h"
#include "koc/probes.h"
#include "koc/time.h"
#include "koc/webhook.h"
#include "serving/serving.h"

#define LOG "webhook"
#define MAX_HOOKS 32
#define MAX_CONVERSIONS 16
#define MAX_SPOKES 8
#define CONVERSION_API_VERSION "apiextensions.k8s.io/v1"
#define MAX_THREADS 64
#define MAX_BODY (3u << 20)
#define MAX_WARNINGS 16
#define MAX_CODES 8 /* the answers' codes: 200, 400, 429, 500 */
#define MAX_WARNING_LEN 512
#define REVIEW_API_VERSION "admission.k8s.io/v1"

static koc__ratelimit late_rl = KOC__RATELIMIT_INIT(10 * KOC_USEC_PER_SEC, 3);
/* Refused requests, one limit per cause so that a flood of one kind does
 * not hide the others. */
static koc__ratelimit malformed_rl = KOC__RATELIMIT_INIT(10 * KOC_USEC_PER_SEC, 3);
static koc__ratelimit busy_rl = KOC__RATELIMIT_INIT(10 * KOC_USEC_PER_SEC, 1);
static koc__ratelimit start_rl = KOC__RATELIMIT_INIT(10 * KOC_USEC_PER_SEC, 1);

struct hook {
        koc__webhooks *w;
        char path[300];
        bool mutate;
        bool convert; /* /convert: ConversionReview */
        koc_webhook_validator_t validate;
        koc_webhook_defaulter_t set_defaults;
        void *userdata;
        koc_metric *latency; /* controller_runtime_webhook_latency_seconds */
        /* controller_runtime_webhook_requests_total by code, registered on
         * first use (loop thread only). */
        struct code_series {
                unsigned code;
                koc_metric *metric;
        } series[MAX_CODES];
        size_t n_series;
};

struct koc__webhooks {
        sd_event *event;
        koc_metrics *metrics;
        koc_probes *probes;
        char *address;
        char *cert_dir;
        uint64_t timeout_usec;
        bool allow_on_timeout;
        bool disabled; /* --print-rbac: nothing listens */
        bool leader_gated;
        koc_serving *server;
        koc_mailbox *mailbox;
        bool listening;

        pthread_mutex_t lock;
        pthread_cond_t idle; /* on CLOCK_MONOTONIC */
        unsigned running; /* threads, under lock */
        koc__webhooks *next_abandoned;

        struct hook hooks[MAX_HOOKS];
        size_t n_hooks;

        /* Conversions (hub and spokes), registered before the loop runs,
         * read by the threads. */
        struct conversion {
                char group[254];
                char kind[64];
                char hub[64];
                struct spoke {
                        char version[64];
                        koc_webhook_convert_t to_hub, from_hub;
                        void *userdata;
                } spokes[MAX_SPOKES];
                size_t n_spokes;
        } conversions[MAX_CONVERSIONS];
        size_t n_conversions;
};

struct koc_admission {
        const cJSON *request;
        const cJSON *object;
        const cJSON *old_object;
        const char *operation;
        char *denied; /* the refusal's message */
        char *warnings[MAX_WARNINGS];
        size_t n_warnings;
};

struct job {
        koc__webhooks *w;
        struct hook *hook;
        /* Loop thread. */
        koc_serving_request *req; /* NULL once answered or aborted */
        sd_event_source *timer;
        char *uid;
        uint64_t started; /* CLOCK_BOOTTIME, usec, as the timer */
        /* Read by the thread, freed on the loop after it posted. */
        cJSON *review;
        const cJSON *request;
        /* Written by the thread before its post. */
        char *body;
        size_t len;
};

/* --- the admission object ---------------------------------------------------------- */

KOC_EXPORT const char *koc_admission_get_operation(const koc_admission *a) {
        return a ? a->operation : NULL;
}

KOC_EXPORT const cJSON *koc_admission_get_object(const koc_admission *a) {
        return a ? a->object : NULL;
}

KOC_EXPORT const cJSON *koc_admission_get_old_object(const koc_admission *a) {
        return a ? a->old_object : NULL;
}

KOC_EXPORT const cJSON *koc_admission_get_request(const koc_admission *a) {
        return a ? a->request : NULL;
}

KOC_EXPORT int koc_admission_deny(koc_admission *a, const char *format, ...) {
        if (!a || !format)
                return -EINVAL;
        if (!a->denied) {
                va_list ap;
                va_start(ap, format);
                if (vasprintf(&a->denied, format, ap) < 0)
                        a->denied = NULL;
                va_end(ap);
        }
        return -EPERM;
}

KOC_EXPORT int koc_admission_warn(koc_admission *a, const char *format, ...) {
        char *s = NULL;
        va_list ap;

        if (!a || !format)
                return -EINVAL;
        if (a->n_warnings >= MAX_WARNINGS)
                return -E2BIG;
        va_start(ap, format);
        int n = vasprintf(&s, format, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        if (n > MAX_WARNING_LEN)
                s[MAX_WARNING_LEN] = '\0';
        a->warnings[a->n_warnings++] = s;
        return 0;
}

/* --- answers -------------------------------------------------------------------------- */

static char *base64(const char *in, size_t len) {
        static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;

        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i += 3) {
                unsigned v = (unsigned char)in[i] << 16;
                if (i + 1 < len)
                        v |= (unsigned char)in[i + 1] << 8;
                if (i + 2 < len)
                        v |= (unsigned char)in[i + 2];
                *o++ = t[(v >> 18) & 63];
                *o++ = t[(v >> 12) & 63];
                *o++ = i + 1 < len ? t[(v >> 6) & 63] : '=';
                *o++ = i + 2 < len ? t[v & 63] : '=';
        }
        *o = '\0';
        return out;
}

/* An AdmissionReview answer: response {uid, allowed, status {code, reason,
 * message}}, to which the caller may add; NULL when out of memory. */
static cJSON *review_answer(const char *uid, bool allowed, int code, const char *message,
                            cJSON **ret_response) {
        cJSON *review = cJSON_CreateObject(), *resp = NULL, *status = NULL;
        bool ok = review && cJSON_AddStringToObject(review, "apiVersion", REVIEW_API_VERSION) &&
                  cJSON_AddStringToObject(review, "kind", "AdmissionReview") &&
                  (resp = cJSON_AddObjectToObject(review, "response")) &&
                  cJSON_AddStringToObject(resp, "uid", uid ? uid : "") &&
                  cJSON_AddBoolToObject(resp, "allowed", allowed) &&
                  (status = cJSON_AddObjectToObject(resp, "status")) &&
                  cJSON_AddNumberToObject(status, "code", code);
        if (ok && !allowed)
                ok = cJSON_AddStringToObject(status, "reason",
                                             code == 403   ? "Forbidden"
                                             : code == 400 ? "BadRequest"
                                             : code == 429 ? "TooManyRequests"
                                             : code == 504 ? "Timeout"
                                                           : "InternalError") &&
                     cJSON_AddStringToObject(status, "message", message ? message : "");
        if (!ok) {
                cJSON_Delete(review);
                return NULL;
        }
        if (ret_response)
                *ret_response = resp;
        return review;
}

/* A ConversionReview answer: response {uid, result {status, message}}. */
static cJSON *conversion_answer(const char *uid, const char *failure, cJSON **ret_response) {
        cJSON *review = cJSON_CreateObject(), *resp = NULL, *result = NULL;
        bool ok = review &&
                  cJSON_AddStringToObject(review, "apiVersion", CONVERSION_API_VERSION) &&
                  cJSON_AddStringToObject(review, "kind", "ConversionReview") &&
                  (resp = cJSON_AddObjectToObject(review, "response")) &&
                  cJSON_AddStringToObject(resp, "uid", uid ? uid : "") &&
                  (result = cJSON_AddObjectToObject(resp, "result")) &&
                  cJSON_AddStringToObject(result, "status", failure ? "Failure" : "Success");
        if (ok && failure)
                ok = cJSON_AddStringToObject(result, "message", failure);
        if (!ok) {
                cJSON_Delete(review);
                return NULL;
        }
        if (ret_response)
                *ret_response = resp;
        return review;
}

static koc_metric *code_series(struct hook *h, unsigned code) {
        for (size_t i = 0; i < h->n_series; i++)
                if (h->series[i].code == code)
                        return h->series[i].metric;
        char labels[400];
        koc_metric *c = NULL;
        snprintf(labels, sizeof labels, "webhook=\"%s\",code=\"%u\"", h->path, code);
        if (koc_metrics_add_counter(h->w->metrics, "controller_runtime_webhook_requests_total",
                                    "Webhook requests answered, by HTTP status code.", labels,
                                    &c) < 0)
                return NULL;
        /* Past the cache's size the registry's lookup serves. */
        if (h->n_series < KOC_ELEMENTSOF(h->series))
                h->series[h->n_series++] = (struct code_series){code, c};
        return c;
}

/* controller-runtime's webhook metrics: requests answered by code, and the
 * time from the request's arrival to its answer. */
static void count(struct hook *h, unsigned code, uint64_t started) {
        koc_metric *c;

        if (!h || !h->w->metrics)
                return;
        if ((c = code_series(h, code)))
                koc_metric_inc(c);
        if (started && h->latency)
                koc_metric_observe(h->latency, (double)(koc_now_boottime_usec() - started) / 1e6);
}

static void respond_review(koc_serving_request *req, struct hook *h, uint64_t started,
                           unsigned http_code, cJSON *review) {
        char *body = review ? cJSON_PrintUnformatted(review) : NULL;

        cJSON_Delete(review);
        if (!body) {
                count(h, 500, started);
                koc__serving_respond_text(req, 500, "out of memory\n");
                return;
        }
        count(h, http_code, started);
        koc__serving_respond(req, http_code, "application/json", body, strlen(body), NULL);
}

static void respond_error(koc_serving_request *req, struct hook *h, const char *uid,
                          int code, const char *message) {
        if (h && h->convert)
                respond_review(req, h, 0, code, conversion_answer(uid, message, NULL));
        else
                respond_review(req, h, 0, code, review_answer(uid, false, code, message, NULL));
}

/* --- the handler's thread ------------------------------------------------------------- */

static cJSON *run_handler(struct job *j) {
        const cJSON *rq = j->request;
        struct hook *h = j->hook;
        koc_admission a = {
                .request = rq,
                .operation = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rq, "operation")),
        };
        const cJSON *obj = cJSON_GetObjectItemCaseSensitive(rq, "object");
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(rq, "oldObject");
        cJSON *copy = NULL, *ops = NULL, *resp = NULL, *review = NULL;
        int r;

        a.object = cJSON_IsObject(obj) ? obj : NULL;
        a.old_object = cJSON_IsObject(old) ? old : NULL;
        if (h->mutate) {
                if (!a.object)
                        r = 0; /* nothing to default (DELETE) */
                else if (!(copy = cJSON_Duplicate(a.object, true)))
                        r = -ENOMEM;
                else
                        r = h->set_defaults(&a, copy, h->userdata);
        } else
                r = h->validate(&a, h->userdata);

        if (r < 0)
                review = review_answer(j->uid, false, 403, a.denied ? a.denied : strerror(-r),
                                       &resp);
        else {
                int d = copy ? koc__jsonpatch_diff(a.object, copy, &ops) : 0;
                if (d < 0) {
                        char msg[160];
                        snprintf(msg, sizeof msg, "the defaulter's patch cannot be computed: %s",
                                 strerror(-d));
                        review = review_answer(j->uid, false, 500, msg, &resp);
                } else
                        review = review_answer(j->uid, true, 200, NULL, &resp);
        }
        if (review && cJSON_GetArraySize(ops) > 0) {
                char *p = cJSON_PrintUnformatted(ops), *b = p ? base64(p, strlen(p)) : NULL;
                if (!b || !cJSON_AddStringToObject(resp, "patchType", "JSONPatch") ||
                    !cJSON_AddStringToObject(resp, "patch", b)) {
                        cJSON_Delete(review);
                        review = NULL;
                }
                free(p);
                free(b);
        }
        if (review && a.n_warnings > 0) {
                cJSON *w = cJSON_AddArrayToObject(resp, "warnings");
                for (size_t i = 0; w && i < a.n_warnings; i++)
                        cJSON_AddItemToArray(w, cJSON_CreateString(a.warnings[i]));
        }
        for (size_t i = 0; i < a.n_warnings; i++)
                free(a.warnings[i]);
        free(a.denied);
        cJSON_Delete(copy);
        cJSON_Delete(ops);
        return review;
}

static const struct conversion *find_conversion(const koc__webhooks *w, const char *group,
                                                const char *kind) {
        for (size_t i = 0; i < w->n_conversions; i++)
                if (strcmp(w->conversions[i].group, group) == 0 &&
                    strcmp(w->conversions[i].kind, kind) == 0)
                        return &w->conversions[i];
        return NULL;
}

static const struct spoke *find_spoke(const struct conversion *c, const char *version) {
        for (size_t i = 0; i < c->n_spokes; i++)
                if (strcmp(c->spokes[i].version, version) == 0)
                        return &c->spokes[i];
        return NULL;
}

/* "group/version" split at its last '/' (group "" for "v1"). */
static bool split_api_version(const char *av, char *group, size_t gsize, const char **version) {
        const char *slash = av ? strrchr(av, '/') : NULL;
        if (!av || !av[0])
                return false;
        if (!slash) {
                group[0] = '\0';
                *version = av;
                return true;
        }
        if ((size_t)(slash - av) >= gsize || !slash[1])
                return false;
        memcpy(group, av, (size_t)(slash - av));
        group[slash - av] = '\0';
        *version = slash + 1;
        return true;
}

static int set_api_version(cJSON *o, const char *group, const char *version) {
        char av[400];
        (void)koc__api_version_format(group, version, av, sizeof av);
        cJSON *v = cJSON_CreateString(av);
        if (!v)
                return -ENOMEM;
        if (cJSON_GetObjectItemCaseSensitive(o, "apiVersion"))
                cJSON_ReplaceItemInObjectCaseSensitive(o, "apiVersion", v);
        else
                cJSON_AddItemToObject(o, "apiVersion", v);
        return 0;
}

/* One object to the desired version through the hub; NULL and a message
 * in why when it cannot be. */
static cJSON *convert_one(const koc__webhooks *w, const cJSON *obj, const char *dgroup,
                          const char *dversion, char *why, size_t why_size) {
        char group[254];
        const char *version = NULL;
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, "kind"));
        const char *av = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, "apiVersion"));

        if (!cJSON_IsObject(obj) || !kind ||
            !split_api_version(av, group, sizeof group, &version)) {
                snprintf(why, why_size, "an object without apiVersion or kind");
                return NULL;
        }
        if (strcmp(group, dgroup) != 0) {
                snprintf(why, why_size, "%.100s %.60s: cannot be converted to group %.100s", av,
                         kind, dgroup);
                return NULL;
        }
        const struct conversion *c = find_conversion(w, group, kind);
        if (!c) {
                snprintf(why, why_size, "no conversion for %.100s %.60s", group, kind);
                return NULL;
        }
        const struct spoke *from = strcmp(version, c->hub) == 0 ? NULL : find_spoke(c, version);
        const struct spoke *to = strcmp(dversion, c->hub) == 0 ? NULL : find_spoke(c, dversion);
        if ((strcmp(version, c->hub) != 0 && !from) || (strcmp(dversion, c->hub) != 0 && !to)) {
                snprintf(why, why_size, "%.60s: no conversion between %.60s and %.60s", kind,
                         version, dversion);
                return NULL;
        }
        cJSON *o = cJSON_Duplicate(obj, true);
        int r = o ? 0 : -ENOMEM;
        if (r >= 0 && strcmp(version, dversion) != 0) {
                if (from)
                        r = from->to_hub(o, from->userdata);
                if (r >= 0)
                        r = set_api_version(o, group, c->hub);
                if (r >= 0 && to)
                        r = to->from_hub(o, to->userdata);
                if (r >= 0)
                        r = set_api_version(o, group, dversion);
        }
        if (r < 0) {
                const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "name"));
                snprintf(why, why_size, "%.60s %.100s from %.60s to %.60s: %s", kind,
                         name ? name : "", version, dversion, strerror(-r));
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

cJSON *koc__webhooks_convert(const koc__webhooks *w, const cJSON *request, const char *uid) {
        const char *desired = cJSON_GetStringValue(
                cJSON_GetObjectItemCaseSensitive(request, "desiredAPIVersion"));
        const cJSON *objects = cJSON_GetObjectItemCaseSensitive(request, "objects");
        char dgroup[254], why[512] = "";
        const char *dversion = NULL;
        cJSON *out = cJSON_CreateArray(), *resp = NULL;

        split_api_version(desired, dgroup, sizeof dgroup, &dversion);
        for (const cJSON *o = objects->child; out && o; o = o->next) {
                cJSON *c = convert_one(w, o, dgroup, dversion, why, sizeof why);
                if (!c) {
                        cJSON_Delete(out);
                        return conversion_answer(uid, why, NULL);
                }
                cJSON_AddItemToArray(out, c);
        }
        cJSON *review = out ? conversion_answer(uid, NULL, &resp) : NULL;
        if (review)
                cJSON_AddItemToObject(resp, "convertedObjects", out);
        else
                cJSON_Delete(out);
        return review;
}

const char *koc__webhook_check_conversion_review(const cJSON *review, const cJSON **ret_request) {
        char g[254];
        const char *v;

        if (!cJSON_IsObject(review))
                return "not a JSON object";
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(review, "kind")) ||
            strcmp(cJSON_GetObjectItemCaseSensitive(review, "kind")->valuestring,
                   "ConversionReview") != 0)
                return "kind: must be ConversionReview";
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(review, "apiVersion")) ||
            strcmp(cJSON_GetObjectItemCaseSensitive(review, "apiVersion")->valuestring,
                   CONVERSION_API_VERSION) != 0)
                return "apiVersion: must be " CONVERSION_API_VERSION;
        const cJSON *rq = cJSON_GetObjectItemCaseSensitive(review, "request");
        if (!cJSON_IsObject(rq))
                return "request: missing";
        const char *uid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rq, "uid"));
        if (!uid || !uid[0] || strlen(uid) > 128)
                return "request.uid: must be a string of 1 to 128 characters";
        const char *d = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rq, "desiredAPIVersion"));
        if (!split_api_version(d, g, sizeof g, &v))
                return "request.desiredAPIVersion: must be group/version";
        if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(rq, "objects")))
                return "request.objects: must be a list";
        *ret_request = rq;
        return NULL;
}

static void job_free(struct job *j) {
        sd_event_source_disable_unref(j->timer);
        cJSON_Delete(j->review);
        free(j->uid);
        free(j->body);
        free(j);
}

/* On the loop (or in the mailbox's free, cancelled): the thread is done. */
static void job_done(void *userdata, bool cancelled) {
        struct job *j = userdata;

        if (j->req && !cancelled) {
                koc__serving_request_on_abort(j->req, NULL, NULL);
                if (j->body) {
                        count(j->hook, 200, j->started);
                        koc__serving_respond(j->req, 200, "application/json", j->body, j->len,
                                             NULL);
                        j->body = NULL;
                } else
                        respond_error(j->req, j->hook, j->uid, 500, "out of memory");
        }
        job_free(j);
}

static void *worker(void *userdata) {
        struct job *j = userdata;
        koc__webhooks *w = j->w;
        cJSON *review = j->hook->convert ? koc__webhooks_convert(w, j->request, j->uid)
                                          : run_handler(j);

        j->body = review ? cJSON_PrintUnformatted(review) : NULL;
        j->len = j->body ? strlen(j->body) : 0;
        cJSON_Delete(review);
        if (koc__mailbox_post(w->mailbox, job_done, j) < 0)
                koc_log_warn(LOG, "an admission answer could not reach the loop (out of memory)");
        pthread_mutex_lock(&w->lock);
        w->running--;
        pthread_cond_broadcast(&w->idle);
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

/* --- the loop's side ------------------------------------------------------------------ */

static void on_abort(void *userdata) {
        struct job *j = userdata;

        j->req = NULL;
        j->timer = sd_event_source_disable_unref(j->timer);
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct job *j = userdata;
        koc__webhooks *w = j->w;
        char msg[400], d[32];

        if (!j->req)
                return 0;
        koc_format_duration(w->timeout_usec, d, sizeof d);
        snprintf(msg, sizeof msg, "admission webhook %s did not answer within %s", j->hook->path,
                 d);
        koc__log_ratelimited(&late_rl, KOC_LOG_WARN, LOG, "%s; %s", msg,
                             w->allow_on_timeout ? "allowed (--webhook-allow-on-timeout)"
                                                 : "refused");
        koc__serving_request_on_abort(j->req, NULL, NULL);
        if (j->hook->convert)
                respond_review(j->req, j->hook, j->started, 200,
                               conversion_answer(j->uid, msg, NULL));
        else if (w->allow_on_timeout)
                respond_review(j->req, j->hook, j->started, 200,
                               review_answer(j->uid, true, 200, NULL, NULL));
        else
                respond_review(j->req, j->hook, j->started, 200,
                               review_answer(j->uid, false, 504, msg, NULL));
        j->req = NULL;
        return 0;
}

const char *koc__webhook_check_review(const cJSON *review, const cJSON **ret_request) {
        const cJSON *rq;

        if (!cJSON_IsObject(review))
                return "not a JSON object";
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(review, "kind")) ||
            strcmp(cJSON_GetObjectItemCaseSensitive(review, "kind")->valuestring,
                   "AdmissionReview") != 0)
                return "kind: must be AdmissionReview";
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(review, "apiVersion")) ||
            strcmp(cJSON_GetObjectItemCaseSensitive(review, "apiVersion")->valuestring,
                   REVIEW_API_VERSION) != 0)
                return "apiVersion: must be " REVIEW_API_VERSION;
        rq = cJSON_GetObjectItemCaseSensitive(review, "request");
        if (!cJSON_IsObject(rq))
                return "request: missing";
        const char *uid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rq, "uid"));
        if (!uid || !uid[0] || strlen(uid) > 128)
                return "request.uid: must be a string of 1 to 128 characters";
        const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rq, "operation"));
        if (!op || (strcmp(op, "CREATE") != 0 && strcmp(op, "UPDATE") != 0 &&
                    strcmp(op, "DELETE") != 0 && strcmp(op, "CONNECT") != 0))
                return "request.operation: must be CREATE, UPDATE, DELETE or CONNECT";
        const cJSON *obj = cJSON_GetObjectItemCaseSensitive(rq, "object");
        if ((strcmp(op, "CREATE") == 0 || strcmp(op, "UPDATE") == 0) && !cJSON_IsObject(obj))
                return "request.object: must be an object for CREATE and UPDATE";
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(rq, "oldObject");
        if (strcmp(op, "UPDATE") == 0 && !cJSON_IsObject(old))
                return "request.oldObject: must be an object for UPDATE";
        *ret_request = rq;
        return NULL;
}

static void serve(koc_serving_request *req, void *userdata) {
        struct hook *h = userdata;
        koc__webhooks *w = h->w;
        const char *ct = koc__serving_request_header(req, "Content-Type");
        size_t len = 0;
        const char *body = koc__serving_request_body(req, &len);
        const char *why;
        char msg[200];

        if (!ct || strncmp(ct, "application/json", 16) != 0) {
                koc__log_ratelimited(&malformed_rl, KOC_LOG_WARN, LOG,
                                     "webhook %s: refused with 400: Content-Type is not "
                                     "application/json",
                                     h->path);
                respond_error(req, h, NULL, 400, "Content-Type: must be application/json");
                return;
        }
        struct job *j = calloc(1, sizeof *j);
        if (!j) {
                respond_error(req, h, NULL, 500, "out of memory");
                return;
        }
        j->w = w;
        j->hook = h;
        j->started = koc_now_boottime_usec();
        j->review = body && len ? cJSON_ParseWithLength(body, len) : NULL;
        if (!j->review)
                why = "not JSON";
        else
                why = h->convert ? koc__webhook_check_conversion_review(j->review, &j->request)
                                 : koc__webhook_check_review(j->review, &j->request);
        if (why) {
                const cJSON *rq = cJSON_GetObjectItemCaseSensitive(j->review, "request");
                const char *uid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rq, "uid"));
                snprintf(msg, sizeof msg, "malformed %s: %s",
                         h->convert ? "ConversionReview" : "AdmissionReview", why);
                koc__log_ratelimited(&malformed_rl, KOC_LOG_WARN, LOG,
                                     "webhook %s: refused with 400: %s", h->path, msg);
                respond_error(req, h, uid && strlen(uid) <= 128 ? uid : NULL, 400, msg);
                job_free(j);
                return;
        }
        j->uid = strdup(cJSON_GetObjectItemCaseSensitive(j->request, "uid")->valuestring);
        if (!j->uid) {
                respond_error(req, h, NULL, 500, "out of memory");
                job_free(j);
                return;
        }

        pthread_mutex_lock(&w->lock);
        bool room = w->running < MAX_THREADS;
        if (room)
                w->running++;
        pthread_mutex_unlock(&w->lock);
        if (!room) {
                koc__log_ratelimited(&busy_rl, KOC_LOG_WARN, LOG,
                                     "webhook %s: refused with 429: %d admission handlers "
                                     "already running",
                                     h->path, MAX_THREADS);
                respond_error(req, h, j->uid, 429, "too many admission requests at once");
                job_free(j);
                return;
        }
        j->req = req;
        int r = sd_event_add_time_relative(w->event, &j->timer, CLOCK_BOOTTIME, w->timeout_usec,
                                           0, on_timeout, j);
        pthread_t t;
        pthread_attr_t attr;
        if (r >= 0 && pthread_attr_init(&attr) == 0) {
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                r = -pthread_create(&t, &attr, worker, j);
                pthread_attr_destroy(&attr);
        } else if (r >= 0)
                r = -ENOMEM;
        if (r < 0) {
                pthread_mutex_lock(&w->lock);
                w->running--;
                pthread_cond_broadcast(&w->idle);
                pthread_mutex_unlock(&w->lock);
                koc__log_ratelimited(&start_rl, KOC_LOG_WARN, LOG,
                                     "webhook %s: refused with 500: cannot start the admission "
                                     "handler: %s",
                                     h->path, strerror(-r));
                respond_error(req, h, j->uid, 500, "cannot start the admission handler");
                job_free(j);
                return;
        }
        koc__serving_request_on_abort(req, on_abort, j);
}

/* --- the server ------------------------------------------------------------------------- */

/* Ready while listening with a certificate the API server can still accept:
 * past its notAfter every call would fail the handshake, so the replica
 * leaves the webhook Service until a rotated pair is loaded. */
static int check_ready(char *why, size_t why_size, void *userdata) {
        koc__webhooks *w = userdata;

        if (!w->server || koc__serving_port(w->server) == 0) {
                snprintf(why, why_size, "the webhook server is not listening");
                return -EAGAIN;
        }
        return koc__serving_check_certificate(w->server, (int64_t)time(NULL), why, why_size);
}

int koc__webhooks_new(sd_event *event, koc_metrics *metrics, koc_probes *probes,
                      const koc__webhooks_config *cfg, koc__webhooks **ret) {
        koc__webhooks *w = calloc(1, sizeof *w);

        if (!w)
                return -ENOMEM;
        pthread_condattr_t ca;
        pthread_mutex_init(&w->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w->idle, &ca);
        pthread_condattr_destroy(&ca);
        w->event = sd_event_ref(event);
        w->metrics = koc_metrics_ref(metrics);
        w->probes = probes ? koc_probes_ref(probes) : NULL;
        w->timeout_usec = cfg->timeout_usec ? cfg->timeout_usec : KOC__WEBHOOK_DEFAULT_TIMEOUT_USEC;
        w->allow_on_timeout = cfg->allow_on_timeout;
        w->disabled = cfg->disabled;
        w->leader_gated = cfg->leader_gated;
        const char *a = cfg->address && cfg->address[0] && strcmp(cfg->address, "0") != 0
                                ? cfg->address
                                : ":9443";
        w->address = strdup(a);
        w->cert_dir = cfg->cert_dir && cfg->cert_dir[0] ? strdup(cfg->cert_dir) : NULL;
        if (!w->address || (cfg->cert_dir && cfg->cert_dir[0] && !w->cert_dir)) {
                koc__webhooks_free(w);
                return -ENOMEM;
        }
        *ret = w;
        return 0;
}

void koc__webhooks_stop(koc__webhooks *w) {
        if (w && w->server)
                koc__serving_stop(w->server);
}

/* Webhook states whose handlers did not return by the bound below: kept,
 * with what their threads still use, until the process exits. */
static koc__webhooks *abandoned;

koc__webhooks *koc__webhooks_free(koc__webhooks *w) {
        if (!w)
                return NULL;
        /* Pending requests are aborted first (503), then the threads are
         * waited for, then their posts run (cancelled) and free the jobs.
         * Every request was answered by its timeout, so a handler still
         * running past the timeout and a grace period never returns in
         * time: it is left behind rather than holding the exit up. */
        w->server = koc__serving_free(w->server);
        uint64_t start = koc_now_boottime_usec();
        uint64_t deadline = start + w->timeout_usec + KOC__WEBHOOK_EXIT_GRACE_USEC;
        unsigned left;
        pthread_mutex_lock(&w->lock);
        while (w->running > 0 && koc_now_boottime_usec() < deadline) {
                struct timespec ts = koc__monotonic_deadline(100 * 1000);
                (void)pthread_cond_timedwait(&w->idle, &w->lock, &ts);
        }
        left = w->running;
        pthread_mutex_unlock(&w->lock);
        if (left > 0) {
                koc_log_warn(LOG, "%u admission handler(s) still running %.1fs after shutdown "
                                  "began (timeout %.1fs): not waiting for them",
                             left, (double)(koc_now_boottime_usec() - start) / KOC_USEC_PER_SEC,
                             (double)w->timeout_usec / KOC_USEC_PER_SEC);
                w->next_abandoned = abandoned;
                abandoned = w;
                return NULL;
        }
        koc__mailbox_free(w->mailbox);
        koc_probes_unref(w->probes);
        koc_metrics_unref(w->metrics);
        sd_event_unref(w->event);
        pthread_cond_destroy(&w->idle);
        pthread_mutex_destroy(&w->lock);
        free(w->address);
        free(w->cert_dir);
        free(w);
        return NULL;
}

uint16_t koc__webhooks_port(const koc__webhooks *w) {
        return w && w->server ? koc__serving_port(w->server) : 0;
}

char *koc__webhooks_cert_pem(const koc__webhooks *w) {
        return w && w->server ? koc__serving_cert_pem(w->server) : NULL;
}

static int start(koc__webhooks *w, koc_error *err) {
        koc_error e = {0};
        int r;

        r = koc__mailbox_new(w->event, 0, &w->mailbox);
        if (r < 0)
                return koc_error_set(err, r, "webhook server: %s", strerror(-r));
        koc_serving_config sc = {
                .name = "webhook",
                .address = w->address,
                .cert_dir = w->cert_dir,
                .metrics = w->metrics,
        };
        r = koc__serving_new(w->event, &sc, &w->server, &e);
        if (r < 0)
                return koc_error_set(err, r, "--webhook-bind-address=\"%s\": %s", w->address,
                                     e.message);
        if (w->probes) {
                r = koc_probes_add_ready_check(w->probes, "webhook", check_ready, w, NULL);
                if (r < 0)
                        return koc_error_set(err, r, "readiness check webhook: %s", strerror(-r));
        }
        koc_log_info(LOG, "admission webhooks served over HTTPS on port %u (%s)",
                     koc__serving_port(w->server),
                     w->cert_dir ? w->cert_dir : "self-signed certificate");
        /* The webhook Service's endpoints follow /readyz: gated on the
         * leader, they would send every admission to one pod, and to none
         * during a failover. */
        if (w->leader_gated)
                koc_log_warn(LOG, "--leader-elect-gate-readiness is on: standbys report not "
                                  "ready and leave the webhook Service; turn it off with "
                                  "webhooks (the chart does)");
        return 0;
}

static void add_latency(struct hook *h) {
        static const double buckets[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
        char labels[320];

        if (!h->w->metrics)
                return;
        snprintf(labels, sizeof labels, "webhook=\"%s\"", h->path);
        if (koc_metrics_add_histogram(h->w->metrics, "controller_runtime_webhook_latency_seconds",
                                      "Time from a webhook request's arrival to its answer.",
                                      labels, buckets, sizeof buckets / sizeof buckets[0],
                                      &h->latency) < 0)
                h->latency = NULL;
}

static void lower_kebab(char *dst, size_t size, const char *s, bool dots) {
        size_t n = strlen(dst);
        for (; *s && n + 1 < size; s++)
                dst[n++] = dots && *s == '.' ? '-'
                           : (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a')
                                                      : *s;
        dst[n] = '\0';
}

int koc__webhooks_add(koc__webhooks *w, const koc_resource *res,
                      koc_webhook_validator_t validate, koc_webhook_defaulter_t set_defaults,
                      void *userdata, koc_error *err) {
        bool mutate = set_defaults != NULL;

        if (!res->version || !res->version[0] || !res->kind || !res->kind[0])
                return koc_error_set(err, -EINVAL, "webhook: the resource needs version and kind");
        if (w->n_hooks >= MAX_HOOKS)
                return koc_error_set(err, -E2BIG, "webhook: at most %d webhooks", MAX_HOOKS);
        struct hook *h = &w->hooks[w->n_hooks];
        *h = (struct hook){.w = w,
                           .mutate = mutate,
                           .validate = validate,
                           .set_defaults = set_defaults,
                           .userdata = userdata};
        snprintf(h->path, sizeof h->path, "%s", mutate ? "/mutate-" : "/validate-");
        lower_kebab(h->path, sizeof h->path, res->group && res->group[0] ? res->group : "core",
                    true);
        lower_kebab(h->path, sizeof h->path, "-", false);
        lower_kebab(h->path, sizeof h->path, res->version, false);
        lower_kebab(h->path, sizeof h->path, "-", false);
        lower_kebab(h->path, sizeof h->path, res->kind, false);
        for (size_t i = 0; i < w->n_hooks; i++)
                if (strcmp(w->hooks[i].path, h->path) == 0)
                        return koc_error_set(err, -EEXIST, "webhook %s: registered twice",
                                             h->path);
        if (w->disabled) {
                w->n_hooks++;
                return 0;
        }
        if (!w->server) {
                int r = start(w, err);
                if (r < 0)
                        return r;
        }
        int r = koc__serving_add_handler(w->server, h->path, "POST", MAX_BODY, serve, h);
        if (r < 0)
                return koc_error_set(err, r, "webhook %s: %s", h->path, strerror(-r));
        add_latency(h);
        w->n_hooks++;
        return 0;
}

static bool name_ok(const char *s, size_t max) {
        return s && s[0] && strlen(s) < max;
}

/* The /convert handler, registered with the first conversion. */
static int add_convert_handler(koc__webhooks *w, koc_error *err) {
        for (size_t i = 0; i < w->n_hooks; i++)
                if (w->hooks[i].convert)
                        return 0;
        if (w->n_hooks >= MAX_HOOKS)
                return koc_error_set(err, -E2BIG, "webhook: at most %d webhooks", MAX_HOOKS);
        struct hook *h = &w->hooks[w->n_hooks];
        *h = (struct hook){.w = w, .convert = true};
        snprintf(h->path, sizeof h->path, "/convert");
        if (!w->disabled) {
                int r = w->server ? 0 : start(w, err);
                if (r < 0)
                        return r;
                r = koc__serving_add_handler(w->server, h->path, "POST", MAX_BODY, serve, h);
                if (r < 0)
                        return koc_error_set(err, r, "webhook /convert: %s", strerror(-r));
                add_latency(h);
        }
        w->n_hooks++;
        return 0;
}

int koc__webhooks_add_conversion(koc__webhooks *w, const char *group, const char *kind,
                                 const char *hub, koc_error *err) {
        if (!name_ok(group, sizeof w->conversions[0].group) ||
            !name_ok(kind, sizeof w->conversions[0].kind) ||
            !name_ok(hub, sizeof w->conversions[0].hub))
                return koc_error_set(err, -EINVAL, "conversion: group, kind and hub version "
                                                   "required");
        if (find_conversion(w, group, kind))
                return koc_error_set(err, -EEXIST, "conversion of %s %s: registered twice",
                                     group, kind);
        if (w->n_conversions >= MAX_CONVERSIONS)
                return koc_error_set(err, -E2BIG, "conversion: at most %d kinds",
                                     MAX_CONVERSIONS);
        int r = add_convert_handler(w, err);
        if (r < 0)
                return r;
        struct conversion *c = &w->conversions[w->n_conversions++];
        *c = (struct conversion){0};
        snprintf(c->group, sizeof c->group, "%s", group);
        snprintf(c->kind, sizeof c->kind, "%s", kind);
        snprintf(c->hub, sizeof c->hub, "%s", hub);
        return 0;
}

int koc__webhooks_add_conversion_spoke(koc__webhooks *w, const char *group, const char *kind,
                                       const char *version, koc_webhook_convert_t to_hub,
                                       koc_webhook_convert_t from_hub, void *userdata,
                                       koc_error *err) {
        struct conversion *c = (struct conversion *)find_conversion(w, group ? group : "",
                                                                    kind ? kind : "");
        if (!c)
                return koc_error_set(err, -ENOENT, "conversion spoke: no hub registered for "
                                                   "%s %s", group ? group : "", kind ? kind : "");
        if (!name_ok(version, sizeof c->spokes[0].version) || !to_hub || !from_hub ||
            strcmp(version, c->hub) == 0)
                return koc_error_set(err, -EINVAL, "conversion spoke of %s: a version other "
                                                   "than the hub and both functions required",
                                     kind);
        if (find_spoke(c, version))
                return koc_error_set(err, -EEXIST, "conversion spoke %s of %s: registered twice",
                                     version, kind);
        if (c->n_spokes >= MAX_SPOKES)
                return koc_error_set(err, -E2BIG, "conversion of %s: at most %d spokes", kind,
                                     MAX_SPOKES);
        struct spoke *sp = &c->spokes[c->n_spokes++];
        snprintf(sp->version, sizeof sp->version, "%s", version);
        sp->to_hub = to_hub;
        sp->from_hub = from_hub;
        sp->userdata = userdata;
        return 0;
}

/* --- the public functions ------------------------------------------------------------ */

KOC_EXPORT int koc_webhook_add_conversion(koc_manager *m, const char *group, const char *kind,
                                          const char *hub_version) {
        koc_error err = {0};
        if (!m)
                return -EINVAL;
        int r = koc__webhooks_add_conversion(koc__manager_webhooks(m), group, kind, hub_version,
                                             &err);
        if (r < 0)
                koc_log_error(LOG, "%s", err.message);
        return r;
}

KOC_EXPORT int koc_webhook_add_conversion_spoke(koc_manager *m, const char *group,
                                                const char *kind, const char *version,
                                                koc_webhook_convert_t to_hub,
                                                koc_webhook_convert_t from_hub, void *userdata) {
        koc_error err = {0};
        if (!m)
                return -EINVAL;
        int r = koc__webhooks_add_conversion_spoke(koc__manager_webhooks(m), group, kind, version,
                                                   to_hub, from_hub, userdata, &err);
        if (r < 0)
                koc_log_error(LOG, "%s", err.message);
        return r;
}

static int add(koc_manager *m, size_t res_size, const koc_resource *res,
               koc_webhook_validator_t validate, koc_webhook_defaulter_t set_defaults,
               void *userdata) {
        koc_resource copy;
        koc_error err = {0};

        if (!m || (!validate && !set_defaults) || KOC__IMPORT(&copy, res, res_size, group) < 0)
                return -EINVAL;
        int r = koc__webhooks_add(koc__manager_webhooks(m), &copy, validate, set_defaults,
                                  userdata, &err);
        if (r < 0)
                koc_log_error(LOG, "%s", err.message);
        return r;
}

KOC_EXPORT int koc_webhook_add_validator_sized(koc_manager *m, size_t res_size,
                                               const koc_resource *res,
                                               koc_webhook_validator_t fn, void *userdata) {
        if (!fn)
                return -EINVAL;
        return add(m, res_size, res, fn, NULL, userdata);
}

KOC_EXPORT int koc_webhook_add_defaulter_sized(koc_manager *m, size_t res_size,
                                               const koc_resource *res,
                                               koc_webhook_defaulter_t fn, void *userdata) {
        if (!fn)
                return -EINVAL;
        return add(m, res_size, res, NULL, fn, userdata);
}

KOC_EXPORT int koc_manager_get_webhook_port(koc_manager *m, uint16_t *ret_port) {
        if (!m || !ret_port)
                return -EINVAL;
        uint16_t p = koc__webhooks_port(koc__manager_webhooks(m));
        if (p == 0)
                return -ENOENT;
        *ret_port = p;
        return 0;
}

KOC_EXPORT char *koc_manager_get_webhook_cert_pem(koc_manager *m) {
        return m ? koc__webhooks_cert_pem(koc__manager_webhooks(m)) : NULL;
}

/* SPDX-License-Identifier: Apache-2.0 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/ratelimit.h"
#include "koc/log.h"
#include "koc/time.h"
#include "serving/authz.h"

#define LOG "serving"
#define MAX_GROUPS KOC__SERVING_MAX_GROUPS
#define MAX_NAME KOC__SERVING_MAX_NAME
#define MAX_TOKEN 8192

typedef koc__serving_identity identity;

typedef struct authn_entry {
        uint8_t key[32];
        bool used;
        bool authenticated;
        identity who;
        uint64_t expires, at;
} authn_entry;

typedef struct authz_entry {
        uint8_t key[32];
        bool used;
        bool allowed;
        uint64_t expires, at;
} authz_entry;

enum result { RES_ALLOWED, RES_UNAUTHENTICATED, RES_FORBIDDEN, RES_UNAVAILABLE, _RES_MAX };
static const char *const result_names[_RES_MAX] = {"allowed", "unauthenticated", "forbidden",
                                                   "unavailable"};
enum review { REV_TOKEN, REV_ACCESS, _REV_MAX };
static const char *const review_names[_REV_MAX] = {"tokenreview", "subjectaccessreview"};

struct koc__serving_authz {
        koc_client *client;
        uint64_t authn_ttl, allow_ttl, deny_ttl, timeout;
        size_t max_entries;
        authn_entry *authn;
        authz_entry *authz;
        koc__ratelimit rl;
        koc_metric *m_results[_RES_MAX];
        koc_metric *m_reviews[_REV_MAX];
        koc_metric *m_errors[_REV_MAX];
};

typedef struct review_ctx {
        koc__serving_authz *a;
        koc_serving_request *req;
        koc_request *call;
        uint8_t token_key[32];
        uint8_t authz_key[32]; /* set by authorize() before the review is sent */
        identity who;
} review_ctx;

void koc__serving_identity_clear(koc__serving_identity *w) {
        free(w->user);
        free(w->uid);
        for (size_t i = 0; i < w->n_groups; i++)
                free(w->groups[i]);
        *w = (identity){0};
}

#define identity_clear koc__serving_identity_clear

static int identity_copy(identity *dst, const identity *src) {
        *dst = (identity){0};
        dst->user = strdup(src->user ? src->user : "");
        dst->uid = src->uid ? strdup(src->uid) : NULL;
        for (size_t i = 0; i < src->n_groups; i++) {
                dst->groups[i] = strdup(src->groups[i]);
                if (!dst->groups[i])
                        break;
                dst->n_groups++;
        }
        if (!dst->user || (src->uid && !dst->uid) || dst->n_groups != src->n_groups) {
                identity_clear(dst);
                return -ENOMEM;
        }
        return 0;
}

static void count(koc_metric *m) {
        if (m)
                koc_metric_inc(m);
}

/* --- the caches ---------------------------------------------------------------- */

static void sha256(const void *data, size_t len, uint8_t out[32]) {
        if (gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, out) < 0)
                memset(out, 0, 32); /* cannot happen with a working GnuTLS */
}

/* The slot for key: its entry, else a free or expired one, else the oldest. */
#define CACHE_SLOT(arr, n, key, now, ret_found)                                                    \
        ({                                                                                         \
                size_t _best = 0;                                                                  \
                bool _found = false;                                                               \
                for (size_t _i = 0; _i < (n); _i++) {                                              \
                        if ((arr)[_i].used && memcmp((arr)[_i].key, (key), 32) == 0) {             \
                                _best = _i;                                                        \
                                _found = true;                                                     \
                                break;                                                             \
                        }                                                                          \
                        if (!(arr)[_best].used)                                                    \
                                continue;                                                          \
                        bool _bexp = (arr)[_best].expires <= (now);                                \
                        bool _iexp = (arr)[_i].expires <= (now);                                   \
                        bool _older = (arr)[_i].at < (arr)[_best].at;                              \
                        if (!(arr)[_i].used || (_iexp && (!_bexp || _older)) ||                    \
                            (!_iexp && !_bexp && _older))                                          \
                                _best = _i;                                                        \
                }                                                                                  \
                *(ret_found) = _found;                                                             \
                &(arr)[_best];                                                                     \
        })

static const authn_entry *authn_lookup(koc__serving_authz *a, const uint8_t key[32]) {
        uint64_t now = koc_now_boottime_usec();
        bool found;
        authn_entry *e = CACHE_SLOT(a->authn, a->max_entries, key, now, &found);
        return found && e->expires > now ? e : NULL;
}

static void authn_store(koc__serving_authz *a, const uint8_t key[32], bool ok, const identity *w) {
        uint64_t now = koc_now_boottime_usec();
        bool found;
        authn_entry *e = CACHE_SLOT(a->authn, a->max_entries, key, now, &found);
        identity_clear(&e->who);
        e->used = false;
        if (ok && identity_copy(&e->who, w) < 0)
                return;
        memcpy(e->key, key, 32);
        e->used = true;
        e->authenticated = ok;
        e->at = now;
        e->expires = now + a->authn_ttl;
}

static void authz_key(const identity *w, const char *verb, const char *path, uint8_t out[32]) {
        /* Every field ends with a NUL, so no two requests share a key. */
        size_t len = strlen(w->user) + 1 + (w->uid ? strlen(w->uid) : 0) + 1 + strlen(verb) + 1 +
                     strlen(path) + 1;
        for (size_t i = 0; i < w->n_groups; i++)
                len += strlen(w->groups[i]) + 1;
        char *buf = malloc(len), *p = buf;
        if (!buf) {
                memset(out, 0xff, 32);
                return;
        }
        p = stpcpy(p, w->user) + 1;
        p = stpcpy(p, w->uid ? w->uid : "") + 1;
        p = stpcpy(p, verb) + 1;
        p = stpcpy(p, path) + 1;
        for (size_t i = 0; i < w->n_groups; i++)
                p = stpcpy(p, w->groups[i]) + 1;
        sha256(buf, len, out);
        free(buf);
}

static const authz_entry *authz_lookup(koc__serving_authz *a, const uint8_t key[32]) {
        uint64_t now = koc_now_boottime_usec();
        bool found;
        authz_entry *e = CACHE_SLOT(a->authz, a->max_entries, key, now, &found);
        return found && e->expires > now ? e : NULL;
}

static void authz_store(koc__serving_authz *a, const uint8_t key[32], bool allowed) {
        uint64_t now = koc_now_boottime_usec();
        bool found;
        authz_entry *e = CACHE_SLOT(a->authz, a->max_entries, key, now, &found);
        memcpy(e->key, key, 32);
        e->used = true;
        e->allowed = allowed;
        e->at = now;
        e->expires = now + (allowed ? a->allow_ttl : a->deny_ttl);
}

/* --- answers ------------------------------------------------------------------- */

static void finish(koc__serving_authz *a, koc_serving_request *req, enum result res,
                   const identity *w) {
        count(a->m_results[res]);
        switch (res) {
        case RES_ALLOWED:
                koc__serving_next(req);
                return;
        case RES_UNAUTHENTICATED: {
                const char *h[] = {"WWW-Authenticate", "Bearer", NULL};
                char *t = strdup("Unauthorized\n");
                koc__serving_respond(req, 401, NULL, t, t ? strlen(t) : 0, h);
                return;
        }
        case RES_FORBIDDEN: {
                char user[128], *t = NULL;
                size_t j = 0;
                /* The name comes from the API server: printable ASCII only. */
                for (const char *p = w && w->user ? w->user : ""; *p && j < sizeof user - 4; p++)
                        user[j++] = (*p >= 0x20 && *p < 0x7f && *p != '"') ? *p : '?';
                user[j] = 0;
                if (asprintf(&t, "Forbidden: user \"%s\" may not %s %s\n", user,
                             koc__serving_request_method(req),
                             koc__serving_request_path(req)) < 0)
                        t = NULL;
                koc__serving_respond(req, 403, NULL, t, t ? strlen(t) : 0, NULL);
                return;
        }
        default:
                koc__serving_respond_text(req, 503, "Service Unavailable: the cluster could not "
                                                    "check the request's credentials\n");
        }
}

static void review_failed(review_ctx *ctx, enum review which, const char *why) {
        koc__serving_authz *a = ctx->a;
        count(a->m_errors[which]);
        koc__log_ratelimited(&a->rl, KOC_LOG_WARN, LOG,
                             "%s failed, refusing %s %s with 503: %s", review_names[which],
                             koc__serving_request_method(ctx->req),
                             koc__serving_request_path(ctx->req), why);
        finish(a, ctx->req, RES_UNAVAILABLE, NULL);
}

static void ctx_free(review_ctx *ctx) {
        if (!ctx)
                return;
        identity_clear(&ctx->who);
        free(ctx);
}

static void ctx_abort(void *userdata) {
        review_ctx *ctx = userdata;
        if (ctx->call)
                koc_request_cancel(ctx->call);
        ctx_free(ctx);
}

static const char *lower_verb(const char *method, char *buf, size_t size) {
        size_t i = 0;
        for (; method[i] && i + 1 < size; i++)
                buf[i] = (char)tolower((unsigned char)method[i]);
        buf[i] = 0;
        return buf;
}

static void on_access_review(koc_client *c, koc_response *resp, void *userdata);

/* Authorises an authenticated request: from the cache, or a review (ctx
 * NULL: none yet, one is made when needed). */
static void authorize(koc__serving_authz *a, koc_serving_request *req, const identity *w,
                      review_ctx *ctx) {
        char verb[16];
        uint8_t key[32];
        lower_verb(koc__serving_request_method(req), verb, sizeof verb);
        authz_key(w, verb, koc__serving_request_path(req), key);
        const authz_entry *e = authz_lookup(a, key);
        if (e) {
                koc__serving_request_on_abort(req, NULL, NULL);
                finish(a, req, e->allowed ? RES_ALLOWED : RES_FORBIDDEN, w);
                ctx_free(ctx);
                return;
        }
        if (!ctx) {
                ctx = calloc(1, sizeof(*ctx));
                if (!ctx || identity_copy(&ctx->who, w) < 0) {
                        free(ctx);
                        finish(a, req, RES_UNAVAILABLE, NULL);
                        return;
                }
                ctx->a = a;
                ctx->req = req;
        }
        memcpy(ctx->authz_key, key, 32);
        cJSON *body = cJSON_CreateObject();
        cJSON *spec = cJSON_AddObjectToObject(body, "spec");
        cJSON *nr = cJSON_AddObjectToObject(spec, "nonResourceAttributes");
        cJSON_AddStringToObject(body, "apiVersion", "authorization.k8s.io/v1");
        cJSON_AddStringToObject(body, "kind", "SubjectAccessReview");
        cJSON_AddStringToObject(spec, "user", ctx->who.user);
        if (ctx->who.uid)
                cJSON_AddStringToObject(spec, "uid", ctx->who.uid);
        cJSON *groups = cJSON_AddArrayToObject(spec, "groups");
        for (size_t i = 0; i < ctx->who.n_groups; i++)
                cJSON_AddItemToArray(groups, cJSON_CreateString(ctx->who.groups[i]));
        cJSON_AddStringToObject(nr, "path", koc__serving_request_path(req));
        cJSON_AddStringToObject(nr, "verb", verb);
        koc_request_spec rs = {.method = "POST",
                               .path = "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                               .body = body,
                               .timeout_usec = a->timeout,
                               .max_response_size = 64 * 1024};
        count(a->m_reviews[REV_ACCESS]);
        int r = koc_client_request(a->client, &rs, on_access_review, ctx, &ctx->call);
        cJSON_Delete(body);
        if (r < 0) {
                char why[64];
                snprintf(why, sizeof why, "cannot send: %s", strerror(-r));
                koc__serving_request_on_abort(req, NULL, NULL);
                review_failed(ctx, REV_ACCESS, why);
                ctx_free(ctx);
                return;
        }
        koc__serving_request_on_abort(req, ctx_abort, ctx);
}

static bool answered_ok(koc_response *resp) {
        return resp->error == 0 && (resp->status == 200 || resp->status == 201) && resp->body;
}

static void say_bad_answer(review_ctx *ctx, enum review which, koc_response *resp,
                           const char *what) {
        char why[320];
        if (resp->error)
                snprintf(why, sizeof why, "%s", resp->message);
        else if (resp->status != 200 && resp->status != 201)
                snprintf(why, sizeof why, "HTTP %ld: %s", resp->status, resp->message);
        else
                snprintf(why, sizeof why, "bad answer: %s", what);
        review_failed(ctx, which, why);
}

int koc__serving_parse_access_review(const cJSON *body) {
        const cJSON *allowed = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(body, "status"), "allowed");
        if (!cJSON_IsBool(allowed))
                return -EBADMSG;
        return cJSON_IsTrue(allowed) ? 1 : 0;
}

static void on_access_review(koc_client *c, koc_response *resp, void *userdata) {
        review_ctx *ctx = userdata;
        koc__serving_authz *a = ctx->a;
        ctx->call = NULL;
        koc__serving_request_on_abort(ctx->req, NULL, NULL);
        int allowed = answered_ok(resp) ? koc__serving_parse_access_review(resp->body) : -EBADMSG;
        if (allowed < 0) {
                say_bad_answer(ctx, REV_ACCESS, resp, "no status.allowed");
                ctx_free(ctx);
                return;
        }
        bool ok = allowed > 0;
        authz_store(a, ctx->authz_key, ok);
        finish(a, ctx->req, ok ? RES_ALLOWED : RES_FORBIDDEN, &ctx->who);
        ctx_free(ctx);
}

static bool name_ok(const cJSON *s) {
        return cJSON_IsString(s) && s->valuestring[0] && strlen(s->valuestring) <= MAX_NAME;
}

/* status.user of a TokenReview that authenticated; false when malformed. */
static bool parse_user(const cJSON *user, identity *w) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(user, "username");
        const cJSON *uid = cJSON_GetObjectItemCaseSensitive(user, "uid");
        const cJSON *groups = cJSON_GetObjectItemCaseSensitive(user, "groups");
        const cJSON *g;
        if (!name_ok(name) || (uid && !cJSON_IsString(uid)) || (groups && !cJSON_IsArray(groups)))
                return false;
        if (cJSON_GetArraySize(groups) > MAX_GROUPS)
                return false;
        cJSON_ArrayForEach(g, groups) if (!name_ok(g)) return false;
        w->user = strdup(name->valuestring);
        w->uid = uid && uid->valuestring[0] && strlen(uid->valuestring) <= MAX_NAME
                         ? strdup(uid->valuestring)
                         : NULL;
        cJSON_ArrayForEach(g, groups) {
                char *d = strdup(g->valuestring);
                if (!d)
                        return false;
                w->groups[w->n_groups++] = d;
        }
        return w->user != NULL;
}

int koc__serving_parse_token_review(const cJSON *body, koc__serving_identity *ret,
                                    const char **why) {
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(body, "status");
        const cJSON *authenticated = cJSON_GetObjectItemCaseSensitive(status, "authenticated");

        *ret = (identity){0};
        if (!cJSON_IsObject(status) || (authenticated && !cJSON_IsBool(authenticated))) {
                *why = "no status";
                return -EBADMSG;
        }
        /* An absent "authenticated" is false, as Go reads it. */
        if (!cJSON_IsTrue(authenticated))
                return 0;
        if (!parse_user(cJSON_GetObjectItemCaseSensitive(status, "user"), ret)) {
                identity_clear(ret);
                *why = "status.user malformed";
                return -EBADMSG;
        }
        return 1;
}

static void on_token_review(koc_client *c, koc_response *resp, void *userdata) {
        review_ctx *ctx = userdata;
        koc__serving_authz *a = ctx->a;
        ctx->call = NULL;
        koc__serving_request_on_abort(ctx->req, NULL, NULL);
        const char *why = "no status";
        int r = answered_ok(resp) ? koc__serving_parse_token_review(resp->body, &ctx->who, &why)
                                  : -EBADMSG;
        if (r < 0) {
                say_bad_answer(ctx, REV_TOKEN, resp, why);
                ctx_free(ctx);
                return;
        }
        if (r == 0) {
                authn_store(a, ctx->token_key, false, NULL);
                finish(a, ctx->req, RES_UNAUTHENTICATED, NULL);
                ctx_free(ctx);
                return;
        }
        authn_store(a, ctx->token_key, true, &ctx->who);
        authorize(a, ctx->req, &ctx->who, ctx);
}

/* The token of "Authorization: Bearer TOKEN" (the scheme in any case, as
 * Kubernetes' bearer token authenticator reads it), or NULL. */
static const char *bearer(const char *h) {
        if (!h || strncasecmp(h, "bearer ", 7) != 0)
                return NULL;
        h += 7;
        while (*h == ' ')
                h++;
        size_t n = strlen(h);
        if (n == 0 || n > MAX_TOKEN || strpbrk(h, " \t\r\n"))
                return NULL;
        return h;
}

void koc__serving_authz_filter(koc_serving_request *req, void *userdata) {
        koc__serving_authz *a = userdata;
        const char *token = bearer(koc__serving_request_header(req, "Authorization"));
        uint8_t key[32];

        if (!token) {
                finish(a, req, RES_UNAUTHENTICATED, NULL);
                return;
        }
        sha256(token, strlen(token), key);
        const authn_entry *e = authn_lookup(a, key);
        if (e) {
                if (!e->authenticated)
                        finish(a, req, RES_UNAUTHENTICATED, NULL);
                else
                        authorize(a, req, &e->who, NULL);
                return;
        }
        review_ctx *ctx = calloc(1, sizeof(*ctx));
        if (!ctx) {
                finish(a, req, RES_UNAVAILABLE, NULL);
                return;
        }
        ctx->a = a;
        ctx->req = req;
        memcpy(ctx->token_key, key, 32);
        cJSON *body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "apiVersion", "authentication.k8s.io/v1");
        cJSON_AddStringToObject(body, "kind", "TokenReview");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(body, "spec"), "token", token);
        koc_request_spec rs = {.method = "POST",
                               .path = "/apis/authentication.k8s.io/v1/tokenreviews",
                               .body = body,
                               .timeout_usec = a->timeout,
                               .max_response_size = 64 * 1024};
        count(a->m_reviews[REV_TOKEN]);
        int r = koc_client_request(a->client, &rs, on_token_review, ctx, &ctx->call);
        cJSON_Delete(body);
        if (r < 0) {
                char why[64];
                snprintf(why, sizeof why, "cannot send: %s", strerror(-r));
                review_failed(ctx, REV_TOKEN, why);
                ctx_free(ctx);
                return;
        }
        koc__serving_request_on_abort(req, ctx_abort, ctx);
}

/* --- lifetime ------------------------------------------------------------------ */

koc__serving_authz *koc__serving_authz_free(koc__serving_authz *a) {
        if (!a)
                return NULL;
        for (size_t i = 0; a->authn && i < a->max_entries; i++)
                identity_clear(&a->authn[i].who);
        free(a->authn);
        free(a->authz);
        koc_client_unref(a->client);
        free(a);
        return NULL;
}

static int register_metrics(koc__serving_authz *a, koc_metrics *m, const char *server) {
        char labels[160];
        int r = 0;
        for (int i = 0; r >= 0 && i < _RES_MAX; i++) {
                snprintf(labels, sizeof labels, "server=\"%s\",result=\"%s\"", server,
                         result_names[i]);
                r = koc_metrics_add_counter(m, "koc_serving_auth_requests_total",
                                            "Requests by the outcome of their authentication "
                                            "and authorisation.",
                                            labels, &a->m_results[i]);
        }
        for (int i = 0; r >= 0 && i < _REV_MAX; i++) {
                snprintf(labels, sizeof labels, "server=\"%s\",review=\"%s\"", server,
                         review_names[i]);
                r = koc_metrics_add_counter(m, "koc_serving_auth_reviews_total",
                                            "TokenReviews and SubjectAccessReviews sent (cache "
                                            "misses).",
                                            labels, &a->m_reviews[i]);
                if (r >= 0)
                        r = koc_metrics_add_counter(m, "koc_serving_auth_review_errors_total",
                                                    "Reviews that failed or answered "
                                                    "nonsense (the request got 503).",
                                                    labels, &a->m_errors[i]);
        }
        return r;
}

int koc__serving_authz_new(const koc__serving_authz_config *cfg, koc__serving_authz **ret) {
        if (!cfg || !cfg->client || !ret)
                return -EINVAL;
        koc__serving_authz *a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->client = koc_client_ref(cfg->client);
        a->authn_ttl = cfg->authn_ttl_usec ? cfg->authn_ttl_usec : 60 * KOC_USEC_PER_SEC;
        a->allow_ttl = cfg->allow_ttl_usec ? cfg->allow_ttl_usec : 300 * KOC_USEC_PER_SEC;
        a->deny_ttl = cfg->deny_ttl_usec ? cfg->deny_ttl_usec : 30 * KOC_USEC_PER_SEC;
        a->timeout = cfg->review_timeout_usec ? cfg->review_timeout_usec : 10 * KOC_USEC_PER_SEC;
        a->max_entries = cfg->max_entries ? cfg->max_entries : 1024;
        a->rl = (koc__ratelimit)KOC__RATELIMIT_INIT(10 * KOC_USEC_PER_SEC, 1);
        a->authn = calloc(a->max_entries, sizeof(*a->authn));
        a->authz = calloc(a->max_entries, sizeof(*a->authz));
        int r = a->authn && a->authz ? 0 : -ENOMEM;
        if (r >= 0 && cfg->metrics)
                r = register_metrics(a, cfg->metrics,
                                     cfg->server_name ? cfg->server_name : "metrics");
        if (r < 0) {
                koc__serving_authz_free(a);
                return r;
        }
        *ret = a;
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Admission and conversion webhooks on a manager (koc/webhook.h), asked
 * directly with hand-made AdmissionReviews and ConversionReviews (hub and
 * spoke, round trip, failures) over HTTPS (the self-signed certificate
 * trusted): a defaulter's JSON Patch, a validator's refusal with its message
 * (403) and its warnings, the uid echoed, a late handler answered within the
 * timeout, hostile reviews answered 400 with a message, too large 413, the
 * "webhook" readiness check.  On koc-apiserver (the manager needs a
 * cluster; the webhooks do not use it). */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "harness/apiserver.h"
#include "koc/manager.h"
#include "koc/metrics.h"
#include "koc/webhook.h"

#define GROUP_PATH "cache-example-com-v1alpha1-memcached"


/* The webhooks' timeout: long enough for a fast handler under valgrind,
 * which runs some twenty times slower, and well below the late one's 4 s. */
static uint64_t webhook_timeout_ms(void) {
        return getenv("KOC_UNDER_VALGRIND") ? 1200 : 500;
}
static const koc_resource memcacheds = {.group = "cache.example.com",
                                        .version = "v1alpha1",
                                        .resource = "memcacheds",
                                        .kind = "Memcached",
                                        .namespaced = true};
static const koc_resource slows = {
        .group = "cache.example.com", .version = "v1alpha1", .resource = "slows", .kind = "Slow"};

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- the handlers ------------------------------------------------------------------- */

static int set_defaults(koc_admission *a, cJSON *object, void *userdata) {
        cJSON *spec = cJSON_GetObjectItemCaseSensitive(object, "spec");
        if (!spec)
                spec = cJSON_AddObjectToObject(object, "spec");
        if (!cJSON_IsObject(spec))
                return koc_admission_deny(a, "spec: must be an object");
        if (!cJSON_GetObjectItemCaseSensitive(spec, "containerPort"))
                cJSON_AddNumberToObject(spec, "containerPort", 11211);
        return 0;
}

static int validate(koc_admission *a, void *userdata) {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(koc_admission_get_object(a), "metadata");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "name"));
        if (name && strlen(name) > 40)
                return koc_admission_deny(a, "metadata.name: at most 40 characters");
        if (strcmp(koc_admission_get_operation(a), "UPDATE") == 0)
                koc_admission_warn(a, "spec.size: changed");
        return 0;
}

/* Slow handlers outlive their manager (left behind at its exit): the
 * tests wait for them before they end. */
static atomic_int slow_running;
static int validate_slowly(koc_admission *a, void *userdata) {
        atomic_fetch_add(&slow_running, 1);
        usleep(4000 * 1000);
        atomic_fetch_sub(&slow_running, 1);
        return 0;
}

static void wait_slow_handlers(void) {
        for (int i = 0; i < 1000 && atomic_load(&slow_running) > 0; i++)
                usleep(10 * 1000);
        assert_int_equal(atomic_load(&slow_running), 0);
        usleep(200 * 1000); /* and their threads' last steps */
}

/* A handler that does not return until the test lets it (after the manager
 * is gone). */
static atomic_bool stuck_entered, stuck_release, stuck_done;
static int validate_stuck(koc_admission *a, void *userdata) {
        atomic_store(&stuck_entered, true);
        while (!atomic_load(&stuck_release))
                usleep(10 * 1000);
        atomic_store(&stuck_done, true);
        return 0;
}

/* v1alpha1 (spec.size) is a spoke of the hub v1 (spec.replicas). */
static int rename_field(cJSON *object, const char *from, const char *to) {
        cJSON *spec = cJSON_GetObjectItemCaseSensitive(object, "spec");
        cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(spec, from);
        if (!v)
                return 0;
        if (cJSON_IsNumber(v) && v->valuedouble < 0) {
                cJSON_Delete(v);
                return -ERANGE;
        }
        cJSON_AddItemToObject(spec, to, v);
        return 0;
}

static int alpha_to_hub(cJSON *object, void *userdata) {
        return rename_field(object, "size", "replicas");
}

static int alpha_from_hub(cJSON *object, void *userdata) {
        return rename_field(object, "replicas", "size");
}

/* --- the client ---------------------------------------------------------------------- */

typedef struct scenario {
        void (*drive)(struct scenario *sc);
        koc_manager *m;
        uint16_t port, health;
        char *ca;
        int wake_fd;
        char failure[1024];
} scenario;

#define CHECK(sc, cond, ...)                                                                       \
        do {                                                                                       \
                if (!(cond) && !(sc)->failure[0])                                                  \
                        snprintf((sc)->failure, sizeof(sc)->failure, __VA_ARGS__);                 \
        } while (0)

typedef struct answer {
        long code;
        char *body;
        cJSON *json;
        cJSON *response; /* borrowed from json */
} answer;

static answer post(scenario *sc, const char *path, const char *ctype, const char *body,
                   size_t len) {
        answer a = {0};
        koc_test_buffer b = {0};
        char url[256], ct[128];
        struct curl_slist *h = NULL;
        CURL *e = curl_easy_init();
        assert_non_null(e);
        snprintf(url, sizeof url, "https://127.0.0.1:%u%s", sc->port, path);
        curl_easy_setopt(e, CURLOPT_URL, url);
        struct curl_blob ca = {.data = sc->ca, .len = strlen(sc->ca), .flags = CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &ca);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, koc_test_buffer_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
        if (body) {
                curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)len);
        }
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
        h = curl_slist_append(h, ct);
        h = curl_slist_append(h, "Expect:");
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        CURLcode c = curl_easy_perform(e);
        if (c != CURLE_OK)
                a.code = -(long)c;
        else
                curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &a.code);
        a.body = b.data ? b.data : strdup("");
        a.json = cJSON_Parse(a.body);
        a.response = cJSON_GetObjectItemCaseSensitive(a.json, "response");
        curl_slist_free_all(h);
        curl_easy_cleanup(e);
        return a;
}

static answer review(scenario *sc, const char *path, const char *request) {
        char *body = NULL;
        assert_true(asprintf(&body,
                             "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                             "\"request\":%s}",
                             request) > 0);
        answer a = post(sc, path, "application/json", body, strlen(body));
        free(body);
        return a;
}

static void answer_free(answer *a) {
        free(a->body);
        cJSON_Delete(a->json);
}

static const char *rstr(const answer *a, const char *k) {
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a->response, k));
}

static bool allowed(const answer *a) {
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a->response, "allowed"));
}

static int status_code(const answer *a) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(a->response, "status");
        return (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(s, "code"));
}

static const char *status_message(const answer *a) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(a->response, "status");
        const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "message"));
        return m ? m : "";
}

static char *unbase64(const char *in) {
        static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t n = strlen(in), o = 0;
        char *out = calloc(n + 1, 1);
        unsigned v = 0, bits = 0;
        for (size_t i = 0; i < n && in[i] != '='; i++) {
                const char *p = strchr(t, in[i]);
                if (!p)
                        break;
                v = (v << 6) | (unsigned)(p - t);
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (char)((v >> bits) & 0xff);
                }
        }
        return out;
}

#define OBJ(name, spec)                                                                            \
        "{\"apiVersion\":\"cache.example.com/v1alpha1\",\"kind\":\"Memcached\","                   \
        "\"metadata\":{\"name\":\"" name "\",\"namespace\":\"default\"},\"spec\":" spec "}"

static answer conversion(scenario *sc, const char *request) {
        char *body = NULL;
        assert_true(asprintf(&body,
                             "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"ConversionReview\","
                             "\"request\":%s}",
                             request) > 0);
        answer a = post(sc, "/convert", "application/json", body, strlen(body));
        free(body);
        return a;
}

static const char *result_status(const answer *a) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(a->response, "result");
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "status"));
        return s ? s : "";
}

static const char *result_message(const answer *a) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(a->response, "result");
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "message"));
        return s ? s : "";
}

#define ALPHA "{\"apiVersion\":\"cache.example.com/v1alpha1\",\"kind\":\"Memcached\"," \
              "\"metadata\":{\"name\":\"m\"},\"spec\":{\"size\":3,\"containerPort\":1}}"

static void drive_conversion(scenario *sc) {
        /* v1alpha1 -> v1 (through no hub step: v1 is the hub). */
        answer a = conversion(sc, "{\"uid\":\"c-1\",\"desiredAPIVersion\":\"cache.example.com/v1\","
                                  "\"objects\":[" ALPHA "]}");
        CHECK(sc, a.code == 200 && strcmp(result_status(&a), "Success") == 0 &&
                          rstr(&a, "uid") && strcmp(rstr(&a, "uid"), "c-1") == 0,
              "convert: %ld %s", a.code, a.body);
        const cJSON *objs = cJSON_GetObjectItemCaseSensitive(a.response, "convertedObjects");
        const cJSON *v1 = cJSON_GetArrayItem(objs, 0);
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(v1, "spec");
        CHECK(sc, cJSON_GetArraySize(objs) == 1 &&
                          strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v1, "apiVersion")) ?: "",
                                 "cache.example.com/v1") == 0 &&
                          cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(spec, "replicas")) == 3 &&
                          !cJSON_GetObjectItemCaseSensitive(spec, "size"),
              "converted to v1: %s", a.body);
        /* And back: the round trip gives the original. */
        char *v1s = cJSON_PrintUnformatted(v1), *req = NULL;
        assert_true(asprintf(&req, "{\"uid\":\"c-2\",\"desiredAPIVersion\":\"cache.example.com/v1alpha1\","
                                   "\"objects\":[%s]}", v1s ? v1s : "null") > 0);
        answer b = conversion(sc, req);
        cJSON *orig = cJSON_Parse(ALPHA);
        const cJSON *back = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(b.response, "convertedObjects"), 0);
        CHECK(sc, strcmp(result_status(&b), "Success") == 0 && back && cJSON_Compare(back, orig, 1),
              "round trip: %s", b.body);
        cJSON_Delete(orig);
        free(v1s);
        free(req);
        answer_free(&a);
        answer_free(&b);
        /* Same version: unchanged. */
        a = conversion(sc, "{\"uid\":\"c-3\",\"desiredAPIVersion\":\"cache.example.com/v1alpha1\","
                           "\"objects\":[" ALPHA "]}");
        orig = cJSON_Parse(ALPHA);
        CHECK(sc, cJSON_Compare(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(a.response, "convertedObjects"), 0),
                                orig, 1), "same version: %s", a.body);
        cJSON_Delete(orig);
        answer_free(&a);
        /* A spoke's failure, an unknown version or kind: Failure with a message. */
        static const struct {
                const char *request, *says;
        } failing[] = {
                {"{\"uid\":\"c-4\",\"desiredAPIVersion\":\"cache.example.com/v1\",\"objects\":["
                 "{\"apiVersion\":\"cache.example.com/v1alpha1\",\"kind\":\"Memcached\","
                 "\"metadata\":{\"name\":\"neg\"},\"spec\":{\"size\":-1}}]}",
                 "Memcached neg from v1alpha1 to v1"},
                {"{\"uid\":\"c-5\",\"desiredAPIVersion\":\"cache.example.com/v2\",\"objects\":[" ALPHA "]}",
                 "no conversion between v1alpha1 and v2"},
                {"{\"uid\":\"c-6\",\"desiredAPIVersion\":\"cache.example.com/v1\",\"objects\":["
                 "{\"apiVersion\":\"cache.example.com/v1alpha1\",\"kind\":\"Other\"}]}",
                 "no conversion for cache.example.com Other"},
                {"{\"uid\":\"c-7\",\"desiredAPIVersion\":\"other.io/v1\",\"objects\":[" ALPHA "]}",
                 "cannot be converted to group other.io"},
                {"{\"uid\":\"c-8\",\"desiredAPIVersion\":\"cache.example.com/v1\",\"objects\":[1]}",
                 "without apiVersion or kind"},
        };
        for (size_t i = 0; i < sizeof failing / sizeof failing[0]; i++) {
                a = conversion(sc, failing[i].request);
                CHECK(sc, a.code == 200 && strcmp(result_status(&a), "Failure") == 0 &&
                                  strstr(result_message(&a), failing[i].says) &&
                                  !cJSON_GetObjectItemCaseSensitive(a.response, "convertedObjects"),
                      "conversion failure %zu: %s", i, a.body);
                answer_free(&a);
        }
        /* Malformed: 400. */
        static const struct {
                const char *body, *says;
        } bad[] = {
                {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}", "kind"},
                {"{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"ConversionReview\","
                 "\"request\":{\"desiredAPIVersion\":\"a/v1\",\"objects\":[]}}", "request.uid"},
                {"{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"ConversionReview\","
                 "\"request\":{\"uid\":\"x\",\"objects\":[]}}", "request.desiredAPIVersion"},
                {"{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"ConversionReview\","
                 "\"request\":{\"uid\":\"x\",\"desiredAPIVersion\":\"a/v1\",\"objects\":{}}}",
                 "request.objects"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                a = post(sc, "/convert", "application/json", bad[i].body, strlen(bad[i].body));
                CHECK(sc, a.code == 400 && strcmp(result_status(&a), "Failure") == 0 &&
                                  strstr(result_message(&a), bad[i].says),
                      "bad conversion %zu: %ld %s", i, a.code, a.body);
                answer_free(&a);
        }
}

static void drive(scenario *sc) {
        answer a;

        drive_conversion(sc);

        /* The defaulter: a JSON Patch that adds the port, the uid echoed. */
        a = review(sc, "/mutate-" GROUP_PATH,
                   "{\"uid\":\"u-1\",\"operation\":\"CREATE\",\"object\":" OBJ("m", "{\"size\":1}") "}");
        CHECK(sc, a.code == 200 && allowed(&a), "mutate: %ld %s", a.code, a.body);
        CHECK(sc, rstr(&a, "uid") && strcmp(rstr(&a, "uid"), "u-1") == 0, "uid: %s", a.body);
        CHECK(sc, rstr(&a, "patchType") && strcmp(rstr(&a, "patchType"), "JSONPatch") == 0,
              "patchType: %s", a.body);
        char *patch = rstr(&a, "patch") ? unbase64(rstr(&a, "patch")) : strdup("");
        CHECK(sc, strcmp(patch, "[{\"op\":\"add\",\"path\":\"/spec/containerPort\",\"value\":11211}]") == 0,
              "patch: %s", patch);
        free(patch);
        answer_free(&a);
        /* Nothing to default: no patch. */
        a = review(sc, "/mutate-" GROUP_PATH,
                   "{\"uid\":\"u-2\",\"operation\":\"CREATE\",\"object\":" OBJ(
                           "m", "{\"size\":1,\"containerPort\":1}") "}");
        CHECK(sc, a.code == 200 && allowed(&a) && !rstr(&a, "patch"), "no patch: %s", a.body);
        answer_free(&a);

        /* The validator: refusal with the message, 403; warnings. */
        a = review(sc, "/validate-" GROUP_PATH,
                   "{\"uid\":\"u-3\",\"operation\":\"CREATE\",\"object\":" OBJ(
                           "a-name-that-is-much-longer-than-forty-characters", "{}") "}");
        CHECK(sc, a.code == 200 && !allowed(&a) && status_code(&a) == 403 &&
                          strstr(status_message(&a), "metadata.name"),
              "deny: %ld %s", a.code, a.body);
        CHECK(sc, rstr(&a, "uid") && strcmp(rstr(&a, "uid"), "u-3") == 0, "uid: %s", a.body);
        answer_free(&a);
        a = review(sc, "/validate-" GROUP_PATH,
                   "{\"uid\":\"u-4\",\"operation\":\"UPDATE\",\"object\":" OBJ("m", "{}") ","
                   "\"oldObject\":" OBJ("m", "{}") "}");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(a.response, "warnings");
        CHECK(sc, allowed(&a) && cJSON_GetArraySize(w) == 1 &&
                          strcmp(cJSON_GetStringValue(cJSON_GetArrayItem(w, 0)), "spec.size: changed") == 0,
              "warnings: %s", a.body);
        answer_free(&a);

        /* Late (the handler takes 4 s): answered within the timeout (500 ms; 1.2 s
         * under valgrind),
         * refused, saying so. */
        uint64_t t0 = now_ms();
        a = review(sc, "/validate-cache-example-com-v1alpha1-slow",
                   "{\"uid\":\"u-5\",\"operation\":\"CREATE\",\"object\":" OBJ("m", "{}") "}");
        uint64_t took = now_ms() - t0;
        CHECK(sc, a.code == 200 && !allowed(&a) && strstr(status_message(&a), "did not answer within"),
              "late: %ld %s", a.code, a.body);
        CHECK(sc, took < webhook_timeout_ms() + 2500, "late answer took %llu ms",
              (unsigned long long)took);
        CHECK(sc, rstr(&a, "uid") && strcmp(rstr(&a, "uid"), "u-5") == 0, "uid: %s", a.body);
        answer_free(&a);

        /* Hostile reviews: 400 with a message. */
        static const struct {
                const char *body, *ctype, *says;
        } bad[] = {
                {"{not json", "application/json", "not JSON"},
                {"", "application/json", "not JSON"},
                {"[]", "application/json", "not a JSON object"},
                {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"Pod\",\"request\":{}}",
                 "application/json", "kind"},
                {"{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\","
                 "\"request\":{\"uid\":\"x\"}}",
                 "application/json", "apiVersion"},
                {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
                 "application/json", "request"},
                {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                 "\"request\":{\"operation\":\"CREATE\",\"object\":{}}}",
                 "application/json", "request.uid"},
                {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                 "\"request\":{\"uid\":7,\"operation\":\"CREATE\",\"object\":{}}}",
                 "application/json", "request.uid"},
                {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                 "\"request\":{\"uid\":\"x\",\"operation\":\"CREATE\"}}",
                 "application/json", "request.object"},
                {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                 "\"request\":{\"uid\":\"x\",\"operation\":\"PATCH\",\"object\":{}}}",
                 "application/json", "request.operation"},
                {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                 "\"request\":{\"uid\":\"x\",\"operation\":\"UPDATE\",\"object\":{}}}",
                 "application/json", "request.oldObject"},
                {"{}", "text/plain", "Content-Type"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                a = post(sc, "/validate-" GROUP_PATH, bad[i].ctype, bad[i].body, strlen(bad[i].body));
                CHECK(sc, a.code == 400 && !allowed(&a) && status_code(&a) == 400 &&
                                  strstr(status_message(&a), bad[i].says),
                      "hostile %zu: %ld %s", i, a.code, a.body);
                answer_free(&a);
        }
        /* The uid of a bad review is echoed when there is one. */
        a = post(sc, "/mutate-" GROUP_PATH, "application/json",
                 "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                 "\"request\":{\"uid\":\"u-6\",\"operation\":\"UPDATE\",\"object\":{}}}",
                 strlen("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                        "\"request\":{\"uid\":\"u-6\",\"operation\":\"UPDATE\",\"object\":{}}}"));
        CHECK(sc, a.code == 400 && rstr(&a, "uid") && strcmp(rstr(&a, "uid"), "u-6") == 0,
              "bad uid echo: %s", a.body);
        answer_free(&a);
        /* Over 3 MiB: 413, never read whole. */
        size_t big = (3u << 20) + 10;
        char *huge = malloc(big);
        memset(huge, ' ', big);
        a = post(sc, "/validate-" GROUP_PATH, "application/json", huge, big);
        CHECK(sc, a.code == 413, "huge: %ld", a.code);
        answer_free(&a);
        free(huge);
        /* Unknown path. */
        a = post(sc, "/validate-nothing", "application/json", "{}", 2);
        CHECK(sc, a.code == 404, "unknown path: %ld", a.code);
        answer_free(&a);

        /* Readiness of its own: /readyz/webhook on the health port. */
        koc_test_buffer b = {0};
        char url[64];
        CURL *e = curl_easy_init();
        snprintf(url, sizeof url, "http://127.0.0.1:%u/readyz/webhook", sc->health);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, koc_test_buffer_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
        long code = 0;
        if (curl_easy_perform(e) == CURLE_OK)
                curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        CHECK(sc, code == 200, "/readyz/webhook: %ld %s", code, b.data ? b.data : "");
        free(b.data);
        curl_easy_cleanup(e);
}

/* --webhook-allow-on-timeout: the late handler's request is allowed. */
static void drive_allow(scenario *sc) {
        uint64_t t0 = now_ms();
        answer a = review(sc, "/validate-cache-example-com-v1alpha1-slow",
                          "{\"uid\":\"u-9\",\"operation\":\"CREATE\",\"object\":" OBJ("m", "{}") "}");
        uint64_t took = now_ms() - t0;
        CHECK(sc, a.code == 200 && allowed(&a) && rstr(&a, "uid") && strcmp(rstr(&a, "uid"), "u-9") == 0,
              "late, allowed: %ld %s", a.code, a.body);
        CHECK(sc, took < webhook_timeout_ms() + 2500, "late answer took %llu ms",
              (unsigned long long)took);
        answer_free(&a);
}

static void *driver(void *p) {
        scenario *sc = p;
        sc->drive(sc);
        uint64_t one = 1;
        (void)!write(sc->wake_fd, &one, sizeof one);
        return NULL;
}

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        scenario *sc = userdata;
        uint64_t n;
        (void)!read(fd, &n, sizeof n);
        (void)koc_manager_shutdown(sc->m);
        return 0;
}

/* The manager configuration every scenario shares: no leader election,
 * probes on a free port, no metrics, webhooks on a free port with the test's
 * timeout. */
static void webhook_config(koc_manager_config *cfg, const koc_test_apiserver *api) {
        koc_manager_config_init(cfg);
        cfg->kubeconfig = api->kubeconfig;
        cfg->leader_elect = false;
        cfg->handle_signals = false;
        cfg->health_probe_bind_address = "127.0.0.1:0";
        cfg->metrics_bind_address = "0";
        cfg->webhook_bind_address = "127.0.0.1:0";
        cfg->webhook_timeout_usec = webhook_timeout_ms() * 1000;
}

/* Runs the manager until the scenario's driver thread has done its part. */
static void scenario_run(scenario *sc, sd_event *e) {
        assert_int_equal(koc_manager_get_webhook_port(sc->m, &sc->port), 0);
        assert_int_equal(koc_manager_get_health_port(sc->m, &sc->health), 0);
        sc->ca = koc_manager_get_webhook_cert_pem(sc->m);
        assert_non_null(sc->ca);
        sc->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        sd_event_source *wake = NULL;
        assert_int_equal(sd_event_add_io(e, &wake, sc->wake_fd, EPOLLIN, on_wake, sc), 0);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, driver, sc), 0);
        (void)koc_manager_run(sc->m);
        pthread_join(t, NULL);
        sd_event_source_disable_unref(wake);
        close(sc->wake_fd);
}

static void test_allow_on_timeout(void **state) {
        koc_test_apiserver api;
        assert_int_equal(koc_test_apiserver_start(&api, ""), 0);
        koc_manager_config cfg;
        koc_error err = {0};
        webhook_config(&cfg, &api);
        cfg.webhook_allow_on_timeout = true;
        cfg.shutdown_budget_usec = 2 * KOC_USEC_PER_SEC;
        scenario sc = {.drive = drive_allow};
        sd_event *e = NULL;
        assert_int_equal(sd_event_new(&e), 0);
        if (koc_manager_new(e, &cfg, &sc.m, &err) < 0)
                fail_msg("manager: %s", err.message);
        assert_int_equal(koc_webhook_add_validator(sc.m, &slows, validate_slowly, NULL), 0);
        scenario_run(&sc, e);
        sc.m = koc_manager_unref(sc.m);
        sd_event_unref(e);
        free(sc.ca);
        koc_test_apiserver_stop(&api);
        wait_slow_handlers();
        assert_string_equal(sc.failure, "");
}

/* The stuck handler's request is answered at the timeout; then shutdown. */
static void drive_stuck(scenario *sc) {
        answer a = review(sc, "/validate-cache-example-com-v1alpha1-slow",
                          "{\"uid\":\"u-s\",\"operation\":\"CREATE\",\"object\":" OBJ("m", "{}") "}");
        CHECK(sc, a.code == 200 && !allowed(&a) && strstr(status_message(&a), "did not answer within"),
              "stuck: %ld %s", a.code, a.body);
        CHECK(sc, atomic_load(&stuck_entered), "the stuck handler never ran");
        answer_free(&a);
}

/* A handler that never returns does not hold the exit up: the manager is
 * freed within the timeout and a grace period of 2 s, saying so. */
static void test_stuck_handler(void **state) {
        koc_test_apiserver api;
        assert_int_equal(koc_test_apiserver_start(&api, ""), 0);
        koc_manager_config cfg;
        koc_error err = {0};
        webhook_config(&cfg, &api);
        cfg.shutdown_budget_usec = 2 * KOC_USEC_PER_SEC;
        scenario sc = {.drive = drive_stuck};
        sd_event *e = NULL;
        assert_int_equal(sd_event_new(&e), 0);
        if (koc_manager_new(e, &cfg, &sc.m, &err) < 0)
                fail_msg("manager: %s", err.message);
        assert_int_equal(koc_webhook_add_validator(sc.m, &slows, validate_stuck, NULL), 0);
        scenario_run(&sc, e);
        uint64_t t0 = now_ms();
        sc.m = koc_manager_unref(sc.m);
        uint64_t took = now_ms() - t0;
        sd_event_unref(e);
        free(sc.ca);
        koc_test_apiserver_stop(&api);
        assert_string_equal(sc.failure, "");
        print_message("manager freed %llu ms after the stuck handler's request\n",
                      (unsigned long long)took);
        assert_true(took < webhook_timeout_ms() + 2000 + 1500);
        assert_false(atomic_load(&stuck_done));
        /* Let the handler go, and its thread end, before the next test. */
        atomic_store(&stuck_release, true);
        for (int i = 0; i < 500 && !atomic_load(&stuck_done); i++)
                usleep(10 * 1000);
        assert_true(atomic_load(&stuck_done));
        usleep(200 * 1000);
}

static void test_webhooks(void **state) {
        koc_test_apiserver api;
        assert_int_equal(koc_test_apiserver_start(&api, ""), 0);
        koc_manager_config cfg;
        koc_error err = {0};
        webhook_config(&cfg, &api);
        cfg.shutdown_budget_usec = 2 * KOC_USEC_PER_SEC;
        scenario sc = {.drive = drive};
        sd_event *e = NULL;
        assert_int_equal(sd_event_new(&e), 0);
        if (koc_manager_new(e, &cfg, &sc.m, &err) < 0)
                fail_msg("manager: %s", err.message);
        uint16_t port;
        assert_int_equal(koc_manager_get_webhook_port(sc.m, &port), -ENOENT);
        assert_int_equal(koc_webhook_add_defaulter(sc.m, &memcacheds, set_defaults, NULL), 0);
        assert_int_equal(koc_webhook_add_validator(sc.m, &memcacheds, validate, NULL), 0);
        assert_int_equal(koc_webhook_add_validator(sc.m, &memcacheds, validate, NULL), -EEXIST);
        assert_int_equal(koc_webhook_add_validator(sc.m, &slows, validate_slowly, NULL), 0);
        assert_int_equal(koc_webhook_add_conversion_spoke(sc.m, "cache.example.com", "Memcached",
                                                          "v1alpha1", alpha_to_hub,
                                                          alpha_from_hub, NULL),
                         -ENOENT);
        assert_int_equal(koc_webhook_add_conversion(sc.m, "cache.example.com", "Memcached", "v1"), 0);
        assert_int_equal(koc_webhook_add_conversion(sc.m, "cache.example.com", "Memcached", "v1"),
                         -EEXIST);
        assert_int_equal(koc_webhook_add_conversion_spoke(sc.m, "cache.example.com", "Memcached",
                                                          "v1", alpha_to_hub, alpha_from_hub, NULL),
                         -EINVAL);
        assert_int_equal(koc_webhook_add_conversion_spoke(sc.m, "cache.example.com", "Memcached",
                                                          "v1alpha1", alpha_to_hub,
                                                          alpha_from_hub, NULL),
                         0);
        scenario_run(&sc, e);
        /* controller-runtime's webhook metrics. */
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(koc_metrics_render(koc_manager_get_metrics(sc.m), &text, &len), 0);
        static const char *const want[] = {
                "controller_runtime_webhook_requests_total{webhook=\"/validate-" GROUP_PATH
                "\",code=\"400\"} 12\n",
                "controller_runtime_webhook_requests_total{webhook=\"/mutate-" GROUP_PATH
                "\",code=\"200\"} 2\n",
                "controller_runtime_webhook_requests_total{webhook=\"/mutate-" GROUP_PATH
                "\",code=\"400\"} 1\n",
                "controller_runtime_webhook_latency_seconds_count{webhook=\"/validate-" GROUP_PATH
                "\"} 2\n",
                "controller_runtime_webhook_latency_seconds_count{webhook=\"/convert\"} 8\n",
        };
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
                if (!strstr(text, want[i]))
                        fail_msg("metrics: no %s in\n%s", want[i], text);
        free(text);
        sc.m = koc_manager_unref(sc.m);
        sd_event_unref(e);
        free(sc.ca);
        koc_test_apiserver_stop(&api);
        wait_slow_handlers();
        assert_string_equal(sc.failure, "");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_webhooks),
                cmocka_unit_test(test_stuck_handler),
                cmocka_unit_test(test_allow_on_timeout),
        };
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int r = cmocka_run_group_tests(tests, NULL, NULL);
        curl_global_cleanup();
        return r;
}

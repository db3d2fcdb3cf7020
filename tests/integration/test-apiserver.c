/* SPDX-License-Identifier: Apache-2.0 */
/* koc-apiserver against its wire contract: CRUD, concurrency, validation,
 * selectors and paging, patches, finalizers, the status subresource,
 * watches, authentication, bad requests, fault injection and metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness/apiserver.h"

static koc_test_apiserver srv;

#define LEASES "/apis/coordination.k8s.io/v1/namespaces/default/leases"

/* ---- helpers ---- */

static long req(const char *method, const char *path, const char *body, const char *ct,
                cJSON **ret) {
        char *out = NULL;
        long code = koc_test_apiserver_http(&srv, method, path, body, ct, &out);
        if (ret) {
                *ret = out ? cJSON_Parse(out) : NULL;
                if (!*ret)
                        fprintf(stderr, "unparsable body for %s %s: %s\n", method, path,
                                out ? out : "(none)");
        }
        free(out);
        return code;
}

static const char *str(const cJSON *o, const char *path) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", path);
        const cJSON *cur = o;
        for (char *save = NULL, *t = strtok_r(buf, ".", &save); cur && t;
             t = strtok_r(NULL, ".", &save))
                cur = cJSON_GetObjectItemCaseSensitive(cur, t);
        return cJSON_IsString(cur) ? cur->valuestring : NULL;
}

static double num(const cJSON *o, const char *path) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", path);
        const cJSON *cur = o;
        for (char *save = NULL, *t = strtok_r(buf, ".", &save); cur && t;
             t = strtok_r(NULL, ".", &save))
                cur = cJSON_GetObjectItemCaseSensitive(cur, t);
        return cJSON_IsNumber(cur) ? cur->valuedouble : -1;
}

static unsigned long long rv_of(const cJSON *o) {
        const char *rv = str(o, "metadata.resourceVersion");
        assert_non_null(rv);
        return strtoull(rv, NULL, 10);
}

static void assert_status(const cJSON *s, int code, const char *reason) {
        assert_non_null(s);
        assert_string_equal(str(s, "kind"), "Status");
        assert_string_equal(str(s, "apiVersion"), "v1");
        assert_string_equal(str(s, "status"), "Failure");
        assert_int_equal((int)num(s, "code"), code);
        if (reason)
                assert_string_equal(str(s, "reason"), reason);
        else
                assert_null(str(s, "reason"));
        assert_non_null(cJSON_GetObjectItemCaseSensitive(s, "metadata"));
}

static cJSON *create_lease(const char *name, const char *holder) {
        char body[512];
        cJSON *o = NULL;
        snprintf(body, sizeof body,
                 "{\"apiVersion\":\"coordination.k8s.io/"
                 "v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":\"%s\"},"
                 "\"spec\":{\"holderIdentity\":\"%s\",\"leaseDurationSeconds\":1,"
                 "\"renewTime\":\"2026-01-01T00:00:00.000000Z\"}}",
                 name, holder);
        assert_int_equal(req("POST", LEASES, body, NULL, &o), 201);
        return o;
}

/* A streaming watch driven by curl multi, so the test can write while it
 * reads; every wait is bounded. */
typedef struct watcher {
        CURLM *m;
        CURL *e;
        struct curl_slist *h;
        char *data;
        size_t len;
        bool done;
        long code;
        CURLcode result;
} watcher;

static size_t on_watch_data(char *p, size_t size, size_t n, void *userdata) {
        watcher *w = userdata;
        char *d = realloc(w->data, w->len + size * n + 1);
        if (!d)
                return 0;
        memcpy(d + w->len, p, size * n);
        w->data = d;
        w->len += size * n;
        d[w->len] = 0;
        return size * n;
}

static void pump(watcher *w, int ms) {
        int running;
        CURLMsg *msg;
        int left;
        curl_multi_perform(w->m, &running);
        while ((msg = curl_multi_info_read(w->m, &left)))
                if (msg->msg == CURLMSG_DONE) {
                        w->done = true;
                        w->result = msg->data.result;
                        curl_easy_getinfo(w->e, CURLINFO_RESPONSE_CODE, &w->code);
                }
        if (!w->done)
                curl_multi_poll(w->m, NULL, 0, ms, NULL);
}

static long watcher_code(watcher *w) {
        long code = 0;
        curl_easy_getinfo(w->e, CURLINFO_RESPONSE_CODE, &code);
        return code;
}

/* How many 25 ms pumps a wait may take: 10 s, or 60 s when the test or the
 * server runs under valgrind (on a loaded 2-core machine 100 watches under
 * valgrind take longer than 10 s to set up).  Waits end as soon as the
 * condition holds, so a long bound costs nothing when things work. */
static int wait_rounds(void) {
        const char *v = getenv("KOC_UNDER_VALGRIND"), *w = getenv("KOC_APISERVER_WRAPPER");
        return (v && *v) || (w && *w) ? 2400 : 400;
}

/* Starts the request without waiting for anything. */
static void watcher_begin(watcher *w, const char *path) {
        char url[1024], auth[200];
        memset(w, 0, sizeof *w);
        w->m = curl_multi_init();
        w->e = curl_easy_init();
        snprintf(url, sizeof url, "%s%s", srv.url, path);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", srv.token);
        w->h = curl_slist_append(NULL, auth);
        curl_easy_setopt(w->e, CURLOPT_URL, url);
        curl_easy_setopt(w->e, CURLOPT_HTTPHEADER, w->h);
        curl_easy_setopt(w->e, CURLOPT_CAINFO, srv.ca_file);
        curl_easy_setopt(w->e, CURLOPT_WRITEFUNCTION, on_watch_data);
        curl_easy_setopt(w->e, CURLOPT_WRITEDATA, w);
        /* The whole watch: 30 s, or six times as long as the waits under
         * valgrind, where 100 TLS handshakes driven in turn on a loaded
         * machine took longer than 30 s. */
        curl_easy_setopt(w->e, CURLOPT_TIMEOUT, wait_rounds() > 400 ? 180L : 30L);
        curl_multi_add_handle(w->m, w->e);
}

/* Starts a watch and waits (at most 5 s) for the response headers, so the
 * watch is registered before the test goes on. */
static void watcher_start(watcher *w, const char *path) {
        watcher_begin(w, path);
        for (int i = 0; i < 200 && !w->done && !watcher_code(w); i++)
                pump(w, 25);
}

static int watcher_lines(const watcher *w) {
        int n = 0;
        for (size_t i = 0; i < w->len; i++)
                n += w->data[i] == '\n';
        return n;
}

/* Waits (at most 10 s) until n lines arrived or the stream ended. */

static int watcher_wait(watcher *w, int n) {
        for (int i = 0, max = wait_rounds(); i < max && !w->done && watcher_lines(w) < n; i++)
                pump(w, 25);
        return watcher_lines(w);
}

static void watcher_wait_done(watcher *w) {
        for (int i = 0, max = wait_rounds(); i < max && !w->done; i++)
                pump(w, 25);
}

static cJSON *watcher_event(const watcher *w, int idx) {
        const char *p = w->data;
        for (int i = 0; i < idx && p; i++) {
                p = strchr(p, '\n');
                if (p)
                        p++;
        }
        if (!p || !*p)
                return NULL;
        const char *nl = strchr(p, '\n');
        return cJSON_ParseWithLength(p, nl ? (size_t)(nl - p) : strlen(p));
}

static void assert_event(const watcher *w, int idx, const char *type, const char *name) {
        cJSON *ev = watcher_event(w, idx);
        assert_non_null(ev);
        assert_string_equal(str(ev, "type"), type);
        if (name)
                assert_string_equal(str(ev, "object.metadata.name"), name);
        cJSON_Delete(ev);
}

static void watcher_stop(watcher *w) {
        curl_multi_remove_handle(w->m, w->e);
        curl_easy_cleanup(w->e);
        curl_multi_cleanup(w->m);
        curl_slist_free_all(w->h);
        free(w->data);
}

/* ---- tests ---- */

static void test_auth(void **state) {
        koc_test_apiserver bad = srv;
        cJSON *o = NULL;
        char *body = NULL;

        snprintf(bad.token, sizeof bad.token, "wrong");
        assert_int_equal(koc_test_apiserver_http(&bad, "GET", LEASES, NULL, NULL, &body), 401);
        o = cJSON_Parse(body);
        assert_status(o, 401, "Unauthorized");
        assert_string_equal(str(o, "message"), "Unauthorized");
        cJSON_Delete(o);
        free(body);
        bad.token[0] = 0;
        assert_int_equal(
                koc_test_apiserver_http(&bad, "GET", "/api/v1/namespaces", NULL, NULL, NULL), 401);
        /* Health and version are public, as on the real server. */
        assert_int_equal(koc_test_apiserver_http(&bad, "GET", "/healthz", NULL, NULL, NULL), 200);
        assert_int_equal(koc_test_apiserver_http(&bad, "GET", "/version", NULL, NULL, NULL), 200);
        assert_int_equal(req("GET", "/api/v1/namespaces/default", NULL, NULL, &o), 200);
        assert_string_equal(str(o, "kind"), "Namespace");
        cJSON_Delete(o);
}

static void test_lease_crud(void **state) {
        cJSON *a = create_lease("crud", "pod-a"), *o = NULL;
        char body[1024];

        assert_string_equal(str(a, "kind"), "Lease");
        assert_string_equal(str(a, "metadata.namespace"), "default");
        assert_int_equal(strlen(str(a, "metadata.uid")), 36);
        assert_non_null(str(a, "metadata.creationTimestamp"));
        unsigned long long rv1 = rv_of(a);

        /* AlreadyExists, shaped like the real server's. */
        snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"crud\"}}");
        assert_int_equal(req("POST", LEASES, body, NULL, &o), 409);
        assert_status(o, 409, "AlreadyExists");
        assert_string_equal(str(o, "message"),
                            "leases.coordination.k8s.io \"crud\" already exists");
        assert_string_equal(str(o, "details.name"), "crud");
        assert_string_equal(str(o, "details.group"), "coordination.k8s.io");
        assert_string_equal(str(o, "details.kind"), "leases");
        cJSON_Delete(o);

        assert_int_equal(req("GET", LEASES "/crud", NULL, NULL, &o), 200);
        assert_string_equal(str(o, "spec.holderIdentity"), "pod-a");
        assert_string_equal(str(o, "metadata.uid"), str(a, "metadata.uid"));
        cJSON_Delete(o);

        assert_int_equal(req("GET", LEASES "/nope", NULL, NULL, &o), 404);
        assert_status(o, 404, "NotFound");
        assert_string_equal(str(o, "message"), "leases.coordination.k8s.io \"nope\" not found");
        assert_string_equal(str(o, "details.kind"), "leases");
        cJSON_Delete(o);

        /* Update with the current resourceVersion. */
        snprintf(body, sizeof body,
                 "{\"metadata\":{\"name\":\"crud\",\"resourceVersion\":\"%llu\"},"
                 "\"spec\":{\"holderIdentity\":\"pod-b\",\"leaseDurationSeconds\":1}}",
                 rv1);
        assert_int_equal(req("PUT", LEASES "/crud", body, NULL, &o), 200);
        unsigned long long rv2 = rv_of(o);
        assert_true(rv2 > rv1);
        assert_string_equal(str(o, "spec.holderIdentity"), "pod-b");
        assert_string_equal(str(o, "metadata.uid"), str(a, "metadata.uid"));
        assert_string_equal(str(o, "metadata.creationTimestamp"),
                            str(a, "metadata.creationTimestamp"));
        cJSON_Delete(o);

        /* The same write again is stale now: 409 Conflict. */
        assert_int_equal(req("PUT", LEASES "/crud", body, NULL, &o), 409);
        assert_status(o, 409, "Conflict");
        assert_string_equal(
                str(o, "message"),
                "Operation cannot be fulfilled on leases.coordination.k8s.io \"crud\": the object "
                "has been modified; please apply your changes to the latest version and try again");
        cJSON_Delete(o);

        /* Leases need a resourceVersion on update. */
        assert_int_equal(
                req("PUT", LEASES "/crud",
                    "{\"metadata\":{\"name\":\"crud\"},\"spec\":{\"holderIdentity\":\"x\"}}", NULL,
                    &o),
                422);
        assert_status(o, 422, "Invalid");
        assert_string_equal(str(o, "details.kind"), "Lease");
        cJSON *cause = cJSON_GetArrayItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(o, "details"), "causes"), 0);
        assert_string_equal(str(cause, "field"), "metadata.resourceVersion");
        cJSON_Delete(o);

        /* A no-op update keeps the resourceVersion. */
        assert_int_equal(req("GET", LEASES "/crud", NULL, NULL, &o), 200);
        char *same = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        assert_int_equal(req("PUT", LEASES "/crud", same, NULL, &o), 200);
        assert_int_equal(rv_of(o), rv2);
        cJSON_Delete(o);
        free(same);

        /* Leases (like the real server's lease strategy) may be created by
         * PUT; ConfigMaps may not. */
        assert_int_equal(
                req("PUT", LEASES "/made-by-put",
                    "{\"metadata\":{\"name\":\"made-by-put\"},\"spec\":{\"holderIdentity\":\"p\"}}",
                    NULL, &o),
                201);
        assert_string_equal(str(o, "spec.holderIdentity"), "p");
        assert_non_null(str(o, "metadata.uid"));
        cJSON_Delete(o);
        assert_int_equal(
                req("PUT", LEASES "/made-by-put2", "{\"metadata\":{\"name\":\"other\"}}", NULL, &o),
                400);
        cJSON_Delete(o);
        assert_int_equal(req("PUT", "/api/v1/namespaces/default/configmaps/missing",
                             "{\"metadata\":{\"name\":\"missing\"}}", NULL, &o),
                         404);
        cJSON_Delete(o);
        /* An immediate delete answers a Status, as the real server does. */
        assert_int_equal(req("DELETE", LEASES "/crud", NULL, NULL, &o), 200);
        assert_string_equal(str(o, "kind"), "Status");
        assert_string_equal(str(o, "status"), "Success");
        assert_string_equal(str(o, "details.name"), "crud");
        assert_string_equal(str(o, "details.kind"), "leases");
        cJSON_Delete(o);
        assert_int_equal(req("GET", LEASES "/crud", NULL, NULL, NULL), 404);
        assert_int_equal(req("DELETE", LEASES "/crud", NULL, NULL, NULL), 404);
        cJSON_Delete(a);
}

static void test_configmap_and_generate_name(void **state) {
        cJSON *o = NULL;
        assert_int_equal(req("POST", "/api/v1/namespaces/default/configmaps",
                             "{\"metadata\":{\"generateName\":\"cm-\"},\"data\":{\"a\":\"1\"}}",
                             NULL, &o),
                         201);
        const char *name = str(o, "metadata.name");
        assert_non_null(name);
        assert_int_equal(strncmp(name, "cm-", 3), 0);
        assert_int_equal(strlen(name), 8);
        assert_string_equal(str(o, "kind"), "ConfigMap");
        assert_string_equal(str(o, "apiVersion"), "v1");
        char path[256], body[256];
        snprintf(path, sizeof path, "/api/v1/namespaces/default/configmaps/%s", name);
        /* ConfigMaps allow an unconditional update (no resourceVersion). */
        snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"%s\"},\"data\":{\"a\":\"2\"}}",
                 name);
        cJSON_Delete(o);
        assert_int_equal(req("PUT", path, body, NULL, &o), 200);
        assert_string_equal(str(o, "data.a"), "2");
        cJSON_Delete(o);
        /* Name on the URL and in the body must agree. */
        assert_int_equal(req("PUT", path, "{\"metadata\":{\"name\":\"other\"}}", NULL, &o), 400);
        assert_status(o, 400, "BadRequest");
        cJSON_Delete(o);
        /* Invalid names are 422. */
        assert_int_equal(req("POST", "/api/v1/namespaces/default/configmaps",
                             "{\"metadata\":{\"name\":\"Bad_Name\"}}", NULL, &o),
                         422);
        assert_status(o, 422, "Invalid");
        cJSON_Delete(o);
        assert_int_equal(
                req("POST", "/api/v1/namespaces/default/configmaps", "{\"metadata\":{}}", NULL, &o),
                422);
        cJSON_Delete(o);
}

static void test_lease_validation(void **state) {
        cJSON *o = NULL;
        assert_int_equal(
                req("POST", LEASES,
                    "{\"metadata\":{\"name\":\"v1\"},\"spec\":{\"leaseDurationSeconds\":0}}", NULL,
                    &o),
                422);
        assert_status(o, 422, "Invalid");
        assert_string_equal(
                str(o, "message"),
                "Lease.coordination.k8s.io \"v1\" is invalid: spec.leaseDurationSeconds: Invalid "
                "value: 0: must be greater than 0");
        cJSON_Delete(o);
        assert_int_equal(req("POST", LEASES,
                             "{\"metadata\":{\"name\":\"v2\"},\"spec\":{\"leaseTransitions\":-1}}",
                             NULL, &o),
                         422);
        cJSON_Delete(o);
        /* MicroTime needs exactly six fractional digits: a decoding error. */
        assert_int_equal(req("POST", LEASES,
                             "{\"metadata\":{\"name\":\"v3\"},\"spec\":{\"renewTime\":\"2026-01-"
                             "01T00:00:00.123Z\"}}",
                             NULL, &o),
                         400);
        assert_status(o, 400, "BadRequest");
        cJSON_Delete(o);
        assert_int_equal(
                req("POST", LEASES,
                    "{\"metadata\":{\"name\":\"v4\"},\"spec\":{\"acquireTime\":\"yesterday\"}}",
                    NULL, &o),
                400);
        cJSON_Delete(o);
        assert_int_equal(
                req("POST", LEASES,
                    "{\"metadata\":{\"name\":\"v5\"},\"spec\":{\"leaseDurationSeconds\":\"ten\"}}",
                    NULL, &o),
                400);
        cJSON_Delete(o);
        assert_int_equal(
                req("POST", LEASES,
                    "{\"metadata\":{\"name\":\"v6\"},\"spec\":{\"holderIdentity\":\"a\","
                    "\"leaseDurationSeconds\":15,\"acquireTime\":\"2026-01-01T00:00:00.000000+02:"
                    "00\","
                    "\"renewTime\":\"2026-01-01T00:00:00.123456Z\",\"leaseTransitions\":0}}",
                    NULL, &o),
                201);
        cJSON_Delete(o);
        assert_int_equal(req("GET", LEASES "/v1", NULL, NULL, NULL), 404);
}

static int count_items(const cJSON *list) {
        return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(list, "items"));
}

static int list_count(const char *query) {
        char path[512];
        cJSON *o = NULL;
        snprintf(path, sizeof path, "/api/v1/namespaces/sel/configmaps?%s", query);
        long code = req("GET", path, NULL, NULL, &o);
        int n = code == 200 ? count_items(o) : -(int)code;
        cJSON_Delete(o);
        return n;
}

static void test_list_selectors_and_paging(void **state) {
        static const char *const tiers[] = {"web", "web", "db", "cache", NULL};
        cJSON *o = NULL;
        for (int i = 0; i < 5; i++) {
                char body[256];
                if (tiers[i])
                        snprintf(body, sizeof body,
                                 "{\"metadata\":{\"name\":\"c%d\",\"labels\":{\"tier\":\"%s\","
                                 "\"n\":\"%d\"}}}",
                                 i, tiers[i], i);
                else
                        snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"c%d\"}}", i);
                assert_int_equal(req("POST", "/api/v1/namespaces/sel/configmaps", body, NULL, NULL),
                                 201);
        }
        assert_int_equal(req("POST", "/api/v1/namespaces/other/configmaps",
                             "{\"metadata\":{\"name\":\"c0\"}}", NULL, NULL),
                         201);

        assert_int_equal(list_count(""), 5);
        assert_int_equal(list_count("labelSelector=tier%3Dweb"), 2);
        assert_int_equal(list_count("labelSelector=tier%3D%3Dweb"), 2);
        assert_int_equal(list_count("labelSelector=tier!%3Dweb"),
                         3); /* includes the unlabelled one */
        assert_int_equal(list_count("labelSelector=tier%20in%20(db,cache)"), 2);
        assert_int_equal(list_count("labelSelector=tier%20notin%20(web)"), 3);
        assert_int_equal(list_count("labelSelector=tier"), 4);
        assert_int_equal(list_count("labelSelector=!tier"), 1);
        assert_int_equal(list_count("labelSelector=tier%3Dweb,n%3D1"), 1);
        assert_int_equal(list_count("fieldSelector=metadata.name%3Dc3"), 1);
        assert_int_equal(list_count("fieldSelector=metadata.name!%3Dc3"), 4);
        assert_int_equal(list_count("fieldSelector=metadata.namespace%3Dsel"), 5);
        assert_int_equal(list_count("labelSelector=tier%20in%20(web"), -400);

        /* All namespaces. */
        assert_int_equal(
                req("GET", "/api/v1/configmaps?fieldSelector=metadata.name%3Dc0", NULL, NULL, &o),
                200);
        assert_int_equal(count_items(o), 2);
        assert_string_equal(str(o, "kind"), "ConfigMapList");
        assert_string_equal(str(o, "apiVersion"), "v1");
        assert_non_null(str(o, "metadata.resourceVersion"));
        cJSON_Delete(o);

        /* Paging: limit 2 walks all five, in order, without repeats. */
        char path[1024] = "/api/v1/namespaces/sel/configmaps?limit=2";
        char seen[64] = "";
        int pages = 0;
        for (;;) {
                assert_int_equal(req("GET", path, NULL, NULL, &o), 200);
                cJSON *it;
                cJSON_ArrayForEach(it, cJSON_GetObjectItem(o, "items"))
                        strcat(seen, str(it, "metadata.name"));
                pages++;
                const char *cont = str(o, "metadata.continue");
                if (!cont) {
                        cJSON_Delete(o);
                        break;
                }
                assert_true(num(o, "metadata.remainingItemCount") > 0);
                char *esc = curl_easy_escape(NULL, cont, 0);
                snprintf(path, sizeof path, "/api/v1/namespaces/sel/configmaps?limit=2&continue=%s",
                         esc);
                curl_free(esc);
                cJSON_Delete(o);
                assert_true(pages < 10);
        }
        assert_int_equal(pages, 3);
        assert_string_equal(seen, "c0c1c2c3c4");
        assert_int_equal(req("GET", "/api/v1/namespaces/sel/configmaps?limit=2&continue=%21%21",
                             NULL, NULL, &o),
                         400);
        cJSON_Delete(o);
}

static void test_patch(void **state) {
        cJSON *a = create_lease("patchme", "a"), *o = NULL;
        char body[512];

        assert_int_equal(
                req("PATCH", LEASES "/patchme",
                    "{\"metadata\":{\"labels\":{\"x\":\"1\"}},\"spec\":{\"holderIdentity\":\"b\"}}",
                    "application/merge-patch+json", &o),
                200);
        assert_string_equal(str(o, "spec.holderIdentity"), "b");
        assert_string_equal(str(o, "metadata.labels.x"), "1");
        assert_true(rv_of(o) > rv_of(a));
        cJSON_Delete(o);
        /* null removes a key */
        assert_int_equal(req("PATCH", LEASES "/patchme", "{\"spec\":{\"holderIdentity\":null}}",
                             "application/strategic-merge-patch+json", &o),
                         200);
        assert_null(str(o, "spec.holderIdentity"));
        assert_int_equal((int)num(o, "spec.leaseDurationSeconds"), 1);
        cJSON_Delete(o);
        assert_int_equal(
                req("PATCH", LEASES "/patchme",
                    "[{\"op\":\"add\",\"path\":\"/spec/holderIdentity\",\"value\":\"c\"},"
                    "{\"op\":\"replace\",\"path\":\"/spec/leaseDurationSeconds\",\"value\":5},"
                    "{\"op\":\"remove\",\"path\":\"/metadata/labels/x\"},"
                    "{\"op\":\"test\",\"path\":\"/spec/holderIdentity\",\"value\":\"c\"}]",
                    "application/json-patch+json", &o),
                200);
        assert_string_equal(str(o, "spec.holderIdentity"), "c");
        assert_int_equal((int)num(o, "spec.leaseDurationSeconds"), 5);
        assert_null(str(o, "metadata.labels.x"));
        unsigned long long rv = rv_of(o);
        cJSON_Delete(o);
        /* A failed test operation changes nothing. */
        assert_int_equal(
                req("PATCH", LEASES "/patchme",
                    "[{\"op\":\"replace\",\"path\":\"/spec/holderIdentity\",\"value\":\"d\"},"
                    "{\"op\":\"test\",\"path\":\"/spec/holderIdentity\",\"value\":\"zzz\"}]",
                    "application/json-patch+json", &o),
                422);
        cJSON_Delete(o);
        assert_int_equal(req("GET", LEASES "/patchme", NULL, NULL, &o), 200);
        assert_string_equal(str(o, "spec.holderIdentity"), "c");
        assert_int_equal(rv_of(o), rv);
        cJSON_Delete(o);
        /* A resourceVersion in a patch is a precondition. */
        snprintf(
                body, sizeof body,
                "{\"metadata\":{\"resourceVersion\":\"%llu\"},\"spec\":{\"holderIdentity\":\"e\"}}",
                rv - 1);
        assert_int_equal(req("PATCH", LEASES "/patchme", body, "application/merge-patch+json", &o),
                         409);
        assert_status(o, 409, "Conflict");
        cJSON_Delete(o);
        assert_int_equal(req("PATCH", LEASES "/patchme", "{}", "application/json", &o), 415);
        assert_status(o, 415, "UnsupportedMediaType");
        cJSON_Delete(o);
        assert_int_equal(req("PATCH", LEASES "/absent", "{}", "application/merge-patch+json", &o),
                         404);
        cJSON_Delete(o);
        assert_int_equal(
                req("PATCH", LEASES "/patchme", "{not json", "application/merge-patch+json", &o),
                400);
        cJSON_Delete(o);
        /* Lease validation applies to patches too. */
        assert_int_equal(req("PATCH", LEASES "/patchme", "{\"spec\":{\"leaseDurationSeconds\":-3}}",
                             "application/merge-patch+json", &o),
                         422);
        cJSON_Delete(o);
        cJSON_Delete(a);
}

static void test_finalizers(void **state) {
        cJSON *o = NULL;
        const char *path = "/api/v1/namespaces/default/configmaps/fin";
        assert_int_equal(req("POST", "/api/v1/namespaces/default/configmaps",
                             "{\"metadata\":{\"name\":\"fin\",\"finalizers\":[\"koc.dev/"
                             "a\",\"koc.dev/b\"]}}",
                             NULL, NULL),
                         201);
        assert_int_equal(req("DELETE", path, NULL, NULL, &o), 200);
        assert_non_null(str(o, "metadata.deletionTimestamp"));
        cJSON_Delete(o);
        /* Still there, marked. */
        assert_int_equal(req("GET", path, NULL, NULL, &o), 200);
        assert_non_null(str(o, "metadata.deletionTimestamp"));
        cJSON_Delete(o);
        assert_int_equal(req("PATCH", path,
                             "[{\"op\":\"remove\",\"path\":\"/metadata/finalizers/0\"}]",
                             "application/json-patch+json", &o),
                         200);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metadata"),
                                                                "finalizers")),
                         1);
        cJSON_Delete(o);
        assert_int_equal(req("GET", path, NULL, NULL, NULL), 200);
        /* Removing the last finalizer removes the object. */
        assert_int_equal(req("PATCH", path, "{\"metadata\":{\"finalizers\":null}}",
                             "application/merge-patch+json", &o),
                         200);
        cJSON_Delete(o);
        assert_int_equal(req("GET", path, NULL, NULL, NULL), 404);
}

static void test_status_subresource(void **state) {
        cJSON *o = NULL;
        const char *base = "/apis/apps/v1/namespaces/default/deployments";
        assert_int_equal(req("POST", base,
                             "{\"metadata\":{\"name\":\"d\"},\"spec\":{\"replicas\":1},\"status\":{"
                             "\"replicas\":9}}",
                             NULL, &o),
                         201);
        assert_null(cJSON_GetObjectItem(o, "status")); /* status is not set on create */
        assert_int_equal((int)num(o, "metadata.generation"), 1);
        cJSON_Delete(o);
        assert_int_equal(req("PUT", "/apis/apps/v1/namespaces/default/deployments/d/status",
                             "{\"metadata\":{\"name\":\"d\"},\"spec\":{\"replicas\":7},\"status\":{"
                             "\"replicas\":1}}",
                             NULL, &o),
                         200);
        assert_int_equal((int)num(o, "status.replicas"), 1);
        assert_int_equal((int)num(o, "spec.replicas"), 1); /* spec unchanged through /status */
        assert_int_equal((int)num(o, "metadata.generation"), 1);
        cJSON_Delete(o);
        assert_int_equal(req("PATCH", "/apis/apps/v1/namespaces/default/deployments/d",
                             "{\"spec\":{\"replicas\":3},\"status\":{\"replicas\":5}}",
                             "application/merge-patch+json", &o),
                         200);
        assert_int_equal((int)num(o, "spec.replicas"), 3);
        assert_int_equal((int)num(o, "status.replicas"),
                         1); /* status unchanged through the main resource */
        assert_int_equal((int)num(o, "metadata.generation"), 2);
        cJSON_Delete(o);
        assert_int_equal(req("PATCH", "/apis/apps/v1/namespaces/default/deployments/d/status",
                             "{\"status\":{\"readyReplicas\":3}}", "application/merge-patch+json",
                             &o),
                         200);
        assert_int_equal((int)num(o, "status.readyReplicas"), 3);
        assert_int_equal((int)num(o, "metadata.generation"), 2);
        cJSON_Delete(o);
        assert_int_equal(req("GET", "/apis/apps/v1/namespaces/default/deployments/d/status", NULL,
                             NULL, NULL),
                         200);
}

static void test_custom_resources(void **state) {
        cJSON *o = NULL;
        assert_int_equal(req("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                             "{\"metadata\":{\"name\":\"widgets.example.com\"},\"spec\":{\"group\":"
                             "\"example.com\","
                             "\"scope\":\"Namespaced\",\"names\":{\"plural\":\"widgets\",\"kind\":"
                             "\"Widget\"},"
                             "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"
                             "\"subresources\":{\"status\":{}}}]}}",
                             NULL, &o),
                         201);
        /* Served at once, and reported so. */
        cJSON *cond = cJSON_GetArrayItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(o, "status"), "conditions"), 1);
        assert_string_equal(str(cond, "type"), "Established");
        assert_string_equal(str(cond, "status"), "True");
        cJSON_Delete(o);
        assert_int_equal(req("POST", "/apis/example.com/v1/namespaces/default/widgets",
                             "{\"metadata\":{\"name\":\"w\"},\"spec\":{\"size\":1}}", NULL, &o),
                         201);
        assert_string_equal(str(o, "kind"), "Widget");
        assert_string_equal(str(o, "apiVersion"), "example.com/v1");
        cJSON_Delete(o);
        assert_int_equal(
                req("GET", "/apis/example.com/v1/namespaces/default/widgets", NULL, NULL, &o), 200);
        assert_string_equal(str(o, "kind"), "WidgetList");
        cJSON_Delete(o);
        assert_int_equal(req("GET", "/apis/example.com/v1", NULL, NULL, &o), 200);
        assert_string_equal(str(o, "kind"), "APIResourceList");
        cJSON_Delete(o);
        char *apis = NULL;
        assert_int_equal(koc_test_apiserver_http(&srv, "GET", "/apis", NULL, NULL, &apis), 200);
        assert_non_null(strstr(apis, "\"example.com\""));
        assert_non_null(strstr(apis, "\"coordination.k8s.io\""));
        assert_non_null(strstr(apis, "\"apps/v1\""));
        free(apis);
        char *core = NULL;
        assert_int_equal(koc_test_apiserver_http(&srv, "GET", "/api/v1", NULL, NULL, &core), 200);
        assert_non_null(strstr(core, "\"configmaps\""));
        assert_non_null(strstr(core, "\"namespaces\""));
        free(core);
        /* Cluster-scoped resources. */
        assert_int_equal(
                req("POST", "/api/v1/namespaces", "{\"metadata\":{\"name\":\"team-a\"}}", NULL, &o),
                201);
        assert_null(str(o, "metadata.namespace"));
        assert_string_equal(str(o, "status.phase"), "Active");
        cJSON_Delete(o);
        assert_int_equal(req("GET", "/api/v1/namespaces/team-a", NULL, NULL, NULL), 200);
}

static void test_watch_events(void **state) {
        watcher w;
        cJSON *o = NULL;

        cJSON_Delete(create_lease("w-pre", "a"));
        watcher_start(&w, LEASES "?watch=1&fieldSelector=metadata.name%3Dw-pre");
        assert_int_equal(watcher_wait(&w, 1), 1);
        assert_event(&w, 0, "ADDED", "w-pre"); /* the current state first */
        assert_int_equal(req("PATCH", LEASES "/w-pre", "{\"spec\":{\"holderIdentity\":\"b\"}}",
                             "application/merge-patch+json", NULL),
                         200);
        cJSON_Delete(create_lease("w-other", "a")); /* filtered out */
        assert_int_equal(req("DELETE", LEASES "/w-pre", NULL, NULL, &o), 200);
        cJSON_Delete(o);
        /* The deletion's resourceVersion is above every earlier one. */
        assert_int_equal(req("GET", LEASES, NULL, NULL, &o), 200);
        unsigned long long drv = rv_of(o);
        cJSON_Delete(o);
        assert_int_equal(watcher_wait(&w, 3), 3);
        assert_event(&w, 1, "MODIFIED", "w-pre");
        assert_event(&w, 2, "DELETED", "w-pre");
        cJSON *ev = watcher_event(&w, 2);
        assert_int_equal(rv_of(cJSON_GetObjectItem(ev, "object")), drv);
        cJSON_Delete(ev);
        assert_false(w.done);
        watcher_stop(&w);
}

static void test_watch_label_selector(void **state) {
        watcher w;
        assert_int_equal(req("POST", "/api/v1/namespaces/wl/configmaps",
                             "{\"metadata\":{\"name\":\"a\",\"labels\":{\"app\":\"x\"}}}", NULL,
                             NULL),
                         201);
        watcher_start(&w, "/api/v1/namespaces/wl/configmaps?watch=true&labelSelector=app%3Dx");
        assert_int_equal(watcher_wait(&w, 1), 1);
        assert_event(&w, 0, "ADDED", "a");
        /* Leaving the selector reads as DELETED, entering it as ADDED. */
        assert_int_equal(req("PATCH", "/api/v1/namespaces/wl/configmaps/a",
                             "{\"metadata\":{\"labels\":{\"app\":\"y\"}}}",
                             "application/merge-patch+json", NULL),
                         200);
        assert_int_equal(req("PATCH", "/api/v1/namespaces/wl/configmaps/a",
                             "{\"data\":{\"k\":\"v\"}}", "application/merge-patch+json", NULL),
                         200);
        assert_int_equal(req("PATCH", "/api/v1/namespaces/wl/configmaps/a",
                             "{\"metadata\":{\"labels\":{\"app\":\"x\"}}}",
                             "application/merge-patch+json", NULL),
                         200);
        assert_int_equal(watcher_wait(&w, 3), 3);
        assert_event(&w, 1, "DELETED", "a");
        assert_event(&w, 2, "ADDED", "a");
        watcher_stop(&w);
}

static void test_watch_resume_and_expired(void **state) {
        cJSON *a = create_lease("resume", "a"), *o = NULL;
        unsigned long long rv0 = rv_of(a);
        char path[256];

        for (int i = 0; i < 3; i++) {
                char body[128];
                snprintf(body, sizeof body, "{\"spec\":{\"leaseTransitions\":%d}}", i + 1);
                assert_int_equal(
                        req("PATCH", LEASES "/resume", body, "application/merge-patch+json", NULL),
                        200);
        }
        watcher w;
        snprintf(path, sizeof path,
                 LEASES "?watch=1&resourceVersion=%llu&fieldSelector=metadata.name%%3Dresume", rv0);
        watcher_start(&w, path);
        assert_int_equal(watcher_wait(&w, 3), 3);
        for (int i = 0; i < 3; i++) {
                cJSON *ev = watcher_event(&w, i);
                assert_string_equal(str(ev, "type"), "MODIFIED");
                assert_int_equal((int)num(ev, "object.spec.leaseTransitions"), i + 1);
                cJSON_Delete(ev);
        }
        watcher_stop(&w);

        /* The server keeps 50 events (--history 50): push rv0 out. */
        for (int i = 0; i < 60; i++) {
                char body[128];
                snprintf(body, sizeof body, "{\"spec\":{\"leaseTransitions\":%d}}", i + 10);
                assert_int_equal(
                        req("PATCH", LEASES "/resume", body, "application/merge-patch+json", NULL),
                        200);
        }
        watcher_start(&w, path);
        assert_int_equal(watcher_wait(&w, 1), 1);
        watcher_wait_done(&w);
        assert_true(w.done);
        cJSON *ev = watcher_event(&w, 0);
        assert_string_equal(str(ev, "type"), "ERROR");
        assert_status(cJSON_GetObjectItem(ev, "object"), 410, "Expired");
        cJSON_Delete(ev);
        watcher_stop(&w);
        assert_int_equal(req("GET", LEASES "/resume", NULL, NULL, &o), 200);
        cJSON_Delete(o);
        cJSON_Delete(a);
}

static void test_watch_bookmarks_and_timeout(void **state) {
        watcher w;
        watcher_start(&w, "/api/v1/namespaces/empty-ns/"
                          "configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=2");
        assert_true(watcher_wait(&w, 1) >= 1);
        assert_event(&w, 0, "BOOKMARK", NULL);
        cJSON *ev = watcher_event(&w, 0);
        assert_string_equal(str(ev, "object.kind"), "ConfigMap");
        assert_non_null(str(ev, "object.metadata.resourceVersion"));
        cJSON_Delete(ev);
        /* timeoutSeconds ends the stream cleanly. */
        watcher_wait_done(&w);
        assert_true(w.done);
        assert_int_equal(w.code, 200);
        watcher_stop(&w);
}

static void test_bad_requests(void **state) {
        cJSON *o = NULL;
        assert_int_equal(req("POST", LEASES, "{\"metadata\":", NULL, &o), 400);
        assert_status(o, 400, "BadRequest");
        cJSON_Delete(o);
        assert_int_equal(req("POST", LEASES, "[1,2]", NULL, &o), 400);
        cJSON_Delete(o);
        assert_int_equal(req("POST", LEASES, "{}", "text/plain", &o), 415);
        assert_status(o, 415, "UnsupportedMediaType");
        cJSON_Delete(o);
        size_t big = 4u * 1024 * 1024;
        char *body = malloc(big + 1);
        assert_non_null(body);
        memset(body, ' ', big);
        body[0] = '{';
        body[big - 1] = '}';
        body[big] = 0;
        assert_int_equal(req("POST", LEASES, body, NULL, &o), 413);
        assert_status(o, 413, "RequestEntityTooLarge");
        cJSON_Delete(o);
        free(body);
        assert_int_equal(req("POST", LEASES "/named", "{}", NULL, &o), 405);
        assert_status(o, 405, "MethodNotAllowed");
        cJSON_Delete(o);
        assert_int_equal(req("GET", "/nothing/here", NULL, NULL, &o), 404);
        cJSON_Delete(o);
        /* The real server answers 500 here (its watch cache's parse error). */
        assert_int_equal(req("GET", LEASES "?watch=1&resourceVersion=abc", NULL, NULL, &o), 500);
        cJSON_Delete(o);
        /* Objects cannot grow past the limit through patches either. */
        size_t half = 2u * 1024 * 1024;
        char *big1 = malloc(half + 128), *big2 = malloc(half + 128);
        assert_non_null(big1);
        assert_non_null(big2);
        int n1 = snprintf(big1, 128, "{\"metadata\":{\"name\":\"grow\"},\"data\":{\"a\":\"");
        memset(big1 + n1, 'a', half);
        strcpy(big1 + n1 + half, "\"}}");
        int n2 = snprintf(big2, 128, "{\"data\":{\"b\":\"");
        memset(big2 + n2, 'b', half);
        strcpy(big2 + n2 + half, "\"}}");
        assert_int_equal(req("POST", "/api/v1/namespaces/default/configmaps", big1, NULL, NULL),
                         201);
        assert_int_equal(req("PATCH", "/api/v1/namespaces/default/configmaps/grow", big2,
                             "application/merge-patch+json", &o),
                         413);
        assert_status(o, 413, "RequestEntityTooLarge");
        cJSON_Delete(o);
        free(big1);
        free(big2);
        assert_int_equal(
                req("DELETE", "/api/v1/namespaces/default/configmaps/grow", NULL, NULL, NULL), 200);
        /* The server is still fine. */
        assert_int_equal(req("GET", LEASES, NULL, NULL, NULL), 200);
}

static void test_faults(void **state) {
        cJSON *a = create_lease("faulty", "a"), *o = NULL;
        char *body = NULL;

        assert_int_equal(koc_test_apiserver_fault(
                                 &srv, "{\"resource\":\"leases\",\"verb\":\"get\","
                                       "\"error_rate\":1.0,\"error_code\":503,\"retry_after\":2,"
                                       "\"count\":2}"),
                         200);
        assert_int_equal(req("GET", LEASES "/faulty", NULL, NULL, &o), 503);
        assert_status(o, 503, "ServiceUnavailable");
        cJSON_Delete(o);
        assert_int_equal(req("GET", LEASES "/faulty", NULL, NULL, NULL), 503);
        assert_int_equal(req("GET", LEASES "/faulty", NULL, NULL, NULL), 200); /* count used up */
        /* Other verbs and resources are untouched. */
        assert_int_equal(koc_test_apiserver_fault(&srv,
                                                  "{\"resource\":\"leases\",\"verb\":\"update\","
                                                  "\"error_rate\":1,\"error_code\":429}"),
                         200);
        assert_int_equal(req("GET", LEASES "/faulty", NULL, NULL, NULL), 200);
        assert_int_equal(
                req("PUT", LEASES "/faulty", "{\"metadata\":{\"name\":\"faulty\"}}", NULL, &o),
                429);
        assert_status(o, 429, "TooManyRequests");
        cJSON_Delete(o);
        assert_int_equal(koc_test_apiserver_http(&srv, "GET", "/admin/faults", NULL, NULL, &body),
                         200);
        assert_non_null(strstr(body, "\"update\""));
        free(body);
        assert_int_equal(koc_test_apiserver_clear_faults(&srv), 200);
        assert_int_equal(req("PATCH", LEASES "/faulty", "{}", "application/merge-patch+json", NULL),
                         200);

        /* Forbidden watch. */
        assert_int_equal(koc_test_apiserver_fault(
                                 &srv, "{\"verb\":\"watch\",\"error_rate\":1,\"error_code\":403}"),
                         200);
        assert_int_equal(req("GET", LEASES "?watch=1", NULL, NULL, &o), 403);
        assert_status(o, 403, "Forbidden");
        cJSON_Delete(o);
        assert_int_equal(koc_test_apiserver_clear_faults(&srv), 200);

        /* Dropped connections. */
        assert_int_equal(koc_test_apiserver_fault(
                                 &srv, "{\"resource\":\"leases\",\"drop_rate\":1,\"count\":1}"),
                         200);
        assert_true(req("GET", LEASES "/faulty", NULL, NULL, NULL) < 0);
        assert_int_equal(req("GET", LEASES "/faulty", NULL, NULL, NULL), 200);

        /* A dropped watch is cut without the end of the chunked stream. */
        watcher w;
        assert_int_equal(
                koc_test_apiserver_fault(&srv, "{\"verb\":\"watch\",\"drop_rate\":1,\"count\":1}"),
                200);
        watcher_begin(&w, LEASES "?watch=1");
        watcher_wait_done(&w);
        assert_true(w.done);
        assert_int_equal(watcher_lines(&w), 0);
        assert_int_not_equal(w.result, CURLE_OK);
        watcher_stop(&w);

        /* Watch streams closed early. */
        assert_int_equal(
                koc_test_apiserver_fault(
                        &srv, "{\"verb\":\"watch\",\"watch_close_after_ms\":100,\"count\":1}"),
                200);
        watcher_start(&w, LEASES "?watch=1&fieldSelector=metadata.name%3Dfaulty");
        watcher_wait_done(&w);
        assert_true(w.done);
        assert_int_equal(watcher_lines(&w), 1); /* the initial ADDED, then the end */
        watcher_stop(&w);

        /* Hang: the request is held until the rule is cleared. */
        assert_int_equal(koc_test_apiserver_fault(
                                 &srv, "{\"resource\":\"leases\",\"verb\":\"get\",\"hang\":true}"),
                         200);
        watcher_begin(&w, LEASES "/faulty");
        for (int i = 0; i < 8; i++)
                pump(&w, 25);
        assert_false(w.done);
        assert_int_equal(koc_test_apiserver_clear_faults(&srv), 200);
        watcher_wait_done(&w);
        assert_true(w.done);
        assert_int_equal(w.code, 200);
        watcher_stop(&w);

        /* Latency delays but answers. */
        assert_int_equal(koc_test_apiserver_fault(
                                 &srv, "{\"resource\":\"leases\",\"latency_ms\":50,\"count\":1}"),
                         200);
        assert_int_equal(req("GET", LEASES "/faulty", NULL, NULL, NULL), 200);

        /* Bad rules are refused. */
        assert_int_equal(koc_test_apiserver_fault(&srv, "{\"verb\":\"fly\"}"), 400);
        assert_int_equal(koc_test_apiserver_fault(&srv, "{\"error_rate\":2,\"error_code\":500}"),
                         400);
        assert_int_equal(koc_test_apiserver_fault(&srv, "not json"), 400);
        cJSON_Delete(a);
}

static void test_metrics(void **state) {
        double before = koc_test_apiserver_metric(
                &srv,
                "apiserver_request_total{verb=\"LIST\",resource=\"configmaps\",code=\"200\"}");
        assert_true(before >= 0);
        for (int i = 0; i < 3; i++)
                assert_int_equal(
                        req("GET", "/api/v1/namespaces/default/configmaps", NULL, NULL, NULL), 200);
        double after = koc_test_apiserver_metric(
                &srv,
                "apiserver_request_total{verb=\"LIST\",resource=\"configmaps\",code=\"200\"}");
        assert_true(after - before == 3);
        assert_true(
                koc_test_apiserver_metric(
                        &srv,
                        "apiserver_request_total{verb=\"GET\",resource=\"leases\",code=\"404\"}") >=
                1);
        assert_true(koc_test_apiserver_metric(&srv, "apiserver_request_duration_seconds_count{verb="
                                                    "\"LIST\",resource=\"configmaps\"}") >= 3);
}

static void test_more_verbs(void **state) {
        cJSON *o = NULL;
        const char *base = "/api/v1/namespaces/verbs/configmaps";
        for (int i = 0; i < 3; i++) {
                char body[128];
                snprintf(body, sizeof body,
                         "{\"metadata\":{\"name\":\"d%d\",\"labels\":{\"gone\":\"%s\"}}}", i,
                         i < 2 ? "yes" : "no");
                assert_int_equal(req("POST", base, body, NULL, NULL), 201);
        }
        /* dryRun stores nothing. */
        assert_int_equal(req("POST", "/api/v1/namespaces/verbs/configmaps?dryRun=All",
                             "{\"metadata\":{\"name\":\"dry\"}}", NULL, NULL),
                         201);
        assert_int_equal(req("GET", "/api/v1/namespaces/verbs/configmaps/dry", NULL, NULL, NULL),
                         404);
        assert_int_equal(req("DELETE", "/api/v1/namespaces/verbs/configmaps/d0?dryRun=All", NULL,
                             NULL, NULL),
                         200);
        assert_int_equal(req("GET", "/api/v1/namespaces/verbs/configmaps/d0", NULL, NULL, NULL),
                         200);
        /* Delete preconditions. */
        assert_int_equal(req("DELETE", "/api/v1/namespaces/verbs/configmaps/d0",
                             "{\"preconditions\":{\"resourceVersion\":\"1\"}}", NULL, &o),
                         409);
        assert_status(o, 409, "Conflict");
        cJSON_Delete(o);
        assert_int_equal(req("DELETE", "/api/v1/namespaces/verbs/configmaps/d0",
                             "{\"preconditions\":{\"uid\":\"not-the-uid\"}}", NULL, &o),
                         409);
        cJSON_Delete(o);
        /* deletecollection with a selector. */
        assert_int_equal(req("DELETE",
                             "/api/v1/namespaces/verbs/configmaps?labelSelector=gone%3Dyes", NULL,
                             NULL, &o),
                         200);
        assert_int_equal(count_items(o), 2);
        cJSON_Delete(o);
        assert_int_equal(req("GET", base, NULL, NULL, &o), 200);
        assert_int_equal(count_items(o), 1);
        assert_string_equal(
                str(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "items"), 0), "metadata.name"), "d2");
        cJSON_Delete(o);
        /* Unknown subresources, and namespaced objects outside a namespace. */
        assert_int_equal(
                req("GET", "/api/v1/namespaces/verbs/configmaps/d2/scale", NULL, NULL, NULL), 404);
        assert_int_equal(req("GET", "/api/v1/configmaps/d2", NULL, NULL, NULL), 404);
        assert_int_equal(
                req("POST", "/api/v1/configmaps", "{\"metadata\":{\"name\":\"x\"}}", NULL, NULL),
                404);
        assert_int_equal(req("POST", base,
                             "{\"metadata\":{\"name\":\"y\",\"namespace\":\"elsewhere\"}}", NULL,
                             &o),
                         400);
        cJSON_Delete(o);
        /* A cluster-scoped resource under a namespace is not found. */
        assert_int_equal(req("GET", "/api/v1/namespaces/verbs/nodes", NULL, NULL, NULL), 404);
}

static void test_secret_string_data(void **state) {
        cJSON *o = NULL;
        assert_int_equal(req("POST", "/api/v1/namespaces/default/secrets",
                             "{\"metadata\":{\"name\":\"sd\"},\"stringData\":{\"user\":\"admin\"}}",
                             NULL, &o),
                         201);
        assert_string_equal(str(o, "data.user"), "YWRtaW4=");
        assert_null(cJSON_GetObjectItem(o, "stringData"));
        assert_string_equal(str(o, "type"), "Opaque");
        cJSON_Delete(o);
}

static void test_protobuf_body(void **state) {
        /* k8s magic + runtime.Unknown{typeMeta{v1, ConfigMap}, raw{metadata{name}, data{k: v}}} */
        static const unsigned char body[] = {
                'k',  '8', 's', 0,   0x0a, 0x0f, 0x0a, 0x02, 'v',  '1',  0x12, 0x09, 'C',
                'o',  'n', 'f', 'i', 'g',  'M',  'a',  'p',  0x12, 0x10, 0x0a, 0x06, 0x0a,
                0x04, 'p', 'r', 'o', 't',  0x12, 0x06, 0x0a, 0x01, 'k',  0x12, 0x01, 'v',
        };
        char url[512], auth[200];
        CURL *c = curl_easy_init();
        struct curl_slist *h = NULL;
        long code = 0;
        snprintf(url, sizeof url, "%s/api/v1/namespaces/default/configmaps", srv.url);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", srv.token);
        h = curl_slist_append(h, auth);
        h = curl_slist_append(h, "Content-Type: application/vnd.kubernetes.protobuf");
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_CAINFO, srv.ca_file);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)sizeof body);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_watch_data);
        watcher sink = {0};
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
        assert_int_equal(curl_easy_perform(c), CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        free(sink.data);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        assert_int_equal(code, 201);
        cJSON *o = NULL;
        assert_int_equal(req("GET", "/api/v1/namespaces/default/configmaps/prot", NULL, NULL, &o),
                         200);
        assert_string_equal(str(o, "data.k"), "v");
        cJSON_Delete(o);
}

static void test_watch_initial_events_and_finalizers(void **state) {
        watcher w;
        assert_int_equal(req("POST", "/api/v1/namespaces/wf/configmaps",
                             "{\"metadata\":{\"name\":\"f\",\"finalizers\":[\"koc.dev/x\"]}}", NULL,
                             NULL),
                         201);
        watcher_start(&w, "/api/v1/namespaces/wf/"
                          "configmaps?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
                          "&resourceVersionMatch=NotOlderThan");
        assert_true(watcher_wait(&w, 2) >= 2);
        assert_event(&w, 0, "ADDED", "f");
        cJSON *ev = watcher_event(&w, 1);
        assert_string_equal(str(ev, "type"), "BOOKMARK");
        cJSON *ann = cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "object"), "metadata"), "annotations");
        cJSON *end = cJSON_GetObjectItem(ann, "k8s.io/initial-events-end");
        assert_true(cJSON_IsString(end));
        assert_string_equal(end->valuestring, "true");
        cJSON_Delete(ev);
        int base = watcher_lines(&w);
        /* Delete with a finalizer: MODIFIED (marked), then DELETED when the
         * finalizer goes. */
        assert_int_equal(req("DELETE", "/api/v1/namespaces/wf/configmaps/f", NULL, NULL, NULL),
                         200);
        assert_int_equal(req("PATCH", "/api/v1/namespaces/wf/configmaps/f",
                             "{\"metadata\":{\"finalizers\":[]}}", "application/merge-patch+json",
                             NULL),
                         200);
        /* Skip bookmarks in between. */
        const char *want[] = {"MODIFIED", "DELETED"};
        int found = 0;
        for (int tries = 0; tries < 50 && found < 2; tries++) {
                watcher_wait(&w, watcher_lines(&w) + 1);
                found = 0;
                for (int i = base; i < watcher_lines(&w); i++) {
                        cJSON *e = watcher_event(&w, i);
                        const char *t = str(e, "type");
                        assert_non_null(t);
                        if (found < 2 && strcmp(t, want[found]) == 0)
                                found++;
                        else
                                assert_string_equal(t, "BOOKMARK");
                        cJSON_Delete(e);
                }
        }
        assert_int_equal(found, 2);
        watcher_stop(&w);
}

static void test_many_watches(void **state) {
        enum { N = 100 };
        watcher *ws = calloc(N, sizeof *ws);
        cJSON_Delete(create_lease("many", "a"));
        for (int i = 0; i < N; i++)
                watcher_begin(&ws[i], LEASES "?watch=1&fieldSelector=metadata.name%3Dmany");
        /* Drive all the handshakes together (bounded). */
        int ready = 0;
        for (int round = 0; round < 2000 && ready < N; round++) {
                ready = 0;
                for (int i = 0; i < N; i++) {
                        if (watcher_lines(&ws[i]) < 1)
                                pump(&ws[i], 0);
                        ready += watcher_lines(&ws[i]) >= 1;
                }
        }
        for (int i = 0; i < N; i++)
                assert_int_equal(watcher_wait(&ws[i], 1), 1);
        assert_true(koc_test_apiserver_metric(&srv, "apiserver_watches") >= N);
        assert_int_equal(req("PATCH", LEASES "/many", "{\"spec\":{\"holderIdentity\":\"b\"}}",
                             "application/merge-patch+json", NULL),
                         200);
        for (int i = 0; i < N; i++) {
                assert_int_equal(watcher_wait(&ws[i], 2), 2);
                assert_event(&ws[i], 1, "MODIFIED", "many");
        }
        for (int i = 0; i < N; i++)
                watcher_stop(&ws[i]);
        free(ws);
}

/* A watcher that does not read is closed once it is far behind (8 MiB),
 * instead of the server buffering without bound. */
static void test_slow_watcher_is_closed(void **state) {
        size_t size = 1024 * 1024;
        char *body = malloc(size + 128);
        watcher w;
        assert_non_null(body);
        assert_int_equal(req("POST", "/api/v1/namespaces/slow/configmaps",
                             "{\"metadata\":{\"name\":\"big\"}}", NULL, NULL),
                         201);
        watcher_start(&w, "/api/v1/namespaces/slow/configmaps?watch=1");
        assert_int_equal(watcher_code(&w), 200);
        int n = 0;
        for (int i = 0; i < 40; i++) {
                n = snprintf(body, 128, "{\"data\":{\"k\":\"%d", i);
                memset(body + n, 'x', size);
                strcpy(body + n + size, "\"}}");
                assert_int_equal(req("PATCH", "/api/v1/namespaces/slow/configmaps/big", body,
                                     "application/merge-patch+json", NULL),
                                 200);
        }
        free(body);
        /* Now read: some events, then the end of the stream. */
        for (int i = 0; i < 2000 && !w.done; i++)
                pump(&w, 10);
        assert_true(w.done);
        assert_true(watcher_lines(&w) < 41);
        watcher_stop(&w);
        assert_int_equal(req("DELETE", "/api/v1/namespaces/slow/configmaps/big", NULL, NULL, NULL),
                         200);
}

static void test_fault_error_code_only(void **state) {
        assert_int_equal(koc_test_apiserver_fault(
                                 &srv,
                                 "{\"resource\":\"secrets\",\"verb\":\"list\",\"error_code\":500,"
                                 "\"count\":1}"),
                         200);
        cJSON *o = NULL;
        assert_int_equal(req("GET", "/api/v1/namespaces/default/secrets", NULL, NULL, &o), 500);
        assert_status(o, 500, "InternalError");
        cJSON_Delete(o);
        assert_int_equal(req("GET", "/api/v1/namespaces/default/secrets", NULL, NULL, NULL), 200);
        assert_int_equal(koc_test_apiserver_clear_faults(&srv), 200);
}

/* --log-writes: one JSON line per write answered, reads not logged, injected
 * errors logged with their code, the Lease holder and transitions stored. */
static void test_log_writes(void **state) {
        koc_test_apiserver s = {0};
        char dir[] = "/tmp/koc-log-writes.XXXXXX", args[200], path[160], line[4096];
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/writes.jsonl", dir);
        snprintf(args, sizeof args, "--log-writes %s", path);
        assert_int_equal(koc_test_apiserver_start(&s, args), 0);
        const char *lease = "{\"metadata\":{\"name\":\"wl\"},\"spec\":{\"holderIdentity\":\"a\","
                            "\"leaseDurationSeconds\":2,\"leaseTransitions\":3}}";
        const char *leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
        assert_int_equal(koc_test_apiserver_http(&s, "POST", leases, lease, NULL, NULL), 201);
        assert_int_equal(koc_test_apiserver_http(&s, "GET", leases, NULL, NULL, NULL), 200);
        assert_int_equal(koc_test_apiserver_fault(&s, "{\"resource\":\"configmaps\",\"verb\":"
                                                      "\"create\",\"error_code\":503,\"count\":1}"),
                         200);
        assert_int_equal(koc_test_apiserver_http(&s, "POST",
                                                 "/api/v1/namespaces/default/configmaps",
                                                 "{\"metadata\":{\"name\":\"x\"}}", NULL, NULL),
                         503);
        koc_test_apiserver_stop(&s);

        FILE *f = fopen(path, "re");
        assert_non_null(f);
        cJSON *l[3] = {0};
        int n = 0;
        while (fgets(line, sizeof line, f))
                if (n < 3)
                        l[n++] = cJSON_Parse(line);
                else
                        n++;
        fclose(f);
        assert_int_equal(n, 2);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(l[0], "verb")), "POST");
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(l[0], "path")), leases);
        assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(l[0], "code")), 201);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(l[0], "holder")), "a");
        assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(l[0], "transitions")), 3);
        assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(l[0], "boottime_us")) >=
                    cJSON_GetNumberValue(cJSON_GetObjectItem(l[0], "received_us")));
        assert_non_null(cJSON_GetStringValue(cJSON_GetObjectItem(l[0], "time")));
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(l[1], "resource")),
                            "configmaps");
        assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(l[1], "code")), 503);
        assert_null(cJSON_GetObjectItem(l[1], "holder"));
        for (int i = 0; i < 3; i++)
                cJSON_Delete(l[i]);
        unlink(path);
        rmdir(dir);
}

static int group_setup(void **state) {
        static const char *const namespaces[] = {"empty-ns", "other", "sel", "slow",
                                                 "verbs",    "wf",    "wl"};
        if (koc_test_apiserver_start(&srv, "--history 50 --bookmark-interval 200ms") < 0)
                return -1;
        /* Objects are created only in namespaces that exist, as on the real server. */
        for (size_t i = 0; i < sizeof namespaces / sizeof namespaces[0]; i++) {
                char body[128];
                snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"%s\"}}", namespaces[i]);
                if (req("POST", "/api/v1/namespaces", body, NULL, NULL) != 201)
                        return -1;
        }
        return 0;
}

static int group_teardown(void **state) {
        koc_test_apiserver_stop(&srv);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_auth),
                cmocka_unit_test(test_lease_crud),
                cmocka_unit_test(test_configmap_and_generate_name),
                cmocka_unit_test(test_lease_validation),
                cmocka_unit_test(test_list_selectors_and_paging),
                cmocka_unit_test(test_patch),
                cmocka_unit_test(test_finalizers),
                cmocka_unit_test(test_status_subresource),
                cmocka_unit_test(test_custom_resources),
                cmocka_unit_test(test_watch_events),
                cmocka_unit_test(test_watch_label_selector),
                cmocka_unit_test(test_watch_resume_and_expired),
                cmocka_unit_test(test_watch_bookmarks_and_timeout),
                cmocka_unit_test(test_bad_requests),
                cmocka_unit_test(test_faults),
                cmocka_unit_test(test_metrics),
                cmocka_unit_test(test_more_verbs),
                cmocka_unit_test(test_protobuf_body),
                cmocka_unit_test(test_secret_string_data),
                cmocka_unit_test(test_watch_initial_events_and_finalizers),
                cmocka_unit_test(test_many_watches),
                cmocka_unit_test(test_fault_error_code_only),
                cmocka_unit_test(test_log_writes),
                cmocka_unit_test(test_slow_watcher_is_closed),
        };
        int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
        /* The server must also have shut down cleanly (and, when wrapped in
         * valgrind, without errors). */
        if (srv.exit_status != 0) {
                fprintf(stderr, "koc-apiserver exit status %d\n", srv.exit_status);
                return 1;
        }
        return failed;
}

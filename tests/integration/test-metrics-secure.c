/* SPDX-License-Identifier: Apache-2.0 */
/* A manager with --metrics-secure: /metrics over HTTPS, 401 without a token,
 * 403 for a user without the permission, 200 for one bound to a reader role
 * (the cluster's TokenReview and SubjectAccessReview decide), 503 and a warn
 * line when the review API cannot be reached.  On koc-apiserver (users from
 * --user, the grant from --allow) and, as k8s-test-metrics-secure, on
 * kube-apiserver: ServiceAccounts with tokens from the TokenRequest API, one
 * bound to a ClusterRole that allows get on /metrics. */
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "harness/apiserver.h"
#include "koc/log.h"
#include "koc/manager.h"

#define READER_TOKEN "metrics-reader-token-0123456789"
#define NOBODY_TOKEN "metrics-nobody-token-0123456789"

static bool under_valgrind(void) {
        return getenv("KOC_UNDER_VALGRIND") != NULL;
}

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

typedef struct answer {
        long code;
        char *body;
} answer;

static size_t collect(char *ptr, size_t size, size_t n, void *ud) {
        koc_test_buffer *b = ud;
        return koc_test_buffer_write(ptr, size, n, b);
}

/* GET https://127.0.0.1:port/metrics; the serving certificate is
 * self-signed, so it is not verified here (the TLS tests do that). */
static answer get_metrics(uint16_t port, const char *token) {
        answer a = {0};
        koc_test_buffer b = {0};
        char url[64], auth[2600];
        struct curl_slist *h = NULL;
        CURL *e = curl_easy_init();
        assert_non_null(e);
        snprintf(url, sizeof url, "https://127.0.0.1:%u/metrics", port);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, under_valgrind() ? 60000L : 15000L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
        if (token) {
                snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
                h = curl_slist_append(h, auth);
                curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        }
        CURLcode c = curl_easy_perform(e);
        if (c != CURLE_OK)
                a.code = -(long)c;
        else
                curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &a.code);
        a.body = b.data ? b.data : strdup("");
        curl_slist_free_all(h);
        curl_easy_cleanup(e);
        return a;
}

/* --- identities on the real server ---------------------------------------------- */

static void admin(koc_test_apiserver *s, const char *method, const char *path, const char *body,
                  char **ret_body) {
        long code = koc_test_apiserver_http(s, method, path, body, "application/json", ret_body);
        if (code != 200 && code != 201 && code != 409)
                fail_msg("%s %s: %ld", method, path, code);
}

/* A ServiceAccount in default and a token for it (TokenRequest API). */
static char *service_account_token(koc_test_apiserver *s, const char *name) {
        char path[256], body[256], *answer_body = NULL;
        snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"%s\"}}", name);
        admin(s, "POST", "/api/v1/namespaces/default/serviceaccounts", body, NULL);
        snprintf(path, sizeof path, "/api/v1/namespaces/default/serviceaccounts/%s/token", name);
        admin(s, "POST", path,
              "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenRequest\","
              "\"spec\":{\"expirationSeconds\":3600}}",
              &answer_body);
        cJSON *o = cJSON_Parse(answer_body);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(o, "status"), "token");
        assert_true(cJSON_IsString(t));
        char *token = strdup(t->valuestring);
        cJSON_Delete(o);
        free(answer_body);
        return token;
}

/* Binds the reader SA to a ClusterRole with get on /metrics (the chart's
 * metrics-reader) and waits until the authoriser says so. */
static void bind_reader(koc_test_apiserver *s) {
        admin(s, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
              "{\"metadata\":{\"name\":\"koc-test-metrics-reader\"},\"rules\":[{"
              "\"nonResourceURLs\":[\"/metrics\"],\"verbs\":[\"get\"]}]}",
              NULL);
        admin(s, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
              "{\"metadata\":{\"name\":\"koc-test-metrics-reader\"},\"roleRef\":{\"apiGroup\":"
              "\"rbac.authorization.k8s.io\",\"kind\":\"ClusterRole\",\"name\":"
              "\"koc-test-metrics-reader\"},\"subjects\":[{\"kind\":\"ServiceAccount\","
              "\"name\":\"koc-metrics-reader\",\"namespace\":\"default\"}]}",
              NULL);
        uint64_t end = now_ms() + 20000;
        for (;;) {
                char *b = NULL;
                admin(s, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                      "{\"spec\":{\"user\":\"system:serviceaccount:default:koc-metrics-reader\","
                      "\"nonResourceAttributes\":{\"path\":\"/metrics\",\"verb\":\"get\"}}}",
                      &b);
                bool allowed = b && strstr(b, "\"allowed\":true");
                free(b);
                if (allowed)
                        return;
                if (now_ms() > end)
                        fail_msg("the binding never took effect");
                usleep(100000);
        }
}

/* --- the manager ------------------------------------------------------------------ */

typedef struct scenario {
        koc_manager *m;
        uint16_t port;
        int wake_fd;
        const char *reader, *nobody, *admin_token;
        bool down; /* the review API is not there */
        char failure[256];
} scenario;

static char warned[512], warned_plain[512];
static void capture(int level, const char *component, const char *message, void *ud) {
        if (level == KOC_LOG_WARN && strstr(message, "503"))
                snprintf(warned, sizeof warned, "%s", message);
        if (level == KOC_LOG_WARN && strstr(message, "plain HTTP"))
                snprintf(warned_plain, sizeof warned_plain, "%s", message);
}

#define CHECK(sc, cond, ...)                                                                       \
        do {                                                                                       \
                if (!(cond) && !(sc)->failure[0])                                                  \
                        snprintf((sc)->failure, sizeof (sc)->failure, __VA_ARGS__);                \
        } while (0)

static void *driver(void *p) {
        scenario *sc = p;
        answer a;
        if (!sc->down) {
                a = get_metrics(sc->port, NULL);
                CHECK(sc, a.code == 401, "no token: %ld", a.code);
                free(a.body);
                a = get_metrics(sc->port, "not-a-token-anyone-knows");
                CHECK(sc, a.code == 401, "bad token: %ld", a.code);
                free(a.body);
                a = get_metrics(sc->port, sc->nobody);
                CHECK(sc, a.code == 403, "unprivileged: %ld %s", a.code, a.body);
                free(a.body);
                a = get_metrics(sc->port, sc->reader);
                CHECK(sc, a.code == 200 && strstr(a.body, "rest_client_requests_total"),
                      "reader: %ld", a.code);
                free(a.body);
        } else {
                a = get_metrics(sc->port, sc->reader);
                CHECK(sc, a.code == 503, "review API down, reader: %ld", a.code);
                free(a.body);
                a = get_metrics(sc->port, sc->admin_token);
                CHECK(sc, a.code == 503, "review API down, admin: %ld", a.code);
                free(a.body);
                a = get_metrics(sc->port, NULL);
                CHECK(sc, a.code == 401, "review API down, no token: %ld", a.code);
                free(a.body);
        }
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

static void run(scenario *sc, const char *kubeconfig) {
        koc_manager_config cfg;
        koc_error err = {0};
        koc_manager_config_init(&cfg);
        cfg.kubeconfig = kubeconfig;
        cfg.leader_elect = false;
        cfg.handle_signals = false;
        cfg.health_probe_bind_address = "127.0.0.1:0";
        cfg.metrics_bind_address = "127.0.0.1:0";
        cfg.metrics_secure = true;
        cfg.shutdown_budget_usec = 2 * KOC_USEC_PER_SEC;
        sd_event *e = NULL;
        assert_int_equal(sd_event_new(&e), 0);
        if (koc_manager_new(e, &cfg, &sc->m, &err) < 0)
                fail_msg("manager: %s", err.message);
        assert_int_equal(koc_manager_get_metrics_port(sc->m, &sc->port), 0);
        sc->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        sd_event_source *wake = NULL;
        assert_int_equal(sd_event_add_io(e, &wake, sc->wake_fd, EPOLLIN, on_wake, sc), 0);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, driver, sc), 0);
        (void)koc_manager_run(sc->m);
        pthread_join(t, NULL);
        sd_event_source_disable_unref(wake);
        close(sc->wake_fd);
        sc->m = koc_manager_unref(sc->m);
        sd_event_unref(e);
}

static void test_metrics_secure(void **state) {
        koc_test_apiserver api;
        assert_int_equal(koc_test_apiserver_start(&api, "--user " READER_TOKEN "=reader "
                                                        "--user " NOBODY_TOKEN "=nobody "
                                                        "--allow reader:get:/metrics"),
                         0);
        char *reader = NULL, *nobody = NULL;
        if (api.real) {
                reader = service_account_token(&api, "koc-metrics-reader");
                nobody = service_account_token(&api, "koc-metrics-nobody");
                bind_reader(&api);
        } else {
                reader = strdup(READER_TOKEN);
                nobody = strdup(NOBODY_TOKEN);
        }
        scenario sc = {.reader = reader, .nobody = nobody, .admin_token = api.token};
        run(&sc, api.kubeconfig);
        assert_string_equal(sc.failure, "");

        /* The review API down: a kubeconfig that points at a closed port. */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof sin;
        assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
        close(fd);
        char url[64], kc[320], text[16384];
        snprintf(url, sizeof url, "https://127.0.0.1:%u", ntohs(sin.sin_port));
        snprintf(kc, sizeof kc, "%s.down", api.kubeconfig);
        FILE *in = fopen(api.kubeconfig, "re");
        assert_non_null(in);
        size_t n = fread(text, 1, sizeof text - 1, in);
        fclose(in);
        text[n] = 0;
        char *at = strstr(text, api.url);
        assert_non_null(at);
        FILE *out = fopen(kc, "we");
        assert_non_null(out);
        fprintf(out, "%.*s%s%s", (int)(at - text), text, url, at + strlen(api.url));
        assert_int_equal(fclose(out), 0);
        koc_log_set_handler(capture, NULL, NULL);
        scenario down = {.reader = reader, .admin_token = api.token, .down = true};
        run(&down, kc);
        koc_log_set_handler(NULL, NULL, NULL);
        unlink(kc);
        assert_string_equal(down.failure, "");
        assert_non_null(strstr(warned, "tokenreview failed"));
        assert_non_null(strstr(warned, url + 8)); /* names the server it could not reach */

        /* Plain metrics beyond loopback are said at start. */
        koc_manager_config cfg;
        koc_error err = {0};
        koc_manager_config_init(&cfg);
        cfg.kubeconfig = api.kubeconfig;
        cfg.leader_elect = false;
        cfg.handle_signals = false;
        cfg.health_probe_bind_address = "127.0.0.1:0";
        cfg.metrics_bind_address = "0.0.0.0:0";
        warned_plain[0] = 0;
        koc_log_set_handler(capture, NULL, NULL);
        sd_event *e = NULL;
        koc_manager *m = NULL;
        assert_int_equal(sd_event_new(&e), 0);
        if (koc_manager_new(e, &cfg, &m, &err) < 0)
                fail_msg("manager: %s", err.message);
        koc_log_set_handler(NULL, NULL, NULL);
        assert_non_null(strstr(warned_plain, "0.0.0.0:0"));
        koc_manager_unref(m);
        /* And not on loopback. */
        warned_plain[0] = 0;
        cfg.metrics_bind_address = "127.0.0.1:0";
        koc_log_set_handler(capture, NULL, NULL);
        if (koc_manager_new(e, &cfg, &m, &err) < 0)
                fail_msg("manager: %s", err.message);
        koc_log_set_handler(NULL, NULL, NULL);
        assert_string_equal(warned_plain, "");
        koc_manager_unref(m);
        sd_event_unref(e);

        free(reader);
        free(nobody);
        koc_test_apiserver_stop(&api);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_metrics_secure),
        };
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int r = cmocka_run_group_tests(tests, NULL, NULL);
        curl_global_cleanup();
        return r;
}

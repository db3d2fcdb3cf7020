/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client's metrics (client-go's names, labels and buckets) and its
 * client-side rate limiter, against koc-apiserver.  The rate test asserts
 * lower bounds only: a token bucket must never let requests through faster
 * than its rate, however loaded the machine; upper bounds are the generous
 * safety deadline.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "koc/client.h"
#include "koc/config.h"
#include "koc/metrics.h"
#include "koc/time.h"
#include "tests/harness/apiserver.h"

#define LEASES "/apis/coordination.k8s.io/v1/namespaces/default/leases"
#define SAFETY_USEC (60 * KOC_USEC_PER_SEC)

static koc_test_apiserver srv;
static sd_event *event;

typedef struct ctx {
        koc_cluster_config *cfg;
        koc_client *client;
} ctx;

typedef struct result {
        bool done;
        int error;
        long status;
        char message[512];
        uint64_t at_usec;
} result;

static void on_result(koc_client *c, const koc_response *r, void *userdata) {
        result *res = userdata;
        res->done = true;
        res->error = r->error;
        res->status = r->status;
        snprintf(res->message, sizeof res->message, "%s", r->message);
        res->at_usec = koc_now_boottime_usec();
}

static void run_until(const volatile bool *flag) {
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (!*flag) {
                assert_true(koc_now_boottime_usec() < end);
                assert_true(sd_event_run(event, 100 * KOC_USEC_PER_MSEC) >= 0);
        }
}

static void start(ctx *x, const char *method, const char *path, uint64_t timeout_usec,
                  result *res) {
        *res = (result){0};
        assert_int_equal(koc_client_request(x->client,
                                            &(koc_request_spec){.method = method,
                                                                .path = path,
                                                                .timeout_usec = timeout_usec},
                                            on_result, res, NULL),
                         0);
}

static void request(ctx *x, const char *method, const char *path, result *res) {
        start(x, method, path, 0, res);
        run_until(&res->done);
}

static void ctx_open(ctx *x, const char *kubeconfig) {
        koc_error err = {0};
        if (koc_cluster_config_from_kubeconfig(kubeconfig, NULL, &x->cfg, &err) < 0)
                fail_msg("%s", err.message);
        assert_int_equal(koc_client_new(event, x->cfg, &x->client), 0);
}

static void ctx_close(ctx *x) {
        x->client = koc_client_unref(x->client);
        x->cfg = koc_cluster_config_unref(x->cfg);
}

static int group_setup(void **state) {
        if (koc_test_apiserver_start(&srv, NULL) < 0 || sd_event_new(&event) < 0)
                return -1;
        return 0;
}

static int group_teardown(void **state) {
        event = sd_event_unref(event);
        koc_test_apiserver_stop(&srv);
        return 0;
}

static void expect_line(const char *text, const char *line) {
        if (!strstr(text, line))
                fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void on_watch(koc_watch *w, const koc_watch_event *ev, void *userdata) {
        *(bool *)userdata = true;
}

static void test_metrics(void **state) {
        ctx x = {0}, refused = {0};
        _koc_cleanup_(koc_metrics_unrefp) koc_metrics *m = NULL;
        result res;
        char host[600], line[1024];

        ctx_open(&x, srv.kubeconfig);
        assert_int_equal(koc_metrics_new(&m), 0);
        assert_int_equal(koc_client_register_metrics(x.client, m), 0);
        assert_int_equal(koc_client_register_metrics(x.client, NULL), -EINVAL);
        snprintf(host, sizeof host, "%.127s", srv.url + strlen("https://"));

        for (int i = 0; i < 3; i++) {
                request(&x, "GET", LEASES, &res);
                assert_int_equal(res.status, 200);
        }
        request(&x, "GET", LEASES "/none", &res);
        assert_int_equal(res.status, 404);
        request(&x, "DELETE", LEASES "/none", &res);
        assert_int_equal(res.status, 404);

        /* A watch is counted once its answer's status line arrived, which the
         * first event (there is none here) would follow: stop after a lease
         * shows up. */
        bool event_seen = false;
        koc_watch *w = NULL;
        assert_int_equal(koc_client_watch(x.client, &(koc_watch_spec){.path = LEASES}, on_watch,
                                          &event_seen, &w),
                         0);
        cJSON *lease = cJSON_Parse("{\"metadata\":{\"name\":\"metrics\"},\"spec\":{}}");
        assert_non_null(lease);
        assert_int_equal(
                koc_client_request(
                        x.client,
                        &(koc_request_spec){.method = "POST", .path = LEASES, .body = lease},
                        on_result, &res, NULL),
                0);
        cJSON_Delete(lease);
        res = (result){0};
        run_until(&res.done);
        run_until(&event_seen);
        koc_watch_stop(w);

        /* No HTTP answer at all. */
        char kc[2048], kc_path[400];
        snprintf(kc_path, sizeof kc_path, "%s/refused.kubeconfig", srv.dir);
        snprintf(kc, sizeof kc,
                 "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                 "clusters: [{name: k, cluster: {server: \"https://127.0.0.1:1\", "
                 "certificate-authority: \"%s\"}}]\n"
                 "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                 "users: [{name: u, user: {token: t}}]\n",
                 srv.ca_file);
        FILE *f = fopen(kc_path, "w");
        assert_non_null(f);
        fputs(kc, f);
        fclose(f);
        ctx_open(&refused, kc_path);
        assert_int_equal(koc_client_register_metrics(refused.client, m), 0);
        request(&refused, "GET", LEASES, &res);
        assert_int_equal(res.error, -ECONNREFUSED);
        /* Transport errors name the server. */
        assert_true(strncmp(res.message, "cannot reach https://127.0.0.1:1: Connection refused (",
                            strlen("cannot reach https://127.0.0.1:1: Connection refused (")) == 0);

        char *text = NULL;
        size_t len = 0;
        assert_int_equal(koc_metrics_render(m, &text, &len), 0);
        expect_line(text, "# TYPE rest_client_requests_total counter");
        expect_line(text, "# TYPE rest_client_request_duration_seconds histogram");
        /* Three lists, the watch. */
        snprintf(line, sizeof line,
                 "rest_client_requests_total{code=\"200\",method=\"GET\",host=\"%s\"} 4\n", host);
        expect_line(text, line);
        snprintf(line, sizeof line,
                 "rest_client_requests_total{code=\"404\",method=\"GET\",host=\"%s\"} 1\n", host);
        expect_line(text, line);
        snprintf(line, sizeof line,
                 "rest_client_requests_total{code=\"404\",method=\"DELETE\",host=\"%s\"} 1\n",
                 host);
        expect_line(text, line);
        snprintf(line, sizeof line,
                 "rest_client_requests_total{code=\"201\",method=\"POST\",host=\"%s\"} 1\n", host);
        expect_line(text, line);
        expect_line(text, "rest_client_requests_total{code=\"<error>\",method=\"GET\",host=\"127.0."
                          "0.1:1\"} 1\n");
        /* Durations of requests only (not the watch), in client-go's buckets. */
        snprintf(line, sizeof line,
                 "rest_client_request_duration_seconds_count{verb=\"GET\",host=\"%s\"} 4\n", host);
        expect_line(text, line);
        snprintf(line, sizeof line,
                 "rest_client_request_duration_seconds_bucket{verb=\"GET\",host=\"%s\",le=\"60\"} "
                 "4\n",
                 host);
        expect_line(text, line);
        snprintf(line, sizeof line,
                 "rest_client_request_duration_seconds_bucket{verb=\"GET\",host=\"%s\",le=\"0."
                 "005\"}",
                 host);
        expect_line(text, line);
        expect_line(text, "rest_client_request_duration_seconds_count{verb=\"GET\",host=\"127.0.0."
                          "1:1\"} 1\n");
        free(text);

        request(&x, "DELETE", LEASES "/metrics", &res);
        ctx_close(&refused);
        ctx_close(&x);
}

/* The host label is "host:port", with the scheme's port when the URL has
 * none, IPv6 literals included; the families show before any request. */
static void test_host_label(void **state) {
        static const struct {
                const char *server, *host;
        } cases[] = {
                {"https://[::1]", "[::1]:443"},
                {"https://[fd00::1]:6443/prefix", "[fd00::1]:6443"},
                {"http://api.example:8080", "api.example:8080"},
                {"https://api.example/k8s", "api.example:443"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char kc[1024], kc_path[400], line[512];
                snprintf(kc_path, sizeof kc_path, "%s/host-%zu.kubeconfig", srv.dir, i);
                snprintf(kc, sizeof kc,
                         "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                         "clusters: [{name: k, cluster: {server: \"%s\"}}]\n"
                         "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                         "users: [{name: u, user: {token: t}}]\n",
                         cases[i].server);
                FILE *f = fopen(kc_path, "w");
                assert_non_null(f);
                fputs(kc, f);
                fclose(f);
                ctx x = {0};
                _koc_cleanup_(koc_metrics_unrefp) koc_metrics *m = NULL;
                ctx_open(&x, kc_path);
                assert_int_equal(koc_metrics_new(&m), 0);
                assert_int_equal(koc_client_register_metrics(x.client, m), 0);
                char *text = NULL;
                size_t len = 0;
                assert_int_equal(koc_metrics_render(m, &text, &len), 0);
                snprintf(line, sizeof line,
                         "rest_client_request_duration_seconds_count{verb=\"GET\",host=\"%s\"} 0\n",
                         cases[i].host);
                expect_line(text, line);
                free(text);
                ctx_close(&x);
        }
}

static void test_rate_limit(void **state) {
        ctx x = {0};
        enum { N = 10, BURST = 2 };
        const double qps = 20; /* one token every 50 ms */
        result res[N];

        ctx_open(&x, srv.kubeconfig);
        assert_int_equal(koc_client_set_rate_limit(x.client, -1, 1), -EINVAL);
        assert_int_equal(koc_client_set_rate_limit(x.client, 5, 0), -EINVAL);
        assert_int_equal(koc_client_set_rate_limit(x.client, 1.0 / 0.0, 1), -EINVAL);
        assert_int_equal(koc_client_set_rate_limit(x.client, qps, BURST), 0);

        uint64_t t0 = koc_now_boottime_usec();
        for (int i = 0; i < N; i++)
                start(&x, "GET", LEASES, 0, &res[i]);
        for (int i = 0; i < N; i++)
                run_until(&res[i].done);
        for (int i = 0; i < N; i++) {
                assert_int_equal(res[i].status, 200);
                /* The burst goes at once; request i (i >= BURST) waits for
                 * the (i - BURST + 1)-th new token, since tokens are handed
                 * out in the order requests were started (answers over one
                 * HTTP/2 connection may still overtake each other). */
                if (i >= BURST) {
                        uint64_t earliest = t0 + (uint64_t)((i - BURST + 1) * 1e6 / qps);
                        if (res[i].at_usec + 1000 < earliest)
                                fail_msg("request %d answered %.1f ms after the start, before "
                                         "its token (%.1f ms)",
                                         i, (res[i].at_usec - t0) / 1e3, (earliest - t0) / 1e3);
                }
        }

        /* The wait for a token counts against the request's timeout. */
        assert_int_equal(koc_client_set_rate_limit(x.client, 1, 1), 0);
        result a, b;
        start(&x, "GET", LEASES, 0, &a);
        start(&x, "GET", LEASES, 100 * KOC_USEC_PER_MSEC, &b);
        run_until(&b.done);
        assert_true(a.done);
        assert_int_equal(a.status, 200);
        assert_int_equal(b.error, -ETIMEDOUT);

        /* Turning the limiter off releases whoever waits. */
        assert_int_equal(koc_client_set_rate_limit(x.client, 0.001, 1), 0);
        start(&x, "GET", LEASES, 0, &a);
        start(&x, "GET", LEASES, 0, &b);
        run_until(&a.done);
        assert_int_equal(koc_client_set_rate_limit(x.client, 0, 0), 0);
        run_until(&b.done); /* a token of this bucket would take 1000 s */
        assert_int_equal(b.status, 200);
        ctx_close(&x);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_metrics),
                cmocka_unit_test(test_host_label),
                cmocka_unit_test(test_rate_limit),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

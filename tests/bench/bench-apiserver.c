/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-apiserver: figures for koc-apiserver on this machine.
 *
 *   bench-apiserver [--clients N] [--seconds S] [--watches W] [--rounds R]
 *
 * 1. Lease updates per second: N clients (keep-alive connections, driven by
 *    one curl multi handle), each on its own Lease, doing PUT with the
 *    resourceVersion of its previous answer; then the same with GET + PUT.
 * 2. Watch fan-out: W concurrent watches on one Lease; for R updates, the
 *    time from sending the PUT until every watch has received the event.
 *
 * A benchmark, not a test: it prints figures and exits 0 unless something
 * failed outright.  Every loop is bounded.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "harness/apiserver.h"

static koc_test_apiserver srv;
static struct curl_slist *headers;

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void setup_easy(CURL *e, const char *path, koc_test_buffer *b) {
        char url[512];
        snprintf(url, sizeof url, "%s%s", srv.url, path);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(e, CURLOPT_CAINFO, srv.ca_file);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, koc_test_buffer_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
}

static char *rv_from(const char *json) {
        cJSON *o = cJSON_Parse(json);
        const cJSON *rv =
                cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metadata"), "resourceVersion");
        char *s = cJSON_IsString(rv) ? strdup(rv->valuestring) : NULL;
        cJSON_Delete(o);
        return s;
}

typedef struct client {
        CURL *e;
        koc_test_buffer b;
        char name[32];
        char *rv;
        bool getting; /* GET+PUT mode: the GET is in flight */
        char body[512];
        long ok, conflicts, errors;
} client;

static void client_next(client *c, bool get_put) {
        char path[256];
        free(c->b.data);
        c->b = (koc_test_buffer){0};
        snprintf(path, sizeof path, "/apis/coordination.k8s.io/v1/namespaces/default/leases/%s",
                 c->name);
        curl_easy_reset(c->e);
        setup_easy(c->e, path, &c->b);
        if (get_put && !c->getting) {
                c->getting = true;
                curl_easy_setopt(c->e, CURLOPT_HTTPGET, 1L);
                return;
        }
        c->getting = false;
        snprintf(c->body, sizeof c->body,
                 "{\"apiVersion\":\"coordination.k8s.io/"
                 "v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":\"%s\","
                 "\"namespace\":\"default\",\"resourceVersion\":\"%s\"},\"spec\":{"
                 "\"holderIdentity\":\"%s\","
                 "\"leaseDurationSeconds\":10,\"leaseTransitions\":%ld}}",
                 c->name, c->rv ? c->rv : "", c->name, c->ok % 1000);
        curl_easy_setopt(c->e, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(c->e, CURLOPT_POSTFIELDS, c->body);
}

static int bench_updates(int n_clients, double seconds, bool get_put) {
        CURLM *m = curl_multi_init();
        client *cs = calloc((size_t)n_clients, sizeof *cs);
        long puts = 0, conflicts = 0, errors = 0, gets = 0;

        for (int i = 0; i < n_clients; i++) {
                char body[256], *out = NULL;
                snprintf(cs[i].name, sizeof cs[i].name, "bench-%s-%d", get_put ? "gp" : "p", i);
                snprintf(body, sizeof body,
                         "{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"holderIdentity\":\"x\"}}",
                         cs[i].name);
                if (koc_test_apiserver_http(
                            &srv, "POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases",
                            body, NULL, &out) != 201) {
                        fprintf(stderr, "bench: cannot create %s\n", cs[i].name);
                        free(out);
                        return -1;
                }
                cs[i].rv = rv_from(out);
                free(out);
                cs[i].e = curl_easy_init();
                client_next(&cs[i], get_put);
                curl_multi_add_handle(m, cs[i].e);
        }
        double start = now_s(), end = start + seconds;
        int running = n_clients;
        while (running > 0) {
                int still;
                curl_multi_perform(m, &still);
                CURLMsg *msg;
                int left;
                while ((msg = curl_multi_info_read(m, &left))) {
                        if (msg->msg != CURLMSG_DONE)
                                continue;
                        client *c = NULL;
                        for (int i = 0; i < n_clients; i++)
                                if (cs[i].e == msg->easy_handle)
                                        c = &cs[i];
                        long code = 0;
                        curl_easy_getinfo(c->e, CURLINFO_RESPONSE_CODE, &code);
                        curl_multi_remove_handle(m, c->e);
                        if (msg->data.result != CURLE_OK)
                                errors++;
                        else if (code == 200) {
                                free(c->rv);
                                c->rv = rv_from(c->b.data);
                                if (c->getting)
                                        gets++;
                                else {
                                        puts++;
                                        c->ok++;
                                }
                        } else if (code == 409)
                                conflicts++;
                        else
                                errors++;
                        if (now_s() < end) {
                                client_next(c, get_put);
                                curl_multi_add_handle(m, c->e);
                        } else
                                running--;
                }
                if (running > 0)
                        curl_multi_poll(m, NULL, 0, 100, NULL);
        }
        double took = now_s() - start;
        printf("lease updates (%s, %d clients): %.0f updates/s (%ld PUT in %.2f s, %ld GET, %ld "
               "conflicts, %ld errors)\n",
               get_put ? "GET+PUT" : "PUT with resourceVersion", n_clients, (double)puts / took,
               puts, took, gets, conflicts, errors);
        for (int i = 0; i < n_clients; i++) {
                curl_easy_cleanup(cs[i].e);
                free(cs[i].b.data);
                free(cs[i].rv);
        }
        free(cs);
        curl_multi_cleanup(m);
        return errors ? -1 : 0;
}

typedef struct watch_conn {
        CURL *e;
        koc_test_buffer b;
        size_t seen; /* bytes already scanned */
        bool got;
} watch_conn;

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static int bench_fanout(int n_watches, int rounds) {
        CURLM *m = curl_multi_init();
        watch_conn *ws = calloc((size_t)n_watches, sizeof *ws);
        char *out = NULL, path[512];
        int r = -1;

        if (koc_test_apiserver_http(
                    &srv, "POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases",
                    "{\"metadata\":{\"name\":\"fan\"},\"spec\":{\"holderIdentity\":\"x\"}}", NULL,
                    &out) != 201) {
                fprintf(stderr, "bench: cannot create the fan-out lease\n");
                free(out);
                goto out;
        }
        char *rv = rv_from(out);
        free(out);
        snprintf(path, sizeof path,
                 "/apis/coordination.k8s.io/v1/namespaces/default/"
                 "leases?watch=1&fieldSelector=metadata.name%%3Dfan"
                 "&resourceVersion=%s",
                 rv ? rv : "0");
        free(rv);
        double t0 = now_s();
        for (int i = 0; i < n_watches; i++) {
                ws[i].e = curl_easy_init();
                setup_easy(ws[i].e, path, &ws[i].b);
                curl_easy_setopt(ws[i].e, CURLOPT_TIMEOUT, 0L);
                curl_multi_add_handle(m, ws[i].e);
        }
        /* Wait (bounded) until every watch has its response headers. */
        int ready = 0;
        for (int iter = 0; iter < 6000 && ready < n_watches; iter++) {
                int still;
                curl_multi_perform(m, &still);
                curl_multi_poll(m, NULL, 0, 10, NULL);
                ready = 0;
                for (int i = 0; i < n_watches; i++) {
                        long code = 0;
                        curl_easy_getinfo(ws[i].e, CURLINFO_RESPONSE_CODE, &code);
                        ready += code == 200;
                }
        }
        printf("watch fan-out: %d of %d watches established in %.2f s\n", ready, n_watches,
               now_s() - t0);
        if (ready < n_watches)
                goto out;

        double *lat = calloc((size_t)rounds, sizeof *lat);
        int done_rounds = 0;
        for (int round = 0; round < rounds; round++) {
                char body[256], marker[64];
                snprintf(body, sizeof body, "{\"spec\":{\"holderIdentity\":\"round-%d\"}}", round);
                snprintf(marker, sizeof marker, "\"round-%d\"", round);
                for (int i = 0; i < n_watches; i++)
                        ws[i].got = false;
                double start = now_s();
                /* The PUT goes through its own easy handle; the watches keep
                 * streaming in the multi handle between our polls. */
                if (koc_test_apiserver_http(
                            &srv, "PATCH",
                            "/apis/coordination.k8s.io/v1/namespaces/default/leases/fan", body,
                            "application/merge-patch+json", NULL) != 200) {
                        fprintf(stderr, "bench: update failed\n");
                        break;
                }
                int got = 0;
                for (int iter = 0; iter < 30000 && got < n_watches; iter++) {
                        int still;
                        curl_multi_perform(m, &still);
                        got = 0;
                        for (int i = 0; i < n_watches; i++) {
                                if (!ws[i].got && ws[i].b.data &&
                                    strstr(ws[i].b.data + ws[i].seen, marker)) {
                                        ws[i].got = true;
                                        ws[i].seen = ws[i].b.len;
                                }
                                got += ws[i].got;
                        }
                        if (got < n_watches)
                                curl_multi_poll(m, NULL, 0, 5, NULL);
                }
                double took = now_s() - start;
                if (got < n_watches) {
                        printf("watch fan-out: round %d: only %d of %d watches got the event\n",
                               round, got, n_watches);
                        break;
                }
                lat[done_rounds++] = took;
        }
        if (done_rounds > 0) {
                qsort(lat, (size_t)done_rounds, sizeof *lat, cmp_double);
                printf("watch fan-out: update -> all %d watches: min %.1f ms, median %.1f ms, max "
                       "%.1f ms (%d rounds, "
                       "includes the PATCH round trip)\n",
                       n_watches, lat[0] * 1e3, lat[done_rounds / 2] * 1e3,
                       lat[done_rounds - 1] * 1e3, done_rounds);
                r = done_rounds == rounds ? 0 : -1;
        }
        free(lat);
out:
        for (int i = 0; i < n_watches; i++) {
                if (!ws[i].e)
                        continue;
                curl_multi_remove_handle(m, ws[i].e);
                curl_easy_cleanup(ws[i].e);
                free(ws[i].b.data);
        }
        free(ws);
        curl_multi_cleanup(m);
        return r;
}

int main(int argc, char **argv) {
        int clients = 8, watches = 1000, rounds = 5;
        double seconds = 3;
        char auth[200];
        struct rlimit rl;
        int r = 0;

        for (int i = 1; i + 1 < argc; i += 2) {
                if (strcmp(argv[i], "--clients") == 0)
                        clients = atoi(argv[i + 1]);
                else if (strcmp(argv[i], "--seconds") == 0)
                        seconds = atof(argv[i + 1]);
                else if (strcmp(argv[i], "--watches") == 0)
                        watches = atoi(argv[i + 1]);
                else if (strcmp(argv[i], "--rounds") == 0)
                        rounds = atoi(argv[i + 1]);
        }
        if (clients < 1 || clients > 256 || seconds <= 0 || seconds > 600 || watches < 0 ||
            watches > 20000 || rounds < 1 || rounds > 1000) {
                fprintf(stderr, "usage: bench-apiserver [--clients 1..256] [--seconds S] "
                                "[--watches W] [--rounds R]\n");
                return 2;
        }
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
        curl_global_init(CURL_GLOBAL_DEFAULT);
        if (koc_test_apiserver_start(&srv, "--log-level warn") < 0) {
                fprintf(stderr, "bench: cannot start koc-apiserver\n");
                return 1;
        }
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", srv.token);
        headers = curl_slist_append(NULL, auth);
        headers = curl_slist_append(headers, "Content-Type: application/json");
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        printf("koc-apiserver benchmark (%ld CPUs; client and server share them)\n", cpus);
        if (bench_updates(clients, seconds, false) < 0)
                r = 1;
        if (bench_updates(clients, seconds, true) < 0)
                r = 1;
        if (watches > 0 && bench_fanout(watches, rounds) < 0)
                r = 1;
        printf("server metrics: %.0f PUT leases 200, %.0f PATCH leases 200\n",
               koc_test_apiserver_metric(
                       &srv,
                       "apiserver_request_total{verb=\"PUT\",resource=\"leases\",code=\"200\"}"),
               koc_test_apiserver_metric(
                       &srv,
                       "apiserver_request_total{verb=\"PATCH\",resource=\"leases\",code=\"200\"}"));
        koc_test_apiserver_stop(&srv);
        curl_slist_free_all(headers);
        curl_global_cleanup();
        return r;
}

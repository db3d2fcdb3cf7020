/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test harness: runs koc-apiserver as a child process on 127.0.0.1 with a
 * random port and a temporary directory, for integration tests.
 *
 *   koc_test_apiserver s;
 *   assert_int_equal(koc_test_apiserver_start(&s, NULL), 0);
 *   ... koc_cluster_config_from_kubeconfig(s.kubeconfig, NULL, &cfg, &err) ...
 *   koc_test_apiserver_fault(&s, "{\"resource\":\"leases\",\"verb\":\"update\","
 *                                 "\"error_rate\":1.0,\"error_code\":503}");
 *   koc_test_apiserver_stop(&s);
 *
 * KOC_APISERVER_PATH (a compile definition) is the binary to run; the
 * environment variable KOC_APISERVER overrides it, and KOC_APISERVER_WRAPPER
 * (space-separated, e.g. "valgrind --error-exitcode=99") is put in front of
 * it; exit_status then tells whether the wrapped server was clean.
 *
 * On the real server.  When KOC_K8S_ENV names a directory made by
 * tests/k8s/env.sh (ctest sets it for the tests labelled k8s), start() spawns
 * nothing: it points the struct at that kube-apiserver (as the admin user; the
 * unprivileged user's kubeconfig and token are in user_kubeconfig and
 * user_token), deletes the leases and configmaps left in the default
 * namespace by an earlier test, and sets `real`.  Extra arguments, which are
 * koc-apiserver flags, are ignored there.  Fault injection and koc-apiserver's
 * own metrics do not exist on the real server: a test case that needs them
 * starts with KOC_TEST_NEEDS_KOC_APISERVER(&s), which skips it there, and
 * koc_test_apiserver_fault() answers -EOPNOTSUPP.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct koc_test_apiserver {
        pid_t pid;
        char dir[256];        /* temporary directory, removed by stop */
        char kubeconfig[300]; /* kubeconfig written by the server */
        char url[128];        /* "https://127.0.0.1:PORT" */
        char token[128];      /* bearer token */
        char ca_file[300];    /* the server's CA certificate, PEM */
        int exit_status;      /* after stop: the exit code, 128+signal when killed */
        bool real;            /* a real kube-apiserver (KOC_K8S_ENV), not koc-apiserver */
        char user_kubeconfig[300]; /* real: the unprivileged user's kubeconfig */
        char user_token[128];      /* real: the unprivileged user's token */
} koc_test_apiserver;

/* Skips the calling cmocka test case on the real server (fault injection,
 * koc-apiserver's metrics or flags). */
#define KOC_TEST_NEEDS_KOC_APISERVER(s)                                                            \
        do {                                                                                       \
                if ((s)->real)                                                                     \
                        skip();                                                                    \
        } while (0)

/* True when the tests run against a real kube-apiserver (KOC_K8S_ENV set). */
bool koc_test_on_real_server(void);

/* Starts the server with optional extra arguments (a space-separated string,
 * NULL for none) and waits until it serves.  Returns 0 or a negative errno. */
int koc_test_apiserver_start(koc_test_apiserver *s, const char *extra_args);
/* SIGTERM, wait (SIGKILL after 5 s), remove the directory. */
void koc_test_apiserver_stop(koc_test_apiserver *s);

/* Adds a fault rule (JSON object, see apiserver/README.md); returns the HTTP
 * status of the admin call (200) or a negative errno. */
int koc_test_apiserver_fault(koc_test_apiserver *s, const char *json_rule);
/* Removes all fault rules. */
int koc_test_apiserver_clear_faults(koc_test_apiserver *s);

/* Sums the values of every /metrics sample whose line starts with `prefix`
 * (e.g. "apiserver_request_total{verb=\"PUT\",resource=\"leases\""); -1 on
 * failure. */
double koc_test_apiserver_metric(koc_test_apiserver *s, const char *prefix);

/* Runs an HTTP request with libcurl's easy interface (blocking, for tests):
 * returns the status code or a negative errno; *ret_body (may be NULL) gets
 * the malloc'ed body. */
long koc_test_apiserver_http(koc_test_apiserver *s, const char *method, const char *path,
                             const char *body, const char *content_type, char **ret_body);

/* A growing, NUL-terminated body for libcurl easy transfers:
 *   koc_test_buffer b = {0};
 *   curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, koc_test_buffer_write);
 *   curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
 *   ... free(b.data); */
typedef struct koc_test_buffer {
        char *data;
        size_t len;
} koc_test_buffer;
size_t koc_test_buffer_write(char *ptr, size_t size, size_t n, void *userdata);

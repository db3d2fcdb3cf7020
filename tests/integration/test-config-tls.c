/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster configuration against a real TLS server (koc-apiserver): CA
 * file and inline CA, tls-server-name (verified against that name, not the
 * address), insecure-skip-tls-verify, a certificate nobody vouches for, and
 * a rotated token file picked up after a 401. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "core/config-internal.h"
#include "harness/apiserver.h"
#include "koc/config.h"
#include "koc/log.h"

static koc_test_apiserver server;
static char dir[64];
static char *ca_b64;

static int setup(void **state) {
        if (koc_test_apiserver_start(&server, NULL) < 0)
                return -1;
        snprintf(dir, sizeof dir, "/tmp/koc-config-tls-XXXXXX");
        if (!mkdtemp(dir)) {
                koc_test_apiserver_stop(&server);
                return -1;
        }
        FILE *f = fopen(server.ca_file, "r");
        if (!f)
                return -1;
        char pem[16384];
        size_t n = fread(pem, 1, sizeof pem, f);
        fclose(f);
        ca_b64 = malloc(4 * ((n + 2) / 3) + 1);
        EVP_EncodeBlock((unsigned char *)ca_b64, (const unsigned char *)pem, (int)n);
        return 0;
}

static int teardown(void **state) {
        koc_test_apiserver_stop(&server);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        free(ca_b64);
        return system(cmd) == 0 ? 0 : -1;
}

/* Port of the test server's URL. */
static const char *port(void) {
        return strrchr(server.url, ':') + 1;
}

/* Writes a kubeconfig with the given cluster and user fields and loads it. */
static koc_cluster_config *load(const char *cluster_fields, const char *user_fields) {
        char path[128];
        snprintf(path, sizeof path, "%s/kubeconfig", dir);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f,
                "current-context: c\n"
                "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                "clusters:\n- name: k\n  cluster:\n%s"
                "users:\n- name: u\n  user:\n%s",
                cluster_fields, user_fields);
        assert_int_equal(fclose(f), 0);
        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        if (koc_cluster_config_from_kubeconfig(path, NULL, &cfg, &err) < 0)
                fail_msg("%s", err.message);
        return cfg;
}

static size_t sink(char *p, size_t size, size_t n, void *userdata) {
        return size * n;
}

/* GET path the way the API client does it; returns the HTTP status, or
 * -CURLcode when the transfer failed. */
static long get(koc_cluster_config *cfg, const char *path) {
        CURL *e = curl_easy_init();
        assert_non_null(e);
        char url[512];
        snprintf(url, sizeof url, "%s%s", koc_cluster_config_server(cfg), path);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
        assert_int_equal(koc__cluster_config_apply_tls(cfg, e), 0);
        struct curl_slist *h = NULL;
        const char *auth = koc__cluster_config_auth_header(cfg);
        if (auth)
                h = curl_slist_append(h, auth);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        CURLcode c = curl_easy_perform(e);
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(h);
        curl_easy_cleanup(e);
        return c == CURLE_OK ? status : -(long)c;
}

static void test_ca_file_and_inline(void **state) {
        char cluster[16384], user[256];
        snprintf(user, sizeof user, "    token: %s\n", server.token);
        snprintf(cluster, sizeof cluster, "    server: %s\n    certificate-authority: %s\n",
                 server.url, server.ca_file);
        koc_cluster_config *cfg = load(cluster, user);
        assert_int_equal(get(cfg, "/api"), 200);
        koc_cluster_config_unref(cfg);

        snprintf(cluster, sizeof cluster, "    server: %s\n    certificate-authority-data: %s\n",
                 server.url, ca_b64);
        cfg = load(cluster, user);
        assert_int_equal(get(cfg, "/api"), 200);
        koc_cluster_config_unref(cfg);

        /* No CA: the system trust store does not know the test CA. */
        snprintf(cluster, sizeof cluster, "    server: %s\n", server.url);
        cfg = load(cluster, user);
        assert_int_equal(get(cfg, "/api"), -(long)CURLE_PEER_FAILED_VERIFICATION);
        koc_cluster_config_unref(cfg);
}

static void test_tls_server_name(void **state) {
        char cluster[16384], user[256];
        snprintf(user, sizeof user, "    token: %s\n", server.token);
        /* The certificate names localhost: verified against that name while
         * the connection goes to 127.0.0.1. */
        snprintf(cluster, sizeof cluster,
                 "    server: https://127.0.0.1:%s\n    tls-server-name: localhost\n"
                 "    certificate-authority-data: %s\n",
                 port(), ca_b64);
        koc_cluster_config *cfg = load(cluster, user);
        assert_int_equal(get(cfg, "/api"), 200);
        koc_cluster_config_unref(cfg);
        /* A name the certificate does not carry fails, although the address
         * alone (127.0.0.1) would have verified. */
        snprintf(cluster, sizeof cluster,
                 "    server: https://127.0.0.1:%s\n    tls-server-name: other.example\n"
                 "    certificate-authority-data: %s\n",
                 port(), ca_b64);
        cfg = load(cluster, user);
        assert_int_equal(get(cfg, "/api"), -(long)CURLE_PEER_FAILED_VERIFICATION);
        koc_cluster_config_unref(cfg);
}

static void test_insecure(void **state) {
        char cluster[512], user[256];
        snprintf(user, sizeof user, "    token: %s\n", server.token);
        snprintf(cluster, sizeof cluster, "    server: %s\n    insecure-skip-tls-verify: true\n",
                 server.url);
        koc_log_set_level(KOC_LOG_ERROR); /* the warning is expected */
        koc_cluster_config *cfg = load(cluster, user);
        koc_log_set_level(KOC_LOG_INFO);
        assert_int_equal(get(cfg, "/api"), 200);
        koc_cluster_config_unref(cfg);
}

static void test_token_file_rotation_after_401(void **state) {
        char cluster[16384], user[256], token_path[128];
        snprintf(token_path, sizeof token_path, "%s/token", dir);
        FILE *f = fopen(token_path, "w");
        assert_non_null(f);
        fputs("stale-token\n", f);
        fclose(f);
        snprintf(user, sizeof user, "    tokenFile: token\n");
        snprintf(cluster, sizeof cluster, "    server: %s\n    certificate-authority-data: %s\n",
                 server.url, ca_b64);
        koc_cluster_config *cfg = load(cluster, user);
        assert_int_equal(get(cfg, "/api/v1/namespaces/default/configmaps"), 401);
        /* The token rotates on disk; the next request still sends the old one
         * (not re-read before 60 s) until a 401 invalidates it. */
        f = fopen(token_path, "w");
        assert_non_null(f);
        fprintf(f, "%s\n", server.token);
        fclose(f);
        assert_int_equal(get(cfg, "/api/v1/namespaces/default/configmaps"), 401);
        koc__cluster_config_token_invalidate(cfg);
        assert_int_equal(get(cfg, "/api/v1/namespaces/default/configmaps"), 200);
        koc_cluster_config_unref(cfg);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ca_file_and_inline),
                cmocka_unit_test(test_tls_server_name),
                cmocka_unit_test(test_insecure),
                cmocka_unit_test(test_token_file_rotation_after_401),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

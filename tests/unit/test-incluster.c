/* SPDX-License-Identifier: Apache-2.0 */
/* In-cluster configuration from a fake service-account directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <cmocka.h>

#include "core/cluster-config.h"
#include "koc/config.h"

typedef struct fixture {
        char dir[64];
} fixture;

static void write_file(const char *dir, const char *name, const char *content) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(content, f);
        assert_int_equal(fclose(f), 0);
}

static void remove_file(const char *dir, const char *name) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        (void)unlink(path);
}

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);
        snprintf(f->dir, sizeof f->dir, "/tmp/koc-incluster-XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        write_file(f->dir, "token", "sa-token-1\n");
        write_file(f->dir, "ca.crt", "-----BEGIN CERTIFICATE-----\n");
        write_file(f->dir, "namespace", "team-a\n");
        setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
        setenv("KUBERNETES_SERVICE_PORT", "443", 1);
        unsetenv("POD_NAMESPACE");
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;
        remove_file(f->dir, "token");
        remove_file(f->dir, "ca.crt");
        remove_file(f->dir, "namespace");
        rmdir(f->dir);
        free(f);
        return 0;
}

static void test_ipv4(void **state) {
        fixture *f = *state;
        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        assert_int_equal(koc_cluster_config_in_cluster(f->dir, &cfg, &err), 0);
        assert_string_equal(koc_cluster_config_server(cfg), "https://10.96.0.1:443");
        assert_string_equal(koc_cluster_config_namespace(cfg), "team-a");
        assert_string_equal(koc_cluster_config_source(cfg), "in-cluster");
        assert_string_equal(koc__cluster_config_auth_header(cfg),
                            "Authorization: Bearer sa-token-1");
        char ca[256];
        snprintf(ca, sizeof ca, "%s/ca.crt", f->dir);
        assert_string_equal(cfg->ca_file, ca);
        CURL *easy = curl_easy_init();
        assert_non_null(easy);
        assert_int_equal(koc__cluster_config_apply_tls(cfg, easy), 0);
        curl_easy_cleanup(easy);
        /* ref/unref */
        assert_ptr_equal(koc_cluster_config_ref(cfg), cfg);
        assert_null(koc_cluster_config_unref(cfg));
        assert_null(koc_cluster_config_unref(cfg));
        assert_null(koc_cluster_config_unref(NULL));
}

static void test_ipv6(void **state) {
        fixture *f = *state;
        koc_cluster_config *cfg = NULL;
        setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
        setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
        assert_int_equal(koc_cluster_config_in_cluster(f->dir, &cfg, NULL), 0);
        assert_string_equal(koc_cluster_config_server(cfg), "https://[fd00::1]:6443");
        koc_cluster_config_unref(cfg);
}

static void test_pod_namespace_wins(void **state) {
        fixture *f = *state;
        koc_cluster_config *cfg = NULL;
        setenv("POD_NAMESPACE", "from-env", 1);
        assert_int_equal(koc_cluster_config_in_cluster(f->dir, &cfg, NULL), 0);
        assert_string_equal(koc_cluster_config_namespace(cfg), "from-env");
        koc_cluster_config_unref(cfg);
        unsetenv("POD_NAMESPACE");
}

static void test_namespace_default(void **state) {
        fixture *f = *state;
        koc_cluster_config *cfg = NULL;
        remove_file(f->dir, "namespace");
        assert_int_equal(koc_cluster_config_in_cluster(f->dir, &cfg, NULL), 0);
        assert_string_equal(koc_cluster_config_namespace(cfg), "default");
        koc_cluster_config_unref(cfg);
        write_file(f->dir, "namespace", "  \n");
        assert_int_equal(koc_cluster_config_in_cluster(f->dir, &cfg, NULL), 0);
        assert_string_equal(koc_cluster_config_namespace(cfg), "default");
        koc_cluster_config_unref(cfg);
}

static void test_missing_ca_uses_system_store(void **state) {
        fixture *f = *state;
        koc_cluster_config *cfg = NULL;
        remove_file(f->dir, "ca.crt");
        assert_int_equal(koc_cluster_config_in_cluster(f->dir, &cfg, NULL), 0);
        assert_null(cfg->ca_file);
        assert_false(cfg->insecure);
        koc_cluster_config_unref(cfg);
}

static void expect_error(const char *dir, int code, const char *s1, const char *s2) {
        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        int r = koc_cluster_config_in_cluster(dir, &cfg, &err);
        assert_int_equal(r, code);
        assert_int_equal(err.code, code);
        assert_null(cfg);
        if (!strstr(err.message, s1) || (s2 && !strstr(err.message, s2)))
                fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", err.message, s1, s2 ? s2 : "");
}

static void test_errors(void **state) {
        fixture *f = *state;
        char path[256];
        snprintf(path, sizeof path, "%s/token", f->dir);

        unsetenv("KUBERNETES_SERVICE_HOST");
        expect_error(f->dir, -ENOENT, "KUBERNETES_SERVICE_HOST", "not set");
        setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
        unsetenv("KUBERNETES_SERVICE_PORT");
        expect_error(f->dir, -ENOENT, "KUBERNETES_SERVICE_PORT", "not set");
        setenv("KUBERNETES_SERVICE_PORT", "https", 1);
        expect_error(f->dir, -EINVAL, "KUBERNETES_SERVICE_PORT", "\"https\"");
        setenv("KUBERNETES_SERVICE_PORT", "70000", 1);
        expect_error(f->dir, -EINVAL, "KUBERNETES_SERVICE_PORT", "70000");
        setenv("KUBERNETES_SERVICE_PORT", "443", 1);
        setenv("KUBERNETES_SERVICE_HOST", "evil/path", 1);
        expect_error(f->dir, -EINVAL, "KUBERNETES_SERVICE_HOST", "evil/path");
        setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);

        remove_file(f->dir, "token");
        expect_error(f->dir, -ENOENT, path, "No such file");
        write_file(f->dir, "token", "\n \n");
        expect_error(f->dir, -ENODATA, path, "empty");
        write_file(f->dir, "token", "two words");
        expect_error(f->dir, -EBADMSG, path, "whitespace");
        expect_error("/nonexistent-koc-dir", -ENOENT, "/nonexistent-koc-dir/token", NULL);
}

/* KUBERNETES_SERVICE_HOST is an IP address or a DNS name, nothing else that
 * curl would still take (found by tests/fuzz/fuzz-in-cluster.c). */
static void test_hosts(void **state) {
        fixture *f = *state;
        static const char *const good[] = {"10.96.0.1", "fd00:10:96::1", "::1",
                                           "kubernetes.default.svc", "API-1.Example.com.",
                                           "node_1.local", "a.0xg"};
        static const char *const bad[] = {"16..900.1", "1.2.3", "010.1", "a\x01" "b", "a:b",
                                          "-a.example", "a-.example", ".a", "a..b", "fd00::1%eth0",
                                          "300.1.1.1", "a b", "10.96.0X1", "10.96.0x1."};
        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
                koc_cluster_config *cfg = NULL;
                setenv("KUBERNETES_SERVICE_HOST", good[i], 1);
                if (koc_cluster_config_in_cluster(f->dir, &cfg, NULL) != 0)
                        fail_msg("%s refused", good[i]);
                koc_cluster_config_unref(cfg);
        }
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                setenv("KUBERNETES_SERVICE_HOST", bad[i], 1);
                expect_error(f->dir, -EINVAL, "KUBERNETES_SERVICE_HOST", "not a host name");
        }
        /* The message shows a control character escaped. */
        setenv("KUBERNETES_SERVICE_HOST", "a\x01" "b", 1);
        expect_error(f->dir, -EINVAL, "KUBERNETES_SERVICE_HOST", "\"a\\x01b\"");
}

/* A namespace is a DNS-1123 label wherever it comes from: it becomes part of
 * request paths (found by tests/fuzz/fuzz-in-cluster.c). */
static void test_bad_namespace(void **state) {
        fixture *f = *state;
        char path[256];
        snprintf(path, sizeof path, "%s/namespace", f->dir);
        write_file(f->dir, "namespace", "kube-system/configmaps\n");
        expect_error(f->dir, -EINVAL, path, "\"kube-system/configmaps\"");
        write_file(f->dir, "namespace", "to\nx");
        expect_error(f->dir, -EINVAL, path, "\"to\\x0ax\"");
        write_file(f->dir, "namespace", "team-a\n");
        setenv("POD_NAMESPACE", "Team A", 1);
        expect_error(f->dir, -EINVAL, "POD_NAMESPACE", "\"Team A\"");
        unsetenv("POD_NAMESPACE");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_ipv4, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ipv6, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pod_namespace_wins, setup, teardown),
                cmocka_unit_test_setup_teardown(test_namespace_default, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_ca_uses_system_store, setup, teardown),
                cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hosts, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_namespace, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

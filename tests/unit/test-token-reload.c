/* SPDX-License-Identifier: Apache-2.0 */
/* Token re-reading with an injected clock: at most every 60 s, at once after
 * invalidate, keeping the previous token when the re-read fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/config-internal.h"
#include "koc/config.h"

#define SEC UINT64_C(1000000)

typedef struct fixture {
        char dir[64];
        char token[128];
        char kubeconfig[128];
        uint64_t now;
} fixture;

static uint64_t fake_clock(void *userdata) {
        return ((fixture *)userdata)->now;
}

static void write_file(const char *path, const char *content) {
        /* Write a new file and rename it over the old one, like the kubelet's
         * atomic writer does for projected tokens. */
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *f = fopen(tmp, "w");
        assert_non_null(f);
        fputs(content, f);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(rename(tmp, path), 0);
}

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);
        snprintf(f->dir, sizeof f->dir, "/tmp/koc-token-XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        snprintf(f->token, sizeof f->token, "%s/token", f->dir);
        snprintf(f->kubeconfig, sizeof f->kubeconfig, "%s/kubeconfig", f->dir);
        write_file(f->token, "token-1\n");
        write_file(f->kubeconfig, "apiVersion: v1\n"
                                  "kind: Config\n"
                                  "current-context: c\n"
                                  "contexts:\n"
                                  "- name: c\n"
                                  "  context: {cluster: k, user: u}\n"
                                  "clusters:\n"
                                  "- name: k\n"
                                  "  cluster: {server: 'https://127.0.0.1:6443'}\n"
                                  "users:\n"
                                  "- name: u\n"
                                  "  user: {tokenFile: token}\n");
        setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
        setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
        f->now = 1000 * SEC;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;
        unlink(f->token);
        unlink(f->kubeconfig);
        rmdir(f->dir);
        free(f);
        return 0;
}

static void expect_token(koc_cluster_config *cfg, const char *token) {
        char want[256];
        snprintf(want, sizeof want, "Authorization: Bearer %s", token);
        const char *h = koc__cluster_config_auth_header(cfg);
        assert_non_null(h);
        assert_string_equal(h, want);
}

static void run_reload_sequence(fixture *f, koc_cluster_config *cfg) {
        koc__cluster_config_set_clock(cfg, fake_clock, f);
        expect_token(cfg, "token-1");

        /* Rotated on disk, but not re-read before 60 s have passed. */
        write_file(f->token, "token-2\n");
        f->now += 30 * SEC;
        expect_token(cfg, "token-1");
        f->now += 29 * SEC;
        expect_token(cfg, "token-1");
        /* At 60 s it is re-read. */
        f->now += 1 * SEC;
        expect_token(cfg, "token-2");

        /* After a 401: at once, without waiting. */
        write_file(f->token, "token-3");
        expect_token(cfg, "token-2");
        koc__cluster_config_token_invalidate(cfg);
        expect_token(cfg, "token-3");

        /* The file vanishes: the old token stays, also after invalidate. */
        assert_int_equal(unlink(f->token), 0);
        f->now += 61 * SEC;
        expect_token(cfg, "token-3");
        koc__cluster_config_token_invalidate(cfg);
        expect_token(cfg, "token-3");

        /* An empty file (a writer caught half-way): the old token stays. */
        write_file(f->token, "");
        f->now += 60 * SEC;
        expect_token(cfg, "token-3");
        write_file(f->token, " \n");
        koc__cluster_config_token_invalidate(cfg);
        expect_token(cfg, "token-3");

        /* Unreadable: a directory in its place. */
        assert_int_equal(unlink(f->token), 0);
        assert_int_equal(mkdir(f->token, 0700), 0);
        koc__cluster_config_token_invalidate(cfg);
        expect_token(cfg, "token-3");
        assert_int_equal(rmdir(f->token), 0);

        /* Back: picked up at the next re-read, and only then. */
        write_file(f->token, "token-4\n");
        f->now += 59 * SEC;
        expect_token(cfg, "token-3");
        f->now += 1 * SEC;
        expect_token(cfg, "token-4");
}

static void test_service_account_token(void **state) {
        fixture *f = *state;
        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        assert_int_equal(koc_cluster_config_in_cluster(f->dir, &cfg, &err), 0);
        run_reload_sequence(f, cfg);
        koc_cluster_config_unref(cfg);
}

static void test_kubeconfig_token_file(void **state) {
        fixture *f = *state;
        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        if (koc_cluster_config_from_kubeconfig(f->kubeconfig, NULL, &cfg, &err) < 0)
                fail_msg("%s", err.message);
        run_reload_sequence(f, cfg);
        koc_cluster_config_unref(cfg);
}

static void test_static_token_not_reloaded(void **state) {
        fixture *f = *state;
        koc_cluster_config *cfg = NULL;
        write_file(f->kubeconfig,
                   "current-context: c\n"
                   "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                   "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
                   "users: [{name: u, user: {token: static-1}}]\n");
        assert_int_equal(koc_cluster_config_from_kubeconfig(f->kubeconfig, NULL, &cfg, NULL), 0);
        koc__cluster_config_set_clock(cfg, fake_clock, f);
        expect_token(cfg, "static-1");
        koc__cluster_config_token_invalidate(cfg);
        f->now += 3600 * SEC;
        expect_token(cfg, "static-1");
        koc_cluster_config_unref(cfg);
}

static void test_no_token(void **state) {
        fixture *f = *state;
        koc_cluster_config *cfg = NULL;
        write_file(f->kubeconfig,
                   "current-context: c\n"
                   "contexts: [{name: c, context: {cluster: k}}]\n"
                   "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:8080'}}]\n");
        assert_int_equal(koc_cluster_config_from_kubeconfig(f->kubeconfig, NULL, &cfg, NULL), 0);
        assert_null(koc__cluster_config_auth_header(cfg));
        koc__cluster_config_token_invalidate(cfg);
        assert_null(koc__cluster_config_auth_header(cfg));
        koc_cluster_config_unref(cfg);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_service_account_token, setup, teardown),
                cmocka_unit_test_setup_teardown(test_kubeconfig_token_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_static_token_not_reloaded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_token, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

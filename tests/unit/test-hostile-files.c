/* SPDX-License-Identifier: Apache-2.0 */
/* Files that are not what they claim to be: a kubeconfig, token file or CA
 * file that is a FIFO must fail at once with an error, not block until a
 * writer appears (a token file is re-read on the event loop). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/cluster-config.h"
#include "koc/config.h"

typedef struct dir {
        char path[64];
        char fifo[128];
        char kubeconfig[128];
} dir;

static void on_alarm(int sig) {
        (void)sig;
        /* Only async-signal-safe calls: the test failed by blocking. */
        static const char msg[] = "blocked on a FIFO\n";
        (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
        _exit(1);
}

static int setup(void **state) {
        dir *d = calloc(1, sizeof *d);
        assert_non_null(d);
        snprintf(d->path, sizeof d->path, "/tmp/koc-test-hostile-XXXXXX");
        assert_non_null(mkdtemp(d->path));
        snprintf(d->fifo, sizeof d->fifo, "%s/fifo", d->path);
        snprintf(d->kubeconfig, sizeof d->kubeconfig, "%s/config", d->path);
        assert_int_equal(mkfifo(d->fifo, 0600), 0);
        signal(SIGALRM, on_alarm);
        alarm(20); /* a blocked open fails the test instead of hanging it */
        *state = d;
        return 0;
}

static int teardown(void **state) {
        dir *d = *state;
        alarm(0);
        unlink(d->fifo);
        unlink(d->kubeconfig);
        rmdir(d->path);
        free(d);
        return 0;
}

static void write_kubeconfig(const dir *d, const char *user_field) {
        FILE *f = fopen(d->kubeconfig, "we");
        assert_non_null(f);
        fprintf(f,
                "apiVersion: v1\n"
                "kind: Config\n"
                "current-context: ctx\n"
                "clusters:\n"
                "- name: c\n"
                "  cluster:\n"
                "    server: https://127.0.0.1:6443\n"
                "%s"
                "users:\n"
                "- name: u\n"
                "  user:\n"
                "    %s\n"
                "contexts:\n"
                "- name: ctx\n"
                "  context: {cluster: c, user: u}\n",
                strstr(user_field, "tokenFile") ? "" : "    certificate-authority: fifo\n",
                user_field);
        assert_int_equal(fclose(f), 0);
}

static void test_read_fifo(void **state) {
        dir *d = *state;
        char *buf = NULL;
        size_t len = 0;
        assert_int_equal(koc__read_file_bounded(d->fifo, 4096, &buf, &len), -EBADFD);
        assert_null(buf);
}

static void test_kubeconfig_is_fifo(void **state) {
        dir *d = *state;
        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        assert_true(koc_cluster_config_from_kubeconfig(d->fifo, NULL, &cfg, &err) < 0);
        assert_null(cfg);
        assert_non_null(strstr(err.message, d->fifo));
}

static void test_token_file_is_fifo(void **state) {
        dir *d = *state;
        write_kubeconfig(d, "tokenFile: fifo");
        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        assert_true(koc_cluster_config_from_kubeconfig(d->kubeconfig, NULL, &cfg, &err) < 0);
        assert_null(cfg);
        assert_non_null(strstr(err.message, "tokenFile"));
}

static void test_ca_file_is_fifo(void **state) {
        dir *d = *state;
        write_kubeconfig(d, "token: abc");
        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        assert_true(koc_cluster_config_from_kubeconfig(d->kubeconfig, NULL, &cfg, &err) < 0);
        assert_null(cfg);
        assert_non_null(strstr(err.message, "certificate-authority"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_read_fifo, setup, teardown),
                cmocka_unit_test_setup_teardown(test_kubeconfig_is_fifo, setup, teardown),
                cmocka_unit_test_setup_teardown(test_token_file_is_fifo, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ca_file_is_fifo, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

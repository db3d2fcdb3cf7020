/* SPDX-License-Identifier: Apache-2.0 */
/* koc_manager_run() returns an exit code for main(), 0..255, whatever
 * happens: a negative errno must never leak out of it, since main()'s
 * return of -EBUSY reaches the shell as 240.  Offline: leader election off,
 * no listeners, no signal handlers; the kubeconfig points at a closed port
 * that nothing here ever contacts. */
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

#include "koc/koc.h"

typedef struct fixture {
        char dir[64];
        char kubeconfig[128];
        sd_event *event;
        koc_manager *m;
        int exit_with; /* what started_leading ends the loop with */
} fixture;

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);
        koc_manager_config cfg;
        koc_error err = {0};

        snprintf(f->dir, sizeof f->dir, "/tmp/koc-run-XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        snprintf(f->kubeconfig, sizeof f->kubeconfig, "%s/kubeconfig", f->dir);
        FILE *k = fopen(f->kubeconfig, "w");
        if (!k)
                return -1;
        fputs("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
              "contexts:\n- name: c\n  context: {cluster: k, user: u, namespace: ns}\n"
              "clusters:\n- name: k\n  cluster: {server: 'https://127.0.0.1:1'}\n"
              "users:\n- name: u\n  user: {token: t}\n",
              k);
        fclose(k);
        if (sd_event_new(&f->event) < 0)
                return -1;
        koc_manager_config_init(&cfg);
        cfg.kubeconfig = f->kubeconfig;
        cfg.leader_elect = false;
        cfg.health_probe_bind_address = "0";
        cfg.metrics_bind_address = "0";
        cfg.handle_signals = false;
        if (koc_manager_new(f->event, &cfg, &f->m, &err) < 0) {
                fprintf(stderr, "%s\n", err.message);
                return -1;
        }
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;
        koc_manager_unref(f->m);
        sd_event_unref(f->event);
        unlink(f->kubeconfig);
        rmdir(f->dir);
        free(f);
        return 0;
}

static void test_run_null_is_exit_code(void **state) {
        assert_int_equal(koc_manager_run(NULL), KOC_MANAGER_EXIT_FAILURE);
}

static void shut_down(koc_manager *m, uint64_t term, void *userdata) {
        assert_int_equal(koc_manager_shutdown(m), 0);
}

static void test_second_run_is_exit_code(void **state) {
        fixture *f = *state;

        /* Shutdown as soon as it runs: a clean drain, 0. */
        assert_int_equal(koc_manager_set_callbacks(f->m,
                                                   &(koc_manager_callbacks){
                                                           .started_leading = shut_down,
                                                   },
                                                   NULL, NULL),
                         0);
        assert_int_equal(koc_manager_run(f->m), KOC_MANAGER_EXIT_OK);
        /* Once only; the second call is refused with an exit code. */
        assert_int_equal(koc_manager_run(f->m), KOC_MANAGER_EXIT_FAILURE);
}

static void exit_loop(koc_manager *m, uint64_t term, void *userdata) {
        fixture *f = userdata;
        sd_event_exit(koc_manager_get_event(m), f->exit_with);
}

static void run_ending_loop_with(fixture *f, int code, int expected) {
        f->exit_with = code;
        assert_int_equal(koc_manager_set_callbacks(f->m,
                                                   &(koc_manager_callbacks){
                                                           .started_leading = exit_loop,
                                                   },
                                                   f, NULL),
                         0);
        int r = koc_manager_run(f->m);
        assert_int_equal(r, expected);
        assert_true(r >= 0 && r <= 255);
}

static void test_loop_ended_with_negative_errno(void **state) {
        run_ending_loop_with(*state, -ENOENT, KOC_MANAGER_EXIT_FAILURE);
}

static void test_loop_ended_with_code_over_255(void **state) {
        run_ending_loop_with(*state, 256, KOC_MANAGER_EXIT_FAILURE);
}

static void test_loop_ended_with_exit_code(void **state) {
        run_ending_loop_with(*state, 3, 3);
}

static void count_destroy(void *userdata) {
        (*(int *)userdata)++;
}

static int noop_start(koc_manager *m, uint64_t term, void *userdata) {
        return 0;
}

static void noop_hook(koc_shutdown_step *step, void *userdata) {
        koc_shutdown_step_done(step);
}

/* Callbacks replaced with other userdata destroy the old one at once; the
 * rest are destroyed once, when the manager is freed. */
static void test_destroy_callbacks(void **state) {
        fixture *f = *state;
        int old_cb = 0, cb = 0, run = 0, hook = 0;

        assert_int_equal(koc_manager_set_callbacks(f->m, &(koc_manager_callbacks){0}, &old_cb,
                                                   count_destroy),
                         0);
        assert_int_equal(
                koc_manager_set_callbacks(f->m, &(koc_manager_callbacks){0}, &cb, count_destroy),
                0);
        assert_int_equal(old_cb, 1);
        assert_int_equal(koc_manager_add_runnable(f->m, "r",
                                                  &(koc_manager_runnable){.start = noop_start},
                                                  &run, count_destroy),
                         0);
        assert_int_equal(koc_manager_add_shutdown_hook(f->m, "h", noop_hook, &hook, count_destroy),
                         0);
        assert_int_equal(cb + run + hook, 0);
        f->m = koc_manager_unref(f->m);
        assert_int_equal(cb, 1);
        assert_int_equal(run, 1);
        assert_int_equal(hook, 1);
        assert_int_equal(old_cb, 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_destroy_callbacks, setup, teardown),
                cmocka_unit_test(test_run_null_is_exit_code),
                cmocka_unit_test_setup_teardown(test_second_run_is_exit_code, setup, teardown),
                cmocka_unit_test_setup_teardown(test_loop_ended_with_negative_errno, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_loop_ended_with_code_over_255, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_loop_ended_with_exit_code, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The structs that programs fill reach libkoc.so with the size the program
 * was compiled with.  This program links the shared library and uses only
 * the public headers, as a program built against an older koc would: a
 * shorter ("older") struct works, with the fields it lacks read as zero and
 * nothing written past its end; a size below the first field, or a longer
 * ("newer") struct with something set beyond what the library knows, is
 * refused with -EINVAL. */
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

/* What an older koc_manager_config looked like: everything up to
 * handle_signals, without the log settings. */
typedef struct old_manager_config {
        const char *kubeconfig;
        bool leader_elect;
        uint64_t lease_duration_usec;
        uint64_t renew_deadline_usec;
        uint64_t retry_period_usec;
        const char *leader_election_id;
        const char *leader_election_namespace;
        const char *identity;
        bool gate_readiness_on_leader;
        bool exit_on_leadership_loss;
        uint64_t liveness_margin_usec;
        const char *health_probe_bind_address;
        const char *metrics_bind_address;
        uint64_t shutdown_budget_usec;
        uint64_t shutdown_delay_usec;
        bool handle_signals;
} old_manager_config;
_Static_assert(offsetof(old_manager_config, handle_signals) ==
                       offsetof(koc_manager_config, handle_signals),
               "old_manager_config is a prefix of koc_manager_config");
_Static_assert(sizeof(old_manager_config) < sizeof(koc_manager_config), "older is shorter");

typedef struct old_request_spec {
        const char *method;
        const char *path;
} old_request_spec;

typedef struct old_watch_spec {
        const char *path;
} old_watch_spec;

typedef struct old_leader_callbacks {
        void (*started_leading)(koc_leader *l, uint64_t term, void *userdata);
} old_leader_callbacks;

typedef struct old_manager_callbacks {
        void (*started_leading)(koc_manager *m, uint64_t term, void *userdata);
} old_manager_callbacks;

typedef struct old_manager_runnable {
        int (*start)(koc_manager *m, uint64_t term, void *userdata);
} old_manager_runnable;

/* An old struct followed by bytes that must stay untouched. */
#define CANARY 0xa5
typedef struct guarded_config {
        old_manager_config cfg;
        unsigned char after[sizeof(koc_manager_config)];
} guarded_config;

static void assert_canary(const unsigned char *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                assert_int_equal(p[i], CANARY);
}

typedef struct fixture {
        char dir[64];
        char kubeconfig[128];
        sd_event *event;
        koc_cluster_config *cluster;
        koc_client *client;
} fixture;

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);
        koc_error err = {0};

        snprintf(f->dir, sizeof f->dir, "/tmp/koc-abi-XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        snprintf(f->kubeconfig, sizeof f->kubeconfig, "%s/kubeconfig", f->dir);
        FILE *k = fopen(f->kubeconfig, "w");
        if (!k)
                return -1;
        /* Port 1 on loopback refuses at once: a request fails in transport,
         * which is all these tests need to see it was accepted and run. */
        fputs("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
              "contexts:\n- name: c\n  context: {cluster: k, user: u, namespace: ns}\n"
              "clusters:\n- name: k\n  cluster: {server: 'https://127.0.0.1:1'}\n"
              "users:\n- name: u\n  user: {token: t}\n",
              k);
        fclose(k);
        if (sd_event_new(&f->event) < 0)
                return -1;
        if (koc_cluster_config_load(f->kubeconfig, NULL, &f->cluster, &err) < 0)
                return -1;
        if (koc_client_new(f->event, f->cluster, &f->client) < 0)
                return -1;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;
        koc_client_unref(f->client);
        koc_cluster_config_unref(f->cluster);
        sd_event_unref(f->event);
        unlink(f->kubeconfig);
        rmdir(f->dir);
        free(f);
        return 0;
}

/* --- the manager configuration ------------------------------------------- */

static void test_old_manager_config_init_validate_parse(void **state) {
        guarded_config g;
        koc_manager_config *cfg = (koc_manager_config *)&g.cfg;
        koc_error err = {0};

        memset(&g, CANARY, sizeof g);
        assert_int_equal(koc_manager_config_init_sized(sizeof g.cfg, cfg), 0);
        assert_true(g.cfg.leader_elect);
        assert_int_equal(g.cfg.lease_duration_usec, KOC_LEADER_DEFAULT_LEASE_DURATION_USEC);
        assert_true(g.cfg.handle_signals);
        assert_canary(g.after, sizeof g.after);

        g.cfg.leader_election_id = "old-program";
        assert_int_equal(koc_manager_config_validate_sized(sizeof g.cfg, cfg, &err), 0);

        /* --log-level lands in a field the old struct does not have: it is
         * parsed and validated, and nothing is written past the struct. */
        char *argv[] = {"prog", "--leader-elect-lease-duration=20s", "--log-level=debug", NULL};
        assert_int_equal(koc_manager_parse_flags_sized(sizeof g.cfg, cfg, 3, argv, &err), 0);
        assert_int_equal(g.cfg.lease_duration_usec, 20 * KOC_USEC_PER_SEC);
        assert_canary(g.after, sizeof g.after);

        /* A bad flag is still named. */
        char *bad[] = {"prog", "--log-level=loud", NULL};
        assert_int_equal(koc_manager_parse_flags_sized(sizeof g.cfg, cfg, 2, bad, &err), -EINVAL);
        assert_non_null(strstr(err.message, "log-level"));
}

static void test_old_manager_config_builds_a_manager(void **state) {
        fixture *f = *state;
        old_manager_config old;
        koc_manager *m = NULL;
        koc_error err = {0};

        assert_int_equal(koc_manager_config_init_sized(sizeof old, (koc_manager_config *)&old), 0);
        old.kubeconfig = f->kubeconfig;
        old.leader_elect = false;
        old.health_probe_bind_address = "0";
        old.metrics_bind_address = "0";
        old.handle_signals = false;
        assert_int_equal(
                koc_manager_new_sized(f->event, sizeof old, (koc_manager_config *)&old, &m, &err),
                0);

        /* Older callback tables and runnables: the missing entries are NULL. */
        old_manager_callbacks cb = {0};
        assert_int_equal(koc_manager_set_callbacks_sized(m, sizeof cb, (koc_manager_callbacks *)&cb,
                                                         NULL, NULL),
                         0);
        old_manager_runnable run = {0};
        assert_int_equal(koc_manager_add_runnable_sized(m, "old", sizeof run,
                                                        (koc_manager_runnable *)&run, NULL, NULL),
                         0);

        /* Sizes that cannot be right. */
        assert_int_equal(
                koc_manager_set_callbacks_sized(m, 1, (koc_manager_callbacks *)&cb, NULL, NULL),
                -EINVAL);
        assert_int_equal(koc_manager_add_runnable_sized(m, "bad", 3, (koc_manager_runnable *)&run,
                                                        NULL, NULL),
                         -EINVAL);
        koc_manager_unref(m);
}

static void test_manager_config_wrong_size(void **state) {
        struct {
                koc_manager_config cfg;
                uint64_t newer_field;
        } newer;
        koc_manager *m = NULL;
        koc_error err = {0};

        /* Shorter than the first field. */
        assert_int_equal(koc_manager_config_init_sized(2, &newer.cfg), -EINVAL);
        assert_int_equal(koc_manager_config_validate_sized(2, &newer.cfg, &err), -EINVAL);
        assert_non_null(strstr(err.message, "size"));
        assert_int_equal(koc_manager_new_sized(NULL, 4, &newer.cfg, &m, &err), -EINVAL);
        assert_null(m);

        /* A newer program: its extra field zero means "as before" and is
         * accepted; set, it asks for something this library cannot do. */
        assert_int_equal(koc_manager_config_init_sized(sizeof newer, &newer.cfg), 0);
        assert_int_equal(newer.newer_field, 0);
        newer.cfg.leader_election_id = "newer";
        assert_int_equal(koc_manager_config_validate_sized(sizeof newer, &newer.cfg, &err), 0);
        newer.newer_field = 1;
        assert_int_equal(koc_manager_config_validate_sized(sizeof newer, &newer.cfg, &err),
                         -EINVAL);
        char *argv[] = {"prog", NULL};
        assert_int_equal(koc_manager_parse_flags_sized(sizeof newer, &newer.cfg, 1, argv, &err),
                         -EINVAL);
}

/* --- requests, watches, leader callbacks ---------------------------------- */

static void on_response(koc_client *c, koc_response *r, void *userdata) {
        *(int *)userdata = r->error < 0 ? r->error : 1;
}

static void test_old_request_spec(void **state) {
        fixture *f = *state;
        old_request_spec old = {.method = "GET", .path = "/api/v1/namespaces/ns/configmaps/x"};
        int result = 0;

        assert_int_equal(koc_client_request_sized(f->client, sizeof old,
                                                  (const koc_request_spec *)&old, on_response,
                                                  &result, NULL),
                         0);
        /* Bounded: port 1 refuses at once; the default timeout (30 s) is the
         * outer limit, so 60 s of loop iterations is generous. */
        for (int i = 0; i < 600 && result == 0; i++)
                assert_true(sd_event_run(f->event, 100 * KOC_USEC_PER_MSEC) >= 0);
        assert_true(result < 0);
        assert_int_not_equal(result, -EINVAL);
}

static void test_request_spec_wrong_size(void **state) {
        fixture *f = *state;
        struct {
                koc_request_spec spec;
                uint64_t newer_field;
        } newer = {.spec = {.method = "GET", .path = "/api"}, .newer_field = 7};
        koc_response *resp = NULL;

        assert_int_equal(
                koc_client_request_sized(f->client, 3, &newer.spec, on_response, NULL, NULL),
                -EINVAL);
        assert_int_equal(koc_client_request_sized(f->client, sizeof newer, &newer.spec, on_response,
                                                  NULL, NULL),
                         -EINVAL);
        assert_int_equal(koc_client_call_sized(f->client, 3, &newer.spec, &resp), -EINVAL);
        assert_int_equal(koc_client_call_sized(f->client, sizeof newer, &newer.spec, &resp),
                         -EINVAL);
        assert_null(resp);
}

static void on_event(koc_watch *w, koc_watch_event *e, void *userdata) {
}

static void test_watch_spec_old_and_wrong(void **state) {
        fixture *f = *state;
        old_watch_spec old = {.path = "/apis/coordination.k8s.io/v1/namespaces/ns/leases"};
        koc_watch *w = NULL;

        assert_int_equal(koc_client_watch_sized(f->client, sizeof old, (const koc_watch_spec *)&old,
                                                on_event, NULL, NULL, &w),
                         0);
        assert_non_null(w);
        koc_watch_stop(w);
        w = NULL;
        assert_int_equal(koc_client_watch_sized(f->client, 1, (const koc_watch_spec *)&old,
                                                on_event, NULL, NULL, &w),
                         -EINVAL);
        assert_null(w);
}

static void test_leader_callbacks_old_and_wrong(void **state) {
        fixture *f = *state;
        koc_leader_config *cfg = NULL;
        koc_leader *l = NULL;
        koc_error err = {0};

        assert_int_equal(koc_leader_config_new("ns", "abi", &cfg), 0);
        assert_int_equal(koc_leader_config_set_identity(cfg, "a"), 0);
        assert_int_equal(koc_leader_new(f->client, cfg, &l, &err), 0);
        old_leader_callbacks old = {0};
        assert_int_equal(koc_leader_set_callbacks_sized(
                                 l, sizeof old, (const koc_leader_callbacks *)&old, NULL, NULL),
                         0);
        assert_int_equal(koc_leader_set_callbacks_sized(l, 2, (const koc_leader_callbacks *)&old,
                                                        NULL, NULL),
                         -EINVAL);
        koc_leader_unref(l);
        koc_leader_config_free(cfg);
}

static void count_destroy(void *userdata) {
        (*(int *)userdata)++;
}

static void on_closed(koc_watch *w, koc_watch_event *e, void *userdata) {
        if (e->type == KOC_WATCH_CLOSED)
                ((int *)userdata)[1]++;
}

/* A watch's destroy runs once: after its CLOSED event (the port refuses), or
 * at koc_watch_stop(). */
static void test_watch_destroy(void **state) {
        fixture *f = *state;
        koc_watch_spec spec = {.path = "/apis/coordination.k8s.io/v1/namespaces/ns/leases"};
        int closed[2] = {0, 0}, stopped = 0;
        koc_watch *w = NULL;

        assert_int_equal(koc_client_watch(f->client, &spec, on_closed, closed, count_destroy, &w),
                         0);
        for (int i = 0; i < 600 && closed[1] == 0; i++)
                assert_true(sd_event_run(f->event, 100 * KOC_USEC_PER_MSEC) >= 0);
        assert_int_equal(closed[1], 1);
        assert_int_equal(closed[0], 1);

        assert_int_equal(koc_client_watch(f->client, &spec, on_event, &stopped, count_destroy, &w),
                         0);
        assert_int_equal(stopped, 0);
        koc_watch_stop(w);
        assert_int_equal(stopped, 1);
}

static void test_leader_callbacks_destroy(void **state) {
        fixture *f = *state;
        koc_leader_config *cfg = NULL;
        koc_leader *l = NULL;
        koc_error err = {0};
        int a = 0, b = 0;

        assert_int_equal(koc_leader_config_new("ns", "abi", &cfg), 0);
        assert_int_equal(koc_leader_new(f->client, cfg, &l, &err), 0);
        assert_int_equal(koc_leader_set_callbacks(l, &(koc_leader_callbacks){0}, &a, count_destroy),
                         0);
        assert_int_equal(koc_leader_set_callbacks(l, &(koc_leader_callbacks){0}, &b, count_destroy),
                         0);
        assert_int_equal(a, 1);
        assert_int_equal(b, 0);
        koc_leader_unref(l);
        assert_int_equal(b, 1);
        koc_leader_config_free(cfg);
}

/* --- controller options and resources ------------------------------------- */

/* koc_controller_options before it had the destroy callback. */
typedef struct old_controller_options {
        const char *name;
        koc_resource resource;
        const char *namespace_;
        const char *label_selector;
        const char *field_selector;
        unsigned workers;
        koc_reconcile_t reconcile;
        void *userdata;
        uint64_t resync_period_usec;
        uint64_t backoff_base_usec;
        uint64_t backoff_max_usec;
} old_controller_options;
_Static_assert(sizeof(old_controller_options) < sizeof(koc_controller_options), "older is shorter");

/* What an older koc_informer_options looked like: without the flags. */
typedef struct old_informer_options {
        const char *namespace_;
        const char *label_selector;
} old_informer_options;

static void test_informer_options_sizes(void **state) {
        struct {
                old_informer_options o;
                unsigned char after[32];
        } g;
        memset(&g, CANARY, sizeof g);
        assert_int_equal(
                koc_informer_options_init_sized(sizeof g.o, (koc_informer_options *)&g.o), 0);
        assert_null(g.o.namespace_);
        assert_null(g.o.label_selector);
        assert_canary(g.after, sizeof g.after);
        assert_int_equal(koc_informer_options_init_sized(2, (koc_informer_options *)&g.o),
                         -EINVAL);
        koc_informer_options cur;
        memset(&cur, 0xff, sizeof cur);
        assert_int_equal(koc_informer_options_init(&cur), 0);
        assert_false(cur.metadata_only);
        assert_false(cur.all_namespaces);
        assert_null(cur.field_selector);
}

static void test_controller_options_and_resource_sizes(void **state) {
        struct {
                old_controller_options o;
                unsigned char after[32];
        } g;

        memset(&g, CANARY, sizeof g);
        assert_int_equal(
                koc_controller_options_init_sized(sizeof g.o, (koc_controller_options *)&g.o), 0);
        assert_int_equal(g.o.workers, 1);
        assert_null(g.o.name);
        assert_canary(g.after, sizeof g.after);
        assert_int_equal(koc_controller_options_init_sized(2, (koc_controller_options *)&g.o),
                         -EINVAL);
        /* The newest field's zero is the default: workers wait for the
         * caches (an older program, which lacks the field, gets that too). */
        koc_controller_options cur;
        memset(&cur, 0xff, sizeof cur);
        assert_int_equal(koc_controller_options_init(&cur), 0);
        assert_false(cur.start_before_synced);
        assert_int_equal(offsetof(koc_controller_options, start_before_synced) +
                                 sizeof cur.start_before_synced,
                         offsetof(koc_controller_options, max_list_bytes) +
                                         sizeof cur.max_list_bytes +
                                         sizeof cur.start_before_synced);

        /* A resource without the fields after the plural. */
        struct {
                const char *group, *version, *resource;
        } old_res = {NULL, "v1", "configmaps"};
        char path[128];
        assert_int_equal(koc_resource_path_sized(sizeof old_res, (koc_resource *)&old_res, "ns",
                                                 "n", NULL, path, sizeof path),
                         0);
        assert_string_equal(path, "/api/v1/namespaces/ns/configmaps/n");
        assert_int_equal(koc_resource_path_sized(2, (koc_resource *)&old_res, NULL, NULL, NULL,
                                                 path, sizeof path),
                         -EINVAL);
        struct {
                koc_resource res;
                uint64_t newer_field;
        } newer = {{.version = "v1", .resource = "configmaps"}, 0};
        assert_int_equal(koc_resource_path_sized(sizeof newer, &newer.res, NULL, NULL, NULL, path,
                                                 sizeof path),
                         0);
        newer.newer_field = 1;
        assert_int_equal(koc_resource_path_sized(sizeof newer, &newer.res, NULL, NULL, NULL, path,
                                                 sizeof path),
                         -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_watch_destroy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_leader_callbacks_destroy, setup, teardown),
                cmocka_unit_test(test_old_manager_config_init_validate_parse),
                cmocka_unit_test_setup_teardown(test_old_manager_config_builds_a_manager, setup,
                                                teardown),
                cmocka_unit_test(test_manager_config_wrong_size),
                cmocka_unit_test(test_controller_options_and_resource_sizes),
                cmocka_unit_test(test_informer_options_sizes),
                cmocka_unit_test_setup_teardown(test_old_request_spec, setup, teardown),
                cmocka_unit_test_setup_teardown(test_request_spec_wrong_size, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watch_spec_old_and_wrong, setup, teardown),
                cmocka_unit_test_setup_teardown(test_leader_callbacks_old_and_wrong, setup,
                                                teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

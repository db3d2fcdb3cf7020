/* SPDX-License-Identifier: Apache-2.0 */
/* --print-rbac: a manager made with print_rbac reads no kubeconfig, listens
 * nowhere, and koc_manager_run() prints the rules derived from its
 * informers, the declared accesses, Events, owned objects' owner finalizers
 * and the Lease, as the chart's Helm values. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "koc/controller.h"
#include "koc/manager.h"

static const koc_resource memcacheds = {.group = "cache.example.com",
                                        .version = "v1alpha1",
                                        .resource = "memcacheds",
                                        .kind = "Memcached",
                                        .namespaced = true};
static const koc_resource deployments = {
        .group = "apps", .version = "v1", .resource = "deployments", .kind = "Deployment",
        .namespaced = true};
static const koc_resource nodes = {.version = "v1", .resource = "nodes", .kind = "Node"};

static koc_result reconcile(koc_reconcile_context *ctx, void *userdata) {
        return koc_result_done();
}

static koc_result no_keys(koc_reconcile_context *ctx, void *userdata) {
        return koc_result_done();
}

static void map_none(const cJSON *o, koc_keys *keys, void *userdata) {}

/* Runs the manager, capturing what it prints on stdout. */
static int run_printing(koc_manager *m, char *buf, size_t size) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        fflush(stdout);
        int saved = dup(STDOUT_FILENO);
        dup2(fds[1], STDOUT_FILENO);
        int r = koc_manager_run(m);
        fflush(stdout);
        dup2(saved, STDOUT_FILENO);
        close(saved);
        close(fds[1]);
        ssize_t n = read(fds[0], buf, size - 1);
        close(fds[0]);
        buf[n > 0 ? n : 0] = '\0';
        return r;
}

static koc_manager *printing_manager(const char *ns_of_lease, bool leader_elect) {
        koc_manager_config cfg;
        koc_error err = {0};
        koc_manager *m = NULL;
        koc_manager_config_init(&cfg);
        cfg.leader_election_id = "memcached-operator";
        cfg.leader_election_namespace = ns_of_lease;
        cfg.leader_elect = leader_elect;
        /* Nothing may be read: a kubeconfig that does not exist. */
        cfg.kubeconfig = "/nonexistent/kubeconfig";
        cfg.print_rbac = true;
        if (koc_manager_new(NULL, &cfg, &m, &err) < 0)
                fail_msg("manager: %s", err.message);
        assert_true(koc_manager_is_printing_rbac(m));
        assert_int_equal(koc_manager_get_health_port(m, &(uint16_t){0}), -ENXIO);
        return m;
}

static void test_cluster_wide_operator(void **state) {
        koc_manager *m = printing_manager(NULL, true);
        koc_error err = {0};
        koc_controller_options o;
        koc_controller_options_init(&o);
        o.name = "memcached";
        o.resource = memcacheds;
        o.reconcile = reconcile;
        koc_controller *c = NULL;
        assert_int_equal(koc_controller_new(m, &o, &c, &err), 0);
        assert_int_equal(koc_controller_owns(c, &deployments, &err), 0);
        assert_int_equal(koc_controller_watches(c, &nodes, NULL, map_none, NULL, NULL, &err), 0);
        assert_int_equal(koc_manager_declare_access(m, &deployments,
                                                    "get,create,update,patch,delete"),
                         0);
        assert_int_equal(koc_manager_declare_access(m, &memcacheds,
                                                    "patch,status/update,status/patch"),
                         0);
        /* Bad declarations are refused, and change nothing. */
        assert_int_equal(koc_manager_declare_access(m, &deployments, "get,scale"), -EINVAL);
        assert_int_equal(koc_manager_declare_access(m, &deployments, ""), -EINVAL);
        assert_int_equal(koc_manager_declare_access(m, &deployments, "/update"), -EINVAL);
        assert_int_equal(koc_manager_declare_access(m, &deployments, "Status/update"), -EINVAL);
        koc_resource bad = deployments;
        bad.resource = "deploy ments";
        assert_int_equal(koc_manager_declare_access(m, &bad, "get"), -EINVAL);

        char out[8192];
        assert_int_equal(run_printing(m, out, sizeof out), 0);
        static const char expected[] =
                "rbac:\n"
                "  rules:\n"
                "    - apiGroups: [\"\"]\n"
                "      resources: [\"events\"]\n"
                "      verbs: [\"create\", \"patch\"]\n"
                "    - apiGroups: [\"\"]\n"
                "      resources: [\"nodes\"]\n"
                "      verbs: [\"list\", \"watch\"]\n"
                "    - apiGroups: [\"apps\"]\n"
                "      resources: [\"deployments\"]\n"
                "      verbs: [\"create\", \"delete\", \"get\", \"list\", \"patch\", \"update\", "
                "\"watch\"]\n"
                "    - apiGroups: [\"cache.example.com\"]\n"
                "      resources: [\"memcacheds\"]\n"
                "      verbs: [\"list\", \"patch\", \"watch\"]\n"
                "    - apiGroups: [\"cache.example.com\"]\n"
                "      resources: [\"memcacheds/finalizers\"]\n"
                "      verbs: [\"update\"]\n"
                "    - apiGroups: [\"cache.example.com\"]\n"
                "      resources: [\"memcacheds/status\"]\n"
                "      verbs: [\"patch\", \"update\"]\n"
                "    - apiGroups: [\"events.k8s.io\"]\n"
                "      resources: [\"events\"]\n"
                "      verbs: [\"create\", \"patch\"]\n"
                "  # A ClusterRole: the program reads or writes in every namespace.\n"
                "  allNamespaces: true\n"
                "leaderElection:\n";
        if (!strstr(out, expected))
                fail_msg("printed:\n%s", out);
        assert_non_null(strstr(out, "  enabled: true\n  rbac: recommended\n"));
        koc_controller_unref(c);
        koc_manager_unref(m);
}

static void test_namespaced_operator(void **state) {
        koc_manager *m = printing_manager("ops", false);
        koc_error err = {0};
        koc_controller_options o;
        koc_controller_options_init(&o);
        o.name = "memcached";
        o.resource = memcacheds;
        o.namespace_ = "ops";
        o.reconcile = no_keys;
        koc_controller *c = NULL;
        assert_int_equal(koc_controller_new(m, &o, &c, &err), 0);
        assert_int_equal(koc_controller_owns(c, &deployments, &err), 0);
        assert_int_equal(koc_manager_declare_access_in(m, &deployments, "ops", "create"), 0);
        char out[8192];
        assert_int_equal(run_printing(m, out, sizeof out), 0);
        if (!strstr(out, "  # A Role in the release's namespace: the program works in namespace "
                         "\"ops\" only.\n  allNamespaces: false\n") ||
            !strstr(out, "leaderElection:\n  enabled: false\n") ||
            !strstr(out, "resources: [\"memcacheds/finalizers\"]"))
                fail_msg("printed:\n%s", out);
        koc_controller_unref(c);
        koc_manager_unref(m);
}

static void test_nothing_but_the_lease(void **state) {
        koc_manager *m = printing_manager(NULL, true);
        char out[8192];
        assert_int_equal(run_printing(m, out, sizeof out), 0);
        if (!strstr(out, "rbac:\n  rules: []\n  # No access besides the Lease.\n  allNamespaces: "
                         "false\nleaderElection:\n"))
                fail_msg("printed:\n%s", out);
        koc_manager_unref(m);
}

/* --print-rbac-values-under: the same values, nested under a chart
 * dependency's name, the leading comment kept at the top; a key that is
 * not a plain name is refused by the flag parser, naming the flag. */
static void test_values_under_a_key(void **state) {
        koc_manager_config cfg;
        koc_error err = {0};
        koc_manager *m = NULL;
        koc_manager_config_init(&cfg);
        cfg.leader_election_id = "memcached-operator";
        cfg.leader_elect = false;
        cfg.kubeconfig = "/nonexistent/kubeconfig";
        char *argv[] = {"p", "--print-rbac", "--print-rbac-values-under=koc-example", NULL};
        assert_int_equal(koc_manager_parse_flags(&cfg, 3, argv, &err), 0);
        assert_string_equal(cfg.print_rbac_values_under, "koc-example");
        if (koc_manager_new(NULL, &cfg, &m, &err) < 0)
                fail_msg("manager: %s", err.message);
        assert_int_equal(koc_manager_declare_access(m, &deployments, "get"), 0);
        char out[8192];
        assert_int_equal(run_printing(m, out, sizeof out), 0);
        static const char expected[] = "koc-example:\n"
                                       "  rbac:\n"
                                       "    rules:\n"
                                       "      - apiGroups: [\"apps\"]\n"
                                       "        resources: [\"deployments\"]\n"
                                       "        verbs: [\"get\"]\n"
                                       "    # A ClusterRole: the program reads or writes in every "
                                       "namespace.\n"
                                       "    allNamespaces: true\n"
                                       "  leaderElection:\n"
                                       "    enabled: false\n";
        assert_true(strncmp(out, "# The RBAC rules", 16) == 0);
        const char *body = strstr(out, "\nkoc-example:\n");
        assert_non_null(body);
        assert_string_equal(body + 1, expected);
        koc_manager_unref(m);

        koc_manager_config_init(&cfg);
        cfg.leader_elect = false;
        const char *bad[] = {"", "a: b", "x\ny", "a.b", "dependency/name"};
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                char flag[64];
                snprintf(flag, sizeof flag, "--print-rbac-values-under=%s", bad[i]);
                char *args[] = {"p", "--print-rbac", flag, NULL};
                assert_int_equal(koc_manager_parse_flags(&cfg, 3, args, &err), -EINVAL);
                assert_non_null(strstr(err.message, "--print-rbac-values-under"));
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cluster_wide_operator),
                cmocka_unit_test(test_namespaced_operator),
                cmocka_unit_test(test_nothing_but_the_lease),
                cmocka_unit_test(test_values_under_a_key),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fencing rule of the reconcile context (framework/controller/writer.c),
 * without a server: a write may leave only while the controller is active in
 * the term the reconcile started in and the manager reports leadership.  The
 * early refusals happen on the worker before anything is posted to the loop,
 * so the loop does not run here (the manager points at a port nobody serves).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "framework/controller/controller-internal.h"
#include "koc/controller.h"
#include "koc/manager.h"

static const koc_resource configmaps = {
        .version = "v1", .resource = "configmaps", .kind = "ConfigMap", .namespaced = true};

static char kubeconfig[64];

static koc_result never(koc_reconcile_context *ctx, void *userdata) {
        return koc_result_done();
}

static void make_controller(koc_manager **ret_m, koc_controller **ret_c) {
        koc_manager_config cfg;
        koc_error err = {0};
        koc_controller_options o;

        koc_manager_config_init(&cfg);
        cfg.kubeconfig = kubeconfig;
        cfg.leader_elect = false;
        cfg.health_probe_bind_address = "0";
        cfg.metrics_bind_address = "0";
        cfg.handle_signals = false;
        if (koc_manager_new(NULL, &cfg, ret_m, &err) < 0)
                fail_msg("manager: %s", err.message);
        koc_controller_options_init(&o);
        o.name = "fence";
        o.resource = configmaps;
        o.reconcile = never;
        /* No server: the cache never lists, and the fencing rule is about
         * a started controller. */
        o.start_before_synced = true;
        if (koc_controller_new(*ret_m, &o, ret_c, &err) < 0)
                fail_msg("controller: %s", err.message);
}

struct checker {
        koc_manager *m;
        koc_controller *c;
        int wake_fd;
        const char *failure;
        int allowed_r;
        int allowed_transport;
};

static const char *check(struct checker *k) {
        koc_controller *c = k->c;
        koc_reconcile_context ctx = {.c = c, .name = "a"};
        snprintf(ctx.key, sizeof ctx.key, "ns/a");
        snprintf(ctx.namespace_, sizeof ctx.namespace_, "ns");

        /* Wait for the manager to lead and start the controller (without
         * leader election it does so at once). */
        for (int i = 0; i < 3000 && !(atomic_load(&c->active) && koc_manager_is_leader(k->m)); i++)
                usleep(10000);
        if (!atomic_load(&c->active))
                return "the controller was not started";
        ctx.epoch = atomic_load(&c->epoch);
        if (!koc__controller_may_write(&ctx) || koc_reconcile_is_cancelled(&ctx))
                return "a write in the current term is refused";
        /* Allowed: it goes to the loop and on to the (absent) server. */
        koc_response *resp = NULL;
        cJSON *patch = cJSON_Parse("{\"data\":{\"k\":\"v\"}}");
        k->allowed_r =
                koc_reconcile_patch(&ctx, &configmaps, "ns", "a", KOC_PATCH_MERGE, patch, &resp);
        k->allowed_transport = resp ? resp->error : 0;
        koc_response_free(resp);
        resp = NULL;

        /* The term the reconcile started in ends (leadership lost and
         * taken again): its writes are refused although this replica leads. */
        atomic_fetch_add(&c->epoch, 2);
        if (koc__controller_may_write(&ctx) || !koc_reconcile_is_cancelled(&ctx))
                return "a write of an ended term is allowed";
        int r = koc_reconcile_patch(&ctx, &configmaps, "ns", "a", KOC_PATCH_MERGE, patch, &resp);
        cJSON_Delete(patch);
        koc_response_free(resp);
        if (r != -ENOLCK)
                return "a write of an ended term was not refused with -ENOLCK";
        /* Server-side apply is a write like the others. */
        cJSON *cfg = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
                                 "\"name\":\"a\",\"namespace\":\"ns\"},\"data\":{\"k\":\"v\"}}");
        r = koc_reconcile_apply(&ctx, &configmaps, cfg, "fence-test", KOC_APPLY_FORCE, &resp);
        koc_response_free(resp);
        if (r != -ENOLCK) {
                cJSON_Delete(cfg);
                return "an apply of an ended term was not refused with -ENOLCK";
        }
        /* The field manager is required. */
        r = koc_reconcile_apply(&ctx, &configmaps, cfg, "", 0, &resp);
        cJSON_Delete(cfg);
        if (r != -EINVAL)
                return "an apply without a field manager was not refused with -EINVAL";
        /* Reads are never fenced. */
        r = koc_reconcile_get(&ctx, &configmaps, "ns", "a", &resp);
        koc_response_free(resp);
        if (r != 0)
                return "a read of an ended term was refused";
        return NULL;
}

static void *checker_main(void *p) {
        struct checker *k = p;
        uint64_t one = 1;
        k->failure = check(k);
        (void)!write(k->wake_fd, &one, sizeof one);
        return NULL;
}

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        uint64_t n;
        (void)!read(fd, &n, sizeof n);
        (void)koc_manager_shutdown(userdata);
        return 0;
}

static void test_fencing_rule(void **state) {
        struct checker k = {0};
        sd_event_source *wake = NULL;
        pthread_t t;

        make_controller(&k.m, &k.c);
        /* Not started (no leadership yet): refused on the worker at once. */
        koc_reconcile_context idle = {.c = k.c, .name = "a", .epoch = atomic_load(&k.c->epoch)};
        assert_false(koc__controller_may_write(&idle));
        assert_true(koc_reconcile_is_cancelled(&idle));

        k.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_int_equal(sd_event_add_io(koc_manager_get_event(k.m), &wake, k.wake_fd, EPOLLIN,
                                         on_wake, k.m),
                         0);
        pthread_create(&t, NULL, checker_main, &k);
        koc_manager_run(k.m);
        pthread_join(t, NULL);
        sd_event_source_disable_unref(wake);
        close(k.wake_fd);
        koc_controller_unref(k.c);
        koc_manager_unref(k.m);
        if (k.failure)
                fail_msg("%s", k.failure);
        /* The allowed write was sent: it failed only in transport. */
        assert_int_equal(k.allowed_r, 0);
        assert_true(k.allowed_transport < 0);
}

static cJSON *cm(const char *rv, bool deleting) {
        char buf[512];
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\","
                 "\"namespace\":\"ns\",\"resourceVersion\":\"%s\"%s}}",
                 rv, deleting ? ",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"" : "");
        cJSON *j = cJSON_Parse(buf);
        assert_non_null(j);
        return j;
}

static const char *cached_rv(koc_controller *c) {
        static char rv[32];
        koc_object *o = koc_controller_ref_object(c, "ns", "a");
        if (!o)
                return NULL;
        snprintf(rv, sizeof rv, "%s", koc_object_get_resource_version(o));
        koc_object_unref(o);
        return rv;
}

/* Read-your-own-writes never resurrects a deleted object: the answer of the
 * write that removed the last finalizer can arrive after the watch reported
 * the deletion (the real API server does this). */
static void test_late_write_answer_does_not_resurrect(void **state) {
        koc_manager *m = NULL;
        koc_controller *c = NULL;
        make_controller(&m, &c);
        koc_informer *inf = c->primary;

        cJSON *o = cm("5", false);
        koc__informer_deliver(inf, KOC_WATCH_ADDED, o);
        cJSON_Delete(o);
        assert_string_equal(cached_rv(c), "5");
        /* Our own write's answer is newer: applied at once. */
        o = cm("6", true);
        koc__informer_apply_write(inf, o);
        cJSON_Delete(o);
        assert_string_equal(cached_rv(c), "6");
        /* The deletion, then a late answer older than it. */
        o = cm("8", true);
        koc__informer_deliver(inf, KOC_WATCH_DELETED, o);
        cJSON_Delete(o);
        assert_null(cached_rv(c));
        o = cm("7", true);
        koc__informer_apply_write(inf, o);
        cJSON_Delete(o);
        assert_null(cached_rv(c));
        /* A write answered after the deletion (a re-create) is applied. */
        o = cm("9", false);
        koc__informer_apply_write(inf, o);
        cJSON_Delete(o);
        assert_string_equal(cached_rv(c), "9");
        koc_controller_unref(c);
        koc_manager_unref(m);
}

static int setup(void **state) {
        snprintf(kubeconfig, sizeof kubeconfig, "/tmp/koc-fence-XXXXXX");
        int fd = mkstemp(kubeconfig);
        if (fd < 0)
                return -1;
        const char *kc = "apiVersion: v1\n"
                         "kind: Config\n"
                         "current-context: c\n"
                         "clusters:\n"
                         "- name: k\n"
                         "  cluster:\n"
                         "    server: https://127.0.0.1:9\n"
                         "    insecure-skip-tls-verify: true\n"
                         "users:\n"
                         "- name: u\n"
                         "  user:\n"
                         "    token: t\n"
                         "contexts:\n"
                         "- name: c\n"
                         "  context: {cluster: k, user: u, namespace: default}\n";
        ssize_t n = write(fd, kc, strlen(kc));
        close(fd);
        return n == (ssize_t)strlen(kc) ? 0 : -1;
}

static int teardown(void **state) {
        unlink(kubeconfig);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fencing_rule),
                cmocka_unit_test(test_late_write_answer_does_not_resurrect),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

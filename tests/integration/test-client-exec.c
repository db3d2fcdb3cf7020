/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Exec credential plugins run by the API client on its loop, against
 * koc-apiserver: a plugin that is still running does not hold up other loop
 * work, the credential it hands out is used once it is ready, a cached
 * credential is not fetched again until it expires, and a plugin that hangs
 * past its timeout fails the waiting request with an error naming the
 * command.
 *
 * Nothing here bets on timing: the slow plugin waits for a file that only a
 * loop timer creates, so a client that ran it synchronously would never see
 * it finish (and the test fails on the credential, not on a clock).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/cluster-config.h"
#include "koc/client.h"
#include "koc/config.h"
#include "koc/time.h"
#include "tests/harness/apiserver.h"

#define LEASES "/apis/coordination.k8s.io/v1/namespaces/default/leases"
#define SAFETY_USEC (60 * KOC_USEC_PER_SEC)

static koc_test_apiserver srv;
static char dir[300];
static sd_event *event;
static koc_cluster_config *cfg;
static koc_client *client;
static uint64_t clock_offset; /* the config's clock runs this far ahead */

static const char *path_of(const char *name) {
        static char p[4][400];
        static int k;
        k = (k + 1) % 4;
        snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
        return p[k];
}

static void write_file(const char *name, const char *text) {
        FILE *f = fopen(path_of(name), "w");
        assert_non_null(f);
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
}

static bool exists(const char *name) {
        return access(path_of(name), F_OK) == 0;
}

static int count_runs(void) {
        FILE *f = fopen(path_of("runs"), "r");
        if (!f)
                return 0;
        int n = 0;
        for (int c; (c = fgetc(f)) != EOF;)
                n += c == '\n';
        fclose(f);
        return n;
}

static uint64_t test_clock(void *userdata) {
        return koc_now_boottime_usec() + clock_offset;
}

typedef struct result {
        bool done;
        int error;
        long status;
        char message[512];
} result;

static void on_result(koc_client *c, const koc_response *r, void *userdata) {
        result *res = userdata;
        res->done = true;
        res->error = r->error;
        res->status = r->status;
        snprintf(res->message, sizeof res->message, "%s", r->message);
}

static void run_until(const volatile bool *flag) {
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (!*flag) {
                assert_true(koc_now_boottime_usec() < end);
                assert_true(sd_event_run(event, 100 * KOC_USEC_PER_MSEC) >= 0);
        }
}

static void get_leases(result *res) {
        *res = (result){0};
        assert_int_equal(koc_client_request(client,
                                            &(koc_request_spec){.method = "GET", .path = LEASES},
                                            on_result, res, NULL),
                         0);
        run_until(&res->done);
}

static int group_setup(void **state) {
        if (koc_test_apiserver_start(&srv, NULL) < 0)
                return -1;
        snprintf(dir, sizeof dir, "%s/exec", srv.dir);
        if (mkdir(dir, 0700) < 0)
                return -1;
        /* Hands out the token in "token" with the expiry in "expiry"; with
         * "gate-wanted" it says so in "started" and waits for "gate"; with
         * "hang" it never answers. */
        char script[2048];
        snprintf(script, sizeof script,
                 "#!/bin/sh\n"
                 "d='%s'\n"
                 "echo run >> \"$d/runs\"\n"
                 "if [ -e \"$d/gate-wanted\" ]; then\n"
                 "  echo started > \"$d/started\"\n"
                 "  while [ ! -e \"$d/gate\" ]; do sleep 0.02; done\n"
                 "fi\n"
                 "[ -e \"$d/hang\" ] && exec sleep 60\n"
                 "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\","
                 "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"%%s\","
                 "\"expirationTimestamp\":\"%%s\"}}' \"$(cat \"$d/token\")\" "
                 "\"$(cat \"$d/expiry\")\"\n",
                 dir);
        write_file("plugin.sh", script);
        if (chmod(path_of("plugin.sh"), 0700) < 0)
                return -1;
        char kc[2048];
        snprintf(kc, sizeof kc,
                 "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                 "clusters: [{name: k, cluster: {server: \"%s\", certificate-authority: \"%s\"}}]\n"
                 "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                 "users:\n- name: u\n  user:\n    exec:\n"
                 "      apiVersion: client.authentication.k8s.io/v1\n"
                 "      command: %s\n",
                 srv.url, srv.ca_file, path_of("plugin.sh"));
        write_file("kubeconfig", kc);
        /* At load the plugin hands out a token the server rejects. */
        write_file("token", "not-the-token");
        write_file("expiry", "2999-01-01T00:00:00Z");
        koc_error err = {0};
        if (koc_cluster_config_from_kubeconfig(path_of("kubeconfig"), NULL, &cfg, &err) < 0) {
                fprintf(stderr, "%s\n", err.message);
                return -1;
        }
        koc__cluster_config_set_clock(cfg, test_clock, NULL);
        if (sd_event_new(&event) < 0 || koc_client_new(event, cfg, &client) < 0)
                return -1;
        return 0;
}

static int group_teardown(void **state) {
        client = koc_client_unref(client);
        cfg = koc_cluster_config_unref(cfg);
        event = sd_event_unref(event);
        koc_test_apiserver_stop(&srv);
        return 0;
}

typedef struct watcher {
        bool saw_running; /* the timer ran while the plugin was running */
        int ticks;
} watcher;

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        watcher *w = userdata;
        w->ticks++;
        if (exists("started") && !exists("gate")) {
                w->saw_running = true;
                write_file("gate", "");
                return 0;
        }
        assert_int_equal(sd_event_source_set_time_relative(s, 20 * KOC_USEC_PER_MSEC), 0);
        assert_int_equal(sd_event_source_set_enabled(s, SD_EVENT_ONESHOT), 0);
        return 0;
}

/* The 401 makes the client run the plugin again; it waits for a file that
 * only a timer on the same loop creates, and its new token then carries
 * the request. */
static void test_slow_plugin_runs_beside_the_loop(void **state) {
        assert_int_equal(count_runs(), 1); /* at load */
        write_file("token", srv.token);
        write_file("gate-wanted", "");
        watcher w = {0};
        sd_event_source *tick = NULL;
        assert_int_equal(sd_event_add_time_relative(event, &tick, CLOCK_BOOTTIME,
                                                    20 * KOC_USEC_PER_MSEC, 0, on_tick, &w),
                         0);
        result res;
        get_leases(&res);
        sd_event_source_disable_unref(tick);
        assert_true(w.saw_running);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 200);
        assert_int_equal(count_runs(), 2);
        unlink(path_of("gate-wanted"));
        unlink(path_of("gate"));
        unlink(path_of("started"));
}

static void test_cached_until_expiry(void **state) {
        int runs = count_runs();
        result res;
        for (int i = 0; i < 3; i++) {
                get_leases(&res);
                assert_int_equal(res.status, 200);
        }
        /* Unexpired: no new run. */
        assert_int_equal(count_runs(), runs);

        /* A 401 fetches a fresh credential; this one has already expired.
         * The next request within the 5 s retry bound sends it without a run,
         * and the first one after the bound runs the plugin again. */
        write_file("expiry", "2000-01-01T00:00:00Z");
        koc__cluster_config_token_invalidate(cfg);
        get_leases(&res);
        assert_int_equal(res.status, 200);
        assert_int_equal(count_runs(), runs + 1);
        get_leases(&res);
        assert_int_equal(count_runs(), runs + 1);
        write_file("expiry", "2999-01-01T00:00:00Z");
        clock_offset += 6 * KOC_USEC_PER_SEC;
        get_leases(&res);
        assert_int_equal(res.status, 200);
        assert_int_equal(count_runs(), runs + 2);
        get_leases(&res);
        assert_int_equal(count_runs(), runs + 2);
}

static void test_hanging_plugin_times_out(void **state) {
        /* An expired credential, so that nothing is left to send. */
        write_file("expiry", "2000-01-01T00:00:00Z");
        koc__cluster_config_token_invalidate(cfg);
        result res;
        get_leases(&res);
        int runs = count_runs();

        cfg->exec->timeout_usec = 300 * KOC_USEC_PER_MSEC;
        write_file("hang", "");
        clock_offset += 6 * KOC_USEC_PER_SEC;
        get_leases(&res);
        assert_int_equal(count_runs(), runs + 1);
        assert_int_equal(res.error, -ETIMEDOUT);
        assert_int_equal(res.status, 0);
        assert_non_null(strstr(res.message, path_of("plugin.sh")));
        assert_non_null(strstr(res.message, "did not finish within 300ms"));
        assert_non_null(strstr(res.message, "users[0].user.exec"));

        /* Within the retry bound the next request fails with the same error
         * at once, without another run. */
        get_leases(&res);
        assert_int_equal(res.error, -ETIMEDOUT);
        assert_int_equal(count_runs(), runs + 1);

        /* The plugin recovers: the next run after the bound is used. */
        unlink(path_of("hang"));
        write_file("expiry", "2999-01-01T00:00:00Z");
        clock_offset += 6 * KOC_USEC_PER_SEC;
        get_leases(&res);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 200);
        assert_int_equal(count_runs(), runs + 2);
}

typedef struct watch_rec {
        int events;
        bool closed;
        int error;
        char message[512];
} watch_rec;

static void on_watch(koc_watch *w, const koc_watch_event *ev, void *userdata) {
        watch_rec *r = userdata;
        if (ev->type != KOC_WATCH_CLOSED) {
                r->events++;
                return;
        }
        r->closed = true;
        r->error = ev->error;
        snprintf(r->message, sizeof r->message, "%s", ev->message);
}

/* Watches wait for the credential too, and end with the plugin's error. */
static void test_watch_waits_for_the_credential(void **state) {
        cfg->exec->timeout_usec = 0;
        /* A run (as after a 401) that waits for the gate: the watch and
         * the request after it wait for that one run, and are sent with its
         * credential (a rejected watch would close with 401). */
        write_file("gate-wanted", "");
        koc__cluster_config_token_invalidate(cfg);
        int runs = count_runs();
        watch_rec r = {0};
        koc_watch *w = NULL;
        assert_int_equal(
                koc_client_watch(client, &(koc_watch_spec){.path = LEASES}, on_watch, &r, &w), 0);
        watcher gate = {0};
        sd_event_source *tick = NULL;
        assert_int_equal(sd_event_add_time_relative(event, &tick, CLOCK_BOOTTIME,
                                                    20 * KOC_USEC_PER_MSEC, 0, on_tick, &gate),
                         0);
        result res;
        get_leases(&res);
        assert_int_equal(res.status, 200);
        assert_true(gate.saw_running);
        assert_int_equal(count_runs(), runs + 1);
        assert_false(r.closed);
        sd_event_source_disable_unref(tick);
        koc_watch_stop(w);
        unlink(path_of("gate-wanted"));
        unlink(path_of("gate"));
        unlink(path_of("started"));

        /* The plugin hangs and nothing unexpired is left: CLOSED names it. */
        write_file("expiry", "2000-01-01T00:00:00Z");
        koc__cluster_config_token_invalidate(cfg);
        get_leases(&res);
        cfg->exec->timeout_usec = 300 * KOC_USEC_PER_MSEC;
        write_file("hang", "");
        clock_offset += 6 * KOC_USEC_PER_SEC;
        r = (watch_rec){0};
        assert_int_equal(
                koc_client_watch(client, &(koc_watch_spec){.path = LEASES}, on_watch, &r, NULL), 0);
        run_until(&r.closed);
        assert_int_equal(r.events, 0);
        assert_int_equal(r.error, -ETIMEDOUT);
        assert_non_null(strstr(r.message, path_of("plugin.sh")));
        unlink(path_of("hang"));
        write_file("expiry", "2999-01-01T00:00:00Z");
        clock_offset += 6 * KOC_USEC_PER_SEC;
        get_leases(&res);
        assert_int_equal(res.status, 200);
}

/* The client goes away while the plugin runs: the request is dropped and
 * the plugin killed, with nothing left behind (valgrind checks the rest). */
static void test_unref_while_plugin_runs(void **state) {
        koc_client *c = NULL;
        assert_int_equal(koc_client_new(event, cfg, &c), 0);
        write_file("gate-wanted", "");
        koc__cluster_config_token_invalidate(cfg);
        result res = {0};
        assert_int_equal(koc_client_request(c, &(koc_request_spec){.method = "GET", .path = LEASES},
                                            on_result, &res, NULL),
                         0);
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (!exists("started")) {
                assert_true(koc_now_boottime_usec() < end);
                assert_true(sd_event_run(event, 20 * KOC_USEC_PER_MSEC) >= 0);
        }
        koc_client_unref(c);
        (void)sd_event_run(event, 0);
        assert_false(res.done);
        unlink(path_of("gate-wanted"));
        unlink(path_of("started"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_slow_plugin_runs_beside_the_loop),
                cmocka_unit_test(test_cached_until_expiry),
                cmocka_unit_test(test_hanging_plugin_times_out),
                cmocka_unit_test(test_watch_waits_for_the_credential),
                cmocka_unit_test(test_unref_while_plugin_runs),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Leader election against koc-apiserver: several candidates in one process
 * on one loop (each with its own client), a candidate in a child process
 * that is SIGKILLed, and injected faults.  Durations are short (1 s / 0.6 s /
 * 0.1 s).  The tests assert order and outcome, never timing: every wait is
 * bounded and generous.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness/apiserver.h"
#include "koc/client.h"
#include "koc/config.h"
#include "koc/leader.h"
#include "koc/time.h"

#define MS KOC_USEC_PER_MSEC
#define SEC KOC_USEC_PER_SEC
#define WAIT_MAX (20 * SEC) /* bound on any wait; never reached when things work */
#define MAX_CANDIDATES 3

typedef struct candidate {
        char id[32];
        koc_client *client;
        koc_leader *leader;
        koc_leader_state *state;
        int n_started, n_stopped, n_done;
        uint64_t term;
        koc_leader_reason last_reason;
        int done_result;
        char holder[64];
} candidate;

typedef struct world {
        koc_test_apiserver server;
        sd_event *event;
        koc_cluster_config *cluster;
        candidate c[MAX_CANDIDATES];
        size_t n;
        char log[4096]; /* "a:started b:stopped(released) ..." in order */
        pid_t child;
} world;

static world *W;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...) {
        va_list ap;
        size_t n = strlen(W->log);
        va_start(ap, fmt);
        vsnprintf(W->log + n, sizeof W->log - n, fmt, ap);
        va_end(ap);
}

static void on_started(koc_leader *l, uint64_t term, void *ud) {
        candidate *c = ud;
        /* Exactly one leads at a time, as far as this process can see. */
        for (size_t i = 0; i < W->n; i++)
                if (&W->c[i] != c && W->c[i].state)
                        assert_false(koc_leader_state_is_leader(W->c[i].state));
        assert_true(koc_leader_state_is_leader(c->state));
        c->n_started++;
        c->term = term;
        logf_("%s:started(%llu) ", c->id, (unsigned long long)term);
}

static void on_stopped(koc_leader *l, koc_leader_reason reason, void *ud) {
        candidate *c = ud;
        assert_false(koc_leader_state_is_leader(c->state));
        c->n_stopped++;
        c->last_reason = reason;
        logf_("%s:stopped(%s) ", c->id, koc_leader_reason_to_string(reason));
}

static void on_new_leader(koc_leader *l, const char *identity, void *ud) {
        candidate *c = ud;
        snprintf(c->holder, sizeof c->holder, "%s", identity);
}

static void on_done(koc_leader *l, int result, void *ud) {
        candidate *c = ud;
        c->n_done++;
        c->done_result = result;
        logf_("%s:done(%d) ", c->id, result);
}

/* Durations of the candidates (most tests: 1 s / 0.6 s / 0.1 s). */
static uint64_t cfg_lease = 1 * SEC, cfg_renew = 600 * MS, cfg_retry = 100 * MS;

static koc_leader_config *short_config(const char *id) {
        koc_leader_config *cfg = NULL;
        assert_int_equal(koc_leader_config_new("default", "it-lease", &cfg), 0);
        assert_int_equal(koc_leader_config_set_identity(cfg, id), 0);
        koc_leader_config_set_lease_duration(cfg, cfg_lease);
        koc_leader_config_set_renew_deadline(cfg, cfg_renew);
        koc_leader_config_set_retry_period(cfg, cfg_retry);
        return cfg;
}

static candidate *add_candidate(const char *id) {
        candidate *c = &W->c[W->n++];
        koc_error err = {0};
        memset(c, 0, sizeof *c);
        snprintf(c->id, sizeof c->id, "%s", id);
        assert_int_equal(koc_client_new(W->event, W->cluster, &c->client), 0);
        koc_leader_config *cfg = short_config(id);
        assert_int_equal(koc_leader_new(W->event, c->client, cfg, &c->leader, &err), 0);
        koc_leader_config_free(cfg);
        koc_leader_set_callbacks(c->leader,
                                 &(koc_leader_callbacks){.started_leading = on_started,
                                                         .stopped_leading = on_stopped,
                                                         .new_leader = on_new_leader},
                                 c);
        c->state = koc_leader_get_state(c->leader);
        assert_int_equal(koc_leader_start(c->leader), 0);
        return c;
}

static void drop_candidate(candidate *c) {
        if (!c->leader)
                return;
        koc_leader_set_callbacks(c->leader, NULL, NULL);
        c->leader = koc_leader_unref(c->leader);
        c->state = koc_leader_state_unref(c->state);
        c->client = koc_client_unref(c->client);
}

/* Runs the loop until pred() holds; false when WAIT_MAX passed first. */
static bool run_until(bool (*pred)(void *), void *ud) {
        uint64_t end = koc_now_boottime_usec() + WAIT_MAX;
        while (!pred(ud)) {
                uint64_t now = koc_now_boottime_usec();
                if (now >= end)
                        return false;
                assert_true(sd_event_run(W->event, 50 * MS) >= 0);
        }
        return true;
}

/* Runs the loop for a while (to let things settle or to check that nothing
 * happens). */
static void run_for(uint64_t usec) {
        uint64_t end = koc_now_boottime_usec() + usec;
        for (;;) {
                uint64_t now = koc_now_boottime_usec();
                if (now >= end)
                        return;
                assert_true(sd_event_run(W->event, end - now) >= 0);
        }
}

static int n_leading(void) {
        int n = 0;
        for (size_t i = 0; i < W->n; i++)
                if (W->c[i].leader && koc_leader_is_leader(W->c[i].leader))
                        n++;
        return n;
}

static candidate *the_leader(void) {
        for (size_t i = 0; i < W->n; i++)
                if (W->c[i].leader && koc_leader_is_leader(W->c[i].leader))
                        return &W->c[i];
        return NULL;
}

static bool one_leads(void *ud) {
        return n_leading() == 1;
}

static bool other_leads(void *ud) {
        candidate *old = ud;
        candidate *l = the_leader();
        return l && l != old;
}

static bool is_done(void *ud) {
        return ((candidate *)ud)->n_done > 0;
}

static bool has_stopped(void *ud) {
        return ((candidate *)ud)->n_stopped > 0;
}

static int setup(void **state) {
        static world w;
        koc_error err = {0};
        memset(&w, 0, sizeof w);
        W = &w;
        cfg_lease = 1 * SEC;
        cfg_renew = 600 * MS;
        cfg_retry = 100 * MS;
        if (koc_test_apiserver_start(&w.server, NULL) < 0)
                return -1;
        if (sd_event_new(&w.event) < 0)
                return -1;
        if (koc_cluster_config_from_kubeconfig(w.server.kubeconfig, NULL, &w.cluster, &err) < 0) {
                fprintf(stderr, "%s\n", err.message);
                return -1;
        }
        *state = &w;
        return 0;
}

static int teardown(void **state) {
        for (size_t i = 0; i < W->n; i++)
                drop_candidate(&W->c[i]);
        if (W->child > 0) {
                kill(W->child, SIGKILL);
                waitpid(W->child, NULL, 0);
        }
        /* Let cancelled transfers finish on the loop. */
        koc_cluster_config_unref(W->cluster);
        sd_event_unref(W->event);
        koc_test_apiserver_stop(&W->server);
        return 0;
}

static void test_two_candidates_one_leads(void **state) {
        candidate *a = add_candidate("a");
        candidate *b = add_candidate("b");
        assert_true(run_until(one_leads, NULL));
        run_for(500 * MS); /* several renewals: still exactly one */
        assert_int_equal(n_leading(), 1);
        candidate *l = the_leader(), *f = l == a ? b : a;
        assert_int_equal(l->n_started, 1);
        assert_int_equal(l->n_stopped, 0);
        assert_int_equal(f->n_started, 0);
        assert_string_equal(f->holder, l->id);
        uint64_t transitions = 99;
        char holder[64];
        assert_int_equal(koc_leader_state_term(l->state, &transitions, holder, sizeof holder), 1);
        assert_string_equal(holder, l->id);
        assert_int_equal(koc_leader_state_term(f->state, NULL, holder, sizeof holder), 0);
        assert_string_equal(holder, l->id);
}

static void test_three_candidates_race(void **state) {
        /* All three see no Lease and create it at once: one 201, two 409s. */
        candidate *a = add_candidate("a");
        add_candidate("b");
        add_candidate("c");
        assert_true(run_until(one_leads, NULL));
        run_for(300 * MS);
        assert_int_equal(n_leading(), 1);
        int started = 0;
        for (size_t i = 0; i < W->n; i++)
                started += W->c[i].n_started;
        assert_int_equal(started, 1);
        assert_int_equal(the_leader()->term, 0);
        (void)a;
}

static void test_cooperative_handoff(void **state) {
        add_candidate("a");
        add_candidate("b");
        add_candidate("c");
        assert_true(run_until(one_leads, NULL));
        candidate *old = the_leader();
        uint64_t term = old->term;
        W->log[0] = '\0';
        assert_int_equal(koc_leader_step_down(old->leader, on_done, old), 0);
        assert_false(koc_leader_state_is_leader(old->state));
        assert_true(run_until(is_done, old));
        assert_int_equal(old->done_result, 0);
        assert_int_equal(old->last_reason, KOC_LEADER_REASON_RELEASED);
        assert_true(run_until(other_leads, old));
        candidate *next = the_leader();
        assert_int_equal(next->term, term + 1); /* leaseTransitions moved by one */
        /* Order: the old leader stopped (before its release was written),
         * then the successor started. */
        char stopped[64], started[64];
        snprintf(stopped, sizeof stopped, "%s:stopped(released) ", old->id);
        snprintf(started, sizeof started, "%s:started(%llu) ", next->id,
                 (unsigned long long)(term + 1));
        assert_true(strncmp(W->log, stopped, strlen(stopped)) == 0);
        assert_non_null(strstr(W->log, started));
        assert_non_null(strstr(W->log, ":done(0) "));
        run_for(300 * MS);
        assert_int_equal(n_leading(), 1);
}

static void run_child_elector(const char *kubeconfig) {
        /* A separate process: its own loop and client.  It leads until killed
         * (bounded by alarm in case the parent dies). */
        sd_event *e = NULL;
        koc_cluster_config *cfg = NULL;
        koc_client *c = NULL;
        koc_leader *l = NULL;
        koc_error err = {0};
        alarm(30);
        if (sd_event_new(&e) < 0 ||
            koc_cluster_config_from_kubeconfig(kubeconfig, NULL, &cfg, &err) < 0 ||
            koc_client_new(e, cfg, &c) < 0)
                _exit(2);
        koc_leader_config *lc = short_config("child");
        if (koc_leader_new(e, c, lc, &l, &err) < 0 || koc_leader_start(l) < 0)
                _exit(3);
        sd_event_loop(e);
        _exit(0);
}

static bool child_leads(void *ud) {
        candidate *c = ud;
        return strcmp(c->holder, "child") == 0;
}

static void test_crash_failover(void **state) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                run_child_elector(W->server.kubeconfig);
        W->child = pid;
        /* Let the child take the Lease first (bounded poll of the server). */
        bool held = false;
        for (int i = 0; i < 200 && !held; i++) {
                char *body = NULL;
                long code = koc_test_apiserver_http(
                        &W->server, "GET",
                        "/apis/coordination.k8s.io/v1/namespaces/default/leases/it-lease", NULL,
                        NULL, &body);
                held = code == 200 && body && strstr(body, "\"holderIdentity\":\"child\"");
                free(body);
                if (!held)
                        usleep(50 * 1000);
        }
        assert_true(held);
        candidate *a = add_candidate("a");
        assert_true(run_until(child_leads, a));
        run_for(300 * MS); /* the child renews; we stay a follower */
        assert_int_equal(a->n_started, 0);
        assert_string_equal(a->holder, "child");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        W->child = 0;
        assert_true(run_until(one_leads, NULL));
        assert_true(the_leader() == a);
        assert_int_equal(a->term, 1); /* child (0) -> a (1) */
}

static void test_short_faults_do_not_step_down(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&W->server);
        /* A wide renew deadline, so that a slow (shared, loaded) machine
         * cannot turn these short faults into a long one. */
        cfg_lease = 4 * SEC;
        cfg_renew = 3 * SEC;
        add_candidate("a");
        add_candidate("b");
        assert_true(run_until(one_leads, NULL));
        candidate *l = the_leader();
        /* Two failed renewals (about 0.2 s of 3 s), then slow ones. */
        assert_int_equal(koc_test_apiserver_fault(&W->server,
                                                  "{\"resource\":\"leases\",\"verb\":\"update\","
                                                  "\"error_rate\":1.0,\"error_code\":503,"
                                                  "\"count\":2}"),
                         200);
        run_for(600 * MS);
        assert_int_equal(koc_test_apiserver_fault(&W->server,
                                                  "{\"resource\":\"leases\",\"verb\":\"update\","
                                                  "\"latency_ms\":150}"),
                         200);
        run_for(800 * MS);
        assert_int_equal(koc_test_apiserver_clear_faults(&W->server), 200);
        run_for(300 * MS);
        assert_true(the_leader() == l);
        assert_int_equal(l->n_stopped, 0);
        assert_int_equal(l->n_started, 1);
}

static void test_long_outage_deadline_exceeded(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&W->server);
        add_candidate("a");
        add_candidate("b");
        assert_true(run_until(one_leads, NULL));
        candidate *l = the_leader();
        assert_int_equal(koc_test_apiserver_fault(&W->server,
                                                  "{\"resource\":\"leases\",\"verb\":\"update\","
                                                  "\"error_rate\":1.0,\"error_code\":503}"),
                         200);
        assert_true(run_until(has_stopped, l));
        assert_int_equal(l->last_reason, KOC_LEADER_REASON_RENEW_DEADLINE_EXCEEDED);
        assert_int_equal(n_leading(), 0);
        assert_int_equal(koc_test_apiserver_clear_faults(&W->server), 200);
        assert_true(run_until(one_leads, NULL));
}

static void test_long_latency_deadline_exceeded(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&W->server);
        add_candidate("a");
        add_candidate("b");
        assert_true(run_until(one_leads, NULL));
        candidate *l = the_leader();
        /* Every write now takes longer than the renew deadline. */
        assert_int_equal(koc_test_apiserver_fault(&W->server,
                                                  "{\"resource\":\"leases\",\"verb\":\"update\","
                                                  "\"latency_ms\":900}"),
                         200);
        assert_true(run_until(has_stopped, l));
        assert_int_equal(l->last_reason, KOC_LEADER_REASON_RENEW_DEADLINE_EXCEEDED);
        /* Answers that come after their validity ran out never make a leader. */
        run_for(1500 * MS);
        assert_int_equal(n_leading(), 0);
        assert_int_equal(koc_test_apiserver_clear_faults(&W->server), 200);
        assert_true(run_until(one_leads, NULL));
}

static void test_hung_renewal_someone_else_leads(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&W->server);
        /* The old leader retakes its own stale record only a retry period
         * after the others may: make that margin wide for loaded machines. */
        cfg_retry = 400 * MS;
        add_candidate("a");
        add_candidate("b");
        assert_true(run_until(one_leads, NULL));
        candidate *l = the_leader();
        /* The leader's next renewal hangs past its deadline; the follower
         * takes over at expiry, before the old leader's own retry. */
        assert_int_equal(koc_test_apiserver_fault(&W->server,
                                                  "{\"resource\":\"leases\",\"verb\":\"update\","
                                                  "\"hang\":true,\"count\":1}"),
                         200);
        assert_true(run_until(has_stopped, l));
        assert_int_equal(l->last_reason, KOC_LEADER_REASON_RENEW_DEADLINE_EXCEEDED);
        assert_true(run_until(other_leads, l));
        assert_int_equal(koc_test_apiserver_clear_faults(&W->server), 200);
        run_for(300 * MS);
        assert_int_equal(n_leading(), 1);
        assert_true(the_leader() != l);
}

static void test_watch_closed_by_server(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&W->server);
        assert_int_equal(koc_test_apiserver_fault(&W->server,
                                                  "{\"resource\":\"leases\",\"verb\":\"watch\","
                                                  "\"watch_close_after_ms\":150}"),
                         200);
        add_candidate("a");
        add_candidate("b");
        assert_true(run_until(one_leads, NULL));
        run_for(700 * MS); /* several watch restarts */
        assert_int_equal(n_leading(), 1);
        candidate *old = the_leader();
        assert_int_equal(koc_leader_step_down(old->leader, on_done, old), 0);
        assert_true(run_until(other_leads, old));
        assert_int_equal(old->done_result, 0);
        assert_int_equal(koc_test_apiserver_clear_faults(&W->server), 200);
}

static void test_watch_forbidden_polls(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&W->server);
        assert_int_equal(koc_test_apiserver_fault(&W->server,
                                                  "{\"resource\":\"leases\",\"verb\":\"watch\","
                                                  "\"error_rate\":1.0,\"error_code\":403}"),
                         200);
        add_candidate("a");
        add_candidate("b");
        assert_true(run_until(one_leads, NULL));
        candidate *old = the_leader();
        double gets0 = koc_test_apiserver_metric(&W->server, "apiserver_request_total{verb=\"GET\","
                                                             "resource=\"leases\"");
        run_for(600 * MS);
        double gets1 = koc_test_apiserver_metric(&W->server, "apiserver_request_total{verb=\"GET\","
                                                             "resource=\"leases\"");
        assert_true(gets1 > gets0); /* the follower polls */
        /* The holder goes away without releasing: the poller takes over. */
        koc_leader_stop(old->leader);
        assert_true(run_until(other_leads, old));
        assert_int_equal(old->last_reason, KOC_LEADER_REASON_CANCELLED);
        assert_int_equal(koc_test_apiserver_clear_faults(&W->server), 200);
}

static void test_state_false_after_stop(void **state) {
        candidate *a = add_candidate("a");
        assert_true(run_until(one_leads, NULL));
        koc_leader_stop(a->leader);
        assert_false(koc_leader_state_is_leader(a->state));
        assert_int_equal(a->last_reason, KOC_LEADER_REASON_CANCELLED);
        /* Restart with the same identity: the record names us, retaken at
         * once without a transition. */
        assert_int_equal(koc_leader_start(a->leader), 0);
        assert_true(run_until(one_leads, NULL));
        assert_int_equal(a->term, 0);
        assert_int_equal(a->n_started, 2);
}

#define LEASE_PATH "/apis/coordination.k8s.io/v1/namespaces/default/leases/it-lease"

/* Writes the Lease as another (client-go) elector would, sometimes with
 * fields absent.  Returns the HTTP status. */
static long write_foreign(const char *method, const char *spec_json) {
        char body[1024];
        char rv[64] = "";
        if (strcmp(method, "PUT") == 0) {
                char *cur = NULL;
                assert_int_equal(
                        koc_test_apiserver_http(&W->server, "GET", LEASE_PATH, NULL, NULL, &cur),
                        200);
                cJSON *o = cJSON_Parse(cur);
                const char *v = cJSON_GetStringValue(
                        cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metadata"), "resourceVersion"));
                snprintf(rv, sizeof rv, "%s", v ? v : "");
                cJSON_Delete(o);
                free(cur);
        }
        snprintf(body, sizeof body,
                 "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
                 "\"metadata\":{\"name\":\"it-lease\",\"namespace\":\"default\"%s%s%s},"
                 "\"spec\":%s}",
                 rv[0] ? ",\"resourceVersion\":\"" : "", rv, rv[0] ? "\"" : "", spec_json);
        return koc_test_apiserver_http(
                &W->server, method,
                strcmp(method, "PUT") == 0
                        ? LEASE_PATH
                        : "/apis/coordination.k8s.io/v1/namespaces/default/leases",
                body, "application/json", NULL);
}

static bool holder_is(void *ud) {
        return strcmp(W->c[0].holder, (const char *)ud) == 0;
}

static bool stopped_or_leads(void *ud) {
        candidate *c = ud;
        return c->n_stopped > 0;
}

static void test_client_go_records(void **state) {
        /* A Go elector holds the Lease (client-go's record; its clock is far
         * behind ours). */
        assert_int_equal(write_foreign("POST", "{\"holderIdentity\":\"go-1\","
                                               "\"leaseDurationSeconds\":1,"
                                               "\"acquireTime\":\"2020-01-01T00:00:00.000000Z\","
                                               "\"renewTime\":\"2020-01-01T00:00:00.500000Z\","
                                               "\"leaseTransitions\":7}"),
                         201);
        candidate *a = add_candidate("a");
        assert_true(run_until(holder_is, "go-1"));
        /* A renewTime from 2020 does not make it expired: our own clock does. */
        run_for(200 * MS);
        assert_int_equal(a->n_started, 0);
        assert_true(run_until(one_leads, NULL));
        assert_int_equal(a->term, 8);

        /* The Go elector takes the Lease over (as after a partition): we see
         * it on the watch and stop with holder-changed. */
        assert_int_equal(write_foreign("PUT", "{\"holderIdentity\":\"go-2\","
                                              "\"leaseDurationSeconds\":1,"
                                              "\"leaseTransitions\":9}"),
                         200);
        assert_true(run_until(stopped_or_leads, a));
        assert_int_equal(a->last_reason, KOC_LEADER_REASON_HOLDER_CHANGED);
        assert_int_equal(n_leading(), 0);

        /* client-go's release (ReleaseOnCancel): holder "", 1 s.  We take
         * over at once, without waiting for any expiry. */
        assert_int_equal(write_foreign("PUT", "{\"holderIdentity\":\"\","
                                              "\"leaseDurationSeconds\":1,"
                                              "\"leaseTransitions\":9}"),
                         200);
        assert_true(run_until(one_leads, NULL));
        assert_int_equal(a->term, 10);
        assert_int_equal(a->n_started, 2);
}

static void test_blocking_helpers(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&W->server);
        candidate *a = add_candidate("a");
        assert_int_equal(koc_leader_run_until_leading(a->leader, WAIT_MAX), 1);
        assert_true(koc_leader_is_leader(a->leader));
        assert_int_equal(koc_test_apiserver_fault(&W->server,
                                                  "{\"resource\":\"leases\",\"verb\":\"update\","
                                                  "\"error_rate\":1.0,\"error_code\":500}"),
                         200);
        assert_int_equal(koc_leader_run_until_lost(a->leader),
                         KOC_LEADER_REASON_RENEW_DEADLINE_EXCEEDED);
        assert_false(koc_leader_state_is_leader(a->state));
        assert_int_equal(koc_leader_run_until_lost(a->leader), -ENOTCONN);
        assert_int_equal(koc_test_apiserver_clear_faults(&W->server), 200);
        assert_int_equal(koc_leader_run_until_leading(a->leader, WAIT_MAX), 1);
}

/* --- a frozen leader (SIGSTOP) ------------------------------------------------------- */

static int child_pipe = -1;

static void child_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void child_report(const char *fmt, ...) {
        char line[128];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        if (n > 0)
                (void)!write(child_pipe, line, (size_t)n);
}

static koc_leader_state *child_state;

static void child_started(koc_leader *l, uint64_t term, void *ud) {
        child_report("started ");
}

static void child_stopped(koc_leader *l, koc_leader_reason reason, void *ud) {
        child_report("stopped(%s,state=%d) ", koc_leader_reason_to_string(reason),
                     koc_leader_state_is_leader(child_state));
}

static void run_frozen_child(const char *kubeconfig, int fd) {
        sd_event *e = NULL;
        koc_cluster_config *cfg = NULL;
        koc_client *c = NULL;
        koc_leader *l = NULL;
        koc_error err = {0};
        alarm(30);
        child_pipe = fd;
        if (sd_event_new(&e) < 0 ||
            koc_cluster_config_from_kubeconfig(kubeconfig, NULL, &cfg, &err) < 0 ||
            koc_client_new(e, cfg, &c) < 0)
                _exit(2);
        koc_leader_config *lc = short_config("child");
        if (koc_leader_new(e, c, lc, &l, &err) < 0)
                _exit(3);
        child_state = koc_leader_get_state(l);
        koc_leader_set_callbacks(l,
                                 &(koc_leader_callbacks){.started_leading = child_started,
                                                         .stopped_leading = child_stopped},
                                 NULL);
        if (koc_leader_start(l) < 0)
                _exit(4);
        sd_event_loop(e);
        _exit(0);
}

typedef struct pipe_reader {
        int fd;
        char buf[512];
        size_t len;
        const char *want;
} pipe_reader;

static bool pipe_has(void *ud) {
        pipe_reader *p = ud;
        ssize_t n = read(p->fd, p->buf + p->len, sizeof p->buf - 1 - p->len);
        if (n > 0)
                p->len += (size_t)n;
        p->buf[p->len] = '\0';
        return strstr(p->buf, p->want) != NULL;
}

static void test_frozen_leader(void **state) {
        int fds[2];
        assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(fds[0]);
                run_frozen_child(W->server.kubeconfig, fds[1]);
        }
        close(fds[1]);
        W->child = pid;
        pipe_reader pr = {.fd = fds[0], .want = "started "};
        assert_true(run_until(pipe_has, &pr));
        candidate *a = add_candidate("a");
        assert_true(run_until(child_leads, a));

        /* Frozen past its lease: the follower takes over. */
        kill(pid, SIGSTOP);
        assert_true(run_until(one_leads, NULL));
        assert_true(the_leader() == a);

        /* On waking, the old leader finds out and stops; its state reads false
         * in its stopped callback, and it never took the Lease back. */
        kill(pid, SIGCONT);
        pr.want = "stopped(";
        assert_true(run_until(pipe_has, &pr));
        assert_true(strstr(pr.buf, "stopped(holder-changed,state=0)") ||
                    strstr(pr.buf, "stopped(renew-deadline-exceeded,state=0)"));
        run_for(300 * MS);
        assert_true(the_leader() == a);
        assert_int_equal(a->n_stopped, 0);
        assert_null(strstr(strstr(pr.buf, "stopped(") + 1, "started"));
        close(fds[0]);
}

int main(void) {
        /* One server per test: each starts from an empty store. */
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_two_candidates_one_leads, setup, teardown),
                cmocka_unit_test_setup_teardown(test_three_candidates_race, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cooperative_handoff, setup, teardown),
                cmocka_unit_test_setup_teardown(test_crash_failover, setup, teardown),
                cmocka_unit_test_setup_teardown(test_short_faults_do_not_step_down, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_long_outage_deadline_exceeded, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_long_latency_deadline_exceeded, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_hung_renewal_someone_else_leads, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_watch_closed_by_server, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watch_forbidden_polls, setup, teardown),
                cmocka_unit_test_setup_teardown(test_state_false_after_stop, setup, teardown),
                cmocka_unit_test_setup_teardown(test_client_go_records, setup, teardown),
                cmocka_unit_test_setup_teardown(test_blocking_helpers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_frozen_leader, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

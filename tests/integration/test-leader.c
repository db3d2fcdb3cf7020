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
#include "koc/log.h"
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
        uint64_t started_at; /* boottime of the last started callback */
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
        c->started_at = koc_now_boottime_usec();
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

/* Under valgrind (KOC_UNDER_VALGRIND, valgrind-test-leader-integration) every
 * duration of these cases is four times as long: the candidates' lease
 * durations, renew deadlines and retry periods, the faults' latencies, the
 * settling times and the bound of the waits.  Valgrind slows the one loop
 * that runs every candidate about twenty times, and the cases assert
 * orderings (who leads, who stopped first) that hold while the durations are
 * wide compared with a stall; scaling all of them together keeps the ratios
 * the cases rely on. */
static uint64_t T(uint64_t usec) {
        const char *v = getenv("KOC_UNDER_VALGRIND");
        return v && *v ? 4 * usec : usec;
}

/* A fault rule with a duration in milliseconds (scaled by T()). */
static int fault_ms(const char *fmt, uint64_t usec) {
        char rule[256];
        snprintf(rule, sizeof rule, fmt, (unsigned long long)(T(usec) / MS));
        return koc_test_apiserver_fault(&W->server, rule);
}

/* Durations of the candidates (by default 1 s / 0.6 s / 0.1 s, so that
 * expiries come quickly). */
static uint64_t cfg_lease = 1 * SEC, cfg_renew = 600 * MS, cfg_retry = 100 * MS;

/* Tests that check that leadership holds still (nobody else starts, nobody
 * stops) use a renew deadline far wider than any stall of a loaded, shared
 * machine, so that only a real defect can make them fail. */
static void wide_durations(void) {
        cfg_lease = 4 * SEC;
        cfg_renew = 3 * SEC;
}

static koc_leader_config *short_config(const char *id) {
        koc_leader_config *cfg = NULL;
        assert_int_equal(koc_leader_config_new("default", "it-lease", &cfg), 0);
        assert_int_equal(koc_leader_config_set_identity(cfg, id), 0);
        koc_leader_config_set_lease_duration(cfg, T(cfg_lease));
        koc_leader_config_set_renew_deadline(cfg, T(cfg_renew));
        koc_leader_config_set_retry_period(cfg, T(cfg_retry));
        return cfg;
}

static candidate *add_candidate(const char *id) {
        candidate *c = &W->c[W->n++];
        koc_error err = {0};
        memset(c, 0, sizeof *c);
        snprintf(c->id, sizeof c->id, "%s", id);
        assert_int_equal(koc_client_new(W->event, W->cluster, &c->client), 0);
        koc_leader_config *cfg = short_config(id);
        assert_int_equal(koc_leader_new(c->client, cfg, &c->leader, &err), 0);
        koc_leader_config_free(cfg);
        koc_leader_set_callbacks(c->leader,
                                 &(koc_leader_callbacks){.started_leading = on_started,
                                                         .stopped_leading = on_stopped,
                                                         .new_leader = on_new_leader},
                                 c, NULL);
        c->state = koc_leader_ref_state(c->leader);
        assert_int_equal(koc_leader_start(c->leader), 0);
        return c;
}

static void drop_candidate(candidate *c) {
        if (!c->leader)
                return;
        koc_leader_set_callbacks(c->leader, NULL, NULL, NULL);
        c->leader = koc_leader_unref(c->leader);
        c->state = koc_leader_state_unref(c->state);
        c->client = koc_client_unref(c->client);
}

/* Runs the loop until pred() holds; false when WAIT_MAX passed first. */
static bool run_until(bool (*pred)(void *), void *ud) {
        uint64_t end = koc_now_boottime_usec() + T(WAIT_MAX);
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
        uint64_t end = koc_now_boottime_usec() + T(usec);
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
        wide_durations();
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
        wide_durations();
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
        wide_durations();
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
        if (koc_leader_new(c, lc, &l, &err) < 0 || koc_leader_start(l) < 0)
                _exit(3);
        sd_event_loop(e);
        _exit(0);
}

static bool child_leads(void *ud) {
        candidate *c = ud;
        return strcmp(c->holder, "child") == 0;
}

static void test_crash_failover(void **state) {
        /* The child must not lose the Lease to a stall before it is killed:
         * the failover then takes the wide lease duration. */
        wide_durations();
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
        uint64_t killed_at = koc_now_boottime_usec();
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        W->child = 0;
        assert_true(run_until(one_leads, NULL));
        assert_true(the_leader() == a);
        assert_int_equal(a->term, 1); /* child (0) -> a (1) */
        assert_int_equal(a->n_started, 1);
        assert_true(a->started_at > killed_at);
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
        assert_int_equal(
                fault_ms("{\"resource\":\"leases\",\"verb\":\"update\",\"latency_ms\":%llu}",
                         150 * MS),
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
        assert_int_equal(
                fault_ms("{\"resource\":\"leases\",\"verb\":\"update\",\"latency_ms\":%llu}",
                         900 * MS),
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
        /* Order, not a quiet period: the old leader stopped before the
         * successor started, and did not lead again in between. */
        candidate *next = the_leader();
        char stopped[128], started[128];
        snprintf(stopped, sizeof stopped, "%s:stopped(renew-deadline-exceeded) ", l->id);
        snprintf(started, sizeof started, "%s:started(", next->id);
        const char *st = strstr(W->log, stopped), *nx = st ? strstr(st, started) : NULL;
        if (!st || !nx)
                fail_msg("expected %s then %s in: %s", stopped, started, W->log);
}

static void test_watch_closed_by_server(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&W->server);
        wide_durations();
        assert_int_equal(fault_ms("{\"resource\":\"leases\",\"verb\":\"watch\",\"watch_close_after_"
                                  "ms\":%llu}",
                                  150 * MS),
                         200);
        add_candidate("a");
        add_candidate("b");
        assert_true(run_until(one_leads, NULL));
        double watches = koc_test_apiserver_metric(&W->server, "apiserver_request_total{verb="
                                                               "\"WATCH\",resource=\"leases\"");
        run_for(700 * MS); /* several watch restarts */
        assert_int_equal(n_leading(), 1);
        /* Resumed by the reflector (core/reflector.c), with no list: leader
         * election needs no list permission. */
        assert_true(koc_test_apiserver_metric(&W->server,
                                              "apiserver_request_total{verb="
                                              "\"WATCH\",resource=\"leases\"") >= watches + 4);
        assert_true(koc_test_apiserver_metric(&W->server, "apiserver_request_total{verb="
                                                          "\"LIST\",resource=\"leases\"") <= 0);
        candidate *old = the_leader();
        assert_int_equal(koc_leader_step_down(old->leader, on_done, old), 0);
        assert_true(run_until(other_leads, old));
        assert_int_equal(old->done_result, 0);
        assert_int_equal(koc_test_apiserver_clear_faults(&W->server), 200);
}

static double lease_gets(void) {
        return koc_test_apiserver_metric(&W->server, "apiserver_request_total{verb=\"GET\","
                                                     "resource=\"leases\"");
}

static bool gets_above(void *ud) {
        return lease_gets() > *(double *)ud;
}

static void test_watch_forbidden_polls(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&W->server);
        wide_durations();
        assert_int_equal(koc_test_apiserver_fault(&W->server,
                                                  "{\"resource\":\"leases\",\"verb\":\"watch\","
                                                  "\"error_rate\":1.0,\"error_code\":403}"),
                         200);
        add_candidate("a");
        add_candidate("b");
        assert_true(run_until(one_leads, NULL));
        candidate *old = the_leader();
        /* The follower polls: GETs go on while the leader is healthy. */
        double gets = lease_gets();
        for (int i = 0; i < 3; i++) {
                assert_true(run_until(gets_above, &gets));
                gets = lease_gets();
        }
        assert_true(the_leader() == old);
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
        wide_durations();
        /* A Go elector holds the Lease (client-go's record; its clock is far
         * behind ours). */
        uint64_t written_at = koc_now_boottime_usec();
        assert_int_equal(write_foreign("POST", "{\"holderIdentity\":\"go-1\","
                                               "\"leaseDurationSeconds\":1,"
                                               "\"acquireTime\":\"2020-01-01T00:00:00.000000Z\","
                                               "\"renewTime\":\"2020-01-01T00:00:00.500000Z\","
                                               "\"leaseTransitions\":7}"),
                         201);
        candidate *a = add_candidate("a");
        assert_true(run_until(holder_is, "go-1"));
        /* A renewTime from 2020 does not make it expired: our own clock does,
         * counting the record's leaseDurationSeconds (1) from when it was
         * seen, which is after it was written. */
        assert_true(run_until(one_leads, NULL));
        assert_int_equal(a->term, 8);
        assert_int_equal(a->n_started, 1);
        assert_true(a->started_at >= written_at + 1 * SEC);

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
        if (koc_leader_new(c, lc, &l, &err) < 0)
                _exit(3);
        child_state = koc_leader_ref_state(l);
        koc_leader_set_callbacks(l,
                                 &(koc_leader_callbacks){.started_leading = child_started,
                                                         .stopped_leading = child_stopped},
                                 NULL, NULL);
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
        /* Wide, so that only the freeze (not a stall of a loaded machine)
         * moves the Lease; the takeover then waits the wide duration. */
        wide_durations();
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

/* --- an API server that goes away ---------------------------------------------------- */

static char warnings[4096];

static void capture_warnings(int level, const char *component, const char *message, void *ud) {
        if (level > KOC_LOG_WARN || strcmp(component, "leader") != 0)
                return;
        size_t n = strlen(warnings);
        snprintf(warnings + n, sizeof warnings - n, "%s\n", message);
}

static bool warned_unreachable(void *ud) {
        return strstr(warnings, "cannot reach") != NULL;
}

static bool warned_401(void *ud) {
        return strstr(warnings, "HTTP 401") != NULL;
}

static bool warned_403(void *ud) {
        return strstr(warnings, "HTTP 403") != NULL;
}

/* The server stops: the leader says so at warn with the server's address,
 * once (not once per failed renewal), and loses leadership at its deadline. */
static void test_unreachable_server_is_logged(void **state) {
        /* It stops the server, which only a koc-apiserver of its own allows. */
        KOC_TEST_NEEDS_KOC_APISERVER(&W->server);
        candidate *a = add_candidate("a");
        assert_true(run_until(one_leads, NULL));
        char url[sizeof W->server.url];
        snprintf(url, sizeof url, "%s", W->server.url);
        warnings[0] = '\0';
        koc_log_set_handler(capture_warnings, NULL, NULL);
        koc_test_apiserver_stop(&W->server);
        bool warned = run_until(warned_unreachable, NULL);
        bool lost = run_until(has_stopped, a);
        run_for(500 * MS); /* more failed attempts, every retry period */
        koc_log_set_handler(NULL, NULL, NULL);
        if (!warned || !strstr(warnings, url))
                fail_msg("no warning naming %s in:\n%s", url, warnings);
        assert_true(lost);
        assert_int_equal(a->last_reason, KOC_LEADER_REASON_RENEW_DEADLINE_EXCEEDED);
        const char *first = strstr(warnings, "cannot reach");
        assert_null(strstr(first + 1, "cannot reach"));
}

/* Rejected credentials (401) and missing RBAC (403), from the real server:
 * each its own warning, and the 401 one does not speak of RBAC. */
static void test_unauthorized_and_forbidden_are_told_apart(void **state) {
        /* The 403 comes from a fault rule; on the real server tests/k8s/rbac.sh
         * shows the 403 message. */
        KOC_TEST_NEEDS_KOC_APISERVER(&W->server);
        /* The server's kubeconfig with another token. */
        char *text = NULL, path[400];
        FILE *in = fopen(W->server.kubeconfig, "r");
        assert_non_null(in);
        size_t cap = 0;
        ssize_t len = getdelim(&text, &cap, '\0', in);
        fclose(in);
        assert_true(len > 0);
        char *tok = strstr(text, W->server.token);
        assert_non_null(tok);
        memset(tok, 'x', strlen(W->server.token));
        snprintf(path, sizeof path, "%s.wrong", W->server.kubeconfig);
        FILE *out = fopen(path, "w");
        assert_non_null(out);
        fputs(text, out);
        fclose(out);
        free(text);

        koc_cluster_config *wrong = NULL;
        koc_error err = {0};
        assert_int_equal(koc_cluster_config_from_kubeconfig(path, NULL, &wrong, &err), 0);
        unlink(path);
        koc_client *client = NULL;
        koc_leader *l = NULL;
        assert_int_equal(koc_client_new(W->event, wrong, &client), 0);
        koc_leader_config *cfg = short_config("a");
        assert_int_equal(koc_leader_new(client, cfg, &l, &err), 0);
        koc_leader_config_free(cfg);

        warnings[0] = '\0';
        koc_log_set_handler(capture_warnings, NULL, NULL);
        assert_int_equal(koc_leader_start(l), 0);
        bool got401 = run_until(warned_401, NULL);
        koc_leader_stop(l);
        l = koc_leader_unref(l);
        client = koc_client_unref(client);
        koc_cluster_config_unref(wrong);

        /* The right token, but no permission on leases. */
        assert_int_equal(koc_test_apiserver_fault(&W->server,
                                                  "{\"resource\":\"leases\",\"verb\":\"get\","
                                                  "\"error_rate\":1.0,\"error_code\":403}"),
                         200);
        candidate *a = add_candidate("a");
        bool got403 = run_until(warned_403, NULL);
        koc_log_set_handler(NULL, NULL, NULL);
        assert_int_equal(koc_test_apiserver_clear_faults(&W->server), 200);
        if (!got401 || !got403)
                fail_msg("warnings:\n%s", warnings);
        /* Line by line: which message says what. */
        int n401 = 0, n403 = 0;
        for (char *save = NULL, *line = strtok_r(warnings, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                if (strstr(line, "HTTP 401")) {
                        n401++;
                        assert_non_null(strstr(line, "rejected the credentials"));
                        assert_null(strstr(line, "needs get, create"));
                }
                if (strstr(line, "HTTP 403")) {
                        n403++;
                        assert_non_null(strstr(line, "needs get, create and update on leases"));
                }
        }
        assert_int_equal(n401, 1);
        assert_int_equal(n403, 1);
        assert_int_equal(a->n_started, 0);
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
                cmocka_unit_test_setup_teardown(test_unreachable_server_is_logged, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unauthorized_and_forbidden_are_told_apart,
                                                setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

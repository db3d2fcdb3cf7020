/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-leader: leader election figures against a local koc-apiserver.
 *
 * For short durations (2 s / 1.5 s / 0.25 s) and for Kubernetes' defaults
 * (15 s / 10 s / 2 s) it prints:
 *   - cooperative handoff latency: from the moment the old leader's release
 *     write was answered to the successor's started-leading callback;
 *   - crash failover latency: a leader in a child process is SIGKILLed; from
 *     the last renewal the follower observed (and from the kill) to the
 *     follower's started-leading callback;
 *   - requests per minute to the API server (its /metrics) by the leader
 *     alone and by each follower, in a steady state;
 *   - RSS of one replica (the child process, while leading).
 *
 *   cmake --build build --target bench-leader && ./build/tests/bench-leader [--quick]
 *
 * --quick runs fewer iterations.  Total runtime is about two minutes.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness/apiserver.h"
#include "koc/client.h"
#include "koc/config.h"
#include "koc/leader.h"
#include "koc/log.h"
#include "koc/time.h"
#include "leader/leader-internal.h"

#define MS KOC_USEC_PER_MSEC
#define SEC KOC_USEC_PER_SEC

typedef struct profile {
        const char *name;
        uint64_t lease, renew, retry;
        int handoff_runs, crash_runs;
        uint64_t rate_window;
} profile;

typedef struct cand {
        char id[32];
        koc_client *client;
        koc_leader *leader;
        uint64_t started_at;
        uint64_t done_at;
        int done_result;
        bool done;
} cand;

static sd_event *event;
static koc_cluster_config *cluster;
static koc_test_apiserver server;

static void on_started(koc_leader *l, uint64_t term, void *ud) {
        ((cand *)ud)->started_at = koc_now_boottime_usec();
}

static void on_done(koc_leader *l, int result, void *ud) {
        cand *c = ud;
        c->done_at = koc_now_boottime_usec();
        c->done_result = result;
        c->done = true;
}

static koc_leader_config *make_config(const profile *p, const char *lease, const char *id) {
        koc_leader_config *cfg = NULL;
        if (koc_leader_config_new("default", lease, &cfg) < 0 ||
            koc_leader_config_set_identity(cfg, id) < 0)
                abort();
        koc_leader_config_set_lease_duration(cfg, p->lease);
        koc_leader_config_set_renew_deadline(cfg, p->renew);
        koc_leader_config_set_retry_period(cfg, p->retry);
        return cfg;
}

static void cand_init(cand *c, const profile *p, const char *lease, const char *id) {
        koc_error err = {0};
        memset(c, 0, sizeof *c);
        snprintf(c->id, sizeof c->id, "%s", id);
        if (koc_client_new(event, cluster, &c->client) < 0)
                abort();
        koc_leader_config *cfg = make_config(p, lease, id);
        if (koc_leader_new(c->client, cfg, &c->leader, &err) < 0) {
                fprintf(stderr, "bench-leader: %s\n", err.message);
                exit(1);
        }
        koc_leader_config_free(cfg);
        koc_leader_set_callbacks(c->leader, &(koc_leader_callbacks){.started_leading = on_started},
                                 c, NULL);
        if (koc_leader_start(c->leader) < 0)
                abort();
}

static void cand_free(cand *c) {
        if (c->leader)
                koc_leader_set_callbacks(c->leader, NULL, NULL, NULL);
        c->leader = koc_leader_unref(c->leader);
        c->client = koc_client_unref(c->client);
}

/* Runs the loop until pred holds or max passes; false on timeout. */
static bool run_until(bool (*pred)(void *), void *ud, uint64_t max) {
        uint64_t end = koc_now_boottime_usec() + max;
        while (!pred(ud)) {
                uint64_t now = koc_now_boottime_usec();
                if (now >= end)
                        return false;
                if (sd_event_run(event, end - now) < 0)
                        return false;
        }
        return true;
}

static bool never(void *ud) {
        return false;
}

static void run_for(uint64_t usec) {
        (void)run_until(never, NULL, usec);
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static void print_stats(const char *what, uint64_t *v, int n) {
        if (n == 0) {
                printf("  %-44s no samples\n", what);
                return;
        }
        qsort(v, (size_t)n, sizeof v[0], cmp_u64);
        printf("  %-44s min %8.1f ms  median %8.1f ms  max %8.1f ms  (n=%d)\n", what,
               (double)v[0] / 1000.0, (double)v[n / 2] / 1000.0, (double)v[n - 1] / 1000.0, n);
}

typedef struct pair {
        cand *a, *b;
} pair;

static bool someone_leads(void *ud) {
        pair *p = ud;
        return koc_leader_is_leader(p->a->leader) || koc_leader_is_leader(p->b->leader);
}

static bool done_and_started(void *ud) {
        pair *p = ud; /* a: old leader, b: successor */
        return p->a->done && p->b->started_at != 0;
}

static void bench_handoff(const profile *p) {
        cand a, b;
        uint64_t samples[64];
        int n = 0, early = 0;
        cand_init(&a, p, "bench-handoff", "handoff-a");
        cand_init(&b, p, "bench-handoff", "handoff-b");
        pair both = {&a, &b};
        if (!run_until(someone_leads, &both, 5 * p->lease)) {
                printf("  handoff: nobody leads\n");
                goto out;
        }
        run_for(2 * p->retry);
        for (int i = 0; i < p->handoff_runs && n < 64; i++) {
                cand *old = koc_leader_is_leader(a.leader) ? &a : &b;
                cand *next = old == &a ? &b : &a;
                old->done = false;
                next->started_at = 0;
                if (koc_leader_step_down(old->leader, on_done, old) < 0)
                        break;
                pair wait = {old, next};
                if (!run_until(done_and_started, &wait, 3 * p->lease)) {
                        printf("  handoff run %d: no successor\n", i);
                        break;
                }
                if (next->started_at >= old->done_at)
                        samples[n++] = next->started_at - old->done_at;
                else {
                        samples[n++] = 0; /* the successor even won the race with the answer */
                        early++;
                }
                /* The old leader rejoins as a follower for the next round. */
                if (koc_leader_start(old->leader) < 0)
                        break;
                run_for(2 * p->retry);
        }
        print_stats("cooperative handoff (release -> successor)", samples, n);
        if (early)
                printf("    (%d run(s) where the successor led before the release answer was "
                       "processed, counted as 0)\n",
                       early);
out:
        cand_free(&a);
        cand_free(&b);
}

static long rss_kib(pid_t pid) {
        char path[64], line[256];
        long kib = -1;
        snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof line, f))
                if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

static void child_elector(const profile *p, const char *lease) {
        sd_event *e = NULL;
        koc_cluster_config *cfg = NULL;
        koc_client *c = NULL;
        koc_leader *l = NULL;
        koc_error err = {0};
        alarm(120); /* never outlive the benchmark */
        koc_log_set_level(KOC_LOG_WARN);
        if (sd_event_new(&e) < 0 ||
            koc_cluster_config_from_kubeconfig(server.kubeconfig, NULL, &cfg, &err) < 0 ||
            koc_client_new(e, cfg, &c) < 0)
                _exit(2);
        koc_leader_config *lc = make_config(p, lease, "crash-child");
        if (koc_leader_new(c, lc, &l, &err) < 0 || koc_leader_start(l) < 0)
                _exit(3);
        sd_event_loop(e);
        _exit(0);
}

static bool child_holds(void *ud) {
        cand *c = ud;
        return strcmp(koc_leader_get_holder(c->leader), "crash-child") == 0;
}

static bool started(void *ud) {
        return ((cand *)ud)->started_at != 0;
}

static void bench_crash(const profile *p, long *ret_rss) {
        uint64_t from_obs[16], from_kill[16];
        int n = 0;
        char lease[64];
        for (int i = 0; i < p->crash_runs && i < 16; i++) {
                snprintf(lease, sizeof lease, "bench-crash-%s-%d", p->name, i);
                pid_t pid = fork();
                if (pid < 0)
                        break;
                if (pid == 0)
                        child_elector(p, lease);
                /* The child takes the Lease first; then the follower joins. */
                char path[160];
                bool held = false;
                snprintf(path, sizeof path,
                         "/apis/coordination.k8s.io/v1/namespaces/default/leases/%s", lease);
                for (int j = 0; j < 200 && !held; j++) {
                        char *body = NULL;
                        long code =
                                koc_test_apiserver_http(&server, "GET", path, NULL, NULL, &body);
                        held = code == 200 && body &&
                               strstr(body, "\"holderIdentity\":\"crash-child\"");
                        free(body);
                        if (!held)
                                usleep(50 * 1000);
                }
                cand f;
                cand_init(&f, p, lease, "crash-follower");
                if (!run_until(child_holds, &f, 10 * SEC)) {
                        printf("  crash run %d: the child never led\n", i);
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                        cand_free(&f);
                        break;
                }
                run_for(3 * p->retry); /* a few renewals observed */
                long rss = rss_kib(pid);
                if (rss > 0 && ret_rss)
                        *ret_rss = rss;
                const leader_fsm *fsm = koc__leader_get_fsm(f.leader);
                uint64_t last_obs = fsm->observed_at;
                kill(pid, SIGKILL);
                uint64_t killed = koc_now_boottime_usec();
                waitpid(pid, NULL, 0);
                /* Keep the newest observation of the child's record until we lead. */
                uint64_t end = killed + 3 * p->lease;
                while (f.started_at == 0 && koc_now_boottime_usec() < end) {
                        if (strcmp(fsm->observed.holder, "crash-child") == 0)
                                last_obs = fsm->observed_at;
                        if (sd_event_run(event, 100 * MS) < 0)
                                break;
                }
                if (started(&f)) {
                        from_obs[n] = f.started_at - last_obs;
                        from_kill[n] = f.started_at - killed;
                        n++;
                } else
                        printf("  crash run %d: no takeover\n", i);
                cand_free(&f);
        }
        print_stats("crash failover (last renewal seen -> leads)", from_obs, n);
        printf("    goal: <= lease_duration + 100 ms = %.0f ms\n",
               (double)(p->lease + 100 * MS) / 1000.0);
        print_stats("crash failover (SIGKILL -> leads)", from_kill, n);
}

static double lease_requests(const char *verb) {
        char prefix[128];
        snprintf(prefix, sizeof prefix, "apiserver_request_total{verb=\"%s\",resource=\"leases\"",
                 verb);
        double v = koc_test_apiserver_metric(&server, prefix);
        return v < 0 ? 0 : v;
}

static const char *const rate_verbs[] = {"GET", "PUT", "POST", "WATCH", "LIST"};
#define N_VERBS (sizeof rate_verbs / sizeof rate_verbs[0])

/* Lease requests per minute, by verb, over `window` while the loop runs. */
static void measure_rate(uint64_t window, double ret[N_VERBS]) {
        double before[N_VERBS], after[N_VERBS];
        for (size_t i = 0; i < N_VERBS; i++)
                before[i] = lease_requests(rate_verbs[i]);
        run_for(window);
        for (size_t i = 0; i < N_VERBS; i++) {
                after[i] = lease_requests(rate_verbs[i]);
                ret[i] = (after[i] - before[i]) * 60.0 * SEC / (double)window;
        }
}

static void print_rate(const char *who, const double r[N_VERBS]) {
        double total = 0;
        char detail[256] = "";
        for (size_t i = 0; i < N_VERBS; i++) {
                double v = r[i] > 0 ? r[i] : 0;
                total += v;
                if (v > 0.05) {
                        size_t len = strlen(detail);
                        snprintf(detail + len, sizeof detail - len, "%s%s %.1f", len ? ", " : "",
                                 rate_verbs[i], v);
                }
        }
        printf("  %-44s %8.1f requests/min%s%s%s\n", who, total, detail[0] ? "  (" : "", detail,
               detail[0] ? ")" : "");
}

static void bench_rates(const profile *p) {
        cand l, f1, f2;
        double alone[N_VERBS], all[N_VERBS], follower[N_VERBS];
        char lease[64];
        snprintf(lease, sizeof lease, "bench-rate-%s", p->name);
        cand_init(&l, p, lease, "rate-leader");
        if (!run_until(started, &l, 5 * p->lease)) {
                printf("  rates: the leader never led\n");
                cand_free(&l);
                return;
        }
        run_for(p->retry);
        /* Phase 1: the leader alone.  Phase 2: two followers join; each one's
         * share is what the phase adds, halved. */
        measure_rate(p->rate_window, alone);
        cand_init(&f1, p, lease, "rate-follower-1");
        cand_init(&f2, p, lease, "rate-follower-2");
        run_for(p->retry);
        measure_rate(p->rate_window, all);
        for (size_t i = 0; i < N_VERBS; i++)
                follower[i] = (all[i] - alone[i]) / 2;
        print_rate("requests by the leader", alone);
        print_rate("requests by each follower (steady state)", follower);
        printf("    (API server /metrics over %s windows; a follower's watch is opened once and "
               "counted when it starts)\n",
               p->name);
        cand_free(&f1);
        cand_free(&f2);
        cand_free(&l);
}

static void bench_profile(const profile *p) {
        long rss = -1;
        char a[16], b[16], c[16];
        printf("\n== %s: lease %s, renew deadline %s, retry period %s ==\n", p->name,
               koc_format_duration(p->lease, a, sizeof a),
               koc_format_duration(p->renew, b, sizeof b),
               koc_format_duration(p->retry, c, sizeof c));
        bench_handoff(p);
        bench_crash(p, &rss);
        bench_rates(p);
        if (rss > 0)
                printf("  %-44s %8ld KiB\n", "RSS of one replica (leading)", rss);
        fflush(stdout);
}

int main(int argc, char **argv) {
        bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
        koc_error err = {0};
        profile profiles[] = {
                {"short", 2 * SEC, 1500 * MS, 250 * MS, quick ? 5 : 15, quick ? 2 : 4,
                 quick ? 5 * SEC : 10 * SEC},
                {"defaults", 15 * SEC, 10 * SEC, 2 * SEC, quick ? 3 : 5, quick ? 1 : 2,
                 quick ? 10 * SEC : 20 * SEC},
        };
        if (!getenv("KOC_LOG_LEVEL"))
                koc_log_set_level(KOC_LOG_WARN);
        signal(SIGPIPE, SIG_IGN);
        if (koc_test_apiserver_start(&server, NULL) < 0) {
                fprintf(stderr, "bench-leader: cannot start koc-apiserver\n");
                return 1;
        }
        if (sd_event_new(&event) < 0 ||
            koc_cluster_config_from_kubeconfig(server.kubeconfig, NULL, &cluster, &err) < 0) {
                fprintf(stderr, "bench-leader: %s\n", err.message);
                koc_test_apiserver_stop(&server);
                return 1;
        }
        printf("bench-leader: koc-apiserver at %s; one loop, one client per candidate\n",
               server.url);
        for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; i++)
                bench_profile(&profiles[i]);
        koc_cluster_config_unref(cluster);
        sd_event_unref(event);
        koc_test_apiserver_stop(&server);
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * probes-server: the probes server under HTTP load while a leader renews its
 * Lease on the same sd-event loop.
 *
 * It starts a local koc-apiserver, becomes leader of a Lease (lease 2 s,
 * renew deadline 1.5 s, retry period 100 ms: ten renewals a second, a harsher
 * cadence than Kubernetes' 2 s so that a phase has enough samples), serves
 * /readyz (gated on leadership) on 127.0.0.1, and then runs two phases of the
 * same length, side by side:
 *
 *   idle   nothing but the renewals;
 *   load   wrk -t2 -c64 -dNs --latency http://127.0.0.1:PORT/readyz
 *
 * For each phase it prints the renewals done, renewal errors, the renewal
 * latency (mean, and the histogram bucket holding the 99th percentile), the
 * longest gap between two successful renewals, how late a 5 ms timer on the
 * loop ran (mean and max), and leadership losses.  A renewal counts as
 * missed when a gap exceeds twice the retry period, a renewal fails, or
 * leadership is lost.  wrk's own figures (requests/s, latency distribution,
 * non-2xx answers) follow.
 *
 *   cmake --build build --target bench-probes          (runs it)
 *   ./build/tests/probes-server [--duration SEC] [--connections N] [--threads N]
 *   ./build/tests/probes-server --serve-only            (serve, print the port, wait)
 *
 * Exit status: 0 when the load phase met the goal (>= 20000 requests/s, no
 * missed renewal, no non-2xx answer), 1 otherwise, 2 when it could not run.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
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
#include "koc/metrics.h"
#include "koc/probes.h"
#include "koc/time.h"

#define MS KOC_USEC_PER_MSEC
#define SEC KOC_USEC_PER_SEC
#define LEASE_NAME "bench-probes"
#define RETRY_PERIOD (100 * MS)
#define PROBE_PERIOD (5 * MS)
#define GOAL_RPS 20000.0

extern char **environ;

static sd_event *event;
static koc_metrics *metrics;
static koc_leader *leader;
static koc_leader_state *state;
static koc_metric *renew_hist, *renew_errors;
static unsigned lost;

/* One phase's measurements. */
typedef struct phase {
        const char *name;
        uint64_t start, end;
        uint64_t renew_count0, renew_count1;
        double renew_sum0, renew_sum1;
        double errors0, errors1;
        unsigned lost0, lost1;
        uint64_t max_gap;
        uint64_t late_sum, late_max, late_n;
        double bucket0[32], bucket1[32];
        double bounds[32];
        size_t n_buckets;
} phase;

static phase *current;
static uint64_t last_renew_at, last_count;

/* --- leadership ---------------------------------------------------------------- */

static void on_stopped(koc_leader *l, koc_leader_reason reason, void *ud) {
        lost++;
        koc_log_warn("bench", "leadership lost reason=%s", koc_leader_reason_to_string(reason));
}

static int check_leader(char *why, size_t size, void *ud) {
        if (koc_leader_state_is_leader(state))
                return 0;
        snprintf(why, size, "not the leader");
        return -EAGAIN;
}

/* Reads the cumulative bucket counts of the renewal histogram from the
 * rendered registry (the public API gives sum and count only). */
static void read_buckets(double *counts, double *bounds, size_t *n) {
        char *text = NULL;
        size_t len = 0;
        *n = 0;
        if (koc_metrics_render(metrics, &text, &len) < 0)
                return;
        const char *prefix = "leader_election_renew_duration_seconds_bucket{";
        for (char *line = strtok(text, "\n"); line && *n < 32; line = strtok(NULL, "\n")) {
                if (strncmp(line, prefix, strlen(prefix)) != 0)
                        continue;
                char *le = strstr(line, "le=\"");
                char *sp = strrchr(line, ' ');
                if (!le || !sp)
                        continue;
                bounds[*n] = strncmp(le + 4, "+Inf", 4) == 0 ? INFINITY : strtod(le + 4, NULL);
                counts[*n] = strtod(sp + 1, NULL);
                (*n)++;
        }
        free(text);
}

static void phase_begin(phase *p, const char *name) {
        memset(p, 0, sizeof(*p));
        p->name = name;
        p->start = koc_now_boottime_usec();
        p->renew_count0 = koc_metric_get_count(renew_hist);
        p->renew_sum0 = koc_metric_get(renew_hist);
        p->errors0 = koc_metric_get(renew_errors);
        p->lost0 = lost;
        read_buckets(p->bucket0, p->bounds, &p->n_buckets);
        last_renew_at = p->start;
        last_count = p->renew_count0;
        current = p;
}

static void phase_end(phase *p) {
        p->end = koc_now_boottime_usec();
        p->renew_count1 = koc_metric_get_count(renew_hist);
        p->renew_sum1 = koc_metric_get(renew_hist);
        p->errors1 = koc_metric_get(renew_errors);
        p->lost1 = lost;
        size_t n = 0;
        read_buckets(p->bucket1, p->bounds, &n);
        if (n != p->n_buckets)
                p->n_buckets = 0;
        uint64_t tail = p->end - last_renew_at;
        if (tail > p->max_gap)
                p->max_gap = tail;
        current = NULL;
}

/* A periodic timer at the default priority, like the leader's: how late it
 * runs is how long anything on the loop waits, and it notices each renewal
 * (the histogram count moving) to measure the gaps between them. */
static int on_probe(sd_event_source *s, uint64_t usec, void *ud) {
        uint64_t now = koc_now_boottime_usec();
        if (current) {
                uint64_t late = now > usec ? now - usec : 0;
                current->late_sum += late;
                current->late_n++;
                if (late > current->late_max)
                        current->late_max = late;
                uint64_t count = koc_metric_get_count(renew_hist);
                if (count != last_count) {
                        if (now - last_renew_at > current->max_gap)
                                current->max_gap = now - last_renew_at;
                        last_renew_at = now;
                        last_count = count;
                }
        }
        sd_event_source_set_time(s, usec + PROBE_PERIOD);
        return 0;
}

/* --- wrk ------------------------------------------------------------------------- */

typedef struct wrk_run {
        pid_t pid;
        int fd;
        char out[16384];
        size_t len;
        bool done;
} wrk_run;

static int on_wrk_output(sd_event_source *s, int fd, uint32_t revents, void *ud) {
        wrk_run *w = ud;
        ssize_t n = read(fd, w->out + w->len, sizeof(w->out) - 1 - w->len);
        if (n > 0) {
                w->len += (size_t)n;
                w->out[w->len] = 0;
                return 0;
        }
        if (n < 0 && errno == EAGAIN)
                return 0;
        w->done = true; /* EOF: wrk has finished */
        sd_event_source_disable_unref(s);
        return 0;
}

static int spawn_wrk(wrk_run *w, const char *url, int threads, int conns, int secs) {
        int pipefd[2];
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        char t[16], c[16], d[16];
        snprintf(t, sizeof(t), "-t%d", threads);
        snprintf(c, sizeof(c), "-c%d", conns);
        snprintf(d, sizeof(d), "-d%ds", secs);
        char *argv[] = { "wrk", t, c, d, "--latency", (char *)url, NULL };
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDERR_FILENO);
        int r = posix_spawnp(&w->pid, "wrk", &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(pipefd[1]);
        if (r != 0) {
                close(pipefd[0]);
                return -r;
        }
        w->fd = pipefd[0];
        fcntl(w->fd, F_SETFL, O_NONBLOCK);
        return sd_event_add_io(event, NULL, w->fd, EPOLLIN, on_wrk_output, w);
}

/* --- running the loop --------------------------------------------------------------- */

static void run_for(uint64_t usec) {
        uint64_t until = koc_now_boottime_usec() + usec;
        while (koc_now_boottime_usec() < until)
                if (sd_event_run(event, until - koc_now_boottime_usec()) < 0)
                        break;
}

static bool run_until_done(wrk_run *w, uint64_t max) {
        uint64_t until = koc_now_boottime_usec() + max;
        while (!w->done && koc_now_boottime_usec() < until)
                if (sd_event_run(event, until - koc_now_boottime_usec()) < 0)
                        break;
        return w->done;
}

/* --- report ------------------------------------------------------------------------------ */

static double p99_bound(const phase *p) {
        if (p->n_buckets == 0)
                return NAN;
        double total = p->bucket1[p->n_buckets - 1] - p->bucket0[p->n_buckets - 1];
        if (total <= 0)
                return NAN;
        for (size_t i = 0; i < p->n_buckets; i++)
                if (p->bucket1[i] - p->bucket0[i] >= 0.99 * total)
                        return p->bounds[i];
        return INFINITY;
}

static unsigned missed(const phase *p) {
        unsigned m = (unsigned)(p->errors1 - p->errors0) + (p->lost1 - p->lost0);
        if (p->max_gap > 2 * RETRY_PERIOD)
                m += (unsigned)(p->max_gap / RETRY_PERIOD) - 1;
        return m;
}

static void print_ms(const char *label, double a, double b) {
        printf("  %-34s %12.2f ms %12.2f ms\n", label, a, b);
}

static void report(const phase *idle, const phase *load) {
        const phase *ph[2] = { idle, load };
        double mean[2], p99[2];
        for (int i = 0; i < 2; i++) {
                uint64_t n = ph[i]->renew_count1 - ph[i]->renew_count0;
                mean[i] = n ? (ph[i]->renew_sum1 - ph[i]->renew_sum0) / (double)n * 1e3 : NAN;
                p99[i] = p99_bound(ph[i]) * 1e3;
        }
        printf("\nLease renewals on the loop (retry period %" PRIu64 " ms), side by side:\n",
               RETRY_PERIOD / MS);
        printf("  %-34s %15s %15s\n", "", "idle", "under wrk load");
        printf("  %-34s %15.1f %15.1f\n", "phase length (s)",
               (double)(idle->end - idle->start) / SEC, (double)(load->end - load->start) / SEC);
        printf("  %-34s %15" PRIu64 " %15" PRIu64 "\n", "successful renewals",
               idle->renew_count1 - idle->renew_count0, load->renew_count1 - load->renew_count0);
        printf("  %-34s %15.0f %15.0f\n", "renewal errors", idle->errors1 - idle->errors0,
               load->errors1 - load->errors0);
        print_ms("renewal latency, mean", mean[0], mean[1]);
        print_ms("renewal latency, p99 (bucket <=)", p99[0], p99[1]);
        print_ms("longest gap between renewals", (double)idle->max_gap / MS,
                 (double)load->max_gap / MS);
        print_ms("5 ms loop timer lateness, mean",
                 idle->late_n ? (double)idle->late_sum / idle->late_n / MS : NAN,
                 load->late_n ? (double)load->late_sum / load->late_n / MS : NAN);
        print_ms("5 ms loop timer lateness, max", (double)idle->late_max / MS,
                 (double)load->late_max / MS);
        printf("  %-34s %15u %15u\n", "leadership lost", idle->lost1 - idle->lost0,
               load->lost1 - load->lost0);
        printf("  %-34s %15u %15u\n", "missed renewals", missed(idle), missed(load));
}

/* Prints wrk's summary lines and returns requests/s (NAN when absent);
 * *ret_non2xx gets the "Non-2xx or 3xx responses" count. */
static double report_wrk(const wrk_run *w, long *ret_non2xx) {
        double rps = NAN;
        *ret_non2xx = 0;
        printf("\nwrk output:\n");
        char *copy = strdup(w->out);
        for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
                printf("  | %s\n", line);
                const char *p;
                if ((p = strstr(line, "Requests/sec:")))
                        rps = strtod(p + strlen("Requests/sec:"), NULL);
                if ((p = strstr(line, "Non-2xx or 3xx responses:")))
                        *ret_non2xx = strtol(p + strlen("Non-2xx or 3xx responses:"), NULL, 10);
        }
        free(copy);
        return rps;
}

int main(int argc, char **argv) {
        int secs = 10, conns = 64, threads = 2;
        bool serve_only = false;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc)
                        secs = atoi(argv[++i]);
                else if (strcmp(argv[i], "--connections") == 0 && i + 1 < argc)
                        conns = atoi(argv[++i]);
                else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
                        threads = atoi(argv[++i]);
                else if (strcmp(argv[i], "--serve-only") == 0)
                        serve_only = true;
                else {
                        fprintf(stderr,
                                "usage: %s [--duration SEC] [--connections N] [--threads N] "
                                "[--serve-only]\n",
                                argv[0]);
                        return 2;
                }
        }
        if (secs < 1 || secs > 300 || conns < 1 || conns > 10000 || threads < 1 || threads > 64) {
                fprintf(stderr, "duration 1..300 s, connections 1..10000, threads 1..64\n");
                return 2;
        }
        if (!getenv("KOC_LOG_LEVEL"))
                koc_log_set_level(KOC_LOG_WARN);

        koc_test_apiserver server;
        if (koc_test_apiserver_start(&server, NULL) < 0) {
                fprintf(stderr, "cannot start koc-apiserver\n");
                return 2;
        }
        int ret = 2;
        koc_cluster_config *cluster = NULL;
        koc_client *client = NULL;
        koc_leader_config *cfg = NULL;
        koc_probes *probes = NULL;
        koc_error err = { 0 };

        if (sd_event_new(&event) < 0 || koc_metrics_new(&metrics) < 0) {
                fprintf(stderr, "out of memory\n");
                goto out;
        }
        if (koc_cluster_config_from_kubeconfig(server.kubeconfig, NULL, &cluster, &err) < 0 ||
            koc_client_new(event, cluster, &client) < 0) {
                fprintf(stderr, "client: %s\n", err.message);
                goto out;
        }
        if (koc_leader_config_new("default", LEASE_NAME, &cfg) < 0 ||
            koc_leader_config_set_identity(cfg, "bench-probes") < 0) {
                fprintf(stderr, "out of memory\n");
                goto out;
        }
        koc_leader_config_set_lease_duration(cfg, 2 * SEC);
        koc_leader_config_set_renew_deadline(cfg, 1500 * MS);
        koc_leader_config_set_retry_period(cfg, RETRY_PERIOD);
        if (koc_leader_new(client, cfg, &leader, &err) < 0) {
                fprintf(stderr, "leader: %s\n", err.message);
                goto out;
        }
        koc_leader_set_callbacks(leader, &(koc_leader_callbacks){.stopped_leading = on_stopped},
                                 NULL, NULL);
        state = koc_leader_ref_state(leader);
        if (koc_leader_register_metrics(leader, metrics) < 0) {
                fprintf(stderr, "cannot register the leader's metrics\n");
                goto out;
        }
        /* The same name, labels and buckets return the leader's own metrics
         * (leader/leader.c registers them with these buckets). */
        static const double b[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                    0.25,  0.5,    1,     2.5,  5,     10 };
        if (koc_metrics_add_histogram(metrics, "leader_election_renew_duration_seconds", "",
                                      "name=\"" LEASE_NAME "\"", b, sizeof(b) / sizeof(b[0]),
                                      &renew_hist) < 0 ||
            koc_metrics_add_counter(metrics, "leader_election_renew_errors_total", "",
                                    "name=\"" LEASE_NAME "\"", &renew_errors) < 0) {
                fprintf(stderr, "cannot find the leader's renewal metrics (did their buckets "
                                "change in leader/leader.c?)\n");
                goto out;
        }

        /* wrk's 64 keep-alive connections come from one address: they stand
         * for many clients, so the per-address limit (32 by default, which
         * would close wrk's idle connections between its requests) is raised
         * above them. */
        if (koc_probes_new(event, metrics, &probes) < 0 ||
            koc_probes_set_client_limits(probes, 128, 0) < 0 ||
            koc_probes_add_ready_check(probes, "leader", check_leader, NULL, NULL) < 0 ||
            koc_probes_listen(probes, "127.0.0.1:0", KOC_PROBES_HEALTH | KOC_PROBES_METRICS) < 0) {
                fprintf(stderr, "cannot start the probes server\n");
                goto out;
        }
        uint16_t port = 0;
        (void)koc_probes_get_port(probes, KOC_PROBES_HEALTH, &port);

        if (koc_leader_run_until_leading(leader, 10 * SEC) != 1) {
                fprintf(stderr, "did not become leader\n");
                goto out;
        }
        char url[64];
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/readyz", port);
        if (serve_only) {
                printf("%s\n", url);
                fflush(stdout);
                run_for((uint64_t)secs * SEC);
                ret = 0;
                goto out;
        }

        sd_event_source *probe = NULL;
        if (sd_event_add_time_relative(event, &probe, CLOCK_BOOTTIME, PROBE_PERIOD, 1, on_probe,
                                       NULL) < 0 ||
            sd_event_source_set_enabled(probe, SD_EVENT_ON) < 0) {
                fprintf(stderr, "cannot add the probe timer\n");
                goto out;
        }

        printf("bench-probes: %s, leader renewing every %" PRIu64 " ms on the same loop\n", url,
               RETRY_PERIOD / MS);
        run_for(1 * SEC); /* settle */

        phase idle, load;
        phase_begin(&idle, "idle");
        run_for((uint64_t)secs * SEC);
        phase_end(&idle);

        wrk_run w = { 0 };
        int r = spawn_wrk(&w, url, threads, conns, secs);
        if (r < 0) {
                fprintf(stderr, "cannot run wrk (apt-get install wrk): %s\n", strerror(-r));
                sd_event_source_disable_unref(probe);
                goto out;
        }
        phase_begin(&load, "load");
        bool finished = run_until_done(&w, (uint64_t)(secs + 30) * SEC);
        phase_end(&load);
        if (!finished)
                kill(w.pid, SIGKILL);
        waitpid(w.pid, NULL, 0);
        close(w.fd);
        sd_event_source_disable_unref(probe);

        report(&idle, &load);
        long non2xx = 0;
        double rps = report_wrk(&w, &non2xx);
        bool ok = finished && rps >= GOAL_RPS && missed(&load) == 0 && non2xx == 0;
        printf("\nresult: %.0f requests/s on /readyz (goal >= %.0f), %u missed renewals under "
               "load, %ld non-2xx answers: %s\n",
               rps, GOAL_RPS, missed(&load), non2xx, ok ? "GOAL MET" : "GOAL NOT MET");
        ret = ok ? 0 : 1;

out:
        koc_probes_unref(probes);
        if (leader)
                koc_leader_stop(leader);
        koc_leader_state_unref(state);
        koc_leader_unref(leader);
        koc_leader_config_free(cfg);
        koc_client_unref(client);
        koc_cluster_config_unref(cluster);
        koc_metrics_unref(metrics);
        sd_event_unref(event);
        koc_test_apiserver_stop(&server);
        return ret;
}

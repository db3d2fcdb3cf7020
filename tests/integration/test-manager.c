/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The manager against koc-apiserver: graceful shutdown composed with leader
 * election.  Each replica is a child process running a manager; it reports
 * its callbacks as lines on a pipe ("started 3", "work-begin", "stopped
 * released", ...), and its one leader-guarded work item blocks until the test
 * writes to a control pipe, so every ordering below is forced by the test,
 * never by timing.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "koc/manager.h"
#include "harness/apiserver.h"

static koc_test_apiserver api;

/* --- the child: one replica ------------------------------------------------- */

struct opts {
        const char *lease;
        const char *identity;
        bool work;       /* start one blocking work item when leading */
        bool stuck_hook; /* a shutdown hook that never finishes */
        bool hook;       /* a shutdown hook that finishes at once */
        bool runnables;  /* runnables r1, bad (start fails), r2 */
        bool leader_elect;
        bool exit_on_loss;
        bool metrics;
        uint64_t budget_usec;
        uint64_t delay_usec;
};

struct replica {
        pid_t pid;
        int ev;  /* read end: event lines */
        int ctl; /* write end: releases the work item */
        uint16_t port;
        uint16_t metrics_port;
        char identity[64];
        char log[8192]; /* every event line read so far */
        size_t log_len;
        size_t scan; /* where expect_event continues */
};

#define MAX_REPLICAS 8
static struct replica *replicas[MAX_REPLICAS];

struct child_state {
        int ev;
        int ctl;
        struct opts o;
        koc_manager *m;
        bool work_started;
};

static void emit(struct child_state *c, const char *fmt, ...) {
        char line[256];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(line, sizeof line - 1, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t)n > sizeof line - 2)
                n = sizeof line - 2;
        line[n++] = '\n';
        (void)!write(c->ev, line, n);
}

static void *work_thread(void *p) {
        struct child_state *c = p;
        char b;

        if (koc_manager_work_begin(c->m) != 0) {
                emit(c, "work-refused");
                return NULL;
        }
        emit(c, "work-begin");
        /* Blocks until the test writes a byte (or closes the pipe). */
        while (read(c->ctl, &b, 1) < 0 && errno == EINTR)
                ;
        emit(c, "work-end");
        koc_manager_work_end(c->m);
        return NULL;
}

static void child_started(koc_manager *m, uint64_t term, void *userdata) {
        struct child_state *c = userdata;
        pthread_t t;

        emit(c, "started %llu", (unsigned long long)term);
        if (c->o.work && !c->work_started) {
                c->work_started = true;
                if (pthread_create(&t, NULL, work_thread, c) == 0)
                        pthread_detach(t);
        }
}

static void child_stopped(koc_manager *m, koc_leader_reason reason, void *userdata) {
        struct child_state *c = userdata;

        if (koc_manager_is_stopping(m)) {
                /* Shutting down: the intake must be closed by now. */
                int r = koc_manager_work_begin(m);
                if (r == 0)
                        koc_manager_work_end(m);
                emit(c, "stopped %s begin=%d", koc_leader_reason_to_string(reason), r);
        } else
                emit(c, "stopped %s", koc_leader_reason_to_string(reason));
}

static void child_new_leader(koc_manager *m, const char *identity, void *userdata) {
        emit(userdata, "leader %s", identity[0] ? identity : "-");
        /* A standby may not start leader-guarded work. */
        if (identity[0] && strcmp(identity, koc_manager_get_identity(m)) != 0) {
                int r = koc_manager_work_begin(m);
                emit(userdata, "standby-begin %d", r);
                if (r == 0)
                        koc_manager_work_end(m);
        }
}

static void quick_hook(koc_shutdown_step *step, void *userdata) {
        struct child_state *c = userdata;
        int r = koc_manager_work_begin(c->m);

        /* Hooks run after the intake is closed. */
        emit(c, "hook begin=%d", r);
        if (r == 0)
                koc_manager_work_end(c->m);
        koc_shutdown_step_done(step);
}

static int run_start(koc_manager *m, uint64_t term, const char *name, void *userdata) {
        emit(userdata, "run-start %s %llu", name, (unsigned long long)term);
        return strcmp(name, "bad") == 0 ? -EIO : 0;
}

static void run_stop(koc_manager *m, koc_leader_reason reason, const char *name, void *userdata) {
        emit(userdata, "run-stop %s %s", name, koc_leader_reason_to_string(reason));
}

#define RUNNABLE(n)                                                                                \
        static int start_##n(koc_manager *m, uint64_t term, void *userdata) {                      \
                return run_start(m, term, #n, userdata);                                           \
        }                                                                                          \
        static void stop_##n(koc_manager *m, koc_leader_reason reason, void *userdata) {           \
                run_stop(m, reason, #n, userdata);                                                 \
        }
RUNNABLE(r1)
RUNNABLE(bad)
RUNNABLE(r2)

static void stuck_hook(koc_shutdown_step *step, void *userdata) {
        emit(userdata, "hook-started");
        /* Never calls koc_shutdown_step_done(): only the budget ends it. */
}

static _Noreturn void run_child(int ev, int ctl, const struct opts *o) {
        struct child_state c = {.ev = ev, .ctl = ctl, .o = *o};
        koc_manager_config cfg;
        koc_error err = {0};
        uint16_t port = 0, mport = 0;
        int r;

        koc_manager_config_init(&cfg);
        cfg.kubeconfig = api.kubeconfig;
        cfg.leader_elect = o->leader_elect;
        cfg.leader_election_id = o->lease;
        cfg.leader_election_namespace = "default";
        cfg.identity = o->identity;
        /* The tests check that nothing moves while a replica drains or
         * stands by: a renew deadline far wider than any stall of a loaded,
         * shared machine keeps a stall from moving the Lease, so only a
         * defect can fail them.  Renewals still come every 100 ms. */
        cfg.lease_duration_usec = 4 * KOC_USEC_PER_SEC;
        cfg.renew_deadline_usec = 3 * KOC_USEC_PER_SEC;
        cfg.retry_period_usec = 100 * KOC_USEC_PER_MSEC;
        cfg.exit_on_leadership_loss = o->exit_on_loss;
        cfg.health_probe_bind_address = "127.0.0.1:0";
        cfg.metrics_bind_address = o->metrics ? "127.0.0.1:0" : "0";
        cfg.shutdown_budget_usec = o->budget_usec ? o->budget_usec : 20 * KOC_USEC_PER_SEC;
        cfg.shutdown_delay_usec = o->delay_usec;

        r = koc_manager_new(NULL, &cfg, &c.m, &err);
        if (r < 0) {
                emit(&c, "error %s", err.message);
                _exit(100);
        }
        koc_manager_set_callbacks(c.m,
                                  &(koc_manager_callbacks){
                                          .started_leading = child_started,
                                          .stopped_leading = child_stopped,
                                          .new_leader = child_new_leader,
                                  },
                                  &c, NULL);
        if (o->runnables) {
                (void)koc_manager_add_runnable(
                        c.m, "r1", &(koc_manager_runnable){start_r1, stop_r1}, &c, NULL);
                (void)koc_manager_add_runnable(
                        c.m, "bad", &(koc_manager_runnable){start_bad, stop_bad}, &c, NULL);
                (void)koc_manager_add_runnable(
                        c.m, "r2", &(koc_manager_runnable){start_r2, stop_r2}, &c, NULL);
        }
        if (o->hook)
                (void)koc_manager_add_shutdown_hook(c.m, "quick", quick_hook, &c, NULL);
        if (o->stuck_hook)
                (void)koc_manager_add_shutdown_hook(c.m, "stuck", stuck_hook, &c, NULL);
        (void)koc_manager_get_health_port(c.m, &port);
        (void)koc_manager_get_metrics_port(c.m, &mport);
        emit(&c, "port %u %u", port, mport);

        r = koc_manager_run(c.m);
        emit(&c, "exit %d", r);
        /* A forced shutdown may leave the work thread blocked: _exit ends it. */
        _exit(r);
}

/* --- the parent's view of a replica ---------------------------------------------- */

/* Under valgrind (KOC_UNDER_VALGRIND, valgrind-test-manager) every replica
 * runs about twenty times slower: the bounds of the waits below triple.  They
 * only bound how long a wait may take; no case asserts that something
 * happens late, so a wider bound cannot hide a failure. */
static int widen(int timeout_ms) {
        const char *v = getenv("KOC_UNDER_VALGRIND");
        return v && *v ? 3 * timeout_ms : timeout_ms;
}

static void read_available(struct replica *x, int timeout_ms) {
        struct pollfd p = {.fd = x->ev, .events = POLLIN};
        ssize_t n;

        if (poll(&p, 1, timeout_ms) <= 0)
                return;
        if (x->log_len + 1 >= sizeof x->log)
                return;
        n = read(x->ev, x->log + x->log_len, sizeof x->log - 1 - x->log_len);
        if (n > 0) {
                x->log_len += n;
                x->log[x->log_len] = '\0';
        } else if (n == 0) {
                /* EOF: the child exited; keep poll from spinning. */
                usleep(10000);
        }
}

/* The position of the first whole line starting with prefix at or after
 * `from`, or -1. */
static long find_line(const struct replica *x, const char *prefix, size_t from) {
        size_t plen = strlen(prefix);
        const char *s = x->log + from;

        while (*s) {
                const char *nl = strchr(s, '\n');
                if (!nl)
                        break;
                if ((size_t)(nl - s) >= plen && strncmp(s, prefix, plen) == 0)
                        return s - x->log;
                s = nl + 1;
        }
        return -1;
}

static bool has_event(struct replica *x, const char *prefix) {
        read_available(x, 0);
        return find_line(x, prefix, 0) >= 0;
}

/* Waits (bounded) for the next line starting with prefix; returns its
 * position in the log, failing the test on timeout. */
static long expect_event(struct replica *x, const char *prefix, int timeout_ms) {
        struct timespec start, now;
        long pos;

        timeout_ms = widen(timeout_ms);
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
                pos = find_line(x, prefix, x->scan);
                if (pos >= 0) {
                        x->scan = pos + 1;
                        return pos;
                }
                clock_gettime(CLOCK_MONOTONIC, &now);
                if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >
                    timeout_ms)
                        fail_msg("%s: no \"%s\" within %d ms; events so far:\n%s", x->identity,
                                 prefix, timeout_ms, x->log);
                read_available(x, 50);
        }
}

/* Waits (bounded) for a line starting with prefix anywhere in the log (for
 * lines from another thread, whose place among the others is not fixed);
 * does not move the scan position. */
static void expect_anywhere(struct replica *x, const char *prefix, int timeout_ms) {
        timeout_ms = widen(timeout_ms);
        for (int waited = 0; find_line(x, prefix, 0) < 0; waited += 50) {
                if (waited > timeout_ms)
                        fail_msg("%s: no \"%s\" within %d ms; events so far:\n%s", x->identity,
                                 prefix, timeout_ms, x->log);
                read_available(x, 50);
        }
}

static struct replica *spawn(const struct opts *o) {
        struct replica *x = calloc(1, sizeof *x);
        int evp[2], ctlp[2];
        unsigned port = 0, mport = 0;
        long pos;

        assert_non_null(x);
        assert_int_equal(pipe2(evp, O_CLOEXEC), 0);
        assert_int_equal(pipe2(ctlp, O_CLOEXEC), 0);
        snprintf(x->identity, sizeof x->identity, "%s", o->identity);
        fflush(NULL);
        x->pid = fork();
        assert_true(x->pid >= 0);
        if (x->pid == 0) {
                close(evp[0]);
                close(ctlp[1]);
                run_child(evp[1], ctlp[0], o);
        }
        close(evp[1]);
        close(ctlp[0]);
        x->ev = evp[0];
        x->ctl = ctlp[1];
        for (size_t i = 0; i < MAX_REPLICAS; i++)
                if (!replicas[i]) {
                        replicas[i] = x;
                        break;
                }
        pos = expect_event(x, "port ", 10000);
        assert_int_equal(sscanf(x->log + pos, "port %u %u", &port, &mport), 2);
        assert_true(port > 0);
        x->port = port;
        x->metrics_port = mport;
        return x;
}

/* Waits (bounded) for the child to exit; returns its exit status. */
static int wait_exit(struct replica *x, int timeout_ms) {
        int status = 0;

        timeout_ms = widen(timeout_ms);
        for (int waited = 0;; waited += 20) {
                pid_t p = waitpid(x->pid, &status, WNOHANG);
                if (p == x->pid)
                        break;
                if (waited > timeout_ms)
                        fail_msg("%s did not exit within %d ms; events:\n%s", x->identity,
                                 timeout_ms, x->log);
                read_available(x, 20);
        }
        x->pid = 0;
        read_available(x, 0);
        if (!WIFEXITED(status))
                fail_msg("%s died of signal %d", x->identity, WTERMSIG(status));
        return WEXITSTATUS(status);
}

static void reap(struct replica *x) {
        if (!x)
                return;
        if (x->pid > 0) {
                kill(x->pid, SIGKILL);
                waitpid(x->pid, NULL, 0);
        }
        if (x->ev >= 0)
                close(x->ev);
        if (x->ctl >= 0)
                close(x->ctl);
        free(x);
}

static void reap_all(void) {
        for (size_t i = 0; i < MAX_REPLICAS; i++) {
                reap(replicas[i]);
                replicas[i] = NULL;
        }
}

static size_t discard(void *p, size_t size, size_t n, void *ud) {
        return size * n;
}

struct body {
        char buf[16384];
        size_t len;
};

static size_t collect(void *p, size_t size, size_t n, void *ud) {
        struct body *b = ud;
        size_t k = size * n;

        if (k > sizeof b->buf - 1 - b->len)
                k = sizeof b->buf - 1 - b->len;
        memcpy(b->buf + b->len, p, k);
        b->len += k;
        b->buf[b->len] = '\0';
        return size * n;
}

/* GET http://127.0.0.1:port/path; the status, or 0 when nothing answered. */
static long http_get(uint16_t port, const char *path, struct body *body) {
        char url[128];
        long code = 0;
        CURL *c = curl_easy_init();

        assert_non_null(c);
        snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        if (body) {
                body->len = 0;
                body->buf[0] = '\0';
                curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
                curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
        } else
                curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(c);
        return code;
}

/* Polls /readyz until it answers `want` (bounded). */
static void expect_readyz(struct replica *x, long want, int timeout_ms) {
        long code = 0;

        timeout_ms = widen(timeout_ms);
        for (int waited = 0; waited <= timeout_ms; waited += 20) {
                code = http_get(x->port, "/readyz", NULL);
                if (code == want)
                        return;
                read_available(x, 20);
        }
        fail_msg("%s: /readyz answered %ld, expected %ld; events:\n%s", x->identity, code, want,
                 x->log);
}

/* The Lease's spec field `field` (a string; "" when absent). */
static void lease_field(const char *lease, const char *field, char *out, size_t size) {
        char path[256];
        char *body = NULL;
        cJSON *j, *spec, *h;
        long code;

        snprintf(path, sizeof path, "/apis/coordination.k8s.io/v1/namespaces/default/leases/%s",
                 lease);
        code = koc_test_apiserver_http(&api, "GET", path, NULL, NULL, &body);
        assert_int_equal(code, 200);
        j = cJSON_Parse(body);
        free(body);
        assert_non_null(j);
        spec = cJSON_GetObjectItemCaseSensitive(j, "spec");
        h = spec ? cJSON_GetObjectItemCaseSensitive(spec, field) : NULL;
        snprintf(out, size, "%s", cJSON_IsString(h) ? h->valuestring : "");
        cJSON_Delete(j);
}

/* The Lease's holderIdentity ("" when released). */
static void lease_holder(const char *lease, char *holder, size_t size) {
        lease_field(lease, "holderIdentity", holder, size);
}

/* Waits (bounded) until the Lease's renewTime differs from *last. */
static void expect_renewal(const char *lease, char *last, size_t size) {
        char now[64];

        for (int waited = 0; waited <= 10000; waited += 20) {
                lease_field(lease, "renewTime", now, sizeof now);
                if (strcmp(now, last) != 0) {
                        snprintf(last, size, "%s", now);
                        return;
                }
                usleep(20000);
        }
        fail_msg("lease %s: renewTime stuck at %s", lease, last);
}

static void assert_holder(const char *lease, const char *want) {
        char holder[128];

        lease_holder(lease, holder, sizeof holder);
        assert_string_equal(holder, want);
}

static void release_work(struct replica *x) {
        assert_int_equal(write(x->ctl, "x", 1), 1);
}

static struct opts defaults(const char *lease, const char *identity) {
        return (struct opts){.lease = lease, .identity = identity, .leader_elect = true};
}

/* --- tests --------------------------------------------------------------------------------- */

/* SIGTERM while a leader-guarded work item runs: readiness drops first, the
 * leader keeps the Lease while it drains, the stopped callback and the
 * release come after the work ends, the successor leads, exit 0. */
static void test_drain_then_release(void **state) {
        struct opts oa = defaults("t-drain", "a"), ob = defaults("t-drain", "b");
        struct replica *a, *b;
        struct body body;
        char line[64], renew[64];
        long work_end, stopped;

        oa.work = true;
        oa.metrics = true;
        oa.hook = true;
        oa.runnables = true;
        oa.delay_usec = 200 * KOC_USEC_PER_MSEC;
        a = spawn(&oa);
        expect_event(a, "started ", 10000);
        /* Runnables start after the callback, in the order added. */
        expect_event(a, "run-start r1 ", 1000);
        expect_event(a, "run-start bad ", 1000);
        expect_event(a, "run-start r2 ", 1000);
        expect_anywhere(a, "work-begin", 5000);

        b = spawn(&ob);
        expect_event(b, "leader a", 10000);
        snprintf(line, sizeof line, "standby-begin %d", -EAGAIN);
        expect_event(b, line, 1000);
        expect_readyz(a, 200, 5000);
        expect_readyz(b, 503, 5000);
        assert_int_equal(http_get(a->port, "/livez", NULL), 200);
        assert_int_equal(http_get(b->port, "/livez", NULL), 200);
        assert_int_equal(http_get(b->port, "/readyz?verbose", &body), 503);
        assert_non_null(strstr(body.buf, "[-]leader failed: not the leader"));
        assert_int_equal(http_get(a->metrics_port, "/metrics", &body), 200);
        assert_non_null(strstr(body.buf, "koc_manager_work_in_flight 1"));
        assert_non_null(strstr(body.buf, "leader_election_master_status"));
        /* The client's metrics, from the Lease requests. */
        assert_non_null(strstr(body.buf, "rest_client_requests_total{code=\""));
        assert_non_null(strstr(body.buf, "rest_client_request_duration_seconds_bucket{verb=\""));
        assert_holder("t-drain", "a");

        kill(a->pid, SIGTERM);
        /* Not ready at once, while the work still runs and the Lease is
         * still held: nobody else has started. */
        expect_readyz(a, 503, 5000);
        assert_int_equal(http_get(a->port, "/readyz?verbose", &body), 503);
        assert_non_null(strstr(body.buf, "[-]shutdown failed"));
        assert_false(has_event(a, "stopped"));
        assert_false(has_event(a, "work-end"));
        assert_false(has_event(b, "started"));
        assert_holder("t-drain", "a");
        assert_true(kill(a->pid, 0) == 0);
        /* After the delay the intake closes, then hooks run: new work is
         * refused with -ESHUTDOWN while the old item is still in flight. */
        snprintf(line, sizeof line, "hook begin=%d", -ESHUTDOWN);
        expect_event(a, line, 5000);
        assert_false(has_event(a, "stopped"));
        /* The leader keeps renewing while it drains: several renewals, and
         * the standby still does not lead. */
        lease_field("t-drain", "renewTime", renew, sizeof renew);
        for (int i = 0; i < 3; i++)
                expect_renewal("t-drain", renew, sizeof renew);
        assert_holder("t-drain", "a");
        assert_false(has_event(b, "started"));
        assert_false(has_event(a, "stopped"));

        assert_false(has_event(a, "run-stop"));

        release_work(a);
        work_end = expect_event(a, "work-end", 5000);
        /* Runnables stop in reverse order before the callback; the one that
         * failed to start is not stopped. */
        expect_event(a, "run-stop r2 released", 10000);
        expect_event(a, "run-stop r1 released", 1000);
        stopped = expect_event(a, "stopped released", 10000);
        assert_true(work_end < stopped);
        assert_false(has_event(a, "run-stop bad"));
        assert_int_equal(wait_exit(a, 10000), 0);
        assert_non_null(strstr(a->log, "exit 0"));

        expect_event(b, "started ", 10000);
        expect_readyz(b, 200, 5000);
        assert_holder("t-drain", "b");

        kill(b->pid, SIGTERM);
        expect_event(b, "stopped released", 10000);
        assert_int_equal(wait_exit(b, 10000), 0);
        assert_holder("t-drain", "");
        reap_all();
}

/* The work outlives the drain budget: forced exit 1, and the Lease is NOT
 * released (the work may still be writing); the elector just stops. */
static void test_budget_exceeded(void **state) {
        struct opts oa = defaults("t-budget", "a");
        struct replica *a;

        oa.work = true;
        oa.budget_usec = 1 * KOC_USEC_PER_SEC;
        a = spawn(&oa);
        expect_event(a, "started ", 10000);
        expect_event(a, "work-begin", 5000);

        kill(a->pid, SIGTERM);
        expect_readyz(a, 503, 5000);
        assert_int_equal(wait_exit(a, 15000), 1);
        assert_true(has_event(a, "stopped cancelled"));
        assert_false(has_event(a, "stopped released"));
        assert_false(has_event(a, "work-end"));
        assert_holder("t-budget", "a");
        reap_all();
}

/* A second signal ends the drain at once: exit 1, no release while work runs,
 * and a standby takes over once the Lease expires. */
static void test_second_signal(void **state) {
        struct opts oa = defaults("t-second", "a"), ob = defaults("t-second", "b");
        struct replica *a, *b;

        oa.work = true;
        oa.budget_usec = 60 * KOC_USEC_PER_SEC;
        a = spawn(&oa);
        expect_event(a, "started ", 10000);
        expect_event(a, "work-begin", 5000);
        b = spawn(&ob);
        expect_event(b, "leader a", 10000);

        kill(a->pid, SIGTERM);
        expect_readyz(a, 503, 5000);
        assert_false(has_event(a, "stopped"));
        kill(a->pid, SIGINT);
        assert_int_equal(wait_exit(a, 20000), 1);
        assert_true(has_event(a, "stopped cancelled"));
        assert_false(has_event(a, "work-end"));

        /* Not released: b leads only after the Lease expired. */
        expect_event(b, "started ", 15000);
        assert_holder("t-second", "b");
        reap_all();
}

/* A second signal during the pre-drain delay: the drain is skipped, but the
 * intake is still closed before the step-down reads the in-flight count and
 * releases the Lease, so no work can begin while the release is written. */
static void test_second_signal_during_delay_closes_intake(void **state) {
        struct opts oa = defaults("t-second-delay", "a");
        struct replica *a;
        char line[64];

        oa.delay_usec = 5 * KOC_USEC_PER_SEC;
        oa.budget_usec = 20 * KOC_USEC_PER_SEC;
        a = spawn(&oa);
        expect_event(a, "started ", 10000);
        expect_readyz(a, 200, 5000);

        kill(a->pid, SIGTERM);
        expect_readyz(a, 503, 5000);
        kill(a->pid, SIGINT);
        snprintf(line, sizeof line, "stopped released begin=%d", -ESHUTDOWN);
        expect_event(a, line, 10000);
        assert_int_equal(wait_exit(a, 10000), 1);
        assert_holder("t-second-delay", "");
        reap_all();
}

/* Forced by the budget while no leader-guarded work is in flight (a hook is
 * stuck): the Lease IS released, exit 1. */
static void test_forced_but_idle_releases(void **state) {
        struct opts oa = defaults("t-idle", "a");
        struct replica *a;

        oa.stuck_hook = true;
        oa.budget_usec = 1 * KOC_USEC_PER_SEC;
        a = spawn(&oa);
        expect_event(a, "started ", 10000);
        expect_readyz(a, 200, 5000);

        kill(a->pid, SIGTERM);
        expect_event(a, "hook-started", 5000);
        expect_event(a, "stopped released", 10000);
        assert_int_equal(wait_exit(a, 10000), 1);
        assert_holder("t-idle", "");
        reap_all();
}

/* Renewals fail for longer than the renew deadline: leadership is lost but
 * the process stands by and leads again once the API works; with
 * exit_on_loss it shuts down with exit code 1 instead. */
static void test_leader_loss(void **state) {
        struct opts oa = defaults("t-loss", "a"), oc = defaults("t-loss2", "c");
        struct replica *a, *c;
        int r;

        KOC_TEST_NEEDS_KOC_APISERVER(&api);

        oa.runnables = true;
        a = spawn(&oa);
        expect_event(a, "started ", 10000);
        expect_event(a, "run-start r2 ", 1000);
        r = koc_test_apiserver_fault(&api, "{\"resource\":\"leases\",\"verb\":\"update\","
                                           "\"error_rate\":1.0,\"error_code\":503}");
        assert_int_equal(r, 200);
        expect_event(a, "run-stop r1 renew-deadline-exceeded", 10000);
        expect_event(a, "stopped renew-deadline-exceeded", 1000);
        expect_readyz(a, 503, 5000);
        assert_true(kill(a->pid, 0) == 0);
        assert_int_equal(koc_test_apiserver_clear_faults(&api), 200);
        expect_event(a, "started ", 15000);
        expect_event(a, "run-start r1 ", 1000);
        expect_readyz(a, 200, 5000);
        kill(a->pid, SIGTERM);
        assert_int_equal(wait_exit(a, 10000), 0);

        oc.exit_on_loss = true;
        c = spawn(&oc);
        expect_event(c, "started ", 10000);
        r = koc_test_apiserver_fault(&api, "{\"resource\":\"leases\",\"verb\":\"update\","
                                           "\"error_rate\":1.0,\"error_code\":503}");
        assert_int_equal(r, 200);
        expect_event(c, "stopped renew-deadline-exceeded", 10000);
        assert_int_equal(wait_exit(c, 15000), 1);
        assert_int_equal(koc_test_apiserver_clear_faults(&api), 200);
        reap_all();
}

/* SIGTERM on a standby: it exits 0 without touching the Lease, and the
 * leader goes on leading. */
static void test_standby_exit(void **state) {
        struct opts oa = defaults("t-standby", "a"), ob = defaults("t-standby", "b");
        struct replica *a, *b;
        char renew[64];

        a = spawn(&oa);
        expect_event(a, "started ", 10000);
        b = spawn(&ob);
        expect_event(b, "leader a", 10000);

        kill(b->pid, SIGTERM);
        assert_int_equal(wait_exit(b, 10000), 0);
        assert_false(has_event(b, "started"));
        assert_false(has_event(b, "stopped"));

        lease_field("t-standby", "renewTime", renew, sizeof renew);
        expect_renewal("t-standby", renew, sizeof renew);
        assert_holder("t-standby", "a");
        assert_false(has_event(a, "stopped"));
        expect_readyz(a, 200, 5000);
        reap_all();
}

/* SIGTERM on a standby whose shutdown takes a while (a pre-drain delay):
 * once its shutdown has started it no longer competes, so when the leader
 * releases the Lease meanwhile, the dying standby does not take it (and start
 * leader-only work) but leaves it to a live replica. */
static void test_stopping_standby_does_not_take_over(void **state) {
        struct opts oa = defaults("t-stopping", "a"), ob = defaults("t-stopping", "b"),
                    oc = defaults("t-stopping", "c");
        struct replica *a, *b, *c;

        ob.runnables = true;
        ob.delay_usec = 3 * KOC_USEC_PER_SEC;
        a = spawn(&oa);
        expect_event(a, "started ", 10000);
        b = spawn(&ob);
        expect_event(b, "leader a", 10000);

        kill(b->pid, SIGTERM);
        expect_readyz(b, 503, 5000);
        /* The leader goes away cleanly while b is still in its delay. */
        kill(a->pid, SIGTERM);
        expect_event(a, "stopped released", 10000);
        assert_int_equal(wait_exit(a, 10000), 0);

        c = spawn(&oc);
        expect_event(c, "started ", 10000);
        assert_holder("t-stopping", "c");
        assert_false(has_event(b, "started"));
        assert_false(has_event(b, "run-start"));
        assert_int_equal(wait_exit(b, 10000), 0);
        assert_false(has_event(b, "started"));
        assert_false(has_event(b, "stopped"));
        assert_holder("t-stopping", "c");
        reap_all();
}

/* Leadership lost while the drain waits for work (renewals fail past the
 * renew deadline): the shutting-down replica does not lead again once the
 * API recovers, it leaves the Lease to a live replica, and exits 0 when its
 * work ends. */
static void test_loss_during_drain_does_not_lead_again(void **state) {
        struct opts oa = defaults("t-lossdrain", "a"), oc = defaults("t-lossdrain", "c");
        struct replica *a, *c;
        int r;

        KOC_TEST_NEEDS_KOC_APISERVER(&api);

        oa.work = true;
        a = spawn(&oa);
        expect_event(a, "started ", 10000);
        expect_anywhere(a, "work-begin", 5000);

        kill(a->pid, SIGTERM);
        expect_readyz(a, 503, 5000);
        r = koc_test_apiserver_fault(&api, "{\"resource\":\"leases\",\"verb\":\"update\","
                                           "\"error_rate\":1.0,\"error_code\":503}");
        assert_int_equal(r, 200);
        expect_event(a, "stopped renew-deadline-exceeded", 10000);
        assert_int_equal(koc_test_apiserver_clear_faults(&api), 200);

        /* a's old term expires; the live replica takes over, not a. */
        c = spawn(&oc);
        expect_event(c, "started ", 15000);
        assert_holder("t-lossdrain", "c");
        release_work(a);
        assert_int_equal(wait_exit(a, 10000), 0);
        /* One term only: the first "started" line is the one at the top. */
        assert_int_equal(find_line(a, "started ", (size_t)find_line(a, "started ", 0) + 1), -1);
        assert_holder("t-lossdrain", "c");
        reap_all();
}

/* Without leader election the replica leads alone at once (term 0), and the
 * drain still waits for its work. */
static void test_no_election(void **state) {
        struct opts oa = defaults("unused", "solo");
        struct replica *a;

        oa.leader_elect = false;
        oa.work = true;
        oa.runnables = true;
        a = spawn(&oa);
        expect_event(a, "started 0", 5000);
        expect_event(a, "run-start r1 0", 1000);
        expect_anywhere(a, "work-begin", 5000);
        expect_readyz(a, 200, 5000);
        kill(a->pid, SIGTERM);
        expect_readyz(a, 503, 5000);
        assert_false(has_event(a, "stopped"));
        release_work(a);
        expect_event(a, "work-end", 5000);
        expect_event(a, "run-stop r1 released", 5000);
        expect_event(a, "stopped released", 5000);
        assert_int_equal(wait_exit(a, 10000), 0);
        reap_all();
}

static int setup(void **state) {
        signal(SIGPIPE, SIG_IGN);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        return koc_test_apiserver_start(&api, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state) {
        reap_all();
        koc_test_apiserver_stop(&api);
        curl_global_cleanup();
        return 0;
}

static int each_teardown(void **state) {
        reap_all();
        (void)koc_test_apiserver_clear_faults(&api);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_drain_then_release, each_teardown),
                cmocka_unit_test_teardown(test_budget_exceeded, each_teardown),
                cmocka_unit_test_teardown(test_second_signal, each_teardown),
                cmocka_unit_test_teardown(test_second_signal_during_delay_closes_intake,
                                          each_teardown),
                cmocka_unit_test_teardown(test_forced_but_idle_releases, each_teardown),
                cmocka_unit_test_teardown(test_leader_loss, each_teardown),
                cmocka_unit_test_teardown(test_standby_exit, each_teardown),
                cmocka_unit_test_teardown(test_stopping_standby_does_not_take_over, each_teardown),
                cmocka_unit_test_teardown(test_loss_during_drain_does_not_lead_again,
                                          each_teardown),
                cmocka_unit_test_teardown(test_no_election, each_teardown),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

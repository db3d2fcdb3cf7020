/* SPDX-License-Identifier: Apache-2.0 */
/* Handles shared with worker threads: the client, the manager and the
 * leadership state handle are referenced and released from several threads
 * at once, and the state is read while the loop thread drops the elector.
 * Under ThreadSanitizer (the tsan label) a plain counter shows up as a data
 * race; under ASan and valgrind a lost or doubled release shows up as a leak
 * or a use after free.  Debug builds also check that a loop-only call from a
 * worker thread stops the program at the call, and the manager's work gate
 * is used from worker threads while the loop drains, and wakes the drain
 * from a worker thread when the last item ends. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "koc/koc.h"

#define N_THREADS 4
#define N_ROUNDS 2000

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

        snprintf(f->dir, sizeof f->dir, "/tmp/koc-threads-XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        snprintf(f->kubeconfig, sizeof f->kubeconfig, "%s/kubeconfig", f->dir);
        FILE *k = fopen(f->kubeconfig, "w");
        if (!k)
                return -1;
        /* Nothing here sends a request; the server is never contacted. */
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

/* --- references from worker threads ---------------------------------------- */

typedef struct refs_job {
        void *handle;
        void *(*ref)(void *);
        void *(*unref)(void *);
        atomic_bool *go;
} refs_job;

static void *refs_main(void *p) {
        refs_job *j = p;
        void *mine[64];

        while (!atomic_load(j->go))
                ;
        for (int round = 0; round < N_ROUNDS / 64; round++) {
                for (int i = 0; i < 64; i++)
                        mine[i] = j->ref(j->handle);
                for (int i = 0; i < 64; i++) {
                        assert_ptr_equal(mine[i], j->handle);
                        j->unref(mine[i]);
                }
        }
        return NULL;
}

static void hammer_refs(void *handle, void *(*ref)(void *), void *(*unref)(void *)) {
        pthread_t t[N_THREADS];
        atomic_bool go = false;
        refs_job j = {.handle = handle, .ref = ref, .unref = unref, .go = &go};

        for (int i = 0; i < N_THREADS; i++)
                assert_int_equal(pthread_create(&t[i], NULL, refs_main, &j), 0);
        atomic_store(&go, true);
        for (int i = 0; i < N_THREADS; i++)
                assert_int_equal(pthread_join(t[i], NULL), 0);
}

static void *client_ref(void *c) {
        return koc_client_ref(c);
}
static void *client_unref(void *c) {
        return koc_client_unref(c), c;
}

static void test_client_refs_from_threads(void **state) {
        fixture *f = *state;

        hammer_refs(f->client, client_ref, client_unref);
        /* The loop's reference still works: a loop-only call on the loop. */
        koc_client_set_default_timeout(f->client, 5 * KOC_USEC_PER_SEC);
        assert_ptr_equal(koc_client_get_event(f->client), f->event);
}

static void *manager_ref(void *m) {
        return koc_manager_ref(m);
}
static void *manager_unref(void *m) {
        return koc_manager_unref(m), m;
}

static void test_manager_refs_from_threads(void **state) {
        fixture *f = *state;
        koc_manager_config cfg;
        koc_manager *m = NULL;
        koc_error err = {0};

        koc_manager_config_init(&cfg);
        cfg.kubeconfig = f->kubeconfig;
        cfg.leader_elect = false;
        cfg.health_probe_bind_address = "0";
        cfg.metrics_bind_address = "0";
        cfg.handle_signals = false;
        assert_int_equal(koc_manager_new(f->event, &cfg, &m, &err), 0);
        hammer_refs(m, manager_ref, manager_unref);
        /* The last reference goes on the loop thread, which frees it (a
         * leak or a double free would show under ASan and valgrind). */
        assert_null(koc_manager_unref(m));
}

/* --- the manager's work gate from worker threads ------------------------------- */

typedef struct gate {
        koc_manager *m;
        atomic_uint done;    /* items finished, all workers */
        atomic_bool started; /* started_leading ran */
        int last[N_THREADS]; /* each worker's final koc_manager_work_begin() */
        unsigned in_flight_at_release;
} gate;

typedef struct gate_worker {
        gate *g;
        int index;
} gate_worker;

static void *gate_main(void *p) {
        gate_worker *w = p;
        int r;

        while ((r = koc_manager_work_begin(w->g->m)) != -ESHUTDOWN) {
                if (r == 0) {
                        atomic_fetch_add(&w->g->done, 1);
                        koc_manager_work_end(w->g->m);
                } else
                        sched_yield();
        }
        w->g->last[w->index] = r;
        return NULL;
}

static void gate_started(koc_manager *m, uint64_t term, void *userdata) {
        atomic_store(&((gate *)userdata)->started, true);
}

static void gate_stopped(koc_manager *m, koc_leader_reason reason, void *userdata) {
        /* The step-down comes after the drain: nothing is in flight. */
        ((gate *)userdata)->in_flight_at_release = koc_manager_in_flight(m);
}

/* Polls on the loop until the workers have done some work, then shuts down:
 * an outcome, not a time, decides. */
static int gate_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        gate *g = userdata;

        if (atomic_load(&g->done) >= 1000) {
                assert_int_equal(koc_manager_shutdown(g->m), 0);
                return 0;
        }
        assert_true(sd_event_source_set_time_relative(s, 1000) >= 0);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static void test_work_gate_from_threads(void **state) {
        fixture *f = *state;
        koc_manager_config cfg;
        koc_error err = {0};
        gate g = {0};
        gate_worker w[N_THREADS];
        pthread_t t[N_THREADS];
        sd_event_source *poll = NULL;

        koc_manager_config_init(&cfg);
        cfg.kubeconfig = f->kubeconfig;
        cfg.leader_elect = false;
        cfg.health_probe_bind_address = "0";
        cfg.metrics_bind_address = "0";
        cfg.handle_signals = false;
        assert_int_equal(koc_manager_new(f->event, &cfg, &g.m, &err), 0);
        assert_int_equal(koc_manager_set_callbacks(g.m,
                                                   &(koc_manager_callbacks){
                                                           .started_leading = gate_started,
                                                           .stopped_leading = gate_stopped,
                                                   },
                                                   &g, NULL),
                         0);
        for (int i = 0; i < N_THREADS; i++) {
                w[i] = (gate_worker){.g = &g, .index = i};
                assert_int_equal(pthread_create(&t[i], NULL, gate_main, &w[i]), 0);
        }
        assert_true(sd_event_add_time_relative(f->event, &poll, CLOCK_BOOTTIME, 1000, 0, gate_poll,
                                               &g) >= 0);
        assert_int_equal(koc_manager_run(g.m), 0);
        for (int i = 0; i < N_THREADS; i++) {
                assert_int_equal(pthread_join(t[i], NULL), 0);
                assert_int_equal(g.last[i], -ESHUTDOWN);
        }
        assert_true(atomic_load(&g.started));
        assert_true(atomic_load(&g.done) >= 1000);
        assert_int_equal(g.in_flight_at_release, 0);
        assert_int_equal(koc_manager_in_flight(g.m), 0);
        assert_int_equal(koc_manager_work_begin(g.m), -ESHUTDOWN);
        sd_event_source_unref(poll);
        koc_manager_unref(g.m);
}

/* The drain is woken by the worker that ends the last item: the wake-up
 * goes through the manager's mailbox from the worker's thread.  Without it
 * the wait would last the whole budget (20 s here). */
typedef struct late {
        koc_manager *m;
        pthread_t thread;
        atomic_bool holding; /* the worker holds its item */
        atomic_int bounced;  /* work_begin() refused after the intake closed */
        uint64_t shutdown_at;
} late;

static void *late_main(void *p) {
        late *l = p;
        int r;

        assert_int_equal(koc_manager_work_begin(l->m), 0);
        atomic_store(&l->holding, true);
        /* Bounce off the closed intake a few thousand times (each begin and
         * end pair brings the count to one and back while the drain waits),
         * then give the loop time to be waiting, then end the item. */
        while ((r = koc_manager_work_begin(l->m)) != -ESHUTDOWN) {
                if (r == 0)
                        koc_manager_work_end(l->m);
                sched_yield();
        }
        for (int i = 0; i < 5000; i++)
                if (koc_manager_work_begin(l->m) == -ESHUTDOWN)
                        atomic_fetch_add(&l->bounced, 1);
        usleep(100 * 1000);
        koc_manager_work_end(l->m);
        return NULL;
}

static void late_started(koc_manager *m, uint64_t term, void *userdata) {
        late *l = userdata;

        assert_int_equal(pthread_create(&l->thread, NULL, late_main, l), 0);
}

static int late_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        late *l = userdata;

        if (atomic_load(&l->holding)) {
                l->shutdown_at = koc_now_boottime_usec();
                assert_int_equal(koc_manager_shutdown(l->m), 0);
                return 0;
        }
        assert_true(sd_event_source_set_time_relative(s, 1000) >= 0);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static void test_drain_woken_from_worker(void **state) {
        fixture *f = *state;
        koc_manager_config cfg;
        koc_error err = {0};
        late l = {0};
        sd_event_source *poll = NULL;

        koc_manager_config_init(&cfg);
        cfg.kubeconfig = f->kubeconfig;
        cfg.leader_elect = false;
        cfg.health_probe_bind_address = "0";
        cfg.metrics_bind_address = "0";
        cfg.handle_signals = false;
        cfg.shutdown_budget_usec = 20 * KOC_USEC_PER_SEC;
        assert_int_equal(koc_manager_new(f->event, &cfg, &l.m, &err), 0);
        assert_int_equal(
                koc_manager_set_callbacks(
                        l.m, &(koc_manager_callbacks){.started_leading = late_started}, &l, NULL),
                0);
        assert_true(sd_event_add_time_relative(f->event, &poll, CLOCK_BOOTTIME, 1000, 0, late_poll,
                                               &l) >= 0);
        assert_int_equal(koc_manager_run(l.m), 0);
        uint64_t took = koc_now_boottime_usec() - l.shutdown_at;
        assert_int_equal(pthread_join(l.thread, NULL), 0);
        assert_int_equal(atomic_load(&l.bounced), 5000);
        assert_int_equal(koc_manager_in_flight(l.m), 0);
        /* Woken when the item ended (100 ms after the intake closed), not
         * at the end of the budget. */
        assert_true(took < 10 * KOC_USEC_PER_SEC);
        sd_event_source_unref(poll);
        koc_manager_unref(l.m);
}

/* --- the leadership state read from threads ---------------------------------- */

typedef struct reader {
        koc_leader_state *state;
        atomic_bool *stop;
        atomic_ulong reads; /* the main thread watches it */
        bool ever_leader;
} reader;

static void *reader_main(void *p) {
        reader *r = p;
        char holder[64];
        uint64_t transitions;

        while (!atomic_load(r->stop)) {
                koc_leader_state *mine = koc_leader_state_ref(r->state);
                if (koc_leader_state_is_leader(mine))
                        r->ever_leader = true;
                if (koc_leader_state_term(mine, &transitions, holder, sizeof holder) != 0)
                        r->ever_leader = true;
                koc_leader_state_unref(mine);
                atomic_fetch_add(&r->reads, 1);
        }
        return NULL;
}

static void test_state_read_from_threads(void **state) {
        fixture *f = *state;
        koc_leader_config *cfg = NULL;
        koc_leader *l = NULL;
        koc_error err = {0};
        pthread_t t[N_THREADS];
        reader readers[N_THREADS];
        atomic_bool stop = false;

        assert_int_equal(koc_leader_config_new("ns", "threads", &cfg), 0);
        assert_int_equal(koc_leader_config_set_identity(cfg, "a"), 0);
        assert_int_equal(koc_leader_new(f->client, cfg, &l, &err), 0);
        koc_leader_state *s = koc_leader_ref_state(l);
        for (int i = 0; i < N_THREADS; i++) {
                readers[i].state = s;
                readers[i].stop = &stop;
                atomic_init(&readers[i].reads, 0);
                readers[i].ever_leader = false;
                assert_int_equal(pthread_create(&t[i], NULL, reader_main, &readers[i]), 0);
        }
        /* The loop thread drops the elector while the readers run: the
         * state outlives it and keeps reading false. */
        while (atomic_load(&readers[0].reads) < 100)
                sched_yield();
        l = koc_leader_unref(l);
        unsigned long seen = atomic_load(&readers[0].reads);
        while (atomic_load(&readers[0].reads) < seen + 100)
                sched_yield();
        atomic_store(&stop, true);
        for (int i = 0; i < N_THREADS; i++) {
                assert_int_equal(pthread_join(t[i], NULL), 0);
                assert_false(readers[i].ever_leader);
        }
        assert_false(koc_leader_state_is_leader(s));
        koc_leader_state_unref(s);
        koc_leader_config_free(cfg);
}

/* --- loop-only calls from a worker ----------------------------------------------- */

#ifndef NDEBUG
static void *off_loop_main(void *p) {
        koc_client_set_default_timeout(p, KOC_USEC_PER_SEC);
        return NULL;
}

static void test_loop_only_call_off_loop_aborts(void **state) {
        fixture *f = *state;
        int status = 0;

        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                pthread_t t;
                /* The assertion's message would look like a failure in the
                 * log; it is the expected outcome here. */
                if (!freopen("/dev/null", "w", stderr))
                        _exit(3);
                if (pthread_create(&t, NULL, off_loop_main, f->client) != 0)
                        _exit(2);
                pthread_join(t, NULL);
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGABRT);
}
#endif

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_client_refs_from_threads, setup, teardown),
                cmocka_unit_test_setup_teardown(test_manager_refs_from_threads, setup, teardown),
                cmocka_unit_test_setup_teardown(test_state_read_from_threads, setup, teardown),
                cmocka_unit_test_setup_teardown(test_work_gate_from_threads, setup, teardown),
                cmocka_unit_test_setup_teardown(test_drain_woken_from_worker, setup, teardown),
#ifndef NDEBUG
                cmocka_unit_test_setup_teardown(test_loop_only_call_off_loop_aborts, setup,
                                                teardown),
#endif
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

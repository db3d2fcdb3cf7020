/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A follower's Lease watch on a connection whose path died, over HTTP/1.1
 * (koc-apiserver speaks nothing else), through a loopback TCP proxy in front
 * of one candidate.  The proxy partitions: it stops forwarding and keeps
 * every socket open (bytes wait in the kernel buffers, as in a real
 * partition), and new connections are black-holed too; after the heal it
 * forwards new connections only, and the old ones stay black-holed.  No
 * HTTP/2 PING, no TCP keepalive notices such a connection.
 *
 * The old leader "a" behind the proxy loses the Lease in the partition and
 * "b" (direct) takes it.  After the heal "b" releases the Lease: "a" must
 * take it within 250 ms of the release, because its watch, silent while "b"
 * renewed, was restarted on a new connection.  Without the restart "a"
 * follows only by its expiry timer, a lease duration after its last read.
 *
 * Durations are scaled down (lease 2 s, renew deadline 1.5 s, retry period
 * 200 ms) and four times as long under valgrind (KOC_UNDER_VALGRIND), as in
 * test-leader.c.  Every wait is bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness/apiserver.h"
#include "koc/client.h"
#include "koc/config.h"
#include "koc/leader.h"
#include "koc/log.h"
#include "koc/metrics.h"
#include "koc/time.h"
#include "leader/leader-internal.h"

#define MS KOC_USEC_PER_MSEC
#define SEC KOC_USEC_PER_SEC
#define WAIT_MAX (20 * SEC)
#define MAX_PAIRS 128

static uint64_t T(uint64_t usec) {
        const char *v = getenv("KOC_UNDER_VALGRIND");
        return v && *v ? 4 * usec : usec;
}

/* --- the partitioning proxy ---------------------------------------------------- */

enum proxy_mode { PROXY_PASS, PROXY_PARTITION };

typedef struct proxy {
        int listen_fd, wake[2];
        int upstream_port, port;
        pthread_t thread;
        struct {
                int a, b; /* client side, server side; -1: free slot */
                bool frozen;
        } pairs[MAX_PAIRS];
        /* PARTITION freezes every connection open and every new one; PASS
         * forwards new connections, and frozen ones stay frozen. */
        _Atomic int mode;
        atomic_int accepted;
} proxy;

static int connect_upstream(int port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        return fd;
}

static void pair_close(proxy *p, int i) {
        close(p->pairs[i].a);
        close(p->pairs[i].b);
        p->pairs[i].a = p->pairs[i].b = -1;
}

static void proxy_accept(proxy *p, bool partitioned) {
        int a = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (a < 0)
                return;
        int b = connect_upstream(p->upstream_port);
        for (int i = 0; b >= 0 && i < MAX_PAIRS; i++)
                if (p->pairs[i].a < 0) {
                        p->pairs[i].a = a;
                        p->pairs[i].b = b;
                        p->pairs[i].frozen = partitioned;
                        atomic_fetch_add(&p->accepted, 1);
                        return;
                }
        close(a);
        if (b >= 0)
                close(b);
}

static void *proxy_main(void *userdata) {
        proxy *p = userdata;
        for (;;) {
                struct pollfd fds[2 + 2 * MAX_PAIRS];
                bool partitioned = atomic_load(&p->mode) == PROXY_PARTITION;
                fds[0] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
                fds[1] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
                for (int i = 0; i < MAX_PAIRS; i++) {
                        if (partitioned && p->pairs[i].a >= 0)
                                p->pairs[i].frozen = true;
                        /* A frozen pair is read no more (whatever is sent
                         * waits in the buffers); only the client's close is
                         * noticed, to free the slot. */
                        bool frozen = p->pairs[i].frozen;
                        fds[2 + 2 * i] = (struct pollfd){
                                .fd = p->pairs[i].a, .events = frozen ? POLLRDHUP : POLLIN};
                        fds[3 + 2 * i] = (struct pollfd){.fd = frozen ? -1 : p->pairs[i].b,
                                                         .events = POLLIN};
                }
                if (poll(fds, 2 + 2 * MAX_PAIRS, 20) < 0)
                        continue;
                if (fds[0].revents)
                        return NULL;
                for (int i = 0; i < MAX_PAIRS; i++) {
                        if (p->pairs[i].a < 0)
                                continue;
                        if (p->pairs[i].frozen) {
                                if (fds[2 + 2 * i].revents & (POLLRDHUP | POLLHUP | POLLERR))
                                        pair_close(p, i);
                                continue;
                        }
                        for (int side = 0; side < 2 && p->pairs[i].a >= 0; side++) {
                                if (!fds[2 + 2 * i + side].revents)
                                        continue;
                                char buf[16384];
                                ssize_t k = read(fds[2 + 2 * i + side].fd, buf, sizeof buf);
                                int to = side == 0 ? p->pairs[i].b : p->pairs[i].a;
                                if (k <= 0 || write(to, buf, (size_t)k) != k)
                                        pair_close(p, i);
                        }
                }
                if (fds[1].revents & POLLIN)
                        proxy_accept(p, partitioned);
        }
}

static void proxy_start(proxy *p, int upstream_port) {
        memset(p, 0, sizeof *p);
        for (int i = 0; i < MAX_PAIRS; i++)
                p->pairs[i].a = p->pairs[i].b = -1;
        p->upstream_port = upstream_port;
        p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(p->listen_fd >= 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
        assert_int_equal(listen(p->listen_fd, 64), 0);
        assert_int_equal(getsockname(p->listen_fd, (struct sockaddr *)&a, &len), 0);
        p->port = ntohs(a.sin_port);
        assert_int_equal(pipe(p->wake), 0);
        assert_int_equal(pthread_create(&p->thread, NULL, proxy_main, p), 0);
}

static void proxy_stop(proxy *p) {
        assert_int_equal(write(p->wake[1], "x", 1), 1);
        pthread_join(p->thread, NULL);
        for (int i = 0; i < MAX_PAIRS; i++)
                if (p->pairs[i].a >= 0)
                        pair_close(p, i);
        close(p->listen_fd);
        close(p->wake[0]);
        close(p->wake[1]);
}

/* --- the world ------------------------------------------------------------------- */

typedef struct candidate {
        char id[8];
        koc_client *client;
        koc_leader *leader;
        int n_started, n_stopped, n_done;
        uint64_t started_at;
        char holder[64];
} candidate;

typedef struct world {
        koc_test_apiserver server;
        proxy proxy;
        sd_event *event;
        koc_cluster_config *direct, *proxied;
        candidate a, b;
} world;

static world *W;

static void on_started(koc_leader *l, uint64_t term, void *ud) {
        candidate *c = ud;
        c->n_started++;
        c->started_at = koc_now_boottime_usec();
}

static void on_stopped(koc_leader *l, koc_leader_reason reason, void *ud) {
        ((candidate *)ud)->n_stopped++;
}

static void on_new_leader(koc_leader *l, const char *identity, void *ud) {
        candidate *c = ud;
        snprintf(c->holder, sizeof c->holder, "%s", identity);
}

static void on_done(koc_leader *l, int result, void *ud) {
        assert_int_equal(result, 0);
        ((candidate *)ud)->n_done++;
}

static void add_candidate(candidate *c, const char *id, koc_cluster_config *cluster) {
        koc_leader_config *cfg = NULL;
        koc_error err = {0};
        memset(c, 0, sizeof *c);
        snprintf(c->id, sizeof c->id, "%s", id);
        assert_int_equal(koc_client_new(W->event, cluster, &c->client), 0);
        assert_int_equal(koc_leader_config_new("default", "partition-lease", &cfg), 0);
        assert_int_equal(koc_leader_config_set_identity(cfg, id), 0);
        koc_leader_config_set_lease_duration(cfg, T(2 * SEC));
        koc_leader_config_set_renew_deadline(cfg, T(1500 * MS));
        koc_leader_config_set_retry_period(cfg, T(200 * MS));
        assert_int_equal(koc_leader_new(c->client, cfg, &c->leader, &err), 0);
        koc_leader_config_free(cfg);
        koc_leader_set_callbacks(c->leader,
                                 &(koc_leader_callbacks){.started_leading = on_started,
                                                         .stopped_leading = on_stopped,
                                                         .new_leader = on_new_leader},
                                 c, NULL);
        assert_int_equal(koc_leader_start(c->leader), 0);
}

static void drop_candidate(candidate *c) {
        if (!c->leader)
                return;
        koc_leader_set_callbacks(c->leader, NULL, NULL, NULL);
        c->leader = koc_leader_unref(c->leader);
        c->client = koc_client_unref(c->client);
}

static bool run_until(bool (*pred)(void *), void *ud) {
        uint64_t end = koc_now_boottime_usec() + T(WAIT_MAX);
        while (!pred(ud)) {
                if (koc_now_boottime_usec() >= end)
                        return false;
                assert_true(sd_event_run(W->event, 20 * MS) >= 0);
        }
        return true;
}

static void run_for(uint64_t usec) {
        uint64_t end = koc_now_boottime_usec() + usec;
        for (;;) {
                uint64_t now = koc_now_boottime_usec();
                if (now >= end)
                        return;
                assert_true(sd_event_run(W->event, end - now) >= 0);
        }
}

static bool leads(void *ud) {
        candidate *c = ud;
        return c->leader && koc_leader_is_leader(c->leader);
}

static bool has_stopped(void *ud) {
        return ((candidate *)ud)->n_stopped > 0;
}

static bool is_done(void *ud) {
        return ((candidate *)ud)->n_done > 0;
}

/* The kubeconfig koc-apiserver wrote, with the server's port replaced by
 * the proxy's: the certificate names 127.0.0.1, whatever the port. */
static koc_cluster_config *proxied_config(void) {
        char path[400], old[64], new[64];
        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        FILE *f = fopen(W->server.kubeconfig, "r");
        assert_non_null(f);
        char text[65536];
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        const char *port = strrchr(W->server.url, ':');
        assert_non_null(port);
        snprintf(old, sizeof old, "127.0.0.1%s", port);
        snprintf(new, sizeof new, "127.0.0.1:%d", W->proxy.port);
        char *at = strstr(text, old);
        assert_non_null(at);
        snprintf(path, sizeof path, "%s/proxied.kubeconfig", W->server.dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f, "%.*s%s%s", (int)(at - text), text, new, at + strlen(old));
        fclose(f);
        if (koc_cluster_config_from_kubeconfig(path, NULL, &cfg, &err) < 0)
                fail_msg("%s", err.message);
        return cfg;
}

static int setup(void **state) {
        static world w;
        koc_error err = {0};
        memset(&w, 0, sizeof w);
        W = &w;
        if (koc_test_apiserver_start(&w.server, NULL) < 0)
                return -1;
        if (sd_event_new(&w.event) < 0)
                return -1;
        if (koc_cluster_config_from_kubeconfig(w.server.kubeconfig, NULL, &w.direct, &err) < 0) {
                fprintf(stderr, "%s\n", err.message);
                return -1;
        }
        const char *port = strrchr(w.server.url, ':');
        proxy_start(&w.proxy, port ? atoi(port + 1) : 0);
        w.proxied = proxied_config();
        *state = &w;
        return 0;
}

static int teardown(void **state) {
        drop_candidate(&W->a);
        drop_candidate(&W->b);
        koc_cluster_config_unref(W->direct);
        koc_cluster_config_unref(W->proxied);
        sd_event_unref(W->event);
        proxy_stop(&W->proxy);
        koc_test_apiserver_stop(&W->server);
        return 0;
}

/* --- fresh connections ------------------------------------------------------------- */

static void on_answer(koc_client *c, koc_response *r, void *ud) {
        *(long *)ud = r->error ? r->error : r->status;
}

static long get_leases(koc_client *c) {
        long status = 0;
        koc_request *req = NULL;
        assert_int_equal(koc_client_request(c,
                                            &(koc_request_spec){
                                                    .method = "GET",
                                                    .path = "/apis/coordination.k8s.io/v1/"
                                                            "namespaces/default/leases",
                                            },
                                            on_answer, &status, &req),
                         0);
        uint64_t end = koc_now_boottime_usec() + T(WAIT_MAX);
        while (status == 0 && koc_now_boottime_usec() < end)
                assert_true(sd_event_run(W->event, 20 * MS) >= 0);
        return status;
}

static void on_watch_event(koc_watch *w, koc_watch_event *e, void *ud) {
}

static koc_watch *watch_leases(koc_client *c, bool fresh) {
        koc_watch *w = NULL;
        assert_int_equal(koc_client_watch(c,
                                          &(koc_watch_spec){
                                                  .path = "/apis/coordination.k8s.io/v1/"
                                                          "namespaces/default/leases",
                                                  .fresh_connection = fresh,
                                          },
                                          on_watch_event, NULL, NULL, &w),
                         0);
        return w;
}

static bool accepted_3(void *ud) {
        return atomic_load(&W->proxy.accepted) >= 3;
}

/* A watch takes an idle connection from the pool unless it asks for a
 * fresh one. */
static void test_fresh_connection_is_not_pooled(void **state) {
        koc_client *c = NULL;
        assert_int_equal(koc_client_new(W->event, W->proxied, &c), 0);
        assert_int_equal(get_leases(c), 200);
        assert_int_equal(get_leases(c), 200);
        assert_int_equal(atomic_load(&W->proxy.accepted), 1); /* pooled */

        koc_watch *w = watch_leases(c, false);
        run_for(T(300 * MS));
        assert_int_equal(atomic_load(&W->proxy.accepted), 1); /* the idle one, reused */
        koc_watch_stop(w); /* closes it: an HTTP/1.1 transfer cut short */

        assert_int_equal(get_leases(c), 200);
        assert_int_equal(atomic_load(&W->proxy.accepted), 2);
        w = watch_leases(c, true);
        assert_true(run_until(accepted_3, NULL));
        assert_int_equal(get_leases(c), 200); /* the idle one is still there */
        assert_int_equal(atomic_load(&W->proxy.accepted), 3);
        koc_watch_stop(w);
        koc_client_unref(c);
}

/* --- the partition ----------------------------------------------------------------- */

static bool b_follows_a(void *ud) {
        return strcmp(W->b.holder, "a") == 0;
}

static bool a_follows_b(void *ud) {
        return strcmp(W->a.holder, "b") == 0;
}

/* The instant "a" would act at by its expiry timer is at least a second
 * away: a release now is seen only through the watch. */
static bool a_expiry_far(void *ud) {
        const leader_fsm *f = koc__leader_get_fsm(W->a.leader);
        return a_follows_b(NULL) && f->state == LEADER_FSM_STANDBY &&
               f->act_at > koc_now_boottime_usec() + T(1 * SEC);
}

static void test_old_leader_takes_release_after_heal(void **state) {
        candidate *a = &W->a, *b = &W->b;
        add_candidate(a, "a", W->proxied);
        assert_true(run_until(leads, a));
        add_candidate(b, "b", W->direct);
        assert_true(run_until(b_follows_a, NULL));
        run_for(T(600 * MS)); /* a few renewals on both watches */
        assert_true(leads(a));
        assert_int_equal(b->n_started, 0);

        /* Partition: "a" is cut off, sockets and all. */
        atomic_store(&W->proxy.mode, PROXY_PARTITION);
        assert_true(run_until(has_stopped, a));
        assert_true(run_until(leads, b));
        assert_false(leads(a));

        /* Heal: new connections pass, the old ones stay black-holed.  The
         * issue's "50 s after the heal", scaled down. */
        atomic_store(&W->proxy.mode, PROXY_PASS);
        run_for(T(3 * SEC));
        assert_true(run_until(a_follows_b, NULL));
        assert_true(leads(b));
        assert_true(run_until(a_expiry_far, NULL));

        /* "b" steps down: "a" must take the released Lease at once. */
        uint64_t released_at = koc_now_boottime_usec();
        assert_int_equal(koc_leader_step_down(b->leader, on_done, b), 0);
        assert_true(run_until(is_done, b));
        assert_true(run_until(leads, a));
        uint64_t took = a->started_at - released_at;
        fprintf(stderr, "a took the released lease %.1f ms after the release (bound %.0f ms)\n",
                (double)took / MS, (double)T(250 * MS) / MS);
        assert_true(took < T(250 * MS));
        assert_int_equal(a->n_started, 2);
        assert_true(koc__leader_get_fsm(a->leader)->n_watch_restarts > 0);
}

static char captured[16384];

static void capture_log(int level, const char *component, const char *message, void *ud) {
        size_t n = strlen(captured);
        if (level == KOC_LOG_WARN)
                snprintf(captured + n, sizeof captured - n, "%s: %s\n", component, message);
}

/* A follower cut off for a second and healed: its watch is restarted, the
 * restart is said at warn and counted, the follower follows again through
 * the new connection, and nothing else happens. */
static void test_restart_is_said_and_counted(void **state) {
        candidate *a = &W->a, *b = &W->b;
        koc_metrics *m = NULL;
        captured[0] = '\0';
        koc_log_set_level(KOC_LOG_INFO); /* the default, whatever KOC_LOG_LEVEL says */
        koc_log_set_handler(capture_log, NULL, NULL);
        add_candidate(b, "b", W->direct);
        assert_true(run_until(leads, b));
        add_candidate(a, "a", W->proxied);
        assert_int_equal(koc_metrics_new(&m), 0);
        assert_int_equal(koc_leader_register_metrics(a->leader, m), 0);
        assert_true(run_until(a_follows_b, NULL));
        run_for(T(600 * MS));
        atomic_store(&W->proxy.mode, PROXY_PARTITION);
        run_for(T(1 * SEC));
        atomic_store(&W->proxy.mode, PROXY_PASS);
        run_for(T(3 * SEC));
        koc_log_set_handler(NULL, NULL, NULL);
        assert_true(leads(b));
        assert_int_equal(a->n_started, 0);
        /* b's renewals (every 200 ms) reach a again. */
        assert_true(koc_now_boottime_usec() - koc__leader_get_fsm(a->leader)->observed_at <
                    T(1 * SEC));
        char *out = NULL;
        size_t len = 0;
        assert_int_equal(koc_metrics_render(m, &out, &len), 0);
        static const char series[] =
                "leader_election_watch_restarts_total{name=\"partition-lease\"} ";
        const char *s = strstr(out, series);
        assert_non_null(s);
        assert_true(atoi(s + strlen(series)) >= 1);
        free(out);
        koc_metrics_unref(m);
        assert_non_null(strstr(captured, "leader: lease=default/partition-lease: no renewal seen "
                                         "for "));
        assert_non_null(strstr(captured, " ms while held by b; restarting the watch on a new "
                                         "connection"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_fresh_connection_is_not_pooled, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_old_leader_takes_release_after_heal, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_restart_is_said_and_counted, setup,
                                                teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The probes server under 1,000 slow and idle clients (slowloris): half send
 * a request line and then one header line a second, never finishing, half
 * send nothing; every connection the server closes is opened again (at most
 * 200 a second, after a burst of 1,000).  Meanwhile a kubelet-like client
 * opens a new connection for each of 30 probes (/livez and /readyz in turn):
 * every one must answer 200 within 1 s.  Once from the kubelet's own address
 * (127.0.0.1), once from 50 other loopback addresses, and once against a
 * leading manager, whose Lease must keep renewing meanwhile. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "harness/apiserver.h"
#include "koc/log.h"
#include "koc/manager.h"
#include "koc/probes.h"

#define N_SLOW 1000
#define OPEN_RATE 200 /* reconnections per second after the first burst */
#define N_PROBES 30
#define ATTACK_MAX_MS 60000 /* the attacker's own bound */

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- the server ------------------------------------------------------------- */

typedef struct server {
        sd_event *event;
        koc_probes *probes;
        int stop_fd;
        pthread_t thread;
        uint16_t port;
} server;

static int on_stop(sd_event_source *s, int fd, uint32_t revents, void *ud) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void *loop_thread(void *ud) {
        server *srv = ud;
        sd_event_loop(srv->event);
        return NULL;
}

static int check_ok(char *why, size_t size, void *ud) {
        return 0;
}

/* The probes server with its defaults, as a manager starts it. */
static void server_start(server *srv) {
        memset(srv, 0, sizeof(*srv));
        assert_int_equal(sd_event_new(&srv->event), 0);
        assert_int_equal(koc_probes_new(srv->event, NULL, &srv->probes), 0);
        assert_int_equal(koc_probes_add_ready_check(srv->probes, "leader", check_ok, NULL, NULL),
                         0);
        assert_int_equal(koc_probes_listen(srv->probes, "127.0.0.1:0", KOC_PROBES_HEALTH), 0);
        assert_int_equal(koc_probes_get_port(srv->probes, KOC_PROBES_HEALTH, &srv->port), 0);
        srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(srv->stop_fd >= 0);
        assert_int_equal(sd_event_add_io(srv->event, NULL, srv->stop_fd, EPOLLIN, on_stop, srv),
                         0);
        assert_int_equal(pthread_create(&srv->thread, NULL, loop_thread, srv), 0);
}

static void server_stop(server *srv) {
        uint64_t one = 1;
        assert_int_equal(write(srv->stop_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
        pthread_join(srv->thread, NULL);
        koc_probes_unref(srv->probes);
        sd_event_unref(srv->event);
        close(srv->stop_fd);
}

/* --- the slow clients ------------------------------------------------------- */

typedef struct slot {
        int fd;
        bool connected;
        bool trickle;
        unsigned sent;
        uint64_t next_send;
} slot;

typedef struct attacker {
        uint16_t port;
        unsigned n_addrs; /* 0: all from 127.0.0.1; n: 127.0.0.2 .. 127.0.0.(n+1) */
        atomic_bool stop;
        pthread_t thread;
        slot slots[N_SLOW];
        atomic_uint n_connected;
        atomic_ulong n_opened;
        atomic_ulong n_closed; /* by the server */
} attacker;

static void slot_close(slot *s) {
        close(s->fd);
        s->fd = -1;
        s->connected = false;
        s->sent = 0;
}

static bool slot_open(attacker *a, size_t i) {
        slot *s = &a->slots[i];
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        int one = 1;
        (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in src = { .sin_family = AF_INET };
        src.sin_addr.s_addr = htonl(a->n_addrs ? 0x7f000002u + (uint32_t)(i % a->n_addrs)
                                               : INADDR_LOOPBACK);
        struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(a->port),
                                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
            (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS)) {
                close(fd);
                return false;
        }
        s->fd = fd;
        s->connected = false;
        s->trickle = i % 2 == 0;
        s->sent = 0;
        s->next_send = 0;
        atomic_fetch_add(&a->n_opened, 1);
        return true;
}

/* The next piece a trickling client sends: the request line, then one header
 * line a second; the blank line that would end the request never comes. */
static void slot_trickle(slot *s, uint64_t now) {
        static const char line[] = "GET /livez HTTP/1.1\r\n";
        static const char header[] = "X-Slow: a\r\n";
        if (!s->trickle || now < s->next_send)
                return;
        const char *piece = s->sent == 0 ? line : header;
        if (send(s->fd, piece, strlen(piece), MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
                slot_close(s);
                return;
        }
        s->sent++;
        s->next_send = now + 1000;
}

static void *attack_thread(void *ud) {
        attacker *a = ud;
        static struct pollfd pfd[N_SLOW];
        static size_t idx[N_SLOW];
        uint64_t start = now_ms(), last = start;
        double tokens = N_SLOW; /* the first burst */

        while (!atomic_load(&a->stop) && now_ms() - start < ATTACK_MAX_MS) {
                uint64_t now = now_ms();
                tokens += (double)(now - last) * OPEN_RATE / 1000.0;
                if (tokens > N_SLOW)
                        tokens = N_SLOW;
                last = now;
                for (size_t i = 0; i < N_SLOW && tokens >= 1; i++)
                        if (a->slots[i].fd < 0 && slot_open(a, i))
                                tokens -= 1;

                size_t n = 0;
                unsigned connected = 0;
                for (size_t i = 0; i < N_SLOW; i++) {
                        slot *s = &a->slots[i];
                        if (s->fd < 0)
                                continue;
                        if (s->connected) {
                                connected++;
                                slot_trickle(s, now);
                                if (s->fd < 0)
                                        continue;
                        }
                        pfd[n] = (struct pollfd){ .fd = s->fd,
                                                  .events = s->connected ? POLLIN : POLLOUT };
                        idx[n++] = i;
                }
                atomic_store(&a->n_connected, connected);
                int r = poll(pfd, n, 20);
                if (r <= 0)
                        continue;
                for (size_t k = 0; k < n; k++) {
                        slot *s = &a->slots[idx[k]];
                        if (!pfd[k].revents)
                                continue;
                        if (!s->connected) {
                                int err = 0;
                                socklen_t len = sizeof(err);
                                getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                                if (err)
                                        slot_close(s);
                                else
                                        s->connected = true;
                                continue;
                        }
                        char buf[512];
                        ssize_t got = read(s->fd, buf, sizeof(buf));
                        if (got == 0 || (got < 0 && errno != EAGAIN)) {
                                atomic_fetch_add(&a->n_closed, 1);
                                slot_close(s);
                        }
                }
        }
        for (size_t i = 0; i < N_SLOW; i++)
                if (a->slots[i].fd >= 0)
                        slot_close(&a->slots[i]);
        return NULL;
}

static attacker *attack_start(uint16_t port, unsigned n_addrs) {
        attacker *a = calloc(1, sizeof(*a));
        assert_non_null(a);
        a->port = port;
        a->n_addrs = n_addrs;
        for (size_t i = 0; i < N_SLOW; i++)
                a->slots[i].fd = -1;
        assert_int_equal(pthread_create(&a->thread, NULL, attack_thread, a), 0);
        return a;
}

static void attack_stop(attacker *a) {
        atomic_store(&a->stop, true);
        pthread_join(a->thread, NULL);
        free(a);
}

/* --- the kubelet ------------------------------------------------------------ */

static size_t discard(char *data, size_t size, size_t n, void *ud) {
        return size * n;
}

/* One probe on a new connection from 127.0.0.1, as the kubelet does (it
 * disables keep-alive); returns the HTTP status, 0 when none came within
 * timeout_ms. */
static long probe(uint16_t port, const char *path, long timeout_ms, uint64_t *ret_ms) {
        char url[128];
        snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
        CURL *c = curl_easy_init();
        assert_non_null(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        uint64_t start = now_ms();
        long status = 0;
        if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        *ret_ms = now_ms() - start;
        curl_easy_cleanup(c);
        return status;
}

/* Called between probes (every ~100 ms) while the attack runs. */
typedef void (*sampler)(void *userdata);

static void raise_fd_limit(void) {
        /* 1,000 client sockets, 256 server ones, curl's. */
        struct rlimit rl;
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
        }
        if (rl.rlim_cur < N_SLOW + 512) {
                fprintf(stderr, "skipped: the open-files limit (%llu) is below %d\n",
                        (unsigned long long)rl.rlim_cur, N_SLOW + 512);
                skip();
        }
}

/* 1,000 slow clients against the probes server on `port`, from 127.0.0.1
 * (n_addrs 0) or from n_addrs other addresses, while 30 probes are sent. */
static void attack_and_probe(uint16_t port, unsigned n_addrs, sampler sample, void *userdata) {
        bool slow = getenv("KOC_UNDER_VALGRIND") != NULL;
        long timeout_ms = slow ? 10000 : 1000;

        attacker *a = attack_start(port, n_addrs);

        /* The burst is out and the slow clients hold the server. */
        uint64_t deadline = now_ms() + (slow ? 30000 : 10000);
        while (atomic_load(&a->n_opened) < N_SLOW && now_ms() < deadline)
                usleep(10000);
        assert_true(atomic_load(&a->n_opened) >= N_SLOW);
        /* Until the server has taken the burst from its listen queue (under
         * valgrind it runs some twenty times slower, and so does the test's
         * own client between its connect and its request). */
        usleep((slow ? 6000 : 1500) * 1000);

        unsigned ok = 0;
        uint64_t worst = 0;
        for (int i = 0; i < N_PROBES; i++) {
                uint64_t ms;
                const char *path = i % 2 ? "/readyz" : "/livez";
                long status = probe(port, path, timeout_ms, &ms);
                if (status == 200)
                        ok++;
                else
                        fprintf(stderr, "probe %d %s: status %ld after %llu ms\n", i, path,
                                status, (unsigned long long)ms);
                if (ms > worst)
                        worst = ms;
                usleep(100 * 1000);
                if (sample)
                        sample(userdata);
        }
        unsigned long opened = atomic_load(&a->n_opened), closed = atomic_load(&a->n_closed);
        unsigned connected = atomic_load(&a->n_connected);
        attack_stop(a);
        fprintf(stderr,
                "%s: %u/%d probes answered 200 within %ld ms (slowest %llu ms); slow clients: "
                "%lu connections opened, %lu closed by the server, %u connected at the end\n",
                n_addrs ? "50 addresses" : "one address", ok, N_PROBES, timeout_ms,
                (unsigned long long)worst, opened, closed, connected);
        assert_int_equal(ok, N_PROBES);
        /* The attack was real: the server had to close slow clients. */
        assert_true(closed > 0);
}

static void run_attack(unsigned n_addrs) {
        server srv;
        raise_fd_limit();
        server_start(&srv);
        attack_and_probe(srv.port, n_addrs, NULL, NULL);
        server_stop(&srv);
}

/* The slow clients share the kubelet's address. */
static void test_slow_clients_one_address(void **state) {
        run_attack(0);
}

/* The slow clients come from 50 other addresses, 20 each. */
static void test_slow_clients_many_addresses(void **state) {
        run_attack(50);
}

/* --- a manager under the same attack ------------------------------------------ */

typedef struct leading {
        koc_manager_config cfg;
        koc_manager *m;
        atomic_bool ready; /* m and port are set */
        uint16_t port;
        int stop_fd;
        pthread_t thread;
        int exit_code;
        char last_renew[64];
        uint64_t first_sample_ms, last_sample_ms;
        uint64_t last_change_ms;
        uint64_t worst_gap_ms;
        unsigned renewals;
        unsigned not_leading; /* samples that found the manager not leading */
} leading;

static koc_test_apiserver api;

static int on_shutdown(sd_event_source *s, int fd, uint32_t revents, void *ud) {
        leading *l = ud;
        uint64_t v;
        (void)read(fd, &v, sizeof v);
        (void)koc_manager_shutdown(l->m);
        return 0;
}

/* The manager lives on this thread: its loop-only calls check it. */
static void *manager_thread(void *ud) {
        leading *l = ud;
        koc_error err = { 0 };
        if (koc_manager_new(NULL, &l->cfg, &l->m, &err) < 0) {
                fprintf(stderr, "manager: %s\n", err.message);
                l->exit_code = -1;
                atomic_store(&l->ready, true);
                return NULL;
        }
        if (koc_manager_get_health_port(l->m, &l->port) < 0 ||
            sd_event_add_io(koc_manager_get_event(l->m), NULL, l->stop_fd, EPOLLIN, on_shutdown,
                            l) < 0)
                abort();
        atomic_store(&l->ready, true);
        l->exit_code = koc_manager_run(l->m);
        l->m = koc_manager_unref(l->m);
        return NULL;
}

/* The Lease's spec.renewTime ("" when absent). */
static void renew_time(char *out, size_t size) {
        char *body = NULL;
        long code = koc_test_apiserver_http(
                &api, "GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases/slow-clients",
                NULL, NULL, &body);
        assert_int_equal(code, 200);
        cJSON *j = cJSON_Parse(body);
        free(body);
        assert_non_null(j);
        cJSON *spec = cJSON_GetObjectItemCaseSensitive(j, "spec");
        cJSON *t = spec ? cJSON_GetObjectItemCaseSensitive(spec, "renewTime") : NULL;
        snprintf(out, size, "%s", cJSON_IsString(t) ? t->valuestring : "");
        cJSON_Delete(j);
}

static void sample_lease(void *ud) {
        leading *l = ud;
        char now[64];
        if (!koc_manager_is_leader(l->m))
                l->not_leading++;
        renew_time(now, sizeof now);
        uint64_t t = now_ms();
        if (!l->first_sample_ms)
                l->first_sample_ms = t;
        l->last_sample_ms = t;
        if (strcmp(now, l->last_renew) != 0) {
                snprintf(l->last_renew, sizeof l->last_renew, "%s", now);
                l->renewals++;
                l->last_change_ms = t;
        } else if (t - l->last_change_ms > l->worst_gap_ms)
                l->worst_gap_ms = t - l->last_change_ms;
}

/* A leading manager (lease 2 s, renew deadline 1.5 s, renewals every 250 ms,
 * as in the demo) with 1,000 slow clients on its probe port from 127.0.0.1:
 * /livez and /readyz (gated on leadership) answer 30 of 30 within 1 s, and
 * the Lease keeps renewing all along. */
static void test_slow_clients_manager(void **state) {
        leading l = { 0 };
        koc_manager_config cfg;
        bool slow = getenv("KOC_UNDER_VALGRIND") != NULL;

        raise_fd_limit();
        assert_int_equal(koc_test_apiserver_start(&api, NULL), 0);
        koc_manager_config_init(&cfg);
        cfg.kubeconfig = api.kubeconfig;
        cfg.leader_election_id = "slow-clients";
        cfg.leader_election_namespace = "default";
        cfg.identity = "slow-clients-a";
        cfg.lease_duration_usec = 2 * KOC_USEC_PER_SEC;
        cfg.renew_deadline_usec = 1500 * KOC_USEC_PER_MSEC;
        cfg.retry_period_usec = 250 * KOC_USEC_PER_MSEC;
        if (slow) {
                cfg.lease_duration_usec *= 4;
                cfg.renew_deadline_usec *= 4;
                cfg.retry_period_usec *= 4;
        }
        cfg.health_probe_bind_address = "127.0.0.1:0";
        cfg.metrics_bind_address = "0";
        cfg.handle_signals = false;
        l.cfg = cfg;
        l.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(l.stop_fd >= 0);
        assert_int_equal(pthread_create(&l.thread, NULL, manager_thread, &l), 0);
        for (int i = 0; i < 1000 && !atomic_load(&l.ready); i++)
                usleep(10000);
        assert_true(atomic_load(&l.ready));
        assert_non_null(l.m);

        /* Leading first. */
        for (int i = 0; i < 500 && !koc_manager_is_leader(l.m); i++)
                usleep(20000);
        assert_true(koc_manager_is_leader(l.m));
        renew_time(l.last_renew, sizeof l.last_renew);
        l.last_change_ms = now_ms();

        attack_and_probe(l.port, 0, sample_lease, &l);
        uint64_t window_ms = l.last_sample_ms - l.first_sample_ms;
        fprintf(stderr,
                "manager: %u renewals seen in %llu ms while probed, longest without one %llu "
                "ms, %u samples not leading\n",
                l.renewals, (unsigned long long)window_ms, (unsigned long long)l.worst_gap_ms,
                l.not_leading);

        uint64_t one = 1;
        assert_int_equal(write(l.stop_fd, &one, sizeof one), (ssize_t)sizeof one);
        pthread_join(l.thread, NULL);
        assert_int_equal(l.exit_code, 0);
        close(l.stop_fd);
        koc_test_apiserver_stop(&api);

        /* Renewed all along: the samples see the Lease, renewed every retry
         * period, move at least every other period, and never stand still
         * for a renew deadline. */
        uint64_t retry_ms = cfg.retry_period_usec / 1000;
        assert_int_equal(l.not_leading, 0);
        assert_true(window_ms >= 2000);
        assert_true(l.renewals >= window_ms / retry_ms / 2);
        assert_true(l.worst_gap_ms < cfg.renew_deadline_usec / 1000);
}

int main(void) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        if (!getenv("KOC_LOG_LEVEL") || !*getenv("KOC_LOG_LEVEL"))
                koc_log_set_level(KOC_LOG_ERROR);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_slow_clients_one_address),
                cmocka_unit_test(test_slow_clients_many_addresses),
                cmocka_unit_test(test_slow_clients_manager),
        };
        int r = cmocka_run_group_tests(tests, NULL, NULL);
        curl_global_cleanup();
        return r;
}

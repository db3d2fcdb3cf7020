/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The connection health check over HTTP/2, through a loopback TCP proxy that
 * can black-hole the connections it carries: a healthy idle watch survives
 * the checks, a black-holed connection fails its watch and its requests
 * with -ETIMEDOUT (naming the server), and the next request opens a fresh
 * connection.  koc-apiserver speaks HTTP/1.1 only (libmicrohttpd), so the
 * server here is a small Node.js HTTP/2 server, as in test-client's
 * multiplexing test; without node or openssl the tests are skipped.
 *
 * Assertions are about order and outcome: the watch survives a number of
 * answered probes, and after the black hole it closes with the health
 * check's error before the request's own (much longer) timeout.  The
 * safety deadline only bounds a test that would otherwise hang.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/client-internal.h"
#include "koc/client.h"
#include "koc/config.h"
#include "koc/time.h"

#define LEASES "/apis/coordination.k8s.io/v1/namespaces/default/leases"
#define HEALTH_WATCH_PATH "/api/v1/namespaces/default/configmaps"
#define SAFETY_USEC (60 * KOC_USEC_PER_SEC)
#define MAX_PAIRS 32

/* --- an HTTP/2 server ---------------------------------------------------- */

/* Watches get one event and stay open; everything else gets "{}". */
static const char server_js[] =
        "const http2 = require('http2'); const fs = require('fs');\n"
        "const s = http2.createSecureServer({ key: fs.readFileSync('key.pem'),\n"
        "                                     cert: fs.readFileSync('cert.pem') });\n"
        "s.on('stream', (st, h) => {\n"
        "  st.on('error', () => {});\n"
        "  st.respond({ ':status': 200, 'content-type': 'application/json' });\n"
        "  if (!h[':path'].includes('watch=1')) { st.end('{}'); return; }\n"
        "  st.write(JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a' } } }) + "
        "'\\n');\n"
        "});\n"
        "s.on('sessionError', () => {});\n"
        "s.listen(0, '127.0.0.1', () => { console.log(s.address().port); });\n"
        "process.stdin.on('end', () => process.exit(0)); process.stdin.resume();\n";

static char dir[] = "/tmp/koc-health-XXXXXX";
static pid_t server_pid;
static int server_port, server_stdin = -1;

static bool server_start(void) {
        char cmd[1024], path[600];
        int out[2], in[2];

        if (system("command -v node >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1") != 0 ||
            !mkdtemp(dir))
                return false;
        snprintf(cmd, sizeof cmd,
                 "cd '%s' && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem "
                 "-out cert.pem -days 1 -subj /CN=127.0.0.1 "
                 "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
                 dir);
        if (system(cmd) != 0)
                return false;
        snprintf(path, sizeof path, "%s/server.js", dir);
        FILE *f = fopen(path, "w");
        if (!f)
                return false;
        fputs(server_js, f);
        fclose(f);
        if (pipe2(out, O_CLOEXEC) < 0 || pipe2(in, O_CLOEXEC) < 0)
                return false;
        server_pid = fork();
        if (server_pid < 0)
                return false;
        if (server_pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                dup2(out[1], STDOUT_FILENO);
                dup2(in[0], STDIN_FILENO);
                if (chdir(dir) < 0)
                        _exit(127);
                execlp("node", "node", "server.js", (char *)NULL);
                _exit(127);
        }
        close(out[1]);
        close(in[0]);
        server_stdin = in[1];
        char line[32] = {0};
        size_t n = 0;
        while (n < sizeof line - 1 && !strchr(line, '\n')) {
                struct pollfd pfd = {.fd = out[0], .events = POLLIN};
                if (poll(&pfd, 1, 30000) <= 0)
                        break;
                ssize_t k = read(out[0], line + n, sizeof line - 1 - n);
                if (k <= 0)
                        break;
                n += (size_t)k;
        }
        close(out[0]);
        server_port = atoi(line);
        return server_port > 0;
}

static void server_stop(void) {
        if (server_stdin >= 0)
                close(server_stdin);
        if (server_pid > 0) {
                kill(server_pid, SIGTERM);
                waitpid(server_pid, NULL, 0);
        }
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        (void)!system(cmd);
}

/* --- a loopback TCP proxy ------------------------------------------------ */

typedef struct proxy {
        int listen_fd, wake[2];
        int upstream_port, port;
        pthread_t thread;
        struct {
                int a, b; /* client side, server side */
                bool frozen;
        } pairs[MAX_PAIRS];
        int n_pairs;
        atomic_bool blackhole; /* freeze every connection open now */
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

static void *proxy_main(void *userdata) {
        proxy *p = userdata;
        for (;;) {
                struct pollfd fds[2 + 2 * MAX_PAIRS];
                int n = 0;
                fds[n++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
                fds[n++] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
                if (atomic_exchange(&p->blackhole, false))
                        for (int i = 0; i < p->n_pairs; i++)
                                p->pairs[i].frozen = true;
                for (int i = 0; i < p->n_pairs; i++) {
                        /* A frozen pair is read no more: whatever either side
                         * sends stays in the buffers, as in a black hole. */
                        bool on = !p->pairs[i].frozen && p->pairs[i].a >= 0;
                        fds[n++] = (struct pollfd){.fd = on ? p->pairs[i].a : -1, .events = POLLIN};
                        fds[n++] = (struct pollfd){.fd = on ? p->pairs[i].b : -1, .events = POLLIN};
                }
                if (poll(fds, (nfds_t)n, 50) < 0)
                        continue;
                if (fds[0].revents)
                        return NULL;
                int polled = p->n_pairs; /* a pair accepted below has no entry yet */
                if ((fds[1].revents & POLLIN) && p->n_pairs < MAX_PAIRS) {
                        int a = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                        int b = a >= 0 ? connect_upstream(p->upstream_port) : -1;
                        if (b >= 0) {
                                p->pairs[p->n_pairs].a = a;
                                p->pairs[p->n_pairs].b = b;
                                p->pairs[p->n_pairs].frozen = false;
                                p->n_pairs++;
                                atomic_fetch_add(&p->accepted, 1);
                        } else if (a >= 0)
                                close(a);
                }
                for (int i = 0; i < polled; i++)
                        for (int side = 0; side < 2; side++) {
                                struct pollfd *f = &fds[2 + 2 * i + side];
                                if (f->fd < 0 || !f->revents)
                                        continue;
                                char buf[16384];
                                ssize_t k = read(f->fd, buf, sizeof buf);
                                int to = side == 0 ? p->pairs[i].b : p->pairs[i].a;
                                if (k <= 0 || write(to, buf, (size_t)k) != k) {
                                        close(p->pairs[i].a);
                                        close(p->pairs[i].b);
                                        p->pairs[i].a = p->pairs[i].b = -1;
                                        break;
                                }
                        }
        }
}

static void proxy_start(proxy *p, int upstream_port) {
        memset(p, 0, sizeof *p);
        p->upstream_port = upstream_port;
        p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(p->listen_fd >= 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
        assert_int_equal(listen(p->listen_fd, 16), 0);
        assert_int_equal(getsockname(p->listen_fd, (struct sockaddr *)&a, &len), 0);
        p->port = ntohs(a.sin_port);
        assert_int_equal(pipe(p->wake), 0);
        assert_int_equal(pthread_create(&p->thread, NULL, proxy_main, p), 0);
}

static void proxy_stop(proxy *p) {
        assert_int_equal(write(p->wake[1], "x", 1), 1);
        pthread_join(p->thread, NULL);
        for (int i = 0; i < p->n_pairs; i++)
                if (p->pairs[i].a >= 0) {
                        close(p->pairs[i].a);
                        close(p->pairs[i].b);
                }
        close(p->listen_fd);
        close(p->wake[0]);
        close(p->wake[1]);
}

/* --- the client ---------------------------------------------------------- */

typedef struct result {
        bool done;
        int error;
        long status;
        char message[512];
} result;

static void on_result(koc_client *c, koc_response *r, void *userdata) {
        result *res = userdata;
        res->done = true;
        res->error = r->error;
        res->status = r->status;
        snprintf(res->message, sizeof res->message, "%s", r->message);
}

typedef struct recorder {
        int events;
        bool closed;
        int error;
        char message[512];
} recorder;

static void on_watch(koc_watch *w, koc_watch_event *ev, void *userdata) {
        recorder *r = userdata;
        if (ev->type != KOC_WATCH_CLOSED) {
                r->events++;
                return;
        }
        r->closed = true;
        r->error = ev->error;
        snprintf(r->message, sizeof r->message, "%s", ev->message);
}

static void run_until(sd_event *e, const volatile bool *flag) {
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (!*flag) {
                if (koc_now_boottime_usec() > end)
                        fail_msg("condition not reached within the safety deadline");
                assert_true(sd_event_run(e, 100 * KOC_USEC_PER_MSEC) >= 0);
        }
}

static void start(koc_client *c, const char *method, const char *path, const char *body,
                  uint64_t timeout_usec, result *res) {
        cJSON *b = body ? cJSON_Parse(body) : NULL;
        *res = (result){0};
        assert_int_equal(koc_client_request(c,
                                            &(koc_request_spec){.method = method,
                                                                .path = path,
                                                                .body = b,
                                                                .timeout_usec = timeout_usec},
                                            on_result, res, NULL),
                         0);
        cJSON_Delete(b);
}

static bool have_server;

static int group_setup(void **state) {
        have_server = server_start();
        if (!have_server)
                fprintf(stderr, "no node or openssl: the HTTP/2 health check tests are skipped\n");
        return 0;
}

static int group_teardown(void **state) {
        server_stop();
        return 0;
}

static void open_client(int port, sd_event **e, koc_cluster_config **cfg, koc_client **c) {
        char kc_path[600], kc[2048];
        snprintf(kc_path, sizeof kc_path, "%s/kubeconfig-%d", dir, port);
        snprintf(kc, sizeof kc,
                 "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                 "clusters: [{name: k, cluster: {server: \"https://127.0.0.1:%d\", "
                 "certificate-authority: \"%s/cert.pem\"}}]\n"
                 "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                 "users: [{name: u, user: {token: t}}]\n",
                 port, dir);
        FILE *f = fopen(kc_path, "w");
        assert_non_null(f);
        fputs(kc, f);
        fclose(f);
        koc_error err = {0};
        assert_int_equal(sd_event_new(e), 0);
        if (koc_cluster_config_from_kubeconfig(kc_path, NULL, cfg, &err) < 0)
                fail_msg("%s", err.message);
        assert_int_equal(koc_client_new(*e, *cfg, c), 0);
}

static void test_black_holed_connection(void **state) {
        proxy p;
        sd_event *e = NULL;
        koc_cluster_config *cfg = NULL;
        koc_client *c = NULL;

        if (!have_server)
                skip();
        proxy_start(&p, server_port);
        open_client(p.port, &e, &cfg, &c);
        /* A generous ping timeout while the connection is healthy: on a
         * loaded machine (the sanitizer builds run tests in parallel) an
         * answer may take a while, and a healthy connection must not be
         * taken for dead.  The black hole below shortens it. */
        koc_client_set_read_idle_timeout(c, 1 * KOC_USEC_PER_SEC);
        koc_client_set_ping_timeout(c, 15 * KOC_USEC_PER_SEC);

        result res;
        start(c, "GET", LEASES, NULL, 0, &res);
        run_until(e, &res.done);
        assert_int_equal(res.status, 200);
        assert_true(c->server_http2);

        recorder r = {0};
        koc_watch *w = NULL;
        assert_int_equal(koc_client_watch(c, &(koc_watch_spec){.path = HEALTH_WATCH_PATH}, on_watch,
                                          &r, NULL, &w),
                         0);
        while (r.events == 0 && !r.closed)
                assert_true(sd_event_run(e, 100 * KOC_USEC_PER_MSEC) >= 0);
        assert_false(r.closed);

        /* Healthy and idle: probes are sent and answered, the watch stays. */
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (c->probes_sent < 3) {
                if (r.closed)
                        fail_msg("the healthy watch closed after %llu probes: %s",
                                 (unsigned long long)c->probes_sent, r.message);
                if (koc_now_boottime_usec() >= end)
                        fail_msg("only %llu probes within the safety deadline",
                                 (unsigned long long)c->probes_sent);
                assert_true(sd_event_run(e, 100 * KOC_USEC_PER_MSEC) >= 0);
        }
        assert_false(r.closed);
        assert_int_equal(atomic_load(&p.accepted), 1); /* all on one connection */

        /* Black hole: the watch and a request with a long timeout of its own
         * both fail by the health check. */
        koc_client_set_ping_timeout(c, 2 * KOC_USEC_PER_SEC);
        atomic_store(&p.blackhole, true);
        start(c, "GET", LEASES, NULL, 50 * KOC_USEC_PER_SEC, &res);
        run_until(e, &r.closed);
        run_until(e, &res.done);
        assert_int_equal(r.error, -ETIMEDOUT);
        assert_non_null(strstr(r.message, "health check"));
        char server[64];
        snprintf(server, sizeof server, "https://127.0.0.1:%d", p.port);
        assert_non_null(strstr(r.message, server));
        assert_int_equal(res.error, -ETIMEDOUT);
        assert_non_null(strstr(res.message, "health check"));

        /* The next request goes over a fresh connection. */
        start(c, "GET", LEASES "/health", NULL, 0, &res);
        run_until(e, &res.done);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 200);
        assert_int_equal(atomic_load(&p.accepted), 2);

        c = koc_client_unref(c);
        cfg = koc_cluster_config_unref(cfg);
        (void)sd_event_run(e, 0);
        e = sd_event_unref(e);
        proxy_stop(&p);
}

/* A request that times out with nothing read since it was sent makes the
 * connection suspect at once: with a read-idle time of an hour, the probe
 * still goes out and the dead connection is closed. */
static void test_timeout_makes_connection_suspect(void **state) {
        proxy p;
        sd_event *e = NULL;
        koc_cluster_config *cfg = NULL;
        koc_client *c = NULL;

        if (!have_server)
                skip();
        proxy_start(&p, server_port);
        open_client(p.port, &e, &cfg, &c);
        koc_client_set_read_idle_timeout(c, 3600 * KOC_USEC_PER_SEC);
        koc_client_set_ping_timeout(c, 1 * KOC_USEC_PER_SEC);

        result res;
        start(c, "GET", LEASES, NULL, 0, &res);
        run_until(e, &res.done);
        assert_int_equal(res.status, 200);
        recorder r = {0};
        assert_int_equal(koc_client_watch(c, &(koc_watch_spec){.path = HEALTH_WATCH_PATH}, on_watch,
                                          &r, NULL, NULL),
                         0);
        while (r.events == 0 && !r.closed)
                assert_true(sd_event_run(e, 100 * KOC_USEC_PER_MSEC) >= 0);

        atomic_store(&p.blackhole, true);
        start(c, "GET", LEASES, NULL, 300 * KOC_USEC_PER_MSEC, &res);
        run_until(e, &res.done);
        assert_int_equal(res.error, -ETIMEDOUT);
        assert_null(strstr(res.message, "health check")); /* its own timeout */
        run_until(e, &r.closed);
        assert_int_equal(r.error, -ETIMEDOUT);
        assert_non_null(strstr(r.message, "health check"));

        start(c, "GET", LEASES, NULL, 0, &res);
        run_until(e, &res.done);
        assert_int_equal(res.status, 200);
        assert_int_equal(atomic_load(&p.accepted), 2);

        c = koc_client_unref(c);
        cfg = koc_cluster_config_unref(cfg);
        (void)sd_event_run(e, 0);
        e = sd_event_unref(e);
        proxy_stop(&p);
}

static void test_setters(void **state) {
        sd_event *e = NULL;
        koc_cluster_config *cfg = NULL;
        koc_client *c = NULL;
        if (!have_server)
                skip();
        open_client(server_port, &e, &cfg, &c);
        /* client-go's defaults. */
        assert_int_equal(c->read_idle_usec, 30 * KOC_USEC_PER_SEC);
        assert_int_equal(c->ping_timeout_usec, 15 * KOC_USEC_PER_SEC);
        koc_client_set_read_idle_timeout(c, 5);
        koc_client_set_ping_timeout(c, 7);
        assert_int_equal(c->read_idle_usec, 5);
        assert_int_equal(c->ping_timeout_usec, 7);
        koc_client_set_read_idle_timeout(c, 0);
        koc_client_set_ping_timeout(c, 0);
        assert_int_equal(c->read_idle_usec, 30 * KOC_USEC_PER_SEC);
        assert_int_equal(c->ping_timeout_usec, 15 * KOC_USEC_PER_SEC);
        /* Off: requests still work and no probe is ever sent. */
        koc_client_set_read_idle_timeout(c, UINT64_MAX);
        result res;
        start(c, "GET", LEASES, NULL, 0, &res);
        run_until(e, &res.done);
        assert_int_equal(res.status, 200);
        assert_int_equal(c->probes_sent, 0);
        koc_client_set_read_idle_timeout(NULL, 1);
        koc_client_set_ping_timeout(NULL, 1);
        c = koc_client_unref(c);
        cfg = koc_cluster_config_unref(cfg);
        e = sd_event_unref(e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_black_holed_connection),
                cmocka_unit_test(test_timeout_makes_connection_suspect),
                cmocka_unit_test(test_setters),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the probes server: a real server on a loopback port, its
 * sd-event loop running in a thread of the test, queried with libcurl. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "koc/log.h"
#include "koc/metrics.h"
#include "koc/probes.h"

/* --- the server under test -------------------------------------------------- */

typedef struct server {
        sd_event *event;
        koc_probes *probes;
        koc_metrics *metrics;
        int stop_fd;
        pthread_t thread;
        bool running;
        uint16_t port;         /* health */
        uint16_t metrics_port; /* /metrics, when separate */
        char host[64];         /* "127.0.0.1" or "[::1]" */
} server;

static atomic_bool leader_ok;
static atomic_bool renewal_ok;

static int check_leader(char *why, size_t size, void *ud) {
        if (atomic_load(&leader_ok))
                return 0;
        snprintf(why, size, "not the leader");
        return -EAGAIN;
}

static int check_informers(char *why, size_t size, void *ud) {
        return 0;
}

static int check_renewal(char *why, size_t size, void *ud) {
        if (atomic_load(&renewal_ok))
                return 0;
        /* Control characters in a reason must not break the one-line format. */
        snprintf(why, size, "renewal overdue\nby 3s");
        return -ETIMEDOUT;
}

static int on_stop(sd_event_source *s, int fd, uint32_t revents, void *ud) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void *loop_thread(void *ud) {
        server *srv = ud;
        sd_event_loop(srv->event);
        return NULL;
}

/* Creates the server with the default checks; nothing listens yet. */
static void server_init(server *srv) {
        memset(srv, 0, sizeof(*srv));
        atomic_store(&leader_ok, true);
        atomic_store(&renewal_ok, true);
        assert_int_equal(sd_event_new(&srv->event), 0);
        assert_int_equal(koc_metrics_new(&srv->metrics), 0);
        assert_int_equal(koc_probes_new(srv->event, srv->metrics, &srv->probes), 0);
        assert_int_equal(
                koc_probes_add_ready_check(srv->probes, "leader", check_leader, NULL, NULL), 0);
        assert_int_equal(
                koc_probes_add_ready_check(srv->probes, "informers", check_informers, NULL, NULL),
                0);
        assert_int_equal(koc_probes_add_health_check(srv->probes, "leader-renewal", check_renewal,
                                                     NULL, NULL),
                         0);
        srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(srv->stop_fd >= 0);
        assert_int_equal(sd_event_add_io(srv->event, NULL, srv->stop_fd, EPOLLIN, on_stop, srv),
                         0);
        snprintf(srv->host, sizeof(srv->host), "127.0.0.1");
}

/* Starts the loop thread; from here on the test only talks HTTP (and flips
 * atomics) until server_stop(). */
static void server_run(server *srv) {
        if (koc_probes_get_port(srv->probes, KOC_PROBES_HEALTH, &srv->port) < 0)
                srv->port = 0;
        if (koc_probes_get_port(srv->probes, KOC_PROBES_METRICS, &srv->metrics_port) < 0)
                srv->metrics_port = 0;
        assert_int_equal(pthread_create(&srv->thread, NULL, loop_thread, srv), 0);
        srv->running = true;
}

static void server_start(server *srv, const char *address, unsigned kinds) {
        server_init(srv);
        assert_int_equal(koc_probes_listen(srv->probes, address, kinds), 0);
        server_run(srv);
}

/* Ends the loop thread. */
static void server_halt(server *srv) {
        if (srv->running) {
                uint64_t one = 1;
                assert_int_equal(write(srv->stop_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
                pthread_join(srv->thread, NULL);
                srv->running = false;
        }
}

static void server_stop(server *srv) {
        server_halt(srv);
        koc_probes_unref(srv->probes);
        koc_metrics_unref(srv->metrics);
        sd_event_unref(srv->event);
        close(srv->stop_fd);
}

/* --- HTTP client ------------------------------------------------------------ */

typedef struct reply {
        CURLcode curl;
        long status;
        char body[16384];
        size_t body_len;
        char headers[4096];
        size_t headers_len;
} reply;

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
        reply *r = ud;
        size_t len = size * n, room = sizeof(r->body) - 1 - r->body_len;
        memcpy(r->body + r->body_len, data, len < room ? len : room);
        r->body_len += len < room ? len : room;
        r->body[r->body_len] = 0;
        return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud) {
        reply *r = ud;
        size_t len = size * n, room = sizeof(r->headers) - 1 - r->headers_len;
        memcpy(r->headers + r->headers_len, data, len < room ? len : room);
        r->headers_len += len < room ? len : room;
        r->headers[r->headers_len] = 0;
        return len;
}

/* method: "GET", "HEAD", "POST", ...; body: sent with the request when not
 * NULL; extra_header: one more header line or NULL. */
static reply *http_full(const char *host, uint16_t port, const char *method, const char *path,
                        const char *body, const char *extra_header) {
        static reply r;
        memset(&r, 0, sizeof(r));
        char *url = NULL;
        assert_true(asprintf(&url, "http://%s:%u%s", host, port, path) > 0);

        CURL *c = curl_easy_init();
        assert_non_null(c);
        struct curl_slist *hdrs = NULL;
        if (extra_header)
                hdrs = curl_slist_append(hdrs, extra_header);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
        if (hdrs)
                curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        if (strcmp(method, "HEAD") == 0)
                curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        else if (strcmp(method, "GET") != 0)
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        if (body) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                if (strcmp(method, "GET") == 0)
                        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "GET");
        }
        r.curl = curl_easy_perform(c);
        if (r.curl == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(c);
        free(url);
        return &r;
}

static reply *http(server *srv, const char *method, const char *path) {
        reply *r = http_full(srv->host, srv->port, method, path, NULL, NULL);
        assert_int_equal(r->curl, CURLE_OK);
        return r;
}

static bool has_header(const reply *r, const char *line) {
        return strstr(r->headers, line) != NULL;
}

/* --- tests ------------------------------------------------------------------ */

static void test_readyz_verbose(void **state) {
        server srv;
        server_start(&srv, "127.0.0.1:0", KOC_PROBES_HEALTH);
        assert_true(srv.port > 0);

        reply *r = http(&srv, "GET", "/readyz");
        assert_int_equal(r->status, 200);
        assert_string_equal(r->body, "ok");
        assert_true(has_header(r, "Content-Type: text/plain; charset=utf-8\r\n"));
        assert_true(has_header(r, "X-Content-Type-Options: nosniff\r\n"));

        r = http(&srv, "GET", "/readyz?verbose");
        assert_int_equal(r->status, 200);
        assert_string_equal(r->body, "[+]shutdown ok\n"
                                     "[+]leader ok\n"
                                     "[+]informers ok\n"
                                     "readyz check passed\n");

        atomic_store(&leader_ok, false);
        /* Failures are always listed, verbose or not. */
        const char *failed = "[+]shutdown ok\n"
                             "[-]leader failed: not the leader\n"
                             "[+]informers ok\n"
                             "readyz check failed\n";
        r = http(&srv, "GET", "/readyz");
        assert_int_equal(r->status, 503);
        assert_string_equal(r->body, failed);
        r = http(&srv, "GET", "/readyz?verbose=1");
        assert_int_equal(r->status, 503);
        assert_string_equal(r->body, failed);

        /* Liveness does not depend on leadership. */
        r = http(&srv, "GET", "/healthz");
        assert_int_equal(r->status, 200);
        assert_string_equal(r->body, "ok");
        server_stop(&srv);
}

static void test_exclude(void **state) {
        server srv;
        server_start(&srv, "127.0.0.1:0", KOC_PROBES_HEALTH);
        atomic_store(&leader_ok, false);

        reply *r = http(&srv, "GET", "/readyz?exclude=leader");
        assert_int_equal(r->status, 200);
        assert_string_equal(r->body, "ok");

        r = http(&srv, "GET", "/readyz?verbose&exclude=leader&exclude=informers");
        assert_int_equal(r->status, 200);
        assert_string_equal(r->body, "[+]shutdown ok\n"
                                     "[+]leader excluded: ok\n"
                                     "[+]informers excluded: ok\n"
                                     "readyz check passed\n");

        /* Unknown names are reported, sorted and quoted, escaped when odd. */
        r = http(&srv, "GET", "/readyz?exclude=leader&exclude=zeta&exclude=alpha%22x&verbose");
        assert_int_equal(r->status, 200);
        assert_string_equal(r->body, "[+]shutdown ok\n"
                                     "[+]leader excluded: ok\n"
                                     "[+]informers ok\n"
                                     "warn: some health checks cannot be excluded: no matches "
                                     "for \"alpha\\x22x\",\"zeta\"\n"
                                     "readyz check passed\n");

        /* Excluding an unrelated check does not hide a failure. */
        r = http(&srv, "GET", "/readyz?exclude=informers");
        assert_int_equal(r->status, 503);
        assert_string_equal(r->body, "[+]shutdown ok\n"
                                     "[-]leader failed: not the leader\n"
                                     "[+]informers excluded: ok\n"
                                     "readyz check failed\n");
        server_stop(&srv);
}

static void test_readiness_switch(void **state) {
        server srv;
        server_start(&srv, "127.0.0.1:0", KOC_PROBES_HEALTH);
        assert_true(koc_probes_get_ready(srv.probes));

        /* Flipped from this thread while the loop serves in another. */
        koc_probes_set_ready(srv.probes, false);
        assert_false(koc_probes_get_ready(srv.probes));
        reply *r = http(&srv, "GET", "/readyz");
        assert_int_equal(r->status, 503);
        assert_string_equal(r->body, "[-]shutdown failed: process is shutting down\n"
                                     "[+]leader ok\n"
                                     "[+]informers ok\n"
                                     "readyz check failed\n");
        r = http(&srv, "GET", "/readyz/shutdown");
        assert_int_equal(r->status, 503);
        assert_string_equal(r->body, "internal server error: process is shutting down\n");
        r = http(&srv, "GET", "/livez");
        assert_int_equal(r->status, 200);

        koc_probes_set_ready(srv.probes, true);
        r = http(&srv, "GET", "/readyz");
        assert_int_equal(r->status, 200);
        server_stop(&srv);
}

static void test_health_paths(void **state) {
        server srv;
        server_start(&srv, "127.0.0.1:0", KOC_PROBES_HEALTH);

        reply *r = http(&srv, "GET", "/livez?verbose");
        assert_int_equal(r->status, 200);
        assert_string_equal(r->body, "[+]ping ok\n[+]leader-renewal ok\nlivez check passed\n");
        r = http(&srv, "GET", "/healthz?verbose");
        assert_string_equal(r->body, "[+]ping ok\n[+]leader-renewal ok\nhealthz check passed\n");

        atomic_store(&renewal_ok, false);
        r = http(&srv, "GET", "/healthz");
        assert_int_equal(r->status, 503);
        assert_string_equal(r->body, "[+]ping ok\n"
                                     "[-]leader-renewal failed: renewal overdue by 3s\n"
                                     "healthz check failed\n");
        r = http(&srv, "GET", "/livez/leader-renewal");
        assert_int_equal(r->status, 503);
        assert_string_equal(r->body, "internal server error: renewal overdue by 3s\n");
        r = http(&srv, "GET", "/livez/ping");
        assert_int_equal(r->status, 200);
        assert_string_equal(r->body, "ok");
        r = http(&srv, "GET", "/readyz/leader");
        assert_int_equal(r->status, 200);
        assert_string_equal(r->body, "ok");
        /* Checks are per kind: a health check is not a readiness check. */
        r = http(&srv, "GET", "/readyz/leader-renewal");
        assert_int_equal(r->status, 404);
        r = http(&srv, "GET", "/readyz/nope");
        assert_int_equal(r->status, 404);
        server_stop(&srv);
}

static void test_methods_and_paths(void **state) {
        server srv;
        server_start(&srv, "127.0.0.1:0", KOC_PROBES_HEALTH);

        static const char *const methods[] = { "POST", "PUT", "DELETE", "PATCH", "OPTIONS" };
        for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
                reply *r = http(&srv, methods[i], "/readyz");
                assert_int_equal(r->status, 405);
                assert_true(has_header(r, "Allow: GET, HEAD\r\n"));
        }
        reply *r = http(&srv, "HEAD", "/readyz");
        assert_int_equal(r->status, 200);
        assert_int_equal(r->body_len, 0);
        atomic_store(&leader_ok, false);
        r = http(&srv, "HEAD", "/readyz");
        assert_int_equal(r->status, 503);

        static const char *const unknown[] = { "/", "/foo", "/readyzz", "/readyz/", "/metrics",
                                               "/healthz/ping/x", "/../readyz" };
        for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
                r = http(&srv, "GET", unknown[i]);
                assert_int_equal(r->status, 404);
        }
        /* A body on GET is refused without being read. */
        r = http_full(srv.host, srv.port, "GET", "/readyz", "0123456789", NULL);
        assert_int_equal(r->curl, CURLE_OK);
        assert_int_equal(r->status, 413);
        r = http(&srv, "GET", "/readyz?exclude=leader");
        assert_int_equal(r->status, 200);
        server_stop(&srv);
}

static void test_metrics(void **state) {
        server srv;
        server_init(&srv);
        assert_int_equal(koc_probes_listen(srv.probes, "127.0.0.1:0", KOC_PROBES_HEALTH), 0);
        assert_int_equal(koc_probes_listen(srv.probes, "127.0.0.1:0", KOC_PROBES_METRICS), 0);
        assert_int_equal(koc_probes_listen(srv.probes, "127.0.0.1:0", KOC_PROBES_HEALTH),
                         -EEXIST);
        koc_metric *things = NULL;
        assert_int_equal(koc_metrics_add_counter(srv.metrics, "test_things_total", "Things.", NULL,
                                                 &things),
                         0);
        koc_metric_inc(things);
        koc_metric_inc(things);
        server_run(&srv);
        assert_true(srv.metrics_port > 0);
        assert_int_not_equal(srv.metrics_port, srv.port);

        for (int i = 0; i < 3; i++)
                assert_int_equal(http(&srv, "GET", "/readyz")->status, 200);
        assert_int_equal(http(&srv, "POST", "/readyz")->status, 405);
        assert_int_equal(http(&srv, "GET", "/nope")->status, 404);
        /* Each listener serves only its kinds. */
        assert_int_equal(http(&srv, "GET", "/metrics")->status, 404);

        reply *r = http_full(srv.host, srv.metrics_port, "GET", "/metrics", NULL, NULL);
        assert_int_equal(r->curl, CURLE_OK);
        assert_int_equal(r->status, 200);
        assert_true(has_header(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert_non_null(strstr(r->body, "test_things_total 2\n"));
        assert_non_null(
                strstr(r->body, "koc_probes_http_requests_total{path=\"/readyz\",code=\"200\"} 3\n"));
        assert_non_null(
                strstr(r->body, "koc_probes_http_requests_total{path=\"/readyz\",code=\"405\"} 1\n"));
        assert_non_null(
                strstr(r->body, "koc_probes_http_requests_total{path=\"other\",code=\"404\"} 2\n"));
        r = http_full(srv.host, srv.metrics_port, "GET", "/readyz", NULL, NULL);
        assert_int_equal(r->status, 404);
        server_stop(&srv);
}

/* Without a registry /metrics is not served. */
static void test_no_metrics_registry(void **state) {
        server srv;
        memset(&srv, 0, sizeof(srv));
        assert_int_equal(sd_event_new(&srv.event), 0);
        assert_int_equal(koc_probes_new(srv.event, NULL, &srv.probes), 0);
        srv.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_int_equal(sd_event_add_io(srv.event, NULL, srv.stop_fd, EPOLLIN, on_stop, &srv), 0);
        snprintf(srv.host, sizeof(srv.host), "127.0.0.1");
        assert_int_equal(koc_probes_listen(srv.probes, "127.0.0.1:0",
                                           KOC_PROBES_HEALTH | KOC_PROBES_METRICS),
                         0);
        server_run(&srv);
        assert_int_equal(srv.port, srv.metrics_port);
        assert_int_equal(http(&srv, "GET", "/metrics")->status, 404);
        assert_int_equal(http(&srv, "GET", "/readyz")->status, 200);
        server_stop(&srv);
}

static bool ipv6_loopback_available(void) {
        int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        return ok;
}

static void test_ipv6(void **state) {
        if (!ipv6_loopback_available())
                skip();
        server srv;
        server_start(&srv, "[::1]:0", KOC_PROBES_HEALTH);
        snprintf(srv.host, sizeof(srv.host), "[::1]");
        reply *r = http(&srv, "GET", "/readyz");
        assert_int_equal(r->status, 200);
        /* "[::1]" is IPv6 only. */
        r = http_full("127.0.0.1", srv.port, "GET", "/readyz", NULL, NULL);
        assert_int_not_equal(r->curl, CURLE_OK);
        server_stop(&srv);

        /* ":PORT" is every address, both families. */
        server_start(&srv, ":0", KOC_PROBES_HEALTH);
        r = http_full("[::1]", srv.port, "GET", "/readyz", NULL, NULL);
        assert_int_equal(r->curl, CURLE_OK);
        assert_int_equal(r->status, 200);
        r = http_full("127.0.0.1", srv.port, "GET", "/readyz", NULL, NULL);
        assert_int_equal(r->curl, CURLE_OK);
        assert_int_equal(r->status, 200);
        server_stop(&srv);
}

static void test_oversized_request(void **state) {
        server srv;
        server_init(&srv);
        assert_int_equal(koc_probes_set_limits(srv.probes, 0, 0, 8192), 0);
        assert_int_equal(koc_probes_listen(srv.probes, "127.0.0.1:0", KOC_PROBES_HEALTH), 0);
        server_run(&srv);

        size_t n = 64 * 1024;
        char *big = malloc(n + 16);
        assert_non_null(big);
        strcpy(big, "X-Big: ");
        memset(big + 7, 'a', n);
        big[n + 7] = 0;
        reply *r = http_full(srv.host, srv.port, "GET", "/readyz", NULL, big);
        /* Refused: an error status, or the connection closed. */
        if (r->curl == CURLE_OK)
                assert_true(r->status == 431 || r->status == 413 || r->status == 400);

        /* A very long URL as well. */
        char *path = malloc(n + 16);
        assert_non_null(path);
        strcpy(path, "/readyz?exclude=");
        memset(path + 16, 'b', n - 16);
        path[n] = 0;
        r = http_full(srv.host, srv.port, "GET", path, NULL, NULL);
        if (r->curl == CURLE_OK)
                assert_true(r->status == 414 || r->status == 431 || r->status == 400);
        /* A large body is refused unread. */
        memset(big, 'c', n);
        big[n] = 0;
        r = http_full(srv.host, srv.port, "GET", "/readyz", big, NULL);
        if (r->curl == CURLE_OK)
                assert_int_equal(r->status, 413);
        free(big);
        free(path);

        /* The server is still fine. */
        r = http(&srv, "GET", "/readyz");
        assert_int_equal(r->status, 200);
        server_stop(&srv);
}

static int connect_raw(uint16_t port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        struct timeval tv = { .tv_sec = 10 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        return fd;
}

/* Sends one request on a raw connection and waits for the answer to start,
 * which proves the server has taken this connection. */
static void raw_request(int fd) {
        static const char req[] = "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
        char buf[512];
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        assert_true(n > 0);
        buf[n] = 0;
        assert_non_null(strstr(buf, "HTTP/1.1 200"));
}

/* Connects from the loopback address src (127.0.0.x) to the server. */
static int connect_from(const char *src, uint16_t port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        struct sockaddr_in s = { .sin_family = AF_INET };
        assert_int_equal(inet_pton(AF_INET, src, &s.sin_addr), 1);
        assert_int_equal(bind(fd, (struct sockaddr *)&s, sizeof(s)), 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        struct timeval tv = { .tv_sec = 10 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        return fd;
}

/* True when the server has closed fd (read sees EOF or a reset) within the
 * socket's receive timeout; false when data came or nothing did. */
static bool closed_by_server(int fd) {
        char buf[64];
        ssize_t n = read(fd, buf, sizeof(buf));
        return n == 0 || (n < 0 && errno == ECONNRESET);
}

static void set_rcvtimeo_ms(int fd, long ms) {
        struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Warn lines of the probes component, captured while a test runs. */
static pthread_mutex_t warn_lock = PTHREAD_MUTEX_INITIALIZER;
static char warn_lines[4096];

static void capture_warn(int level, const char *component, const char *message, void *ud) {
        if (level != KOC_LOG_WARN || strcmp(component, "probes") != 0)
                return;
        pthread_mutex_lock(&warn_lock);
        size_t n = strlen(warn_lines);
        snprintf(warn_lines + n, sizeof(warn_lines) - n, "%s\n", message);
        pthread_mutex_unlock(&warn_lock);
}

static void capture_start(void) {
        warn_lines[0] = 0;
        koc_log_set_handler(capture_warn, NULL, NULL);
}

/* Whether a captured warn line contains s; restores the default handler. */
static bool capture_end(const char *s) {
        koc_log_set_handler(NULL, NULL, NULL);
        pthread_mutex_lock(&warn_lock);
        bool found = strstr(warn_lines, s) != NULL;
        if (!found)
                fprintf(stderr, "no warn line with \"%s\" in:\n%s", s, warn_lines);
        pthread_mutex_unlock(&warn_lock);
        return found;
}

/* At max_connections a new client is still served: the connection that has
 * waited longest for a request makes room. */
static void test_connection_limit(void **state) {
        server srv;
        server_init(&srv);
        assert_int_equal(koc_probes_set_limits(srv.probes, 2, 0, 0), 0);
        assert_int_equal(koc_probes_listen(srv.probes, "127.0.0.1:0", KOC_PROBES_HEALTH), 0);
        server_run(&srv);

        /* Two kept-alive connections fill the server. */
        int a = connect_raw(srv.port), b = connect_raw(srv.port);
        raw_request(a);
        raw_request(b);

        /* A third is served at once, and a, idle longest, is closed. */
        reply *r = http_full(srv.host, srv.port, "GET", "/readyz", NULL, NULL);
        assert_int_equal(r->curl, CURLE_OK);
        assert_int_equal(r->status, 200);
        assert_true(closed_by_server(a));
        close(a);
        /* b was left alone. */
        raw_request(b);
        close(b);
        server_stop(&srv);
}

/* A request must arrive whole within the request timeout: bytes that trickle
 * in do not extend it (MHD's idle timeout would be reset by each). */
static void test_request_deadline(void **state) {
        server srv;
        server_init(&srv);
        assert_int_equal(koc_probes_set_client_limits(srv.probes, 0, 500 * 1000), 0);
        assert_int_equal(koc_probes_listen(srv.probes, "127.0.0.1:0", KOC_PROBES_HEALTH), 0);
        /* The close is said (the first line of its rate limit's window: no
         * earlier test in this process lets a request time out). */
        capture_start();
        server_run(&srv);

        /* One header byte every 100 ms: closed at about 500 ms, long before
         * the 10 s idle timeout. */
        int fd = connect_raw(srv.port);
        set_rcvtimeo_ms(fd, 100);
        uint64_t start = now_ms();
        static const char req[] = "GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa";
        bool closed = false;
        for (size_t i = 0; i < 40 && !closed; i++) {
                if (send(fd, req + i % (sizeof(req) - 1), 1, MSG_NOSIGNAL) != 1) {
                        closed = true;
                        break;
                }
                closed = closed_by_server(fd);
        }
        uint64_t took = now_ms() - start;
        assert_true(closed);
        assert_true(took >= 400);
        assert_true(took < 2500);
        close(fd);
        assert_true(capture_end("closed a connection from 127.0.0.1: no whole request within "
                                "0.5s (slow or idle client)"));

        /* After an answer, the next request on a kept-alive connection has a
         * deadline of its own: served, then closed when none follows. */
        fd = connect_raw(srv.port);
        raw_request(fd);
        start = now_ms();
        set_rcvtimeo_ms(fd, 5000);
        assert_true(closed_by_server(fd));
        took = now_ms() - start;
        assert_true(took >= 400);
        assert_true(took < 2500);
        close(fd);

        /* A request sent at once is still served. */
        reply *r = http(&srv, "GET", "/livez");
        assert_int_equal(r->status, 200);

        /* Counted once: the kept-alive connection's close is no abuse. */
        server_halt(&srv);
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(koc_metrics_render(srv.metrics, &text, &len), 0);
        assert_non_null(
                strstr(text, "koc_probes_connections_closed_total{reason=\"request_deadline\"} 1\n"));
        free(text);
        assert_int_equal(koc_probes_set_client_limits(srv.probes, 0, 3601 * 1000000ull), -EINVAL);
        assert_int_equal(koc_probes_set_client_limits(NULL, 1, 0), -EINVAL);
        server_stop(&srv);
}

/* At max_per_address connections from one address, a new one from there
 * closes that address's oldest waiting connection; other addresses keep
 * theirs. */
static void test_per_address_limit(void **state) {
        server srv;
        server_init(&srv);
        assert_int_equal(koc_probes_set_client_limits(srv.probes, 2, 0), 0);
        assert_int_equal(koc_probes_listen(srv.probes, "127.0.0.1:0", KOC_PROBES_HEALTH), 0);
        capture_start();
        server_run(&srv);

        int other = connect_from("127.0.0.2", srv.port);
        usleep(20000);
        int a = connect_from("127.0.0.1", srv.port);
        usleep(20000);
        int b = connect_from("127.0.0.1", srv.port);
        usleep(20000);
        /* The third from 127.0.0.1 sends its request at once, as the
         * kubelet does, and is answered. */
        int c = connect_from("127.0.0.1", srv.port);
        raw_request(c);
        assert_true(closed_by_server(a));
        assert_true(capture_end("2 connections from 127.0.0.1 (limit per address): closed its "
                                "oldest"));
        /* 127.0.0.2's connection, older than all, is still open. */
        raw_request(other);
        raw_request(b);
        close(a);
        close(b);
        close(c);
        close(other);
        server_halt(&srv);
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(koc_metrics_render(srv.metrics, &text, &len), 0);
        assert_non_null(
                strstr(text, "koc_probes_connections_closed_total{reason=\"per_address\"} 1\n"));
        free(text);
        server_stop(&srv);
}

static void test_idle_timeout(void **state) {
        server srv;
        server_init(&srv);
        assert_int_equal(koc_probes_set_limits(srv.probes, 0, 1000000, 0), 0);
        assert_int_equal(koc_probes_listen(srv.probes, "127.0.0.1:0", KOC_PROBES_HEALTH), 0);
        server_run(&srv);

        /* An idle connection is closed by the server (read sees EOF), well
         * before the 10 s receive timeout of the socket. */
        int fd = connect_raw(srv.port);
        raw_request(fd);
        char buf[64];
        assert_int_equal(read(fd, buf, sizeof(buf)), 0);
        close(fd);
        server_stop(&srv);
}

static void test_listen_errors(void **state) {
        server srv;
        server_init(&srv);
        static const char *const bad[] = { "",         "abc",       "1.2.3.4",  ":99999",
                                           "[::1]",    "[::1]x:1",  "host:80",  "1.2.3.4:-1",
                                           ":",        "[zz]:80",   "1.2.3:80", "127.0.0.1:8o" };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(koc_probes_listen(srv.probes, bad[i], KOC_PROBES_HEALTH),
                                 -EINVAL);
        assert_int_equal(koc_probes_listen(srv.probes, "127.0.0.1:0", 0), -EINVAL);
        assert_int_equal(koc_probes_listen(srv.probes, "127.0.0.1:0", 0x10), -EINVAL);

        /* "0" disables. */
        uint16_t port = 0;
        assert_int_equal(koc_probes_listen(srv.probes, "0", KOC_PROBES_METRICS), 0);
        assert_int_equal(koc_probes_get_port(srv.probes, KOC_PROBES_METRICS, &port), -ENXIO);

        /* A port in use. */
        assert_int_equal(koc_probes_listen(srv.probes, "127.0.0.1:0", KOC_PROBES_HEALTH), 0);
        assert_int_equal(koc_probes_get_port(srv.probes, KOC_PROBES_HEALTH, &port), 0);
        char addr[32];
        snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
        assert_int_equal(koc_probes_listen(srv.probes, addr, KOC_PROBES_METRICS), -EADDRINUSE);

        /* Stop closes the listener; the port can be bound again. */
        koc_probes_stop(srv.probes);
        koc_probes_stop(srv.probes);
        assert_int_equal(koc_probes_get_port(srv.probes, KOC_PROBES_HEALTH, &port), -ENXIO);
        assert_int_equal(koc_probes_listen(srv.probes, addr, KOC_PROBES_METRICS), 0);

        /* Check names. */
        assert_int_equal(koc_probes_add_ready_check(srv.probes, "leader", check_leader, NULL, NULL),
                         -EEXIST);
        assert_int_equal(
                koc_probes_add_ready_check(srv.probes, "shutdown", check_leader, NULL, NULL),
                -EEXIST);
        assert_int_equal(koc_probes_add_health_check(srv.probes, "ping", check_leader, NULL, NULL),
                         -EEXIST);
        assert_int_equal(
                koc_probes_add_ready_check(srv.probes, "bad name", check_leader, NULL, NULL),
                -EINVAL);
        assert_int_equal(koc_probes_add_ready_check(srv.probes, "a/b", check_leader, NULL, NULL),
                         -EINVAL);
        assert_int_equal(koc_probes_add_ready_check(srv.probes, "x", NULL, NULL, NULL), -EINVAL);
        assert_int_equal(koc_probes_remove_check(srv.probes, "leader"), 0);
        assert_int_equal(koc_probes_remove_check(srv.probes, "leader"), -ENOENT);
        assert_int_equal(koc_probes_remove_check(srv.probes, "shutdown"), -EPERM);
        assert_int_equal(koc_probes_add_ready_check(srv.probes, "leader", check_leader, NULL, NULL),
                         0);
        assert_int_equal(koc_probes_set_limits(srv.probes, 0, 0, 100), -EINVAL);
        assert_null(koc_probes_unref(NULL));
        assert_false(koc_probes_get_ready(NULL));
        server_stop(&srv);
}

/* koc_probes_stop() closes the listener and every open connection. */
static void test_stop_closes_connections(void **state) {
        server srv;
        server_start(&srv, "127.0.0.1:0", KOC_PROBES_HEALTH);
        int keep = connect_raw(srv.port);
        raw_request(keep);
        server_halt(&srv); /* the loop thread ends; this thread owns the loop now */

        koc_probes_stop(srv.probes);
        char buf[16];
        assert_int_equal(read(keep, buf, sizeof(buf)), 0);
        close(keep);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(srv.port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_not_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        close(fd);
        server_stop(&srv);
}

/* A check's destroy callback runs once, when the check goes: removed, or the
 * server freed; a refused registration leaves userdata to the caller. */
static void count_destroy(void *userdata) {
        (*(int *)userdata)++;
}

static void test_check_destroy_callbacks(void **state) {
        sd_event *e = NULL;
        koc_probes *p = NULL;
        int removed = 0, freed = 0, refused = 0;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(koc_probes_new(e, NULL, &p), 0);
        assert_int_equal(koc_probes_add_ready_check(p, "a", check_leader, &removed, count_destroy),
                         0);
        assert_int_equal(koc_probes_add_health_check(p, "b", check_leader, &freed, count_destroy),
                         0);
        assert_int_equal(koc_probes_add_ready_check(p, "a", check_leader, &refused, count_destroy),
                         -EEXIST);
        assert_int_equal(koc_probes_remove_check(p, "a"), 0);
        assert_int_equal(removed, 1);
        assert_int_equal(freed, 0);
        assert_int_equal(koc_probes_remove_check(p, "a"), -ENOENT);
        assert_int_equal(removed, 1);
        koc_probes_unref(p);
        assert_int_equal(freed, 1);
        assert_int_equal(refused, 0);
        sd_event_unref(e);
}

int main(void) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        if (!getenv("KOC_LOG_LEVEL") || !*getenv("KOC_LOG_LEVEL"))
                koc_log_set_level(KOC_LOG_WARN);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_check_destroy_callbacks),
                cmocka_unit_test(test_readyz_verbose),
                cmocka_unit_test(test_exclude),
                cmocka_unit_test(test_readiness_switch),
                cmocka_unit_test(test_health_paths),
                cmocka_unit_test(test_methods_and_paths),
                cmocka_unit_test(test_metrics),
                cmocka_unit_test(test_no_metrics_registry),
                cmocka_unit_test(test_ipv6),
                cmocka_unit_test(test_oversized_request),
                cmocka_unit_test(test_connection_limit),
                cmocka_unit_test(test_request_deadline),
                cmocka_unit_test(test_per_address_limit),
                cmocka_unit_test(test_idle_timeout),
                cmocka_unit_test(test_listen_errors),
                cmocka_unit_test(test_stop_closes_connections),
        };
        int r = cmocka_run_group_tests(tests, NULL, NULL);
        curl_global_cleanup();
        return r;
}

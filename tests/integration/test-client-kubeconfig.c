/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a kubeconfig asks of every request, seen on the wire: the
 * impersonation headers (as, as-uid, as-groups, as-user-extra), basic auth,
 * disable-compression, and proxy-url through loopback proxies (HTTP CONNECT,
 * HTTP over TLS, SOCKS5) that count their connections.
 *
 * The headers are read by a small loopback HTTP server that records each
 * request's head.  The proxies run against koc-apiserver (or, as
 * k8s-test-client-kubeconfig, the real kube-apiserver).  On the real server
 * the impersonation is checked end to end: a request as an impersonated user
 * without rights is refused (403), one as a user the admin may impersonate
 * and that has rights succeeds, SelfSubjectReview reports exactly the
 * impersonated identity (uid, groups, percent-encoded extras), and a user
 * who may not impersonate is refused.
 */
#include <arpa/inet.h>
#include <errno.h>
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "koc/client.h"
#include "koc/config.h"
#include "koc/time.h"
#include "tests/harness/apiserver.h"

#define LEASES "/apis/coordination.k8s.io/v1/namespaces/default/leases"
#define SAFETY_USEC (60 * KOC_USEC_PER_SEC)
#define MAX_CONNS 64

static koc_test_apiserver srv;
static char dir[300];

static const char *path_of(const char *name) {
        static char p[4][400];
        static int k;
        k = (k + 1) % 4;
        snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
        return p[k];
}

static void write_file(const char *name, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void write_file(const char *name, const char *fmt, ...) {
        FILE *f = fopen(path_of(name), "w");
        assert_non_null(f);
        va_list ap;
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(chmod(path_of(name), 0600), 0);
}

/* ---- loopback servers ----------------------------------------------------- */

static int listen_loopback(int *ret_port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
        assert_int_equal(listen(fd, 64), 0);
        socklen_t len = sizeof a;
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        *ret_port = ntohs(a.sin_port);
        return fd;
}

/* Reads until the end of an HTTP head (or max bytes, or 5 s). */
static ssize_t read_head(int fd, char *buf, size_t max) {
        size_t len = 0;
        uint64_t end = koc_now_boottime_usec() + 5 * KOC_USEC_PER_SEC;
        while (len + 1 < max && koc_now_boottime_usec() < end) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, 100) <= 0)
                        continue;
                ssize_t k = read(fd, buf + len, max - 1 - len);
                if (k <= 0)
                        return -1;
                len += (size_t)k;
                buf[len] = '\0';
                if (strstr(buf, "\r\n\r\n"))
                        return (ssize_t)len;
        }
        return -1;
}

static bool read_exact(int fd, void *buf, size_t n) {
        size_t got = 0;
        uint64_t end = koc_now_boottime_usec() + 5 * KOC_USEC_PER_SEC;
        while (got < n && koc_now_boottime_usec() < end) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, 100) <= 0)
                        continue;
                ssize_t k = read(fd, (char *)buf + got, n - got);
                if (k <= 0)
                        return false;
                got += (size_t)k;
        }
        return got == n;
}

static bool write_all(int fd, const void *buf, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, buf, n);
                if (k <= 0)
                        return false;
                buf = (const char *)buf + k;
                n -= (size_t)k;
        }
        return true;
}

typedef struct server {
        int fd;
        int port;
        pthread_t thread;
        atomic_bool stop;
        pthread_mutex_t lock;
        char last_head[8192]; /* under lock */
        atomic_int n_requests;
} server;

/* The recording server: one request per connection, answered 200 "{}". */
static void *recorder_main(void *userdata) {
        server *s = userdata;
        while (!atomic_load(&s->stop)) {
                struct pollfd p = {.fd = s->fd, .events = POLLIN};
                if (poll(&p, 1, 50) <= 0)
                        continue;
                int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        continue;
                char head[8192];
                if (read_head(c, head, sizeof head) > 0) {
                        pthread_mutex_lock(&s->lock);
                        snprintf(s->last_head, sizeof s->last_head, "%s", head);
                        pthread_mutex_unlock(&s->lock);
                        atomic_fetch_add(&s->n_requests, 1);
                        static const char answer[] = "HTTP/1.1 200 OK\r\n"
                                                     "Content-Type: application/json\r\n"
                                                     "Content-Length: 2\r\n"
                                                     "Connection: close\r\n\r\n{}";
                        (void)write_all(c, answer, sizeof answer - 1);
                }
                close(c);
        }
        return NULL;
}

/* The proxy: HTTP CONNECT, absolute-form HTTP, or SOCKS5 (no auth, CONNECT),
 * one thread per connection, each relaying until either side closes. */
typedef struct proxy {
        int fd;
        int port;
        pthread_t thread;
        atomic_bool stop;
        atomic_int n_conns;
        pthread_mutex_t lock;
        char last_target[300]; /* host:port the client asked for; under lock */
        int last_socks_atyp;   /* SOCKS5 address type of the last request */
        pthread_t conns[MAX_CONNS];
        int n_threads;
        SSL_CTX *tls; /* an https proxy: TLS first, then the HTTP proxy protocol */
} proxy;

typedef struct proxy_conn {
        proxy *p;
        int fd;
        SSL *ssl; /* NULL: plain TCP */
} proxy_conn;

/* The client side of a proxy connection, plain or TLS. */
static ssize_t conn_read(proxy_conn *pc, void *buf, size_t n) {
        if (!pc->ssl)
                return read(pc->fd, buf, n);
        int k = SSL_read(pc->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
        if (k > 0)
                return k;
        int e = SSL_get_error(pc->ssl, k);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                errno = EAGAIN;
                return -1;
        }
        return 0;
}

static bool conn_write(proxy_conn *pc, const void *buf, size_t n) {
        if (!pc->ssl)
                return write_all(pc->fd, buf, n);
        return SSL_write(pc->ssl, buf, (int)n) == (int)n;
}

/* Waits (up to ms) until the client side has data. */
static bool conn_wait(proxy_conn *pc, int ms) {
        if (pc->ssl && SSL_pending(pc->ssl) > 0)
                return true;
        struct pollfd p = {.fd = pc->fd, .events = POLLIN};
        return poll(&p, 1, ms) > 0;
}

static ssize_t conn_read_head(proxy_conn *pc, char *buf, size_t max) {
        size_t len = 0;
        uint64_t end = koc_now_boottime_usec() + 5 * KOC_USEC_PER_SEC;
        while (len + 1 < max && koc_now_boottime_usec() < end) {
                if (!conn_wait(pc, 100))
                        continue;
                ssize_t k = conn_read(pc, buf + len, max - 1 - len);
                if (k < 0 && errno == EAGAIN)
                        continue;
                if (k <= 0)
                        return -1;
                len += (size_t)k;
                buf[len] = '\0';
                if (strstr(buf, "\r\n\r\n"))
                        return (ssize_t)len;
        }
        return -1;
}

static int connect_to(const char *host, int port) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        if (strcmp(host, "localhost") == 0)
                host = "127.0.0.1";
        if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || ntohl(a.sin_addr.s_addr) >> 24 != 127)
                return -1; /* loopback only */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static void relay(proxy_conn *pc, int up) {
        char buf[16384];
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (!atomic_load(&pc->p->stop) && koc_now_boottime_usec() < end) {
                bool pending = pc->ssl && SSL_pending(pc->ssl) > 0;
                struct pollfd f[2] = {{.fd = pc->fd, .events = POLLIN},
                                      {.fd = up, .events = POLLIN}};
                if (!pending && poll(f, 2, 50) <= 0)
                        continue;
                if (pending || (f[0].revents & (POLLIN | POLLHUP | POLLERR))) {
                        ssize_t k = conn_read(pc, buf, sizeof buf);
                        if (k < 0 && errno == EAGAIN)
                                continue;
                        if (k <= 0 || !write_all(up, buf, (size_t)k))
                                return;
                }
                if (f[1].revents & (POLLIN | POLLHUP | POLLERR)) {
                        ssize_t k = read(up, buf, sizeof buf);
                        if (k <= 0 || !conn_write(pc, buf, (size_t)k))
                                return;
                }
        }
}

static void set_target(proxy *p, const char *host, int port, int atyp) {
        pthread_mutex_lock(&p->lock);
        snprintf(p->last_target, sizeof p->last_target, "%s:%d", host, port);
        p->last_socks_atyp = atyp;
        pthread_mutex_unlock(&p->lock);
}

static int socks5_handshake(proxy *p, int c) {
        unsigned char h[2], methods[255], req[4], len;
        char host[256] = "";
        if (!read_exact(c, h, 2) || h[0] != 5 || !read_exact(c, methods, h[1]) ||
            !write_all(c, "\x05\x00", 2) || !read_exact(c, req, 4) || req[0] != 5 || req[1] != 1)
                return -1;
        if (req[3] == 1) {
                unsigned char ip[4];
                if (!read_exact(c, ip, 4))
                        return -1;
                inet_ntop(AF_INET, ip, host, sizeof host);
        } else if (req[3] == 3) {
                if (!read_exact(c, &len, 1) || !read_exact(c, host, len))
                        return -1;
                host[len] = '\0';
        } else
                return -1;
        unsigned char pb[2];
        if (!read_exact(c, pb, 2))
                return -1;
        int port = pb[0] << 8 | pb[1];
        set_target(p, host, port, req[3]);
        int up = connect_to(host, port);
        static const unsigned char ok[] = {5, 0, 0, 1, 0, 0, 0, 0, 0, 0};
        static const unsigned char refused[] = {5, 5, 0, 1, 0, 0, 0, 0, 0, 0};
        (void)write_all(c, up >= 0 ? ok : refused, sizeof ok);
        return up;
}

static int http_handshake(proxy_conn *pc) {
        char head[8192], host[256];
        int port;
        if (conn_read_head(pc, head, sizeof head) <= 0)
                return -1;
        if (sscanf(head, "CONNECT %255[^:]:%d ", host, &port) == 2) {
                set_target(pc->p, host, port, 0);
                int up = connect_to(host, port);
                const char *answer = up >= 0 ? "HTTP/1.1 200 Connection established\r\n\r\n"
                                             : "HTTP/1.1 502 Bad Gateway\r\n\r\n";
                (void)conn_write(pc, answer, strlen(answer));
                return up;
        }
        /* Absolute form: "GET http://host:port/path HTTP/1.1", passed on. */
        if (sscanf(head, "%*s http://%255[^:/]:%d", host, &port) != 2)
                return -1;
        set_target(pc->p, host, port, 0);
        int up = connect_to(host, port);
        if (up >= 0 && !write_all(up, head, strlen(head))) {
                close(up);
                return -1;
        }
        return up;
}

static void *proxy_conn_main(void *userdata) {
        proxy_conn *pc = userdata;
        unsigned char first;
        int up = -1;
        if (pc->p->tls) {
                pc->ssl = SSL_new(pc->p->tls);
                if (pc->ssl && SSL_set_fd(pc->ssl, pc->fd) == 1 && SSL_accept(pc->ssl) == 1)
                        up = http_handshake(pc);
        } else if (recv(pc->fd, &first, 1, MSG_PEEK) == 1)
                up = first == 5 ? socks5_handshake(pc->p, pc->fd) : http_handshake(pc);
        if (up >= 0) {
                relay(pc, up);
                close(up);
        }
        if (pc->ssl) {
                SSL_shutdown(pc->ssl);
                SSL_free(pc->ssl);
        }
        close(pc->fd);
        free(pc);
        return NULL;
}

static void *proxy_main(void *userdata) {
        proxy *p = userdata;
        while (!atomic_load(&p->stop)) {
                struct pollfd f = {.fd = p->fd, .events = POLLIN};
                if (poll(&f, 1, 50) <= 0)
                        continue;
                int c = accept4(p->fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        continue;
                atomic_fetch_add(&p->n_conns, 1);
                proxy_conn *pc = malloc(sizeof *pc);
                if (!pc || p->n_threads >= MAX_CONNS) {
                        free(pc);
                        close(c);
                        continue;
                }
                *pc = (proxy_conn){.p = p, .fd = c};
                /* SSL_accept blocks: bounded by a receive timeout. */
                struct timeval tv = {.tv_sec = 5};
                (void)setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                if (pthread_create(&p->conns[p->n_threads], NULL, proxy_conn_main, pc) != 0) {
                        free(pc);
                        close(c);
                        continue;
                }
                p->n_threads++;
        }
        for (int i = 0; i < p->n_threads; i++)
                pthread_join(p->conns[i], NULL);
        return NULL;
}

static void recorder_start(server *s) {
        *s = (server){0};
        pthread_mutex_init(&s->lock, NULL);
        s->fd = listen_loopback(&s->port);
        assert_int_equal(pthread_create(&s->thread, NULL, recorder_main, s), 0);
}

static void recorder_stop(server *s) {
        atomic_store(&s->stop, true);
        pthread_join(s->thread, NULL);
        close(s->fd);
        pthread_mutex_destroy(&s->lock);
}

/* A self-signed certificate for 127.0.0.1: the https proxy's, which no
 * cluster CA vouches for. */
static SSL_CTX *self_signed_ctx(void) {
        EVP_PKEY *key = EVP_EC_gen("P-256");
        X509 *x = X509_new();
        assert_non_null(key);
        assert_non_null(x);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
        X509_gmtime_adj(X509_getm_notBefore(x), -60);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, key);
        X509_NAME *name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"proxy", -1,
                                   -1, 0);
        X509_set_issuer_name(x, name);
        assert_true(X509_sign(x, key, EVP_sha256()) > 0);
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        assert_non_null(ctx);
        assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
        X509_free(x);
        EVP_PKEY_free(key);
        return ctx;
}

static void proxy_start(proxy *p, bool tls) {
        *p = (proxy){0};
        if (tls)
                p->tls = self_signed_ctx();
        pthread_mutex_init(&p->lock, NULL);
        p->fd = listen_loopback(&p->port);
        assert_int_equal(pthread_create(&p->thread, NULL, proxy_main, p), 0);
}

static void proxy_stop(proxy *p) {
        atomic_store(&p->stop, true);
        pthread_join(p->thread, NULL);
        close(p->fd);
        SSL_CTX_free(p->tls);
        pthread_mutex_destroy(&p->lock);
}

/* One recorder and one proxy for the whole run, so that a failed test case
 * leaves no thread behind on a dead stack frame; each case resets them. */
static server recorder;
static proxy prx, tls_prx;

static server *recorder_reset(void) {
        pthread_mutex_lock(&recorder.lock);
        recorder.last_head[0] = '\0';
        pthread_mutex_unlock(&recorder.lock);
        atomic_store(&recorder.n_requests, 0);
        return &recorder;
}

static proxy *proxy_reset_one(proxy *p) {
        pthread_mutex_lock(&p->lock);
        p->last_target[0] = '\0';
        p->last_socks_atyp = 0;
        pthread_mutex_unlock(&p->lock);
        atomic_store(&p->n_conns, 0);
        return p;
}

static proxy *proxy_reset(void) {
        return proxy_reset_one(&prx);
}

/* ---- the client ----------------------------------------------------------- */

typedef struct result {
        bool done;
        int error;
        long status;
        char message[512];
        cJSON *body;
} result;

static void on_result(koc_client *c, koc_response *r, void *userdata) {
        result *res = userdata;
        res->done = true;
        res->error = r->error;
        res->status = r->status;
        snprintf(res->message, sizeof res->message, "%s", r->message);
        res->body = r->body ? cJSON_Duplicate(r->body, true) : NULL;
}

/* Loads kubeconfig `name`, sends one request with a fresh client and loop,
 * and waits for the answer (bounded). */
static void request(const char *name, const char *method, const char *path, const char *body,
                    result *res) {
        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        if (koc_cluster_config_from_kubeconfig(path_of(name), NULL, &cfg, &err) < 0)
                fail_msg("%s: %s", name, err.message);
        sd_event *event = NULL;
        assert_int_equal(sd_event_new(&event), 0);
        koc_client *client = NULL;
        assert_int_equal(koc_client_new(event, cfg, &client), 0);
        cJSON *b = body ? cJSON_Parse(body) : NULL;
        *res = (result){0};
        assert_int_equal(koc_client_request(client,
                                            &(koc_request_spec){.method = method,
                                                                .path = path,
                                                                .body = b,
                                                                .timeout_usec =
                                                                        10 * KOC_USEC_PER_SEC},
                                            on_result, res, NULL),
                         0);
        cJSON_Delete(b);
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (!res->done) {
                assert_true(koc_now_boottime_usec() < end);
                assert_true(sd_event_run(event, 100 * KOC_USEC_PER_MSEC) >= 0);
        }
        koc_client_unref(client);
        sd_event_unref(event);
        koc_cluster_config_unref(cfg);
}

#define KC_HEAD                                                                                    \
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"                                      \
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"

/* ---- headers ---------------------------------------------------------------- */

static void assert_has_line(const char *head, const char *line) {
        char want[1024];
        snprintf(want, sizeof want, "\r\n%s\r\n", line);
        if (!strstr(head, want))
                fail_msg("no header line \"%s\" in:\n%s", line, head);
}

static void recorded_head(server *s, char *buf, size_t size) {
        pthread_mutex_lock(&s->lock);
        snprintf(buf, size, "%s", s->last_head);
        pthread_mutex_unlock(&s->lock);
}

/* Every impersonation field of the kubeconfig reaches the wire, as client-go
 * sends it (one Impersonate-Group per group, extras' keys percent-encoded). */
static void test_impersonation_headers(void **state) {
        server *s = recorder_reset();
        write_file("imp.yaml",
                   KC_HEAD "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:%d'}}]\n"
                           "users:\n"
                           "- name: u\n"
                           "  user:\n"
                           "    token: tok\n"
                           "    as: system:serviceaccount:default:nobody\n"
                           "    as-uid: uid-1\n"
                           "    as-groups: [g1, 'g 2']\n"
                           "    as-user-extra: {example.com/scopes: [read, write], 'a%%b': [c]}\n",
                   s->port);
        result res;
        request("imp.yaml", "GET", "/api/v1/namespaces", NULL, &res);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 200);
        cJSON_Delete(res.body);
        char head[8192];
        recorded_head(s, head, sizeof head);
        assert_has_line(head, "Authorization: Bearer tok");
        assert_has_line(head, "Impersonate-User: system:serviceaccount:default:nobody");
        assert_has_line(head, "Impersonate-Uid: uid-1");
        assert_has_line(head, "Impersonate-Group: g1");
        assert_has_line(head, "Impersonate-Group: g 2");
        assert_has_line(head, "Impersonate-Extra-example.com%2Fscopes: read");
        assert_has_line(head, "Impersonate-Extra-example.com%2Fscopes: write");
        assert_has_line(head, "Impersonate-Extra-a%25b: c");
        assert_has_line(head, "Accept-Encoding: gzip");
}

/* username/password: basic auth on the first request; disable-compression:
 * no Accept-Encoding. */
static void test_basic_auth_and_compression(void **state) {
        server *s = recorder_reset();
        write_file("basic.yaml",
                   KC_HEAD "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:%d', "
                           "disable-compression: true}}]\n"
                           "users: [{name: u, user: {username: admin, password: s3cret}}]\n",
                   s->port);
        result res;
        request("basic.yaml", "GET", "/api/v1/namespaces", NULL, &res);
        assert_int_equal(res.status, 200);
        cJSON_Delete(res.body);
        char head[8192];
        recorded_head(s, head, sizeof head);
        assert_has_line(head, "Authorization: Basic YWRtaW46czNjcmV0"); /* admin:s3cret */
        assert_null(strstr(head, "Accept-Encoding"));
        assert_null(strstr(head, "Impersonate-"));
        assert_int_equal(atomic_load(&s->n_requests), 1);
}

/* ---- proxies ---------------------------------------------------------------- */

static int server_port(void) {
        const char *colon = strrchr(srv.url, ':');
        assert_non_null(colon);
        return atoi(colon + 1);
}

/* koc-apiserver (or kube-apiserver) through the proxy: every connection
 * goes through it, even with NO_PROXY naming the server (client-go's
 * proxy-url does not consult the environment). */
static void through_proxy(const char *scheme) {
        proxy *p = proxy_reset();
        write_file("proxied.yaml",
                   KC_HEAD "clusters: [{name: k, cluster: {server: '%s', "
                           "certificate-authority: '%s', proxy-url: '%s://127.0.0.1:%d'}}]\n"
                           "users: [{name: u, user: {token: '%s'}}]\n",
                   srv.url, srv.ca_file, scheme, p->port, srv.token);
        setenv("NO_PROXY", "*", 1);
        for (int i = 0; i < 3; i++) {
                result res;
                request("proxied.yaml", "GET", LEASES, NULL, &res);
                if (res.error < 0 || res.status != 200)
                        fail_msg("through %s proxy: error %d status %ld: %s", scheme, res.error,
                                 res.status, res.message);
                cJSON_Delete(res.body);
        }
        unsetenv("NO_PROXY");
        /* A fresh client per request: three connections, all proxied. */
        assert_int_equal(atomic_load(&p->n_conns), 3);
        char want[64];
        snprintf(want, sizeof want, "127.0.0.1:%d", server_port());
        pthread_mutex_lock(&p->lock);
        assert_string_equal(p->last_target, want);
        pthread_mutex_unlock(&p->lock);
}

static void test_http_proxy(void **state) {
        through_proxy("http");
}

static void test_socks5_proxy(void **state) {
        through_proxy("socks5");
}

/* An https proxy: TLS to the proxy, verified like the cluster (Go's transport
 * uses the cluster's TLS settings for it).  Its self-signed certificate is
 * refused under the cluster's CA, and accepted with insecure-skip-tls-verify. */
static void test_https_proxy(void **state) {
        proxy *p = proxy_reset_one(&tls_prx);
        write_file("https-proxy.yaml",
                   KC_HEAD "clusters: [{name: k, cluster: {server: '%s', "
                           "certificate-authority: '%s', proxy-url: 'https://127.0.0.1:%d'}}]\n"
                           "users: [{name: u, user: {token: '%s'}}]\n",
                   srv.url, srv.ca_file, p->port, srv.token);
        result res;
        request("https-proxy.yaml", "GET", LEASES, NULL, &res);
        if (res.error != -EPROTO || !strstr(res.message, "certificate"))
                fail_msg("a proxy certificate the cluster CA did not sign: error %d status %ld: %s",
                         res.error, res.status, res.message);
        cJSON_Delete(res.body);
        assert_int_equal(atomic_load(&p->n_conns), 1);

        write_file("https-proxy.yaml",
                   KC_HEAD "clusters: [{name: k, cluster: {server: '%s', "
                           "insecure-skip-tls-verify: true, "
                           "proxy-url: 'https://127.0.0.1:%d'}}]\n"
                           "users: [{name: u, user: {token: '%s'}}]\n",
                   srv.url, p->port, srv.token);
        request("https-proxy.yaml", "GET", LEASES, NULL, &res);
        if (res.error < 0 || res.status != 200)
                fail_msg("through the https proxy: error %d status %ld: %s", res.error, res.status,
                         res.message);
        cJSON_Delete(res.body);
        assert_int_equal(atomic_load(&p->n_conns), 2);
        char want[64];
        snprintf(want, sizeof want, "127.0.0.1:%d", server_port());
        pthread_mutex_lock(&p->lock);
        assert_string_equal(p->last_target, want);
        pthread_mutex_unlock(&p->lock);
}

/* socks5 is socks5h to libcurl: the proxy gets the host name to resolve
 * (address type 3), as from Go's SOCKS5 dialer, not an address resolved
 * here. */
static void test_socks5_proxy_resolves_name(void **state) {
        server *s = recorder_reset();
        proxy *p = proxy_reset();
        write_file("socks-name.yaml",
                   KC_HEAD "clusters: [{name: k, cluster: {server: 'http://localhost:%d', "
                           "proxy-url: 'socks5://127.0.0.1:%d'}}]\n"
                           "users: [{name: u, user: {token: t}}]\n",
                   s->port, p->port);
        result res;
        request("socks-name.yaml", "GET", "/api/v1/namespaces", NULL, &res);
        assert_int_equal(res.status, 200);
        cJSON_Delete(res.body);
        assert_int_equal(atomic_load(&p->n_conns), 1);
        char want[64];
        snprintf(want, sizeof want, "localhost:%d", s->port);
        pthread_mutex_lock(&p->lock);
        assert_string_equal(p->last_target, want);
        assert_int_equal(p->last_socks_atyp, 3);
        pthread_mutex_unlock(&p->lock);
}

/* An http:// server through an http proxy: the absolute-form request goes
 * to the proxy, with the impersonation headers. */
static void test_http_proxy_plain_server(void **state) {
        server *s = recorder_reset();
        proxy *p = proxy_reset();
        write_file("plain-proxied.yaml",
                   KC_HEAD "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:%d', "
                           "proxy-url: 'http://127.0.0.1:%d'}}]\n"
                           "users: [{name: u, user: {token: t, as: bob}}]\n",
                   s->port, p->port);
        result res;
        request("plain-proxied.yaml", "GET", "/api/v1/namespaces", NULL, &res);
        assert_int_equal(res.status, 200);
        cJSON_Delete(res.body);
        assert_int_equal(atomic_load(&p->n_conns), 1);
        char head[8192];
        recorded_head(s, head, sizeof head);
        char want[128];
        snprintf(want, sizeof want, "GET http://127.0.0.1:%d/api/v1/namespaces ", s->port);
        assert_true(strncmp(head, want, strlen(want)) == 0);
        assert_has_line(head, "Impersonate-User: bob");
}

/* ---- impersonation on the real server -------------------------------------- */

static bool json_has_string(const cJSON *arr, const char *s) {
        const cJSON *e;
        cJSON_ArrayForEach(e, arr) if (cJSON_IsString(e) && strcmp(e->valuestring, s) == 0) return
                true;
        return false;
}

static void write_impersonating(const char *name, const char *token, const char *user_lines) {
        write_file(name,
                   KC_HEAD "clusters: [{name: k, cluster: {server: '%s', "
                           "certificate-authority: '%s'}}]\n"
                           "users:\n- name: u\n  user:\n    token: '%s'\n%s",
                   srv.url, srv.ca_file, token, user_lines);
}

static void test_impersonation_real(void **state) {
        if (!srv.real)
                skip(); /* koc-apiserver does not implement impersonation */
        result res;

        /* The admin token, impersonating a ServiceAccount without rights:
         * refused as that account. */
        write_impersonating("nobody.yaml", srv.token,
                            "    as: system:serviceaccount:default:nobody\n");
        request("nobody.yaml", "GET", "/api/v1/namespaces/default/configmaps", NULL, &res);
        assert_int_equal(res.status, 403);
        if (!strstr(res.message, "system:serviceaccount:default:nobody"))
                fail_msg("403 does not name the impersonated user: %s", res.message);
        cJSON_Delete(res.body);

        /* Impersonating a user in a group with rights: allowed, and the
         * server sees exactly the identity asked for. */
        write_impersonating("someone.yaml", srv.token,
                            "    as: koc-impersonated\n"
                            "    as-uid: uid-42\n"
                            "    as-groups: [system:masters, team-a]\n"
                            "    as-user-extra: {example.com/scopes: [read, write], "
                            "'odd key%': [x]}\n");
        request("someone.yaml", "GET", "/api/v1/namespaces/default/configmaps", NULL, &res);
        if (res.status != 200)
                fail_msg("as a member of system:masters: %ld %s", res.status, res.message);
        cJSON_Delete(res.body);
        request("someone.yaml", "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"SelfSubjectReview\"}",
                &res);
        if (res.status != 201 && res.status != 200)
                fail_msg("SelfSubjectReview: %ld %s", res.status, res.message);
        const cJSON *ui = cJSON_GetObjectItem(cJSON_GetObjectItem(res.body, "status"), "userInfo");
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(ui, "username")),
                            "koc-impersonated");
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(ui, "uid")), "uid-42");
        const cJSON *groups = cJSON_GetObjectItem(ui, "groups");
        assert_true(json_has_string(groups, "system:masters"));
        assert_true(json_has_string(groups, "team-a"));
        const cJSON *extra = cJSON_GetObjectItem(ui, "extra");
        const cJSON *scopes = cJSON_GetObjectItem(extra, "example.com/scopes");
        assert_int_equal(cJSON_GetArraySize(scopes), 2);
        assert_true(json_has_string(scopes, "read"));
        assert_true(json_has_string(scopes, "write"));
        assert_true(json_has_string(cJSON_GetObjectItem(extra, "odd key%"), "x"));
        cJSON_Delete(res.body);

        /* An unprivileged user may not impersonate the admin. */
        write_impersonating("escalate.yaml", srv.user_token, "    as: koc-admin\n"
                                                             "    as-groups: [system:masters]\n");
        request("escalate.yaml", "GET", "/api/v1/namespaces/default/configmaps", NULL, &res);
        assert_int_equal(res.status, 403);
        if (!strstr(res.message, "impersonate"))
                fail_msg("403 does not say impersonation was refused: %s", res.message);
        cJSON_Delete(res.body);
}

static int group_setup(void **state) {
        if (koc_test_apiserver_start(&srv, NULL) < 0)
                return -1;
        /* Not srv.dir: there is none on the real server. */
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/koc-kubeconfig-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir))
                return -1;
        recorder_start(&recorder);
        proxy_start(&prx, false);
        proxy_start(&tls_prx, true);
        return 0;
}

static int group_teardown(void **state) {
        proxy_stop(&tls_prx);
        proxy_stop(&prx);
        recorder_stop(&recorder);
        koc_test_apiserver_stop(&srv);
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_impersonation_headers),
                cmocka_unit_test(test_basic_auth_and_compression),
                cmocka_unit_test(test_http_proxy),
                cmocka_unit_test(test_https_proxy),
                cmocka_unit_test(test_socks5_proxy),
                cmocka_unit_test(test_socks5_proxy_resolves_name),
                cmocka_unit_test(test_http_proxy_plain_server),
                cmocka_unit_test(test_impersonation_real),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

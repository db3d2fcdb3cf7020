/* SPDX-License-Identifier: Apache-2.0 */
/* The TLS server (serving/) and the metrics filter (serving/authz.c):
 * certificate errors named at start, rotation under a stream of requests
 * with no failed request, TLS 1.1 refused, and 401/403/200/503 through
 * TokenReview and SubjectAccessReview on koc-apiserver (or kube-apiserver:
 * k8s-test-serving), the review caches' TTLs counted in reviews sent. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness/apiserver.h"
#include "koc/client.h"
#include "koc/config.h"
#include "koc/log.h"
#include "koc/metrics.h"
#include "serving/authz.h"
#include "serving/serving.h"

static bool under_valgrind(void) {
        return getenv("KOC_UNDER_VALGRIND") != NULL;
}

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- certificates for the tests ------------------------------------------------ */

typedef struct ca {
        gnutls_x509_crt_t crt;
        gnutls_x509_privkey_t key;
} ca;

static void write_file(const char *path, const void *data, size_t len) {
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
}

static void write_datum(const char *path, gnutls_datum_t *d) {
        write_file(path, d->data, d->size);
        gnutls_free(d->data);
}

static gnutls_x509_privkey_t new_key(void) {
        gnutls_x509_privkey_t k;
        assert_int_equal(gnutls_x509_privkey_init(&k), 0);
        assert_int_equal(gnutls_x509_privkey_generate(
                                 k, GNUTLS_PK_ECDSA,
                                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
                         0);
        return k;
}

static gnutls_x509_crt_t new_crt(const char *cn, gnutls_x509_privkey_t key, int64_t not_before,
                                 int64_t not_after, bool is_ca) {
        gnutls_x509_crt_t c;
        static unsigned serial_counter = 1;
        unsigned char serial[8] = {0x11, 0, 0, 0, 0, 0, 0, 0};
        unsigned n = __atomic_add_fetch(&serial_counter, 1, __ATOMIC_RELAXED);
        memcpy(serial + 4, &n, 4);
        assert_int_equal(gnutls_x509_crt_init(&c), 0);
        assert_int_equal(gnutls_x509_crt_set_version(c, 3), 0);
        assert_int_equal(gnutls_x509_crt_set_serial(c, serial, sizeof serial), 0);
        assert_int_equal(gnutls_x509_crt_set_activation_time(c, (time_t)not_before), 0);
        assert_int_equal(gnutls_x509_crt_set_expiration_time(c, (time_t)not_after), 0);
        assert_int_equal(gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                                       (unsigned)strlen(cn)),
                         0);
        assert_int_equal(gnutls_x509_crt_set_key(c, key), 0);
        assert_int_equal(gnutls_x509_crt_set_basic_constraints(c, is_ca, -1), 0);
        if (is_ca)
                assert_int_equal(gnutls_x509_crt_set_key_usage(c, GNUTLS_KEY_KEY_CERT_SIGN), 0);
        else {
                static const unsigned char v4[4] = {127, 0, 0, 1};
                assert_int_equal(gnutls_x509_crt_set_subject_alt_name(c, GNUTLS_SAN_IPADDRESS, v4,
                                                                      4, GNUTLS_FSAN_APPEND),
                                 0);
                assert_int_equal(gnutls_x509_crt_set_subject_alt_name(
                                         c, GNUTLS_SAN_DNSNAME, "localhost", 9, GNUTLS_FSAN_APPEND),
                                 0);
                assert_int_equal(gnutls_x509_crt_set_key_usage(c, GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
        }
        return c;
}

static void ca_init(ca *a, const char *ca_file) {
        int64_t now = time(NULL);
        a->key = new_key();
        a->crt = new_crt("koc-test-ca", a->key, now - 3600, now + 86400, true);
        assert_int_equal(gnutls_x509_crt_sign2(a->crt, a->crt, a->key, GNUTLS_DIG_SHA256, 0), 0);
        gnutls_datum_t d;
        assert_int_equal(gnutls_x509_crt_export2(a->crt, GNUTLS_X509_FMT_PEM, &d), 0);
        write_datum(ca_file, &d);
}

static void ca_done(ca *a) {
        gnutls_x509_crt_deinit(a->crt);
        gnutls_x509_privkey_deinit(a->key);
}

/* A leaf for cn signed by the CA, valid from not_before to not_after
 * (relative to now), written to cert_file and key_file. */
static void make_leaf(ca *a, const char *cn, int64_t from, int64_t to, const char *cert_file,
                      const char *key_file) {
        int64_t now = time(NULL);
        gnutls_x509_privkey_t k = new_key();
        gnutls_x509_crt_t c = new_crt(cn, k, now + from, now + to, false);
        assert_int_equal(gnutls_x509_crt_sign2(c, a->crt, a->key, GNUTLS_DIG_SHA256, 0), 0);
        gnutls_datum_t d;
        assert_int_equal(gnutls_x509_crt_export2(c, GNUTLS_X509_FMT_PEM, &d), 0);
        write_datum(cert_file, &d);
        assert_int_equal(gnutls_x509_privkey_export2_pkcs8(k, GNUTLS_X509_FMT_PEM, NULL,
                                                           GNUTLS_PKCS_PLAIN, &d),
                         0);
        write_datum(key_file, &d);
        gnutls_x509_crt_deinit(c);
        gnutls_x509_privkey_deinit(k);
}

typedef struct tmpdir {
        char path[64];
} tmpdir;

static void tmpdir_make(tmpdir *t) {
        snprintf(t->path, sizeof t->path, "/tmp/koc-test-serving-XXXXXX");
        assert_non_null(mkdtemp(t->path));
}

static void tmpdir_remove(tmpdir *t) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->path);
        assert_int_equal(system(cmd), 0);
}

static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...) {
        va_list ap;
        char *p;
        va_start(ap, fmt);
        assert_true(vasprintf(&p, fmt, ap) >= 0);
        va_end(ap);
        return p;
}

/* --- certificate errors at start ----------------------------------------------- */

static void expect_error(sd_event *e, const char *cert, const char *key, int code,
                         const char *in_message1, const char *in_message2) {
        koc_serving *s = NULL;
        koc_error err = {0};
        koc_serving_config cfg = {.name = "test", .address = "127.0.0.1:0", .cert_file = cert,
                                  .key_file = key};
        int r = koc__serving_new(e, &cfg, &s, &err);
        if (r != code)
                fail_msg("expected %d, got %d: %s", code, r, err.message);
        assert_null(s);
        if (!strstr(err.message, in_message1) || !strstr(err.message, in_message2))
                fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", err.message, in_message1,
                         in_message2);
}

static void test_cert_errors(void **state) {
        tmpdir t;
        ca a;
        sd_event *e = NULL;
        tmpdir_make(&t);
        char *ca_file = pathf("%s/ca.crt", t.path), *crt = pathf("%s/tls.crt", t.path),
             *key = pathf("%s/tls.key", t.path), *crt2 = pathf("%s/other.crt", t.path),
             *key2 = pathf("%s/other.key", t.path), *missing = pathf("%s/missing.crt", t.path),
             *junk = pathf("%s/junk.pem", t.path);
        ca_init(&a, ca_file);
        assert_int_equal(sd_event_new(&e), 0);
        make_leaf(&a, "one", -60, 3600, crt, key);
        make_leaf(&a, "two", -60, 3600, crt2, key2);
        write_file(junk, "hello\n", 6);

        expect_error(e, missing, key, -ENOENT, missing, "missing");
        expect_error(e, crt, missing, -ENOENT, missing, "missing");
        expect_error(e, junk, key, -EBADMSG, junk, "not PEM");
        expect_error(e, crt, junk, -EBADMSG, junk, "not PEM");
        /* A PEM block that is not a certificate. */
        expect_error(e, key, key, -EBADMSG, key, "not PEM");
        expect_error(e, crt, key2, -EKEYREJECTED, key2, "does not match");
        make_leaf(&a, "old", -7200, -3600, crt2, key2);
        expect_error(e, crt2, key2, -EKEYEXPIRED, crt2, "expired");
        make_leaf(&a, "future", 3600, 7200, crt2, key2);
        expect_error(e, crt2, key2, -EKEYEXPIRED, crt2, "not valid before");
        if (geteuid() != 0) {
                assert_int_equal(chmod(key, 0), 0);
                expect_error(e, crt, key, -EACCES, key, "unreadable");
                assert_int_equal(chmod(key, 0600), 0);
        }
        /* Half a pair, or both ways at once. */
        {
                koc_serving *s = NULL;
                koc_error err = {0};
                koc_serving_config cfg = {.name = "test", .address = "127.0.0.1:0",
                                          .cert_file = crt};
                assert_int_equal(koc__serving_new(e, &cfg, &s, &err), -EINVAL);
                cfg = (koc_serving_config){.name = "test", .address = "127.0.0.1:0",
                                           .cert_dir = t.path, .cert_file = crt, .key_file = key};
                assert_int_equal(koc__serving_new(e, &cfg, &s, &err), -EINVAL);
        }
        /* And the good pair starts. */
        koc_serving *s = NULL;
        koc_error err = {0};
        koc_serving_config cfg = {.name = "test", .address = "127.0.0.1:0", .cert_dir = t.path};
        assert_int_equal(koc__serving_new(e, &cfg, &s, &err), 0);
        assert_true(koc__serving_port(s) > 0);
        /* Its certificate is good until its notAfter (an hour from now),
         * then the readiness check says it expired, naming the file. */
        char why[600] = "";
        int64_t now = time(NULL);
        assert_int_equal(koc__serving_check_certificate(s, now, why, sizeof why), 0);
        assert_int_equal(koc__serving_check_certificate(s, now + 3500, why, sizeof why), 0);
        assert_int_equal(koc__serving_check_certificate(s, now + 3700, why, sizeof why),
                         -EKEYEXPIRED);
        if (!strstr(why, crt) || !strstr(why, "expired at 20"))
                fail_msg("why: \"%s\"", why);
        koc__serving_free(s);

        sd_event_unref(e);
        ca_done(&a);
        free(ca_file), free(crt), free(key), free(crt2), free(key2), free(missing), free(junk);
        tmpdir_remove(&t);
}

/* --- a server on a loop thread -------------------------------------------------- */

typedef struct server {
        /* set by the test */
        koc_serving_config cfg;
        const char *kubeconfig; /* with authz: the API server to review with */
        uint64_t authn_ttl_usec, allow_ttl_usec, deny_ttl_usec;
        size_t max_entries;
        /* set by the thread */
        sd_event *event;
        koc_metrics *metrics;
        koc_client *client;
        koc_serving *serving;
        koc__serving_authz *authz;
        int stop_fd;
        pthread_t thread;
        sem_t ready;
        int start_error;
        uint16_t port;
        char *cert_pem;
        atomic_uint served;
} server;

static void handle_hello(koc_serving_request *req, void *userdata) {
        server *srv = userdata;
        atomic_fetch_add(&srv->served, 1);
        koc__serving_respond_text(req, 200, "hello\n");
}

/* Answers 20 ms later, from a timer: the connection waits suspended while
 * the loop serves others (as a webhook waiting for an API call would). */
static int on_echo_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        koc_serving_request *req = userdata;
        size_t len;
        const char *body = koc__serving_request_body(req, &len);
        char *text = NULL;
        assert_true(asprintf(&text, "%s %s %.*s", koc__serving_request_method(req),
                             koc__serving_request_path(req), (int)len, body) >= 0);
        koc__serving_respond(req, 200, "text/plain", text, strlen(text), NULL);
        sd_event_source_disable_unref(s);
        return 0;
}

static void handle_echo(koc_serving_request *req, void *userdata) {
        server *srv = userdata;
        sd_event_source *src = NULL; /* unref'ed by on_echo_timer */
        atomic_fetch_add(&srv->served, 1);
        assert_int_equal(sd_event_add_time_relative(srv->event, &src, CLOCK_BOOTTIME,
                                                    20 * KOC_USEC_PER_MSEC, 0, on_echo_timer, req),
                         0);
}

static int on_stop(sd_event_source *s, int fd, uint32_t revents, void *ud) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int server_setup(server *srv) {
        koc_error err = {0};
        int r = sd_event_new(&srv->event);
        if (r >= 0)
                r = koc_metrics_new(&srv->metrics);
        if (r < 0)
                return r;
        srv->cfg.metrics = srv->metrics;
        r = koc__serving_new(srv->event, &srv->cfg, &srv->serving, &err);
        if (r < 0) {
                print_error("serving: %s\n", err.message);
                return r;
        }
        srv->port = koc__serving_port(srv->serving);
        srv->cert_pem = koc__serving_cert_pem(srv->serving);
        r = koc__serving_add_handler(srv->serving, "/metrics", "GET", 0, handle_hello, srv);
        if (r >= 0)
                r = koc__serving_add_handler(srv->serving, "/small/", "POST", 16, handle_hello,
                                             srv);
        if (r >= 0)
                r = koc__serving_add_handler(srv->serving, "/echo/", "POST", 64, handle_echo, srv);
        if (r < 0)
                return r;
        if (srv->kubeconfig) {
                koc_cluster_config *cc = NULL;
                r = koc_cluster_config_from_kubeconfig(srv->kubeconfig, NULL, &cc, &err);
                if (r < 0) {
                        print_error("config: %s\n", err.message);
                        return r;
                }
                r = koc_client_new(srv->event, cc, &srv->client);
                koc_cluster_config_unref(cc);
                if (r < 0)
                        return r;
                koc__serving_authz_config ac = {.client = srv->client,
                                                .metrics = srv->metrics,
                                                .server_name = "test",
                                                .authn_ttl_usec = srv->authn_ttl_usec,
                                                .allow_ttl_usec = srv->allow_ttl_usec,
                                                .deny_ttl_usec = srv->deny_ttl_usec,
                                                .max_entries = srv->max_entries,
                                                .review_timeout_usec = 5 * KOC_USEC_PER_SEC};
                r = koc__serving_authz_new(&ac, &srv->authz);
                if (r < 0)
                        return r;
                koc__serving_set_filter(srv->serving, koc__serving_authz_filter, srv->authz);
        }
        srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (srv->stop_fd < 0)
                return -errno;
        return sd_event_add_io(srv->event, NULL, srv->stop_fd, EPOLLIN, on_stop, srv);
}

static void server_teardown(server *srv) {
        srv->serving = koc__serving_free(srv->serving);
        srv->authz = koc__serving_authz_free(srv->authz);
        srv->client = koc_client_unref(srv->client);
}

static void *loop_thread(void *ud) {
        server *srv = ud;
        srv->start_error = server_setup(srv);
        sem_post(&srv->ready);
        if (srv->start_error >= 0)
                sd_event_loop(srv->event);
        server_teardown(srv);
        return NULL;
}

static void server_start(server *srv) {
        srv->stop_fd = -1;
        assert_int_equal(sem_init(&srv->ready, 0, 0), 0);
        assert_int_equal(pthread_create(&srv->thread, NULL, loop_thread, srv), 0);
        sem_wait(&srv->ready);
        assert_int_equal(srv->start_error, 0);
}

static void server_stop(server *srv) {
        uint64_t one = 1;
        if (srv->stop_fd >= 0)
                assert_int_equal(write(srv->stop_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
        pthread_join(srv->thread, NULL);
        if (srv->stop_fd >= 0)
                close(srv->stop_fd);
        sem_destroy(&srv->ready);
        koc_metrics_unref(srv->metrics);
        sd_event_unref(srv->event);
        free(srv->cert_pem);
}

static double metric(server *srv, const char *prefix) {
        char *text = NULL;
        size_t len;
        double sum = 0;
        assert_int_equal(koc_metrics_render(srv->metrics, &text, &len), 0);
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
                if (strncmp(line, prefix, strlen(prefix)) == 0) {
                        char *sp = strrchr(line, ' ');
                        sum += sp ? strtod(sp + 1, NULL) : 0;
                }
        free(text);
        return sum;
}

/* --- an HTTPS client ------------------------------------------------------------ */

typedef struct answer {
        long code;      /* HTTP status, or -CURLcode */
        char cn[64];    /* the server certificate's subject CN */
        char body[256];
} answer;

static size_t collect(char *ptr, size_t size, size_t n, void *ud) {
        answer *a = ud;
        size_t have = strlen(a->body), add = size * n;
        if (have + add >= sizeof a->body)
                add = sizeof a->body - 1 - have;
        memcpy(a->body + have, ptr, add);
        a->body[have + add] = 0;
        return size * n;
}

static answer request(CURL *e, uint16_t port, const char *method, const char *path,
                      const char *token, const char *ca_file) {
        answer a = {0};
        char url[128], auth[256];
        struct curl_slist *h = NULL;
        snprintf(url, sizeof url, "https://127.0.0.1:%u%s", port, path);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
        curl_easy_setopt(e, CURLOPT_CERTINFO, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, under_valgrind() ? 60000L : 10000L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &a);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (strcmp(method, "POST") == 0)
                curl_easy_setopt(e, CURLOPT_POSTFIELDS, "0123456789abcdefXYZ");
        if (token) {
                snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
                h = curl_slist_append(h, auth);
        }
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        CURLcode c = curl_easy_perform(e);
        if (c != CURLE_OK)
                a.code = -(long)c;
        else
                curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &a.code);
        struct curl_certinfo *ci = NULL;
        if (c == CURLE_OK && curl_easy_getinfo(e, CURLINFO_CERTINFO, &ci) == CURLE_OK && ci &&
            ci->num_of_certs > 0)
                for (struct curl_slist *s = ci->certinfo[0]; s; s = s->next)
                        if (strncmp(s->data, "Subject:", 8) == 0) {
                                const char *cn = strstr(s->data, "CN");
                                if (cn) {
                                        cn += 2;
                                        while (*cn == ' ' || *cn == '=')
                                                cn++;
                                        snprintf(a.cn, sizeof a.cn, "%s", cn);
                                }
                        }
        curl_slist_free_all(h);
        return a;
}

static answer get(uint16_t port, const char *path, const char *token, const char *ca_file) {
        CURL *e = curl_easy_init();
        assert_non_null(e);
        answer a = request(e, port, "GET", path, token, ca_file);
        curl_easy_cleanup(e);
        return a;
}

/* --- self-signed, routes, TLS versions ------------------------------------------ */

/* A TLS handshake with GnuTLS limited by `priorities`: 0 or a GnuTLS error. */
static int handshake(uint16_t port, const char *priorities) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct timeval tv = {.tv_sec = under_valgrind() ? 60 : 10};
        assert_true(fd >= 0);
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
        gnutls_session_t s;
        gnutls_certificate_credentials_t cred;
        assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
        assert_int_equal(gnutls_init(&s, GNUTLS_CLIENT), 0);
        assert_int_equal(gnutls_priority_set_direct(s, priorities, NULL), 0);
        assert_int_equal(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred), 0);
        gnutls_transport_set_int(s, fd);
        int r;
        do
                r = gnutls_handshake(s);
        while (r < 0 && !gnutls_error_is_fatal(r));
        gnutls_deinit(s);
        gnutls_certificate_free_credentials(cred);
        close(fd);
        return r;
}

static void test_self_signed_and_routes(void **state) {
        server srv = {.cfg = {.name = "test", .address = "127.0.0.1:0"}};
        tmpdir t;
        tmpdir_make(&t);
        server_start(&srv);
        assert_non_null(srv.cert_pem);
        char *ca_file = pathf("%s/self.crt", t.path);
        write_file(ca_file, srv.cert_pem, strlen(srv.cert_pem));

        answer a = get(srv.port, "/metrics", NULL, ca_file);
        assert_int_equal(a.code, 200);
        assert_string_equal(a.body, "hello\n");
        assert_string_equal(a.cn, "koc-serving");
        assert_int_equal(get(srv.port, "/nothing", NULL, ca_file).code, 404);
        CURL *e = curl_easy_init();
        assert_int_equal(request(e, srv.port, "POST", "/metrics", NULL, ca_file).code, 405);
        /* A body over the handler's limit (16 bytes). */
        assert_int_equal(request(e, srv.port, "POST", "/small/x", NULL, ca_file).code, 413);
        /* A body within the limit, answered later from a timer. */
        a = request(e, srv.port, "POST", "/echo/validate-x", NULL, ca_file);
        assert_int_equal(a.code, 200);
        assert_string_equal(a.body, "POST /echo/validate-x 0123456789abcdefXYZ");
        curl_easy_cleanup(e);
        assert_int_equal(metric(&srv, "koc_serving_certificate_reloads_total{server=\"test\"}"),
                         1);

        /* TLS 1.2 and 1.3 are served; 1.1 and 1.0 are not. */
        assert_int_equal(handshake(srv.port, "NORMAL:-VERS-ALL:+VERS-TLS1.3"), 0);
        assert_int_equal(handshake(srv.port, "NORMAL:-VERS-ALL:+VERS-TLS1.2"), 0);
        assert_int_not_equal(handshake(srv.port, "NORMAL:-VERS-ALL:+VERS-TLS1.1"), 0);
        assert_int_not_equal(handshake(srv.port, "NORMAL:-VERS-ALL:+VERS-TLS1.0"), 0);
        /* A TLS 1.2 client that offers only CBC ciphers finds none. */
        assert_int_not_equal(handshake(srv.port, "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:"
                                                 "+AES-128-CBC:-MAC-ALL:+SHA1:+SHA256"),
                             0);

        server_stop(&srv);
        free(ca_file);
        tmpdir_remove(&t);
}

/* --- rotation under load ---------------------------------------------------------- */

/* The layout of a Secret volume: tls.crt -> ..data/tls.crt, ..data ->
 * ..GENERATION; a rotation writes a new generation and renames a fresh
 * ..data_tmp symlink over ..data, as the kubelet's AtomicWriter does. */
static void secret_publish(ca *a, const char *dir, unsigned gen, bool garbage) {
        char *gdir = pathf("%s/..gen%u", dir, gen), *c = pathf("%s/tls.crt", gdir),
             *k = pathf("%s/tls.key", gdir), *target = pathf("..gen%u", gen),
             *tmp = pathf("%s/..data_tmp", dir), *data = pathf("%s/..data", dir);
        char cn[32];
        snprintf(cn, sizeof cn, "gen%u", gen);
        assert_int_equal(mkdir(gdir, 0700), 0);
        if (garbage) {
                write_file(c, "not a certificate\n", 18);
                write_file(k, "not a key\n", 10);
        } else
                make_leaf(a, cn, -60, 3600, c, k);
        (void)unlink(tmp);
        assert_int_equal(symlink(target, tmp), 0);
        assert_int_equal(rename(tmp, data), 0);
        if (gen == 1) {
                char *l1 = pathf("%s/tls.crt", dir), *l2 = pathf("%s/tls.key", dir);
                assert_int_equal(symlink("..data/tls.crt", l1), 0);
                assert_int_equal(symlink("..data/tls.key", l2), 0);
                free(l1), free(l2);
        }
        free(gdir), free(c), free(k), free(target), free(tmp), free(data);
}

typedef struct load {
        uint16_t port;
        const char *ca_file;
        atomic_bool stop;
        atomic_uint ok, failed;
        pthread_t thread;
        pthread_mutex_t lock; /* last_cn, failure */
        char last_cn[64];
        char failure[128];
        bool keep_alive;
} load;

static void last_cn(load *l, char *buf, size_t size) {
        pthread_mutex_lock(&l->lock);
        snprintf(buf, size, "%s", l->last_cn);
        pthread_mutex_unlock(&l->lock);
}

static void *load_thread(void *ud) {
        load *l = ud;
        CURL *e = curl_easy_init();
        /* Bounded by count and time. */
        uint64_t end = now_ms() + (under_valgrind() ? 600000 : 120000);
        for (unsigned i = 0; i < 100000 && !atomic_load(&l->stop) && now_ms() < end; i++) {
                if (!l->keep_alive)
                        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
                answer a = request(e, l->port, "GET", "/metrics", NULL, l->ca_file);
                pthread_mutex_lock(&l->lock);
                if (a.code == 200) {
                        if (a.cn[0])
                                snprintf(l->last_cn, sizeof l->last_cn, "%s", a.cn);
                        atomic_fetch_add(&l->ok, 1);
                } else {
                        if (atomic_fetch_add(&l->failed, 1) == 0)
                                snprintf(l->failure, sizeof l->failure, "request %u: %ld", i,
                                         a.code);
                }
                pthread_mutex_unlock(&l->lock);
        }
        curl_easy_cleanup(e);
        return NULL;
}

static void wait_cn(load *fresh, const char *cn) {
        /* Until a new connection sees the new certificate (bounded). */
        uint64_t end = now_ms() + (under_valgrind() ? 120000 : 20000);
        unsigned before = atomic_load(&fresh->ok);
        char seen[64];
        for (;;) {
                last_cn(fresh, seen, sizeof seen);
                if (now_ms() >= end || (strcmp(seen, cn) == 0 && atomic_load(&fresh->ok) >= before + 2))
                        break;
                usleep(20000);
        }
        assert_string_equal(seen, cn);
}

static void test_rotation_under_load(void **state) {
        tmpdir t;
        ca a;
        tmpdir_make(&t);
        char *ca_file = pathf("%s/ca.crt", t.path), *dir = pathf("%s/certs", t.path);
        assert_int_equal(mkdir(dir, 0700), 0);
        ca_init(&a, ca_file);
        secret_publish(&a, dir, 1, false);
        server srv = {.cfg = {.name = "test", .address = "127.0.0.1:0", .cert_dir = dir,
                              /* inotify is the trigger; the stat fallback too slow to matter */
                              .reload_interval_usec = 600 * KOC_USEC_PER_SEC}};
        server_start(&srv);

        load fresh = {.port = srv.port, .ca_file = ca_file, .lock = PTHREAD_MUTEX_INITIALIZER};
        load kept = {.port = srv.port, .ca_file = ca_file, .keep_alive = true,
                     .lock = PTHREAD_MUTEX_INITIALIZER};
        assert_int_equal(pthread_create(&fresh.thread, NULL, load_thread, &fresh), 0);
        assert_int_equal(pthread_create(&kept.thread, NULL, load_thread, &kept), 0);
        wait_cn(&fresh, "gen1");
        unsigned gen = 1;
        for (; gen < 5;) {
                char cn[16];
                secret_publish(&a, dir, ++gen, false);
                snprintf(cn, sizeof cn, "gen%u", gen);
                wait_cn(&fresh, cn);
        }
        /* A bad rotation: the previous pair stays, and is still served. */
        secret_publish(&a, dir, ++gen, true);
        uint64_t end = now_ms() + (under_valgrind() ? 60000 : 10000);
        while (now_ms() < end &&
               metric(&srv, "koc_serving_certificate_reload_errors_total{server=\"test\"}") < 1)
                usleep(20000);
        assert_int_equal(metric(&srv, "koc_serving_certificate_reload_errors_total"), 1);
        unsigned before = atomic_load(&fresh.ok);
        while (now_ms() < end && atomic_load(&fresh.ok) < before + 3)
                usleep(20000);
        char seen[64];
        last_cn(&fresh, seen, sizeof seen);
        assert_string_equal(seen, "gen5");
        /* Then a good one again. */
        secret_publish(&a, dir, ++gen, false);
        wait_cn(&fresh, "gen7");

        atomic_store(&fresh.stop, true);
        atomic_store(&kept.stop, true);
        pthread_join(fresh.thread, NULL);
        pthread_join(kept.thread, NULL);
        print_message("rotation: %u + %u requests, %u + %u failed (%s%s)\n", fresh.ok, kept.ok,
                      fresh.failed, kept.failed, fresh.failure, kept.failure);
        assert_int_equal(atomic_load(&fresh.failed), 0);
        assert_int_equal(atomic_load(&kept.failed), 0);
        assert_true(atomic_load(&fresh.ok) >= 10);
        assert_true(atomic_load(&kept.ok) >= 10);
        /* 1 at start, 5 good rotations. */
        assert_int_equal(metric(&srv, "koc_serving_certificate_reloads_total"), 6);
        server_stop(&srv);
        ca_done(&a);
        free(ca_file), free(dir);
        tmpdir_remove(&t);
}

/* --- TokenReview and SubjectAccessReview ---------------------------------------- */

#define READER_TOKEN "reader-token-0123456789"
#define NOBODY_TOKEN "nobody-token-0123456789"

static void test_authz(void **state) {
        koc_test_apiserver api;
        tmpdir t;
        tmpdir_make(&t);
        assert_int_equal(koc_test_apiserver_start(&api, "--user " READER_TOKEN "=reader "
                                                        "--user " NOBODY_TOKEN "=nobody "
                                                        "--allow reader:get:/metrics"),
                         0);
        KOC_TEST_NEEDS_KOC_APISERVER(&api);
        server srv = {.cfg = {.name = "test", .address = "127.0.0.1:0"},
                      .kubeconfig = api.kubeconfig};
        /* Long enough for the requests below on a loaded machine; the wait
         * after them is as long. */
        uint64_t ttl_ms = under_valgrind() ? 40000 : 6000;
        srv.authn_ttl_usec = srv.allow_ttl_usec = srv.deny_ttl_usec = ttl_ms * KOC_USEC_PER_MSEC;
        server_start(&srv);
        char *ca_file = pathf("%s/self.crt", t.path);
        write_file(ca_file, srv.cert_pem, strlen(srv.cert_pem));
        const char *tr = "koc_serving_auth_reviews_total{server=\"test\",review=\"tokenreview\"}";
        const char *sar =
                "koc_serving_auth_reviews_total{server=\"test\",review=\"subjectaccessreview\"}";

        /* No token, a token nobody knows. */
        uint64_t cached_at = now_ms(); /* before any entry was cached */
        answer a = get(srv.port, "/metrics", NULL, ca_file);
        assert_int_equal(a.code, 401);
        assert_int_equal(metric(&srv, tr), 0);
        assert_int_equal(get(srv.port, "/metrics", "wrong-token", ca_file).code, 401);
        assert_int_equal(metric(&srv, tr), 1);
        assert_int_equal(metric(&srv, sar), 0);
        /* Known, not allowed. */
        a = get(srv.port, "/metrics", NOBODY_TOKEN, ca_file);
        assert_int_equal(a.code, 403);
        assert_non_null(strstr(a.body, "nobody"));
        assert_int_equal(metric(&srv, tr), 2);
        assert_int_equal(metric(&srv, sar), 1);
        /* Allowed, and the handler ran only then. */
        assert_int_equal(atomic_load(&srv.served), 0);
        a = get(srv.port, "/metrics", READER_TOKEN, ca_file);
        assert_int_equal(a.code, 200);
        assert_string_equal(a.body, "hello\n");
        assert_int_equal(atomic_load(&srv.served), 1);
        assert_int_equal(metric(&srv, tr), 3);
        assert_int_equal(metric(&srv, sar), 2);
        /* The admin (system:masters) too. */
        assert_int_equal(get(srv.port, "/metrics", api.token, ca_file).code, 200);
        assert_int_equal(metric(&srv, tr), 4);
        assert_int_equal(metric(&srv, sar), 3);

        /* Within the TTLs, every answer comes from the caches. */
        for (int i = 0; i < 3; i++) {
                assert_int_equal(get(srv.port, "/metrics", READER_TOKEN, ca_file).code, 200);
                assert_int_equal(get(srv.port, "/metrics", NOBODY_TOKEN, ca_file).code, 403);
                assert_int_equal(get(srv.port, "/metrics", "wrong-token", ca_file).code, 401);
        }
        assert_int_equal(metric(&srv, tr), 4);
        assert_int_equal(metric(&srv, sar), 3);
        assert_int_equal(metric(&srv, "koc_serving_auth_requests_total{server=\"test\","
                                      "result=\"allowed\"}"),
                         5);
        /* The assertions above hold only if the TTL had not run out. */
        assert_true(now_ms() - cached_at < ttl_ms);
        /* After them, the reviews are made again. */
        usleep((useconds_t)(ttl_ms + 300) * 1000);
        assert_int_equal(get(srv.port, "/metrics", READER_TOKEN, ca_file).code, 200);
        assert_int_equal(metric(&srv, tr), 5);
        assert_int_equal(metric(&srv, sar), 4);
        /* The same counted by the API server. */
        assert_int_equal(koc_test_apiserver_metric(
                                 &api, "apiserver_request_total{verb=\"POST\",resource=\"tokenreviews\""),
                         5);

        server_stop(&srv);
        koc_test_apiserver_stop(&api);
        free(ca_file);
        tmpdir_remove(&t);
}

/* The caches hold max_entries each; the oldest goes first. */
static void test_cache_bounded(void **state) {
        koc_test_apiserver api;
        tmpdir t;
        tmpdir_make(&t);
        assert_int_equal(koc_test_apiserver_start(&api, "--user " READER_TOKEN "=reader "
                                                        "--user " NOBODY_TOKEN "=nobody "
                                                        "--allow reader:get:/metrics"),
                         0);
        KOC_TEST_NEEDS_KOC_APISERVER(&api);
        server srv = {.cfg = {.name = "test", .address = "127.0.0.1:0"},
                      .kubeconfig = api.kubeconfig,
                      .max_entries = 2};
        server_start(&srv);
        char *ca_file = pathf("%s/self.crt", t.path);
        write_file(ca_file, srv.cert_pem, strlen(srv.cert_pem));
        const char *tr = "koc_serving_auth_reviews_total{server=\"test\",review=\"tokenreview\"}";

        assert_int_equal(get(srv.port, "/metrics", READER_TOKEN, ca_file).code, 200);
        assert_int_equal(get(srv.port, "/metrics", NOBODY_TOKEN, ca_file).code, 403);
        assert_int_equal(metric(&srv, tr), 2);
        assert_int_equal(get(srv.port, "/metrics", READER_TOKEN, ca_file).code, 200);
        assert_int_equal(metric(&srv, tr), 2); /* both fit */
        assert_int_equal(get(srv.port, "/metrics", api.token, ca_file).code, 200);
        assert_int_equal(metric(&srv, tr), 3); /* the reader's entry, the oldest, went */
        assert_int_equal(get(srv.port, "/metrics", NOBODY_TOKEN, ca_file).code, 403);
        assert_int_equal(metric(&srv, tr), 3);
        assert_int_equal(get(srv.port, "/metrics", READER_TOKEN, ca_file).code, 200);
        assert_int_equal(metric(&srv, tr), 4);

        server_stop(&srv);
        koc_test_apiserver_stop(&api);
        free(ca_file);
        tmpdir_remove(&t);
}

static char warned[512];
static void capture(int level, const char *component, const char *message, void *ud) {
        if (level == KOC_LOG_WARN && strstr(message, "503"))
                snprintf(warned, sizeof warned, "%s", message);
}

static void test_review_unavailable(void **state) {
        koc_test_apiserver api;
        tmpdir t;
        tmpdir_make(&t);
        assert_int_equal(koc_test_apiserver_start(&api, "--user " READER_TOKEN "=reader "
                                                        "--allow reader:get:/metrics"),
                         0);
        KOC_TEST_NEEDS_KOC_APISERVER(&api);
        koc_log_set_handler(capture, NULL, NULL);
        server srv = {.cfg = {.name = "test", .address = "127.0.0.1:0"},
                      .kubeconfig = api.kubeconfig};
        server_start(&srv);
        char *ca_file = pathf("%s/self.crt", t.path);
        write_file(ca_file, srv.cert_pem, strlen(srv.cert_pem));
        const char *errs = "koc_serving_auth_review_errors_total{server=\"test\",review=";

        /* The TokenReview API answers 500, then the SubjectAccessReview API. */
        assert_int_equal(koc_test_apiserver_fault(&api, "{\"resource\":\"tokenreviews\","
                                                        "\"verb\":\"create\",\"error_rate\":1.0,"
                                                        "\"error_code\":500}"),
                         200);
        answer a = get(srv.port, "/metrics", READER_TOKEN, ca_file);
        assert_int_equal(a.code, 503);
        assert_int_equal(atomic_load(&srv.served), 0);
        assert_int_equal(metric(&srv, errs), 1);
        assert_non_null(strstr(warned, "tokenreview failed"));
        assert_int_equal(koc_test_apiserver_clear_faults(&api), 200);
        assert_int_equal(koc_test_apiserver_fault(&api, "{\"resource\":\"subjectaccessreviews\","
                                                        "\"verb\":\"create\",\"error_rate\":1.0,"
                                                        "\"error_code\":503}"),
                         200);
        assert_int_equal(get(srv.port, "/metrics", READER_TOKEN, ca_file).code, 503);
        assert_int_equal(metric(&srv, errs), 2);
        /* Failures are not cached: once the API answers, so does the server. */
        assert_int_equal(koc_test_apiserver_clear_faults(&api), 200);
        assert_int_equal(get(srv.port, "/metrics", READER_TOKEN, ca_file).code, 200);
        assert_int_equal(atomic_load(&srv.served), 1);
        server_stop(&srv);

        /* A review API that is not there at all. */
        warned[0] = 0;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof sin;
        assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
        close(fd); /* nothing listens there now */
        char url[64];
        snprintf(url, sizeof url, "https://127.0.0.1:%u", ntohs(sin.sin_port));
        char *kc = pathf("%s/down.kubeconfig", t.path);
        {
                FILE *in = fopen(api.kubeconfig, "re");
                char text[16384];
                assert_non_null(in);
                size_t n = fread(text, 1, sizeof text - 1, in);
                fclose(in);
                text[n] = 0;
                char *at = strstr(text, api.url);
                assert_non_null(at);
                FILE *out = fopen(kc, "we");
                assert_non_null(out);
                fprintf(out, "%.*s%s%s", (int)(at - text), text, url, at + strlen(api.url));
                assert_int_equal(fclose(out), 0);
        }
        server down = {.cfg = {.name = "test", .address = "127.0.0.1:0"}, .kubeconfig = kc};
        server_start(&down);
        write_file(ca_file, down.cert_pem, strlen(down.cert_pem));
        assert_int_equal(get(down.port, "/metrics", READER_TOKEN, ca_file).code, 503);
        assert_int_equal(get(down.port, "/metrics", api.token, ca_file).code, 503);
        assert_int_equal(atomic_load(&down.served), 0);
        assert_int_equal(metric(&down, errs), 2);
        assert_non_null(strstr(warned, "tokenreview failed"));
        server_stop(&down);
        free(kc);

        koc_log_set_handler(NULL, NULL, NULL);
        koc_test_apiserver_stop(&api);
        free(ca_file);
        tmpdir_remove(&t);
}

/* A request waiting for its TokenReview when the server stops: the review
 * is cancelled and the client gets 503, nothing leaks. */
typedef struct pending {
        uint16_t port;
        const char *ca_file;
        answer a;
} pending;

static void *pending_thread(void *ud) {
        pending *p = ud;
        p->a = get(p->port, "/metrics", READER_TOKEN, p->ca_file);
        return NULL;
}

static void test_stop_while_reviewing(void **state) {
        koc_test_apiserver api;
        tmpdir t;
        tmpdir_make(&t);
        assert_int_equal(koc_test_apiserver_start(&api, "--user " READER_TOKEN "=reader "
                                                        "--allow reader:get:/metrics"),
                         0);
        KOC_TEST_NEEDS_KOC_APISERVER(&api);
        server srv = {.cfg = {.name = "test", .address = "127.0.0.1:0"},
                      .kubeconfig = api.kubeconfig};
        server_start(&srv);
        char *ca_file = pathf("%s/self.crt", t.path);
        write_file(ca_file, srv.cert_pem, strlen(srv.cert_pem));
        assert_int_equal(koc_test_apiserver_fault(&api, "{\"resource\":\"tokenreviews\","
                                                        "\"verb\":\"create\",\"hang\":true}"),
                         200);
        pending p = {.port = srv.port, .ca_file = ca_file};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, pending_thread, &p), 0);
        /* Until the review is on its way (bounded). */
        const char *tr = "koc_serving_auth_reviews_total{server=\"test\",review=\"tokenreview\"}";
        uint64_t end = now_ms() + (under_valgrind() ? 60000 : 10000);
        while (now_ms() < end && metric(&srv, tr) < 1)
                usleep(10000);
        assert_int_equal(metric(&srv, tr), 1);
        usleep(100 * 1000);
        server_stop(&srv);
        pthread_join(th, NULL);
        assert_int_equal(p.a.code, 503);
        assert_string_equal(p.a.body, "server stopping\n");
        assert_int_equal(atomic_load(&srv.served), 0);
        koc_test_apiserver_clear_faults(&api);
        koc_test_apiserver_stop(&api);
        free(ca_file);
        tmpdir_remove(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cert_errors),
                cmocka_unit_test(test_self_signed_and_routes),
                cmocka_unit_test(test_rotation_under_load),
                cmocka_unit_test(test_authz),
                cmocka_unit_test(test_cache_bounded),
                cmocka_unit_test(test_review_unavailable),
                cmocka_unit_test(test_stop_while_reviewing),
        };
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int r = cmocka_run_group_tests(tests, NULL, NULL);
        curl_global_cleanup();
        return r;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Client certificates from a kubeconfig reach the server: an in-process TLS
 * server (OpenSSL, loopback, one thread) requires a client certificate signed
 * by its CA and reports the subject it saw.  Inline data (libcurl blobs) and
 * files are both checked, and a missing certificate fails the handshake. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/config-internal.h"
#include "koc/config.h"

typedef struct pki {
        EVP_PKEY *ca_key, *server_key, *client_key;
        X509 *ca, *server, *client;
} pki;

static pki P;
static char dir[64];

static void add_ext(X509 *issuer, X509 *x, int nid, const char *value) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        assert_non_null(ext);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
}

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
                       const char *san) {
        X509 *x = X509_new();
        assert_non_null(x);
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(random() & 0x7fffffff));
        X509_gmtime_adj(X509_getm_notBefore(x), -60);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, key);
        X509_NAME *name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
        X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
        if (ca) {
                add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
                add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
        } else {
                add_ext(issuer, x, NID_basic_constraints, "critical,CA:FALSE");
        }
        if (san)
                add_ext(issuer ? issuer : x, x, NID_subject_alt_name, san);
        assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
        return x;
}

static char *pem_of_cert(X509 *x) {
        BIO *b = BIO_new(BIO_s_mem());
        PEM_write_bio_X509(b, x);
        char *p;
        long n = BIO_get_mem_data(b, &p);
        char *s = strndup(p, (size_t)n);
        BIO_free(b);
        return s;
}

static char *pem_of_key(EVP_PKEY *k) {
        BIO *b = BIO_new(BIO_s_mem());
        PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
        char *p;
        long n = BIO_get_mem_data(b, &p);
        char *s = strndup(p, (size_t)n);
        BIO_free(b);
        return s;
}

static char *b64(const char *s) {
        size_t n = strlen(s);
        char *out = malloc(4 * ((n + 2) / 3) + 1);
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
        return out;
}

static void write_file(const char *name, const char *content) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(content, f);
        assert_int_equal(fclose(f), 0);
}

/* ---- the server ------------------------------------------------------------ */

typedef struct server {
        int fd;
        int port;
        SSL_CTX *ctx;
        pthread_t thread;
        char peer_cn[128]; /* subject CN of the client certificate, "" if none */
        bool handshake_ok;
} server;

static void *serve_one(void *userdata) {
        server *s = userdata;
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 10000) != 1)
                return NULL; /* bounded: nobody came */
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
                return NULL;
        struct timeval tv = {.tv_sec = 10};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        SSL *ssl = SSL_new(s->ctx);
        SSL_set_fd(ssl, c);
        if (SSL_accept(ssl) == 1) {
                s->handshake_ok = true;
                X509 *peer = SSL_get1_peer_certificate(ssl);
                if (peer) {
                        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName,
                                                  s->peer_cn, sizeof s->peer_cn);
                        X509_free(peer);
                }
                char buf[4096];
                size_t got = 0;
                /* Read the request head, then answer. */
                while (got < sizeof buf - 1) {
                        int n = SSL_read(ssl, buf + got, (int)(sizeof buf - 1 - got));
                        if (n <= 0)
                                break;
                        got += (size_t)n;
                        buf[got] = 0;
                        if (strstr(buf, "\r\n\r\n"))
                                break;
                }
                static const char answer[] =
                        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                SSL_write(ssl, answer, (int)strlen(answer));
                SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        close(c);
        return NULL;
}

static void server_start(server *s) {
        memset(s, 0, sizeof *s);
        s->ctx = SSL_CTX_new(TLS_server_method());
        assert_non_null(s->ctx);
        assert_int_equal(SSL_CTX_use_certificate(s->ctx, P.server), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey(s->ctx, P.server_key), 1);
        X509_STORE_add_cert(SSL_CTX_get_cert_store(s->ctx), P.ca);
        SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(s->fd >= 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
        assert_int_equal(listen(s->fd, 4), 0);
        socklen_t len = sizeof a;
        assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
        s->port = ntohs(a.sin_port);
        assert_int_equal(pthread_create(&s->thread, NULL, serve_one, s), 0);
}

static void server_stop(server *s) {
        pthread_join(s->thread, NULL);
        close(s->fd);
        SSL_CTX_free(s->ctx);
}

/* ---- the client side ------------------------------------------------------- */

static size_t sink(char *p, size_t size, size_t n, void *userdata) {
        return size * n;
}

static CURLcode request(const char *kubeconfig_user, server *s) {
        char *ca = pem_of_cert(P.ca);
        char *ca64 = b64(ca);
        char path[128];
        snprintf(path, sizeof path, "%s/kubeconfig", dir);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f,
                "current-context: c\n"
                "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                "clusters:\n- name: k\n  cluster:\n"
                "    server: https://127.0.0.1:%d\n"
                "    certificate-authority-data: %s\n"
                "users:\n- name: u\n  user:\n%s",
                s->port, ca64, kubeconfig_user);
        assert_int_equal(fclose(f), 0);
        free(ca);
        free(ca64);

        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        if (koc_cluster_config_from_kubeconfig(path, NULL, &cfg, &err) < 0)
                fail_msg("%s", err.message);
        CURL *e = curl_easy_init();
        char url[256];
        snprintf(url, sizeof url, "%s/version", koc_cluster_config_server(cfg));
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
        assert_int_equal(koc__cluster_config_apply_tls(cfg, e), 0);
        CURLcode c = curl_easy_perform(e);
        curl_easy_cleanup(e);
        koc_cluster_config_unref(cfg);
        return c;
}

static void test_inline_client_cert(void **state) {
        char *cert_pem = pem_of_cert(P.client), *key_pem = pem_of_key(P.client_key);
        char *cert = b64(cert_pem), *key = b64(key_pem);
        free(cert_pem);
        free(key_pem);
        char user[16384];
        snprintf(user, sizeof user, "    client-certificate-data: %s\n    client-key-data: %s\n",
                 cert, key);
        server s;
        server_start(&s);
        assert_int_equal(request(user, &s), CURLE_OK);
        server_stop(&s);
        assert_true(s.handshake_ok);
        assert_string_equal(s.peer_cn, "koc-client");
        free(cert);
        free(key);
}

static void test_client_cert_files(void **state) {
        char *cert = pem_of_cert(P.client), *key = pem_of_key(P.client_key);
        write_file("client.crt", cert);
        write_file("client.key", key);
        free(cert);
        free(key);
        server s;
        server_start(&s);
        /* Relative to the kubeconfig's directory. */
        assert_int_equal(request("    client-certificate: client.crt\n"
                                 "    client-key: client.key\n",
                                 &s),
                         CURLE_OK);
        server_stop(&s);
        assert_string_equal(s.peer_cn, "koc-client");
}

static void test_no_client_cert(void **state) {
        server s;
        server_start(&s);
        /* The server demands a certificate: the handshake fails. */
        assert_int_not_equal(request("    token: abc\n", &s), CURLE_OK);
        server_stop(&s);
        assert_false(s.handshake_ok);
}

static int setup(void **state) {
        snprintf(dir, sizeof dir, "/tmp/koc-client-cert-XXXXXX");
        if (!mkdtemp(dir))
                return -1;
        P.ca_key = EVP_EC_gen("P-256");
        P.server_key = EVP_EC_gen("P-256");
        P.client_key = EVP_EC_gen("P-256");
        P.ca = make_cert("koc-test-ca", P.ca_key, NULL, NULL, true, NULL);
        P.server =
                make_cert("koc-test-server", P.server_key, P.ca, P.ca_key, false, "IP:127.0.0.1");
        P.client = make_cert("koc-client", P.client_key, P.ca, P.ca_key, false, NULL);
        return 0;
}

static int teardown(void **state) {
        X509_free(P.ca);
        X509_free(P.server);
        X509_free(P.client);
        EVP_PKEY_free(P.ca_key);
        EVP_PKEY_free(P.server_key);
        EVP_PKEY_free(P.client_key);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_inline_client_cert),
                cmocka_unit_test(test_client_cert_files),
                cmocka_unit_test(test_no_client_cert),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* kubeconfig loading: valid files (inline data, files, relative paths,
 * KUBECONFIG merge, context override, load order), every broken case with a
 * message naming file and field, exec credential plugins, and garbage. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cjson/cJSON.h>

#include "core/cluster-config.h"
#include "koc/config.h"
#include "koc/log.h"

static char dir[64];
static char *ca_pem, *key_pem, *ca_b64, *key_b64;

/* ---- helpers ------------------------------------------------------------- */

static char *b64(const char *s) {
        size_t n = strlen(s);
        char *out = malloc(4 * ((n + 2) / 3) + 1);
        assert_non_null(out);
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
        return out;
}

static char *bio_string(BIO *bio) {
        char *p;
        long n = BIO_get_mem_data(bio, &p);
        char *s = strndup(p, (size_t)n);
        assert_non_null(s);
        return s;
}

/* A fresh self-signed P-256 certificate and its key, as PEM. */
static void make_cert(void) {
        EVP_PKEY *key = EVP_EC_gen("P-256");
        assert_non_null(key);
        X509 *x = X509_new();
        assert_non_null(x);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), 0);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, key);
        X509_NAME *name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"koc-test", -1,
                                   -1, 0);
        X509_set_issuer_name(x, name);
        assert_true(X509_sign(x, key, EVP_sha256()) > 0);
        BIO *b = BIO_new(BIO_s_mem());
        PEM_write_bio_X509(b, x);
        ca_pem = bio_string(b);
        BIO_free(b);
        b = BIO_new(BIO_s_mem());
        PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
        key_pem = bio_string(b);
        BIO_free(b);
        X509_free(x);
        EVP_PKEY_free(key);
        ca_b64 = b64(ca_pem);
        key_b64 = b64(key_pem);
}

static char *path_of(const char *name) {
        static char buf[4][256];
        static int i;
        i = (i + 1) % 4;
        snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
        return buf[i];
}

static void write_file(const char *name, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void write_file(const char *name, const char *fmt, ...) {
        const char *path = path_of(name);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        va_list ap;
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
        assert_int_equal(fclose(f), 0);
}

static void write_bytes(const char *name, const void *data, size_t n) {
        FILE *f = fopen(path_of(name), "w");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
}

static koc_cluster_config *load_ok(const char *paths, const char *context) {
        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        int r = koc_cluster_config_from_kubeconfig(paths, context, &cfg, &err);
        if (r < 0)
                fail_msg("loading %s failed: %s", paths, err.message);
        assert_non_null(cfg);
        return cfg;
}

static void check_apply_tls(koc_cluster_config *cfg) {
        CURL *easy = curl_easy_init();
        assert_non_null(easy);
        assert_int_equal(koc__cluster_config_apply_tls(cfg, easy), 0);
        curl_easy_cleanup(easy);
}

/* The message names the file and the field and says what was wrong. */
static void expect_error(const char *paths, const char *context, int code, const char *file,
                         const char *field, const char *why) {
        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        int r = koc_cluster_config_from_kubeconfig(paths, context, &cfg, &err);
        if (r >= 0)
                fail_msg("%s loaded, expected an error about %s", paths, field);
        assert_null(cfg);
        if (code)
                assert_int_equal(r, code);
        assert_int_equal(err.code, r);
        if ((file && !strstr(err.message, file)) || (field && !strstr(err.message, field)) ||
            (why && !strstr(err.message, why)))
                fail_msg("message \"%s\" lacks \"%s\" / \"%s\" / \"%s\"", err.message,
                         file ? file : "", field ? field : "", why ? why : "");
}

static int setup_group(void **state) {
        snprintf(dir, sizeof dir, "/tmp/koc-kubeconfig-XXXXXX");
        if (!mkdtemp(dir))
                return -1;
        make_cert();
        unsetenv("POD_NAMESPACE");
        unsetenv("KUBECONFIG");
        return 0;
}

static int teardown_group(void **state) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
                return -1;
        free(ca_pem);
        free(key_pem);
        free(ca_b64);
        free(key_b64);
        return 0;
}

/* ---- valid files ------------------------------------------------------- */

static void test_inline_data(void **state) {
        write_file("inline.yaml",
                   "apiVersion: v1\n"
                   "kind: Config\n"
                   "current-context: dev\n"
                   "preferences: {}\n"
                   "clusters:\n"
                   "- name: dev-cluster\n"
                   "  cluster:\n"
                   "    server: https://127.0.0.1:6443/\n"
                   "    certificate-authority-data: %s\n"
                   "users:\n"
                   "- name: dev-user\n"
                   "  user:\n"
                   "    client-certificate-data: %s\n"
                   "    client-key-data: %s\n"
                   "contexts:\n"
                   "- name: dev\n"
                   "  context:\n"
                   "    cluster: dev-cluster\n"
                   "    user: dev-user\n"
                   "    namespace: team-x\n",
                   ca_b64, ca_b64, key_b64);
        koc_cluster_config *cfg = load_ok(path_of("inline.yaml"), NULL);
        assert_string_equal(koc_cluster_config_server(cfg), "https://127.0.0.1:6443");
        assert_string_equal(koc_cluster_config_namespace(cfg), "team-x");
        assert_string_equal(koc_cluster_config_source(cfg), path_of("inline.yaml"));
        assert_null(koc__cluster_config_auth_header(cfg));
        /* Decoded to the exact PEM text, held in memory (no files). */
        assert_int_equal(cfg->ca_data.size, strlen(ca_pem));
        assert_memory_equal(cfg->ca_data.data, ca_pem, strlen(ca_pem));
        assert_int_equal(cfg->key_data.size, strlen(key_pem));
        assert_memory_equal(cfg->key_data.data, key_pem, strlen(key_pem));
        assert_memory_equal(cfg->cert_data.data, ca_pem, strlen(ca_pem));
        assert_null(cfg->ca_file);
        assert_null(cfg->cert_file);
        assert_null(cfg->key_file);
        assert_false(cfg->insecure);
        check_apply_tls(cfg);

        /* POD_NAMESPACE wins over the context's namespace. */
        koc_cluster_config_unref(cfg);
        setenv("POD_NAMESPACE", "from-env", 1);
        cfg = load_ok(path_of("inline.yaml"), NULL);
        assert_string_equal(koc_cluster_config_namespace(cfg), "from-env");
        unsetenv("POD_NAMESPACE");
        koc_cluster_config_unref(cfg);
}

static void test_base64_with_line_breaks(void **state) {
        /* Line-wrapped base64 in a block scalar decodes the same. */
        size_t n = strlen(ca_b64);
        char *wrapped = malloc(n + n / 64 * 8 + 16);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                if (i && i % 64 == 0)
                        memcpy(wrapped + k, "\n      ", 7), k += 7;
                wrapped[k++] = ca_b64[i];
        }
        wrapped[k] = '\0';
        write_file("wrapped.yaml",
                   "current-context: c\n"
                   "contexts: [{name: c, context: {cluster: k}}]\n"
                   "clusters:\n"
                   "- name: k\n"
                   "  cluster:\n"
                   "    server: https://127.0.0.1:6443\n"
                   "    certificate-authority-data: |\n"
                   "      %s\n",
                   wrapped);
        free(wrapped);
        koc_cluster_config *cfg = load_ok(path_of("wrapped.yaml"), NULL);
        assert_int_equal(cfg->ca_data.size, strlen(ca_pem));
        assert_memory_equal(cfg->ca_data.data, ca_pem, strlen(ca_pem));
        assert_string_equal(koc_cluster_config_namespace(cfg), "default");
        koc_cluster_config_unref(cfg);
}

static void test_files_and_relative_paths(void **state) {
        assert_int_equal(mkdir(path_of("sub"), 0700), 0);
        assert_int_equal(mkdir(path_of("sub/certs"), 0700), 0);
        write_file("sub/certs/ca.crt", "%s", ca_pem);
        write_file("sub/certs/client.crt", "%s", ca_pem);
        write_file("sub/certs/client.key", "%s", key_pem);
        write_file("sub/token", "file-token\n");
        write_file("sub/config",
                   "current-context: c\n"
                   "contexts:\n"
                   "- name: c\n"
                   "  context: {cluster: k, user: u}\n"
                   "clusters:\n"
                   "- name: k\n"
                   "  cluster:\n"
                   "    server: https://localhost:8443\n"
                   "    certificate-authority: certs/ca.crt\n"
                   "users:\n"
                   "- name: u\n"
                   "  user:\n"
                   "    client-certificate: certs/client.crt\n"
                   "    client-key: %s\n"
                   "    tokenFile: token\n",
                   path_of("sub/certs/client.key"));
        /* Relative to the kubeconfig's directory, not to the working one. */
        char cwd[512];
        assert_non_null(getcwd(cwd, sizeof cwd));
        assert_int_equal(chdir("/"), 0);
        koc_cluster_config *cfg = load_ok(path_of("sub/config"), NULL);
        assert_int_equal(chdir(cwd), 0);
        assert_string_equal(cfg->ca_file, path_of("sub/certs/ca.crt"));
        assert_string_equal(cfg->cert_file, path_of("sub/certs/client.crt"));
        assert_string_equal(cfg->key_file, path_of("sub/certs/client.key"));
        assert_null(cfg->ca_data.data);
        assert_string_equal(koc__cluster_config_auth_header(cfg),
                            "Authorization: Bearer file-token");
        check_apply_tls(cfg);
        koc_cluster_config_unref(cfg);

        /* A kubeconfig named by a relative path: relative to its directory. */
        assert_int_equal(chdir(dir), 0);
        cfg = load_ok("sub/config", NULL);
        assert_int_equal(chdir(cwd), 0);
        assert_string_equal(cfg->ca_file, path_of("sub/certs/ca.crt"));
        koc_cluster_config_unref(cfg);
}

static void test_merge_two_files(void **state) {
        /* First file: current-context, one context and a cluster "shared"
         * that the second file also defines: the first definition wins. */
        write_file("a.yaml", "current-context: ctx-b\n"
                             "contexts:\n"
                             "- name: ctx-a\n"
                             "  context: {cluster: shared, user: user-b}\n"
                             "clusters:\n"
                             "- name: shared\n"
                             "  cluster: {server: 'https://first.example:6443'}\n");
        write_file("b.yaml", "current-context: ctx-a\n"
                             "contexts:\n"
                             "- name: ctx-b\n"
                             "  context: {cluster: cluster-b, user: user-b, namespace: ns-b}\n"
                             "- name: ctx-a\n"
                             "  context: {cluster: cluster-b, user: user-b, namespace: ignored}\n"
                             "clusters:\n"
                             "- name: shared\n"
                             "  cluster: {server: 'https://second.example:6443'}\n"
                             "- name: cluster-b\n"
                             "  cluster: {server: 'https://b.example:6443'}\n"
                             "users:\n"
                             "- name: user-b\n"
                             "  user: {token: token-b}\n");
        char list[600];
        snprintf(list, sizeof list, "%s:%s:%s", path_of("a.yaml"), path_of("missing.yaml"),
                 path_of("b.yaml"));
        /* current-context from a.yaml (ctx-b), defined in b.yaml. */
        koc_cluster_config *cfg = load_ok(list, NULL);
        assert_string_equal(koc_cluster_config_server(cfg), "https://b.example:6443");
        assert_string_equal(koc_cluster_config_namespace(cfg), "ns-b");
        assert_string_equal(koc__cluster_config_auth_header(cfg), "Authorization: Bearer token-b");
        assert_string_equal(koc_cluster_config_source(cfg), path_of("b.yaml"));
        koc_cluster_config_unref(cfg);

        /* Context override: ctx-a from a.yaml wins over b.yaml's ctx-a, and
         * its cluster "shared" comes from a.yaml. */
        cfg = load_ok(list, "ctx-a");
        assert_string_equal(koc_cluster_config_server(cfg), "https://first.example:6443");
        assert_string_equal(koc_cluster_config_namespace(cfg), "default");
        assert_string_equal(koc_cluster_config_source(cfg), path_of("a.yaml"));
        koc_cluster_config_unref(cfg);

        /* Reversed order: b.yaml's current-context (ctx-a) and entries win. */
        snprintf(list, sizeof list, "%s:%s", path_of("b.yaml"), path_of("a.yaml"));
        cfg = load_ok(list, NULL);
        assert_string_equal(koc_cluster_config_server(cfg), "https://b.example:6443");
        assert_string_equal(koc_cluster_config_namespace(cfg), "ignored");
        koc_cluster_config_unref(cfg);

        /* Only missing files in the list. */
        snprintf(list, sizeof list, "%s:%s", path_of("nope1"), path_of("nope2"));
        expect_error(list, NULL, -ENOENT, path_of("nope1"), NULL, "no kubeconfig file exists");
}

static void test_load_order(void **state) {
        write_file("order-explicit.yaml",
                   "current-context: c\n"
                   "contexts: [{name: c, context: {cluster: k}}]\n"
                   "clusters: [{name: k, cluster: {server: 'https://explicit:1'}}]\n");
        write_file("order-env.yaml", "current-context: c\n"
                                     "contexts: [{name: c, context: {cluster: k}}]\n"
                                     "clusters: [{name: k, cluster: {server: 'https://env:2'}}]\n");
        assert_int_equal(mkdir(path_of("home"), 0700), 0);
        assert_int_equal(mkdir(path_of("home/.kube"), 0700), 0);
        write_file("home/.kube/config",
                   "current-context: c\n"
                   "contexts: [{name: c, context: {cluster: k}}]\n"
                   "clusters: [{name: k, cluster: {server: 'https://home:3'}}]\n");
        char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
        setenv("HOME", path_of("home"), 1);
        setenv("KUBECONFIG", path_of("order-env.yaml"), 1);
        unsetenv("KUBERNETES_SERVICE_HOST");

        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        assert_int_equal(koc_cluster_config_load(path_of("order-explicit.yaml"), NULL, &cfg, &err),
                         0);
        assert_string_equal(koc_cluster_config_server(cfg), "https://explicit:1");
        cfg = koc_cluster_config_unref(cfg);
        assert_int_equal(koc_cluster_config_load(NULL, NULL, &cfg, &err), 0);
        assert_string_equal(koc_cluster_config_server(cfg), "https://env:2");
        cfg = koc_cluster_config_unref(cfg);
        unsetenv("KUBECONFIG");
        assert_int_equal(koc_cluster_config_load(NULL, NULL, &cfg, &err), 0);
        assert_string_equal(koc_cluster_config_server(cfg), "https://home:3");
        cfg = koc_cluster_config_unref(cfg);
        /* In-cluster comes before ~/.kube/config; the default service-account
         * directory does not exist here, so it falls back to the home file. */
        setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
        setenv("KUBERNETES_SERVICE_PORT", "443", 1);
        if (access("/var/run/secrets/kubernetes.io/serviceaccount/token", F_OK) != 0) {
                assert_int_equal(koc_cluster_config_load(NULL, NULL, &cfg, &err), 0);
                assert_string_equal(koc_cluster_config_server(cfg), "https://home:3");
                cfg = koc_cluster_config_unref(cfg);
        }
        unsetenv("KUBERNETES_SERVICE_HOST");
        /* Nothing at all. */
        setenv("HOME", path_of("nohome"), 1);
        assert_int_equal(koc_cluster_config_load(NULL, NULL, &cfg, &err), -ENOENT);
        assert_non_null(strstr(err.message, "no cluster configuration"));
        assert_null(cfg);
        if (old_home)
                setenv("HOME", old_home, 1);
        free(old_home);
}

static void test_tls_server_name(void **state) {
        write_file("sni.yaml",
                   "current-context: c\n"
                   "contexts: [{name: c, context: {cluster: k}}]\n"
                   "clusters:\n"
                   "- name: k\n"
                   "  cluster:\n"
                   "    server: https://10.1.2.3:6443/prefix/\n"
                   "    tls-server-name: api.internal.example\n"
                   "    certificate-authority-data: %s\n",
                   ca_b64);
        koc_cluster_config *cfg = load_ok(path_of("sni.yaml"), NULL);
        /* URLs carry the TLS name; the connection goes to the real address. */
        assert_string_equal(koc_cluster_config_server(cfg),
                            "https://api.internal.example:6443/prefix");
        assert_non_null(cfg->connect_to);
        assert_string_equal(cfg->connect_to->data, "api.internal.example:6443:10.1.2.3:6443");
        assert_null(cfg->connect_to->next);
        check_apply_tls(cfg);
        koc_cluster_config_unref(cfg);

        write_file("sni6.yaml",
                   "current-context: c\n"
                   "contexts: [{name: c, context: {cluster: k}}]\n"
                   "clusters:\n"
                   "- name: k\n"
                   "  cluster: {server: 'https://[fd00::5]', tls-server-name: kubernetes}\n");
        cfg = load_ok(path_of("sni6.yaml"), NULL);
        assert_string_equal(koc_cluster_config_server(cfg), "https://kubernetes:443");
        assert_string_equal(cfg->connect_to->data, "kubernetes:443:[fd00::5]:443");
        koc_cluster_config_unref(cfg);
}

struct captured {
        int n;
        char component[32];
        char message[512];
};

static void capture(int level, const char *component, const char *message, void *userdata) {
        struct captured *c = userdata;
        if (level != KOC_LOG_WARN)
                return;
        c->n++;
        snprintf(c->component, sizeof c->component, "%s", component);
        snprintf(c->message, sizeof c->message, "%s", message);
}

static void test_insecure(void **state) {
        struct captured c = {0};
        koc_log_set_handler(capture, &c, NULL);
        write_file("insecure.yaml",
                   "current-context: c\n"
                   "contexts: [{name: c, context: {cluster: k}}]\n"
                   "clusters:\n"
                   "- name: k\n"
                   "  cluster: {server: 'https://[::1]:6443', insecure-skip-tls-verify: true}\n");
        koc_cluster_config *cfg = load_ok(path_of("insecure.yaml"), NULL);
        assert_true(cfg->insecure);
        assert_string_equal(koc_cluster_config_server(cfg), "https://[::1]:6443");
        assert_int_equal(c.n, 1);
        assert_string_equal(c.component, "config");
        assert_non_null(strstr(c.message, "insecure-skip-tls-verify"));
        check_apply_tls(cfg);
        koc_cluster_config_unref(cfg);

        /* false, or absent: verified, no warning. */
        write_file("secure.yaml",
                   "current-context: c\n"
                   "contexts: [{name: c, context: {cluster: k}}]\n"
                   "clusters:\n"
                   "- name: k\n"
                   "  cluster: {server: 'https://127.0.0.1', insecure-skip-tls-verify: false}\n");
        cfg = load_ok(path_of("secure.yaml"), NULL);
        assert_false(cfg->insecure);
        assert_int_equal(c.n, 1);
        koc_cluster_config_unref(cfg);
        koc_log_set_handler(NULL, NULL, NULL);
}

struct all_warnings {
        unsigned n;
        char text[4096];
};

static void capture_all(int level, const char *component, const char *message, void *userdata) {
        struct all_warnings *c = userdata;
        if (level != KOC_LOG_WARN)
                return;
        c->n++;
        size_t n = strlen(c->text);
        snprintf(c->text + n, sizeof c->text - n, "%s: %s\n", component, message);
}

/* A misspelled key is ignored, as kubectl ignores it, but not silently: the
 * warning names the file and the path of the key.  Keys of client-go's
 * kubeconfig that koc does not use are not warned about. */
static void test_unknown_keys_warned(void **state) {
        struct all_warnings c = {0};
        write_file("typo.yaml",
                   "apiVersion: v1\n"
                   "kind: Config\n"
                   "preferences: {}\n"
                   "current-context: c\n"
                   "curent-context: c\n"
                   "contexts: [{name: c, context: {cluster: k, user: u, namspace: x}}]\n"
                   "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443', "
                   "proxy-url: 'http://p:3128', certificate-authority-dat: x}}]\n"
                   "users:\n"
                   "- name: u\n"
                   "  user:\n"
                   "    username: admin\n"
                   "    tokn: abc\n");
        koc_log_set_handler(capture_all, &c, NULL);
        koc_cluster_config *cfg = load_ok(path_of("typo.yaml"), NULL);
        koc_log_set_handler(NULL, NULL, NULL);
        const char *const expected[] = {
                "typo.yaml: curent-context: unknown key",
                "typo.yaml: contexts[0].context.namspace: unknown key",
                "typo.yaml: clusters[0].cluster.certificate-authority-dat: unknown key",
                "typo.yaml: users[0].user.tokn: unknown key, ignored (line 12)",
        };
        for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
                if (!strstr(c.text, expected[i]))
                        fail_msg("no warning \"%s\" in:\n%s", expected[i], c.text);
        assert_int_equal(c.n, 4);
        assert_non_null(strstr(c.text, path_of("typo.yaml")));
        assert_null(strstr(c.text, "proxy-url"));
        assert_null(strstr(c.text, "username"));
        /* The token was misspelled: none is sent. */
        assert_null(koc__cluster_config_auth_header(cfg));
        koc_cluster_config_unref(cfg);

        /* A file full of unknown keys gets a bounded number of lines. */
        char big[8192] = "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
                         "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443'}}]\n";
        for (int i = 0; i < 200; i++) {
                size_t n = strlen(big);
                snprintf(big + n, sizeof big - n, "junk%d: 1\n", i);
        }
        write_file("junk.yaml", "%s", big);
        memset(&c, 0, sizeof c);
        koc_log_set_handler(capture_all, &c, NULL);
        cfg = load_ok(path_of("junk.yaml"), NULL);
        koc_log_set_handler(NULL, NULL, NULL);
        assert_true(c.n <= 10);
        assert_non_null(strstr(c.text, "more unknown keys"));
        koc_cluster_config_unref(cfg);
}

static void test_http_server(void **state) {
        write_file("http.yaml",
                   "current-context: c\n"
                   "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                   "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:8080'}}]\n"
                   "users: [{name: u, user: {token: abc}}]\n");
        koc_cluster_config *cfg = load_ok(path_of("http.yaml"), NULL);
        assert_string_equal(koc_cluster_config_server(cfg), "http://127.0.0.1:8080");
        assert_false(cfg->tls);
        check_apply_tls(cfg);
        koc_cluster_config_unref(cfg);
}

static void test_empty_file_and_anchors(void **state) {
        /* Anchors and aliases are fine. */
        write_file("anchors.yaml", "current-context: c\n"
                                   "contexts: [{name: c, context: &ctx {cluster: k, user: u}}, "
                                   "{name: d, context: *ctx}]\n"
                                   "clusters: [{name: k, cluster: {server: 'https://h:1'}}]\n"
                                   "users: [{name: u, user: {token: t}}]\n");
        koc_cluster_config *cfg = load_ok(path_of("anchors.yaml"), "d");
        assert_string_equal(koc_cluster_config_server(cfg), "https://h:1");
        koc_cluster_config_unref(cfg);
        /* An empty file is an empty config: no current context. */
        write_file("empty.yaml", "%s", "");
        expect_error(path_of("empty.yaml"), NULL, -ENOENT, path_of("empty.yaml"), "current-context",
                     "not set");
}

/* ---- broken files ------------------------------------------------------- */

struct broken {
        const char *yaml;  /* %1$s: CA base64, %2$s: key base64 (positional) */
        const char *field; /* expected in the message */
        const char *why;   /* expected in the message */
};

#define HEAD "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
#define USERS "users: [{name: u, user: {token: t}}]\n"
#define CLUSTERS "clusters: [{name: k, cluster: {server: 'https://h:1'}}]\n"

static const struct broken broken_cases[] = {
        {"current-context: c\ncontexts: [\n  {name: c\n", "line", "YAML syntax error"},
        {"a: b\n\tc: d\n", "line 2", "YAML syntax error"},
        {"- just\n- a list\n", "(top level)", "expected a mapping, got a list"},
        {HEAD USERS "clusters: {name: k}\n", "clusters", "expected a list, got a mapping"},
        {HEAD USERS "clusters: [hello]\n", "clusters[0]", "expected a mapping, got a scalar"},
        {HEAD USERS "clusters: [{name: k, cluster: [a, b]}]\n", "clusters[0].cluster",
         "expected a mapping, got a list"},
        {HEAD USERS "clusters: [{cluster: {server: 'https://h:1'}}]\n", "clusters[0].name",
         "missing"},
        {HEAD USERS "clusters: [{name: k}]\n", "clusters[0].cluster", "missing"},
        {HEAD USERS "clusters: [{name: k, cluster: {server: [x]}}]\n", "clusters[0].cluster.server",
         "expected a string, got a list"},
        {HEAD USERS "clusters: [{name: k, cluster: {certificate-authority-data: %1$s}}]\n",
         "clusters[0].cluster.server", "missing"},
        {HEAD USERS "clusters: [{name: k, cluster: {server: 'ftp://h:1'}}]\n",
         "clusters[0].cluster.server", "not an https://"},
        {HEAD USERS "clusters: [{name: k, cluster: {server: 'h:1'}}]\n",
         "clusters[0].cluster.server", "not an https://"},
        {HEAD USERS "clusters: [{name: k, cluster: {server: 'https://'}}]\n",
         "clusters[0].cluster.server", "not a valid URL"},
        {HEAD USERS "clusters: [{name: k, cluster: {server: 'https://h:99999'}}]\n",
         "clusters[0].cluster.server", "not a valid URL"},
        /* The message never quotes a password. */
        {HEAD USERS "clusters: [{name: k, cluster: {server: 'https://u:sekret@h:1'}}]\n",
         "clusters[0].cluster.server", "\"https://***@h:1\": a server URL must not carry"},
        {HEAD USERS "clusters: [{name: k, cluster: {server: 'http://h:1', "
                    "certificate-authority-data: %1$s}}]\n",
         "clusters[0].cluster.certificate-authority-data", "http://"},
        {HEAD USERS "clusters: [{name: k, cluster: {server: 'http://h:1', tls-server-name: x}}]\n",
         "clusters[0].cluster.server", "tls-server-name"},
        {HEAD USERS
         "clusters: [{name: k, cluster: {server: 'https://h:1', tls-server-name: 'a/b'}}]\n",
         "clusters[0].cluster.server", "not a host name"},
        {HEAD USERS
         "clusters: [{name: k, cluster: {server: 'https://h:1', insecure-skip-tls-verify: yes}}]\n",
         "clusters[0].cluster.insecure-skip-tls-verify", "expected true or false"},
        {HEAD USERS "clusters: [{name: k, cluster: {server: 'https://h:1', "
                    "insecure-skip-tls-verify: 'true'}}]\n",
         "clusters[0].cluster.insecure-skip-tls-verify", "expected true or false"},
        {HEAD USERS
         "clusters: [{name: k, cluster: {server: 'https://h:1', insecure-skip-tls-verify: true, "
         "certificate-authority-data: %1$s}}]\n",
         "clusters[0].cluster.insecure-skip-tls-verify", "cannot both be set"},
        {HEAD USERS
         "clusters: [{name: k, cluster: {server: 'https://h:1', certificate-authority: ca.pem, "
         "certificate-authority-data: %1$s}}]\n",
         "clusters[0].cluster.certificate-authority-data", "both"},
        {HEAD USERS "clusters: [{name: k, cluster: {server: 'https://h:1', "
                    "certificate-authority-data: 'not base64!'}}]\n",
         "clusters[0].cluster.certificate-authority-data", "invalid base64"},
        {HEAD USERS "clusters: [{name: k, cluster: {server: 'https://h:1', "
                    "certificate-authority-data: 'aGVsbG8='}}]\n",
         "clusters[0].cluster.certificate-authority-data", "not a PEM certificate"},
        {HEAD USERS "clusters: [{name: k, cluster: {server: 'https://h:1', "
                    "certificate-authority-data: 'aGVsbG8'}}]\n",
         "clusters[0].cluster.certificate-authority-data", "multiple of 4"},
        {HEAD USERS "clusters: [{name: k, cluster: {server: 'https://h:1', "
                    "certificate-authority-data: 'aGVs=G8='}}]\n",
         "clusters[0].cluster.certificate-authority-data", "padding"},
        {HEAD USERS "clusters: [{name: k, cluster: {server: 'https://h:1', certificate-authority: "
                    "no-such-ca.crt}}]\n",
         "clusters[0].cluster.certificate-authority", "No such file"},
        {HEAD USERS "clusters: [{name: k, cluster: {server: 'https://h:1', certificate-authority: "
                    "kc.yaml}}]\n",
         "clusters[0].cluster.certificate-authority", "not a PEM certificate"},
        {"contexts: [{name: c, context: {cluster: k}}]\n" CLUSTERS, "current-context", "not set"},
        {"current-context: nope\ncontexts: [{name: c, context: {cluster: k}}]\n" CLUSTERS,
         "current-context", "context \"nope\" not found"},
        {"current-context: c\ncontexts: [{name: b, context: {cluster: k}}, "
         "{name: c, context: {cluster: foo}}]\n" CLUSTERS,
         "contexts[1].context.cluster", "cluster \"foo\" not found"},
        {"current-context: c\ncontexts: [{name: c, context: {user: u}}]\n" CLUSTERS USERS,
         "contexts[0].context.cluster", "missing"},
        {"current-context: c\ncontexts: [{name: c, context: {cluster: k, user: who}}]\n" CLUSTERS
                 USERS,
         "contexts[0].context.user", "user \"who\" not found"},
        {"current-context: c\ncontexts: [{name: c, context: {cluster: k, namespace: {a: "
         "b}}}]\n" CLUSTERS,
         "contexts[0].context.namespace", "expected a string, got a mapping"},
        {"current-context: [c]\n", "current-context", "expected a string, got a list"},
        {HEAD CLUSTERS "users: [{name: u, user: {client-key-data: %2$s}}]\n",
         "users[0].user.client-certificate", "missing"},
        {HEAD CLUSTERS "users: [{name: u, user: {client-certificate-data: %1$s}}]\n",
         "users[0].user.client-key", "missing"},
        {HEAD CLUSTERS
         "users: [{name: u, user: {client-certificate-data: %1$s, client-key-data: '%%%%%%%%'}}]\n",
         "users[0].user.client-key-data", "invalid base64"},
        {HEAD CLUSTERS
         "users: [{name: u, user: {client-certificate-data: %1$s, client-key-data: %1$s}}]\n",
         "users[0].user.client-key-data", "not a PEM private key"},
        {HEAD CLUSTERS
         "users: [{name: u, user: {client-certificate-data: %2$s, client-key-data: %2$s}}]\n",
         "users[0].user.client-certificate-data", "not a PEM certificate"},
        {HEAD CLUSTERS
         "users: [{name: u, user: {client-certificate: c.crt, client-certificate-data: %1$s, "
         "client-key-data: %2$s}}]\n",
         "users[0].user.client-certificate-data", "both"},
        {HEAD CLUSTERS
         "users: [{name: u, user: {client-certificate-data: %1$s, client-key: missing.key}}]\n",
         "users[0].user.client-key", "No such file"},
        {HEAD CLUSTERS "users: [{name: u, user: {tokenFile: no-such-token}}]\n",
         "users[0].user.tokenFile", "No such file"},
        {HEAD CLUSTERS "users: [{name: u, user: {token: 'two words'}}]\n", "users[0].user.token",
         "whitespace"},
        {HEAD CLUSTERS "users: [{name: u, user: {token: [a]}}]\n", "users[0].user.token",
         "expected a string, got a list"},
        {HEAD CLUSTERS "users: [{name: u, user: {auth-provider: {name: gcp}}}]\n",
         "users[0].user.auth-provider", "not supported"},
        {HEAD CLUSTERS "users: [{name: u, user: {exec: {command: x}}}]\n",
         "users[0].user.exec.apiVersion", "missing"},
        {HEAD CLUSTERS
         "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1}}}]\n",
         "users[0].user.exec.command", "missing"},
        {HEAD CLUSTERS "users: [{name: u, user: {exec: {command: x, apiVersion: "
                       "client.authentication.k8s.io/v1alpha1}}}]\n",
         "users[0].user.exec.apiVersion", "not supported"},
        {HEAD CLUSTERS
         "users: [{name: u, user: {exec: {command: x, apiVersion: client.authentication.k8s.io/v1, "
         "args: [a, [b]]}}}]\n",
         "users[0].user.exec.args[1]", "expected a string, got a list"},
        {HEAD CLUSTERS
         "users: [{name: u, user: {exec: {command: x, apiVersion: client.authentication.k8s.io/v1, "
         "env: [{value: v}]}}}]\n",
         "users[0].user.exec.env[0].name", "missing"},
        {HEAD CLUSTERS "users: [{name: u, user: {token: t, exec: {command: x, "
                       "apiVersion: client.authentication.k8s.io/v1}}}]\n",
         "users[0].user.exec", "both set"},
        {HEAD CLUSTERS "users: [{name: u, user: {exec: {command: /nonexistent/koc-plugin, "
                       "apiVersion: client.authentication.k8s.io/v1}}}]\n",
         "users[0].user.exec", "cannot run \"/nonexistent/koc-plugin\""},
        {HEAD CLUSTERS "users: [{name: u, user: {exec: {command: /nonexistent/koc-plugin, "
                       "installHint: 'install it with: apt install koc-plugin', "
                       "apiVersion: client.authentication.k8s.io/v1}}}]\n",
         "users[0].user.exec",
         "No such file or directory. install it with: apt install koc-plugin"},
        {HEAD CLUSTERS "users: [{name: u, user: {exec: {command: x, interactiveMode: Always, "
                       "apiVersion: client.authentication.k8s.io/v1}}}]\n",
         "users[0].user.exec.interactiveMode", "without a terminal"},
};

static void test_broken(void **state) {
        for (size_t i = 0; i < sizeof broken_cases / sizeof broken_cases[0]; i++) {
                const struct broken *b = &broken_cases[i];
                char *text = NULL;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
                assert_true(asprintf(&text, b->yaml, ca_b64, key_b64) >= 0);
#pragma GCC diagnostic pop
                write_file("kc.yaml", "%s", text);
                free(text);
                expect_error(path_of("kc.yaml"), NULL, 0, path_of("kc.yaml"), b->field, b->why);
        }
}

static void test_unreadable(void **state) {
        expect_error(path_of("does-not-exist"), NULL, -ENOENT, path_of("does-not-exist"),
                     "cannot read kubeconfig", "No such file");
        expect_error(dir, NULL, -EISDIR, dir, "cannot read kubeconfig", "directory");
        expect_error("", NULL, -EINVAL, NULL, "kubeconfig", "no path");
        write_file("ok.yaml", HEAD CLUSTERS USERS);
        expect_error(path_of("ok.yaml"), "other", -ENOENT, path_of("ok.yaml"), "context \"other\"",
                     "not found");
        if (geteuid() != 0) {
                write_file("noperm.yaml", HEAD CLUSTERS USERS);
                assert_int_equal(chmod(path_of("noperm.yaml"), 0), 0);
                expect_error(path_of("noperm.yaml"), NULL, -EACCES, path_of("noperm.yaml"),
                             "cannot read kubeconfig", "Permission denied");
        }
        /* Too large: bounded before parsing. */
        FILE *f = fopen(path_of("huge.yaml"), "w");
        assert_non_null(f);
        assert_int_equal(ftruncate(fileno(f), KOC_KUBECONFIG_MAX + 1), 0);
        fclose(f);
        expect_error(path_of("huge.yaml"), NULL, -EFBIG, path_of("huge.yaml"), "larger than", NULL);
        assert_int_equal(unlink(path_of("huge.yaml")), 0);
}

/* ---- exec credential plugins -------------------------------------------- */

static void write_plugin(const char *name, const char *body) {
        write_file(name, "#!/bin/sh\n%s", body);
        assert_int_equal(chmod(path_of(name), 0700), 0);
}

static int count_runs(void) {
        FILE *f = fopen(path_of("plugin-runs"), "r");
        if (!f)
                return 0;
        int n = 0;
        for (int c; (c = fgetc(f)) != EOF;)
                n += c == '\n';
        fclose(f);
        return n;
}

static void test_exec_plugin(void **state) {
        /* Echoes its argument and an env entry back in the token; the
         * expiry comes from a file so the test can move it. */
        write_plugin("plugin.sh",
                     "echo run >> \"$RUNS\"\n"
                     "case \"$KUBERNETES_EXEC_INFO\" in *ExecCredential*) ;; *) exit 3 ;; esac\n"
                     "exp=$(cat \"$EXPIRY\")\n"
                     "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",'\n"
                     "printf '\"kind\":\"ExecCredential\",\"status\":{\"token\":\"%s-%s-%s\",' "
                     "\"$1\" \"$GREETING\" \"$(wc -l < \"$RUNS\" | tr -d ' ')\"\n"
                     "printf '\"expirationTimestamp\":\"%s\"}}' \"$exp\"\n");
        write_file("expiry", "2999-01-01T00:00:00Z");
        write_file("exec.yaml",
                   HEAD CLUSTERS "users:\n"
                                 "- name: u\n"
                                 "  user:\n"
                                 "    exec:\n"
                                 "      apiVersion: client.authentication.k8s.io/v1\n"
                                 "      interactiveMode: IfAvailable\n"
                                 "      command: %s\n"
                                 "      args: [arg1]\n"
                                 "      env:\n"
                                 "      - {name: GREETING, value: hi}\n"
                                 "      - {name: RUNS, value: %s}\n"
                                 "      - {name: EXPIRY, value: %s}\n",
                   path_of("plugin.sh"), path_of("plugin-runs"), path_of("expiry"));
        unlink(path_of("plugin-runs"));
        koc_cluster_config *cfg = load_ok(path_of("exec.yaml"), NULL);
        assert_int_equal(count_runs(), 1);
        assert_string_equal(koc__cluster_config_auth_header(cfg), "Authorization: Bearer arg1-hi-1");
        assert_string_equal(koc__cluster_config_auth_header(cfg), "Authorization: Bearer arg1-hi-1");
        assert_int_equal(count_runs(), 1);
        /* After a 401: run again. */
        koc__cluster_config_token_invalidate(cfg);
        assert_string_equal(koc__cluster_config_auth_header(cfg), "Authorization: Bearer arg1-hi-2");
        assert_int_equal(count_runs(), 2);
        /* Expired: run again when asked. */
        write_file("expiry", "2000-01-01T00:00:00Z");
        koc__cluster_config_token_invalidate(cfg);
        assert_string_equal(koc__cluster_config_auth_header(cfg), "Authorization: Bearer arg1-hi-3");
        assert_int_equal(count_runs(), 3);
        write_file("expiry", "2999-01-01T00:00:00Z");
        cfg->token_read_usec = 0; /* as if the last run was long ago */
        cfg->now = NULL, koc__cluster_config_set_clock(cfg, NULL, NULL);
        cfg->token_read_usec -= 61 * UINT64_C(1000000);
        assert_string_equal(koc__cluster_config_auth_header(cfg), "Authorization: Bearer arg1-hi-4");
        assert_int_equal(count_runs(), 4);
        assert_string_equal(koc__cluster_config_auth_header(cfg), "Authorization: Bearer arg1-hi-4");
        assert_int_equal(count_runs(), 4);

        /* The plugin breaks: the last credential is kept. */
        write_plugin("plugin.sh", "echo run >> \"$RUNS\"\necho 'login required' >&2\nexit 1\n");
        koc__cluster_config_token_invalidate(cfg);
        assert_string_equal(koc__cluster_config_auth_header(cfg), "Authorization: Bearer arg1-hi-4");
        assert_int_equal(count_runs(), 5);
        koc_cluster_config_unref(cfg);

        /* At load, the failure is an error naming the field and the output. */
        expect_error(path_of("exec.yaml"), NULL, -EPERM, path_of("exec.yaml"), "users[0].user.exec",
                     "exited with status 1: login required");

        struct {
                const char *body, *why;
        } bad[] = {
                {"echo 'not json'\n", "not JSON"},
                {"echo '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"Other\"}'\n",
                 "kind"},
                {"echo '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\","
                 "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t\"}}'\n",
                 "apiVersion"},
                {"echo '{\"apiVersion\":\"client.authentication.k8s.io/v1\","
                 "\"kind\":\"ExecCredential\",\"status\":{}}'\n",
                 "status.token"},
                {"echo '{\"apiVersion\":\"client.authentication.k8s.io/v1\","
                 "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t\","
                 "\"expirationTimestamp\":\"tomorrow\"}}'\n",
                 "status.expirationTimestamp"},
                /* client-go's decoder refuses anything after the object. */
                {"echo '{\"apiVersion\":\"client.authentication.k8s.io/v1\","
                 "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t\"}} trailing'\n",
                 "not JSON"},
                {"head -c 2000000 /dev/zero\n", "more than 1 MiB"},
                {"kill -9 $$\n", "killed by signal 9"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                write_plugin("plugin.sh", bad[i].body);
                expect_error(path_of("exec.yaml"), NULL, 0, path_of("exec.yaml"),
                             "users[0].user.exec", bad[i].why);
        }
}

/* A credential with a token and a client certificate: the token is used, and
 * the certificate, which koc does not take from plugins, is said to be
 * ignored (once, rate-limited), not dropped in silence. */
static void test_exec_output_certificate_warns(void **state) {
        struct captured c = {0};
        char *argv[] = {(char *)"plugin", NULL};
        koc_exec_config e = {.command = (char *)"plugin",
                             .argv = argv,
                             .n_args = 1,
                             .api_version = (char *)"client.authentication.k8s.io/v1",
                             .where = (char *)"k.yaml: users[0].user.exec"};
        char *token = NULL;
        uint64_t expiry = 1;
        koc_error err = {0};
        koc_log_set_handler(capture, &c, NULL);
        assert_int_equal(koc__exec_credential_parse(
                                 &e,
                                 "{\"apiVersion\":\"client.authentication.k8s.io/v1\","
                                 "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t\","
                                 "\"clientCertificateData\":\"C\",\"clientKeyData\":\"K\"}}",
                                 &token, &expiry, &err),
                         0);
        assert_string_equal(token, "t");
        assert_int_equal(expiry, 0);
        free(token);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.component, "config");
        assert_non_null(strstr(c.message, "k.yaml: users[0].user.exec"));
        assert_non_null(strstr(c.message, "clientCertificateData"));
        /* Without one: no warning. */
        token = NULL;
        assert_int_equal(koc__exec_credential_parse(
                                 &e,
                                 "{\"apiVersion\":\"client.authentication.k8s.io/v1\","
                                 "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t\"}}",
                                 &token, &expiry, &err),
                         0);
        free(token);
        assert_int_equal(c.n, 1);
        koc_log_set_handler(NULL, NULL, NULL);
}

static void test_exec_timeout_kills_the_group(void **state) {
        /* The plugin starts a child that would outlive it; both are killed
         * at the deadline (the child's pid is written first, to check). */
        write_plugin("slow.sh", "sleep 30 &\necho $! > \"$1\"\nsleep 30\n");
        char *argv[] = {path_of("slow.sh"), path_of("slow.pid"), NULL};
        koc_exec_config e = {
                .command = argv[0],
                .argv = argv,
                .api_version = (char *)"client.authentication.k8s.io/v1",
                .where = (char *)"test: exec",
                .timeout_usec = 300 * 1000,
        };
        char *token = NULL;
        uint64_t expiry = 0;
        koc_error err = {0};
        assert_int_equal(koc__exec_credential_run(&e, &token, &expiry, &err), -ETIMEDOUT);
        assert_null(token);
        assert_non_null(strstr(err.message, "did not finish within 300ms; killed"));
        FILE *f = fopen(path_of("slow.pid"), "r");
        assert_non_null(f);
        int pid = 0;
        assert_int_equal(fscanf(f, "%d", &pid), 1);
        fclose(f);
        /* Killed: gone, or a zombie until init reaps it. */
        for (int i = 0; i < 100; i++) {
                char path[64], stat[256] = "";
                snprintf(path, sizeof path, "/proc/%d/stat", pid);
                f = fopen(path, "r");
                if (!f)
                        return;
                size_t n = fread(stat, 1, sizeof stat - 1, f);
                fclose(f);
                stat[n] = 0;
                const char *p = strrchr(stat, ')');
                if (p && p[1] == ' ' && p[2] == 'Z')
                        return;
                usleep(10000);
        }
        fail_msg("the plugin's child %d survived", pid);
}

/* ---- garbage ------------------------------------------------------------ */

static void try_load(const char *path) {
        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        int r = koc_cluster_config_from_kubeconfig(path, NULL, &cfg, &err);
        if (r < 0) {
                assert_null(cfg);
                assert_int_equal(err.code, r);
                assert_true(strlen(err.message) > 0);
        } else {
                assert_non_null(koc_cluster_config_server(cfg));
                koc_cluster_config_unref(cfg);
        }
}

static void test_truncated_and_garbage(void **state) {
        char *full = NULL;
        assert_true(asprintf(&full,
                             "apiVersion: v1\n"
                             "current-context: c # comment\n"
                             "contexts:\n"
                             "- name: c\n"
                             "  context: {cluster: k, user: u, namespace: 'n'}\n"
                             "clusters:\n"
                             "- name: k\n"
                             "  cluster:\n"
                             "    server: \"https://127.0.0.1:6443\"\n"
                             "    certificate-authority-data: %s\n"
                             "users:\n"
                             "- name: u\n"
                             "  user:\n"
                             "    client-certificate-data: %s\n"
                             "    client-key-data: %s\n"
                             "    token: abc\n",
                             ca_b64, ca_b64, key_b64) > 0);
        size_t n = strlen(full);
        int ok = 0;
        /* Every cut in the structure, then every 7th inside the long
         * base64 lines (each load decodes and checks the PEM data). */
        /* Under valgrind (20x slower) fewer cuts and rounds keep the run
         * short; the structure is still cut at every byte. */
        bool slow = getenv("KOC_UNDER_VALGRIND") != NULL;
        size_t step = slow ? 29 : 7;
        for (size_t len = 0; len <= n; len += len < 200 || len + 200 > n ? 1 : step) {
                write_bytes("trunc.yaml", full, len);
                koc_cluster_config *cfg = NULL;
                if (koc_cluster_config_from_kubeconfig(path_of("trunc.yaml"), NULL, &cfg, NULL) ==
                    0) {
                        ok++;
                        koc_cluster_config_unref(cfg);
                } else {
                        try_load(path_of("trunc.yaml"));
                }
        }
        assert_true(ok >= 1); /* at least the whole file */

        /* Random bytes and random mutations of the valid file. */
        srand(42);
        char *buf = malloc(n + 1);
        for (int round = 0; round < (slow ? 40 : 150); round++) {
                memcpy(buf, full, n);
                int flips = 1 + rand() % 8;
                for (int k = 0; k < flips; k++)
                        buf[rand() % n] = (char)(rand() % 256);
                write_bytes("mut.yaml", buf, n);
                try_load(path_of("mut.yaml"));
                size_t glen = (size_t)(rand() % 512);
                for (size_t k = 0; k < glen; k++)
                        buf[k] = (char)(rand() % 256);
                write_bytes("garbage.yaml", buf, glen);
                try_load(path_of("garbage.yaml"));
        }
        free(buf);
        free(full);

        /* Deep nesting, alias bombs, NUL bytes, huge keys. */
        size_t depth = 100000;
        char *deep = malloc(2 * depth + 1);
        memset(deep, '[', depth);
        memset(deep + depth, ']', depth);
        deep[2 * depth] = '\0';
        write_file("deep.yaml", "clusters: %s\n", deep);
        expect_error(path_of("deep.yaml"), NULL, -EINVAL, path_of("deep.yaml"), "line 1, column",
                     "nested more than");
        for (size_t k = 0; k < 2 * depth; k += 2)
                memcpy(deep + k, "- ", 2);
        write_file("deep-block.yaml", "%s\n", deep);
        expect_error(path_of("deep-block.yaml"), NULL, -EINVAL, path_of("deep-block.yaml"),
                     "line 1", "nested more than");
        /* Many nodes: "[a,a,a,...]" */
        deep[0] = '[';
        for (size_t k = 1; k + 2 < 2 * depth; k += 2)
                memcpy(deep + k, "a,", 2);
        deep[2 * depth - 1] = ']';
        write_file("wide.yaml", "clusters: [%s, %s, %s]\n", deep, deep, deep);
        expect_error(path_of("wide.yaml"), NULL, -EFBIG, path_of("wide.yaml"), "line 1",
                     "more than 200000 YAML nodes");
        free(deep);
        write_file("bomb.yaml", "a: &a [x, x, x, x, x, x, x, x, x]\n"
                                "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                                "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                                "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                                "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                                "clusters: *e\n"
                                "current-context: *e\n");
        try_load(path_of("bomb.yaml"));
        static const char nul[] = "current-context: c\0x\ncontexts: []\n";
        write_bytes("nul.yaml", nul, sizeof nul - 1);
        try_load(path_of("nul.yaml"));
        write_file("quoted-nul.yaml", "current-context: \"c\\0x\"\ncontexts: [{name: c, context: "
                                      "{cluster: k}}]\n" CLUSTERS);
        expect_error(path_of("quoted-nul.yaml"), NULL, -EINVAL, path_of("quoted-nul.yaml"),
                     "current-context", "NUL");
        write_file("binary-scalar.yaml", "!!binary aGVsbG8=\n");
        try_load(path_of("binary-scalar.yaml"));
}

/* ---- credentials and transport ----------------------------------------- */

/* The header lines the config adds to every request, one per line. */
static char *headers_text(const koc_cluster_config *cfg) {
        static char buf[2048];
        buf[0] = '\0';
        for (const struct curl_slist *l = cfg->headers; l; l = l->next) {
                size_t n = strlen(buf);
                snprintf(buf + n, sizeof buf - n, "%s\n", l->data);
        }
        return buf;
}

/* as, as-uid, as-groups, as-user-extra become client-go's Impersonate-*
 * headers; an extra's key is percent-encoded as client-go does. */
static void test_impersonation(void **state) {
        write_file("as.yaml", HEAD CLUSTERS
                   "users:\n"
                   "- name: u\n"
                   "  user:\n"
                   "    token: t\n"
                   "    as: system:serviceaccount:default:nobody\n"
                   "    as-uid: 1234-abcd\n"
                   "    as-groups: [system:authenticated, team a, '']\n"
                   "    as-user-extra:\n"
                   "      example.com/scopes: [read, write]\n"
                   "      'Odd key%%é': [v]\n"
                   "      none: null\n");
        koc_cluster_config *cfg = load_ok(path_of("as.yaml"), NULL);
        assert_string_equal(headers_text(cfg),
                            "Impersonate-User: system:serviceaccount:default:nobody\n"
                            "Impersonate-Uid: 1234-abcd\n"
                            "Impersonate-Group: system:authenticated\n"
                            "Impersonate-Group: team a\n"
                            "Impersonate-Group;\n"
                            "Impersonate-Extra-example.com%2Fscopes: read\n"
                            "Impersonate-Extra-example.com%2Fscopes: write\n"
                            "Impersonate-Extra-Odd%20key%25%C3%A9: v\n");
        /* The token is still the credential; impersonation rides on it. */
        assert_string_equal(koc__cluster_config_auth_header(cfg), "Authorization: Bearer t");
        koc_cluster_config_unref(cfg);

        /* Only `as`: one header. */
        write_file("as-only.yaml", HEAD CLUSTERS "users: [{name: u, user: {token: t, as: bob}}]\n");
        cfg = load_ok(path_of("as-only.yaml"), NULL);
        assert_string_equal(headers_text(cfg), "Impersonate-User: bob\n");
        koc_cluster_config_unref(cfg);

        /* Without impersonation, no header at all. */
        write_file("as-none.yaml", HEAD CLUSTERS USERS);
        cfg = load_ok(path_of("as-none.yaml"), NULL);
        assert_null(cfg->headers);
        koc_cluster_config_unref(cfg);

        /* client-go refuses groups, uid or extras without a user. */
        write_file("as-groups-only.yaml",
                   HEAD CLUSTERS "users: [{name: u, user: {token: t, as-groups: [g]}}]\n");
        expect_error(path_of("as-groups-only.yaml"), NULL, -EINVAL, path_of("as-groups-only.yaml"),
                     "users[0].user.as:", "need a user to impersonate");
        /* A line break would add a header of the file's choosing. */
        write_file("as-crlf.yaml", HEAD CLUSTERS
                   "users: [{name: u, user: {token: t, as: \"bob\\r\\nX-Evil: 1\"}}]\n");
        expect_error(path_of("as-crlf.yaml"), NULL, -EINVAL, path_of("as-crlf.yaml"),
                     "users[0].user.as", "control characters");
        write_file("as-group-crlf.yaml",
                   HEAD CLUSTERS "users: [{name: u, user: {as: a, as-groups: [ok, \"x\\ny\"]}}]\n");
        expect_error(path_of("as-group-crlf.yaml"), NULL, -EINVAL, path_of("as-group-crlf.yaml"),
                     "users[0].user.as-groups[1]", "control characters");
        write_file("as-extra-scalar.yaml",
                   HEAD CLUSTERS "users: [{name: u, user: {as: a, as-user-extra: {k: v}}}]\n");
        expect_error(path_of("as-extra-scalar.yaml"), NULL, -EINVAL,
                     path_of("as-extra-scalar.yaml"), "users[0].user.as-user-extra.k",
                     "a list of strings");
        write_file("as-groups-map.yaml",
                   HEAD CLUSTERS "users: [{name: u, user: {as: a, as-groups: {a: b}}}]\n");
        expect_error(path_of("as-groups-map.yaml"), NULL, -EINVAL, path_of("as-groups-map.yaml"),
                     "users[0].user.as-groups", "expected a list");
}

/* username/password: HTTP basic auth, never together with a token. */
static void test_basic_auth(void **state) {
        write_file("basic.yaml",
                   HEAD CLUSTERS
                   "users: [{name: u, user: {username: admin, password: 's3cret'}}]\n");
        assert_int_equal(chmod(path_of("basic.yaml"), 0600), 0);
        koc_cluster_config *cfg = load_ok(path_of("basic.yaml"), NULL);
        assert_string_equal(cfg->username, "admin");
        assert_string_equal(cfg->password, "s3cret");
        assert_null(koc__cluster_config_auth_header(cfg));
        check_apply_tls(cfg);
        koc_cluster_config_unref(cfg);

        write_file("basic-pw-only.yaml",
                   HEAD CLUSTERS "users: [{name: u, user: {password: 's3cret'}}]\n");
        cfg = load_ok(path_of("basic-pw-only.yaml"), NULL);
        assert_string_equal(cfg->username, "");
        assert_string_equal(cfg->password, "s3cret");
        koc_cluster_config_unref(cfg);

        write_file("basic-token.yaml",
                   HEAD CLUSTERS
                   "users: [{name: u, user: {username: a, password: b, token: t}}]\n");
        expect_error(path_of("basic-token.yaml"), NULL, -EINVAL, path_of("basic-token.yaml"),
                     "users[0].user.username", "basic auth (username/password) and token");
}

/* proxy-url: http, https and socks5 (handed to libcurl as socks5h: the
 * proxy resolves the name, as Go's dialer does); anything else refused. */
static void test_proxy_url(void **state) {
        static const struct {
                const char *url, *want;
                bool tls;
        } ok[] = {
                {"http://127.0.0.1:3128", "http://127.0.0.1:3128", false},
                {"HTTPS://proxy.example:8443", "https://proxy.example:8443", true},
                {"socks5://user:pw@[::1]:1080", "socks5h://user:pw@[::1]:1080", false},
        };
        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
                write_file("proxy.yaml",
                           HEAD USERS "clusters: [{name: k, cluster: {server: 'https://h:1', "
                                      "proxy-url: '%s'}}]\n",
                           ok[i].url);
                koc_cluster_config *cfg = load_ok(path_of("proxy.yaml"), NULL);
                assert_string_equal(cfg->proxy, ok[i].want);
                assert_int_equal(cfg->proxy_tls, ok[i].tls);
                check_apply_tls(cfg);
                koc_cluster_config_unref(cfg);
        }
        static const struct {
                const char *url, *why;
                int code;
        } bad[] = {
                {"socks5h://127.0.0.1:1080", "unsupported scheme \"socks5h\"", -ENOTSUP},
                {"ftp://127.0.0.1", "unsupported scheme \"ftp\"", -ENOTSUP},
                {"socks4://127.0.0.1", "unsupported scheme \"socks4\"", -ENOTSUP},
                {"127.0.0.1:3128", "not a URL with a scheme", -EINVAL},
                {"http://", "not a valid http:// URL", -EINVAL},
                {"http://a b", "whitespace", -EINVAL},
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                write_file("proxy-bad.yaml",
                           HEAD USERS "clusters: [{name: k, cluster: {server: 'https://h:1', "
                                      "proxy-url: '%s'}}]\n",
                           bad[i].url);
                expect_error(path_of("proxy-bad.yaml"), NULL, bad[i].code,
                             path_of("proxy-bad.yaml"),
                             "clusters[0].cluster.proxy-url", bad[i].why);
        }
        /* The proxy's password is not repeated in messages. */
        write_file("proxy-bad.yaml", HEAD USERS
                   "clusters: [{name: k, cluster: {server: 'https://h:1', proxy-url: "
                   "'gopher://u:hunter2@p'}}]\n");
        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        assert_int_equal(koc_cluster_config_from_kubeconfig(path_of("proxy-bad.yaml"), NULL, &cfg,
                                                            &err),
                         -ENOTSUP);
        assert_null(strstr(err.message, "hunter2"));

        /* A proxy password over a plain proxy is warned about (once, naming
         * the file and field, never quoting it); over https it is not. */
        static const struct {
                const char *url;
                bool warns;
        } pw[] = {
                {"http://u:hunter2@127.0.0.1:3128", true},
                {"socks5://u:hunter2@127.0.0.1:1080", true},
                {"https://u:hunter2@127.0.0.1:8443", false},
                {"http://u@127.0.0.1:3128", false},
        };
        for (size_t i = 0; i < sizeof pw / sizeof pw[0]; i++) {
                struct all_warnings w = {0};
                write_file("proxy-pw.yaml",
                           HEAD USERS "clusters: [{name: k, cluster: {server: 'https://h:1', "
                                      "proxy-url: '%s'}}]\n",
                           pw[i].url);
                assert_int_equal(chmod(path_of("proxy-pw.yaml"), 0600), 0);
                koc_log_set_handler(capture_all, &w, NULL);
                cfg = load_ok(path_of("proxy-pw.yaml"), NULL);
                koc_log_set_handler(NULL, NULL, NULL);
                koc_cluster_config_unref(cfg);
                assert_null(strstr(w.text, "hunter2"));
                if (pw[i].warns) {
                        assert_non_null(strstr(w.text, "clusters[0].cluster.proxy-url: the proxy's "
                                                       "password is sent unencrypted"));
                        assert_non_null(strstr(w.text, path_of("proxy-pw.yaml")));
                } else {
                        assert_null(strstr(w.text, "unencrypted"));
                }
        }

        /* disable-compression is honoured (no Accept-Encoding). */
        write_file("nogzip.yaml", HEAD USERS
                   "clusters: [{name: k, cluster: {server: 'https://h:1', "
                   "disable-compression: true}}]\n");
        cfg = load_ok(path_of("nogzip.yaml"), NULL);
        assert_true(cfg->disable_compression);
        koc_cluster_config_unref(cfg);
}

/* One warn line naming the file when a credential file is readable by group
 * or others, and when a credential would cross plain http://. */
static void test_credential_warnings(void **state) {
        struct all_warnings c = {0};
        write_file("mode.yaml", HEAD CLUSTERS USERS);
        assert_int_equal(chmod(path_of("mode.yaml"), 0644), 0);
        koc_log_set_handler(capture_all, &c, NULL);
        koc_cluster_config *cfg = load_ok(path_of("mode.yaml"), NULL);
        koc_log_set_handler(NULL, NULL, NULL);
        koc_cluster_config_unref(cfg);
        assert_int_equal(c.n, 1);
        assert_non_null(strstr(c.text, path_of("mode.yaml")));
        assert_non_null(strstr(c.text, "holds a bearer token but is readable by group and others"));

        /* Owner only: silent. */
        memset(&c, 0, sizeof c);
        assert_int_equal(chmod(path_of("mode.yaml"), 0600), 0);
        koc_log_set_handler(capture_all, &c, NULL);
        cfg = load_ok(path_of("mode.yaml"), NULL);
        koc_log_set_handler(NULL, NULL, NULL);
        koc_cluster_config_unref(cfg);
        assert_int_equal(c.n, 0);

        /* A token file and a client key file readable by the group; the
         * kubeconfig itself holds no secret then and is not warned about. */
        write_file("mode-token", "tok\n");
        assert_int_equal(chmod(path_of("mode-token"), 0640), 0);
        write_file("mode-ca.pem", "%s", ca_pem);
        write_file("mode-key.pem", "%s", key_pem);
        assert_int_equal(chmod(path_of("mode-key.pem"), 0604), 0);
        write_file("mode-files.yaml",
                   HEAD "clusters: [{name: k, cluster: {server: 'https://h:1', "
                        "certificate-authority: mode-ca.pem}}]\n"
                        "users: [{name: u, user: {tokenFile: mode-token, client-certificate: "
                        "mode-ca.pem, client-key: mode-key.pem}}]\n");
        assert_int_equal(chmod(path_of("mode-files.yaml"), 0644), 0);
        memset(&c, 0, sizeof c);
        koc_log_set_handler(capture_all, &c, NULL);
        cfg = load_ok(path_of("mode-files.yaml"), NULL);
        koc_log_set_handler(NULL, NULL, NULL);
        koc_cluster_config_unref(cfg);
        assert_int_equal(c.n, 2);
        char want[512];
        snprintf(want, sizeof want, "%s: holds a bearer token but is readable by its group",
                 path_of("mode-token"));
        assert_non_null(strstr(c.text, want));
        snprintf(want, sizeof want, "%s: holds a client key but is readable by others",
                 path_of("mode-key.pem"));
        assert_non_null(strstr(c.text, want));

        /* A password in a group-readable kubeconfig, sent over http://. */
        write_file("mode-http.yaml",
                   HEAD "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:8080'}}]\n"
                        "users: [{name: u, user: {username: a, password: b}}]\n");
        assert_int_equal(chmod(path_of("mode-http.yaml"), 0640), 0);
        memset(&c, 0, sizeof c);
        koc_log_set_handler(capture_all, &c, NULL);
        cfg = load_ok(path_of("mode-http.yaml"), NULL);
        koc_log_set_handler(NULL, NULL, NULL);
        koc_cluster_config_unref(cfg);
        assert_int_equal(c.n, 2);
        assert_non_null(strstr(c.text, "holds a password but is readable by its group"));
        snprintf(want, sizeof want,
                 "%s: user \"u\": basic auth credentials are sent in clear text to "
                 "http://127.0.0.1:8080",
                 path_of("mode-http.yaml"));
        assert_non_null(strstr(c.text, want));

        /* An auth-provider next to a token is said, not silently dropped. */
        write_file("mode-ap.yaml", HEAD CLUSTERS
                   "users: [{name: u, user: {token: t, auth-provider: {name: oidc}}}]\n");
        assert_int_equal(chmod(path_of("mode-ap.yaml"), 0600), 0);
        memset(&c, 0, sizeof c);
        koc_log_set_handler(capture_all, &c, NULL);
        cfg = load_ok(path_of("mode-ap.yaml"), NULL);
        koc_log_set_handler(NULL, NULL, NULL);
        assert_string_equal(koc__cluster_config_auth_header(cfg), "Authorization: Bearer t");
        koc_cluster_config_unref(cfg);
        assert_int_equal(c.n, 1);
        assert_non_null(strstr(c.text, "users[0].user.auth-provider: auth-provider plugins are "
                                        "not supported; ignored"));

        /* A bearer token over http://, from an owner-only file: one line. */
        write_file("mode-http.yaml",
                   HEAD "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:8080'}}]\n"
                        USERS);
        assert_int_equal(chmod(path_of("mode-http.yaml"), 0600), 0);
        memset(&c, 0, sizeof c);
        koc_log_set_handler(capture_all, &c, NULL);
        cfg = load_ok(path_of("mode-http.yaml"), NULL);
        koc_log_set_handler(NULL, NULL, NULL);
        koc_cluster_config_unref(cfg);
        assert_int_equal(c.n, 1);
        assert_non_null(strstr(c.text, "a bearer token is sent in clear text to http://"));
}

/* A relative exec command with a slash resolves against the kubeconfig's
 * directory (client-go), whatever the working directory; a bare name goes
 * through PATH. */
static void test_exec_relative_command(void **state) {
        char bin[300];
        snprintf(bin, sizeof bin, "%s/bin", dir);
        mkdir(bin, 0700);
        write_plugin("bin/rel-plugin",
                     "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",'\n"
                     "printf '\"kind\":\"ExecCredential\",\"status\":{\"token\":\"rel-%s\"}}' "
                     "\"$1\"\n");
        write_file("rel.yaml",
                   HEAD CLUSTERS "users:\n"
                                 "- name: u\n"
                                 "  user:\n"
                                 "    exec:\n"
                                 "      apiVersion: client.authentication.k8s.io/v1\n"
                                 "      command: ./bin/rel-plugin\n"
                                 "      args: [dot]\n"
                                 "      provideClusterInfo: false\n");
        write_file("rel-bare.yaml",
                   HEAD CLUSTERS "users:\n"
                                 "- name: u\n"
                                 "  user:\n"
                                 "    exec:\n"
                                 "      apiVersion: client.authentication.k8s.io/v1\n"
                                 "      command: rel-plugin\n"
                                 "      args: [bare]\n");
        char cwd[4096];
        assert_non_null(getcwd(cwd, sizeof cwd));
        /* Elsewhere, with a path that does not name dir. */
        assert_int_equal(chdir("/"), 0);
        koc_cluster_config *cfg = load_ok(path_of("rel.yaml"), NULL);
        assert_string_equal(koc__cluster_config_auth_header(cfg), "Authorization: Bearer rel-dot");
        char want[400];
        snprintf(want, sizeof want, "%s/./bin/rel-plugin", dir);
        assert_string_equal(cfg->exec->command, want);
        koc_cluster_config_unref(cfg);

        /* A bare name is not looked up next to the kubeconfig... */
        expect_error(path_of("rel-bare.yaml"), NULL, 0, path_of("rel-bare.yaml"),
                     "users[0].user.exec", "rel-plugin");
        /* ...but in PATH. */
        const char *old = getenv("PATH");
        char *saved = strdup(old ? old : "");
        char path[5000];
        snprintf(path, sizeof path, "%s:%s", bin, saved);
        setenv("PATH", path, 1);
        cfg = load_ok(path_of("rel-bare.yaml"), NULL);
        assert_string_equal(koc__cluster_config_auth_header(cfg), "Authorization: Bearer rel-bare");
        assert_string_equal(cfg->exec->command, "rel-plugin");
        koc_cluster_config_unref(cfg);
        setenv("PATH", saved, 1);
        free(saved);
        assert_int_equal(chdir(cwd), 0);

        /* A misspelled exec key is warned about like any other. */
        write_file("rel-info.yaml",
                   HEAD CLUSTERS "users:\n"
                                 "- name: u\n"
                                 "  user:\n"
                                 "    exec:\n"
                                 "      apiVersion: client.authentication.k8s.io/v1\n"
                                 "      command: ./bin/rel-plugin\n"
                                 "      provideClusterInfo: true\n"
                                 "      argz: [x]\n");
        struct all_warnings c = {0};
        koc_log_set_handler(capture_all, &c, NULL);
        cfg = load_ok(path_of("rel-info.yaml"), NULL);
        koc_log_set_handler(NULL, NULL, NULL);
        koc_cluster_config_unref(cfg);
        assert_int_equal(c.n, 1);
        assert_non_null(strstr(c.text, "users[0].user.exec.argz: unknown key"));
}

/* The KUBERNETES_EXEC_INFO a plugin got, as JSON (the plugin saves it). */
static cJSON *exec_info(void) {
        FILE *f = fopen(path_of("exec-info.json"), "r");
        assert_non_null(f);
        char buf[16384];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        cJSON *j = cJSON_Parse(buf);
        if (!j)
                fail_msg("KUBERNETES_EXEC_INFO is not JSON: %s", buf);
        return j;
}

/* provideClusterInfo: true gives the plugin client-go's spec.cluster: the
 * server, TLS settings, the CA bundle inline (from data or a file), the
 * proxy, and the client.authentication.k8s.io/exec extension as config. */
static void test_exec_cluster_info(void **state) {
        write_plugin("info-plugin",
                     "printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$INFO\"\n"
                     "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",'\n"
                     "printf '\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t\"}}'\n");
        write_file("info.yaml",
                   "current-context: c\n"
                   "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                   "clusters:\n"
                   "- name: k\n"
                   "  cluster:\n"
                   "    server: https://10.0.0.1:6443/prefix\n"
                   "    tls-server-name: api.example\n"
                   "    certificate-authority-data: %s\n"
                   "    proxy-url: socks5://127.0.0.1:1080\n"
                   "    disable-compression: true\n"
                   "    extensions:\n"
                   "    - name: other\n"
                   "      extension: {ignored: 1}\n"
                   "    - name: client.authentication.k8s.io/exec\n"
                   "      extension: {audience: kube, n: 3, quoted: '3', nested: {l: [a, true, "
                   "null]}}\n"
                   "users:\n"
                   "- name: u\n"
                   "  user:\n"
                   "    exec:\n"
                   "      apiVersion: client.authentication.k8s.io/v1\n"
                   "      command: ./info-plugin\n"
                   "      provideClusterInfo: true\n"
                   "      env: [{name: INFO, value: %s}]\n",
                   ca_b64, path_of("exec-info.json"));
        koc_cluster_config *cfg = load_ok(path_of("info.yaml"), NULL);
        koc_cluster_config_unref(cfg);
        cJSON *j = exec_info();
        const cJSON *spec = cJSON_GetObjectItem(j, "spec");
        assert_false(cJSON_IsTrue(cJSON_GetObjectItem(spec, "interactive")));
        const cJSON *cl = cJSON_GetObjectItem(spec, "cluster");
        assert_non_null(cl);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cl, "server")),
                            "https://10.0.0.1:6443/prefix");
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cl, "tls-server-name")),
                            "api.example");
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cl, "proxy-url")),
                            "socks5://127.0.0.1:1080");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cl, "disable-compression")));
        assert_null(cJSON_GetObjectItem(cl, "insecure-skip-tls-verify"));
        assert_string_equal(
                cJSON_GetStringValue(cJSON_GetObjectItem(cl, "certificate-authority-data")),
                ca_b64);
        const cJSON *conf = cJSON_GetObjectItem(cl, "config");
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(conf, "audience")), "kube");
        assert_true(cJSON_IsNumber(cJSON_GetObjectItem(conf, "n")));
        assert_int_equal(cJSON_GetObjectItem(conf, "n")->valueint, 3);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(conf, "quoted")), "3");
        const cJSON *l = cJSON_GetObjectItem(cJSON_GetObjectItem(conf, "nested"), "l");
        assert_int_equal(cJSON_GetArraySize(l), 3);
        assert_true(cJSON_IsTrue(cJSON_GetArrayItem(l, 1)));
        assert_true(cJSON_IsNull(cJSON_GetArrayItem(l, 2)));
        cJSON_Delete(j);

        /* A CA file is read and sent inline; without provideClusterInfo the
         * plugin gets no cluster. */
        write_file("info-ca.pem", "%s", ca_pem);
        write_file("info-file.yaml",
                   HEAD "clusters: [{name: k, cluster: {server: 'https://h:1', "
                        "certificate-authority: info-ca.pem, insecure-skip-tls-verify: false}}]\n"
                        "users:\n"
                        "- name: u\n"
                        "  user:\n"
                        "    exec:\n"
                        "      apiVersion: client.authentication.k8s.io/v1\n"
                        "      command: ./info-plugin\n"
                        "      provideClusterInfo: %s\n"
                        "      env: [{name: INFO, value: %s}]\n",
                   "true", path_of("exec-info.json"));
        cfg = load_ok(path_of("info-file.yaml"), NULL);
        koc_cluster_config_unref(cfg);
        j = exec_info();
        cl = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "spec"), "cluster");
        assert_string_equal(
                cJSON_GetStringValue(cJSON_GetObjectItem(cl, "certificate-authority-data")),
                ca_b64);
        assert_null(cJSON_GetObjectItem(cl, "config"));
        cJSON_Delete(j);
        write_file("info-file.yaml",
                   HEAD CLUSTERS "users:\n"
                                 "- name: u\n"
                                 "  user:\n"
                                 "    exec:\n"
                                 "      apiVersion: client.authentication.k8s.io/v1\n"
                                 "      command: ./info-plugin\n"
                                 "      env: [{name: INFO, value: %s}]\n",
                   path_of("exec-info.json"));
        cfg = load_ok(path_of("info-file.yaml"), NULL);
        koc_cluster_config_unref(cfg);
        j = exec_info();
        assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "spec"), "cluster"));
        cJSON_Delete(j);

        /* An alias bomb in the extension is refused, not expanded. */
        write_file("info-bomb.yaml",
                   HEAD USERS "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                              "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                              "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                              "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                              "clusters: [{name: k, cluster: {server: 'https://h:1', extensions: "
                              "[{name: client.authentication.k8s.io/exec, extension: *d}]}}]\n");
        expect_error(path_of("info-bomb.yaml"), NULL, -EINVAL, path_of("info-bomb.yaml"),
                     "clusters[0].cluster.extensions[0].extension", "10000 nodes");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_inline_data),
                cmocka_unit_test(test_base64_with_line_breaks),
                cmocka_unit_test(test_files_and_relative_paths),
                cmocka_unit_test(test_merge_two_files),
                cmocka_unit_test(test_load_order),
                cmocka_unit_test(test_tls_server_name),
                cmocka_unit_test(test_insecure),
                cmocka_unit_test(test_http_server),
                cmocka_unit_test(test_empty_file_and_anchors),
                cmocka_unit_test(test_broken),
                cmocka_unit_test(test_unreadable),
                cmocka_unit_test(test_exec_plugin),
                cmocka_unit_test(test_exec_output_certificate_warns),
                cmocka_unit_test(test_exec_timeout_kills_the_group),
                cmocka_unit_test(test_truncated_and_garbage),
                cmocka_unit_test(test_unknown_keys_warned),
                cmocka_unit_test(test_impersonation),
                cmocka_unit_test(test_basic_auth),
                cmocka_unit_test(test_proxy_url),
                cmocka_unit_test(test_credential_warnings),
                cmocka_unit_test(test_exec_relative_command),
                cmocka_unit_test(test_exec_cluster_info),
        };
        return cmocka_run_group_tests(tests, setup_group, teardown_group);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * In-cluster configuration, koc_cluster_config_in_cluster
 * (core/cluster-config.c), on arbitrary KUBERNETES_SERVICE_HOST and _PORT
 * variables, service-account token and namespace files, and POD_NAMESPACE.
 *
 * Input: fields separated by NUL bytes, each missing one taking a sane value:
 * host, port, token file, namespace file, POD_NAMESPACE; a field that is a
 * single 0x01 byte is absent (an unset variable, a missing file).
 *
 * Checked beyond "no crash, leak, UB": a failure returns nothing and says why;
 * a success has an https:// server URL that curl reads back as exactly the
 * host (an IPv6 address in brackets) and port given, with no user, query or
 * fragment and an empty path, the host a DNS name or an IP address; the token
 * is the token file trimmed, fit for a header; the namespace is a DNS-1123
 * label.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/cluster-config.h"
#include "core/names.h"
#include "koc/config.h"

static char dir[64], token_path[96], ns_path[96];

static void remove_dir(void) {
        char ca[96];
        snprintf(ca, sizeof ca, "%s/ca.crt", dir);
        unlink(token_path);
        unlink(ns_path);
        unlink(ca);
        rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        snprintf(dir, sizeof dir, "/tmp/koc-fuzz-in-cluster-XXXXXX");
        if (!mkdtemp(dir))
                abort();
        snprintf(token_path, sizeof token_path, "%s/token", dir);
        snprintf(ns_path, sizeof ns_path, "%s/namespace", dir);
        char ca[96];
        snprintf(ca, sizeof ca, "%s/ca.crt", dir);
        FILE *f = fopen(ca, "we");
        if (!f || fclose(f) != 0)
                abort();
        atexit(remove_dir);
        return 0;
}

static void write_file(const char *path, const char *data, size_t n) {
        FILE *f = fopen(path, "we");
        if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0)
                abort();
}

static bool absent(const char *v, size_t n) {
        return n == 1 && v[0] == 1;
}

static void set_var(const char *name, const char *v, size_t n) {
        if (absent(v, n)) {
                unsetenv(name);
                return;
        }
        char *s = strndup(v, n);
        if (!s || setenv(name, s, 1) < 0)
                abort();
        free(s);
}

/* A DNS name: dot-separated labels of letters, digits, '-' and '_', none
 * empty or starting or ending with '-', an optional final dot, the last
 * label not all digits (or an IPv4 address). */
static bool is_dns_name(const char *s) {
        unsigned char a[4];
        if (inet_pton(AF_INET, s, a) == 1)
                return true;
        size_t n = strlen(s);
        if (n && s[n - 1] == '.')
                n--;
        if (!n || s[0] == '.' || s[0] == '-')
                return false;
        const char *last = s;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '.') {
                        if (s[i - 1] == '.' || s[i - 1] == '-' || s[i + 1] == '-')
                                return false;
                        last = s + i + 1;
                } else if (!isalnum((unsigned char)c) && c != '-' && c != '_') {
                        return false;
                }
        }
        if (s[n - 1] == '-')
                return false;
        return strspn(last, "0123456789.") < (size_t)(s + n - last);
}

/* The trimmed token file as the loader should return it, or NULL. */
static char *want_token(const char *v, size_t n) {
        if (memchr(v, 0, n))
                return NULL;
        while (n && isspace((unsigned char)v[n - 1]))
                n--;
        while (n && isspace((unsigned char)*v))
                v++, n--;
        return n ? strndup(v, n) : NULL;
}

static void check_server(const char *server, const char *host, const char *port) {
        char *h = NULL, *p = NULL, *path = NULL, *x = NULL;
        CURLU *u = curl_url();
        if (!u || strncmp(server, "https://", 8) != 0 ||
            curl_url_set(u, CURLUPART_URL, server, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_PORT, &p, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
                abort();
        if (curl_url_get(u, CURLUPART_USER, &x, 0) == CURLUE_OK ||
            curl_url_get(u, CURLUPART_QUERY, &x, 0) == CURLUE_OK ||
            curl_url_get(u, CURLUPART_FRAGMENT, &x, 0) == CURLUE_OK)
                abort();
        if (strcmp(path, "/") != 0 || strtol(p, NULL, 10) != strtol(port, NULL, 10))
                abort();
        unsigned char a[16], b[16];
        if (strchr(host, ':')) {
                /* curl keeps the brackets of an IPv6 host, and may write
                 * the address in its own way: the same address. */
                size_t l = strlen(h);
                if (l < 2 || h[0] != '[' || h[l - 1] != ']' || inet_pton(AF_INET6, host, a) != 1)
                        abort();
                h[l - 1] = '\0';
                if (inet_pton(AF_INET6, h + 1, b) != 1 || memcmp(a, b, 16) != 0)
                        abort();
        } else if (strcasecmp(h, host) != 0 || !is_dns_name(host)) {
                abort();
        }
        curl_free(h);
        curl_free(p);
        curl_free(path);
        curl_url_cleanup(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *f[5] = {"10.96.0.1", "443", "tok", "default", "\1"};
        size_t n[5] = {9, 3, 3, 7, 1};
        const char *p = (const char *)data, *end = p + size;
        for (int i = 0; i < 5 && p <= end; i++) {
                const char *z = memchr(p, 0, (size_t)(end - p));
                if (!z)
                        z = end;
                f[i] = p;
                n[i] = (size_t)(z - p);
                p = z + 1;
        }
        set_var("KUBERNETES_SERVICE_HOST", f[0], n[0]);
        set_var("KUBERNETES_SERVICE_PORT", f[1], n[1]);
        set_var("POD_NAMESPACE", f[4], n[4]);
        if (absent(f[2], n[2]))
                unlink(token_path);
        else
                write_file(token_path, f[2], n[2]);
        if (absent(f[3], n[3]))
                unlink(ns_path);
        else
                write_file(ns_path, f[3], n[3]);

        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        int r = koc_cluster_config_in_cluster(dir, &cfg, &err);
        if (r < 0) {
                if (cfg || err.code != r || err.message[0] == '\0')
                        abort();
                return 0;
        }
        if (!cfg)
                abort();
        check_server(koc_cluster_config_server(cfg), getenv("KUBERNETES_SERVICE_HOST"),
                     getenv("KUBERNETES_SERVICE_PORT"));
        char *tok = want_token(f[2], n[2]);
        if (!tok || !cfg->token || strcmp(tok, cfg->token) != 0 || !koc__token_is_valid(tok))
                abort();
        free(tok);
        const char *ns = koc_cluster_config_namespace(cfg);
        if (!ns || koc__dns1123_label_error(ns))
                abort();
        koc_cluster_config_unref(cfg);
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cluster configuration object: in-cluster loading, the load order, and
 * what the API client asks of it (TLS options, the Authorization header).
 *
 * tls-server-name: libcurl 7.88 has no option to verify the server
 * certificate against a name other than the URL's host.  koc gets the same
 * effect as client-go's ServerName by building request URLs with the
 * tls-server-name as host (koc_cluster_config_server() returns that URL) and
 * routing the connection to the real server address with CURLOPT_CONNECT_TO.
 * libcurl then sends tls-server-name as SNI and verifies the certificate
 * against it, while the TCP connection goes to the kubeconfig's server.  The
 * Host header carries tls-server-name too, which the API server ignores.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cluster-config.h"
#include "names.h"
#include "koc/log.h"
#include "koc/time.h"
#include "util.h"

#define DEFAULT_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

static uint64_t default_clock(void *userdata) {
        return koc_now_boottime_usec();
}

koc_cluster_config *koc__cluster_config_alloc(void) {
        koc_cluster_config *cfg = calloc(1, sizeof *cfg);
        if (!cfg)
                return NULL;
        atomic_init(&cfg->n_ref, 1);
        cfg->now = default_clock;
        return cfg;
}

static void blob_clear(koc_blob *b) {
        if (b->data)
                OPENSSL_cleanse(b->data, b->size);
        free(b->data);
        b->data = NULL;
        b->size = 0;
}

static void free_secret(char *s) {
        if (s)
                explicit_bzero(s, strlen(s));
        free(s);
}

static void cluster_config_free(koc_cluster_config *cfg) {
        free(cfg->server);
        free(cfg->source);
        free(cfg->namespace);
        curl_slist_free_all(cfg->connect_to);
        free_secret(cfg->proxy); /* may carry a proxy password */
        curl_slist_free_all(cfg->headers);
        free(cfg->username);
        free_secret(cfg->password);
        free(cfg->ca_file);
        blob_clear(&cfg->ca_data);
        free(cfg->cert_file);
        blob_clear(&cfg->cert_data);
        free(cfg->key_file);
        blob_clear(&cfg->key_data);
        free_secret(cfg->token);
        free(cfg->token_file);
        free_secret(cfg->auth_header);
        free(cfg->exec_error);
        koc__exec_config_free(cfg->exec);
        free(cfg);
}

KOC_EXPORT koc_cluster_config *koc_cluster_config_ref(koc_cluster_config *cfg) {
        if (cfg)
                atomic_fetch_add(&cfg->n_ref, 1);
        return cfg;
}

KOC_EXPORT koc_cluster_config *koc_cluster_config_unref(koc_cluster_config *cfg) {
        if (cfg && atomic_fetch_sub(&cfg->n_ref, 1) == 1)
                cluster_config_free(cfg);
        return NULL;
}

KOC_EXPORT const char *koc_cluster_config_server(const koc_cluster_config *cfg) {
        return cfg ? cfg->server : NULL;
}

KOC_EXPORT const char *koc_cluster_config_namespace(const koc_cluster_config *cfg) {
        if (!cfg)
                return NULL;
        return cfg->namespace ? cfg->namespace : "default";
}

KOC_EXPORT const char *koc_cluster_config_source(const koc_cluster_config *cfg) {
        return cfg ? cfg->source : NULL;
}

void koc__cluster_config_set_clock(koc_cluster_config *cfg, uint64_t (*now)(void *),
                                  void *userdata) {
        if (!cfg)
                return;
        cfg->now = now ? now : default_clock;
        cfg->now_userdata = now ? userdata : NULL;
        /* The last read happened "now" on the new clock. */
        cfg->token_read_usec = cfg->now(cfg->now_userdata);
}

/* ---- files -------------------------------------------------------------- */

int koc__read_file_bounded(const char *path, size_t max, char **ret, size_t *ret_size) {
        /* O_NONBLOCK: opening a FIFO (a token file or kubeconfig path naming
         * one) would otherwise block until a writer appears, on the event
         * loop for token reloads; it is refused below as not a regular file.
         * Reads of regular files ignore the flag. */
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        if (S_ISDIR(st.st_mode)) {
                close(fd);
                return -EISDIR;
        }
        if (!S_ISREG(st.st_mode)) {
                close(fd);
                return -EBADFD;
        }
        if ((uint64_t)st.st_size > max) {
                close(fd);
                return -EFBIG;
        }
        size_t cap = (size_t)st.st_size + 1, len = 0;
        char *buf = malloc(cap);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        for (;;) {
                if (len + 1 >= cap) {
                        /* The file grew since fstat(). */
                        if (cap > max) {
                                free(buf);
                                close(fd);
                                return -EFBIG;
                        }
                        size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
                        char *n = realloc(buf, ncap);
                        if (!n) {
                                free(buf);
                                close(fd);
                                return -ENOMEM;
                        }
                        buf = n;
                        cap = ncap;
                        if (len + 1 >= cap) {
                                free(buf);
                                close(fd);
                                return -EFBIG;
                        }
                }
                ssize_t k = read(fd, buf + len, cap - 1 - len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = -errno;
                        free(buf);
                        close(fd);
                        return r;
                }
                if (k == 0)
                        break;
                len += (size_t)k;
        }
        close(fd);
        buf[len] = '\0';
        *ret = buf;
        if (ret_size)
                *ret_size = len;
        return 0;
}

bool koc__token_is_valid(const char *token) {
        if (!token || !*token)
                return false;
        for (const unsigned char *p = (const unsigned char *)token; *p; p++)
                if (*p < 0x21 || *p == 0x7f)
                        return false;
        return true;
}

/* Cuts trailing white space off buf (NUL-terminated, *len bytes) and returns
 * the offset of its first non-space byte (*len when it is all space). */
static size_t trim_space(char *buf, size_t *len) {
        size_t start = 0;
        while (*len > 0 && isspace((unsigned char)buf[*len - 1]))
                buf[--*len] = '\0';
        while (start < *len && isspace((unsigned char)buf[start]))
                start++;
        return start;
}

int koc__read_token_file(const char *path, char **ret, const char **ret_why) {
        char *buf = NULL;
        size_t len = 0;
        int r = koc__read_file_bounded(path, KOC_TOKEN_MAX, &buf, &len);
        if (r < 0) {
                *ret_why = r == -EFBIG ? "file too large for a token" : strerror(-r);
                return r;
        }
        if (strlen(buf) != len) {
                free_secret(buf);
                *ret_why = "token contains a NUL byte";
                return -EBADMSG;
        }
        size_t start = trim_space(buf, &len);
        if (start == len) {
                free_secret(buf);
                *ret_why = "token file is empty";
                return -ENODATA;
        }
        if (!koc__token_is_valid(buf + start)) {
                free_secret(buf);
                *ret_why = "token contains whitespace or control characters";
                return -EBADMSG;
        }
        char *tok = strdup(buf + start);
        free_secret(buf);
        if (!tok) {
                *ret_why = strerror(ENOMEM);
                return -ENOMEM;
        }
        *ret = tok;
        return 0;
}

/* ---- server URL --------------------------------------------------------- */

static bool is_hostname(const char *s) {
        if (!s || !*s || strlen(s) > 253)
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_' && *p != ':')
                        return false;
        return true;
}

/* The server URL for a message, with any user information (which may hold a
 * password) replaced by "***". */
static const char *url_for_message(const char *url, char *buf, size_t size) {
        const char *auth = strstr(url, "://");
        auth = auth ? auth + 3 : url;
        size_t alen = strcspn(auth, "/?#");
        const char *at = NULL;
        for (const char *p = auth; p < auth + alen; p++)
                if (*p == '@')
                        at = p;
        if (!at)
                return url;
        snprintf(buf, size, "%.*s***%s", (int)(auth - url), url, at);
        return buf;
}

int koc__cluster_config_set_server(koc_cluster_config *cfg, const char *server,
                                  const char *tls_server_name, const char *where, koc_error *err) {
        _koc_cleanup_free_ char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
        _koc_cleanup_free_ char *query = NULL, *user = NULL;
        char shown[512];
        const char *server_shown = url_for_message(server, shown, sizeof shown);
        CURLU *u = curl_url();
        if (!u)
                return koc_error_set(err, -ENOMEM, "%s: out of memory", where);
        if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0) {
                curl_url_cleanup(u);
                return koc_error_set(err, -EINVAL, "%s: \"%s\" is not an https:// (or http://) URL",
                                     where, server_shown);
        }
        CURLUcode uc = curl_url_set(u, CURLUPART_URL, server, 0);
        if (uc == CURLUE_OK)
                uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
        if (uc == CURLUE_OK)
                uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
        if (uc == CURLUE_OK)
                uc = curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
        if (uc == CURLUE_OK)
                uc = curl_url_get(u, CURLUPART_PATH, &path, 0);
        if (uc != CURLUE_OK) {
                curl_url_cleanup(u);
                return koc_error_set(err, -EINVAL, "%s: \"%s\" is not a valid URL: %s", where,
                                     server_shown, curl_url_strerror(uc));
        }
        (void)curl_url_get(u, CURLUPART_QUERY, &query, 0);
        (void)curl_url_get(u, CURLUPART_USER, &user, 0);
        curl_url_cleanup(u);
        if (query || user)
                return koc_error_set(err, -EINVAL,
                                     "%s: \"%s\": a server URL must not carry a query or user "
                                     "information",
                                     where, server_shown);

        cfg->tls = strcmp(scheme, "https") == 0;
        size_t plen = strlen(path);
        while (plen > 0 && path[plen - 1] == '/')
                path[--plen] = '\0';

        const char *url_host = host;
        _koc_cleanup_free_ char *bracketed = NULL;
        if (tls_server_name && *tls_server_name && strcmp(tls_server_name, host) != 0) {
                if (!cfg->tls)
                        return koc_error_set(err, -EINVAL,
                                             "%s: tls-server-name is set but the server \"%s\" "
                                             "is not https://",
                                             where, server);
                if (!is_hostname(tls_server_name))
                        return koc_error_set(err, -EINVAL,
                                             "%s: tls-server-name \"%s\" is not a host name", where,
                                             tls_server_name);
                if (strchr(tls_server_name, ':')) {
                        if (asprintf(&bracketed, "[%s]", tls_server_name) < 0)
                                return koc_error_set(err, -ENOMEM, "out of memory");
                        url_host = bracketed;
                } else {
                        url_host = tls_server_name;
                }
                _koc_cleanup_free_ char *rule = NULL;
                if (asprintf(&rule, "%s:%s:%s:%s", url_host, port, host, port) < 0)
                        return koc_error_set(err, -ENOMEM, "out of memory");
                struct curl_slist *l = curl_slist_append(cfg->connect_to, rule);
                if (!l)
                        return koc_error_set(err, -ENOMEM, "out of memory");
                cfg->connect_to = l;
        }
        char *url = NULL;
        if (asprintf(&url, "%s://%s:%s%s", scheme, url_host, port, path) < 0)
                return koc_error_set(err, -ENOMEM, "out of memory");
        free(cfg->server);
        cfg->server = url;
        return 0;
}

/* ---- in-cluster --------------------------------------------------------- */

static int read_namespace_file(const char *path, char **ret) {
        char *buf = NULL;
        size_t len = 0;
        int r = koc__read_file_bounded(path, 4096, &buf, &len);
        if (r < 0)
                return r;
        if (strlen(buf) != len) {
                free(buf);
                return -EBADMSG; /* a NUL byte */
        }
        size_t start = trim_space(buf, &len);
        if (start == len) {
                free(buf);
                return -ENODATA;
        }
        char *ns = strdup(buf + start);
        free(buf);
        if (!ns)
                return -ENOMEM;
        *ret = ns;
        return 0;
}

/* value, quoted for a message: printable ASCII as is (quotes and
 * backslashes escaped), the rest as \xNN, cut at 64 bytes. */
static const char *quoted(const char *value, char *buf, size_t size) {
        size_t k = 0;
        const unsigned char *p = (const unsigned char *)value;
        if (size < 16)
                return "";
        buf[k++] = '"';
        for (size_t i = 0; p[i] && k + 8 < size; i++) {
                if (i == 64) {
                        memcpy(buf + k, "...", 3);
                        k += 3;
                        break;
                }
                if (p[i] == '"' || p[i] == '\\')
                        k += (size_t)snprintf(buf + k, size - k, "\\%c", p[i]);
                else if (p[i] < 0x20 || p[i] >= 0x7f)
                        k += (size_t)snprintf(buf + k, size - k, "\\x%02x", p[i]);
                else
                        buf[k++] = (char)p[i];
        }
        buf[k++] = '"';
        buf[k] = '\0';
        return buf;
}

/* "0x" or "0X" and hex digits: a number to curl's IPv4 parser. */
static bool is_hex_number(const char *s, size_t n) {
        if (n < 2 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
                return false;
        for (size_t i = 2; i < n; i++)
                if (!isxdigit((unsigned char)s[i]))
                        return false;
        return true;
}

/* KUBERNETES_SERVICE_HOST: an IP address, or a DNS name (labels of letters,
 * digits, '-' and '_', not starting or ending with '-', an optional final
 * dot), whose last label is not a number, all digits or 0x and hex digits
 * (curl would read "1.2.3", "010.1" or "10.96.0x1" as some other IPv4
 * address). */
static bool is_service_host(const char *s) {
        unsigned char addr[16];
        if (inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1)
                return true;
        size_t n = strlen(s);
        if (n > 0 && s[n - 1] == '.')
                n--;
        if (n == 0 || n > 253)
                return false;
        size_t label = 0;
        bool all_digits = true;
        for (size_t i = 0; i <= n; i++) {
                char c = i < n ? s[i] : '.';
                if (c == '.') {
                        if (label == 0 || label > 63 || s[i - 1] == '-')
                                return false;
                        if (i == n && (all_digits || is_hex_number(s + i - label, label)))
                                return false;
                        label = 0;
                        all_digits = true;
                        continue;
                }
                if (!isalnum((unsigned char)c) && c != '-' && c != '_')
                        return false;
                if (c == '-' && label == 0)
                        return false;
                if (!isdigit((unsigned char)c))
                        all_digits = false;
                label++;
        }
        return true;
}

static bool is_port(const char *s) {
        if (!s || !*s || strlen(s) > 5)
                return false;
        for (const char *p = s; *p; p++)
                if (!isdigit((unsigned char)*p))
                        return false;
        long v = strtol(s, NULL, 10);
        return v > 0 && v <= 65535;
}

KOC_EXPORT int koc_cluster_config_in_cluster(const char *sa_dir, koc_cluster_config **ret,
                                             koc_error *err) {
        if (!ret)
                return koc_error_set(err, -EINVAL, "in-cluster: invalid arguments");
        if (!sa_dir)
                sa_dir = DEFAULT_SA_DIR;
        const char *host = getenv("KUBERNETES_SERVICE_HOST");
        const char *port = getenv("KUBERNETES_SERVICE_PORT");
        if (!host || !*host)
                return koc_error_set(err, -ENOENT,
                                     "in-cluster: KUBERNETES_SERVICE_HOST is not set (not "
                                     "running in a pod?)");
        if (!port || !*port)
                return koc_error_set(err, -ENOENT,
                                     "in-cluster: KUBERNETES_SERVICE_PORT is not set");
        if (!is_port(port))
                return koc_error_set(err, -EINVAL,
                                     "in-cluster: KUBERNETES_SERVICE_PORT: \"%s\" is not a port "
                                     "number",
                                     port);
        char q[300];
        if (!is_service_host(host))
                return koc_error_set(err, -EINVAL,
                                     "in-cluster: KUBERNETES_SERVICE_HOST: %s is not a host "
                                     "name or address",
                                     quoted(host, q, sizeof q));

        _koc_cleanup_(koc_cluster_config_unrefp) koc_cluster_config *cfg =
                koc__cluster_config_alloc();
        if (!cfg)
                return koc_error_set(err, -ENOMEM, "out of memory");

        _koc_cleanup_free_ char *url = NULL;
        /* An IPv6 address must be bracketed in a URL. */
        if (asprintf(&url, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port) < 0)
                return koc_error_set(err, -ENOMEM, "out of memory");
        int r = koc__cluster_config_set_server(cfg, url, NULL, "in-cluster: KUBERNETES_SERVICE_HOST",
                                              err);
        if (r < 0)
                return r;

        if (asprintf(&cfg->token_file, "%s/token", sa_dir) < 0) {
                cfg->token_file = NULL;
                return koc_error_set(err, -ENOMEM, "out of memory");
        }
        const char *why = NULL;
        r = koc__read_token_file(cfg->token_file, &cfg->token, &why);
        if (r < 0)
                return koc_error_set(err, r, "in-cluster: %s: %s", cfg->token_file, why);
        cfg->token_kind = KOC_TOKEN_FILE;
        cfg->token_read_usec = cfg->now(cfg->now_userdata);

        _koc_cleanup_free_ char *ca = NULL;
        if (asprintf(&ca, "%s/ca.crt", sa_dir) < 0)
                return koc_error_set(err, -ENOMEM, "out of memory");
        if (access(ca, R_OK) < 0)
                /* client-go goes on with the system trust store here; so
                 * does koc, still verifying the server. */
                koc_log_warn("config",
                             "in-cluster: %s: %s; verifying the API server against the "
                             "system trust store",
                             ca, strerror(errno));
        else {
                cfg->ca_file = ca;
                ca = NULL;
        }

        const char *pod_ns = getenv("POD_NAMESPACE");
        if (pod_ns && *pod_ns) {
                if (koc__dns1123_label_error(pod_ns))
                        return koc_error_set(err, -EINVAL,
                                             "in-cluster: POD_NAMESPACE: %s is not a namespace: %s",
                                             quoted(pod_ns, q, sizeof q),
                                             koc__dns1123_label_error(pod_ns));
                cfg->namespace = strdup(pod_ns);
                if (!cfg->namespace)
                        return koc_error_set(err, -ENOMEM, "out of memory");
        } else {
                _koc_cleanup_free_ char *nsfile = NULL;
                if (asprintf(&nsfile, "%s/namespace", sa_dir) < 0)
                        return koc_error_set(err, -ENOMEM, "out of memory");
                r = read_namespace_file(nsfile, &cfg->namespace);
                if (r == -ENOMEM)
                        return koc_error_set(err, r, "out of memory");
                if (r == -EBADMSG)
                        return koc_error_set(err, r, "in-cluster: %s: contains a NUL byte",
                                             nsfile);
                if (r < 0 && r != -ENOENT)
                        koc_log_warn("config", "in-cluster: %s: %s; using namespace \"default\"",
                                     nsfile, r == -ENODATA ? "empty" : strerror(-r));
                /* It becomes part of request paths: refused rather than
                 * replaced, so that nothing acts in a namespace by mistake. */
                if (r >= 0 && koc__dns1123_label_error(cfg->namespace))
                        return koc_error_set(err, -EINVAL, "in-cluster: %s: %s is not a namespace: %s",
                                             nsfile, quoted(cfg->namespace, q, sizeof q),
                                             koc__dns1123_label_error(cfg->namespace));
        }
        cfg->source = strdup("in-cluster");
        if (!cfg->source)
                return koc_error_set(err, -ENOMEM, "out of memory");

        *ret = cfg;
        cfg = NULL;
        return 0;
}

/* ---- load order --------------------------------------------------------- */

KOC_EXPORT int koc_cluster_config_load(const char *kubeconfig_path, const char *context,
                                       koc_cluster_config **ret, koc_error *err) {
        if (!ret)
                return koc_error_set(err, -EINVAL, "invalid arguments");
        if (kubeconfig_path && *kubeconfig_path)
                return koc_cluster_config_from_kubeconfig(kubeconfig_path, context, ret, err);

        const char *env = getenv("KUBECONFIG");
        if (env && *env)
                return koc_cluster_config_from_kubeconfig(env, context, ret, err);

        koc_error in_cluster_err = {0};
        const char *host = getenv("KUBERNETES_SERVICE_HOST");
        if (host && *host) {
                int r = koc_cluster_config_in_cluster(NULL, ret, &in_cluster_err);
                if (r >= 0)
                        return r;
        }

        const char *home = getenv("HOME");
        if (home && *home) {
                _koc_cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/.kube/config", home) < 0)
                        return koc_error_set(err, -ENOMEM, "out of memory");
                if (access(path, F_OK) == 0)
                        return koc_cluster_config_from_kubeconfig(path, context, ret, err);
        }
        if (in_cluster_err.code < 0) {
                if (err)
                        *err = in_cluster_err;
                return in_cluster_err.code;
        }
        return koc_error_set(err, -ENOENT,
                             "no cluster configuration: no kubeconfig given, KUBECONFIG is not "
                             "set, not in a cluster (KUBERNETES_SERVICE_HOST is not set), and "
                             "%s/.kube/config does not exist",
                             home && *home ? home : "$HOME");
}

/* ---- what the client asks for ------------------------------------------- */

int koc__cluster_config_apply_tls(koc_cluster_config *cfg, CURL *easy) {
        if (!cfg || !easy)
                return -EINVAL;

        CURLcode c = CURLE_OK;
#define SET(opt, val)                                                                              \
        do {                                                                                       \
                if (c == CURLE_OK)                                                                 \
                        c = curl_easy_setopt(easy, opt, val);                                      \
        } while (0)

        if (cfg->proxy) {
                SET(CURLOPT_PROXY, cfg->proxy);
                /* client-go's http.ProxyURL sends every request through the
                 * proxy-url, whatever NO_PROXY says; "" tells libcurl so. */
                SET(CURLOPT_NOPROXY, "");
                if (cfg->proxy_tls) {
                        /* Go's transport speaks TLS to an https proxy with the
                         * cluster's TLS settings: the same CA (else the system
                         * store) and the same insecure-skip-tls-verify. */
                        SET(CURLOPT_PROXY_SSL_VERIFYPEER, cfg->insecure ? 0L : 1L);
                        SET(CURLOPT_PROXY_SSL_VERIFYHOST, cfg->insecure ? 0L : 2L);
                        if (cfg->ca_data.data) {
                                struct curl_blob b = {.data = cfg->ca_data.data,
                                                      .len = cfg->ca_data.size,
                                                      .flags = CURL_BLOB_COPY};
                                SET(CURLOPT_PROXY_CAINFO, (char *)NULL);
                                SET(CURLOPT_PROXY_CAPATH, (char *)NULL);
                                SET(CURLOPT_PROXY_CAINFO_BLOB, &b);
                        } else if (cfg->ca_file) {
                                SET(CURLOPT_PROXY_CAPATH, (char *)NULL);
                                SET(CURLOPT_PROXY_CAINFO, cfg->ca_file);
                        }
                }
        }
        if (cfg->username) {
                /* Sent with the first request, as client-go does, not after
                 * a 401 challenge (the API server sends none). */
                SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
                SET(CURLOPT_USERNAME, cfg->username);
                SET(CURLOPT_PASSWORD, cfg->password);
        }
        if (!cfg->tls)
                goto done;

        if (cfg->insecure) {
                SET(CURLOPT_SSL_VERIFYPEER, 0L);
                SET(CURLOPT_SSL_VERIFYHOST, 0L);
        } else {
                SET(CURLOPT_SSL_VERIFYPEER, 1L);
                SET(CURLOPT_SSL_VERIFYHOST, 2L);
        }
        if (cfg->ca_data.data) {
                struct curl_blob b = {.data = cfg->ca_data.data,
                                      .len = cfg->ca_data.size,
                                      .flags = CURL_BLOB_COPY};
                /* Trust only the cluster's CA, as client-go does. */
                SET(CURLOPT_CAINFO, (char *)NULL);
                SET(CURLOPT_CAPATH, (char *)NULL);
                SET(CURLOPT_CAINFO_BLOB, &b);
        } else if (cfg->ca_file) {
                SET(CURLOPT_CAPATH, (char *)NULL);
                SET(CURLOPT_CAINFO, cfg->ca_file);
        }
        if (cfg->cert_data.data) {
                struct curl_blob b = {.data = cfg->cert_data.data,
                                      .len = cfg->cert_data.size,
                                      .flags = CURL_BLOB_COPY};
                SET(CURLOPT_SSLCERT_BLOB, &b);
                SET(CURLOPT_SSLCERTTYPE, "PEM");
        } else if (cfg->cert_file) {
                SET(CURLOPT_SSLCERT, cfg->cert_file);
                SET(CURLOPT_SSLCERTTYPE, "PEM");
        }
        if (cfg->key_data.data) {
                struct curl_blob b = {.data = cfg->key_data.data,
                                      .len = cfg->key_data.size,
                                      .flags = CURL_BLOB_COPY};
                SET(CURLOPT_SSLKEY_BLOB, &b);
                SET(CURLOPT_SSLKEYTYPE, "PEM");
        } else if (cfg->key_file) {
                SET(CURLOPT_SSLKEY, cfg->key_file);
                SET(CURLOPT_SSLKEYTYPE, "PEM");
        }
        if (cfg->connect_to)
                SET(CURLOPT_CONNECT_TO, cfg->connect_to);
done:
#undef SET
        if (c != CURLE_OK) {
                koc_log_error("config", "setting connection options for %s failed: %s", cfg->server,
                              curl_easy_strerror(c));
                return c == CURLE_OUT_OF_MEMORY ? -ENOMEM : -ENOTSUP;
        }
        return 0;
}

static void refresh_file_token(koc_cluster_config *cfg, uint64_t now) {
        char *tok = NULL;
        const char *why = NULL;
        cfg->token_read_usec = now;
        cfg->token_invalidated = false;
        int r = koc__read_token_file(cfg->token_file, &tok, &why);
        if (r < 0) {
                koc_log_warn("config", "re-reading token %s failed: %s; keeping the previous token",
                             cfg->token_file, why);
                return;
        }
        if (cfg->token && strcmp(cfg->token, tok) == 0) {
                free_secret(tok);
                return;
        }
        koc_log_debug("config", "token %s changed", cfg->token_file);
        free_secret(cfg->token);
        cfg->token = tok;
}

bool koc__cluster_config_exec_due(koc_cluster_config *cfg) {
        if (!cfg || cfg->token_kind != KOC_TOKEN_EXEC)
                return false;
        uint64_t now = cfg->now(cfg->now_userdata);
        bool expired =
                cfg->token_expiry_usec != 0 && koc_now_realtime_usec() >= cfg->token_expiry_usec;
        /* A plugin that fails or hands out an already expired credential is
         * not re-run more often than every 5 s, unless a 401 says the
         * credential was rejected. */
        bool may_retry =
                now < cfg->token_read_usec || now - cfg->token_read_usec >= KOC_EXEC_RETRY_USEC;
        return cfg->token_invalidated || ((!cfg->token || expired) && may_retry);
}

void koc__cluster_config_exec_result(koc_cluster_config *cfg, int r, char *token, uint64_t expiry,
                                     const koc_error *err) {
        cfg->token_read_usec = cfg->now(cfg->now_userdata);
        cfg->token_invalidated = false;
        free(cfg->exec_error);
        cfg->exec_error = NULL;
        cfg->exec_errno = 0;
        if (r < 0) {
                koc_log_warn("config", "%s; keeping the previous credential", err->message);
                cfg->exec_errno = r;
                cfg->exec_error = strdup(err->message);
                return;
        }
        free_secret(cfg->token);
        cfg->token = token;
        cfg->token_expiry_usec = expiry;
}

int koc__cluster_config_exec_failure(koc_cluster_config *cfg, const char **ret_message) {
        if (!cfg || cfg->token_kind != KOC_TOKEN_EXEC || cfg->exec_errno == 0)
                return 0;
        bool expired =
                cfg->token_expiry_usec != 0 && koc_now_realtime_usec() >= cfg->token_expiry_usec;
        if (cfg->token && !expired)
                return 0;
        *ret_message = cfg->exec_error ? cfg->exec_error : strerror(-cfg->exec_errno);
        return cfg->exec_errno;
}

static void refresh_exec_token(koc_cluster_config *cfg) {
        char *tok = NULL;
        uint64_t expiry = 0;
        koc_error e = {0};
        int r = koc__exec_credential_run(cfg->exec, &tok, &expiry, &e);
        koc__cluster_config_exec_result(cfg, r, tok, expiry, &e);
}

const char *koc__cluster_config_auth_header(koc_cluster_config *cfg) {
        if (!cfg)
                return NULL;
        uint64_t now = cfg->now(cfg->now_userdata);
        switch (cfg->token_kind) {
        case KOC_TOKEN_NONE:
                return NULL;
        case KOC_TOKEN_STATIC:
                break;
        case KOC_TOKEN_FILE:
                if (cfg->token_invalidated || now < cfg->token_read_usec ||
                    now - cfg->token_read_usec >= KOC_TOKEN_REFRESH_USEC)
                        refresh_file_token(cfg, now);
                break;
        case KOC_TOKEN_EXEC:
                if (koc__cluster_config_exec_due(cfg))
                        refresh_exec_token(cfg);
                break;
        }
        return koc__cluster_config_current_auth_header(cfg);
}

const char *koc__cluster_config_current_auth_header(koc_cluster_config *cfg) {
        if (!cfg || cfg->token_kind == KOC_TOKEN_NONE || !cfg->token)
                return NULL;
        free_secret(cfg->auth_header);
        cfg->auth_header = NULL;
        if (asprintf(&cfg->auth_header, "Authorization: Bearer %s", cfg->token) < 0) {
                cfg->auth_header = NULL;
                return NULL;
        }
        return cfg->auth_header;
}

void koc__cluster_config_token_invalidate(koc_cluster_config *cfg) {
        if (cfg && (cfg->token_kind == KOC_TOKEN_FILE || cfg->token_kind == KOC_TOKEN_EXEC))
                cfg->token_invalidated = true;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc-apiserver: a single-process, in-memory Kubernetes API server for
 * development, tests, demos and benchmarks.  See README.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apiserver.h"

/* Connection limit of the HTTPS server: watches hold one connection each. */
#define MAX_CONNECTIONS 16384u
#include "koc/time.h"

typedef struct options {
        const char *listen;
        const char *kubeconfig_out;
        const char *ca_out;
        const char *token;
        size_t history;
        size_t gc_examine_per_tick;
        uint64_t bookmark_interval_usec;
        bool watch_list_disabled;
        const char *log_writes;
        cJSON *faults;
} options;

static void help(void) {
        printf("Usage: koc-apiserver [OPTIONS]\n\n"
               "A local, in-memory Kubernetes API server (HTTPS, bearer token).\n\n"
               "  --listen ADDR:PORT        address to serve on (default 127.0.0.1:0, port 0 picks "
               "one;\n"
               "                            IPv6 as [::1]:PORT)\n"
               "  --kubeconfig-out FILE     write a kubeconfig for this server once it serves\n"
               "  --ca-out FILE             write the CA certificate (PEM)\n"
               "  --token TOKEN             bearer token to accept (default: random)\n"
               "  --fault JSON              add a fault rule at start (repeatable; see README.md)\n"
               "  --history N               watch history window in events (default 10000)\n"
               "  --gc-examine-per-tick N   objects the garbage collector examines per 100 ms\n"
               "                            tick (default 2000)\n"
               "  --bookmark-interval DUR   BOOKMARK period for allowWatchBookmarks watches\n"
               "                            (Go duration, default 1s; 0 disables)\n"
               "  --feature-gates GATES     WatchList=true|false (streaming lists; default true,\n"
               "                            as kube-apiserver v1.36)\n"
               "  --log-writes FILE         append one JSON line per write request answered\n"
               "                            (time, verb, path, code, user agent; Lease holder)\n"
               "  --user TOKEN=NAME[:GROUPS] a user for TokenReviews (repeatable; groups\n"
               "                            comma-separated)\n"
               "  --allow NAME:VERB:PATH    a SubjectAccessReview grant on a non-resource URL\n"
               "                            (repeatable; PATH may end in *)\n"
               "  --log-level LEVEL         error, warn, info, debug\n"
               "  -h, --help                show this help\n");
}

static int parse_args(int argc, char **argv, options *o) {
        enum {
                OPT_LISTEN = 256,
                OPT_KUBECONFIG,
                OPT_CA,
                OPT_TOKEN,
                OPT_FAULT,
                OPT_HISTORY,
                OPT_GC_EXAMINE,
                OPT_BOOKMARK,
                OPT_FEATURES,
                OPT_LOG,
                OPT_LOG_WRITES,
                OPT_USER,
                OPT_ALLOW,
        };
        static const struct option longopts[] = {
                {"listen", required_argument, NULL, OPT_LISTEN},
                {"kubeconfig-out", required_argument, NULL, OPT_KUBECONFIG},
                {"ca-out", required_argument, NULL, OPT_CA},
                {"token", required_argument, NULL, OPT_TOKEN},
                {"fault", required_argument, NULL, OPT_FAULT},
                {"history", required_argument, NULL, OPT_HISTORY},
                {"gc-examine-per-tick", required_argument, NULL, OPT_GC_EXAMINE},
                {"bookmark-interval", required_argument, NULL, OPT_BOOKMARK},
                {"feature-gates", required_argument, NULL, OPT_FEATURES},
                {"log-level", required_argument, NULL, OPT_LOG},
                {"log-writes", required_argument, NULL, OPT_LOG_WRITES},
                {"user", required_argument, NULL, OPT_USER},
                {"allow", required_argument, NULL, OPT_ALLOW},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (c) {
                case OPT_LISTEN:
                        o->listen = optarg;
                        break;
                case OPT_KUBECONFIG:
                        o->kubeconfig_out = optarg;
                        break;
                case OPT_CA:
                        o->ca_out = optarg;
                        break;
                case OPT_TOKEN:
                        if (!*optarg || strpbrk(optarg, " \t\r\n")) {
                                fprintf(stderr, "koc-apiserver: --token must be non-empty, without "
                                                "spaces\n");
                                return -EINVAL;
                        }
                        o->token = optarg;
                        break;
                case OPT_FAULT: {
                        cJSON *rule = cJSON_Parse(optarg);
                        if (!rule) {
                                fprintf(stderr, "koc-apiserver: --fault: not valid JSON: %s\n",
                                        optarg);
                                return -EINVAL;
                        }
                        if (!o->faults)
                                o->faults = cJSON_CreateArray();
                        cJSON_AddItemToArray(o->faults, rule);
                        break;
                }
                case OPT_HISTORY: {
                        char *end;
                        unsigned long n = strtoul(optarg, &end, 10);
                        if (*end || n < 1 || n > 10000000) {
                                fprintf(stderr, "koc-apiserver: --history: expected 1..10000000\n");
                                return -EINVAL;
                        }
                        o->history = n;
                        break;
                }
                case OPT_GC_EXAMINE: {
                        char *end;
                        unsigned long n = strtoul(optarg, &end, 10);
                        if (!*optarg || *end || n < 1 || n > 1000000) {
                                fprintf(stderr, "koc-apiserver: --gc-examine-per-tick: expected "
                                                "1..1000000\n");
                                return -EINVAL;
                        }
                        o->gc_examine_per_tick = n;
                        break;
                }
                case OPT_BOOKMARK:
                        if (koc_parse_duration(optarg, &o->bookmark_interval_usec) < 0) {
                                fprintf(stderr,
                                        "koc-apiserver: --bookmark-interval: not a duration: %s\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                case OPT_FEATURES:
                        /* Only the gate koc-apiserver implements, as kube-apiserver spells it. */
                        if (strcmp(optarg, "WatchList=false") == 0)
                                o->watch_list_disabled = true;
                        else if (strcmp(optarg, "WatchList=true") == 0)
                                o->watch_list_disabled = false;
                        else {
                                fprintf(stderr,
                                        "koc-apiserver: --feature-gates: %s: only WatchList=true "
                                        "or WatchList=false is known\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                case OPT_LOG_WRITES:
                        o->log_writes = optarg;
                        break;
                case OPT_USER:
                        if (reviews_add_user(optarg) < 0) {
                                fprintf(stderr, "koc-apiserver: --user: expected "
                                                "TOKEN=NAME[:GROUP,...]\n");
                                return -EINVAL;
                        }
                        break;
                case OPT_ALLOW:
                        if (reviews_add_allow(optarg) < 0) {
                                fprintf(stderr, "koc-apiserver: --allow: expected NAME:VERB:PATH\n");
                                return -EINVAL;
                        }
                        break;
                case OPT_LOG: {
                        int l = koc_log_level_from_string(optarg);
                        if (l < 0) {
                                fprintf(stderr, "koc-apiserver: --log-level: unknown level %s\n",
                                        optarg);
                                return -EINVAL;
                        }
                        koc_log_set_level(l);
                        break;
                }
                case 'h':
                        help();
                        exit(EXIT_SUCCESS);
                default:
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "koc-apiserver: unexpected argument %s\n", argv[optind]);
                return -EINVAL;
        }
        return 0;
}

static int open_listener(const char *spec, bool *ret_v6, char *ret_host, size_t host_size,
                         unsigned *ret_port) {
        char host[128];
        const char *colon;
        struct sockaddr_storage ss = {0};
        socklen_t sl;
        bool v6 = false;

        if (spec[0] == '[') {
                const char *close = strchr(spec, ']');
                if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof host)
                        return -EINVAL;
                memcpy(host, spec + 1, (size_t)(close - spec - 1));
                host[close - spec - 1] = 0;
                colon = close + 1;
                v6 = true;
        } else {
                colon = strrchr(spec, ':');
                if (!colon || (size_t)(colon - spec) >= sizeof host)
                        return -EINVAL;
                memcpy(host, spec, (size_t)(colon - spec));
                host[colon - spec] = 0;
                if (!*host || strcmp(host, "localhost") == 0)
                        strcpy(host, "127.0.0.1");
        }
        char *end;
        unsigned long port = strtoul(colon + 1, &end, 10);
        if (!colon[1] || *end || port > 65535)
                return -EINVAL;
        if (v6) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
                a->sin6_family = AF_INET6;
                a->sin6_port = htons((uint16_t)port);
                if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
                        return -EINVAL;
                sl = sizeof *a;
        } else {
                struct sockaddr_in *a = (struct sockaddr_in *)&ss;
                a->sin_family = AF_INET;
                a->sin_port = htons((uint16_t)port);
                if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
                        return -EINVAL;
                sl = sizeof *a;
        }
        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (v6)
                (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 4096) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        sl = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        *ret_port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                             : ((struct sockaddr_in *)&ss)->sin_port);
        *ret_v6 = v6;
        snprintf(ret_host, host_size, "%s", host);
        return fd;
}

/* Writes data to path through a temporary file and rename(2), so that
 * readers never see a partial file. */
static int write_atomic(const char *path, const char *data, mode_t mode) {
        char tmp[PATH_MAX];
        if (snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", path) >= (int)sizeof tmp)
                return -ENAMETOOLONG;
        int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        size_t len = strlen(data), off = 0;
        int r = 0;
        if (fchmod(fd, mode) < 0)
                r = -errno;
        while (r == 0 && off < len) {
                ssize_t n = write(fd, data + off, len - off);
                if (n < 0 && errno != EINTR)
                        r = -errno;
                else if (n > 0)
                        off += (size_t)n;
        }
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                unlink(tmp);
        return r;
}

static int write_kubeconfig(const char *path, const char *url, const char *ca_pem,
                            const char *token) {
        char *ca64 = base64_encode(ca_pem, strlen(ca_pem));
        strbuf b = {0};
        int r;

        if (!ca64)
                return -ENOMEM;
        strbuf_printf(&b,
                      "apiVersion: v1\n"
                      "kind: Config\n"
                      "clusters:\n"
                      "- name: koc-apiserver\n"
                      "  cluster:\n"
                      "    server: %s\n"
                      "    certificate-authority-data: %s\n"
                      "users:\n"
                      "- name: koc-apiserver\n"
                      "  user:\n"
                      "    token: %s\n"
                      "contexts:\n"
                      "- name: koc-apiserver\n"
                      "  context:\n"
                      "    cluster: koc-apiserver\n"
                      "    user: koc-apiserver\n"
                      "    namespace: default\n"
                      "current-context: koc-apiserver\n"
                      "preferences: {}\n",
                      url, ca64, token);
        free(ca64);
        r = b.data ? write_atomic(path, b.data, 0600) : -ENOMEM;
        strbuf_free(&b);
        return r;
}

static int on_exit_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        server *srv = userdata;
        if (srv->stopping)
                return sd_event_exit(srv->event, 0);
        koc_log_info(COMPONENT, "shutting down signal=%s", strsignal((int)si->ssi_signo));
        srv->stopping = true;
        watch_stop_all(srv);
        http_release_all(srv);
        /* A short grace period so that watch streams end cleanly. */
        return sd_event_add_time_relative(srv->event, NULL, CLOCK_BOOTTIME, 200 * 1000, 1000,
                                          on_exit_timer, NULL);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
        char buf[512];
        vsnprintf(buf, sizeof buf, fmt, ap);
        size_t n = strlen(buf);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                buf[--n] = 0;
        koc_log_debug(COMPONENT, "microhttpd: %s", buf);
}

static void raise_fd_limit(void) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
}

int main(int argc, char **argv) {
        options o = {.listen = "127.0.0.1:0",
                     .history = 10000,
                     .bookmark_interval_usec = 1 * KOC_USEC_PER_SEC};
        server srv = {0};
        char *ca_pem = NULL, *cert_pem = NULL, *key_pem = NULL, *token = NULL;
        char host[128], url[256];
        unsigned port = 0;
        bool v6 = false;
        int r, fd = -1, ret = EXIT_FAILURE;
        sigset_t mask;

        if (parse_args(argc, argv, &o) < 0) {
                fprintf(stderr, "Try 'koc-apiserver --help'.\n");
                cJSON_Delete(o.faults);
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        raise_fd_limit();
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        srv.history_max = o.history;
        srv.gc_examine_per_tick = o.gc_examine_per_tick;
        srv.bookmark_interval_usec = o.bookmark_interval_usec;
        srv.watch_list_disabled = o.watch_list_disabled;
        srv.watch_buffer_max = 8u * 1024 * 1024;
        srv.started_usec = koc_now_boottime_usec();
        if (o.token)
                token = strdup(o.token);
        else {
                unsigned char raw[24];
                if (RAND_bytes(raw, sizeof raw) == 1) {
                        token = malloc(sizeof raw * 2 + 1);
                        for (size_t i = 0; token && i < sizeof raw; i++)
                                sprintf(token + 2 * i, "%02x", raw[i]);
                }
        }
        if (!token) {
                koc_log_error(COMPONENT, "cannot make a token");
                goto out;
        }
        srv.token = token;
        if (o.log_writes && !(srv.write_log = fopen(o.log_writes, "ae"))) {
                koc_log_error(COMPONENT, "--log-writes: cannot open %s: %m", o.log_writes);
                goto out;
        }
        const cJSON *rule;
        cJSON_ArrayForEach(rule, o.faults) {
                char err[512];
                if (faults_add(&srv, rule, err, sizeof err) < 0) {
                        koc_log_error(COMPONENT, "--fault: %s", err);
                        goto out;
                }
        }
        if ((r = tls_make_certs(&ca_pem, &cert_pem, &key_pem)) < 0) {
                koc_log_error(COMPONENT, "cannot make the TLS certificates: %s", strerror(-r));
                goto out;
        }
        fd = open_listener(o.listen, &v6, host, sizeof host, &port);
        if (fd < 0) {
                koc_log_error(COMPONENT, "cannot listen on %s: %s", o.listen,
                              fd == -EINVAL ? "expected ADDR:PORT" : strerror(-fd));
                goto out;
        }
        if ((r = sd_event_default(&srv.event)) < 0) {
                koc_log_error(COMPONENT, "sd_event_default: %s", strerror(-r));
                goto out;
        }
        if ((r = watch_init(&srv)) < 0) {
                koc_log_error(COMPONENT, "cannot set up watches: %s", strerror(-r));
                goto out;
        }
        store_init(&srv);
        if ((r = gc_init(&srv)) < 0) {
                koc_log_error(COMPONENT, "cannot start the garbage collector: %s", strerror(-r));
                goto out;
        }

        unsigned flags = MHD_USE_EPOLL | MHD_USE_TLS | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
        if (v6)
                flags |= MHD_USE_IPv6;
        srv.daemon = MHD_start_daemon(
                flags, 0, NULL, NULL, http_access, &srv, MHD_OPTION_LISTEN_SOCKET, fd,
                MHD_OPTION_HTTPS_MEM_KEY, key_pem, MHD_OPTION_HTTPS_MEM_CERT, cert_pem,
                MHD_OPTION_NOTIFY_COMPLETED, http_completed, &srv, MHD_OPTION_CONNECTION_LIMIT,
                (unsigned)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0,
                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_EXTERNAL_LOGGER,
                mhd_logger, NULL, MHD_OPTION_END);
        if (!srv.daemon) {
                koc_log_error(COMPONENT, "cannot start the HTTPS server");
                goto out;
        }
        fd = -1; /* the daemon owns it now */
        if ((r = koc__mhd_loop_new(srv.event, srv.daemon, SD_EVENT_PRIORITY_NORMAL, MAX_CONNECTIONS,
                                   "apiserver-https", &srv.mhd)) < 0) {
                koc_log_error(COMPONENT, "cannot attach the HTTPS server to the loop: %s",
                              strerror(-r));
                goto out;
        }
        if (sd_event_add_signal(srv.event, NULL, SIGTERM, on_signal, &srv) < 0 ||
            sd_event_add_signal(srv.event, NULL, SIGINT, on_signal, &srv) < 0) {
                koc_log_error(COMPONENT, "cannot handle signals");
                goto out;
        }
        snprintf(url, sizeof url, v6 ? "https://[%s]:%u" : "https://%s:%u", host, port);
        if (o.ca_out && (r = write_atomic(o.ca_out, ca_pem, 0644)) < 0) {
                koc_log_error(COMPONENT, "cannot write %s: %s", o.ca_out, strerror(-r));
                goto out;
        }
        if (o.kubeconfig_out && (r = write_kubeconfig(o.kubeconfig_out, url, ca_pem, token)) < 0) {
                koc_log_error(COMPONENT, "cannot write %s: %s", o.kubeconfig_out, strerror(-r));
                goto out;
        }
        koc_log_info(COMPONENT, "serving url=%s kubeconfig=%s", url,
                     o.kubeconfig_out ? o.kubeconfig_out : "(none)");
        if ((r = sd_event_loop(srv.event)) < 0) {
                koc_log_error(COMPONENT, "event loop failed: %s", strerror(-r));
                goto out;
        }
        ret = EXIT_SUCCESS;
out:
        if (srv.daemon) {
                /* MHD needs every connection resumed before it stops. */
                srv.stopping = true;
                watch_stop_all(&srv);
                http_release_all(&srv);
                for (int i = 0; i < 3; i++)
                        (void)MHD_run(srv.daemon);
                srv.mhd = koc__mhd_loop_free(srv.mhd);
                MHD_stop_daemon(srv.daemon);
        }
        if (fd >= 0)
                close(fd);
        gc_done(&srv);
        watch_done(&srv);
        history_free(&srv);
        strmap_clear(&srv.collections, collection_free);
        metrics_free(&srv);
        cJSON_Delete(srv.faults);
        reviews_free();
        schema_done();
        openapi_free();
        cJSON_Delete(o.faults);
        if (srv.write_log)
                fclose(srv.write_log);
        sd_event_unref(srv.event);
        free(ca_pem);
        free(cert_pem);
        if (key_pem) {
                explicit_bzero(key_pem, strlen(key_pem));
                free(key_pem);
        }
        free(token);
        if (ret == EXIT_SUCCESS)
                koc_log_info(COMPONENT, "stopped");
        return ret;
}

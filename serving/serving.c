/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/mhd-glue.h"
#include "core/ratelimit.h"
#include "core/util.h"
#include "koc/log.h"
#include "koc/time.h"
#include "serving/serving.h"
#include "serving/tls.h"

#define LOG "serving"
#define MAX_ROUTES 32
#define MAX_RETIRED 16
#define MAX_SERVERS 16
#define DEFAULT_RELOAD_INTERVAL_USEC (10 * KOC_USEC_PER_SEC)
/* inotify reports every step of a rotation; the check runs once they settle. */
#define RELOAD_SETTLE_USEC (100 * KOC_USEC_PER_MSEC)
/* A pair replaced by a reload stays alive this long: GnuTLS keeps using the
 * pair it took from the callback until the handshake ends, and the glue's
 * request deadline closes a connection whose handshake and request take
 * longer than that. */
#define RETIRE_GRACE_USEC (60 * KOC_USEC_PER_SEC)

typedef struct route {
        char *path;
        char *method;
        bool prefix;
        size_t max_body;
        koc_serving_handler_t fn;
        void *userdata;
} route;

typedef struct file_id {
        bool ok;
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime, ctime;
} file_id;

typedef struct retired {
        koc__tls_pair *pair;
        uint64_t at;
} retired;

enum req_state {
        RQ_NEW,        /* headers in, maybe body arriving */
        RQ_RUNNING,    /* handed to the filter or handler, not answered */
        RQ_SUSPENDED,  /* waiting for an answer, connection suspended */
        RQ_ANSWERED,   /* an answer is ready to queue */
        RQ_QUEUED,     /* queued with MHD */
};

struct koc_serving_request {
        koc_serving *server;
        struct MHD_Connection *conn;
        enum req_state state;
        const route *route;
        char *method;
        char *path;
        char *body;
        size_t body_len;
        bool too_large;
        unsigned code;
        char *answer;
        size_t answer_len;
        char *content_type;
        char **headers; /* name, value, ..., NULL */
        void (*abort_fn)(void *userdata);
        void *abort_userdata;
        koc_serving_request *prev, *next; /* the server's suspended list */
};

struct koc_serving {
        sd_event *event;
        char *name;
        koc_mhd_limits limits;
        koc_mhd_event *http;
        uint16_t port;
        bool stopped;
        /* certificates */
        char *cert_file, *key_file; /* NULL: self-signed */
        koc__tls_pair *current;
        retired retired[MAX_RETIRED];
        size_t n_retired;
        file_id cert_id, key_id; /* of the files behind `current` */
        file_id bad_cert_id, bad_key_id; /* the last pair that failed to load */
        int inotify_fd;
        sd_event_source *inotify_source, *settle_timer, *poll_timer;
        uint64_t reload_interval_usec;
        koc__ratelimit reload_rl;
        koc_metric *m_reloads, *m_reload_errors, *m_expiry;
        /* routes */
        route routes[MAX_ROUTES];
        size_t n_routes;
        koc_serving_handler_t filter;
        void *filter_userdata;
        koc_serving_request *suspended;
};

/* --- which server a handshake belongs to ------------------------------------- */

/* libmicrohttpd calls one certificate callback without user data, and gives
 * GnuTLS the socket as its transport: the socket's local port names the
 * server. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
        uint16_t port;
        koc_serving *server;
} registry[MAX_SERVERS];

static int registry_add(koc_serving *s) {
        int r = -E2BIG;
        pthread_mutex_lock(&registry_lock);
        for (size_t i = 0; i < MAX_SERVERS; i++)
                if (registry[i].server && registry[i].port == s->port) {
                        r = -EADDRINUSE;
                        goto out;
                }
        for (size_t i = 0; i < MAX_SERVERS; i++)
                if (!registry[i].server) {
                        registry[i].port = s->port;
                        registry[i].server = s;
                        r = 0;
                        break;
                }
out:
        pthread_mutex_unlock(&registry_lock);
        return r;
}

static void registry_remove(koc_serving *s) {
        pthread_mutex_lock(&registry_lock);
        for (size_t i = 0; i < MAX_SERVERS; i++)
                if (registry[i].server == s)
                        registry[i].server = NULL;
        pthread_mutex_unlock(&registry_lock);
}

static koc_serving *registry_find(int fd) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        koc_serving *s = NULL;
        uint16_t port;

        if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
                return NULL;
        if (ss.ss_family == AF_INET6)
                port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        else if (ss.ss_family == AF_INET)
                port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else
                return NULL;
        pthread_mutex_lock(&registry_lock);
        for (size_t i = 0; i < MAX_SERVERS; i++)
                if (registry[i].server && registry[i].port == port)
                        s = registry[i].server;
        pthread_mutex_unlock(&registry_lock);
        return s;
}

/* Runs on the server's loop thread, inside MHD_run(). */
static int cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                         const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                         gnutls_pcert_st **ret_pcert, unsigned int *ret_n, gnutls_privkey_t *ret_key) {
        koc_serving *s = registry_find(gnutls_transport_get_int(session));
        if (!s || !s->current)
                return -1;
        koc__tls_pair_get(s->current, ret_pcert, ret_n, ret_key);
        return 0;
}

/* --- certificates ------------------------------------------------------------- */

static file_id file_id_of(const char *path) {
        struct stat st;
        if (stat(path, &st) < 0)
                return (file_id){0};
        return (file_id){.ok = true,
                         .dev = st.st_dev,
                         .ino = st.st_ino,
                         .size = st.st_size,
                         .mtime = st.st_mtim,
                         .ctime = st.st_ctim};
}

static bool file_id_eq(const file_id *a, const file_id *b) {
        return a->ok == b->ok && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
               a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
               a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static void prune_retired(koc_serving *s, bool all) {
        uint64_t now = koc_now_boottime_usec();
        size_t j = 0;
        for (size_t i = 0; i < s->n_retired; i++) {
                if (all || now - s->retired[i].at >= RETIRE_GRACE_USEC)
                        koc__tls_pair_free(s->retired[i].pair);
                else
                        s->retired[j++] = s->retired[i];
        }
        s->n_retired = j;
}

static void use_pair(koc_serving *s, koc__tls_pair *p) {
        if (s->current) {
                if (s->n_retired == MAX_RETIRED) {
                        koc__tls_pair_free(s->retired[0].pair);
                        memmove(s->retired, s->retired + 1,
                                (MAX_RETIRED - 1) * sizeof(s->retired[0]));
                        s->n_retired--;
                }
                s->retired[s->n_retired++] =
                        (retired){.pair = s->current, .at = koc_now_boottime_usec()};
        }
        s->current = p;
        if (s->m_expiry)
                koc_metric_set(s->m_expiry, (double)koc__tls_pair_not_after(p));
}

static int check_files(koc_serving *s, bool force, koc_error *err) {
        koc_error local = {0};
        if (!err)
                err = &local;
        if (!s->cert_file)
                return 0;
        file_id c = file_id_of(s->cert_file), k = file_id_of(s->key_file);
        if (!force && file_id_eq(&c, &s->cert_id) && file_id_eq(&k, &s->key_id))
                return 0;
        if (!force && file_id_eq(&c, &s->bad_cert_id) && file_id_eq(&k, &s->bad_key_id))
                return -EAGAIN; /* said already */
        koc__tls_pair *p = NULL;
        int r = koc__tls_pair_load(s->cert_file, s->key_file, time(NULL), &p, err);
        if (r < 0) {
                s->bad_cert_id = c;
                s->bad_key_id = k;
                if (s->m_reload_errors)
                        koc_metric_inc(s->m_reload_errors);
                koc__log_ratelimited(&s->reload_rl, KOC_LOG_WARN, LOG,
                                     "server=%s certificate reload failed, serving the previous "
                                     "one: %s",
                                     s->name, err->message);
                return r;
        }
        use_pair(s, p);
        s->cert_id = c;
        s->key_id = k;
        s->bad_cert_id = s->bad_key_id = (file_id){0};
        if (s->m_reloads)
                koc_metric_inc(s->m_reloads);
        koc_log_info(LOG, "server=%s certificate loaded from %s (expires %lld)", s->name,
                     s->cert_file, (long long)koc__tls_pair_not_after(p));
        return 0;
}

int koc__serving_reload(koc_serving *s, koc_error *err) {
        if (!s)
                return -EINVAL;
        return check_files(s, true, err);
}

static int on_settle(sd_event_source *src, uint64_t usec, void *userdata) {
        (void)check_files(userdata, false, NULL);
        return 0;
}

static int on_inotify(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        koc_serving *s = userdata;
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        /* Bounded: the fd is non-blocking and the buffer drains it. */
        for (int i = 0; i < 64; i++) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n <= 0)
                        break;
        }
        if (sd_event_source_set_time_relative(s->settle_timer, RELOAD_SETTLE_USEC) >= 0)
                (void)sd_event_source_set_enabled(s->settle_timer, SD_EVENT_ONESHOT);
        return 0;
}

static int on_poll(sd_event_source *src, uint64_t usec, void *userdata) {
        koc_serving *s = userdata;
        (void)check_files(s, false, NULL);
        prune_retired(s, false);
        if (sd_event_source_set_time_relative(src, s->reload_interval_usec) >= 0)
                (void)sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
        return 0;
}

static int watch_dir(koc_serving *s, const char *file) {
        char *copy = strdup(file);
        if (!copy)
                return -ENOMEM;
        const char *dir = dirname(copy);
        int wd = inotify_add_watch(s->inotify_fd, dir,
                                   IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM |
                                           IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF |
                                           IN_MOVE_SELF | IN_ONLYDIR);
        int r = wd < 0 ? -errno : 0;
        if (r < 0)
                koc_log_warn(LOG,
                             "server=%s cannot watch %s for certificate changes (%s); checking "
                             "every %llus",
                             s->name, dir, strerror(-r),
                             (unsigned long long)(s->reload_interval_usec / KOC_USEC_PER_SEC));
        free(copy);
        return 0;
}

static int setup_watch(koc_serving *s) {
        int r;

        r = sd_event_add_time(s->event, &s->settle_timer, CLOCK_BOOTTIME, 0, 0, on_settle, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->settle_timer, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time_relative(s->event, &s->poll_timer, CLOCK_BOOTTIME,
                                               s->reload_interval_usec, KOC_USEC_PER_SEC / 10,
                                               on_poll, s);
        if (r < 0)
                return r;
        (void)sd_event_source_set_description(s->poll_timer, "serving-cert-poll");
        if (!s->cert_file)
                return 0;
        s->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (s->inotify_fd < 0) {
                koc_log_warn(LOG, "server=%s inotify: %s; checking the certificate by stat only",
                             s->name, strerror(errno));
                return 0;
        }
        r = watch_dir(s, s->cert_file);
        if (r >= 0)
                r = watch_dir(s, s->key_file);
        if (r >= 0)
                r = sd_event_add_io(s->event, &s->inotify_source, s->inotify_fd, EPOLLIN,
                                    on_inotify, s);
        return r;
}

/* --- requests ----------------------------------------------------------------- */

static void suspended_unlink(koc_serving_request *req) {
        koc_serving *s = req->server;
        if (req->prev)
                req->prev->next = req->next;
        else if (s->suspended == req)
                s->suspended = req->next;
        if (req->next)
                req->next->prev = req->prev;
        req->prev = req->next = NULL;
}

static void request_free(koc_serving_request *req) {
        if (!req)
                return;
        if (req->state == RQ_SUSPENDED)
                suspended_unlink(req);
        if (req->abort_fn && req->state != RQ_ANSWERED && req->state != RQ_QUEUED) {
                void (*fn)(void *) = req->abort_fn;
                req->abort_fn = NULL;
                fn(req->abort_userdata);
        }
        free(req->method);
        free(req->path);
        free(req->body);
        free(req->answer);
        free(req->content_type);
        if (req->headers)
                for (char **h = req->headers; *h; h++)
                        free(*h);
        free(req->headers);
        free(req);
}

const char *koc__serving_request_method(const koc_serving_request *req) {
        return req->method;
}

const char *koc__serving_request_path(const koc_serving_request *req) {
        return req->path;
}

const char *koc__serving_request_header(const koc_serving_request *req, const char *name) {
        return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *koc__serving_request_body(const koc_serving_request *req, size_t *ret_len) {
        if (ret_len)
                *ret_len = req->body_len;
        return req->body ? req->body : "";
}

void koc__serving_request_on_abort(koc_serving_request *req, void (*fn)(void *userdata),
                                   void *userdata) {
        req->abort_fn = fn;
        req->abort_userdata = userdata;
}

void koc__serving_respond(koc_serving_request *req, unsigned code, const char *content_type,
                          char *body, size_t len, const char *const *headers) {
        if (req->state != RQ_RUNNING && req->state != RQ_SUSPENDED) {
                free(body);
                return;
        }
        req->abort_fn = NULL;
        req->code = code;
        req->answer = body;
        req->answer_len = body ? len : 0;
        req->content_type = strdup(content_type ? content_type : "text/plain; charset=utf-8");
        size_t n = 0;
        while (headers && headers[n])
                n++;
        if (n) {
                req->headers = calloc(n + 1, sizeof(char *));
                for (size_t i = 0; req->headers && i < n; i++)
                        req->headers[i] = strdup(headers[i]);
        }
        bool was_suspended = req->state == RQ_SUSPENDED;
        req->state = RQ_ANSWERED;
        if (was_suspended) {
                suspended_unlink(req);
                MHD_resume_connection(req->conn);
                if (req->server->http)
                        koc__mhd_event_kick(req->server->http);
        }
}

void koc__serving_respond_text(koc_serving_request *req, unsigned code, const char *text) {
        char *t = strdup(text);
        koc__serving_respond(req, code, NULL, t, t ? strlen(t) : 0, NULL);
}

void koc__serving_next(koc_serving_request *req) {
        if (req->state != RQ_RUNNING && req->state != RQ_SUSPENDED)
                return;
        req->route->fn(req, req->route->userdata);
}

static enum MHD_Result queue_answer(koc_serving_request *req) {
        struct MHD_Response *resp;
        if (req->answer) {
                resp = MHD_create_response_from_buffer(req->answer_len, req->answer,
                                                       MHD_RESPMEM_MUST_FREE);
                if (resp)
                        req->answer = NULL;
        } else
                resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO;
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                      req->content_type ? req->content_type : "text/plain");
        (void)MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        for (char **h = req->headers; h && h[0] && h[1]; h += 2)
                (void)MHD_add_response_header(resp, h[0], h[1]);
        enum MHD_Result ret = MHD_queue_response(req->conn, req->code, resp);
        MHD_destroy_response(resp);
        req->state = RQ_QUEUED;
        return ret;
}

static const route *find_route(koc_serving *s, const char *path) {
        for (size_t i = 0; i < s->n_routes; i++) {
                const route *r = &s->routes[i];
                if (r->prefix ? strncmp(path, r->path, strlen(r->path)) == 0
                              : strcmp(path, r->path) == 0)
                        return r;
        }
        return NULL;
}

static bool method_ok(const route *r, const char *method) {
        if (!r->method)
                return true;
        if (strcmp(r->method, method) == 0)
                return true;
        return strcmp(r->method, "GET") == 0 && strcmp(method, "HEAD") == 0;
}

static void start(koc_serving_request *req) {
        koc_serving *s = req->server;
        const route *r = find_route(s, req->path);

        req->state = RQ_RUNNING;
        if (!r) {
                koc__serving_respond_text(req, 404, "404 page not found\n");
                return;
        }
        if (!method_ok(r, req->method)) {
                const char *allow[] = {"Allow", r->method, NULL};
                char *t = strdup("405 method not allowed\n");
                koc__serving_respond(req, 405, NULL, t, t ? strlen(t) : 0, allow);
                return;
        }
        if (req->too_large) {
                koc__serving_respond_text(req, 413, "413 request body too large\n");
                return;
        }
        req->route = r;
        if (s->filter)
                s->filter(req, s->filter_userdata);
        else
                r->fn(req, r->userdata);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
        koc_serving *s = cls;
        koc_serving_request *req = *req_cls;

        if (!req) {
                req = calloc(1, sizeof(*req));
                if (!req)
                        return MHD_NO;
                req->server = s;
                req->conn = conn;
                req->method = strdup(method);
                req->path = strdup(url);
                *req_cls = req;
                if (!req->method || !req->path)
                        return MHD_NO;
                return MHD_YES;
        }
        if (*upload_data_size) {
                const route *r = find_route(s, req->path);
                size_t max = r ? r->max_body : 0;
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                if (req->too_large || req->body_len + n > max) {
                        req->too_large = true;
                        free(req->body);
                        req->body = NULL;
                        req->body_len = 0;
                        return MHD_YES;
                }
                char *b = realloc(req->body, req->body_len + n + 1);
                if (!b)
                        return MHD_NO;
                memcpy(b + req->body_len, upload_data, n);
                req->body = b;
                req->body_len += n;
                b[req->body_len] = 0;
                return MHD_YES;
        }
        switch (req->state) {
        case RQ_NEW:
                if (s->stopped)
                        return MHD_NO;
                start(req);
                if (req->state == RQ_ANSWERED)
                        return queue_answer(req);
                req->state = RQ_SUSPENDED;
                req->next = s->suspended;
                if (req->next)
                        req->next->prev = req;
                s->suspended = req;
                MHD_suspend_connection(conn);
                return MHD_YES;
        case RQ_ANSWERED:
                return queue_answer(req);
        default:
                return MHD_YES;
        }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
        request_free(*req_cls);
        *req_cls = NULL;
}

/* --- the server --------------------------------------------------------------- */

int koc__serving_add_handler(koc_serving *s, const char *path, const char *method,
                             size_t max_body, koc_serving_handler_t fn, void *userdata) {
        if (!s || !path || path[0] != '/' || !fn)
                return -EINVAL;
        for (size_t i = 0; i < s->n_routes; i++)
                if (strcmp(s->routes[i].path, path) == 0)
                        return -EEXIST;
        if (s->n_routes == MAX_ROUTES)
                return -E2BIG;
        route *r = &s->routes[s->n_routes];
        *r = (route){.path = strdup(path),
                     .method = method ? strdup(method) : NULL,
                     .prefix = path[strlen(path) - 1] == '/',
                     .max_body = max_body,
                     .fn = fn,
                     .userdata = userdata};
        if (!r->path || (method && !r->method)) {
                free(r->path);
                free(r->method);
                return -ENOMEM;
        }
        s->n_routes++;
        return 0;
}

void koc__serving_set_filter(koc_serving *s, koc_serving_handler_t fn, void *userdata) {
        s->filter = fn;
        s->filter_userdata = userdata;
}

uint16_t koc__serving_port(const koc_serving *s) {
        return s->port;
}

char *koc__serving_cert_pem(const koc_serving *s) {
        return s->current ? koc__tls_pair_cert_pem(s->current) : NULL;
}

int koc__serving_check_certificate(const koc_serving *s, int64_t now, char *why, size_t why_size) {
        if (!s->current) {
                snprintf(why, why_size, "no serving certificate");
                return -ENOKEY;
        }
        int64_t na = koc__tls_pair_not_after(s->current);
        if (now < na)
                return 0;
        char when[40];
        koc__format_timestamp(na > 0 ? (uint64_t)na * 1000000u : 0, 0, when, sizeof when);
        snprintf(why, why_size, "the serving certificate %s expired at %s",
                 s->cert_file ? s->cert_file : "(self-signed)", when);
        return -EKEYEXPIRED;
}

void koc__serving_stop(koc_serving *s) {
        if (!s || s->stopped)
                return;
        s->stopped = true;
        /* Requests still waiting (for a review, say) get 503; MHD must see
         * their connections resumed before the daemon stops. */
        while (s->suspended) {
                koc_serving_request *req = s->suspended;
                void (*fn)(void *) = req->abort_fn;
                req->abort_fn = NULL;
                if (fn)
                        fn(req->abort_userdata);
                if (req->state == RQ_SUSPENDED)
                        koc__serving_respond_text(req, 503, "server stopping\n");
        }
        if (s->http)
                (void)MHD_run(koc__mhd_event_daemon(s->http));
        s->http = koc__mhd_event_free(s->http);
        registry_remove(s);
}

koc_serving *koc__serving_free(koc_serving *s) {
        if (!s)
                return NULL;
        koc__serving_stop(s);
        sd_event_source_disable_unref(s->inotify_source);
        sd_event_source_disable_unref(s->settle_timer);
        sd_event_source_disable_unref(s->poll_timer);
        if (s->inotify_fd >= 0)
                close(s->inotify_fd);
        prune_retired(s, true);
        koc__tls_pair_free(s->current);
        for (size_t i = 0; i < s->n_routes; i++) {
                free(s->routes[i].path);
                free(s->routes[i].method);
        }
        free(s->cert_file);
        free(s->key_file);
        free(s->name);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

static char *path_join(const char *dir, const char *file) {
        char *p = NULL;
        if (asprintf(&p, "%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", file) <
            0)
                return NULL;
        return p;
}

static int register_metrics(koc_serving *s, koc_metrics *metrics) {
        char labels[128];
        int r;
        if (!metrics)
                return 0;
        snprintf(labels, sizeof labels, "server=\"%s\"", s->name);
        r = koc_metrics_add_counter(metrics, "koc_serving_certificate_reloads_total",
                                    "Serving certificates loaded (at start and by reloads).",
                                    labels, &s->m_reloads);
        if (r >= 0)
                r = koc_metrics_add_counter(metrics, "koc_serving_certificate_reload_errors_total",
                                            "Certificate reloads that failed (the previous "
                                            "pair stays in use).",
                                            labels, &s->m_reload_errors);
        if (r >= 0)
                r = koc_metrics_add_gauge(metrics,
                                          "koc_serving_certificate_expiry_timestamp_seconds",
                                          "notAfter of the serving certificate in use.", labels,
                                          &s->m_expiry);
        return r;
}

static bool name_ok(const char *n) {
        if (!n || !n[0] || strlen(n) > 63)
                return false;
        for (const char *p = n; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
                        return false;
        return true;
}

int koc__serving_new(sd_event *event, const koc_serving_config *cfg, koc_serving **ret,
                     koc_error *err) {
        koc_serving *s;
        int r;

        if (!event || !cfg || !ret || !cfg->address)
                return koc_error_set(err, -EINVAL, "serving: missing configuration");
        if (!name_ok(cfg->name))
                return koc_error_set(err, -EINVAL, "serving: bad server name");
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES ||
            MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK) != MHD_YES)
                return koc_error_set(err, -EOPNOTSUPP,
                                     "%s server: libmicrohttpd is built without TLS or its "
                                     "certificate callback",
                                     cfg->name);
        if (cfg->cert_dir && (cfg->cert_file || cfg->key_file))
                return koc_error_set(err, -EINVAL,
                                     "%s server: give a certificate directory or a certificate "
                                     "and key file, not both",
                                     cfg->name);
        if (!cfg->cert_file != !cfg->key_file)
                return koc_error_set(err, -EINVAL,
                                     "%s server: a certificate file needs a key file and the "
                                     "other way round",
                                     cfg->name);
        s = calloc(1, sizeof(*s));
        if (!s)
                return koc_error_set(err, -ENOMEM, "out of memory");
        s->event = sd_event_ref(event);
        s->inotify_fd = -1;
        s->name = strdup(cfg->name);
        s->reload_interval_usec =
                cfg->reload_interval_usec ? cfg->reload_interval_usec : DEFAULT_RELOAD_INTERVAL_USEC;
        s->reload_rl = (koc__ratelimit)KOC__RATELIMIT_INIT(60 * KOC_USEC_PER_SEC, 1);
        s->limits = (koc_mhd_limits){.max_connections = 256,
                                     .idle_timeout_sec = 60,
                                     .max_request_bytes = 32 * 1024,
                                     .max_per_address = 128,
                                     .request_timeout_usec = 10 * KOC_USEC_PER_SEC};
        if (cfg->cert_dir) {
                s->cert_file = path_join(cfg->cert_dir, "tls.crt");
                s->key_file = path_join(cfg->cert_dir, "tls.key");
        } else if (cfg->cert_file) {
                s->cert_file = strdup(cfg->cert_file);
                s->key_file = strdup(cfg->key_file);
        }
        if (!s->name || ((cfg->cert_dir || cfg->cert_file) && (!s->cert_file || !s->key_file))) {
                koc__serving_free(s);
                return koc_error_set(err, -ENOMEM, "out of memory");
        }
        r = register_metrics(s, cfg->metrics);
        if (r < 0) {
                koc__serving_free(s);
                return koc_error_set(err, r, "%s server: metrics: %s", cfg->name, strerror(-r));
        }

        koc__tls_pair *p = NULL;
        if (s->cert_file) {
                s->cert_id = file_id_of(s->cert_file);
                s->key_id = file_id_of(s->key_file);
                r = koc__tls_pair_load(s->cert_file, s->key_file, time(NULL), &p, err);
        } else {
                r = koc__tls_pair_self_signed("koc-serving", &p, err);
                if (r >= 0)
                        koc_log_info(LOG,
                                     "server=%s no certificate given: serving a self-signed one "
                                     "generated in memory",
                                     s->name);
        }
        if (r < 0) {
                koc__serving_free(s);
                return r;
        }
        use_pair(s, p);
        if (s->m_reloads)
                koc_metric_inc(s->m_reloads);

        r = setup_watch(s);
        if (r < 0) {
                koc__serving_free(s);
                return koc_error_set(err, r, "%s server: %s", cfg->name, strerror(-r));
        }

        struct sockaddr_storage ss;
        socklen_t len;
        bool any;
        r = koc__parse_bind_address(cfg->address, &ss, &len, &any);
        if (r < 0) {
                koc__serving_free(s);
                return koc_error_set(err, r, "%s server: \"%s\": not an address", cfg->name,
                                     cfg->address);
        }
        koc_mhd_tls tls = {.cert_callback = (void *)cert_callback,
                           .priorities = KOC__TLS_PRIORITIES,
                           .suspend_resume = true,
                           .completed = on_completed,
                           .completed_cls = s};
        r = koc__mhd_event_start_tls(event, (struct sockaddr *)&ss, len, !any, &s->limits, &tls,
                                     SD_EVENT_PRIORITY_NORMAL, on_request, s, &s->http);
        if (r == -EAFNOSUPPORT && any) {
                /* No IPv6 on this host: ":PORT" falls back to every IPv4 address. */
                struct sockaddr_in sin = {.sin_family = AF_INET,
                                          .sin_port = ((struct sockaddr_in6 *)&ss)->sin6_port,
                                          .sin_addr.s_addr = htonl(INADDR_ANY)};
                r = koc__mhd_event_start_tls(event, (struct sockaddr *)&sin, sizeof(sin), false,
                                             &s->limits, &tls, SD_EVENT_PRIORITY_NORMAL,
                                             on_request, s, &s->http);
        }
        if (r < 0) {
                koc__serving_free(s);
                return koc_error_set(err, r, "%s server: \"%s\": cannot listen: %s", cfg->name,
                                     cfg->address, strerror(-r));
        }
        s->port = koc__mhd_event_port(s->http);
        r = registry_add(s);
        if (r < 0) {
                koc__serving_free(s);
                return koc_error_set(err, r, "%s server: port %u taken by another server",
                                     cfg->name, s->port);
        }
        *ret = s;
        return 0;
}

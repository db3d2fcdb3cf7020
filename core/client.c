/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The asynchronous API client: libcurl's multi-socket interface on sd-event.
 *
 * How the pieces fit (the pattern of systemd's src/import/curl-util.c):
 *
 *  - curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when
 *    to call it back (CURLMOPT_TIMERFUNCTION).  Those two callbacks only arm
 *    sd-event sources: one I/O source per socket and one CLOCK_BOOTTIME timer.
 *  - When a source fires we call curl_multi_socket_action() and then drain
 *    curl_multi_info_read(), moving finished transfers onto the ready list.
 *  - Handlers never run inside curl: curl's write callback only buffers (a
 *    request's body) or splits lines and parses events (a watch), queueing
 *    them on the ready list and arming one defer source.  The defer source
 *    runs the handlers, so a handler may start, cancel or stop anything
 *    (including itself), and may drop the last reference to the client.
 *
 * Authentication: every request takes the current "Authorization" header
 * from the cluster config.  When an answer is 401, the client invalidates the
 * config's token (which makes the config re-read the token file or re-run
 * the exec plugin) and, if that yields a different token than the one the
 * request carried, sends the request once more.  That is how bound
 * service-account tokens, which the kubelet rotates, are survived without
 * failing the first request after a rotation.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "client-internal.h"
#include "ratelimit.h"
#include "cluster-config.h"
#include "config-internal.h"
#include "koc/log.h"
#include "koc/time.h"
#include "linebuf.h"
#include "names.h"
#include "ratelimit.h"
#include "util.h"

#define LOG_COMPONENT "client"
#define DEFAULT_TIMEOUT_USEC (30 * KOC_USEC_PER_SEC)
#define DEFAULT_MAX_RESPONSE ((size_t)64 * 1024 * 1024)
/* Over HTTP/1.1 every open watch holds a connection of its own, so the bound
 * must be well above the number of watches a process keeps; over HTTP/2 they
 * all share one connection anyway. */
#define MAX_HOST_CONNECTIONS 256L
#define DEFAULT_USER_AGENT "koc/0.1"
/* client-go's HTTP/2 health check: ReadIdleTimeout and PingTimeout. */
#define DEFAULT_READ_IDLE_USEC (30 * KOC_USEC_PER_SEC)
#define DEFAULT_PING_TIMEOUT_USEC (15 * KOC_USEC_PER_SEC)

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* --- small intrusive list ------------------------------------------------ */

static void list_init(struct koc_list *l) {
        l->prev = l->next = l;
}

static bool list_empty(const struct koc_list *l) {
        return l->next == l;
}

static bool list_linked(const struct koc_list *n) {
        return n->next != n;
}

static void list_append(struct koc_list *head, struct koc_list *n) {
        n->prev = head->prev;
        n->next = head;
        head->prev->next = n;
        head->prev = n;
}

static void list_unlink(struct koc_list *n) {
        n->prev->next = n->next;
        n->next->prev = n->prev;
        list_init(n);
}

/* --- transfers ----------------------------------------------------------- */

typedef struct transfer {
        koc_client *client;
        bool is_watch;
        struct koc_list link;       /* client->transfers */
        struct koc_list ready_link; /* client->ready */

        CURL *easy;
        struct curl_slist *headers;
        char *method;
        char *path;
        char *auth; /* the Authorization header this attempt carries */
        char *body; /* serialised request body (cJSON allocation) */
        char *content_type;
        char *accept; /* NULL: application/json */
        char errbuf[CURL_ERROR_SIZE];
        uint64_t started_usec;
        uint64_t sent_usec;    /* handed to curl (first attempt) */
        uint64_t timeout_usec; /* requests: total budget from submission; watches: 0 */
        char *error_message;   /* with error: why, e.g. the exec plugin's failure */

        long status; /* from the last status line */
        char *data;  /* response body (requests, failed watches) */
        size_t data_len, data_alloc, max_data;
        uint64_t retry_after_usec;
        int error; /* our own failure: -EMSGSIZE, -EBADMSG, -ENOMEM */

        bool auth_retried;
        bool waiting_credential; /* for the exec plugin's run to end */
        bool waiting_rate;       /* for a token of the rate limiter */
        bool is_probe;           /* the connection health check's own request */
        bool conn_dead;          /* its connection failed the health check */
        bool counted;            /* in rest_client_requests_total (watches) */
        bool attached;           /* in the multi handle */
        bool finished;           /* curl is done with it */
        bool in_handler;
        bool cancelled;
        CURLcode result;
} transfer;

struct koc_request {
        transfer t; /* first: a transfer is freed as its container */
        koc_response_handler_t handler;
        void (*on_drop)(void *userdata);
        void *userdata;
};

/* An event line as it came, parsed only when its turn comes: a burst that
 * arrives between two dispatches (a streaming list sends thousands) waits
 * as its bytes, not as parse trees several times their size, and each tree
 * lives only while its event is handled, so that the heap a tree leaves is
 * the next one's rather than free memory between the records kept. */
typedef struct watch_item {
        struct watch_item *next;
        size_t len;
        char line[];
} watch_item;

struct koc_watch {
        transfer t; /* first */
        koc_watch_handler_t handler;
        void *userdata;
        koc_destroy_t destroy; /* set once the watch has started */
        koc_linebuf lines;
        bool streaming; /* the answer was 2xx: the body is the event stream */
        watch_item *head, *tail;
};

typedef struct curl_socket_io {
        struct koc_list link;
        koc_client *client;
        curl_socket_t fd;
        sd_event_source *source;
        /* The connection health check (on_health_tick()). */
        uint64_t last_rx_usec;    /* the socket was last readable */
        uint64_t probe_sent_usec; /* a probe went out since, or 0 */
        uint32_t events;          /* what curl asked to poll for */
} curl_socket_io;

static void client_free(koc_client *c);

static void ready_add(transfer *t) {
        koc_client *c = t->client;

        if (!list_linked(&t->ready_link))
                list_append(&c->ready, &t->ready_link);
        /* Arming a source is all that may happen here: this runs inside
         * curl's write callback or right after curl_multi_info_read(). */
        (void)sd_event_source_set_enabled(c->dispatch, SD_EVENT_ONESHOT);
}

static void watch_items_free(koc_watch *w) {
        while (w->head) {
                watch_item *i = w->head;
                w->head = i->next;
                free(i);
        }
        w->tail = NULL;
}

static void transfer_free(transfer *t) {
        koc_client *c = t->client;

        if (t->is_probe && c->probe == (koc_request *)t)
                c->probe = NULL;

        if (t->attached)
                curl_multi_remove_handle(c->multi, t->easy);
        if (list_linked(&t->link))
                list_unlink(&t->link);
        if (list_linked(&t->ready_link))
                list_unlink(&t->ready_link);
        if (t->easy)
                curl_easy_cleanup(t->easy);
        curl_slist_free_all(t->headers);
        free(t->method);
        free(t->path);
        free(t->auth);
        cJSON_free(t->body);
        free(t->content_type);
        free(t->accept);
        free(t->error_message);
        free(t->data);
        if (t->is_watch) {
                koc_watch *w = container_of(t, koc_watch, t);
                watch_items_free(w);
                koc__linebuf_done(&w->lines);
                if (w->destroy)
                        w->destroy(w->userdata);
        }
        free(t);
}

/* The request ends without an answer because the client shuts down. */
static void transfer_drop(transfer *t) {
        if (!t->is_watch) {
                koc_request *r = container_of(t, koc_request, t);
                if (r->on_drop)
                        r->on_drop(r->userdata);
        }
        transfer_free(t);
}

/* --- client metrics ------------------------------------------------------ */

/* client-go's buckets for rest_client_request_duration_seconds. */
static const double duration_buckets[] = {0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60};

/* The series of one label set, from the cache or the registry.  Registering
 * takes the registry's lock but calls nothing else, so this is safe inside
 * curl's callbacks too. */
static koc_metric *metric_series(koc_client *c, long code, const char *method) {
        for (size_t i = 0; i < c->n_series; i++)
                if (c->series[i].code == code && strcmp(c->series[i].method, method) == 0)
                        return c->series[i].metric;
        char labels[640], code_s[24];
        koc_metric *m = NULL;
        int r;
        if (code < 0) {
                snprintf(labels, sizeof labels, "verb=\"%s\",host=\"%s\"", method, c->metrics_host);
                r = koc_metrics_add_histogram(c->metrics, "rest_client_request_duration_seconds",
                                              "Request latency in seconds. Broken down by verb, "
                                              "and host.",
                                              labels, duration_buckets,
                                              KOC_ELEMENTSOF(duration_buckets), &m);
        } else {
                if (code == 0)
                        snprintf(code_s, sizeof code_s, "<error>");
                else
                        snprintf(code_s, sizeof code_s, "%ld", code);
                snprintf(labels, sizeof labels, "code=\"%s\",method=\"%s\",host=\"%s\"", code_s,
                         method, c->metrics_host);
                r = koc_metrics_add_counter(c->metrics, "rest_client_requests_total",
                                            "Number of HTTP requests, partitioned by status code, "
                                            "method, and host.",
                                            labels, &m);
        }
        if (r < 0)
                return NULL;
        /* Methods are short upper-case words (valid_method), so the label
         * sets are few; past the cache's size the registry's lookup serves. */
        if (c->n_series < KOC_ELEMENTSOF(c->series)) {
                struct koc_client_series *e = &c->series[c->n_series++];
                e->code = code;
                snprintf(e->method, sizeof e->method, "%s", method);
                e->metric = m;
        }
        return m;
}

static void metrics_count(transfer *t, long code) {
        koc_client *c = t->client;
        if (!c->metrics || !t->method || t->is_probe)
                return;
        koc_metric *m = metric_series(c, code > 0 ? code : 0, t->method);
        if (m)
                koc_metric_inc(m);
}

static void metrics_observe(transfer *t) {
        koc_client *c = t->client;
        if (!c->metrics || !t->method || !t->sent_usec || t->is_probe)
                return;
        koc_metric *m = metric_series(c, -1, t->method);
        if (m)
                koc_metric_observe(m, (double)(koc_now_boottime_usec() - t->sent_usec) /
                                              (double)KOC_USEC_PER_SEC);
}

/* "host:port" of the server URL, with the scheme's port when it has none
 * (as Go's url.Host would not, but a label without the port is ambiguous). */
static char *server_host(const char *server) {
        const char *p = strstr(server, "://");
        bool https = strncmp(server, "https:", 6) == 0;
        p = p ? p + 3 : server;
        size_t n = strcspn(p, "/?#");
        const char *at = memchr(p, '@', n);
        if (at) {
                n -= (size_t)(at + 1 - p);
                p = at + 1;
        }
        char *h = NULL;
        /* An IPv6 literal ("[::1]:6443") has colons of its own. */
        const char *close = n > 0 && p[0] == '[' ? memchr(p, ']', n) : NULL;
        const char *after = close ? close + 1 : p;
        bool has_port = memchr(after, ':', n - (size_t)(after - p)) != NULL;
        if (asprintf(&h, "%.*s%s", (int)n, p, has_port ? "" : https ? ":443" : ":80") < 0)
                return NULL;
        /* A label value must not break out of its quotes. */
        for (char *q = h; *q; q++)
                if (*q == '"' || *q == '\\' || (unsigned char)*q < ' ')
                        *q = '_';
        return h;
}

KOC_EXPORT int koc_client_register_metrics(koc_client *c, koc_metrics *metrics) {
        if (!c || !metrics)
                return -EINVAL;
        const char *server = koc_cluster_config_server(c->cfg);
        char *host = server_host(server ? server : "");
        if (!host)
                return -ENOMEM;
        koc_metrics_unref(c->metrics);
        free(c->metrics_host);
        c->metrics = koc_metrics_ref(metrics);
        c->metrics_host = host;
        c->n_series = 0;
        /* The families exist from the start, so that a scrape shows them
         * before the first answer. */
        (void)metric_series(c, -1, "GET");
        return 0;
}

/* --- curl callbacks: buffer, parse, arm sources; nothing else ------------ */

int koc__body_append(char **data, size_t *len, size_t *alloc, size_t max, const char *p,
                     size_t n) {
        if (n > max - *len)
                return -EMSGSIZE;
        size_t need = *len + n;
        if (need > *alloc) {
                /* Geometric growth, never beyond the cap (plus one byte). */
                size_t cap = max + 1;
                size_t a = *alloc ? *alloc : 16384;
                while (a < need)
                        a = a > cap / 2 ? cap : a * 2;
                if (a > cap)
                        a = cap;
                char *d = realloc(*data, a);
                if (!d)
                        return -ENOMEM;
                *data = d;
                *alloc = a;
        }
        memcpy(*data + *len, p, n);
        *len = need;
        return 0;
}

static int buffer_append(transfer *t, const char *p, size_t n) {
        int r = koc__body_append(&t->data, &t->data_len, &t->data_alloc, t->max_data, p, n);
        if (r < 0)
                t->error = r;
        return r;
}

int koc__watch_line_parse(const char *line, size_t len, koc_watch_event_type *ret_type,
                          cJSON **ret_object, koc_status *ret_status) {
        static const struct {
                const char *name;
                koc_watch_event_type type;
        } types[] = {
                {"ADDED", KOC_WATCH_ADDED},     {"MODIFIED", KOC_WATCH_MODIFIED},
                {"DELETED", KOC_WATCH_DELETED}, {"BOOKMARK", KOC_WATCH_BOOKMARK},
                {"ERROR", KOC_WATCH_ERROR},
        };

        cJSON *root = cJSON_ParseWithLength(line, len);
        if (!root)
                return -EBADMSG;
        cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
        cJSON *object = cJSON_GetObjectItemCaseSensitive(root, "object");
        int t = -1;
        if (!cJSON_IsString(type) || !cJSON_IsObject(object)) {
                cJSON_Delete(root);
                return -EBADMSG;
        }
        for (size_t i = 0; i < KOC_ELEMENTSOF(types); i++)
                if (strcmp(type->valuestring, types[i].name) == 0)
                        t = (int)types[i].type;
        if (t < 0) {
                cJSON_Delete(root);
                return -ENOMSG;
        }
        *ret_type = (koc_watch_event_type)t;
        *ret_object = cJSON_DetachItemViaPointer(root, object);
        cJSON_Delete(root);
        *ret_status = (koc_status){0};
        if (*ret_type == KOC_WATCH_ERROR)
                koc__status_parse(*ret_object, 0, ret_status);
        return 0;
}

static int watch_on_line(const char *line, size_t len, void *userdata) {
        koc_watch *w = userdata;
        watch_item *item = malloc(sizeof *item + len + 1);
        if (!item)
                return -ENOMEM;
        item->next = NULL;
        item->len = len;
        memcpy(item->line, line, len);
        item->line[len] = '\0';
        if (w->tail)
                w->tail->next = item;
        else
                w->head = item;
        w->tail = item;
        ready_add(&w->t);
        return 0;
}

/* An event line that is not a watch event ends the watch (CLOSED with
 * error): what came after it is dropped, as the transfer is. */
static void watch_abort(koc_watch *w, int error) {
        transfer *t = &w->t;
        if (t->attached)
                curl_multi_remove_handle(t->client->multi, t->easy);
        t->attached = false;
        t->error = error;
        t->result = CURLE_OK;
        t->finished = true;
        watch_items_free(w);
}

/* Parses a queued line: 0 and the event, 1 for an event of an unknown type
 * (skipped, said), or a negative errno that ends the watch. */
static int watch_item_parse(koc_watch *w, const watch_item *i, koc_watch_event_type *type,
                            cJSON **object, koc_status *status) {
        int r = koc__watch_line_parse(i->line, i->len, type, object, status);
        if (r != -ENOMSG)
                return r;
        static koc__ratelimit rl = KOC__RATELIMIT_INIT(60 * KOC_USEC_PER_SEC, 5);
        cJSON *root = cJSON_ParseWithLength(i->line, i->len);
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "type"));
        koc__log_ratelimited(&rl, KOC_LOG_WARN, LOG_COMPONENT,
                             "watch GET %s: skipped an event of unknown type \"%.64s\"",
                             w->t.path, name ? name : "");
        cJSON_Delete(root);
        return 1;
}

/*
 * Bytes reached a transfer: its connection is alive.  on_io() notes that for
 * the socket it runs for, but curl also reads from within a timer-driven
 * curl_multi_socket_action() (it checks its sockets itself), and data read
 * there never makes the socket readable for sd-event: the health check would
 * then take a connection that just answered its probe for a silent one.  A
 * timer-driven read does not say which connection it came from, so every
 * connection that waits for input counts as heard from: a dead connection
 * cannot deliver, so at worst its detection waits for the next read-idle
 * period without timer-driven reads.
 */
static void on_rx(koc_client *c) {
        uint64_t now;
        if (c->action_fd != CURL_SOCKET_TIMEOUT)
                return; /* on_io() has noted it */
        now = koc_now_boottime_usec();
        for (struct koc_list *n = c->sockets.next; n != &c->sockets; n = n->next) {
                curl_socket_io *io = container_of(n, curl_socket_io, link);
                if (io->events & EPOLLIN) {
                        io->last_rx_usec = now;
                        io->probe_sent_usec = 0;
                }
        }
}

static size_t on_curl_write(char *p, size_t size, size_t nmemb, void *userdata) {
        transfer *t = userdata;
        size_t n = size * nmemb;

        on_rx(t->client);

        if (t->is_watch) {
                koc_watch *w = container_of(t, koc_watch, t);
                if (w->streaming) {
                        int r = koc__linebuf_feed(&w->lines, p, n, watch_on_line, w);
                        if (r < 0) {
                                t->error = r;
                                return 0; /* aborts the transfer */
                        }
                        return n;
                }
        }
        return buffer_append(t, p, n) < 0 ? 0 : n;
}

void koc__header_line_parse(const char *p, size_t n, uint64_t now_realtime_usec,
                            koc_header_line *ret) {
        *ret = (koc_header_line){.status = -1};
        if (n >= 12 && memcmp(p, "HTTP/", 5) == 0) {
                /* The three digits after the first space; anything else is
                 * no code at all (0), never part of one. */
                const char *sp = memchr(p, ' ', n);
                long code = 0;
                if (sp && (size_t)(sp - p) + 4 <= n)
                        for (int i = 1; i <= 3; i++) {
                                if (sp[i] < '0' || sp[i] > '9') {
                                        code = 0;
                                        break;
                                }
                                code = code * 10 + (sp[i] - '0');
                        }
                ret->status = code;
                ret->http2 = memcmp(p, "HTTP/2", 6) == 0;
                ret->http1 = memcmp(p, "HTTP/1", 6) == 0;
        } else if (n > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
                char v[128];
                size_t l = n - 12;
                if (l >= sizeof v)
                        l = sizeof v - 1;
                memcpy(v, p + 12, l);
                v[l] = 0;
                v[strcspn(v, "\r\n")] = 0;
                uint64_t usec;
                if (koc__parse_retry_after(v, now_realtime_usec, &usec) >= 0) {
                        ret->has_retry_after = true;
                        ret->retry_after_usec = usec;
                }
        }
}

static size_t on_curl_header(char *p, size_t size, size_t nmemb, void *userdata) {
        transfer *t = userdata;
        size_t n = size * nmemb;
        koc_header_line h;

        on_rx(t->client);

        koc__header_line_parse(p, n, koc_now_realtime_usec(), &h);
        if (h.status >= 0) {
                /* A new response (also after "100 Continue"): start over. */
                long code = h.status;
                t->status = code;
                t->client->server_http2 = h.http2;
                t->client->server_http1 = h.http1;
                t->data_len = 0;
                t->retry_after_usec = 0;
                if (t->is_watch) {
                        container_of(t, koc_watch, t)->streaming = code >= 200 && code < 300;
                        if (code >= 200) {
                                metrics_count(t, code);
                                t->counted = true;
                        }
                }
        } else if (h.has_retry_after) {
                t->retry_after_usec = h.retry_after_usec;
        }
        return n;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static curl_socket_io **socket_slot(koc_client *c, curl_socket_t fd) {
        if (fd < 0)
                return NULL;
        if ((size_t)fd >= c->n_by_fd) {
                size_t n = c->n_by_fd ? c->n_by_fd : 64;
                while (n <= (size_t)fd)
                        n *= 2;
                curl_socket_io **a = realloc(c->by_fd, n * sizeof *a);
                if (!a)
                        return NULL;
                memset(a + c->n_by_fd, 0, (n - c->n_by_fd) * sizeof *a);
                c->by_fd = a;
                c->n_by_fd = n;
        }
        return &c->by_fd[fd];
}

static void socket_io_free(koc_client *c, curl_socket_io *io) {
        if (!io)
                return;
        if (io->fd >= 0 && (size_t)io->fd < c->n_by_fd && c->by_fd[io->fd] == io)
                c->by_fd[io->fd] = NULL;
        sd_event_source_disable_unref(io->source);
        list_unlink(&io->link);
        free(io);
}

/* CURLMOPT_SOCKETFUNCTION.  Keeps its own fd -> source table instead of
 * curl_multi_assign() so that no curl_multi_* call is made from here. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userdata, void *socketp) {
        koc_client *c = userdata;
        curl_socket_io **slot = socket_slot(c, fd);
        uint32_t events = 0;

        if (!slot)
                return -1;
        if (what == CURL_POLL_REMOVE) {
                socket_io_free(c, *slot);
                return 0;
        }
        if (what == CURL_POLL_IN)
                events = EPOLLIN;
        else if (what == CURL_POLL_OUT)
                events = EPOLLOUT;
        else if (what == CURL_POLL_INOUT)
                events = EPOLLIN | EPOLLOUT;

        curl_socket_io *io = *slot;
        if (io && events && sd_event_source_set_io_events(io->source, events) < 0) {
                /* A stale entry (its socket was closed behind our back and
                 * the number reused): start over with a fresh source. */
                socket_io_free(c, io);
                io = NULL;
        }
        if (!io) {
                io = calloc(1, sizeof *io);
                if (!io)
                        return -1;
                io->client = c;
                io->fd = fd;
                io->last_rx_usec = koc_now_boottime_usec();
                list_init(&io->link);
                if (sd_event_add_io(c->event, &io->source, fd, events ? events : EPOLLIN, on_io,
                                    io) < 0) {
                        free(io);
                        return -1;
                }
                (void)sd_event_source_set_description(io->source, "koc-client-io");
                list_append(&c->sockets, &io->link);
                *slot = io;
        }
        if (sd_event_source_set_enabled(io->source, events ? SD_EVENT_ON : SD_EVENT_OFF) < 0)
                return -1;
        io->events = events;
        return 0;
}

/* CURLMOPT_TIMERFUNCTION: arm (or disarm) the one timer source. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userdata) {
        koc_client *c = userdata;

        if (timeout_ms < 0)
                return sd_event_source_set_enabled(c->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        /* 0 ms is "as soon as possible" (curl asks it for every new request):
         * a time already past, so the loop's next iteration runs it instead
         * of waiting for the timer's millisecond accuracy window. */
        uint64_t at = timeout_ms == 0 ? 1
                                      : koc_now_boottime_usec() +
                                                (uint64_t)timeout_ms * KOC_USEC_PER_MSEC;
        if (sd_event_source_set_time(c->timer, at) < 0 ||
            sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

/* --- driving curl from sd-event ------------------------------------------ */

static void collect_finished(koc_client *c) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(c->multi, &left))) {
                if (msg->msg != CURLMSG_DONE)
                        continue;
                CURL *easy = msg->easy_handle;
                CURLcode result = msg->data.result;
                char *priv = NULL;
                (void)curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
                transfer *t = (transfer *)priv;
                curl_multi_remove_handle(c->multi, easy);
                if (!t)
                        continue;
                t->attached = false;
                t->finished = true;
                t->result = result;
                if (t->is_watch) {
                        koc_watch *w = container_of(t, koc_watch, t);
                        /* A last line without its newline is still an event. */
                        if (w->streaming && result == CURLE_OK && t->error == 0) {
                                int r = koc__linebuf_finish(&w->lines, watch_on_line, w);
                                if (r < 0)
                                        t->error = r;
                        }
                }
                ready_add(t);
        }
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        curl_socket_io *io = userdata;
        koc_client *c = io->client; /* io may be freed inside socket_action */
        int action = 0, running;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                io->last_rx_usec = koc_now_boottime_usec();
                io->probe_sent_usec = 0;
        }
        if (revents & (EPOLLIN | EPOLLHUP))
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & EPOLLERR)
                action |= CURL_CSELECT_ERR;
        c->action_fd = fd;
        if (curl_multi_socket_action(c->multi, fd, action, &running) != CURLM_OK)
                koc_log_debug(LOG_COMPONENT, "curl_multi_socket_action failed fd=%d", fd);
        c->action_fd = CURL_SOCKET_TIMEOUT;
        collect_finished(c);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        koc_client *c = userdata;
        int running;

        if (curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running) != CURLM_OK)
                koc_log_debug(LOG_COMPONENT, "curl_multi_socket_action(timeout) failed");
        collect_finished(c);
        return 0;
}

/* --- answers ------------------------------------------------------------- */

static uint64_t elapsed_msec(const transfer *t) {
        return (koc_now_boottime_usec() - t->started_usec) / KOC_USEC_PER_MSEC;
}

/* Fills *resp from a finished transfer.  Strings point into t, msgbuf or the
 * parsed body, so they live as long as those. */
static void transfer_response(transfer *t, koc_response *resp, char *msgbuf, size_t size) {
        *resp = (koc_response){.status = t->status, .message = ""};

        if (t->error < 0) {
                resp->error = t->error;
                if (t->error_message)
                        snprintf(msgbuf, size, "%s", t->error_message);
                else if (t->error == -EMSGSIZE)
                        snprintf(msgbuf, size, "response body over %zu bytes", t->max_data);
                else
                        snprintf(msgbuf, size, "%s", strerror(-t->error));
                resp->message = msgbuf;
                return;
        }
        if (t->result != CURLE_OK && t->conn_dead) {
                char b[32];
                resp->error = -ETIMEDOUT;
                snprintf(msgbuf, size,
                         "%s: the connection went silent: nothing read within %s of a health "
                         "check; connection closed",
                         koc_cluster_config_server(t->client->cfg),
                         koc_format_duration(t->client->ping_timeout_usec, b, sizeof b));
                resp->message = msgbuf;
                return;
        }
        if (t->result != CURLE_OK) {
                /* The server's address first, so that a caller can log the
                 * message as it is: "cannot reach https://10.0.0.1:6443:
                 * Connection refused (...)". */
                const char *server = koc_cluster_config_server(t->client->cfg);
                const char *detail = t->errbuf[0] ? t->errbuf : curl_easy_strerror(t->result);
                resp->error = koc__curl_code_to_errno(t->result);
                bool unreachable = resp->error == -ECONNREFUSED || resp->error == -EHOSTUNREACH ||
                                   t->result == CURLE_COULDNT_RESOLVE_HOST;
                snprintf(msgbuf, size, "%s%s: %s (%s)", unreachable ? "cannot reach " : "",
                         server ? server : "the server", strerror(-resp->error), detail);
                resp->message = msgbuf;
                return;
        }

        long code = 0;
        (void)curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
        resp->status = code;
        cJSON *body = t->data_len > 0 ? cJSON_ParseWithLength(t->data, t->data_len) : NULL;
        if (code >= 200 && code < 300) {
                if (t->data_len > 0 && !body) {
                        resp->error = -EBADMSG;
                        resp->message = "response body is not JSON";
                }
                resp->body = body;
                return;
        }

        koc_status st;
        koc__status_parse(body, code, &st);
        resp->reason = st.reason;
        resp->retry_after_usec = t->retry_after_usec ? t->retry_after_usec : st.retry_after_usec;
        if (st.message)
                resp->message = st.message;
        else {
                snprintf(msgbuf, size, "HTTP %ld %s", code, koc_reason_to_string(st.reason));
                resp->message = msgbuf;
        }
        resp->body = body;
}

static int transfer_set_headers(transfer *t);

/* Sends a transfer whose first attempt was answered 401 once more, when the
 * token has changed since; false when it did not (the 401 stands). */
static bool transfer_resend(transfer *t) {
        koc_client *c = t->client;
        const char *h = koc__cluster_config_current_auth_header(c->cfg);
        if (!h || (t->auth && strcmp(h, t->auth) == 0)) {
                koc_log_debug(LOG_COMPONENT, "%s %s: 401 and the token did not change", t->method,
                              t->path);
                return false;
        }
        /* Adding the handle runs no transfer callbacks, so the answer of the
         * first attempt stays intact for the handler if this fails. */
        if (transfer_set_headers(t) < 0 || curl_multi_add_handle(c->multi, t->easy) != CURLM_OK)
                return false;
        t->attached = true;
        t->finished = false;
        t->status = 0;
        t->data_len = 0;
        t->retry_after_usec = 0;
        t->errbuf[0] = 0;
        if (t->is_watch)
                container_of(t, koc_watch, t)->streaming = false;
        koc_log_debug(LOG_COMPONENT, "%s %s: 401, retrying with the re-read token", t->method,
                      t->path);
        return true;
}

static int credential_refresh_start(koc_client *c);

/* After a 401: re-read the token and, when it changed, send the request once
 * more.  Returns true when the transfer was restarted or waits for the exec
 * plugin's new credential. */
static bool transfer_retry_auth(transfer *t) {
        koc_client *c = t->client;

        if (t->auth_retried || t->is_probe || t->result != CURLE_OK || t->error < 0 ||
            t->status != 401)
                return false;
        t->auth_retried = true;
        koc__cluster_config_token_invalidate(c->cfg);
        if (koc__cluster_config_exec_due(c->cfg)) {
                if (credential_refresh_start(c) < 0)
                        return false;
                t->waiting_credential = true;
                return true;
        }
        if (c->cfg->token_kind != KOC_TOKEN_EXEC)
                (void)koc__cluster_config_auth_header(c->cfg); /* re-reads a token file */
        return transfer_resend(t);
}

static void log_answer(const transfer *t, const koc_response *resp) {
        if (resp->error < 0) {
                /* A TLS failure is nearly always a configuration problem. */
                int level = resp->error == -EPROTO ? KOC_LOG_WARN : KOC_LOG_DEBUG;
                if (koc_log_enabled(level))
                        koc_log(level, LOG_COMPONENT, "%s %s failed: %s (%s) status=%ld", t->method,
                                t->path, strerror(-resp->error), resp->message, resp->status);
        } else
                koc_log_debug(LOG_COMPONENT, "%s %s -> %ld %s in %" PRIu64 " ms", t->method,
                              t->path, resp->status, koc_reason_to_string(resp->reason),
                              elapsed_msec(t));
}

static void health_suspect(koc_client *c, uint64_t since_usec);

static void request_dispatch(koc_request *r) {
        transfer *t = &r->t;
        koc_client *c = t->client;
        koc_response resp;
        char msg[640];

        if (!t->finished || transfer_retry_auth(t))
                return;
        transfer_response(t, &resp, msg, sizeof msg);
        log_answer(t, &resp);
        if (t->result == CURLE_OPERATION_TIMEDOUT && !t->is_probe && t->sent_usec)
                health_suspect(c, t->sent_usec);
        metrics_count(t, resp.error < 0 ? 0 : resp.status);
        metrics_observe(t);
        t->in_handler = true;
        if (r->handler)
                r->handler(c, &resp, r->userdata);
        cJSON_Delete(resp.body);
        t->in_handler = false;
        transfer_free(t);
}

static void watch_closed_event(koc_watch *w, koc_watch_event *ev, koc_response *resp, char *msgbuf,
                               size_t size) {
        transfer *t = &w->t;

        *ev = (koc_watch_event){.type = KOC_WATCH_CLOSED, .message = ""};
        *resp = (koc_response){0};
        if (w->streaming && t->error == 0 && t->result == CURLE_OK) {
                ev->status = t->status;
                return;
        }
        if (t->error_message) {
                ev->error = t->error;
                ev->message = t->error_message;
                return;
        }
        if (t->error == -EMSGSIZE && w->streaming) {
                ev->status = t->status;
                ev->error = -EMSGSIZE;
                snprintf(msgbuf, size, "watch event over %zu bytes", w->lines.max_line);
                ev->message = msgbuf;
                return;
        }
        if (t->error == -EBADMSG) {
                ev->status = t->status;
                ev->error = -EBADMSG;
                ev->message = "watch event is not a JSON watch event";
                return;
        }
        /* Not a stream: a transport failure or an error answer with a
         * Status body, read like any response. */
        transfer_response(t, resp, msgbuf, size);
        ev->status = resp->status;
        ev->reason = resp->reason;
        ev->error = resp->error;
        ev->message = resp->message;
}

static void watch_dispatch(koc_watch *w) {
        transfer *t = &w->t;
        koc_client *c = t->client;

        if (t->finished && !w->head && transfer_retry_auth(t))
                return;

        t->in_handler = true;
        while (w->head && !t->cancelled && !c->dead) {
                watch_item *i = w->head;
                w->head = i->next;
                if (!w->head)
                        w->tail = NULL;
                koc_watch_event_type type;
                cJSON *object = NULL;
                koc_status status;
                int r = watch_item_parse(w, i, &type, &object, &status);
                free(i);
                if (r < 0) {
                        watch_abort(w, r);
                        break;
                }
                if (r > 0)
                        continue;
                koc_watch_event ev = {
                        .type = type,
                        .object = object,
                        .message = "",
                };
                if (type == KOC_WATCH_ERROR) {
                        ev.status = status.code;
                        ev.reason = status.reason;
                        if (status.message)
                                ev.message = status.message;
                }
                w->handler(w, &ev, w->userdata);
                cJSON_Delete(ev.object); /* NULL when the handler kept it */
        }
        if (t->finished && !t->cancelled && !c->dead) {
                koc_watch_event ev;
                koc_response resp;
                char msg[640];
                watch_closed_event(w, &ev, &resp, msg, sizeof msg);
                if (!t->counted)
                        metrics_count(t, 0);
                if (ev.error < 0 || (ev.status && (ev.status < 200 || ev.status >= 300)))
                        koc_log_debug(LOG_COMPONENT, "watch %s closed: status=%ld error=%d %s",
                                      t->path, ev.status, ev.error, ev.message);
                else
                        koc_log_debug(LOG_COMPONENT, "watch %s ended after %" PRIu64 " ms", t->path,
                                      elapsed_msec(t));
                w->handler(w, &ev, w->userdata);
                cJSON_Delete(resp.body);
        }
        t->in_handler = false;
        if (t->cancelled || t->finished)
                transfer_free(t);
}

static int on_dispatch(sd_event_source *s, void *userdata) {
        koc_client *c = userdata;

        c->busy++;
        while (!c->dead && !list_empty(&c->ready)) {
                transfer *t = container_of(c->ready.next, transfer, ready_link);
                list_unlink(&t->ready_link);
                if (t->is_watch)
                        watch_dispatch(container_of(t, koc_watch, t));
                else
                        request_dispatch(container_of(t, koc_request, t));
        }
        c->busy--;
        if (c->dead && c->busy == 0)
                client_free(c);
        return 0;
}

/* --- starting transfers -------------------------------------------------- */

static int transfer_set_headers(transfer *t) {
        koc_client *c = t->client;
        struct curl_slist *h = NULL, *n;
        char line[512];

        free(t->auth);
        t->auth = NULL;
#define ADD(s)                                                                                     \
        do {                                                                                       \
                n = curl_slist_append(h, (s));                                                     \
                if (!n)                                                                            \
                        goto oom;                                                                  \
                h = n;                                                                             \
        } while (0)
        if (t->accept) {
                snprintf(line, sizeof line, "Accept: %s", t->accept);
                ADD(line);
        } else
                ADD("Accept: application/json");
        ADD("Expect:"); /* no 100-continue round trip for large bodies */
        if (t->content_type) {
                snprintf(line, sizeof line, "Content-Type: %s", t->content_type);
                ADD(line);
        }
        const char *auth = koc__cluster_config_current_auth_header(c->cfg);
        if (auth) {
                ADD(auth);
                t->auth = strdup(auth);
                if (!t->auth)
                        goto oom;
        }
        /* Impersonate-* from the kubeconfig user, on every request: without
         * them the process would act with the token's own rights. */
        for (const struct curl_slist *l = c->cfg->headers; l; l = l->next)
                ADD(l->data);
#undef ADD
        if (curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, h) != CURLE_OK)
                goto oom;
        curl_slist_free_all(t->headers);
        t->headers = h;
        return 0;
oom:
        curl_slist_free_all(h);
        return -ENOMEM;
}

static bool valid_method(const char *m) {
        if (!m || !m[0] || strlen(m) > 16)
                return false;
        for (; *m; m++)
                if (*m < 'A' || *m > 'Z')
                        return false;
        return true;
}

static bool is_hex(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int hex_value(char c) {
        return c >= '0' && c <= '9' ? c - '0' : ((c | 0x20) - 'a' + 10);
}

/* NULL when path is what a request's path may be; otherwise why not.  The
 * path is sent as it is (curl resolves dot segments and would end it at a
 * "?" or "#"), so what koc builds from names must already be exactly the
 * segments it means: absolute, no query or fragment, no whitespace or
 * control characters (they would change the request line), no "." or ".."
 * segment, no empty segment but a trailing one, "%" only as a %XX escape.
 * The server routes on the decoded path, so a segment is judged by what it
 * decodes to as well: an escaped '/' would split it, an escaped '.' would make
 * a dot segment that resolves to the parent. */
static const char *request_path_error(const char *path) {
        if (!path || path[0] != '/')
                return "must be absolute";
        for (const char *seg = path + 1;; seg++) {
                const char *end = seg;
                size_t decoded = 0, dots = 0;
                for (; *end && *end != '/'; end++, decoded++) {
                        unsigned char ch = (unsigned char)*end;
                        if (ch == '?')
                                return "may not contain '?' (the query goes in .query)";
                        if (ch == '#')
                                return "may not contain '#'";
                        if (ch <= ' ' || ch == 0x7f)
                                return "may not contain whitespace or control characters";
                        if (ch == '%') {
                                if (!(is_hex(end[1]) && is_hex(end[2])))
                                        return "may hold '%' only as a %XX escape";
                                ch = (unsigned char)(hex_value(end[1]) * 16 + hex_value(end[2]));
                                end += 2;
                                if (ch == '/' || ch == '\\')
                                        return "may not contain an escaped '/' or '\\' (%2F, %5C)";
                                if (ch < ' ' || ch == 0x7f)
                                        return "may not contain an escaped control character";
                        }
                        if (ch == '.')
                                dots++;
                }
                if (decoded > 0 && decoded == dots && dots <= 2)
                        return "may not have a '.' or '..' segment (escaped or not)";
                if (!*end)
                        return NULL;
                if (decoded == 0)
                        return "may not have an empty segment";
                seg = end;
        }
}

/* A query is already encoded (koc_query_string): no fragment, and no
 * whitespace or control characters. */
static const char *request_query_error(const char *query) {
        for (const char *s = query; s && *s; s++) {
                if (*s == '#')
                        return "may not contain '#'";
                if ((unsigned char)*s <= ' ' || *s == 0x7f)
                        return "may not contain whitespace or control characters";
        }
        return NULL;
}

/* Says why a request was refused before anything was sent (the caller gets
 * -EINVAL). */
static int refuse_request(const char *method, const char *field, const char *value,
                          const char *why) {
        static koc__ratelimit rl = KOC__RATELIMIT_INIT(10 * KOC_USEC_PER_SEC, 5);
        char q[200];
        koc__log_ratelimited(&rl, KOC_LOG_WARN, LOG_COMPONENT,
                             "%s request refused, nothing sent: %s \"%s\": %s",
                             method ? method : "", field, koc__name_quote(value, q, sizeof q), why);
        return -EINVAL;
}

/* Printable and short: a content type goes into a header line as it is. */
static bool valid_header_value(const char *s) {
        if (s && strlen(s) > 200)
                return false;
        for (; s && *s; s++)
                if ((unsigned char)*s < ' ' || *s == 0x7f)
                        return false;
        return true;
}

static transfer *transfer_new(koc_client *c, bool is_watch, size_t size) {
        transfer *t = calloc(1, size);
        if (!t)
                return NULL;
        t->client = c;
        t->is_watch = is_watch;
        list_init(&t->link);
        list_init(&t->ready_link);
        t->max_data = c->max_response;
        t->easy = curl_easy_init();
        if (!t->easy) {
                free(t);
                return NULL;
        }
        return t;
}

static void health_arm(koc_client *c);

/* Ends a transfer that was never answered with our own error; its handler
 * runs from the dispatcher as for any answer. */
static void transfer_fail(transfer *t, int error, const char *message) {
        t->error = error;
        free(t->error_message);
        t->error_message = message ? strdup(message) : NULL;
        t->result = CURLE_OK;
        t->status = 0;
        t->finished = true;
        ready_add(t);
}

/* Hands a transfer to curl once the credential it needs is at hand: while
 * the exec plugin runs it waits (the plugin's end resumes it), and when the
 * plugin has just failed with no credential left to send, it fails with the
 * plugin's error, which names the command. */
static int transfer_attach(transfer *t) {
        koc_client *c = t->client;
        const char *why = NULL;
        int r;

        if (!t->is_probe && koc__cluster_config_exec_due(c->cfg)) {
                r = credential_refresh_start(c);
                if (r < 0)
                        transfer_fail(t, r, c->cfg->exec_error);
                else
                        t->waiting_credential = true;
                return 0;
        }
        r = t->is_probe ? 0 : koc__cluster_config_exec_failure(c->cfg, &why);
        if (r < 0) {
                transfer_fail(t, r, why);
                return 0;
        }
        if (t->timeout_usec > 0) {
                /* The wait for a credential counts against the request's own
                 * timeout, so that the caller's bound holds. */
                uint64_t waited = koc_now_boottime_usec() - t->started_usec;
                if (waited >= t->timeout_usec) {
                        transfer_fail(t, -ETIMEDOUT, "timed out waiting for the exec credential");
                        return 0;
                }
                long ms = (long)((t->timeout_usec - waited) / KOC_USEC_PER_MSEC);
                if (curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L) != CURLE_OK)
                        return -EIO;
        }
        /* Re-reads a token file when due.  Never for an exec plugin: that
         * would run it synchronously, on the loop. */
        if (c->cfg->token_kind != KOC_TOKEN_EXEC)
                (void)koc__cluster_config_auth_header(c->cfg);
        r = transfer_set_headers(t);
        if (r < 0)
                return r;
        if (curl_multi_add_handle(c->multi, t->easy) != CURLM_OK)
                return -EIO;
        t->attached = true;
        t->sent_usec = koc_now_boottime_usec();
        health_arm(c);
        return 0;
}

static void on_credential(int r, char *token, uint64_t expiry, const koc_error *err,
                          void *userdata) {
        koc_client *c = userdata;

        koc__cluster_config_exec_result(c->cfg, r, token, expiry, err);
        c->exec_run = koc__exec_run_free(c->exec_run);
        if (r >= 0)
                koc_log_debug(LOG_COMPONENT, "exec credential refreshed");
        /* Nothing here runs a handler: failures go through the dispatcher. */
        for (struct koc_list *n = c->transfers.next; n != &c->transfers; n = n->next) {
                transfer *t = container_of(n, transfer, link);
                if (!t->waiting_credential)
                        continue;
                t->waiting_credential = false;
                if (t->finished) {
                        /* A 401's retry: send again if the token changed, else
                         * the 401 stands. */
                        if (!transfer_resend(t))
                                ready_add(t);
                        continue;
                }
                int k = transfer_attach(t);
                if (k < 0)
                        transfer_fail(t, k, NULL);
        }
}

/* Starts the exec plugin unless it runs already; one run serves every
 * transfer that waits. */
static int credential_refresh_start(koc_client *c) {
        if (c->exec_run)
                return 0;
        koc_error err = {0};
        int r = koc__exec_credential_start(c->event, c->cfg->exec, on_credential, c, &c->exec_run,
                                           &err);
        if (r < 0) {
                /* Could not even start: remembered like a failed run, so that
                 * waiting transfers fail with this message. */
                koc__cluster_config_exec_result(c->cfg, r, NULL, 0, &err);
                return r;
        }
        return 0;
}

/* --- the connection health check ---------------------------------------- */

/*
 * A black-holed connection (a dead peer, a NAT entry dropped, a partition)
 * delivers nothing and reports nothing: TCP keepalive only probes an idle
 * send side, and data already sent keeps being retransmitted for many
 * minutes.  Over HTTP/2 every watch and request of the process shares that
 * connection, so client-go sends a PING frame once nothing was read for a
 * while (ReadIdleTimeout, 30 s) and closes the connection when no frame
 * arrives within PingTimeout (15 s).  libcurl 7.88 sends HTTP/2 PINGs only
 * from curl_easy_upkeep(), which never reaches the connections of a multi
 * handle, and it does not wait for their ACK; so the probe here is a small
 * request instead (GET /livez, which any answer, even 401, proves alive),
 * multiplexed onto the same connection.  When nothing at all is read within
 * the ping timeout of the probe, the socket is shut down: curl then fails
 * every transfer on it, the client reports them as -ETIMEDOUT, watches
 * restart, and the next request opens a fresh connection.  shutdown() keeps
 * the descriptor, which stays curl's to close.
 */

static void on_probe_answer(koc_client *c, koc_response *r, void *userdata) {
        c->probe = NULL;
}

static int health_probe(koc_client *c);

static uint64_t health_tick_usec(const koc_client *c) {
        uint64_t t = (c->read_idle_usec < c->ping_timeout_usec ? c->read_idle_usec
                                                               : c->ping_timeout_usec) /
                     4;
        if (t < 10 * KOC_USEC_PER_MSEC)
                t = 10 * KOC_USEC_PER_MSEC;
        if (t > 5 * KOC_USEC_PER_SEC)
                t = 5 * KOC_USEC_PER_SEC;
        return t;
}

static void health_arm(koc_client *c) {
        int enabled = SD_EVENT_OFF;
        if (c->read_idle_usec == UINT64_MAX || !c->health_timer)
                return;
        if (sd_event_source_get_enabled(c->health_timer, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;
        if (sd_event_source_set_time_relative(c->health_timer, health_tick_usec(c)) < 0 ||
            sd_event_source_set_enabled(c->health_timer, SD_EVENT_ONESHOT) < 0)
                koc_log_warn(LOG_COMPONENT, "cannot arm the connection health check");
}

static void connection_dead(koc_client *c, curl_socket_io *io) {
        char a[32];
        koc_log_warn(LOG_COMPONENT,
                     "connection to %s: nothing read for %s after a health check; closing it",
                     koc_cluster_config_server(c->cfg),
                     koc_format_duration(koc_now_boottime_usec() - io->last_rx_usec, a, sizeof a));
        /* curl does not say which transfer runs on which connection while
         * they run (CURLINFO_ACTIVESOCKET names the last finished one), so
         * every transfer in flight is marked; only those that then fail are
         * reported as the health check's -ETIMEDOUT.  Over HTTP/2 they all
         * share this one connection anyway. */
        for (struct koc_list *n = c->transfers.next; n != &c->transfers; n = n->next) {
                transfer *t = container_of(n, transfer, link);
                if (t->attached)
                        t->conn_dead = true;
        }
        /* The socket now reads as closed; curl sees that on its next wakeup
         * (at once: the source reports it readable) and fails its transfers. */
        (void)shutdown(io->fd, SHUT_RDWR);
        io->probe_sent_usec = 0;
}

/* Bytes that arrived but were not read yet (a busy loop) are no sign of a
 * dead connection. */
static bool socket_readable(int fd) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

static int on_health_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        koc_client *c = userdata;
        uint64_t now = koc_now_boottime_usec();
        bool busy = false;

        for (struct koc_list *n = c->transfers.next; n != &c->transfers; n = n->next)
                if (container_of(n, transfer, link)->attached)
                        busy = true;
        /* Only an HTTP/2 connection can carry the probe; over HTTP/1.1 each
         * connection holds a single transfer and TCP keepalive watches it. */
        for (struct koc_list *n = c->sockets.next, *next;
             busy && c->server_http2 && n != &c->sockets; n = next) {
                next = n->next;
                curl_socket_io *io = container_of(n, curl_socket_io, link);
                /* curl polls a connection for input while transfers wait on
                 * it, and drops it from the table once it is idle in the
                 * connection cache. */
                if (!(io->events & EPOLLIN))
                        continue;
                if (io->probe_sent_usec && now - io->probe_sent_usec >= c->ping_timeout_usec &&
                    !socket_readable(io->fd))
                        connection_dead(c, io);
                else if (!io->probe_sent_usec && now - io->last_rx_usec >= c->read_idle_usec &&
                         (c->probe || health_probe(c) >= 0))
                        io->probe_sent_usec = now;
        }
        if (busy)
                health_arm(c);
        return 0;
}

/* A request timed out: when nothing was read on an HTTP/2 connection since
 * it was sent, the connection is suspect at once, and the probe's timeout
 * starts now instead of after the read-idle time.  A leader whose renewals
 * time out thus gets a fresh connection within about one ping timeout. */
static void health_suspect(koc_client *c, uint64_t since_usec) {
        uint64_t now = koc_now_boottime_usec();
        if (c->read_idle_usec == UINT64_MAX || !c->server_http2 || c->dead)
                return;
        for (struct koc_list *n = c->sockets.next; n != &c->sockets; n = n->next) {
                curl_socket_io *io = container_of(n, curl_socket_io, link);
                if (!(io->events & EPOLLIN) || io->probe_sent_usec || io->last_rx_usec > since_usec)
                        continue;
                if (!c->probe && health_probe(c) < 0)
                        return;
                io->probe_sent_usec = now;
        }
        health_arm(c);
}

KOC_EXPORT void koc_client_set_read_idle_timeout(koc_client *c, uint64_t usec) {
        if (!c)
                return;
        c->read_idle_usec = usec ? usec : DEFAULT_READ_IDLE_USEC;
        if (c->read_idle_usec == UINT64_MAX)
                (void)sd_event_source_set_enabled(c->health_timer, SD_EVENT_OFF);
        else if (!list_empty(&c->transfers)) {
                /* Re-armed with the new tick. */
                (void)sd_event_source_set_enabled(c->health_timer, SD_EVENT_OFF);
                health_arm(c);
        }
}

KOC_EXPORT void koc_client_set_ping_timeout(koc_client *c, uint64_t usec) {
        if (!c)
                return;
        c->ping_timeout_usec = usec ? usec : DEFAULT_PING_TIMEOUT_USEC;
        if (c->read_idle_usec != UINT64_MAX && !list_empty(&c->transfers)) {
                (void)sd_event_source_set_enabled(c->health_timer, SD_EVENT_OFF);
                health_arm(c);
        }
}

/* --- the rate limiter ---------------------------------------------------- */

static bool rate_waiting(koc_client *c) {
        for (struct koc_list *n = c->transfers.next; n != &c->transfers; n = n->next)
                if (container_of(n, transfer, link)->waiting_rate)
                        return true;
        return false;
}

static void rate_refill(koc_client *c, uint64_t now) {
        if (now > c->rate_last_usec)
                c->rate_tokens +=
                        c->rate_qps * (double)(now - c->rate_last_usec) / (double)KOC_USEC_PER_SEC;
        if (c->rate_tokens > (double)c->rate_burst)
                c->rate_tokens = (double)c->rate_burst;
        c->rate_last_usec = now;
}

/* Takes a token for a new transfer; false when it must wait (no token, or
 * others wait already: the order of starting is kept). */
static bool rate_take(koc_client *c) {
        if (c->rate_qps <= 0)
                return true;
        if (rate_waiting(c))
                return false;
        rate_refill(c, koc_now_boottime_usec());
        if (c->rate_tokens < 1)
                return false;
        c->rate_tokens -= 1;
        return true;
}

/* Arms the timer for the moment the next token is there. */
static void rate_arm(koc_client *c) {
        rate_refill(c, koc_now_boottime_usec());
        double missing = 1 - c->rate_tokens;
        uint64_t wait = missing > 0 ? (uint64_t)ceil(missing / c->rate_qps * KOC_USEC_PER_SEC) : 0;
        if (sd_event_source_set_time(c->rate_timer, c->rate_last_usec + wait) < 0 ||
            sd_event_source_set_enabled(c->rate_timer, SD_EVENT_ONESHOT) < 0)
                koc_log_warn(LOG_COMPONENT, "cannot arm the rate limiter's timer");
}

/* Releases waiting transfers in order while tokens last (all of them when
 * the limiter was turned off). */
static void rate_release(koc_client *c) {
        bool off = c->rate_qps <= 0;
        if (!off)
                rate_refill(c, koc_now_boottime_usec());
        for (struct koc_list *n = c->transfers.next; n != &c->transfers; n = n->next) {
                transfer *t = container_of(n, transfer, link);
                if (!t->waiting_rate)
                        continue;
                if (!off) {
                        if (c->rate_tokens < 1) {
                                rate_arm(c);
                                return;
                        }
                        c->rate_tokens -= 1;
                }
                t->waiting_rate = false;
                int r = transfer_attach(t);
                if (r < 0)
                        transfer_fail(t, r, NULL);
        }
}

static int on_rate_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        rate_release(userdata);
        return 0;
}

KOC_EXPORT int koc_client_set_rate_limit(koc_client *c, double qps, unsigned burst) {
        if (!c || !isfinite(qps) || qps < 0 || (qps > 0 && burst == 0))
                return -EINVAL;
        c->rate_qps = qps;
        c->rate_burst = burst;
        /* A new bucket starts full, as client-go's does. */
        c->rate_tokens = (double)burst;
        c->rate_last_usec = koc_now_boottime_usec();
        if (qps <= 0)
                (void)sd_event_source_set_enabled(c->rate_timer, SD_EVENT_OFF);
        rate_release(c);
        return 0;
}

/* Sets what every transfer needs and adds it to the multi handle. */
static int transfer_start(transfer *t, const char *method, const char *path, const char *query) {
        koc_client *c = t->client;
        CURL *e = t->easy;
        int r;

        t->method = strdup(method);
        t->path = strdup(path);
        if (!t->method || !t->path)
                return -ENOMEM;
        if (query && query[0] == '?')
                query++;
        const char *server = koc_cluster_config_server(c->cfg);
        if (!server)
                return -EINVAL;
        _koc_cleanup_free_ char *url = NULL;
        if (asprintf(&url, "%s%s%s%s", server, path, query && query[0] ? "?" : "",
                     query ? query : "") < 0)
                return -ENOMEM;

        if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_PRIVATE, t) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_SHARE, c->share) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http") != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_PIPEWAIT, c->server_http1 ? 0L : 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_HEADERDATA, t) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_WRITEDATA, t) != CURLE_OK)
                return -EIO;
        r = koc__cluster_config_apply_tls(c->cfg, e);
        if (r < 0)
                return r;

        t->started_usec = koc_now_boottime_usec();
        list_append(&c->transfers, &t->link);
        if (!t->is_probe && !rate_take(c)) {
                t->waiting_rate = true;
                rate_arm(c);
                r = 0;
        } else
                r = transfer_attach(t);
        if (r < 0)
                return r;
        koc_log_debug(LOG_COMPONENT, "%s %s%s%s", method, path, query && query[0] ? "?" : "",
                      query ? query : "");
        return 0;
}

static int request_set_method(koc_request *r, const char *method, uint64_t timeout_usec) {
        transfer *t = &r->t;
        CURL *e = t->easy;
        long ms = (long)(timeout_usec / KOC_USEC_PER_MSEC);

        if (ms < 1)
                ms = 1;
        /* disable-compression: no Accept-Encoding, as client-go. */
        const char *encoding = t->client->cfg->disable_compression ? NULL : "gzip";
        if (curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ms) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, encoding) != CURLE_OK)
                return -EIO;
        if (strcmp(method, "GET") == 0)
                return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK ? 0 : -EIO;
        if (strcmp(method, "HEAD") == 0)
                return curl_easy_setopt(e, CURLOPT_NOBODY, 1L) == CURLE_OK ? 0 : -EIO;
        if (curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK)
                return -EIO;
        bool wants_body = t->body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                          strcmp(method, "PATCH") == 0;
        if (!wants_body)
                return 0;
        const char *b = t->body ? t->body : "";
        if (curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(b)) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, b) != CURLE_OK)
                return -EIO;
        return 0;
}

int koc__client_submit(koc_client *c, const koc_request_spec *spec, char *body,
                       koc_response_handler_t handler, void (*on_drop)(void *userdata),
                       void *userdata, koc_request **ret) {
        int r;

        if (!c || !spec || !valid_method(spec->method) || !valid_header_value(spec->content_type) ||
            !valid_header_value(spec->accept)) {
                cJSON_free(body);
                return -EINVAL;
        }
        const char *why = request_path_error(spec->path);
        if (why) {
                cJSON_free(body);
                return refuse_request(spec->method, "path", spec->path, why);
        }
        why = request_query_error(spec->query);
        if (why) {
                cJSON_free(body);
                return refuse_request(spec->method, "query", spec->query, why);
        }
        if (c->dead) {
                cJSON_free(body);
                return -ECANCELED;
        }
        koc_request *req = (koc_request *)transfer_new(c, false, sizeof(koc_request));
        if (!req) {
                cJSON_free(body);
                return -ENOMEM;
        }
        transfer *t = &req->t;
        t->body = body;
        t->timeout_usec = spec->timeout_usec ? spec->timeout_usec : c->default_timeout_usec;
        if (spec->max_response_size > 0)
                t->max_data = spec->max_response_size;
        req->handler = handler;
        req->on_drop = on_drop;
        req->userdata = userdata;
        if (spec->accept && !(t->accept = strdup(spec->accept))) {
                transfer_free(t);
                return -ENOMEM;
        }
        if (t->body || strcmp(spec->method, "GET") != 0) {
                t->content_type =
                        strdup(spec->content_type ? spec->content_type : "application/json");
                if (!t->content_type) {
                        transfer_free(t);
                        return -ENOMEM;
                }
        }
        r = request_set_method(req, spec->method, t->timeout_usec);
        if (r >= 0)
                r = transfer_start(t, spec->method, spec->path, spec->query);
        if (r < 0) {
                transfer_free(t);
                return r;
        }
        if (ret)
                *ret = req;
        return 0;
}

KOC_EXPORT int koc_client_request_sized(koc_client *c, size_t spec_size,
                                        const koc_request_spec *user_spec,
                                        koc_response_handler_t handler, void *userdata,
                                        koc_request **ret_request) {
        koc_request_spec copy, *spec = &copy;
        char *body = NULL;

        if (!c || KOC__IMPORT(&copy, user_spec, spec_size, method) < 0)
                return -EINVAL;
        KOC__ASSERT_LOOP_THREAD(c->loop_tid);
        if (spec->body) {
                body = cJSON_PrintUnformatted(spec->body);
                if (!body)
                        return -ENOMEM;
        }
        return koc__client_submit(c, spec, body, handler, NULL, userdata, ret_request);
}

static int health_probe(koc_client *c) {
        koc_request *req = (koc_request *)transfer_new(c, false, sizeof(koc_request));
        if (!req)
                return -ENOMEM;
        transfer *t = &req->t;
        t->is_probe = true;
        t->timeout_usec = c->ping_timeout_usec;
        req->handler = on_probe_answer;
        int r = request_set_method(req, "GET", t->timeout_usec);
        if (r >= 0)
                r = transfer_start(t, "GET", "/livez", NULL);
        if (r < 0) {
                transfer_free(t);
                return r;
        }
        c->probe = req;
        c->probes_sent++;
        return 0;
}

KOC_EXPORT void koc_request_cancel(koc_request *r) {
        if (!r)
                return;
        KOC__ASSERT_LOOP_THREAD(r->t.client->loop_tid);
        if (r->t.in_handler) {
                /* Its own handler runs: the dispatcher frees it afterwards. */
                r->t.cancelled = true;
                return;
        }
        transfer_free(&r->t);
}

KOC_EXPORT cJSON *koc_response_steal_body(koc_response *r) {
        if (!r)
                return NULL;
        cJSON *b = r->body;
        r->body = NULL;
        return b;
}

KOC_EXPORT int koc_client_watch_sized(koc_client *c, size_t spec_size,
                                      const koc_watch_spec *user_spec, koc_watch_handler_t handler,
                                      void *userdata, koc_destroy_t destroy, koc_watch **ret) {
        koc_watch_spec copy, *spec = &copy;
        int r = 0;

        if (!c || KOC__IMPORT(&copy, user_spec, spec_size, path) < 0 || !handler ||
            !valid_header_value(spec->accept))
                return -EINVAL;
        const char *why = request_path_error(spec->path);
        if (why)
                return refuse_request("WATCH", "path", spec->path, why);
        KOC__ASSERT_LOOP_THREAD(c->loop_tid);
        if (c->dead)
                return -ECANCELED;
        koc_watch *w = (koc_watch *)transfer_new(c, true, sizeof(koc_watch));
        if (!w)
                return -ENOMEM;
        transfer *t = &w->t;
        w->handler = handler;
        w->userdata = userdata;
        koc__linebuf_init(&w->lines, spec->max_line);

        /* The one query encoder (core/query.c): a selector or a
         * resourceVersion stays a value whatever it holds. */
        _koc_cleanup_(koc_query_freep) koc_query *q = NULL;
        r = koc_query_new(&q);
        if (r >= 0)
                r = koc_query_set(q, "watch", "1");
        if (r >= 0 && spec->accept && !(t->accept = strdup(spec->accept)))
                r = -ENOMEM;
        if (r >= 0 && spec->send_initial_events)
                r = koc_query_set(q, "sendInitialEvents", "true");
        if (r >= 0 && spec->send_initial_events)
                r = koc_query_set(q, "resourceVersionMatch", "NotOlderThan");
        if (r >= 0 && spec->resource_version && spec->resource_version[0])
                r = koc_query_set(q, "resourceVersion", spec->resource_version);
        if (r >= 0 && spec->allow_bookmarks)
                r = koc_query_set(q, "allowWatchBookmarks", "true");
        if (r >= 0 && spec->timeout_seconds > 0)
                r = koc_query_set_timeout_seconds(q, spec->timeout_seconds);
        if (r >= 0 && spec->label_selector && spec->label_selector[0])
                r = koc_query_set(q, "labelSelector", spec->label_selector);
        if (r >= 0 && spec->field_selector && spec->field_selector[0])
                r = koc_query_set(q, "fieldSelector", spec->field_selector);
        const char *qs = r >= 0 ? koc_query_string(q) : NULL;
        if (r >= 0 && !qs)
                r = -ENOMEM;
        /* No total timeout and no low-speed abort: the server's timeoutSeconds
         * ends the stream, and the connection health check (or, over
         * HTTP/1.1, TCP keepalive) notices a dead peer. */
        long connect_ms = (long)(c->default_timeout_usec / KOC_USEC_PER_MSEC);
        if (r >= 0 && (curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, 0L) != CURLE_OK ||
                       curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS,
                                        connect_ms > 0 ? connect_ms : 1L) != CURLE_OK ||
                       curl_easy_setopt(t->easy, CURLOPT_HTTPGET, 1L) != CURLE_OK))
                r = -EIO;
        /* Over HTTP/2 the health check finds dead connections, and a new
         * connection being set up would make requests wait for it (PIPEWAIT,
         * without a timeout of their own in libcurl 7.88). */
        if (r >= 0 && spec->fresh_connection && !c->server_http2 &&
            curl_easy_setopt(t->easy, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK)
                r = -EIO;
        if (r >= 0)
                r = transfer_start(t, "GET", spec->path, qs);
        if (r < 0) {
                transfer_free(t);
                return r;
        }
        w->destroy = destroy;
        if (ret)
                *ret = w;
        return 0;
}

KOC_EXPORT void koc_watch_stop(koc_watch *w) {
        if (!w)
                return;
        KOC__ASSERT_LOOP_THREAD(w->t.client->loop_tid);
        if (w->t.in_handler) {
                /* Called from its own handler: the dispatcher removes it from
                 * curl and frees it once the handler has returned. */
                w->t.cancelled = true;
                return;
        }
        transfer_free(&w->t);
}

KOC_EXPORT cJSON *koc_watch_event_steal_object(koc_watch_event *e) {
        if (!e)
                return NULL;
        cJSON *o = e->object;
        e->object = NULL;
        return o;
}

/* --- the client ---------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init(void) {
        curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void client_free(koc_client *c) {
        c->exec_run = koc__exec_run_free(c->exec_run);
        while (!list_empty(&c->transfers))
                transfer_free(container_of(c->transfers.next, transfer, link));
        if (c->multi)
                curl_multi_cleanup(c->multi);
        if (c->share)
                curl_share_cleanup(c->share);
        while (!list_empty(&c->sockets))
                socket_io_free(c, container_of(c->sockets.next, curl_socket_io, link));
        free(c->by_fd);
        sd_event_source_disable_unref(c->timer);
        sd_event_source_disable_unref(c->dispatch);
        sd_event_source_disable_unref(c->rate_timer);
        sd_event_source_disable_unref(c->health_timer);
        koc_metrics_unref(c->metrics);
        free(c->metrics_host);
        koc__sync_done(c);
        koc_cluster_config_unref(c->cfg);
        sd_event_unref(c->event);
        free(c->user_agent);
        free(c);
}

/* The last reference is gone: nothing may be called back any more. */
static void client_shutdown(koc_client *c) {
        c->dead = true;
        c->exec_run = koc__exec_run_free(c->exec_run);
        koc__sync_shutdown(c);
        for (struct koc_list *n = c->transfers.next, *next; n != &c->transfers; n = next) {
                next = n->next;
                transfer *t = container_of(n, transfer, link);
                if (t->in_handler) {
                        t->cancelled = true;
                        continue;
                }
                transfer_drop(t);
        }
        if (c->busy == 0)
                client_free(c);
}

KOC_EXPORT int koc_client_new(sd_event *event, koc_cluster_config *cfg, koc_client **ret) {
        int r;

        if (!cfg || !ret)
                return -EINVAL;
        pthread_once(&curl_once, curl_init);
        if (curl_init_result != CURLE_OK)
                return -EIO;

        koc_client *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        atomic_init(&c->n_ref, 1);
        list_init(&c->sockets);
        c->action_fd = CURL_SOCKET_TIMEOUT;
        list_init(&c->transfers);
        list_init(&c->ready);
        c->default_timeout_usec = DEFAULT_TIMEOUT_USEC;
        c->read_idle_usec = DEFAULT_READ_IDLE_USEC;
        c->ping_timeout_usec = DEFAULT_PING_TIMEOUT_USEC;
        c->max_response = DEFAULT_MAX_RESPONSE;
        c->loop_thread = pthread_self();
        c->cfg = koc_cluster_config_ref(cfg);
        if (event)
                c->event = sd_event_ref(event);
        else if ((r = sd_event_default(&c->event)) < 0)
                goto fail;
        c->loop_tid = koc__loop_tid(c->event);
        c->user_agent = strdup(DEFAULT_USER_AGENT);
        c->multi = curl_multi_init();
        c->share = curl_share_init();
        if (!c->user_agent || !c->multi || !c->share) {
                r = -ENOMEM;
                goto fail;
        }
        /* One thread uses the share, so it needs no lock callbacks.  New
         * connections resume TLS sessions instead of full handshakes. */
        if (curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
                    CURLSHE_OK ||
            curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
                r = -EIO;
                goto fail;
        }
        if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, MAX_HOST_CONNECTIONS) !=
                    CURLM_OK) {
                r = -EIO;
                goto fail;
        }
        /* Both sources exist from the start, so that curl's callbacks only
         * ever arm them. */
        r = sd_event_add_time(c->event, &c->timer, CLOCK_BOOTTIME, 0, KOC_USEC_PER_MSEC, on_timer,
                              c);
        if (r < 0)
                goto fail;
        (void)sd_event_source_set_description(c->timer, "koc-client-timer");
        r = sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
        if (r < 0)
                goto fail;
        r = sd_event_add_time(c->event, &c->health_timer, CLOCK_BOOTTIME, 0, KOC_USEC_PER_MSEC,
                              on_health_tick, c);
        if (r < 0)
                goto fail;
        (void)sd_event_source_set_description(c->health_timer, "koc-client-health-check");
        r = sd_event_source_set_enabled(c->health_timer, SD_EVENT_OFF);
        if (r < 0)
                goto fail;
        r = sd_event_add_time(c->event, &c->rate_timer, CLOCK_BOOTTIME, 0, 0, on_rate_timer, c);
        if (r < 0)
                goto fail;
        (void)sd_event_source_set_description(c->rate_timer, "koc-client-rate-limit");
        r = sd_event_source_set_enabled(c->rate_timer, SD_EVENT_OFF);
        if (r < 0)
                goto fail;
        r = sd_event_add_defer(c->event, &c->dispatch, on_dispatch, c);
        if (r < 0)
                goto fail;
        (void)sd_event_source_set_description(c->dispatch, "koc-client-dispatch");
        r = sd_event_source_set_enabled(c->dispatch, SD_EVENT_OFF);
        if (r < 0)
                goto fail;
        r = koc__sync_init(c);
        if (r < 0)
                goto fail;
        *ret = c;
        return 0;
fail:
        client_free(c);
        return r;
}

KOC_EXPORT koc_client *koc_client_ref(koc_client *c) {
        if (c)
                atomic_fetch_add_explicit(&c->n_ref, 1, memory_order_relaxed);
        return c;
}

KOC_EXPORT koc_client *koc_client_unref(koc_client *c) {
        if (!c)
                return NULL;
        /* acq_rel: everything other threads did with the client happens
         * before the thread that drops the last reference frees it. */
        if (atomic_fetch_sub_explicit(&c->n_ref, 1, memory_order_acq_rel) == 1) {
                KOC__ASSERT_LOOP_THREAD(c->loop_tid);
                client_shutdown(c);
        }
        return NULL;
}

KOC_EXPORT sd_event *koc_client_get_event(koc_client *c) {
        return c ? c->event : NULL;
}

KOC_EXPORT koc_cluster_config *koc_client_get_config(koc_client *c) {
        return c ? c->cfg : NULL;
}

KOC_EXPORT void koc_client_set_default_timeout(koc_client *c, uint64_t usec) {
        if (!c)
                return;
        KOC__ASSERT_LOOP_THREAD(c->loop_tid);
        c->default_timeout_usec = usec ? usec : DEFAULT_TIMEOUT_USEC;
}

KOC_EXPORT void koc_client_set_max_response_size(koc_client *c, size_t bytes) {
        if (!c)
                return;
        KOC__ASSERT_LOOP_THREAD(c->loop_tid);
        c->max_response = bytes ? bytes : DEFAULT_MAX_RESPONSE;
}

KOC_EXPORT int koc_client_set_user_agent(koc_client *c, const char *ua) {
        if (!c)
                return -EINVAL;
        for (const char *p = ua; p && *p; p++)
                if ((unsigned char)*p < ' ' || *p == 0x7f)
                        return -EINVAL;
        char *s = strdup(ua ? ua : DEFAULT_USER_AGENT);
        if (!s)
                return -ENOMEM;
        free(c->user_agent);
        c->user_agent = s;
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/ratelimit.h"
#include "koc/log.h"
#include "koc/time.h"
#include "core/mhd-glue.h"

/* --- attaching a daemon to the loop ------------------------------------------- */

struct koc_mhd_loop {
        struct MHD_Daemon *daemon;
        sd_event_source *io;
        sd_event_source *timer;
        sd_event_source *defer;
        unsigned max_connections;
};

static void rearm(koc_mhd_loop *ml) {
        MHD_UNSIGNED_LONG_LONG ms = 0;
        int r;

        if (MHD_get_timeout(ml->daemon, &ms) != MHD_YES) {
                (void)sd_event_source_set_enabled(ml->timer, SD_EVENT_OFF);
                return;
        }
        if (ms == 0) {
                (void)sd_event_source_set_enabled(ml->timer, SD_EVENT_OFF);
                (void)sd_event_source_set_enabled(ml->defer, SD_EVENT_ONESHOT);
                return;
        }
        r = sd_event_source_set_time_relative(ml->timer, (uint64_t)ms * 1000);
        if (r >= 0)
                r = sd_event_source_set_enabled(ml->timer, SD_EVENT_ONESHOT);
        if (r < 0)
                koc_log_error("http", "cannot arm the HTTP timer: %s", strerror(-r));
}

static unsigned n_connections(koc_mhd_loop *ml) {
        const union MHD_DaemonInfo *info =
                MHD_get_daemon_info(ml->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        return info ? info->num_connections : 0;
}

static int run(koc_mhd_loop *ml) {
        unsigned before = ml->max_connections ? n_connections(ml) : 0;

        if (MHD_run(ml->daemon) != MHD_YES)
                koc_log_debug("http", "MHD_run failed");
        /* At the connection limit MHD takes the listening socket out of its
         * epoll set and puts it back only at the start of its next run, while
         * its timeout does not ask for that run: connections waiting in the
         * backlog would wait for the idle timeout.  So when a run has freed a
         * slot, run once more at once. */
        if (ml->max_connections && before >= ml->max_connections && n_connections(ml) < before)
                (void)MHD_run(ml->daemon);
        rearm(ml);
        return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        return run(userdata);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        return run(userdata);
}

static int on_defer(sd_event_source *s, void *userdata) {
        return run(userdata);
}

void koc__mhd_loop_kick(koc_mhd_loop *ml) {
        if (ml)
                (void)sd_event_source_set_enabled(ml->defer, SD_EVENT_ONESHOT);
}

koc_mhd_loop *koc__mhd_loop_free(koc_mhd_loop *ml) {
        if (!ml)
                return NULL;
        sd_event_source_disable_unref(ml->io);
        sd_event_source_disable_unref(ml->timer);
        sd_event_source_disable_unref(ml->defer);
        free(ml);
        return NULL;
}

int koc__mhd_loop_new(sd_event *event, struct MHD_Daemon *daemon, int64_t priority,
                      unsigned max_connections, const char *description, koc_mhd_loop **ret) {
        const union MHD_DaemonInfo *info;
        koc_mhd_loop *ml;
        char name[64];
        int r;

        if (!event || !daemon || !ret)
                return -EINVAL;
        info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info || info->epoll_fd < 0)
                return -EINVAL;
        ml = calloc(1, sizeof *ml);
        if (!ml)
                return -ENOMEM;
        ml->daemon = daemon;
        ml->max_connections = max_connections;
        r = sd_event_add_io(event, &ml->io, info->epoll_fd, EPOLLIN, on_io, ml);
        if (r >= 0)
                r = sd_event_add_time_relative(event, &ml->timer, CLOCK_BOOTTIME, 0, 1000, on_timer,
                                               ml);
        if (r >= 0)
                r = sd_event_add_defer(event, &ml->defer, on_defer, ml);
        if (r >= 0)
                r = sd_event_source_set_priority(ml->io, priority);
        if (r >= 0)
                r = sd_event_source_set_priority(ml->timer, priority);
        if (r >= 0)
                r = sd_event_source_set_priority(ml->defer, priority);
        if (r < 0) {
                koc__mhd_loop_free(ml);
                return r;
        }
        if (!description)
                description = "http";
        snprintf(name, sizeof name, "%s-io", description);
        (void)sd_event_source_set_description(ml->io, name);
        snprintf(name, sizeof name, "%s-timer", description);
        (void)sd_event_source_set_description(ml->timer, name);
        snprintf(name, sizeof name, "%s-defer", description);
        (void)sd_event_source_set_description(ml->defer, name);
        /* The daemon may already have work (a connection accepted meanwhile). */
        rearm(ml);
        *ret = ml;
        return 0;
}

/* --- bind, start and attach -------------------------------------------------------- */

/* Connections the listening socket may accept beyond max_connections: the
 * oldest waiting connections closed to make room leave MHD's count on its
 * next run only, and one run accepts up to 10 connections. */
#define CONNECTION_HEADROOM 16u
/* Deadline timers of connections closer than this fire together. */
#define DEADLINE_ACCURACY_USEC (50 * 1000)

/* What the guard knows of one connection (MHD's socket context). */
typedef struct conn {
        struct conn *prev, *next; /* every connection, oldest first */
        int fd;
        uint8_t addr[16];
        uint8_t addr_len;   /* 4 (IPv4, also v4-mapped IPv6), 16, or 0 */
        uint64_t since;     /* CLOCK_BOOTTIME: started waiting for a request */
        unsigned n_served;  /* requests answered on this connection */
        bool busy;          /* a whole request arrived; its answer is under way */
        bool closing;       /* shut down by the guard; MHD closes it next */
} conn;

struct koc_mhd_event {
        struct MHD_Daemon *daemon;
        koc_mhd_loop *loop;
        uint16_t port;
        const koc_mhd_limits *limits;
        MHD_AccessHandlerCallback handler;
        void *handler_cls;
        MHD_RequestCompletedCallback completed;
        void *completed_cls;
        conn *head, *tail;
        unsigned n_live; /* connections not closing */
        sd_event_source *deadline;
        uint64_t deadline_at; /* when the deadline timer is armed for, 0: off */
        void (*on_close)(void *userdata, enum koc_mhd_close why);
        void *on_close_userdata;
};

void koc__mhd_event_on_close(koc_mhd_event *m, void (*fn)(void *userdata, enum koc_mhd_close why),
                             void *userdata) {
        m->on_close = fn;
        m->on_close_userdata = userdata;
}

static void said_close(koc_mhd_event *m, enum koc_mhd_close why) {
        if (m->on_close)
                m->on_close(m->on_close_userdata, why);
}

static koc__ratelimit rl_deadline = KOC__RATELIMIT_INIT(10 * KOC_USEC_PER_SEC, 1);
static koc__ratelimit rl_per_address = KOC__RATELIMIT_INIT(10 * KOC_USEC_PER_SEC, 1);
static koc__ratelimit rl_full = KOC__RATELIMIT_INIT(10 * KOC_USEC_PER_SEC, 1);

static void addr_key(const struct sockaddr *sa, uint8_t key[16], uint8_t *ret_len) {
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        *ret_len = 0;
        if (!sa)
                return;
        if (sa->sa_family == AF_INET) {
                memcpy(key, &((const struct sockaddr_in *)sa)->sin_addr, 4);
                *ret_len = 4;
        } else if (sa->sa_family == AF_INET6) {
                const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
                if (memcmp(a, v4mapped, sizeof v4mapped) == 0) {
                        memcpy(key, a + 12, 4);
                        *ret_len = 4;
                } else {
                        memcpy(key, a, 16);
                        *ret_len = 16;
                }
        }
}

static const char *key_str(const uint8_t *key, uint8_t len, char *buf, size_t size) {
        if (!len || !inet_ntop(len == 4 ? AF_INET : AF_INET6, key, buf, size))
                snprintf(buf, size, "?");
        return buf;
}

static const char *addr_str(const conn *c, char *buf, size_t size) {
        return key_str(c->addr, c->addr_len, buf, size);
}

static bool same_addr(const conn *c, const uint8_t *key, uint8_t len) {
        return c->addr_len == len && memcmp(c->addr, key, len) == 0;
}

/* Closes the connection's socket for both directions: MHD sees the end of
 * the stream on its next run and closes the connection as it would after a
 * client's reset. */
static void conn_close(koc_mhd_event *m, conn *c) {
        assert(!c->closing);
        (void)shutdown(c->fd, SHUT_RDWR);
        c->closing = true;
        m->n_live--;
}

/* Bytes that arrived on the connection and wait to be read: a client that
 * sent its request at once and is about to be answered (a probe accepted
 * behind a flood of connections from its own address). */
static bool has_unread(const conn *c) {
        int n = 0;
        return c->fd >= 0 && ioctl(c->fd, FIONREAD, &n) == 0 && n > 0;
}

/* The connection from `key` (any address when NULL) that has waited longest
 * for its request, or NULL when every one is busy answering.  One whose bytes
 * wait unread on its socket is taken only when every other one is busy:
 * what a slow client sent has been read, so this spares a client whose whole
 * request is there while the loop works through a flood. */
static conn *oldest_waiting(koc_mhd_event *m, const uint8_t *key, uint8_t key_len) {
        conn *best = NULL, *best_unread = NULL;
        for (conn *c = m->head; c; c = c->next) {
                if (c->busy || c->closing || (key && !same_addr(c, key, key_len)))
                        continue;
                conn **slot = has_unread(c) ? &best_unread : &best;
                if (!*slot || c->since < (*slot)->since)
                        *slot = c;
        }
        return best ? best : best_unread;
}

static unsigned count_from(koc_mhd_event *m, const uint8_t *key, uint8_t key_len) {
        unsigned n = 0;
        for (conn *c = m->head; c; c = c->next)
                if (!c->closing && same_addr(c, key, key_len))
                        n++;
        return n;
}

static enum MHD_Result on_accept(void *cls, const struct sockaddr *sa, socklen_t len) {
        koc_mhd_event *m = cls;
        uint8_t key[16];
        uint8_t key_len;
        char a[INET6_ADDRSTRLEN];
        conn *victim;

        addr_key(sa, key, &key_len);
        if (m->limits->max_per_address &&
            count_from(m, key, key_len) >= m->limits->max_per_address) {
                victim = oldest_waiting(m, key, key_len);
                if (!victim) {
                        koc__log_ratelimited(&rl_per_address, KOC_LOG_WARN, "probes",
                                             "refused a connection: %u connections from %s, "
                                             "all busy answering (limit per address %u)",
                                             m->limits->max_per_address,
                                             key_str(key, key_len, a, sizeof a),
                                             m->limits->max_per_address);
                        said_close(m, KOC_MHD_CLOSE_REFUSED);
                        return MHD_NO;
                }
                koc__log_ratelimited(&rl_per_address, KOC_LOG_WARN, "probes",
                                     "%u connections from %s (limit per address): closed its "
                                     "oldest, waiting %.1fs for a request",
                                     m->limits->max_per_address, addr_str(victim, a, sizeof a),
                                     (double)(koc_now_boottime_usec() - victim->since) / 1e6);
                conn_close(m, victim);
                said_close(m, KOC_MHD_CLOSE_PER_ADDRESS);
        }
        if (m->n_live >= m->limits->max_connections) {
                victim = oldest_waiting(m, NULL, 0);
                if (!victim) {
                        koc__log_ratelimited(&rl_full, KOC_LOG_WARN, "probes",
                                             "refused a connection: all %u connections busy "
                                             "answering",
                                             m->limits->max_connections);
                        said_close(m, KOC_MHD_CLOSE_REFUSED);
                        return MHD_NO;
                }
                koc__log_ratelimited(&rl_full, KOC_LOG_WARN, "probes",
                                     "%u connections (the limit): closed the oldest, from %s, "
                                     "waiting %.1fs for a request",
                                     m->limits->max_connections, addr_str(victim, a, sizeof a),
                                     (double)(koc_now_boottime_usec() - victim->since) / 1e6);
                conn_close(m, victim);
                said_close(m, KOC_MHD_CLOSE_FULL);
        }
        return MHD_YES;
}

/* Arms the deadline timer for `at` unless it already fires earlier. */
static void deadline_arm(koc_mhd_event *m, uint64_t at) {
        if (m->deadline_at && m->deadline_at <= at)
                return;
        int r = sd_event_source_set_time(m->deadline, at);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->deadline, SD_EVENT_ONESHOT);
        if (r < 0) {
                koc_log_error("probes", "cannot arm the request deadline timer: %s",
                              strerror(-r));
                return;
        }
        m->deadline_at = at;
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        koc_mhd_event *m = userdata;
        uint64_t now = koc_now_boottime_usec(), timeout = m->limits->request_timeout_usec;
        uint64_t next = 0;
        char a[INET6_ADDRSTRLEN];

        m->deadline_at = 0;
        for (conn *c = m->head; c; c = c->next) {
                if (c->busy || c->closing)
                        continue;
                if (c->since + timeout > now) {
                        if (!next || c->since + timeout < next)
                                next = c->since + timeout;
                        continue;
                }
                /* A kept-alive connection that goes quiet after its answers
                 * is ordinary (Prometheus between scrapes). */
                if (c->n_served > 0)
                        koc_log_debug("probes",
                                      "closed an idle kept-alive connection from %s after %u "
                                      "requests",
                                      addr_str(c, a, sizeof a), c->n_served);
                else {
                        koc__log_ratelimited(&rl_deadline, KOC_LOG_WARN, "probes",
                                             "closed a connection from %s: no whole request "
                                             "within %.1fs (slow or idle client)",
                                             addr_str(c, a, sizeof a), (double)timeout / 1e6);
                        said_close(m, KOC_MHD_CLOSE_DEADLINE);
                }
                conn_close(m, c);
        }
        if (next)
                deadline_arm(m, next);
        return 0;
}

static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
        koc_mhd_event *m = cls;
        conn *c = *socket_context;

        if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
                if (!c)
                        return;
                if (!c->closing)
                        m->n_live--;
                if (c->prev)
                        c->prev->next = c->next;
                else
                        m->head = c->next;
                if (c->next)
                        c->next->prev = c->prev;
                else
                        m->tail = c->prev;
                free(c);
                *socket_context = NULL;
                return;
        }
        if (code != MHD_CONNECTION_NOTIFY_STARTED)
                return;
        const union MHD_ConnectionInfo *fd_info =
                MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr_info =
                MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        c = calloc(1, sizeof *c);
        if (!c || !fd_info) {
                /* Not tracked: MHD's own idle timeout still applies. */
                free(c);
                return;
        }
        c->fd = fd_info->connect_fd;
        addr_key(addr_info ? addr_info->client_addr : NULL, c->addr, &c->addr_len);
        c->since = koc_now_boottime_usec();
        c->prev = m->tail;
        if (m->tail)
                m->tail->next = c;
        else
                m->head = c;
        m->tail = c;
        m->n_live++;
        *socket_context = c;
        deadline_arm(m, c->since + m->limits->request_timeout_usec);
}

static conn *conn_of(struct MHD_Connection *connection) {
        const union MHD_ConnectionInfo *info =
                MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return info ? info->socket_context : NULL;
}

/* MHD calls the access handler once the request line and headers are in: the
 * request has arrived, its deadline no longer applies. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
        koc_mhd_event *m = cls;
        conn *c = conn_of(connection);
        if (c)
                c->busy = true;
        return m->handler(m->handler_cls, connection, url, method, version, upload_data,
                          upload_data_size, req_cls);
}

/* The answer is sent (or the request ended otherwise): the next request on a
 * kept-alive connection gets a deadline of its own. */
static void on_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
        koc_mhd_event *m = cls;
        if (m->completed)
                m->completed(m->completed_cls, connection, req_cls, toe);
        conn *c = conn_of(connection);
        if (!c || !c->busy)
                return;
        c->busy = false;
        c->n_served++;
        c->since = koc_now_boottime_usec();
        if (!c->closing)
                deadline_arm(m, c->since + m->limits->request_timeout_usec);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
        /* MHD reports client errors (bad requests, resets) here: useful when
         * debugging, noise otherwise. */
        if (!koc_log_enabled(KOC_LOG_DEBUG))
                return;
        char buf[512];
        vsnprintf(buf, sizeof(buf), fmt, ap);
        size_t n = strlen(buf);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                buf[--n] = 0;
        koc_log_debug("probes", "libmicrohttpd: %s", buf);
}

koc_mhd_event *koc__mhd_event_free(koc_mhd_event *m) {
        if (!m)
                return NULL;
        m->loop = koc__mhd_loop_free(m->loop);
        if (m->daemon)
                MHD_stop_daemon(m->daemon); /* closes the listening socket and every
                                             * connection, telling on_connection */
        assert(!m->head);
        sd_event_source_disable_unref(m->deadline);
        free(m);
        return NULL;
}

uint16_t koc__mhd_event_port(const koc_mhd_event *m) {
        return m->port;
}

struct MHD_Daemon *koc__mhd_event_daemon(const koc_mhd_event *m) {
        return m->daemon;
}

void koc__mhd_event_kick(koc_mhd_event *m) {
        koc__mhd_loop_kick(m->loop);
}

static int listen_socket(const struct sockaddr *addr, socklen_t addr_len, bool v6only,
                         uint16_t *ret_port) {
        int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        int one = 1, v6 = v6only ? 1 : 0;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            (addr->sa_family == AF_INET6 &&
             setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof(v6)) < 0) ||
            bind(fd, addr, addr_len) < 0 || listen(fd, 511) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        *ret_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
        return fd;
}

int koc__mhd_event_start(sd_event *event, const struct sockaddr *addr, socklen_t addr_len,
                         bool v6only, const koc_mhd_limits *limits, int64_t priority,
                         MHD_AccessHandlerCallback handler, void *cls, koc_mhd_event **ret) {
        return koc__mhd_event_start_tls(event, addr, addr_len, v6only, limits, NULL, priority,
                                        handler, cls, ret);
}

int koc__mhd_event_start_tls(sd_event *event, const struct sockaddr *addr, socklen_t addr_len,
                             bool v6only, const koc_mhd_limits *limits, const koc_mhd_tls *tls,
                             int64_t priority, MHD_AccessHandlerCallback handler, void *cls,
                             koc_mhd_event **ret) {
        koc_mhd_event *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->limits = limits;
        if (tls) {
                m->completed = tls->completed;
                m->completed_cls = tls->completed_cls;
        }
        m->handler = handler;
        m->handler_cls = cls;
        int r = sd_event_add_time(event, &m->deadline, CLOCK_BOOTTIME, 0,
                                  DEADLINE_ACCURACY_USEC, on_deadline, m);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->deadline, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_source_set_priority(m->deadline, priority);
        if (r < 0) {
                koc__mhd_event_free(m);
                return r;
        }
        (void)sd_event_source_set_description(m->deadline, "probes-request-deadline");

        int fd = listen_socket(addr, addr_len, v6only, &m->port);
        if (fd < 0) {
                koc__mhd_event_free(m);
                return fd;
        }

        /* MHD's own limit sits above ours (on_accept keeps the live
         * connections at max_connections), so that it never stops accepting
         * while on_accept can still make room. */
        unsigned hard_limit = limits->max_connections + CONNECTION_HEADROOM;
        unsigned flags = MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_ERROR_LOG;
        if (addr->sa_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        if (tls && tls->suspend_resume)
                flags |= MHD_ALLOW_SUSPEND_RESUME;
        if (tls && tls->cert_callback) {
                flags |= MHD_USE_TLS;
                m->daemon = MHD_start_daemon(
                        flags, 0, on_accept, m, on_request, m, MHD_OPTION_EXTERNAL_LOGGER,
                        mhd_logger, NULL, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                        MHD_OPTION_CONNECTION_LIMIT, hard_limit, MHD_OPTION_CONNECTION_TIMEOUT,
                        limits->idle_timeout_sec, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                        limits->max_request_bytes, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
                        m, MHD_OPTION_NOTIFY_COMPLETED, on_completed, m,
                        MHD_OPTION_HTTPS_CERT_CALLBACK, tls->cert_callback,
                        MHD_OPTION_HTTPS_PRIORITIES, tls->priorities, MHD_OPTION_END);
        } else
                m->daemon = MHD_start_daemon(
                        flags, 0, on_accept, m, on_request, m, MHD_OPTION_EXTERNAL_LOGGER,
                        mhd_logger, NULL, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                        MHD_OPTION_CONNECTION_LIMIT, hard_limit, MHD_OPTION_CONNECTION_TIMEOUT,
                        limits->idle_timeout_sec, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                        limits->max_request_bytes, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
                        m, MHD_OPTION_NOTIFY_COMPLETED, on_completed, m, MHD_OPTION_END);
        if (!m->daemon) {
                close(fd);
                koc__mhd_event_free(m);
                return -EIO;
        }

        r = koc__mhd_loop_new(event, m->daemon, priority, hard_limit, "probes-http", &m->loop);
        if (r < 0) {
                koc__mhd_event_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

static int parse_port(const char *s, struct sockaddr_storage *ss) {
        if (!*s || strlen(s) > 5 || strspn(s, "0123456789") != strlen(s))
                return -EINVAL;
        unsigned long v = strtoul(s, NULL, 10);
        if (v > 65535)
                return -EINVAL;
        if (ss->ss_family == AF_INET6)
                ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)v);
        else
                ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)v);
        return 0;
}

int koc__parse_bind_address(const char *s, struct sockaddr_storage *ret_addr, socklen_t *ret_len,
                            bool *ret_any) {
        struct sockaddr_storage ss = {0};
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        char host[INET6_ADDRSTRLEN + 1];
        const char *port;
        bool any = false;

        if (!s || !*s)
                return -EINVAL;
        if (s[0] == '[') {
                const char *end = strchr(s, ']');
                if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s + 1, end - s - 1);
                host[end - s - 1] = 0;
                ss.ss_family = AF_INET6;
                if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
                        return -EINVAL;
                port = end + 2;
        } else {
                const char *colon = strrchr(s, ':');
                if (!colon || (size_t)(colon - s) >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s, colon - s);
                host[colon - s] = 0;
                port = colon + 1;
                if (!*host) {
                        /* ":PORT": every address, v6 and v4 on one socket. */
                        ss.ss_family = AF_INET6;
                        sin6->sin6_addr = in6addr_any;
                        any = true;
                } else {
                        ss.ss_family = AF_INET;
                        if (strcmp(host, "localhost") == 0)
                                sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                        else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
                                return -EINVAL;
                }
        }
        if (parse_port(port, &ss) < 0)
                return -EINVAL;
        *ret_addr = ss;
        *ret_len =
                ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        *ret_any = any;
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "koc/log.h"
#include "mhd-glue.h"

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

struct koc_mhd_event {
        struct MHD_Daemon *daemon;
        koc_mhd_loop *loop;
        uint16_t port;
};

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
                MHD_stop_daemon(m->daemon); /* closes the listening socket too */
        free(m);
        return NULL;
}

uint16_t koc__mhd_event_port(const koc_mhd_event *m) {
        return m->port;
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
        koc_mhd_event *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;

        int fd = listen_socket(addr, addr_len, v6only, &m->port);
        if (fd < 0) {
                free(m);
                return fd;
        }

        unsigned flags = MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_ERROR_LOG;
        if (addr->sa_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        m->daemon = MHD_start_daemon(
                flags, 0, NULL, NULL, handler, cls, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
                MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
                limits->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, limits->idle_timeout_sec,
                MHD_OPTION_CONNECTION_MEMORY_LIMIT, limits->max_request_bytes, MHD_OPTION_END);
        if (!m->daemon) {
                close(fd);
                free(m);
                return -EIO;
        }

        int r = koc__mhd_loop_new(event, m->daemon, priority, limits->max_connections,
                                  "probes-http", &m->loop);
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

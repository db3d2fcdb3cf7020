/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libmicrohttpd driven by sd-event.
 *
 * The daemon runs in MHD's external epoll mode (MHD_USE_EPOLL without an
 * internal thread): MHD keeps its own epoll set of the listening socket and
 * the connections, and that one epoll fd becomes readable whenever any of them
 * is ready, so the loop watches it with a single I/O source.  MHD_get_timeout()
 * says, in milliseconds from now, when MHD must run even without I/O (idle
 * connections to close, data already buffered); after every MHD_run() that
 * value re-arms a one-shot timer.
 *
 * The listening socket is created here rather than by MHD so that bind errors
 * come back as a real errno and IPV6_V6ONLY is set explicitly (":PORT" means
 * IPv6 and IPv4 on one socket).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "koc/log.h"
#include "mhd-event.h"

struct koc_mhd_event {
        struct MHD_Daemon *daemon;
        sd_event_source *io;
        sd_event_source *timer;
        unsigned max_connections;
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

static int arm_timer(koc_mhd_event *m) {
        MHD_UNSIGNED_LONG_LONG ms = 0;

        if (MHD_get_timeout(m->daemon, &ms) != MHD_YES)
                return sd_event_source_set_enabled(m->timer, SD_EVENT_OFF);
        /* ms is relative to now; 0 means "run again at once". */
        int r = sd_event_source_set_time_relative(m->timer, (uint64_t)ms * 1000);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(m->timer, SD_EVENT_ONESHOT);
}

static unsigned n_connections(koc_mhd_event *m) {
        const union MHD_DaemonInfo *info =
                MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        return info ? info->num_connections : 0;
}

static int run_daemon(koc_mhd_event *m) {
        unsigned before = n_connections(m);
        if (MHD_run(m->daemon) != MHD_YES)
                koc_log_warn("probes", "MHD_run failed");
        /* At the connection limit MHD takes the listening socket out of its
         * epoll set, and puts it back only at the start of its next run, while
         * its timeout does not ask for that run: connections waiting in the
         * backlog would wait for the idle timeout.  So when a run has freed a
         * slot, run once more at once. */
        if (before >= m->max_connections && n_connections(m) < before)
                (void)MHD_run(m->daemon);
        int r = arm_timer(m);
        if (r < 0)
                koc_log_error("probes", "cannot arm the HTTP timer: %s", strerror(-r));
        return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        return run_daemon(userdata);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        return run_daemon(userdata);
}

koc_mhd_event *koc_mhd_event_free(koc_mhd_event *m) {
        if (!m)
                return NULL;
        sd_event_source_disable_unref(m->io);
        sd_event_source_disable_unref(m->timer);
        if (m->daemon)
                MHD_stop_daemon(m->daemon); /* closes the listening socket too */
        free(m);
        return NULL;
}

uint16_t koc_mhd_event_port(const koc_mhd_event *m) {
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

int koc_mhd_event_start(sd_event *event, const struct sockaddr *addr, socklen_t addr_len,
                        bool v6only, const koc_mhd_limits *limits, int64_t priority,
                        MHD_AccessHandlerCallback handler, void *cls, koc_mhd_event **ret) {
        koc_mhd_event *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;

        m->max_connections = limits->max_connections;
        int fd = listen_socket(addr, addr_len, v6only, &m->port);
        if (fd < 0) {
                free(m);
                return fd;
        }

        unsigned flags = MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_ERROR_LOG;
        if (addr->sa_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        m->daemon = MHD_start_daemon(
                flags, 0, NULL, NULL, handler, cls,
                MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
                MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                MHD_OPTION_CONNECTION_LIMIT, limits->max_connections,
                MHD_OPTION_CONNECTION_TIMEOUT, limits->idle_timeout_sec,
                MHD_OPTION_CONNECTION_MEMORY_LIMIT, limits->max_request_bytes,
                MHD_OPTION_END);
        if (!m->daemon) {
                close(fd);
                free(m);
                return -EIO;
        }

        const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->daemon,
                                                                MHD_DAEMON_INFO_EPOLL_FD);
        int r = info ? 0 : -EIO;
        if (r == 0)
                r = sd_event_add_io(event, &m->io, info->epoll_fd, EPOLLIN, on_io, m);
        if (r >= 0)
                r = sd_event_add_time_relative(event, &m->timer, CLOCK_BOOTTIME, 0, 1000,
                                               on_timer, m);
        if (r >= 0)
                r = sd_event_source_set_priority(m->io, priority);
        if (r >= 0)
                r = sd_event_source_set_priority(m->timer, priority);
        if (r >= 0) {
                (void)sd_event_source_set_description(m->io, "probes-http-io");
                (void)sd_event_source_set_description(m->timer, "probes-http-timer");
                r = arm_timer(m);
        }
        if (r < 0) {
                koc_mhd_event_free(m);
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

int koc_parse_bind_address(const char *s, struct sockaddr_storage *ret_addr,
                           socklen_t *ret_len, bool *ret_any) {
        struct sockaddr_storage ss = { 0 };
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
        *ret_len = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                            : sizeof(struct sockaddr_in);
        *ret_any = any;
        return 0;
}

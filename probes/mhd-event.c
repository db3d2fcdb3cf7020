/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libmicrohttpd driven by sd-event.
 *
 * The daemon runs in MHD's external epoll mode, attached to the loop by
 * core/mhd-loop.c (shared with koc-apiserver).
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

#include "core/mhd-loop.h"
#include "koc/log.h"
#include "mhd-event.h"

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

int koc__parse_bind_address(const char *s, struct sockaddr_storage *ret_addr,
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

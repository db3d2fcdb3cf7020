/* SPDX-License-Identifier: Apache-2.0 */
/* libmicrohttpd on an sd-event loop: one daemon in external epoll mode, its
 * epoll fd watched by an sd-event I/O source and its timeout turned into an
 * sd-event timer.  Internal to the probes module. */
#pragma once

#include <microhttpd.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

typedef struct koc_mhd_event koc_mhd_event;

typedef struct koc_mhd_limits {
        unsigned max_connections;
        unsigned idle_timeout_sec;
        size_t max_request_bytes;
} koc_mhd_limits;

/* Binds and listens on addr (v6only applies to AF_INET6 addresses), starts an
 * MHD daemon on that socket calling handler(cls, ...) for each request, and
 * attaches it to event at `priority`.  -errno from socket/bind/listen. */
int koc__mhd_event_start(sd_event *event, const struct sockaddr *addr, socklen_t addr_len,
                        bool v6only, const koc_mhd_limits *limits, int64_t priority,
                        MHD_AccessHandlerCallback handler, void *cls, koc_mhd_event **ret);
/* Stops the daemon (closing every connection) and frees it; NULL is a no-op. */
koc_mhd_event *koc__mhd_event_free(koc_mhd_event *m);
uint16_t koc__mhd_event_port(const koc_mhd_event *m);

/* Parses a bind address (":8081", "0.0.0.0:8081", "[::1]:0", "localhost:0").
 * *ret_any is true for ":PORT", which means every IPv6 and IPv4 address.
 * -EINVAL when malformed. */
int koc__parse_bind_address(const char *s, struct sockaddr_storage *ret_addr,
                           socklen_t *ret_len, bool *ret_any);

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mhd-glue: the one libmicrohttpd-on-sd-event glue of koc.  It lives in
 * core, beside the other loop helpers, so that every server of the tree uses
 * the same one: the probes server, koc-apiserver and any later HTTPS server
 * (webhooks).  A program linked with libkoc.a that serves nothing pulls none
 * of it (the test link-without-mhd).  Two layers: koc__mhd_loop_* attaches a daemon the caller started (koc-apiserver
 * starts its own, with TLS), and koc__mhd_event_* binds a socket, starts a
 * plain-HTTP daemon on it and attaches it (the probes server).
 *
 * The daemon runs in MHD's external epoll mode (MHD_USE_EPOLL, no internal
 * thread): MHD keeps its own epoll set of the listening socket and the
 * connections, and that one epoll fd becomes readable whenever any of them is
 * ready, so the loop watches it with a single I/O source.  MHD_get_timeout()
 * says, in milliseconds from now, when MHD must run even without I/O (idle
 * connections to close); after every MHD_run() that value re-arms a one-shot
 * CLOCK_BOOTTIME timer, and 0 ("work is pending now": buffered data, a resumed
 * connection) schedules a run on the next loop iteration.
 *
 *   struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_EPOLL | ..., MHD_OPTION_END);
 *   koc_mhd_loop *ml;
 *   r = koc__mhd_loop_new(event, d, SD_EVENT_PRIORITY_NORMAL, 0, "http", &ml);
 *   ...
 *   ml = koc__mhd_loop_free(ml);      (does not stop the daemon)
 *   MHD_stop_daemon(d);
 */
#pragma once

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

typedef struct koc_mhd_loop koc_mhd_loop;

/* Attaches daemon to event with sources of the given priority.
 * max_connections is the daemon's MHD_OPTION_CONNECTION_LIMIT (0: none set);
 * description names the sources (for sd-event's debugging).  -EINVAL when the
 * daemon has no epoll fd (not started with MHD_USE_EPOLL). */
int koc__mhd_loop_new(sd_event *event, struct MHD_Daemon *daemon, int64_t priority,
                      unsigned max_connections, const char *description, koc_mhd_loop **ret);
/* Detaches from the loop; the daemon stays running.  NULL is a no-op. */
koc_mhd_loop *koc__mhd_loop_free(koc_mhd_loop *ml);
/* Runs MHD on the next loop iteration, e.g. after MHD_resume_connection(). */
void koc__mhd_loop_kick(koc_mhd_loop *ml);

/* --- bind, start and attach (the probes server) ------------------------------- */

typedef struct koc_mhd_event koc_mhd_event;

/* The first three are fixed when a listener starts; max_per_address and
 * request_timeout_usec are read at each connection and deadline, so changes
 * apply to running listeners (the struct must outlive them). */
typedef struct koc_mhd_limits {
        unsigned max_connections;
        unsigned idle_timeout_sec;
        size_t max_request_bytes;
        unsigned max_per_address;
        uint64_t request_timeout_usec;
} koc_mhd_limits;

/* Binds and listens on addr (v6only applies to AF_INET6 addresses), starts an
 * MHD daemon on that socket calling handler(cls, ...) for each request, and
 * attaches it to event at `priority`.  -errno from socket/bind/listen.
 *
 * Slow and idle clients cannot take the server's slots (the kubelet must
 * always get its answer): every connection must deliver a whole request
 * within limits->request_timeout_usec of its start or of the end of its
 * previous answer (a fixed deadline, not reset by each byte as MHD's own
 * timeout is); at max_per_address connections from one address, or at
 * max_connections in all, a new connection closes the oldest one that is
 * still waiting for its request (from that address, or from any), sparing
 * one whose bytes wait unread on its socket, so that a new client that sends
 * its request at once, as the kubelet does, is served.
 * Only when every connection is busy answering is a newcomer refused.
 * limits is borrowed and must outlive the listener. */
int koc__mhd_event_start(sd_event *event, const struct sockaddr *addr, socklen_t addr_len,
                         bool v6only, const koc_mhd_limits *limits, int64_t priority,
                         MHD_AccessHandlerCallback handler, void *cls, koc_mhd_event **ret);
/* The same with TLS and/or suspend and resume (tls may be NULL: plain
 * HTTP).  cert_callback is a gnutls_certificate_retrieve_function2 (not
 * named here, so that this header needs no GnuTLS header): MHD calls it in
 * every handshake, which lets a server change its certificate without a
 * restart.  -EIO when MHD refuses the options (e.g. a bad priority string). */
typedef struct koc_mhd_tls {
        void *cert_callback;    /* NULL: plain HTTP */
        const char *priorities; /* GnuTLS priority string */
        bool suspend_resume;    /* MHD_ALLOW_SUSPEND_RESUME */
        /* Called (before the guard's own bookkeeping) when a request ends,
         * as MHD_OPTION_NOTIFY_COMPLETED would; may be NULL. */
        MHD_RequestCompletedCallback completed;
        void *completed_cls;
} koc_mhd_tls;
int koc__mhd_event_start_tls(sd_event *event, const struct sockaddr *addr, socklen_t addr_len,
                             bool v6only, const koc_mhd_limits *limits, const koc_mhd_tls *tls,
                             int64_t priority, MHD_AccessHandlerCallback handler, void *cls,
                             koc_mhd_event **ret);
struct MHD_Daemon *koc__mhd_event_daemon(const koc_mhd_event *m);
/* Runs MHD on the next loop iteration (after MHD_resume_connection()). */
void koc__mhd_event_kick(koc_mhd_event *m);
/* Why the guard closed or refused a connection (for a metric). */
enum koc_mhd_close {
        KOC_MHD_CLOSE_DEADLINE,    /* no whole request within the request timeout */
        KOC_MHD_CLOSE_PER_ADDRESS, /* made room at max_per_address */
        KOC_MHD_CLOSE_FULL,        /* made room at max_connections */
        KOC_MHD_CLOSE_REFUSED,     /* a newcomer refused: every connection busy */
        _KOC_MHD_CLOSE_MAX,
};
/* Calls fn(userdata, why) on the loop thread for each such close. */
void koc__mhd_event_on_close(koc_mhd_event *m, void (*fn)(void *userdata, enum koc_mhd_close why),
                             void *userdata);
/* Stops the daemon (closing every connection) and frees it; NULL is a no-op. */
koc_mhd_event *koc__mhd_event_free(koc_mhd_event *m);
uint16_t koc__mhd_event_port(const koc_mhd_event *m);

/* Parses a bind address (":8081", "0.0.0.0:8081", "[::1]:0", "localhost:0").
 * *ret_any is true for ":PORT", which means every IPv6 and IPv4 address.
 * -EINVAL when malformed. */
int koc__parse_bind_address(const char *s, struct sockaddr_storage *ret_addr, socklen_t *ret_len,
                            bool *ret_any);

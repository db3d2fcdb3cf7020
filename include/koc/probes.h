/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc/probes.h: the health, readiness and metrics HTTP server.
 *
 * A libmicrohttpd daemon driven by the caller's sd-event loop (external epoll
 * mode: MHD's epoll fd is an sd-event I/O source and MHD_get_timeout() arms an
 * sd-event timer), so no thread is added.  It serves
 *
 *   /healthz, /livez   liveness: the built-in "ping" check, then every check
 *                      added with koc_probes_add_health_check()
 *   /readyz            readiness: the "shutdown" switch (koc_probes_set_ready)
 *                      first, then every check added with
 *                      koc_probes_add_ready_check()
 *   /healthz/NAME, /livez/NAME, /readyz/NAME   one check alone
 *   /metrics           the koc_metrics registry, Prometheus text format 0.0.4
 *
 * The check endpoints behave like kube-apiserver's: "?exclude=NAME"
 * (repeatable) skips a check, "?verbose" lists every check:
 *
 *   [+]shutdown ok
 *   [-]leader failed: not the leader
 *   readyz check failed
 *
 * Success answers 200 with the body "ok" (or the list and "readyz check
 * passed" when verbose).  Failure answers 503 and always lists the checks, as
 * kube-apiserver does.  A single-check path answers 200 "ok" or 503
 * "internal server error: WHY", and 404 for an unknown check.  Only GET and
 * HEAD are served (405 with "Allow: GET, HEAD" otherwise), requests with a body
 * get 413, unknown paths 404; connections, idle time and request size are
 * bounded, and slow or idle clients cannot keep the kubelet's probes out
 * (koc_probes_set_client_limits).  The text of a failed check (its `why`) is shown to anyone who can
 * reach the port, so it must never hold secrets.
 *
 * Health probes and /metrics may listen on separate addresses, like
 * controller-runtime's --health-probe-bind-address and --metrics-bind-address
 * (koc's manager defaults: "127.0.0.1:8081" and "127.0.0.1:8080"; in a pod the
 * kubelet needs the probes on the pod's address, ":8081"):
 *
 *   _koc_cleanup_(koc_probes_unrefp) koc_probes *p = NULL;
 *   koc_probes_new(event, metrics, &p);
 *   koc_probes_add_ready_check(p, "leader", leader_check, leader, NULL);
 *   koc_probes_listen(p, ":8081", KOC_PROBES_HEALTH);
 *   koc_probes_listen(p, ":8080", KOC_PROBES_METRICS);
 *   ...
 *   koc_probes_set_ready(p, false);   // first thing on SIGTERM
 *
 * Threads: everything except koc_probes_set_ready() and koc_probes_get_ready()
 * runs on the loop's thread (or before the loop runs).  Check functions are
 * called on the loop's thread, once per request, and must return at once
 * (read an atomic, compare a time); they must not block or do I/O.
 */
#ifndef KOC_PROBES_H
#define KOC_PROBES_H

#include <koc/common.h>
#include <koc/metrics.h>
#include <systemd/sd-event.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct koc_probes koc_probes;

/* What a listener serves; OR them to serve both on one address. */
enum {
        KOC_PROBES_HEALTH = 1 << 0,  /* /healthz, /livez, /readyz and their sub-paths */
        KOC_PROBES_METRICS = 1 << 1, /* /metrics */
};

/* Default bind addresses: controller-runtime's ports, on loopback only.
 * Nothing listens on other addresses unless asked: a deployment passes the
 * address the kubelet reaches (the chart gives
 * --health-probe-bind-address=:8081), and /metrics, unauthenticated, is
 * exposed only where someone chooses to (see README.md, "Security"). */
#define KOC_PROBES_DEFAULT_HEALTH_ADDRESS "127.0.0.1:8081"
#define KOC_PROBES_DEFAULT_METRICS_ADDRESS "127.0.0.1:8080"

/* A check returns 0 when healthy, or a negative errno and a one-line reason in
 * why (NUL-terminated, at most why_size bytes, e.g. "not the leader"). */
typedef int (*koc_probes_check_t)(char *why, size_t why_size, void *userdata);

/* event: the loop to serve on (a reference is taken); metrics: the registry to
 * serve on /metrics and to count requests in (may be NULL: /metrics then
 * answers 404).  Nothing listens until koc_probes_listen(). */
KOC_EXPORT int koc_probes_new(sd_event *event, koc_metrics *metrics, koc_probes **ret);
KOC_EXPORT koc_probes *koc_probes_ref(koc_probes *p);
/* Dropping the last reference stops every listener. */
KOC_EXPORT koc_probes *koc_probes_unref(koc_probes *p);
KOC_DEFINE_POINTER_CLEANUP_FUNC(koc_probes, koc_probes_unref)

/* Limits applied to listeners started afterwards (0 keeps a default):
 * max_connections (default 256), idle_timeout_usec (default 10 s, rounded up
 * to whole seconds) and max_request_bytes (request line plus headers,
 * default 16 KiB; larger requests get 431 or 414). */
KOC_EXPORT int koc_probes_set_limits(koc_probes *p, unsigned max_connections,
                                     uint64_t idle_timeout_usec, size_t max_request_bytes);

/* Slow and idle clients (0 keeps a value; applies at once, to running
 * listeners too).  request_timeout_usec (default 3 s, at most 1 h): a
 * connection must deliver a whole request (line and headers) within this time
 * of its start, or of the end of its previous answer, or it is closed; unlike
 * the idle timeout, bytes that trickle in do not extend it.
 * max_per_address (default 32): connections from one client address.  At that
 * number, or at max_connections in all, a new connection closes the oldest
 * connection still waiting for its request (from the same address, or from
 * any; one whose request has arrived but is not read yet is spared while
 * another can go), so that a client that sends its request at once, as the kubelet does
 * on a new connection for every probe, is always served; it is refused only
 * when every connection is busy answering.  Each close is logged at warn
 * (rate-limited). */
KOC_EXPORT int koc_probes_set_client_limits(koc_probes *p, unsigned max_per_address,
                                            uint64_t request_timeout_usec);

/* Starts serving `kinds` (KOC_PROBES_HEALTH and/or KOC_PROBES_METRICS) on
 * address: ":PORT" (every address, IPv6 and IPv4), "0.0.0.0:PORT",
 * "127.0.0.1:PORT", "[::1]:PORT", "[::]:PORT", "localhost:PORT"; port 0 picks
 * a free port (see koc_probes_get_port).  "0" disables: returns 0 and listens
 * nowhere.  Returns -EINVAL for a malformed address, -EADDRINUSE and the like
 * when the bind fails, -EEXIST when a listener already serves one of `kinds`. */
KOC_EXPORT int koc_probes_listen(koc_probes *p, const char *address, unsigned kinds);
/* The port of the listener serving `kind` (one of the flags): -ENXIO when no
 * listener serves it. */
KOC_EXPORT int koc_probes_get_port(koc_probes *p, unsigned kind, uint16_t *ret_port);
/* Closes every listener and open connection (the last shutdown step).
 * Idempotent; the checks stay registered. */
KOC_EXPORT void koc_probes_stop(koc_probes *p);

/* Adds a named check to /healthz and /livez (health) or /readyz (ready).
 * name: [A-Za-z0-9_.-]+, unique within its kind (-EEXIST otherwise); "ping"
 * and "shutdown" are taken.  Checks run in the order they were added.
 * destroy (may be NULL) runs on userdata when the check is removed or the
 * probes server is freed. */
KOC_EXPORT int koc_probes_add_health_check(koc_probes *p, const char *name,
                                           koc_probes_check_t check, void *userdata,
                                           koc_destroy_t destroy);
KOC_EXPORT int koc_probes_add_ready_check(koc_probes *p, const char *name, koc_probes_check_t check,
                                          void *userdata, koc_destroy_t destroy);
/* Removes a check by name from both kinds (running its destroy callback);
 * -ENOENT when there is none. */
KOC_EXPORT int koc_probes_remove_check(koc_probes *p, const char *name);

/* The readiness switch, read first by /readyz as the check "shutdown"
 * ("[-]shutdown failed: process is shutting down").  Starts true; set it to
 * false the moment shutdown begins.  Atomic: safe from any thread. */
KOC_EXPORT void koc_probes_set_ready(koc_probes *p, bool ready);
KOC_EXPORT bool koc_probes_get_ready(koc_probes *p);

#ifdef __cplusplus
}
#endif
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc/leader.h: Lease-based leader election, compatible with client-go.
 *
 * A koc_leader competes for a coordination.k8s.io/v1 Lease on one sd-event
 * loop.  It writes the same record as client-go's leaderelection package
 * (holderIdentity, leaseDurationSeconds, acquireTime, renewTime,
 * leaseTransitions), so koc and Go electors can share a Lease.
 *
 *   _koc_cleanup_(koc_leader_config_freep) koc_leader_config *cfg = NULL;
 *   koc_leader_config_new("my-ns", "my-operator", &cfg);     // 15 s / 10 s / 2 s
 *
 *   _koc_cleanup_(koc_leader_unrefp) koc_leader *l = NULL;
 *   koc_error err = {0};
 *   if (koc_leader_new(client, cfg, &l, &err) < 0)
 *           fprintf(stderr, "%s\n", err.message);      // names the bad field
 *   koc_leader_set_callbacks(l, &(koc_leader_callbacks){
 *           .started_leading = on_started,              // start leader-only work
 *           .stopped_leading = on_stopped,              // stop it; see the reason
 *   }, app, NULL);
 *   state = koc_leader_ref_state(l);                    // hand to /readyz, workers
 *   koc_leader_start(l);
 *   sd_event_loop(event);
 *
 * How it differs from client-go (same record, same API verbs):
 * - The leader renews with one PUT per retry period, carrying the
 *   resourceVersion of its last answer (no GET before it).  A 5xx, a timeout
 *   or a 409 does not end leadership; only renew_deadline without a
 *   successful renewal does (KOC_LEADER_REASON_RENEW_DEADLINE_EXCEEDED).  A
 *   409 is followed by a GET: when another identity holds the Lease, the
 *   reason is KOC_LEADER_REASON_HOLDER_CHANGED.
 * - Followers watch the Lease (one single-object watch, fieldSelector
 *   metadata.name=NAME) instead of polling.  When the holder releases it
 *   (empty holderIdentity) they try to take it at once; after a crash they
 *   act at the expiry instant: one CLOCK_BOOTTIME timer at the local time the
 *   record last changed + leaseDurationSeconds.  A few milliseconds of random
 *   jitter keep a fleet of followers from writing in the same instant.
 *   While the Lease is held, each renewal is an event on that watch: a watch
 *   that shows none for two retry periods is restarted on a new connection
 *   (a connection whose path died stays open for minutes over HTTP/1.1),
 *   with one rate-limited warn line and leader_election_watch_restarts_total.
 * - When watch is forbidden (403), followers poll with GET every retry period
 *   (with client-go's jitter), so the minimal RBAC still works:
 *       verbs: [get, create, update]          (polling)
 *       verbs: [get, create, update, watch]   (watch: faster failover, fewer
 *                                              requests)
 * - Expiry of another holder's lease is judged from this process's own clock
 *   (the instant it saw the record change), never from the record's
 *   timestamps, so clock skew between nodes does not matter.
 *
 * The leadership state (koc_leader_state) may be read from any thread.  It
 * evaluates the renew deadline when it is read, so a process that was frozen
 * (SIGSTOP, a long pause) reads false as soon as it wakes, before any timer
 * fires, and it reads false before any stopped_leading callback runs.
 *
 * Everything except the koc_leader_state_* functions must be called on the
 * loop thread (debug builds assert it).  The state handle's reference count
 * is atomic: any thread may take and drop references to it.
 */
#ifndef KOC_LEADER_H
#define KOC_LEADER_H

#include <koc/client.h>
#include <koc/common.h>
#include <koc/metrics.h>
#include <systemd/sd-event.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct koc_leader koc_leader;
typedef struct koc_leader_config koc_leader_config;
typedef struct koc_leader_state koc_leader_state;

/* --- configuration ---------------------------------------------------------- */

/* Defaults follow Kubernetes' reference components
 * (kube-controller-manager, leaderelection.LeaderElectionConfig). */
#define KOC_LEADER_DEFAULT_LEASE_DURATION_USEC (15 * KOC_USEC_PER_SEC)
#define KOC_LEADER_DEFAULT_RENEW_DEADLINE_USEC (10 * KOC_USEC_PER_SEC)
#define KOC_LEADER_DEFAULT_RETRY_PERIOD_USEC (2 * KOC_USEC_PER_SEC)
#define KOC_LEADER_DEFAULT_OBSERVE_TIMEOUT_USEC (300 * KOC_USEC_PER_SEC)

/* Longest identity kept; longer ones are rejected by validation. */
#define KOC_LEADER_IDENTITY_MAX 253

/* Identities must differ between replicas: two processes with one identity
 * both believe they hold the Lease.  $HOSTNAME is the pod name in Kubernetes,
 * but copies started on one machine share it; give them --identity (CUSTOM)
 * or use GENERATED. */
typedef enum koc_leader_identity_mode {
        /* $HOSTNAME (the pod name in Kubernetes), else a random UUID. */
        KOC_LEADER_IDENTITY_POD_NAME_OR_UUID = 0,
        /* A random UUID for every koc_leader. */
        KOC_LEADER_IDENTITY_GENERATED,
        /* The string given to koc_leader_config_set_identity(). */
        KOC_LEADER_IDENTITY_CUSTOM,
} koc_leader_identity_mode;

/* namespace and name of the Lease; both may be NULL here and set later, but
 * validation rejects them empty.  Returns -ENOMEM or 0. */
KOC_EXPORT int koc_leader_config_new(const char *namespace_, const char *name,
                                     koc_leader_config **ret);
KOC_EXPORT koc_leader_config *koc_leader_config_free(koc_leader_config *cfg);
KOC_DEFINE_POINTER_CLEANUP_FUNC(koc_leader_config, koc_leader_config_free)

KOC_EXPORT int koc_leader_config_set_namespace(koc_leader_config *cfg, const char *namespace_);
KOC_EXPORT int koc_leader_config_set_name(koc_leader_config *cfg, const char *name);
/* How long others wait after the last renewal they saw before taking over.
 * Written to the Lease as whole seconds, rounded up; at least 1 s. */
KOC_EXPORT void koc_leader_config_set_lease_duration(koc_leader_config *cfg, uint64_t usec);
/* How long the leader keeps trying to renew before it steps down. */
KOC_EXPORT void koc_leader_config_set_renew_deadline(koc_leader_config *cfg, uint64_t usec);
/* Renewal cadence of the leader; poll cadence of followers without watch. */
KOC_EXPORT void koc_leader_config_set_retry_period(koc_leader_config *cfg, uint64_t usec);
/* The elector gives up when it has not been able to read or write the Lease
 * at all (transport errors, 5xx) for this long without ever leading: the
 * stopped_leading callback runs once with KOC_LEADER_REASON_OBSERVE_TIMEOUT
 * and the elector stops.  0 disables the limit. */
KOC_EXPORT void koc_leader_config_set_observe_timeout(koc_leader_config *cfg, uint64_t usec);
KOC_EXPORT void koc_leader_config_set_identity_mode(koc_leader_config *cfg,
                                                    koc_leader_identity_mode mode);
/* Sets a custom identity (and the mode to KOC_LEADER_IDENTITY_CUSTOM). */
KOC_EXPORT int koc_leader_config_set_identity(koc_leader_config *cfg, const char *identity);
/* When true, koc_leader_stop() on a leader behaves like koc_leader_step_down()
 * (client-go's ReleaseOnCancel).  Default false. */
KOC_EXPORT void koc_leader_config_set_release_on_stop(koc_leader_config *cfg, bool b);

KOC_EXPORT uint64_t koc_leader_config_get_lease_duration(const koc_leader_config *cfg);
KOC_EXPORT uint64_t koc_leader_config_get_renew_deadline(const koc_leader_config *cfg);
KOC_EXPORT uint64_t koc_leader_config_get_retry_period(const koc_leader_config *cfg);

/* Checks the configuration: -EINVAL with a message naming the field when
 * renew_deadline >= lease_duration, retry_period > renew_deadline,
 * retry_period is zero, lease_duration is under 1 s, the identity (custom) is
 * empty or too long, the namespace is not a DNS-1123 label or the name not a
 * DNS-1123 subdomain (the message names the value and says why). */
KOC_EXPORT int koc_leader_config_validate(const koc_leader_config *cfg, koc_error *err);

/* --- the elector ------------------------------------------------------------ */

typedef enum koc_leader_reason {
        KOC_LEADER_REASON_NONE = 0,
        /* No successful renewal for renew_deadline (API down, slow, partitioned). */
        KOC_LEADER_REASON_RENEW_DEADLINE_EXCEEDED,
        /* Another identity holds the Lease now (read after a 409 or a watch event). */
        KOC_LEADER_REASON_HOLDER_CHANGED,
        /* Cooperative step-down: the Lease was released (koc_leader_step_down). */
        KOC_LEADER_REASON_RELEASED,
        /* koc_leader_stop() or koc_leader_unref() without a release. */
        KOC_LEADER_REASON_CANCELLED,
        /* The API was unreachable for observe_timeout before ever leading. */
        KOC_LEADER_REASON_OBSERVE_TIMEOUT,
        /* The Lease object was deleted while we held it. */
        KOC_LEADER_REASON_LEASE_DELETED,
        _KOC_LEADER_REASON_MAX,
} koc_leader_reason;

/* "renew-deadline-exceeded", "holder-changed", "released", "cancelled",
 * "observe-timeout", "lease-deleted", "none"; "unknown" for anything else. */
KOC_EXPORT const char *koc_leader_reason_to_string(koc_leader_reason reason);

/* Callbacks run on the loop thread.  Any may be NULL.
 * started_leading: this identity leads; term is the Lease's leaseTransitions
 *   for this term (the fencing token).
 * stopped_leading: leadership ended (koc_leader_state already reads false).
 *   Runs exactly once per started_leading, and once with
 *   KOC_LEADER_REASON_OBSERVE_TIMEOUT when the elector gives up without having
 *   led.  After RENEW_DEADLINE_EXCEEDED, HOLDER_CHANGED or LEASE_DELETED the
 *   elector goes back to following the Lease and may lead again (call
 *   koc_leader_stop() from the callback to end it instead, as client-go's
 *   callers usually exit).  After RELEASED, CANCELLED and OBSERVE_TIMEOUT it
 *   is stopped; koc_leader_start() starts it again.
 * new_leader: the observed holder changed (identity "" when the Lease is free).
 * The leader may be unref'd from inside a callback. */
typedef struct koc_leader_callbacks {
        void (*started_leading)(koc_leader *l, uint64_t term, void *userdata);
        void (*stopped_leading)(koc_leader *l, koc_leader_reason reason, void *userdata);
        void (*new_leader)(koc_leader *l, const char *identity, void *userdata);
} koc_leader_callbacks;

/* Validates cfg (see koc_leader_config_validate) and resolves the identity.
 * The leader runs on the client's loop and keeps a reference to the client;
 * cfg is copied. */
KOC_EXPORT int koc_leader_new(koc_client *client, const koc_leader_config *cfg, koc_leader **ret,
                              koc_error *err);
KOC_EXPORT koc_leader *koc_leader_ref(koc_leader *l);
/* Dropping the last reference stops the elector (no release, no callbacks). */
KOC_EXPORT koc_leader *koc_leader_unref(koc_leader *l);
KOC_DEFINE_POINTER_CLEANUP_FUNC(koc_leader, koc_leader_unref)

/* callbacks NULL clears them.  koc_leader_set_callbacks() passes the size of
 * the table the program was compiled with (see "Extensible structs" in
 * koc/common.h); -EINVAL for a wrong size.  destroy (may be NULL) runs on
 * userdata when the callbacks are replaced (with another userdata) or the
 * leader is freed. */
KOC_EXPORT int koc_leader_set_callbacks_sized(koc_leader *l, size_t callbacks_size,
                                              const koc_leader_callbacks *callbacks, void *userdata,
                                              koc_destroy_t destroy);
#define koc_leader_set_callbacks(l, ...)                                                           \
        koc_leader_set_callbacks_sized((l), sizeof(koc_leader_callbacks), __VA_ARGS__)

/* Starts competing for the Lease on the loop (returns at once).  -EBUSY when
 * already running. */
KOC_EXPORT int koc_leader_start(koc_leader *l);

/* Cooperative step-down.  When leading: the state reads false and
 * stopped_leading(RELEASED) runs at once (before the release is written, so
 * leader-only work is told to stop before a successor can start); then the
 * Lease is released (holderIdentity "", leaseDurationSeconds 1, as client-go's
 * ReleaseOnCancel), retried on 409 while this identity still holds it and
 * within renew_deadline; then done runs (result 0 when released, -ESTALE when
 * someone else held the Lease already, -ETIMEDOUT when the deadline passed,
 * -ECANCELED when koc_leader_stop() came first, another negative errno on
 * failure).  When a write to acquire is in flight, its answer is awaited and
 * the Lease released if it made us the holder, without any callback but done.
 * When following, the elector stops and done(0) runs before this returns.
 * The elector is stopped afterwards.  done may be NULL.  -EALREADY when a
 * step-down is already in flight. */
typedef void (*koc_leader_done_handler_t)(koc_leader *l, int result, void *userdata);
KOC_EXPORT int koc_leader_step_down(koc_leader *l, koc_leader_done_handler_t done, void *userdata);

/* Stops at once: cancels requests, the watch and timers.  When leading, the
 * state reads false and stopped_leading(CANCELLED) runs before this returns
 * (when called from inside a callback: right after that callback returns);
 * the Lease stays held until it expires (unless release_on_stop is set, which
 * turns this into koc_leader_step_down(l, NULL, NULL)). */
KOC_EXPORT void koc_leader_stop(koc_leader *l);

/* This identity ("pod-a-7c9f...", a UUID, or the custom string). */
KOC_EXPORT const char *koc_leader_get_identity(const koc_leader *l);
/* The holder last observed ("" when free or not yet known). */
KOC_EXPORT const char *koc_leader_get_holder(const koc_leader *l);
/* Same as koc_leader_state_is_leader() on this leader's state. */
KOC_EXPORT bool koc_leader_is_leader(const koc_leader *l);

/* Blocking convenience for simple programs: runs the leader's loop
 * (sd_event_run) until this identity leads (returns 1), the elector stops
 * (returns 0) or timeout_usec passes (-ETIMEDOUT; 0 waits forever).  Starts
 * the elector when it is not running.  Not from inside a callback.  Both
 * return a negative errno when the elector stopped itself on an error (its
 * timer could not be armed; the error is logged). */
KOC_EXPORT int koc_leader_run_until_leading(koc_leader *l, uint64_t timeout_usec);
/* Runs the loop until leadership ends; returns the reason (>= 0), or
 * -ENOTCONN when not leading. */
KOC_EXPORT int koc_leader_run_until_lost(koc_leader *l);

/* Registers, with label name="<lease name>":
 *   leader_election_master_status         gauge, 1 while leading; computed from
 *                                         the state handle at scrape time, so
 *                                         it honours the renew deadline exactly
 *   leader_election_transitions_total     counter, times this process started leading
 *   leader_election_renew_duration_seconds histogram, renewal PUT latency
 *   leader_election_renew_errors_total    counter, failed renewal attempts
 *   leader_election_watch_restarts_total  counter, Lease watches restarted on a new
 *                                         connection because no renewal arrived
 *                                         for two retry periods while the Lease
 *                                         was held (a dead connection, or a
 *                                         holder that stopped renewing)
 * The registry must outlive the leader's use of it (the leader keeps a
 * reference). */
KOC_EXPORT int koc_leader_register_metrics(koc_leader *l, koc_metrics *metrics);

/* --- leadership state (any thread) --------------------------------------------- */

/* A new reference to the leader's state.  It stays valid after the leader is
 * freed (and then reads false). */
KOC_EXPORT koc_leader_state *koc_leader_ref_state(koc_leader *l);
KOC_EXPORT koc_leader_state *koc_leader_state_ref(koc_leader_state *s);
KOC_EXPORT koc_leader_state *koc_leader_state_unref(koc_leader_state *s);
KOC_DEFINE_POINTER_CLEANUP_FUNC(koc_leader_state, koc_leader_state_unref)

/* True while this process leads and its last successful renewal was *sent*
 * less than renew_deadline ago (CLOCK_BOOTTIME, checked at read time).
 * Lock-free; false for NULL. */
KOC_EXPORT bool koc_leader_state_is_leader(const koc_leader_state *s);
/* The fencing token of the current term: the Lease's leaseTransitions and the
 * holder identity (copied into holder, truncated to size; holder may be NULL).
 * Returns 1 when this process leads now, 0 when it does not (the values then
 * describe the last holder observed; *ret_transitions is 0 and holder "" when
 * nothing was observed yet), -EINVAL for bad arguments. */
KOC_EXPORT int koc_leader_state_term(const koc_leader_state *s, uint64_t *ret_transitions,
                                     char *holder, size_t size);

#ifdef __cplusplus
}
#endif
#endif

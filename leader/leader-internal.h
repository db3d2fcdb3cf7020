/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal side of koc/leader.h: the configuration's fields, and the small
 * transport interface the driver talks through, so that unit tests can run
 * the driver with a fake API server and a fake clock.
 */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "fsm.h"
#include "lease-record.h"
#include "koc/client.h"
#include "koc/leader.h"

struct koc_leader_config {
        char *namespace_;
        char *name;
        char *identity; /* custom identity */
        koc_leader_identity_mode identity_mode;
        uint64_t lease_duration;
        uint64_t renew_deadline;
        uint64_t retry_period;
        uint64_t observe_timeout;
        bool release_on_stop;
};

/* Resolves the identity of cfg into buf (HOSTNAME, a UUID or the custom one). */
int koc__leader_config_resolve_identity(const koc_leader_config *cfg, char *buf, size_t size);

/* How the driver reaches the API and the clock.  Handlers are koc_client's
 * (the fake passes NULL for the client and the watch).  A request handler
 * runs once unless the request was cancelled.
 *
 * The watch restarts itself (the real transport runs core/reflector.c, the
 * informers' component, in watch-only mode): its handler gets ADDED,
 * MODIFIED and DELETED events (and may stop the watch there); ERROR each
 * time one watch request ended (status, error) and the transport resumes it
 * (the handler must not stop the watch there); and CLOSED last, once, when
 * the watch stopped for good (403: no permission), after which the handle
 * is gone. */
typedef struct leader_transport_ops {
        int (*request)(void *t, const koc_request_spec *spec, koc_response_handler_t handler,
                       void *userdata, void **ret_handle);
        void (*cancel)(void *t, void *handle);
        int (*watch)(void *t, const koc_watch_spec *spec, koc_watch_handler_t handler,
                     void *userdata, void **ret_handle);
        void (*watch_stop)(void *t, void *handle);
        /* Optional: ends the watch's current request and resumes it at once
         * on a new connection (the old one is thought dead); NULL: the
         * driver stops the watch and starts a new one. */
        void (*watch_restart)(void *t, void *handle);
        /* Arms the one timer at boottime `at` (0: disarm); when it fires the
         * transport calls koc__leader_timer_fired(). */
        int (*set_timer)(void *t, uint64_t at);
        uint64_t (*now)(void *t);  /* CLOCK_BOOTTIME, usec */
        uint64_t (*wall)(void *t); /* CLOCK_REALTIME, usec since the epoch */
} leader_transport_ops;

int koc__leader_new_with_transport(const leader_transport_ops *ops, void *transport,
                                   const koc_leader_config *cfg, koc_leader **ret, koc_error *err);
void koc__leader_timer_fired(koc_leader *l);
/* The error that made the elector stop itself (a timer that could not be
 * armed), or 0.  For the manager's liveness check. */
int koc__leader_get_failure(const koc_leader *l);
/* For tests: the loop koc_leader_run_until_*() run (the fake transport has
 * none of its own). */
void koc__leader_set_event(koc_leader *l, sd_event *event);
/* For tests: the random source of the jitter (NULL: none). */
void koc__leader_set_random(koc_leader *l, uint64_t (*random)(uint64_t n));
const leader_fsm *koc__leader_get_fsm(const koc_leader *l);
/* For tests: the clock the state handle reads (default koc_now_boottime_usec). */
void koc__leader_state_set_clock(koc_leader_state *s, uint64_t (*now)(void *), void *userdata);

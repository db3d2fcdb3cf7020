/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc/shutdown.h: graceful shutdown on SIGTERM/SIGINT, within a budget.
 *
 * A koc_shutdown drives a list of drain steps on the sd-event loop.  On the
 * first SIGTERM or SIGINT (or koc_shutdown_trigger()):
 *
 *   1. the begin handler runs at once (set readiness to not-ready there);
 *   2. after the optional pre-drain delay (time for endpoint removal to reach
 *      every proxy), the steps start, one after the other, in the order they
 *      were added;
 *   3. when the last step is done, the done handler runs with exit code 0 and
 *      (unless disabled) sd_event_exit(event, 0) ends the loop.
 *
 * A step is asynchronous: its start function is called on the loop and the
 * step calls koc_shutdown_step_done() when it has finished, at once or later
 * from another loop callback ("wait for workers", "step down the lease").
 * User hooks are steps too, so they share the budget.
 *
 * The drain budget (default 25 s, keep it below the pod's
 * terminationGracePeriodSeconds, default 30 s) is measured from the first
 * signal and includes the delay.  A second signal, or the budget running out,
 * forces the shutdown: the steps still in flight are logged by name and
 * abandoned (a later koc_shutdown_step_done() on them is ignored), the steps
 * not yet started are skipped except those added with
 * KOC_SHUTDOWN_STEP_RUN_IF_FORCED, which run with koc_shutdown_step_forced()
 * true (a step-down step then releases the lease only when no leader-guarded
 * work is still running) and get a short grace (default 2 s) of their own.
 * The exit code is then 1.
 *
 *   koc_shutdown_block_signals();          // before any thread starts
 *   _koc_cleanup_(koc_shutdown_unrefp) koc_shutdown *s = NULL;
 *   koc_shutdown_new(event, &s);
 *   koc_shutdown_set_begin_handler(s, on_begin, probes, NULL);
 *   koc_shutdown_add_step(s, "stop-intake", 0, stop_intake, mgr, NULL);
 *   koc_shutdown_add_step(s, "wait-workers", 0, wait_workers, mgr, NULL);
 *   koc_shutdown_add_step(s, "step-down", KOC_SHUTDOWN_STEP_RUN_IF_FORCED, step_down, mgr, NULL);
 *   koc_shutdown_add_step(s, "stop-probes", KOC_SHUTDOWN_STEP_RUN_IF_FORCED, stop_probes, p, NULL);
 *   koc_shutdown_start_signals(s);
 *   r = sd_event_loop(event);          // returns the exit code
 *
 * Threads: every call runs on the loop's thread, except
 * koc_shutdown_block_signals(), koc_shutdown_get_state() and
 * koc_shutdown_in_progress() (atomic reads, safe from any thread).  Every
 * phase is logged (component "shutdown").
 */
#ifndef KOC_SHUTDOWN_H
#define KOC_SHUTDOWN_H

#include <koc/common.h>
#include <systemd/sd-event.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct koc_shutdown koc_shutdown;
typedef struct koc_shutdown_step koc_shutdown_step;

#define KOC_SHUTDOWN_DEFAULT_BUDGET_USEC (25 * KOC_USEC_PER_SEC)
#define KOC_SHUTDOWN_DEFAULT_FORCED_GRACE_USEC (2 * KOC_USEC_PER_SEC)

/* Exit codes reported to the done handler and to sd_event_exit(). */
enum {
        KOC_SHUTDOWN_EXIT_OK = 0,     /* every step finished within the budget */
        KOC_SHUTDOWN_EXIT_FORCED = 1, /* second signal or budget exceeded */
};

enum koc_shutdown_state {
        KOC_SHUTDOWN_IDLE,     /* waiting for a signal or a trigger */
        KOC_SHUTDOWN_DELAYING, /* begin handler ran, pre-drain delay running */
        KOC_SHUTDOWN_DRAINING, /* steps running */
        KOC_SHUTDOWN_FORCED,   /* forced: only RUN_IF_FORCED steps run */
        KOC_SHUTDOWN_DONE,     /* done handler called */
};

/* Step flags. */
enum {
        /* Run this step even when the shutdown was forced (after the steps in
         * flight were abandoned); the step reads koc_shutdown_step_forced(). */
        KOC_SHUTDOWN_STEP_RUN_IF_FORCED = 1 << 0,
};

/* Starts a step.  Call koc_shutdown_step_done(step) when it has finished
 * (from inside this function or later, on the loop's thread). */
typedef void (*koc_shutdown_step_t)(koc_shutdown_step *step, void *userdata);
/* Called once, at once, on the first signal or trigger. */
typedef void (*koc_shutdown_begin_t)(koc_shutdown *s, void *userdata);
/* Called once when the shutdown has finished, with the exit code. */
typedef void (*koc_shutdown_done_t)(koc_shutdown *s, int exit_code, void *userdata);

/* event: the loop (a reference is taken). */
KOC_EXPORT int koc_shutdown_new(sd_event *event, koc_shutdown **ret);
KOC_EXPORT koc_shutdown *koc_shutdown_ref(koc_shutdown *s);
KOC_EXPORT koc_shutdown *koc_shutdown_unref(koc_shutdown *s);
KOC_DEFINE_POINTER_CLEANUP_FUNC(koc_shutdown, koc_shutdown_unref)

/* Configuration; only before the shutdown starts (-EBUSY afterwards).
 * budget_usec > 0; delay_usec may be 0 and must be below the budget;
 * grace_usec > 0 is the time given to RUN_IF_FORCED steps once forced. */
KOC_EXPORT int koc_shutdown_set_budget(koc_shutdown *s, uint64_t budget_usec);
KOC_EXPORT int koc_shutdown_set_delay(koc_shutdown *s, uint64_t delay_usec);
KOC_EXPORT int koc_shutdown_set_forced_grace(koc_shutdown *s, uint64_t grace_usec);
/* Whether the end calls sd_event_exit(event, exit_code) (default true). */
KOC_EXPORT int koc_shutdown_set_exit_loop(koc_shutdown *s, bool exit_loop);
/* destroy (may be NULL) runs on userdata when the handler is replaced (by
 * another userdata) or the coordinator is freed. */
KOC_EXPORT int koc_shutdown_set_begin_handler(koc_shutdown *s, koc_shutdown_begin_t fn,
                                              void *userdata, koc_destroy_t destroy);
KOC_EXPORT int koc_shutdown_set_done_handler(koc_shutdown *s, koc_shutdown_done_t fn,
                                             void *userdata, koc_destroy_t destroy);

/* Appends a step (name: for logs, copied).  Only before the shutdown starts.
 * destroy (may be NULL) runs on userdata when the coordinator is freed. */
KOC_EXPORT int koc_shutdown_add_step(koc_shutdown *s, const char *name, unsigned flags,
                                     koc_shutdown_step_t start, void *userdata,
                                     koc_destroy_t destroy);

/* Marks a step finished.  Ignored when the step was abandoned or already done. */
KOC_EXPORT void koc_shutdown_step_done(koc_shutdown_step *step);
/* True when the step runs because the shutdown was forced. */
KOC_EXPORT bool koc_shutdown_step_forced(const koc_shutdown_step *step);
KOC_EXPORT const char *koc_shutdown_step_name(const koc_shutdown_step *step);
KOC_EXPORT koc_shutdown *koc_shutdown_step_get_shutdown(const koc_shutdown_step *step);

/* Blocks SIGTERM and SIGINT in the calling thread (pthread_sigmask).  Threads
 * inherit the mask, so call it in the main thread BEFORE starting any thread;
 * otherwise a thread that has them unblocked takes the signal and the process
 * dies without draining. */
KOC_EXPORT int koc_shutdown_block_signals(void);
/* Blocks SIGTERM/SIGINT in the calling thread (see above) and adds sd-event
 * signal sources for them: the first starts the shutdown, the second forces
 * it.  -EBUSY when another sd-event source already handles them. */
KOC_EXPORT int koc_shutdown_start_signals(koc_shutdown *s);

/* Starts the shutdown as the first signal would (leader loss with exit, tests);
 * 0, or -EALREADY when it has already started. */
KOC_EXPORT int koc_shutdown_trigger(koc_shutdown *s);
/* Forces it as a second signal would (starting it first if needed);
 * -EALREADY when already forced or done. */
KOC_EXPORT int koc_shutdown_force(koc_shutdown *s);

KOC_EXPORT enum koc_shutdown_state koc_shutdown_get_state(const koc_shutdown *s);
/* True once the shutdown has started (any state but IDLE). */
KOC_EXPORT bool koc_shutdown_in_progress(const koc_shutdown *s);
/* The exit code once DONE, -EBUSY before. */
KOC_EXPORT int koc_shutdown_get_exit_code(const koc_shutdown *s);

#ifdef __cplusplus
}
#endif
#endif

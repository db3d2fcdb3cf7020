/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc/manager.h: the composition root of a koc operator.
 *
 * A koc_manager owns (or borrows) one sd-event loop and builds everything an
 * operator replica needs on it: the cluster configuration (--kubeconfig, then
 * $KUBECONFIG, in-cluster, ~/.kube/config), the API client, the Lease leader
 * elector, the probes server (/livez, /readyz, /metrics), the metrics registry
 * (process, leader and API client metrics) and the graceful-shutdown coordinator.
 *
 *   static void on_started(koc_manager *m, uint64_t term, void *ud) {
 *           ... start leader-only work; tag writes with `term` ...
 *   }
 *   static void on_stopped(koc_manager *m, koc_leader_reason reason, void *ud) {
 *           ... stop leader-only work; standby again unless shutting down ...
 *   }
 *
 *   int main(int argc, char *argv[]) {
 *           koc_manager_config cfg;
 *           koc_manager_config_init(&cfg);
 *           cfg.leader_election_id = "my-operator";
 *           koc_error err = {0};
 *           int r = koc_manager_parse_flags(&cfg, argc, argv, &err);
 *           if (r != 0)                      // 1: --help was printed
 *                   return r > 0 ? 0 : (fprintf(stderr, "%s\n", err.message), 2);
 *
 *           _koc_cleanup_(koc_manager_unrefp) koc_manager *m = NULL;
 *           if (koc_manager_new(NULL, &cfg, &m, &err) < 0)
 *                   return fprintf(stderr, "%s\n", err.message), 1;
 *           koc_manager_set_callbacks(m, &(koc_manager_callbacks){
 *                   .started_leading = on_started, .stopped_leading = on_stopped }, NULL, NULL);
 *           return koc_manager_run(m);        // until SIGTERM/SIGINT; the exit code
 *   }
 *
 * Leader-guarded work.  Worker threads (or loop callbacks) bracket every item
 * of leader-only work with koc_manager_work_begin()/koc_manager_work_end().
 * begin refuses once shutdown has started (the intake is closed) and, with
 * leader election on, while this replica does not lead.  The shutdown drain
 * waits until no item is in flight before it releases the Lease, so a
 * successor never overlaps with this replica's work.
 *
 * Shutdown, on the first SIGTERM/SIGINT (or koc_manager_shutdown()):
 *   1. /readyz fails at once ("[-]shutdown failed"); a replica that does not
 *      lead stops competing for the Lease (an acquire already in flight is
 *      awaited and, if it made this replica the holder, given back), and a
 *      leader that loses the Lease during the drain does not take it again;
 *   2. after the optional delay (--shutdown-delay), intake stops: begin fails;
 *   3. shutdown hooks (koc_manager_add_shutdown_hook) run, in order;
 *   4. the drain waits for in-flight work; the leader keeps renewing;
 *   5. step-down: the Lease is released (client-go's release record), so a
 *      standby takes over at once; stopped_leading(RELEASED) runs;
 *   6. the probes server stops; koc_manager_run() returns 0.
 * The budget (--shutdown-drain-budget, default 25 s) covers 2 to 6.  A second
 * signal or the end of the budget forces the end: the wait is abandoned, the
 * Lease is released only when no leader-guarded work is still in flight
 * (otherwise the elector stops without a release and the Lease expires after
 * its duration), and koc_manager_run() returns 1.
 *
 * Leadership lost while running (renew deadline exceeded, another holder)
 * is not fatal by default: stopped_leading runs, the replica stands by and
 * may lead again (started_leading runs again, with a new term).  With
 * exit_on_leadership_loss (controller-runtime's behaviour) the manager shuts
 * down instead and koc_manager_run() returns 1.
 *
 * Probes: /readyz has the "shutdown" switch and, when gate_readiness_on_leader
 * is set, the "leader" check (fails on standbys).  /livez has "leader-renewal":
 * it fails when this replica has been leading (by its callbacks) but its
 * leadership state has not been confirmed for lease_duration + the liveness
 * margin, which means the elector is wedged (client-go's HealthzAdaptor), or
 * when the elector stopped itself on an error (it would never compete
 * again).  A standby is otherwise always live.
 *
 * Threads: everything runs on the loop's thread except koc_manager_work_begin,
 * koc_manager_work_end, koc_manager_is_leader, koc_manager_get_term,
 * koc_manager_in_flight and koc_manager_is_stopping, which are lock-free, and
 * koc_manager_ref/unref: the count is atomic, so worker threads may hold their
 * own references, but the last one must be dropped on the loop thread.  Debug
 * builds (no NDEBUG) assert that the loop-only calls run on the loop thread.
 * Create the manager before starting any thread: it blocks SIGTERM and SIGINT
 * in the calling thread, and threads inherit that mask.
 */
#ifndef KOC_MANAGER_H
#define KOC_MANAGER_H

#include <koc/cache.h>
#include <koc/client.h>
#include <koc/common.h>
#include <koc/config.h>
#include <koc/leader.h>
#include <koc/metrics.h>
#include <koc/probes.h>
#include <koc/shutdown.h>
#include <stdio.h>
#include <systemd/sd-event.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct koc_manager koc_manager;

#define KOC_MANAGER_DEFAULT_LIVENESS_MARGIN_USEC (20 * KOC_USEC_PER_SEC)
/* How many flags of its own a program may add (koc_manager_add_flag_*). */
#define KOC_MANAGER_MAX_PROGRAM_FLAGS 32

/* Settings of a manager.  Strings are borrowed until koc_manager_new()
 * returns (it copies what it keeps); flags parsed from argv point into argv. */
typedef struct koc_manager_config {
        /* --kubeconfig; NULL: $KUBECONFIG, in-cluster, ~/.kube/config. */
        const char *kubeconfig;
        /* --leader-elect (default true).  Off: this replica leads alone from
         * the start (started_leading runs at once with term 0). */
        bool leader_elect;
        /* --leader-elect-lease-duration, -renew-deadline, -retry-period
         * (defaults 15 s, 10 s, 2 s). */
        uint64_t lease_duration_usec;
        uint64_t renew_deadline_usec;
        uint64_t retry_period_usec;
        /* --leader-elect-resource-name: the Lease's name (required when
         * leader election is on; programs set their own default). */
        const char *leader_election_id;
        /* --leader-elect-resource-namespace; NULL: POD_NAMESPACE, the
         * kubeconfig context's or service account's namespace, "default". */
        const char *leader_election_namespace;
        /* --identity; NULL: $HOSTNAME (the pod name), else a random UUID. */
        const char *identity;
        /* --leader-elect-gate-readiness (default true): /readyz fails on
         * standbys.  See charts/koc-example/README.md for rollouts. */
        bool gate_readiness_on_leader;
        /* --leader-elect-exit-on-loss (default false). */
        bool exit_on_leadership_loss;
        /* Added to lease_duration for the "leader-renewal" liveness check. */
        uint64_t liveness_margin_usec;
        /* --health-probe-bind-address ("127.0.0.1:8081"; "0" disables).  In a
         * pod, give the address the kubelet reaches, e.g. ":8081". */
        const char *health_probe_bind_address;
        /* --metrics-bind-address ("127.0.0.1:8080"; "0" disables): loopback
         * unless asked, since plain /metrics is not authenticated (see
         * metrics_secure).  When it equals the health address, one plain
         * listener serves both. */
        const char *metrics_bind_address;
        /* --shutdown-drain-budget (25 s), --shutdown-delay (0). */
        uint64_t shutdown_budget_usec;
        uint64_t shutdown_delay_usec;
        /* Install SIGTERM/SIGINT handlers (default true). */
        bool handle_signals;
        /* --log-level, --log-format; NULL keeps KOC_LOG_LEVEL/KOC_LOG_FORMAT. */
        const char *log_level;
        const char *log_format;
        /* --print-rbac (default false): koc_manager_new() connects nowhere
         * (no kubeconfig is read, nothing listens) and koc_manager_run()
         * prints the RBAC rules the program needs (see "RBAC" below) as Helm
         * values for charts/koc-example and returns 0. */
        bool print_rbac;
        /* The program's own flags, added with koc_manager_add_flag_*(); not
         * to be touched directly. */
        unsigned n_program_flags;
        struct koc_manager_program_flag {
                const char *name;
                const char *help;
                int type;
                void *var;
                union {
                        const char *s;
                        int64_t i;
                        bool b;
                        uint64_t d;
                } def;
        } program_flags[KOC_MANAGER_MAX_PROGRAM_FLAGS];
        /* --metrics-secure (default false; the chart turns it on, as
         * kubebuilder's scaffold does): /metrics over HTTPS on
         * metrics_bind_address, readable only with a bearer token the
         * cluster authenticates (TokenReview) and authorises for GET
         * /metrics (SubjectAccessReview, e.g. through the ClusterRole
         * metrics-reader); 401, 403, or 503 when the reviews cannot be
         * made.  The probes stay plain HTTP, so the two addresses must
         * differ.  Off: plain HTTP, with a warning when bound beyond
         * loopback. */
        bool metrics_secure;
        /* --metrics-cert-dir (tls.crt and tls.key in it) or
         * --metrics-cert-file with --metrics-key-file: the serving pair,
         * reloaded when the files change.  None: a self-signed pair made in
         * memory at start. */
        const char *metrics_cert_dir;
        const char *metrics_cert_file;
        const char *metrics_key_file;
        /* --print-rbac-values-under (default none): with --print-rbac, the
         * values nested under this key, for a chart that has
         * charts/koc-example as a dependency of that name (examples/memcached's
         * chart: "koc-example"), so that its rbac-values.yaml is what the
         * program prints.  1 to 63 characters of A-Z, a-z, 0-9, '-' and '_'
         * (-EINVAL otherwise). */
        const char *print_rbac_values_under;
        /* --webhook-bind-address (default "0": ":9443" as soon as a webhook
         * is registered with koc/webhook.h, else nothing listens): the
         * admission webhooks' HTTPS server, on every replica.  A program may
         * register its webhooks only when the flag is set. */
        const char *webhook_bind_address;
        /* --webhook-cert-dir: tls.crt and tls.key (a kubernetes.io/tls
         * Secret mounted there), reloaded when they change.  None: a
         * self-signed pair made in memory at start (logged). */
        const char *webhook_cert_dir;
        /* --webhook-timeout (default 8s): a handler that has not returned by
         * then is answered without it: refused, or allowed with
         * --webhook-allow-on-timeout. */
        uint64_t webhook_timeout_usec;
        bool webhook_allow_on_timeout;
} koc_manager_config;

/* Every function that takes a koc_manager_config is called through a macro
 * of the old name that passes sizeof(koc_manager_config) as compiled into the
 * program, so that a program built against this header keeps working with a
 * later library whose struct has grown (see "Extensible structs" in
 * koc/common.h).  The _sized functions return -EINVAL for a wrong size. */

/* Fills cfg with the defaults above (cfg_size bytes; newer fields zero). */
KOC_EXPORT int koc_manager_config_init_sized(size_t cfg_size, koc_manager_config *cfg);
#define koc_manager_config_init(cfg)                                                               \
        koc_manager_config_init_sized(sizeof(koc_manager_config), (cfg))

/* Checks the values (durations and their order, names, log settings); the
 * message names the flag and the value ("--leader-elect-renew-deadline=20s
 * must be shorter than --leader-elect-lease-duration=15s").  -EINVAL. */
KOC_EXPORT int koc_manager_config_validate_sized(size_t cfg_size, const koc_manager_config *cfg,
                                                 koc_error *err);
#define koc_manager_config_validate(...)                                                           \
        koc_manager_config_validate_sized(sizeof(koc_manager_config), __VA_ARGS__)

/* Parses the standard flags (see koc_manager_print_usage) into cfg, Go-style:
 * "--flag=value", "--flag value", one or two dashes, bool flags as "--flag",
 * "--flag=true|false".  Returns 0, or 1 when --help/-h was given (the usage
 * was printed to stdout; exit 0), or -EINVAL for an unknown flag, a missing or
 * malformed value or a positional argument, with err naming the flag and the
 * value.  Validates the result (koc_manager_config_validate). */
#define KOC_MANAGER_FLAGS_HELP 1
KOC_EXPORT int koc_manager_parse_flags_sized(size_t cfg_size, koc_manager_config *cfg, int argc,
                                             char *argv[], koc_error *err);
#define koc_manager_parse_flags(...)                                                               \
        koc_manager_parse_flags_sized(sizeof(koc_manager_config), __VA_ARGS__)
/* The flags and their defaults, one per line. */
KOC_EXPORT void koc_manager_print_usage(FILE *out, const char *program);

/* A program's own flags, parsed by koc_manager_parse_flags() with the
 * standard ones and listed by --help under "Flags of this program", so that an
 * operator never writes a parser of its own:
 *
 *   static const char *image;
 *   static int64_t port;
 *   koc_manager_add_flag_string(&cfg, "image", "memcached:1.6.26-alpine",
 *                               "Container image of the memcached pods.", &image);
 *   koc_manager_add_flag_int(&cfg, "port", 11211, "Container port.", &port);
 *   r = koc_manager_parse_flags(&cfg, argc, argv, &err);
 *
 * Each call sets *var to the default at once; the parser writes *var when the
 * flag is given (only when every flag of the command line is good).  var
 * must outlive the parse (a string flag's value points into argv).  Names
 * are 1 to 63 characters of a-z, 0-9 and '-', starting with a letter:
 * -EINVAL otherwise or without var or help, -EEXIST for a name the manager or
 * the program already has, -ENOSPC beyond KOC_MANAGER_MAX_PROGRAM_FLAGS.
 * Values are parsed as the manager's own: ints as decimal (or 0x hex)
 * int64, bools as Go's strconv.ParseBool ("--flag" alone is true),
 * durations Go-style (500ms, 1m30s); errors name the flag and the value
 * ("--port=\"eleven\": not an integer").  There is no environment
 * fallback, as for the manager's own flags. */
KOC_EXPORT int koc_manager_add_flag_string_sized(size_t cfg_size, koc_manager_config *cfg,
                                                 const char *name, const char *def,
                                                 const char *help, const char **var);
#define koc_manager_add_flag_string(cfg, ...)                                                      \
        koc_manager_add_flag_string_sized(sizeof(koc_manager_config), (cfg), __VA_ARGS__)
KOC_EXPORT int koc_manager_add_flag_int_sized(size_t cfg_size, koc_manager_config *cfg,
                                              const char *name, int64_t def, const char *help,
                                              int64_t *var);
#define koc_manager_add_flag_int(cfg, ...)                                                         \
        koc_manager_add_flag_int_sized(sizeof(koc_manager_config), (cfg), __VA_ARGS__)
KOC_EXPORT int koc_manager_add_flag_bool_sized(size_t cfg_size, koc_manager_config *cfg,
                                               const char *name, bool def, const char *help,
                                               bool *var);
#define koc_manager_add_flag_bool(cfg, ...)                                                        \
        koc_manager_add_flag_bool_sized(sizeof(koc_manager_config), (cfg), __VA_ARGS__)
/* Microseconds, as every duration of koc. */
KOC_EXPORT int koc_manager_add_flag_duration_sized(size_t cfg_size, koc_manager_config *cfg,
                                                   const char *name, uint64_t def_usec,
                                                   const char *help, uint64_t *var);
#define koc_manager_add_flag_duration(cfg, ...)                                                    \
        koc_manager_add_flag_duration_sized(sizeof(koc_manager_config), (cfg), __VA_ARGS__)

/* Builds the manager: loads the cluster configuration, creates the client,
 * the elector (when leader_elect), the metrics registry, the probes server
 * (listening at once, so koc_manager_get_*_port work before the loop runs)
 * and the shutdown coordinator (signal handlers installed at once; signals
 * that arrive before koc_manager_run() are handled when it starts).
 * event: the loop to use (a reference is taken); NULL: sd_event_default().
 * Errors name what failed (kubeconfig field, bad flag, bind address). */
KOC_EXPORT int koc_manager_new_sized(sd_event *event, size_t cfg_size,
                                     const koc_manager_config *cfg, koc_manager **ret,
                                     koc_error *err);
#define koc_manager_new(event, ...)                                                                \
        koc_manager_new_sized((event), sizeof(koc_manager_config), __VA_ARGS__)
KOC_EXPORT koc_manager *koc_manager_ref(koc_manager *m);
KOC_EXPORT koc_manager *koc_manager_unref(koc_manager *m);
KOC_DEFINE_POINTER_CLEANUP_FUNC(koc_manager, koc_manager_unref)

/* Called on the loop thread.  Any may be NULL.
 * started_leading: this replica leads; term is the Lease's leaseTransitions
 *   (the fencing token; 0 without leader election).
 * stopped_leading: leadership ended; koc_manager_is_leader() already reads
 *   false and new work is refused.  reason RELEASED during shutdown (or
 *   CANCELLED when a forced shutdown could not release), otherwise why it was
 *   lost; the manager then stands by (or shuts down with
 *   exit_on_leadership_loss).
 * new_leader: the observed holder changed ("" when the Lease is free). */
typedef struct koc_manager_callbacks {
        void (*started_leading)(koc_manager *m, uint64_t term, void *userdata);
        void (*stopped_leading)(koc_manager *m, koc_leader_reason reason, void *userdata);
        void (*new_leader)(koc_manager *m, const char *identity, void *userdata);
} koc_manager_callbacks;

/* callbacks NULL clears them; -EINVAL for a wrong size.  destroy (may be
 * NULL) runs on userdata when the callbacks are replaced (with another
 * userdata) or the manager is freed. */
KOC_EXPORT int koc_manager_set_callbacks_sized(koc_manager *m, size_t callbacks_size,
                                               const koc_manager_callbacks *callbacks,
                                               void *userdata, koc_destroy_t destroy);
#define koc_manager_set_callbacks(m, ...)                                                          \
        koc_manager_set_callbacks_sized((m), sizeof(koc_manager_callbacks), __VA_ARGS__)

/* Leader-only runnables, for programs made of several parts (controllers,
 * periodic jobs) that each start and stop with leadership, like
 * controller-runtime's runnables that need leader election.  start runs when
 * this replica starts leading, after the started_leading callback, in the
 * order the runnables were added; stop runs when leadership ends, in reverse
 * order, before the stopped_leading callback (leadership already reads false
 * then).  A start that returns a negative errno is logged and its stop is not
 * called for that term.  Either function may be NULL.  Only before
 * koc_manager_run() (-EBUSY after).  destroy (may be NULL) runs on userdata
 * when the manager is freed. */
typedef struct koc_manager_runnable {
        int (*start)(koc_manager *m, uint64_t term, void *userdata);
        void (*stop)(koc_manager *m, koc_leader_reason reason, void *userdata);
} koc_manager_runnable;

KOC_EXPORT int koc_manager_add_runnable_sized(koc_manager *m, const char *name,
                                              size_t runnable_size,
                                              const koc_manager_runnable *runnable, void *userdata,
                                              koc_destroy_t destroy);
#define koc_manager_add_runnable(m, name, ...)                                                     \
        koc_manager_add_runnable_sized((m), (name), sizeof(koc_manager_runnable), __VA_ARGS__)

/* Adds a shutdown step that runs after the intake stops and before the wait
 * for in-flight work, sharing the drain budget (see koc/shutdown.h for
 * koc_shutdown_step_done).  Only before koc_manager_run(); -EBUSY after.
 * destroy (may be NULL) runs on userdata when the manager is freed. */
KOC_EXPORT int koc_manager_add_shutdown_hook(koc_manager *m, const char *name,
                                             koc_shutdown_step_t hook, void *userdata,
                                             koc_destroy_t destroy);

/* Runs the loop: starts the elector, serves probes, handles signals, until
 * the shutdown has finished.  Returns the process exit code, always 0..255 so
 * that `return koc_manager_run(m);` in main() is right; a negative errno never
 * leaks out of it.  0 after a clean drain; 1 (KOC_MANAGER_EXIT_FAILURE) after
 * a forced shutdown, a leadership loss with exit_on_leadership_loss, when the
 * elector gave up (observe timeout), when the loop failed or was ended with a
 * code outside 0..255, for a NULL manager, and for a second run of one
 * manager (each logged).  A loop ended with sd_event_exit(e, code) returns
 * that code when it is in 0..255. */
#define KOC_MANAGER_EXIT_OK 0
#define KOC_MANAGER_EXIT_FAILURE 1
KOC_EXPORT int koc_manager_run(koc_manager *m);

/* Starts the shutdown as SIGTERM would (-EALREADY when started). */
KOC_EXPORT int koc_manager_shutdown(koc_manager *m);
/* Forces it as a second signal would. */
KOC_EXPORT int koc_manager_force_shutdown(koc_manager *m);

/* --- leader-guarded work (any thread) -------------------------------------- */

/* Registers one item of leader-only work in flight.  Returns 0, -ESHUTDOWN
 * once shutdown has closed the intake, or -EAGAIN when leader election is on
 * and this replica does not lead now.  Every 0 must be matched by exactly one
 * koc_manager_work_end().  Lock-free. */
KOC_EXPORT int koc_manager_work_begin(koc_manager *m);
KOC_EXPORT void koc_manager_work_end(koc_manager *m);
/* Items in flight now. */
KOC_EXPORT unsigned koc_manager_in_flight(koc_manager *m);
/* True while this replica leads (always true without leader election, until
 * the shutdown's step-down). */
KOC_EXPORT bool koc_manager_is_leader(koc_manager *m);
/* The fencing token; see koc_leader_state_term().  Returns 1 when leading. */
KOC_EXPORT int koc_manager_get_term(koc_manager *m, uint64_t *ret_transitions, char *holder,
                                    size_t size);
/* True once the shutdown has started. */
KOC_EXPORT bool koc_manager_is_stopping(koc_manager *m);

/* --- parts (borrowed references, valid while the manager lives) ------------ */

KOC_EXPORT sd_event *koc_manager_get_event(koc_manager *m);
KOC_EXPORT koc_client *koc_manager_get_client(koc_manager *m);
KOC_EXPORT koc_cluster_config *koc_manager_get_cluster_config(koc_manager *m);
/* NULL when leader election is off. */
KOC_EXPORT koc_leader *koc_manager_get_leader(koc_manager *m);
KOC_EXPORT koc_probes *koc_manager_get_probes(koc_manager *m);
KOC_EXPORT koc_metrics *koc_manager_get_metrics(koc_manager *m);
/* The manager's cache (koc/cache.h): the informers of its controllers and
 * those koc_cache_add_informer() asked for; valid as long as the manager. */
KOC_EXPORT koc_cache *koc_manager_get_cache(koc_manager *m);
KOC_EXPORT koc_shutdown *koc_manager_get_shutdown(koc_manager *m);
/* This replica's identity ("" without leader election). */
KOC_EXPORT const char *koc_manager_get_identity(koc_manager *m);
/* The Lease's namespace and name (NULL without leader election). */
KOC_EXPORT const char *koc_manager_get_lease_namespace(koc_manager *m);
KOC_EXPORT const char *koc_manager_get_lease_name(koc_manager *m);
/* --- RBAC --------------------------------------------------------------------- */

/* The manager knows the RBAC rules its program needs, and --print-rbac
 * prints them (see koc_manager_config.print_rbac): list and watch of every
 * informer of its cache (controllers' primaries, owns() and watches(),
 * koc_cache_add_informer()), in their namespace or cluster-wide; create and
 * patch of Events (events.k8s.io and core) once a controller exists; update
 * of the primary's "finalizers" subresource for a controller that owns
 * objects (its ownerReferences set blockOwnerDeletion, which the
 * OwnerReferencesPermissionEnforcement admission checks); the Lease (get,
 * watch, create, update in its namespace); and what the program declares
 * here: its writes and reads through the API, one line per type:
 *
 *   koc_manager_declare_access(m, &deployments, "get,create,update,patch,delete");
 *   koc_manager_declare_access(m, &memcacheds, "patch,status/update,status/patch");
 *
 * verbs: comma-separated get, list, watch, create, update, patch, delete,
 * deletecollection, each optionally of a subresource ("status/patch" is
 * patch of "memcacheds/status").  Declared in every namespace; the _in
 * variant names one (a namespaced operator's Role).  -EINVAL (and a warn line
 * naming the item) for an unknown verb or a bad resource.  Loop thread,
 * before koc_manager_run(). */
KOC_EXPORT int koc_manager_declare_access_sized(koc_manager *m, size_t res_size,
                                                const koc_resource *res, const char *namespace_,
                                                const char *verbs);
#define koc_manager_declare_access(m, res, verbs)                                                  \
        koc_manager_declare_access_sized((m), sizeof(koc_resource), (res), NULL, (verbs))
#define koc_manager_declare_access_in(m, res, namespace_, verbs)                                   \
        koc_manager_declare_access_sized((m), sizeof(koc_resource), (res), (namespace_), (verbs))
/* True when the manager was made with --print-rbac: koc_manager_run() will
 * print the rules and return 0; nothing connects. */
KOC_EXPORT bool koc_manager_is_printing_rbac(koc_manager *m);

/* Ports actually bound (useful with ":0"); -ENXIO when disabled. */
KOC_EXPORT int koc_manager_get_health_port(koc_manager *m, uint16_t *ret_port);
KOC_EXPORT int koc_manager_get_metrics_port(koc_manager *m, uint16_t *ret_port);

#ifdef __cplusplus
}
#endif
#endif

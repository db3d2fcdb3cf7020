/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The manager's configuration: defaults, validation and the standard
 * command-line flags, named like kube-controller-manager's and
 * controller-runtime's so that manifests read the same.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "koc/log.h"
#include "koc/manager.h"
#include "koc/time.h"

#include "core/names.h"
#include "core/util.h"

enum flag_type {
        FLAG_STRING,
        FLAG_BOOL,
        FLAG_DURATION,
        FLAG_INT, /* program flags only */
};

struct flag {
        const char *name;
        enum flag_type type;
        size_t offset;
        const char *help;
};

union koc__flag_value {
        const char *s;
        int64_t i;
        bool b;
        uint64_t d;
};

#define F(n, t, field, h)                                                                          \
        { n, t, offsetof(koc_manager_config, field), h }

static const struct flag flags[] = {
        F("kubeconfig", FLAG_STRING, kubeconfig,
          "Path to a kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)."),
        F("leader-elect", FLAG_BOOL, leader_elect,
          "Elect a leader through a Lease; only the leader runs leader-only work."),
        F("leader-elect-lease-duration", FLAG_DURATION, lease_duration_usec,
          "How long standbys wait after the last renewal before taking over."),
        F("leader-elect-renew-deadline", FLAG_DURATION, renew_deadline_usec,
          "How long the leader retries renewing before it steps down."),
        F("leader-elect-retry-period", FLAG_DURATION, retry_period_usec,
          "Renewal cadence of the leader (and poll cadence without watch)."),
        F("leader-elect-resource-name", FLAG_STRING, leader_election_id,
          "Name of the Lease object."),
        F("leader-elect-resource-namespace", FLAG_STRING, leader_election_namespace,
          "Namespace of the Lease (default: POD_NAMESPACE or the kubeconfig's)."),
        F("leader-elect-gate-readiness", FLAG_BOOL, gate_readiness_on_leader,
          "Report ready (/readyz) only while leading."),
        F("leader-elect-exit-on-loss", FLAG_BOOL, exit_on_leadership_loss,
          "Shut down (exit 1) when leadership is lost, instead of standing by."),
        F("identity", FLAG_STRING, identity,
          "Identity in the Lease (default: $HOSTNAME, else a random UUID)."),
        F("health-probe-bind-address", FLAG_STRING, health_probe_bind_address,
          "Address of /livez, /readyz, /healthz (\"0\" disables; in a pod, \":8081\" so that "
          "the kubelet reaches it)."),
        F("metrics-bind-address", FLAG_STRING, metrics_bind_address,
          "Address of /metrics, not authenticated (\"0\" disables; \":8080\" serves every "
          "address)."),
        F("shutdown-drain-budget", FLAG_DURATION, shutdown_budget_usec,
          "Time for in-flight work after SIGTERM before the Lease is released."),
        F("shutdown-delay", FLAG_DURATION, shutdown_delay_usec,
          "Wait after SIGTERM (readiness already false) before the drain starts."),
        F("log-level", FLAG_STRING, log_level, "error, warn, info or debug."),
        F("log-format", FLAG_STRING, log_format, "logfmt or json."),
        F("print-rbac", FLAG_BOOL, print_rbac,
          "Print the RBAC rules this program needs as Helm values (rbac.rules) and exit, "
          "without connecting anywhere."),
        /* Secure metrics (serving/): kept together. */
        F("metrics-secure", FLAG_BOOL, metrics_secure,
          "Serve /metrics over HTTPS to those the cluster allows (TokenReview and "
          "SubjectAccessReview)."),
        F("metrics-cert-dir", FLAG_STRING, metrics_cert_dir,
          "Directory with tls.crt and tls.key for secure metrics (default: self-signed)."),
        F("metrics-cert-file", FLAG_STRING, metrics_cert_file,
          "Certificate file for secure metrics (with --metrics-key-file)."),
        F("metrics-key-file", FLAG_STRING, metrics_key_file,
          "Key file for secure metrics (with --metrics-cert-file)."),
        F("print-rbac-values-under", FLAG_STRING, print_rbac_values_under,
          "With --print-rbac, nest the values under this key: the name of charts/koc-example "
          "as a dependency of the chart that installs the program (e.g. koc-example)."),
        /* Admission webhooks (koc/webhook.h). */
        F("webhook-bind-address", FLAG_STRING, webhook_bind_address,
          "Address of the admission webhooks' HTTPS server (\"0\": \":9443\" when the "
          "program registers a webhook)."),
        F("webhook-cert-dir", FLAG_STRING, webhook_cert_dir,
          "Directory with tls.crt and tls.key for the webhook server (default: self-signed)."),
        F("webhook-timeout", FLAG_DURATION, webhook_timeout_usec,
          "Time a webhook handler has before the request is answered without it."),
        F("webhook-allow-on-timeout", FLAG_BOOL, webhook_allow_on_timeout,
          "Allow (instead of refuse) what a late webhook handler was asked about."),
};

#undef F

static void *field(koc_manager_config *cfg, const struct flag *f) {
        return (char *)cfg + f->offset;
}

static const void *cfield(const koc_manager_config *cfg, const struct flag *f) {
        return (const char *)cfg + f->offset;
}

KOC_EXPORT int koc_manager_config_init_sized(size_t cfg_size, koc_manager_config *cfg) {
        koc_manager_config d;

        if (!cfg || cfg_size < KOC__STRUCT_MIN_SIZE(koc_manager_config, kubeconfig))
                return -EINVAL;
        d = (koc_manager_config){
                .leader_elect = true,
                .lease_duration_usec = KOC_LEADER_DEFAULT_LEASE_DURATION_USEC,
                .renew_deadline_usec = KOC_LEADER_DEFAULT_RENEW_DEADLINE_USEC,
                .retry_period_usec = KOC_LEADER_DEFAULT_RETRY_PERIOD_USEC,
                .gate_readiness_on_leader = true,
                .liveness_margin_usec = KOC_MANAGER_DEFAULT_LIVENESS_MARGIN_USEC,
                .health_probe_bind_address = KOC_PROBES_DEFAULT_HEALTH_ADDRESS,
                .metrics_bind_address = KOC_PROBES_DEFAULT_METRICS_ADDRESS,
                .shutdown_budget_usec = KOC_SHUTDOWN_DEFAULT_BUDGET_USEC,
                .handle_signals = true,
                .webhook_bind_address = "0",
                .webhook_timeout_usec = 8 * KOC_USEC_PER_SEC,
        };
        /* A newer program's fields beyond ours are zero: their defaults. */
        memset(cfg, 0, cfg_size);
        memcpy(cfg, &d, cfg_size < sizeof d ? cfg_size : sizeof d);
        return 0;
}

/* Secure metrics: the serving pair and the addresses. */
static int validate_metrics_secure(const koc_manager_config *cfg, koc_error *err) {
        bool file = cfg->metrics_cert_file && cfg->metrics_cert_file[0];
        bool key = cfg->metrics_key_file && cfg->metrics_key_file[0];
        bool dir = cfg->metrics_cert_dir && cfg->metrics_cert_dir[0];

        if (file != key)
                return koc_error_set(err, -EINVAL,
                                     "--metrics-cert-file and --metrics-key-file go together");
        if (dir && file)
                return koc_error_set(err, -EINVAL,
                                     "--metrics-cert-dir=\"%s\" and --metrics-cert-file: give "
                                     "one or the other",
                                     cfg->metrics_cert_dir);
        if (!cfg->metrics_secure && (dir || file))
                return koc_error_set(err, -EINVAL,
                                     "--metrics-cert-%s: needs --metrics-secure",
                                     dir ? "dir" : "file");
        /* Port 0 picks a free port for each: two listeners, not one. */
        size_t n = strlen(cfg->metrics_bind_address);
        bool any_port = n >= 2 && strcmp(cfg->metrics_bind_address + n - 2, ":0") == 0;
        if (cfg->metrics_secure && strcmp(cfg->metrics_bind_address, "0") != 0 && !any_port &&
            strcmp(cfg->metrics_bind_address, cfg->health_probe_bind_address) == 0)
                return koc_error_set(err, -EINVAL,
                                     "--metrics-bind-address=\"%s\": with --metrics-secure it "
                                     "must differ from --health-probe-bind-address (the probes "
                                     "stay plain HTTP)",
                                     cfg->metrics_bind_address);
        return 0;
}

static const char *fmt_dur(uint64_t usec, char *buf, size_t size) {
        return koc_format_duration(usec, buf, size);
}

KOC_EXPORT int koc_manager_config_validate_sized(size_t cfg_size,
                                                 const koc_manager_config *user_cfg,
                                                 koc_error *err) {
        koc_manager_config copy;
        const koc_manager_config *cfg = &copy;
        char a[32], b[32];

        if (!user_cfg)
                return koc_error_set(err, -EINVAL, "manager configuration missing");
        if (KOC__IMPORT(&copy, user_cfg, cfg_size, kubeconfig) < 0)
                return koc_error_set(err, -EINVAL,
                                     "manager configuration: size %zu does not match this "
                                     "library (%zu)",
                                     cfg_size, sizeof copy);

        if (cfg->leader_elect) {
                char q[160];
                if (!cfg->leader_election_id || !cfg->leader_election_id[0])
                        return koc_error_set(err, -EINVAL,
                                             "--leader-elect-resource-name is required when "
                                             "leader election is on");
                const char *bad = koc__dns1123_subdomain_error(cfg->leader_election_id);
                if (bad)
                        return koc_error_set(err, -EINVAL,
                                             "--leader-elect-resource-name=\"%s\": not a valid "
                                             "Lease name: %s",
                                             koc__name_quote(cfg->leader_election_id, q, sizeof q),
                                             bad);
                bad = cfg->leader_election_namespace
                              ? koc__dns1123_label_error(cfg->leader_election_namespace)
                              : NULL;
                if (bad)
                        return koc_error_set(err, -EINVAL,
                                             "--leader-elect-resource-namespace=\"%s\": not a "
                                             "valid namespace: %s",
                                             koc__name_quote(cfg->leader_election_namespace, q,
                                                             sizeof q),
                                             bad);
                if (cfg->identity &&
                    (!cfg->identity[0] || strlen(cfg->identity) > KOC_LEADER_IDENTITY_MAX))
                        return koc_error_set(err, -EINVAL,
                                             "--identity=\"%s\": must be 1 to %d characters",
                                             cfg->identity, KOC_LEADER_IDENTITY_MAX);
                if (cfg->lease_duration_usec < KOC_USEC_PER_SEC)
                        return koc_error_set(err, -EINVAL,
                                             "--leader-elect-lease-duration=%s: must be at least "
                                             "1s (the Lease stores whole seconds)",
                                             fmt_dur(cfg->lease_duration_usec, a, sizeof a));
                if (cfg->renew_deadline_usec == 0 ||
                    cfg->renew_deadline_usec >= cfg->lease_duration_usec)
                        return koc_error_set(err, -EINVAL,
                                             "--leader-elect-renew-deadline=%s: must be above 0 "
                                             "and shorter than --leader-elect-lease-duration=%s",
                                             fmt_dur(cfg->renew_deadline_usec, a, sizeof a),
                                             fmt_dur(cfg->lease_duration_usec, b, sizeof b));
                if (cfg->retry_period_usec == 0 ||
                    cfg->retry_period_usec > cfg->renew_deadline_usec)
                        return koc_error_set(err, -EINVAL,
                                             "--leader-elect-retry-period=%s: must be above 0 "
                                             "and at most --leader-elect-renew-deadline=%s",
                                             fmt_dur(cfg->retry_period_usec, a, sizeof a),
                                             fmt_dur(cfg->renew_deadline_usec, b, sizeof b));
        }
        if (!cfg->health_probe_bind_address || !cfg->health_probe_bind_address[0])
                return koc_error_set(err, -EINVAL,
                                     "--health-probe-bind-address: empty (use \"0\" to disable)");
        if (!cfg->metrics_bind_address || !cfg->metrics_bind_address[0])
                return koc_error_set(err, -EINVAL,
                                     "--metrics-bind-address: empty (use \"0\" to disable)");
        int rm = validate_metrics_secure(cfg, err);
        if (rm < 0)
                return rm;
        if (cfg->print_rbac_values_under) {
                /* A Helm dependency's name or alias: one YAML key, nothing
                 * that could make the printed values say something else. */
                const char *k = cfg->print_rbac_values_under;
                size_t n = strlen(k);
                bool ok = n >= 1 && n <= 63;
                for (size_t i = 0; ok && i < n; i++)
                        ok = (k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
                             (k[i] >= '0' && k[i] <= '9') || k[i] == '-' || k[i] == '_';
                if (!ok) {
                        char q[160];
                        return koc_error_set(err, -EINVAL,
                                             "--print-rbac-values-under=\"%s\": must be 1 to 63 "
                                             "characters of A-Z, a-z, 0-9, '-' and '_' (a chart "
                                             "dependency's name)",
                                             koc__name_quote(k, q, sizeof q));
                }
        }
        if (cfg->webhook_timeout_usec > 30 * KOC_USEC_PER_SEC)
                return koc_error_set(err, -EINVAL,
                                     "--webhook-timeout=%s: must be at most 30s (the API "
                                     "server waits at most 30s for a webhook)",
                                     fmt_dur(cfg->webhook_timeout_usec, a, sizeof a));
        if (cfg->shutdown_budget_usec == 0)
                return koc_error_set(err, -EINVAL, "--shutdown-drain-budget=0: must be above 0");
        if (cfg->shutdown_delay_usec >= cfg->shutdown_budget_usec)
                return koc_error_set(err, -EINVAL,
                                     "--shutdown-delay=%s: must be shorter than "
                                     "--shutdown-drain-budget=%s (the budget includes it)",
                                     fmt_dur(cfg->shutdown_delay_usec, a, sizeof a),
                                     fmt_dur(cfg->shutdown_budget_usec, b, sizeof b));
        if (cfg->log_level && koc_log_level_from_string(cfg->log_level) < 0)
                return koc_error_set(err, -EINVAL,
                                     "--log-level=\"%s\": use error, warn, info or debug",
                                     cfg->log_level);
        if (cfg->log_format && strcmp(cfg->log_format, "logfmt") != 0 &&
            strcmp(cfg->log_format, "json") != 0)
                return koc_error_set(err, -EINVAL, "--log-format=\"%s\": use logfmt or json",
                                     cfg->log_format);
        return 0;
}

static const struct flag *find_flag(const char *name, size_t len) {
        for (size_t i = 0; i < KOC_ELEMENTSOF(flags); i++)
                if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
                        return &flags[i];
        return NULL;
}

/* Go's strconv.ParseBool, as the flag package accepts. */
static int parse_bool(const char *s, bool *ret) {
        static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
        static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};

        for (size_t i = 0; i < KOC_ELEMENTSOF(yes); i++)
                if (strcmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
        for (size_t i = 0; i < KOC_ELEMENTSOF(no); i++)
                if (strcmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        return -EINVAL;
}

static void print_value(FILE *out, const koc_manager_config *cfg, const struct flag *f) {
        char buf[32];

        switch (f->type) {
        case FLAG_STRING: {
                const char *s = *(const char *const *)cfield(cfg, f);
                if (s)
                        fprintf(out, " (default \"%s\")", s);
                break;
        }
        case FLAG_BOOL:
                fprintf(out, " (default %s)", *(const bool *)cfield(cfg, f) ? "true" : "false");
                break;
        case FLAG_DURATION:
                fprintf(out, " (default %s)",
                        koc_format_duration(*(const uint64_t *)cfield(cfg, f), buf, sizeof buf));
                break;
        case FLAG_INT:
                break;
        }
}

static void print_usage_with(FILE *out, const char *program, const koc_manager_config *defaults) {
        fprintf(out, "Usage: %s [FLAGS]\n\nFlags:\n", program ? program : "operator");
        for (size_t i = 0; i < KOC_ELEMENTSOF(flags); i++) {
                const struct flag *f = &flags[i];
                const char *arg = f->type == FLAG_STRING     ? " string"
                                  : f->type == FLAG_DURATION ? " duration"
                                                             : "";
                fprintf(out, "  --%s%s\n        %s", f->name, arg, f->help);
                print_value(out, defaults, f);
                fputc('\n', out);
        }
        fprintf(out, "  -h, --help\n        Show this help.\n");
        if (defaults->n_program_flags > 0)
                fprintf(out, "\nFlags of this program:\n");
        for (unsigned i = 0; i < defaults->n_program_flags && i < KOC_MANAGER_MAX_PROGRAM_FLAGS;
             i++) {
                const struct koc_manager_program_flag *p = &defaults->program_flags[i];
                char buf[32];
                switch (p->type) {
                case FLAG_STRING:
                        fprintf(out, "  --%s string\n        %s", p->name, p->help);
                        if (p->def.s)
                                fprintf(out, " (default \"%s\")", p->def.s);
                        break;
                case FLAG_INT:
                        fprintf(out, "  --%s int\n        %s (default %" PRId64 ")", p->name,
                                p->help, p->def.i);
                        break;
                case FLAG_BOOL:
                        fprintf(out, "  --%s\n        %s (default %s)", p->name, p->help,
                                p->def.b ? "true" : "false");
                        break;
                case FLAG_DURATION:
                        fprintf(out, "  --%s duration\n        %s (default %s)", p->name, p->help,
                                koc_format_duration(p->def.d, buf, sizeof buf));
                        break;
                }
                fputc('\n', out);
        }
        fprintf(out, "\nDurations are Go-style: 500ms, 15s, 1m30s.\n");
}

KOC_EXPORT void koc_manager_print_usage(FILE *out, const char *program) {
        koc_manager_config defaults;

        koc_manager_config_init(&defaults);
        print_usage_with(out ? out : stdout, program, &defaults);
}

static int set_value(koc_manager_config *cfg, const struct flag *f, const char *value,
                     koc_error *err) {
        int r;

        switch (f->type) {
        case FLAG_STRING:
                *(const char **)field(cfg, f) = value;
                return 0;
        case FLAG_BOOL: {
                bool b;
                if (parse_bool(value, &b) < 0)
                        return koc_error_set(err, -EINVAL,
                                             "--%s=\"%s\": not a boolean (use true or false)",
                                             f->name, value);
                *(bool *)field(cfg, f) = b;
                return 0;
        }
        case FLAG_DURATION: {
                uint64_t usec;
                r = koc_parse_duration(value, &usec);
                if (r == -ERANGE)
                        return koc_error_set(err, -EINVAL, "--%s=\"%s\": duration out of range",
                                             f->name, value);
                if (r < 0)
                        return koc_error_set(err, -EINVAL,
                                             "--%s=\"%s\": not a duration (use e.g. 500ms, 15s, "
                                             "1m30s)",
                                             f->name, value);
                *(uint64_t *)field(cfg, f) = usec;
                return 0;
        }
        case FLAG_INT:
                break;
        }
        return -EINVAL;
}

/* --- the program's own flags --------------------------------------------------- */

static bool program_flag_name_ok(const char *name) {
        size_t n = name ? strlen(name) : 0;
        if (n == 0 || n > 63 || name[0] < 'a' || name[0] > 'z')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
                      name[i] == '-'))
                        return false;
        return true;
}

static const struct koc_manager_program_flag *find_program_flag(const koc_manager_config *cfg,
                                                                const char *name, size_t len) {
        for (unsigned i = 0; i < cfg->n_program_flags && i < KOC_MANAGER_MAX_PROGRAM_FLAGS; i++)
                if (strlen(cfg->program_flags[i].name) == len &&
                    strncmp(cfg->program_flags[i].name, name, len) == 0)
                        return &cfg->program_flags[i];
        return NULL;
}

static const struct flag *find_flag(const char *name, size_t len);

/* The program's struct may be older than this library's: a program flag
 * needs the whole of it. */
static int add_program_flag(size_t cfg_size, koc_manager_config *cfg, const char *name,
                            const char *help, int type, void *var,
                            struct koc_manager_program_flag **ret) {
        if (!cfg || cfg_size < sizeof *cfg || !var || !help || !program_flag_name_ok(name))
                return -EINVAL;
        if (find_flag(name, strlen(name)) || find_program_flag(cfg, name, strlen(name)) ||
            strcmp(name, "help") == 0 || strcmp(name, "h") == 0)
                return -EEXIST;
        if (cfg->n_program_flags >= KOC_MANAGER_MAX_PROGRAM_FLAGS)
                return -ENOSPC;
        struct koc_manager_program_flag *p = &cfg->program_flags[cfg->n_program_flags++];
        *p = (struct koc_manager_program_flag){
                .name = name, .help = help, .type = type, .var = var};
        *ret = p;
        return 0;
}

KOC_EXPORT int koc_manager_add_flag_string_sized(size_t cfg_size, koc_manager_config *cfg,
                                                 const char *name, const char *def,
                                                 const char *help, const char **var) {
        struct koc_manager_program_flag *p;
        int r = add_program_flag(cfg_size, cfg, name, help, FLAG_STRING, var, &p);
        if (r < 0)
                return r;
        p->def.s = def;
        *var = def;
        return 0;
}

KOC_EXPORT int koc_manager_add_flag_int_sized(size_t cfg_size, koc_manager_config *cfg,
                                              const char *name, int64_t def, const char *help,
                                              int64_t *var) {
        struct koc_manager_program_flag *p;
        int r = add_program_flag(cfg_size, cfg, name, help, FLAG_INT, var, &p);
        if (r < 0)
                return r;
        p->def.i = def;
        *var = def;
        return 0;
}

KOC_EXPORT int koc_manager_add_flag_bool_sized(size_t cfg_size, koc_manager_config *cfg,
                                               const char *name, bool def, const char *help,
                                               bool *var) {
        struct koc_manager_program_flag *p;
        int r = add_program_flag(cfg_size, cfg, name, help, FLAG_BOOL, var, &p);
        if (r < 0)
                return r;
        p->def.b = def;
        *var = def;
        return 0;
}

KOC_EXPORT int koc_manager_add_flag_duration_sized(size_t cfg_size, koc_manager_config *cfg,
                                                   const char *name, uint64_t def_usec,
                                                   const char *help, uint64_t *var) {
        struct koc_manager_program_flag *p;
        int r = add_program_flag(cfg_size, cfg, name, help, FLAG_DURATION, var, &p);
        if (r < 0)
                return r;
        p->def.d = def_usec;
        *var = def_usec;
        return 0;
}

/* Parses one program flag's value into *out (committed to its variable only
 * when the whole command line is good). */
static int parse_program_value(const struct koc_manager_program_flag *p, const char *value,
                               union koc__flag_value *out, koc_error *err) {
        int r;
        switch (p->type) {
        case FLAG_STRING:
                out->s = value;
                return 0;
        case FLAG_BOOL:
                if (parse_bool(value, &out->b) < 0)
                        return koc_error_set(err, -EINVAL,
                                             "--%s=\"%s\": not a boolean (use true or false)",
                                             p->name, value);
                return 0;
        case FLAG_INT: {
                char *end = NULL;
                errno = 0;
                long long v = strtoll(value, &end, 0);
                if (!*value || *end || (value[0] == '0' && value[1] && value[1] != 'x' &&
                                        value[1] != 'X'))
                        return koc_error_set(err, -EINVAL, "--%s=\"%s\": not an integer",
                                             p->name, value);
                if (errno == ERANGE)
                        return koc_error_set(err, -EINVAL, "--%s=\"%s\": integer out of range",
                                             p->name, value);
                out->i = v;
                return 0;
        }
        case FLAG_DURATION:
                r = koc_parse_duration(value, &out->d);
                if (r == -ERANGE)
                        return koc_error_set(err, -EINVAL, "--%s=\"%s\": duration out of range",
                                             p->name, value);
                if (r < 0)
                        return koc_error_set(err, -EINVAL,
                                             "--%s=\"%s\": not a duration (use e.g. 500ms, 15s, "
                                             "1m30s)",
                                             p->name, value);
                return 0;
        }
        return -EINVAL;
}

static void commit_program_value(const struct koc_manager_program_flag *p,
                                 const union koc__flag_value *v) {
        switch (p->type) {
        case FLAG_STRING:
                *(const char **)p->var = v->s;
                break;
        case FLAG_BOOL:
                *(bool *)p->var = v->b;
                break;
        case FLAG_INT:
                *(int64_t *)p->var = v->i;
                break;
        case FLAG_DURATION:
                *(uint64_t *)p->var = v->d;
                break;
        }
}

KOC_EXPORT int koc_manager_parse_flags_sized(size_t cfg_size, koc_manager_config *cfg, int argc,
                                             char *argv[], koc_error *err) {
        koc_manager_config defaults, c;
        int r;

        if (!cfg || argc < 0 || (argc > 0 && !argv))
                return koc_error_set(err, -EINVAL, "koc_manager_parse_flags: bad arguments");
        /* Parsed into a copy: cfg changes only when every flag is good. */
        if (KOC__IMPORT(&c, cfg, cfg_size, kubeconfig) < 0)
                return koc_error_set(err, -EINVAL,
                                     "koc_manager_parse_flags: configuration size %zu does not "
                                     "match this library (%zu)",
                                     cfg_size, sizeof c);
        defaults = c;
        if (c.n_program_flags > KOC_MANAGER_MAX_PROGRAM_FLAGS)
                return koc_error_set(err, -EINVAL, "koc_manager_parse_flags: bad program flags");
        union koc__flag_value program_values[KOC_MANAGER_MAX_PROGRAM_FLAGS];
        bool given[KOC_MANAGER_MAX_PROGRAM_FLAGS] = {false};

        for (int i = 1; i < argc; i++) {
                const char *arg = argv[i], *name, *eq, *value = NULL;
                const struct flag *f;
                size_t len;

                if (!arg)
                        break;
                if (strcmp(arg, "--") == 0) {
                        if (i + 1 < argc)
                                return koc_error_set(err, -EINVAL,
                                                     "unexpected argument \"%s\" (this program "
                                                     "takes flags only)",
                                                     argv[i + 1]);
                        break;
                }
                if (arg[0] != '-' || arg[1] == '\0')
                        return koc_error_set(err, -EINVAL,
                                             "unexpected argument \"%s\" (this program takes "
                                             "flags only; see --help)",
                                             arg);
                name = arg + (arg[1] == '-' ? 2 : 1);
                eq = strchr(name, '=');
                len = eq ? (size_t)(eq - name) : strlen(name);

                if ((len == 4 && strncmp(name, "help", 4) == 0) || (len == 1 && name[0] == 'h')) {
                        print_usage_with(stdout, argc > 0 ? argv[0] : NULL, &defaults);
                        return KOC_MANAGER_FLAGS_HELP;
                }

                f = find_flag(name, len);
                const struct koc_manager_program_flag *pf =
                        f ? NULL : find_program_flag(&c, name, len);
                if (!f && !pf)
                        return koc_error_set(err, -EINVAL, "unknown flag \"%.*s\" (see --help)",
                                             (int)(name - arg + len), arg);
                int type = f ? (int)f->type : pf->type;
                const char *fname = f ? f->name : pf->name;
                if (eq)
                        value = eq + 1;
                else if (type == FLAG_BOOL)
                        value = "true";
                else if (i + 1 < argc && argv[i + 1])
                        value = argv[++i];
                else
                        return koc_error_set(err, -EINVAL, "--%s: missing value", fname);

                if (pf) {
                        size_t k = (size_t)(pf - c.program_flags);
                        r = parse_program_value(pf, value, &program_values[k], err);
                        given[k] = r >= 0;
                } else
                        r = set_value(&c, f, value, err);
                if (r < 0)
                        return r;
        }

        r = koc_manager_config_validate(&c, err);
        if (r < 0)
                return r;
        /* Only the bytes the caller has: an older program's struct is shorter. */
        memcpy(cfg, &c, cfg_size < sizeof c ? cfg_size : sizeof c);
        for (unsigned k = 0; k < c.n_program_flags && k < KOC_MANAGER_MAX_PROGRAM_FLAGS; k++)
                if (given[k])
                        commit_program_value(&c.program_flags[k], &program_values[k]);
        return 0;
}

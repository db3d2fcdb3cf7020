/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The manager's configuration: defaults, validation and the standard
 * command-line flags, named like kube-controller-manager's and
 * controller-runtime's so that manifests read the same.
 */
#include <errno.h>
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
};

struct flag {
        const char *name;
        enum flag_type type;
        size_t offset;
        const char *help;
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
        fprintf(out, "  -h, --help\n        Show this help.\n\n"
                     "Durations are Go-style: 500ms, 15s, 1m30s.\n");
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
        }
        return -EINVAL;
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
                if (!f)
                        return koc_error_set(err, -EINVAL, "unknown flag \"%.*s\" (see --help)",
                                             (int)(name - arg + len), arg);
                if (eq)
                        value = eq + 1;
                else if (f->type == FLAG_BOOL)
                        value = "true";
                else if (i + 1 < argc && argv[i + 1])
                        value = argv[++i];
                else
                        return koc_error_set(err, -EINVAL, "--%s: missing value", f->name);

                r = set_value(&c, f, value, err);
                if (r < 0)
                        return r;
        }

        r = koc_manager_config_validate(&c, err);
        if (r < 0)
                return r;
        /* Only the bytes the caller has: an older program's struct is shorter. */
        memcpy(cfg, &c, cfg_size < sizeof c ? cfg_size : sizeof c);
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Leader election configuration: defaults, setters and validation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/names.h"
#include "core/util.h"
#include "koc/time.h"
#include "leader-internal.h"

KOC_EXPORT int koc_leader_config_new(const char *namespace_, const char *name,
                                     koc_leader_config **ret) {
        if (!ret)
                return -EINVAL;
        koc_leader_config *cfg = calloc(1, sizeof *cfg);
        if (!cfg)
                return -ENOMEM;
        cfg->lease_duration = KOC_LEADER_DEFAULT_LEASE_DURATION_USEC;
        cfg->renew_deadline = KOC_LEADER_DEFAULT_RENEW_DEADLINE_USEC;
        cfg->retry_period = KOC_LEADER_DEFAULT_RETRY_PERIOD_USEC;
        cfg->observe_timeout = KOC_LEADER_DEFAULT_OBSERVE_TIMEOUT_USEC;
        cfg->identity_mode = KOC_LEADER_IDENTITY_POD_NAME_OR_UUID;
        if (koc__set_string(&cfg->namespace_, namespace_) < 0 || koc__set_string(&cfg->name, name) < 0) {
                koc_leader_config_free(cfg);
                return -ENOMEM;
        }
        *ret = cfg;
        return 0;
}

KOC_EXPORT koc_leader_config *koc_leader_config_free(koc_leader_config *cfg) {
        if (!cfg)
                return NULL;
        free(cfg->namespace_);
        free(cfg->name);
        free(cfg->identity);
        free(cfg);
        return NULL;
}

KOC_EXPORT int koc_leader_config_set_namespace(koc_leader_config *cfg, const char *namespace_) {
        if (!cfg)
                return -EINVAL;
        return koc__set_string(&cfg->namespace_, namespace_);
}

KOC_EXPORT int koc_leader_config_set_name(koc_leader_config *cfg, const char *name) {
        if (!cfg)
                return -EINVAL;
        return koc__set_string(&cfg->name, name);
}

KOC_EXPORT void koc_leader_config_set_lease_duration(koc_leader_config *cfg, uint64_t usec) {
        if (cfg)
                cfg->lease_duration = usec;
}

KOC_EXPORT void koc_leader_config_set_renew_deadline(koc_leader_config *cfg, uint64_t usec) {
        if (cfg)
                cfg->renew_deadline = usec;
}

KOC_EXPORT void koc_leader_config_set_retry_period(koc_leader_config *cfg, uint64_t usec) {
        if (cfg)
                cfg->retry_period = usec;
}

KOC_EXPORT void koc_leader_config_set_observe_timeout(koc_leader_config *cfg, uint64_t usec) {
        if (cfg)
                cfg->observe_timeout = usec;
}

KOC_EXPORT void koc_leader_config_set_identity_mode(koc_leader_config *cfg,
                                                    koc_leader_identity_mode mode) {
        if (cfg)
                cfg->identity_mode = mode;
}

KOC_EXPORT int koc_leader_config_set_identity(koc_leader_config *cfg, const char *identity) {
        if (!cfg)
                return -EINVAL;
        int r = koc__set_string(&cfg->identity, identity);
        if (r < 0)
                return r;
        cfg->identity_mode = KOC_LEADER_IDENTITY_CUSTOM;
        return 0;
}

KOC_EXPORT void koc_leader_config_set_release_on_stop(koc_leader_config *cfg, bool b) {
        if (cfg)
                cfg->release_on_stop = b;
}

KOC_EXPORT uint64_t koc_leader_config_get_lease_duration(const koc_leader_config *cfg) {
        return cfg ? cfg->lease_duration : 0;
}

KOC_EXPORT uint64_t koc_leader_config_get_renew_deadline(const koc_leader_config *cfg) {
        return cfg ? cfg->renew_deadline : 0;
}

KOC_EXPORT uint64_t koc_leader_config_get_retry_period(const koc_leader_config *cfg) {
        return cfg ? cfg->retry_period : 0;
}

static bool is_empty(const char *s) {
        return !s || !s[0];
}

KOC_EXPORT int koc_leader_config_validate(const koc_leader_config *cfg, koc_error *err) {
        char a[32], b[32];
        if (!cfg)
                return koc_error_set(err, -EINVAL, "leader config: no configuration given");
        /* The namespace is a DNS-1123 label and a Lease's name a subdomain,
         * as the API server validates them: anything else (a "/" or "?"
         * above all) is refused here, before it can reach a request path. */
        char q[160];
        const char *bad = koc__dns1123_label_error(cfg->namespace_);
        if (bad)
                return koc_error_set(err, -EINVAL, "leader config: namespace \"%s\": %s",
                                     koc__name_quote(cfg->namespace_ ? cfg->namespace_ : "", q,
                                                     sizeof q),
                                     bad);
        bad = koc__dns1123_subdomain_error(cfg->name);
        if (bad)
                return koc_error_set(err, -EINVAL,
                                     "leader config: name (the Lease's name) \"%s\": %s",
                                     koc__name_quote(cfg->name ? cfg->name : "", q, sizeof q),
                                     bad);
        if (cfg->identity_mode == KOC_LEADER_IDENTITY_CUSTOM) {
                if (is_empty(cfg->identity))
                        return koc_error_set(err, -EINVAL,
                                             "leader config: identity must not be empty");
                if (strlen(cfg->identity) > KOC_LEADER_IDENTITY_MAX)
                        return koc_error_set(err, -EINVAL,
                                             "leader config: identity is longer than %d characters",
                                             KOC_LEADER_IDENTITY_MAX);
        } else if (cfg->identity_mode != KOC_LEADER_IDENTITY_POD_NAME_OR_UUID &&
                   cfg->identity_mode != KOC_LEADER_IDENTITY_GENERATED) {
                return koc_error_set(err, -EINVAL, "leader config: identity mode %d is unknown",
                                     (int)cfg->identity_mode);
        }
        if (cfg->retry_period == 0)
                return koc_error_set(err, -EINVAL, "leader config: retry_period must not be zero");
        if (cfg->lease_duration < KOC_USEC_PER_SEC)
                return koc_error_set(err, -EINVAL,
                                     "leader config: lease_duration (%s) must be at least 1s "
                                     "(the Lease stores whole seconds)",
                                     koc_format_duration(cfg->lease_duration, a, sizeof a));
        if (cfg->lease_duration > (uint64_t)INT32_MAX * KOC_USEC_PER_SEC)
                return koc_error_set(err, -EINVAL, "leader config: lease_duration is too long");
        if (cfg->renew_deadline >= cfg->lease_duration)
                return koc_error_set(err, -EINVAL,
                                     "leader config: renew_deadline (%s) must be shorter than "
                                     "lease_duration (%s)",
                                     koc_format_duration(cfg->renew_deadline, a, sizeof a),
                                     koc_format_duration(cfg->lease_duration, b, sizeof b));
        if (cfg->retry_period > cfg->renew_deadline)
                return koc_error_set(err, -EINVAL,
                                     "leader config: retry_period (%s) must not be longer than "
                                     "renew_deadline (%s)",
                                     koc_format_duration(cfg->retry_period, a, sizeof a),
                                     koc_format_duration(cfg->renew_deadline, b, sizeof b));
        return 0;
}

int koc__leader_config_resolve_identity(const koc_leader_config *cfg, char *buf, size_t size) {
        char uuid[37];
        if (cfg->identity_mode == KOC_LEADER_IDENTITY_CUSTOM) {
                snprintf(buf, size, "%s", cfg->identity);
                return 0;
        }
        if (cfg->identity_mode == KOC_LEADER_IDENTITY_POD_NAME_OR_UUID) {
                const char *h = getenv("HOSTNAME");
                if (h && h[0] && strlen(h) <= KOC_LEADER_IDENTITY_MAX) {
                        snprintf(buf, size, "%s", h);
                        return 0;
                }
        }
        int r = koc_uuid_random(uuid);
        if (r < 0)
                return r;
        snprintf(buf, size, "%s", uuid);
        return 0;
}

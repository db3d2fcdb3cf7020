/* SPDX-License-Identifier: Apache-2.0 */
/* Leader election configuration: defaults, validation messages, identities. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "koc/leader.h"
#include "leader/leader-internal.h"

#define MS KOC_USEC_PER_MSEC
#define SEC KOC_USEC_PER_SEC

static koc_leader_config *new_cfg(void) {
        koc_leader_config *cfg = NULL;
        assert_int_equal(koc_leader_config_new("ns", "lease", &cfg), 0);
        return cfg;
}

static void test_defaults(void **state) {
        _koc_cleanup_(koc_leader_config_freep) koc_leader_config *cfg = new_cfg();
        koc_error err = {0};
        assert_int_equal(koc_leader_config_get_lease_duration(cfg), 15 * SEC);
        assert_int_equal(koc_leader_config_get_renew_deadline(cfg), 10 * SEC);
        assert_int_equal(koc_leader_config_get_retry_period(cfg), 2 * SEC);
        assert_int_equal(cfg->observe_timeout, 300 * SEC);
        assert_int_equal(cfg->identity_mode, KOC_LEADER_IDENTITY_POD_NAME_OR_UUID);
        assert_int_equal(koc_leader_config_validate(cfg, &err), 0);
}

/* Each bad configuration fails with -EINVAL and a message naming the field. */
static void expect_invalid(koc_leader_config *cfg, const char *field) {
        koc_error err = {0};
        assert_int_equal(koc_leader_config_validate(cfg, &err), -EINVAL);
        assert_int_equal(err.code, -EINVAL);
        if (!strstr(err.message, field))
                fail_msg("message \"%s\" does not name %s", err.message, field);
}

static void test_rejects_nonsense(void **state) {
        koc_leader_config *cfg = new_cfg();
        koc_leader_config_set_renew_deadline(cfg, 15 * SEC);
        expect_invalid(cfg, "renew_deadline");
        koc_leader_config_set_renew_deadline(cfg, 20 * SEC);
        expect_invalid(cfg, "renew_deadline");
        koc_leader_config_free(cfg);

        cfg = new_cfg();
        koc_leader_config_set_retry_period(cfg, 11 * SEC);
        expect_invalid(cfg, "retry_period");
        koc_leader_config_set_retry_period(cfg, 0);
        expect_invalid(cfg, "retry_period");
        koc_leader_config_free(cfg);

        cfg = new_cfg();
        koc_leader_config_set_lease_duration(cfg, 500 * MS);
        koc_leader_config_set_renew_deadline(cfg, 300 * MS);
        koc_leader_config_set_retry_period(cfg, 100 * MS);
        expect_invalid(cfg, "lease_duration");
        koc_leader_config_free(cfg);

        cfg = new_cfg();
        assert_int_equal(koc_leader_config_set_identity(cfg, ""), 0);
        expect_invalid(cfg, "identity");
        koc_leader_config_free(cfg);

        cfg = NULL;
        assert_int_equal(koc_leader_config_new("", "lease", &cfg), 0);
        expect_invalid(cfg, "namespace");
        koc_leader_config_free(cfg);

        cfg = NULL;
        assert_int_equal(koc_leader_config_new("ns", NULL, &cfg), 0);
        expect_invalid(cfg, "name");
        koc_leader_config_free(cfg);

        char big[400];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        cfg = new_cfg();
        assert_int_equal(koc_leader_config_set_identity(cfg, big), 0);
        expect_invalid(cfg, "identity");
        koc_leader_config_free(cfg);

        koc_error err = {0};
        assert_int_equal(koc_leader_config_validate(NULL, &err), -EINVAL);
        assert_int_equal(koc_leader_config_validate(NULL, NULL), -EINVAL);
}

/* Names that would change the request path (or that the API server refuses
 * anyway) are refused with a message naming the field and the value. */
static void expect_bad_names(const char *ns, const char *name, const char *field,
                             const char *value) {
        koc_leader_config *cfg = NULL;
        koc_error err = {0};
        assert_int_equal(koc_leader_config_new(ns, name, &cfg), 0);
        assert_int_equal(koc_leader_config_validate(cfg, &err), -EINVAL);
        if (!strstr(err.message, field) || !strstr(err.message, value))
                fail_msg("message \"%s\" does not name %s \"%s\"", err.message, field, value);
        koc_leader_config_free(cfg);
}

static void test_rejects_hostile_names(void **state) {
        expect_bad_names("ns", "a/b", "name", "\"a/b\"");
        expect_bad_names("ns", "lease?watch=true", "name", "\"lease?watch=true\"");
        expect_bad_names("ns", "x#y", "name", "\"x#y\"");
        expect_bad_names("ns", "..", "name", "RFC 1123 subdomain");
        expect_bad_names("ns", "Lease", "name", "\"Lease\"");
        expect_bad_names("ns/../kube-system", "lease", "namespace", "\"ns/../kube-system\"");
        expect_bad_names("a.b", "lease", "namespace", "RFC 1123 label");
        expect_bad_names("default?x=1", "lease", "namespace", "\"default?x=1\"");
        /* The value is quoted printable: a control character cannot forge a
         * second log line. */
        expect_bad_names("ns", "a\r\nlevel=info", "name", "\"a\\x0d\\x0alevel=info\"");
        expect_bad_names("ns\x7f", "lease", "namespace", "\"ns\\x7f\"");

        /* Edge lengths: a 63-character namespace and a 253-character name. */
        char ns[65], name[255];
        memset(ns, 'n', sizeof ns - 1);
        ns[sizeof ns - 1] = '\0';
        memset(name, 'l', sizeof name - 1);
        name[sizeof name - 1] = '\0';
        expect_bad_names(ns, "lease", "namespace", "no more than 63 characters");
        expect_bad_names("ns", name, "name", "no more than 253 characters");
        ns[63] = '\0';
        name[253] = '\0';
        name[100] = '.';
        koc_leader_config *cfg = NULL;
        assert_int_equal(koc_leader_config_new(ns, name, &cfg), 0);
        assert_int_equal(koc_leader_config_validate(cfg, NULL), 0);
        koc_leader_config_free(cfg);
}

static void test_short_durations_accepted(void **state) {
        _koc_cleanup_(koc_leader_config_freep) koc_leader_config *cfg = new_cfg();
        koc_leader_config_set_lease_duration(cfg, 1 * SEC);
        koc_leader_config_set_renew_deadline(cfg, 600 * MS);
        koc_leader_config_set_retry_period(cfg, 600 * MS); /* equal is allowed */
        assert_int_equal(koc_leader_config_validate(cfg, NULL), 0);
}

static void test_identity_modes(void **state) {
        _koc_cleanup_(koc_leader_config_freep) koc_leader_config *cfg = new_cfg();
        char a[LEASE_HOLDER_MAX], b[LEASE_HOLDER_MAX];

        setenv("HOSTNAME", "pod-7", 1);
        assert_int_equal(koc__leader_config_resolve_identity(cfg, a, sizeof a), 0);
        assert_string_equal(a, "pod-7");

        unsetenv("HOSTNAME");
        assert_int_equal(koc__leader_config_resolve_identity(cfg, a, sizeof a), 0);
        assert_int_equal(strlen(a), 36); /* a UUID */
        setenv("HOSTNAME", "", 1);
        assert_int_equal(koc__leader_config_resolve_identity(cfg, b, sizeof b), 0);
        assert_int_equal(strlen(b), 36);
        assert_string_not_equal(a, b);

        setenv("HOSTNAME", "pod-7", 1);
        koc_leader_config_set_identity_mode(cfg, KOC_LEADER_IDENTITY_GENERATED);
        assert_int_equal(koc__leader_config_resolve_identity(cfg, a, sizeof a), 0);
        assert_int_equal(strlen(a), 36);

        assert_int_equal(koc_leader_config_set_identity(cfg, "custom-1"), 0);
        assert_int_equal(cfg->identity_mode, KOC_LEADER_IDENTITY_CUSTOM);
        assert_int_equal(koc__leader_config_resolve_identity(cfg, a, sizeof a), 0);
        assert_string_equal(a, "custom-1");
        assert_int_equal(koc_leader_config_validate(cfg, NULL), 0);
}

static void test_null_safety(void **state) {
        assert_null(koc_leader_config_free(NULL));
        assert_int_equal(koc_leader_config_new("ns", "x", NULL), -EINVAL);
        assert_int_equal(koc_leader_config_set_name(NULL, "x"), -EINVAL);
        koc_leader_config_set_lease_duration(NULL, 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_rejects_nonsense),
                cmocka_unit_test(test_rejects_hostile_names),
                cmocka_unit_test(test_short_durations_accepted),
                cmocka_unit_test(test_identity_modes),
                cmocka_unit_test(test_null_safety),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

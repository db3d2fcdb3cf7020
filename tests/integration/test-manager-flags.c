/* SPDX-License-Identifier: Apache-2.0 */
/* The manager's configuration (defaults, flag parsing, validation messages)
 * and its liveness verdict. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "koc/manager.h"
#include "framework/manager/manager-internal.h"

#define ARGV(...) ((char *[]){"prog", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"prog", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(cfg, err, ...) koc_manager_parse_flags(cfg, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err)

static void init(koc_manager_config *cfg) {
        koc_manager_config_init(cfg);
        cfg->leader_election_id = "my-operator";
}

static void test_defaults(void **state) {
        koc_manager_config cfg;
        koc_error err = {0};

        koc_manager_config_init(&cfg);
        assert_true(cfg.leader_elect);
        assert_int_equal(cfg.lease_duration_usec, 15 * KOC_USEC_PER_SEC);
        assert_int_equal(cfg.renew_deadline_usec, 10 * KOC_USEC_PER_SEC);
        assert_int_equal(cfg.retry_period_usec, 2 * KOC_USEC_PER_SEC);
        /* Nothing listens beyond loopback unless asked. */
        assert_string_equal(cfg.health_probe_bind_address, "127.0.0.1:8081");
        assert_string_equal(cfg.metrics_bind_address, "127.0.0.1:8080");
        assert_int_equal(cfg.shutdown_budget_usec, 25 * KOC_USEC_PER_SEC);
        assert_int_equal(cfg.shutdown_delay_usec, 0);
        assert_true(cfg.gate_readiness_on_leader);
        assert_false(cfg.exit_on_leadership_loss);
        assert_null(cfg.kubeconfig);

        /* Leader election needs a Lease name. */
        assert_int_equal(koc_manager_config_validate(&cfg, &err), -EINVAL);
        assert_non_null(strstr(err.message, "--leader-elect-resource-name"));
        cfg.leader_election_id = "x";
        assert_int_equal(koc_manager_config_validate(&cfg, &err), 0);
        cfg.leader_elect = false;
        cfg.leader_election_id = NULL;
        assert_int_equal(koc_manager_config_validate(&cfg, &err), 0);
}

static void test_all_flags(void **state) {
        koc_manager_config cfg;
        koc_error err = {0};
        int r;

        init(&cfg);
        r = PARSE(&cfg, &err, "--kubeconfig=/tmp/kc", "--leader-elect=false",
                  "--leader-elect-lease-duration", "2s", "--leader-elect-renew-deadline=1500ms",
                  "-leader-elect-retry-period=250ms", "--leader-elect-resource-name=demo",
                  "--leader-elect-resource-namespace=ops", "--identity=pod-a",
                  "--health-probe-bind-address=127.0.0.1:0", "--metrics-bind-address", "0",
                  "--shutdown-drain-budget=3s", "--shutdown-delay=1s",
                  "--leader-elect-gate-readiness=false", "--leader-elect-exit-on-loss",
                  "--log-level=debug", "--log-format=json");
        assert_int_equal(r, 0);
        assert_string_equal(cfg.kubeconfig, "/tmp/kc");
        assert_false(cfg.leader_elect);
        assert_int_equal(cfg.lease_duration_usec, 2 * KOC_USEC_PER_SEC);
        assert_int_equal(cfg.renew_deadline_usec, 1500 * KOC_USEC_PER_MSEC);
        assert_int_equal(cfg.retry_period_usec, 250 * KOC_USEC_PER_MSEC);
        assert_string_equal(cfg.leader_election_id, "demo");
        assert_string_equal(cfg.leader_election_namespace, "ops");
        assert_string_equal(cfg.identity, "pod-a");
        assert_string_equal(cfg.health_probe_bind_address, "127.0.0.1:0");
        assert_string_equal(cfg.metrics_bind_address, "0");
        assert_int_equal(cfg.shutdown_budget_usec, 3 * KOC_USEC_PER_SEC);
        assert_int_equal(cfg.shutdown_delay_usec, 1 * KOC_USEC_PER_SEC);
        assert_false(cfg.gate_readiness_on_leader);
        assert_true(cfg.exit_on_leadership_loss);
        assert_string_equal(cfg.log_level, "debug");
        assert_string_equal(cfg.log_format, "json");

        /* A bare bool flag means true. */
        init(&cfg);
        cfg.leader_elect = false;
        assert_int_equal(PARSE(&cfg, &err, "--leader-elect"), 0);
        assert_true(cfg.leader_elect);
}

/* Each bad input fails with -EINVAL, a message naming the flag and the
 * value, and leaves cfg untouched. */
static void expect_error(const char *needle1, const char *needle2, int argc, char **argv) {
        koc_manager_config cfg, before;
        koc_error err = {0};

        init(&cfg);
        before = cfg;
        assert_int_equal(koc_manager_parse_flags(&cfg, argc, argv, &err), -EINVAL);
        assert_int_equal(err.code, -EINVAL);
        if (!strstr(err.message, needle1) || (needle2 && !strstr(err.message, needle2)))
                fail_msg("message \"%s\" lacks \"%s\"/\"%s\"", err.message, needle1,
                         needle2 ? needle2 : "");
        assert_memory_equal(&cfg, &before, sizeof cfg);
}

#define EXPECT_ERROR(n1, n2, ...) expect_error(n1, n2, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static void test_bad_flags(void **state) {
        EXPECT_ERROR("--leader-elect-lease-duration", "\"15\"", "--leader-elect-lease-duration=15");
        EXPECT_ERROR("--leader-elect-retry-period", "\"abc\"", "--leader-elect-retry-period",
                     "abc");
        EXPECT_ERROR("--leader-elect-renew-deadline", "missing value",
                     "--leader-elect-renew-deadline");
        EXPECT_ERROR("--leader-elect", "\"maybe\"", "--leader-elect=maybe");
        EXPECT_ERROR("unknown flag", "--bogus", "--bogus=1");
        EXPECT_ERROR("unexpected argument", "\"extra\"", "extra");
        EXPECT_ERROR("--log-level", "\"loud\"", "--log-level=loud");
        EXPECT_ERROR("--log-format", "\"xml\"", "--log-format=xml");
        /* Relations between values name both flags. */
        EXPECT_ERROR("--leader-elect-renew-deadline=20s", "--leader-elect-lease-duration=15s",
                     "--leader-elect-renew-deadline=20s");
        EXPECT_ERROR("--leader-elect-retry-period=5s", "--leader-elect-renew-deadline=2s",
                     "--leader-elect-renew-deadline=2s", "--leader-elect-retry-period=5s");
        EXPECT_ERROR("--leader-elect-retry-period=0s", NULL, "--leader-elect-retry-period=0");
        EXPECT_ERROR("--leader-elect-lease-duration=500ms", "1s",
                     "--leader-elect-lease-duration=500ms", "--leader-elect-renew-deadline=400ms",
                     "--leader-elect-retry-period=100ms");
        EXPECT_ERROR("--shutdown-delay=30s", "--shutdown-drain-budget=25s", "--shutdown-delay=30s");
        EXPECT_ERROR("--shutdown-drain-budget=0", NULL, "--shutdown-drain-budget=0");
        EXPECT_ERROR("--leader-elect-resource-name=\"Bad_Name\"", NULL,
                     "--leader-elect-resource-name=Bad_Name");
        EXPECT_ERROR("--leader-elect-resource-namespace=\"a.b\"", NULL,
                     "--leader-elect-resource-namespace=a.b");
        EXPECT_ERROR("--leader-elect-resource-name=\"a/b\"", "RFC 1123 subdomain",
                     "--leader-elect-resource-name=a/b");
        EXPECT_ERROR("--leader-elect-resource-namespace=\"x?watch=1\"", "RFC 1123 label",
                     "--leader-elect-resource-namespace=x?watch=1");
        EXPECT_ERROR("--identity", NULL, "--identity=");
        EXPECT_ERROR("--health-probe-bind-address", "empty", "--health-probe-bind-address=");
        EXPECT_ERROR("--leader-elect-lease-duration", "out of range",
                     "--leader-elect-lease-duration=99999999999999999h");
}

/* --metrics-secure and its certificate flags. */
static void test_metrics_secure_flags(void **state) {
        koc_manager_config cfg;
        koc_error err = {0};

        init(&cfg);
        assert_false(cfg.metrics_secure); /* the library's default: plain, on loopback */
        assert_int_equal(PARSE(&cfg, &err, "--metrics-secure", "--metrics-bind-address=:8443",
                               "--metrics-cert-dir=/certs"),
                         0);
        assert_true(cfg.metrics_secure);
        assert_string_equal(cfg.metrics_bind_address, ":8443");
        assert_string_equal(cfg.metrics_cert_dir, "/certs");
        init(&cfg);
        assert_int_equal(PARSE(&cfg, &err, "--metrics-secure=true", "--metrics-cert-file=/c",
                               "--metrics-key-file=/k"),
                         0);
        assert_string_equal(cfg.metrics_cert_file, "/c");
        assert_string_equal(cfg.metrics_key_file, "/k");
        init(&cfg);
        assert_int_equal(PARSE(&cfg, &err, "--metrics-secure=false"), 0);
        assert_false(cfg.metrics_secure);

        EXPECT_ERROR("--metrics-key-file", "together", "--metrics-secure",
                     "--metrics-cert-file=/c");
        EXPECT_ERROR("--metrics-cert-dir=\"/d\"", "one or the other", "--metrics-secure",
                     "--metrics-cert-dir=/d", "--metrics-cert-file=/c", "--metrics-key-file=/k");
        EXPECT_ERROR("--metrics-cert-dir", "needs --metrics-secure", "--metrics-cert-dir=/d");
        EXPECT_ERROR("--metrics-bind-address=\":8081\"", "--health-probe-bind-address",
                     "--metrics-secure", "--metrics-bind-address=:8081",
                     "--health-probe-bind-address=:8081");
}

static void test_help(void **state) {
        koc_manager_config cfg, before;
        koc_error err = {0};
        char buf[8192] = "";
        FILE *f;
        int saved, fds[2], r;
        ssize_t n;

        init(&cfg);
        before = cfg;
        /* Capture stdout to check the usage text. */
        assert_int_equal(pipe(fds), 0);
        fflush(stdout);
        saved = dup(STDOUT_FILENO);
        dup2(fds[1], STDOUT_FILENO);
        r = PARSE(&cfg, &err, "--leader-elect-lease-duration=3s", "--help");
        fflush(stdout);
        dup2(saved, STDOUT_FILENO);
        close(saved);
        close(fds[1]);
        n = read(fds[0], buf, sizeof buf - 1);
        close(fds[0]);
        assert_true(n > 0);
        buf[n] = '\0';

        assert_int_equal(r, KOC_MANAGER_FLAGS_HELP);
        assert_memory_equal(&cfg, &before, sizeof cfg);
        assert_non_null(strstr(buf, "--leader-elect-lease-duration duration"));
        assert_non_null(strstr(buf, "(default 15s)"));
        assert_non_null(strstr(buf, "--health-probe-bind-address string"));
        assert_non_null(strstr(buf, "(default \"127.0.0.1:8081\")"));
        assert_non_null(strstr(buf, "(default \"127.0.0.1:8080\")"));
        assert_non_null(strstr(buf, "(default \"my-operator\")"));

        assert_int_equal(PARSE(&cfg, &err, "-h"), KOC_MANAGER_FLAGS_HELP);

        f = tmpfile();
        assert_non_null(f);
        koc_manager_print_usage(f, "x");
        assert_true(ftell(f) > 500);
        fclose(f);
}


/* --- a program's own flags ----------------------------------------------------------- */

static const char *image;
static int64_t port;
static bool verbose;
static uint64_t interval;

static void add_program_flags(koc_manager_config *cfg) {
        assert_int_equal(koc_manager_add_flag_string(cfg, "image", "memcached:1.6.26-alpine",
                                                     "Container image.", &image),
                         0);
        assert_int_equal(koc_manager_add_flag_int(cfg, "port", 11211, "Container port.", &port),
                         0);
        assert_int_equal(koc_manager_add_flag_bool(cfg, "verbose", false, "Say more.", &verbose),
                         0);
        assert_int_equal(koc_manager_add_flag_duration(cfg, "resync-interval",
                                                       90 * KOC_USEC_PER_SEC, "How often.",
                                                       &interval),
                         0);
}

static void test_program_flags(void **state) {
        koc_manager_config cfg;
        koc_error err = {0};

        init(&cfg);
        add_program_flags(&cfg);
        /* The defaults are set at once. */
        assert_string_equal(image, "memcached:1.6.26-alpine");
        assert_int_equal(port, 11211);
        assert_false(verbose);
        assert_int_equal(interval, 90 * KOC_USEC_PER_SEC);
        /* Parsed with the manager's own, in any order and style. */
        assert_int_equal(PARSE(&cfg, &err, "--image", "memcached:1.6.30", "--port=-1",
                               "--leader-elect=false", "-verbose", "--resync-interval=1m30s5ms",
                               "--print-rbac"),
                         0);
        assert_string_equal(image, "memcached:1.6.30");
        assert_int_equal(port, -1);
        assert_true(verbose);
        assert_int_equal(interval, 90 * KOC_USEC_PER_SEC + 5 * KOC_USEC_PER_MSEC);
        assert_false(cfg.leader_elect);
        assert_true(cfg.print_rbac);
        assert_int_equal(PARSE(&cfg, &err, "--port", "0x10", "--verbose=false"), 0);
        assert_int_equal(port, 16);
        assert_false(verbose);

        /* Names: taken, malformed, and the limit. */
        int64_t x;
        assert_int_equal(koc_manager_add_flag_int(&cfg, "port", 1, "again", &x), -EEXIST);
        assert_int_equal(koc_manager_add_flag_int(&cfg, "kubeconfig", 1, "a manager flag", &x),
                         -EEXIST);
        assert_int_equal(koc_manager_add_flag_int(&cfg, "help", 1, "--help", &x), -EEXIST);
        assert_int_equal(koc_manager_add_flag_int(&cfg, "Port", 1, "upper case", &x), -EINVAL);
        assert_int_equal(koc_manager_add_flag_int(&cfg, "a=b", 1, "an equals sign", &x), -EINVAL);
        assert_int_equal(koc_manager_add_flag_int(&cfg, "", 1, "empty", &x), -EINVAL);
        assert_int_equal(koc_manager_add_flag_int(&cfg, "x", 1, NULL, &x), -EINVAL);
        assert_int_equal(koc_manager_add_flag_int(&cfg, "x", 1, "no var", NULL), -EINVAL);
        char names[KOC_MANAGER_MAX_PROGRAM_FLAGS][16];
        int64_t vars[KOC_MANAGER_MAX_PROGRAM_FLAGS];
        unsigned added = 0;
        for (unsigned i = 0; i < KOC_MANAGER_MAX_PROGRAM_FLAGS; i++) {
                snprintf(names[i], sizeof names[i], "extra-%u", i);
                int r = koc_manager_add_flag_int(&cfg, names[i], 0, "more", &vars[i]);
                if (r == -ENOSPC)
                        break;
                assert_int_equal(r, 0);
                added++;
        }
        assert_int_equal(added, KOC_MANAGER_MAX_PROGRAM_FLAGS - 4);
}

static void test_program_flag_errors(void **state) {
        static const struct {
                const char *arg, *needle;
        } cases[] = {
                {"--port=eleven", "--port=\"eleven\": not an integer"},
                {"--port=", "--port=\"\": not an integer"},
                {"--port=08", "--port=\"08\": not an integer"},
                {"--port=99999999999999999999",
                 "--port=\"99999999999999999999\": integer out of range"},
                {"--verbose=yes", "--verbose=\"yes\": not a boolean"},
                {"--resync-interval=soon", "--resync-interval=\"soon\": not a duration"},
                {"--image", "--image: missing value"},
                {"--imag=x", "unknown flag \"--imag\""},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                koc_manager_config cfg, before;
                koc_error err = {0};
                init(&cfg);
                add_program_flags(&cfg);
                before = cfg;
                /* A good flag before the bad one is not committed either. */
                int r = PARSE(&cfg, &err, "--image=other", (char *)cases[i].arg);
                assert_int_equal(r, -EINVAL);
                if (!strstr(err.message, cases[i].needle))
                        fail_msg("message \"%s\" lacks \"%s\"", err.message, cases[i].needle);
                assert_string_equal(image, "memcached:1.6.26-alpine");
                assert_memory_equal(&cfg, &before, sizeof cfg);
        }
}

static void test_program_flags_in_help(void **state) {
        koc_manager_config cfg;
        koc_error err = {0};
        char buf[16384] = "";
        int fds[2];

        init(&cfg);
        add_program_flags(&cfg);
        assert_int_equal(pipe(fds), 0);
        fflush(stdout);
        int saved = dup(STDOUT_FILENO);
        dup2(fds[1], STDOUT_FILENO);
        int r = PARSE(&cfg, &err, "--help");
        fflush(stdout);
        dup2(saved, STDOUT_FILENO);
        close(saved);
        close(fds[1]);
        ssize_t n = read(fds[0], buf, sizeof buf - 1);
        close(fds[0]);
        assert_true(n > 0);
        buf[n] = '\0';
        assert_int_equal(r, KOC_MANAGER_FLAGS_HELP);
        assert_non_null(strstr(buf, "Flags of this program:"));
        assert_non_null(strstr(buf, "  --image string\n        Container image. (default "
                                    "\"memcached:1.6.26-alpine\")"));
        assert_non_null(strstr(buf, "  --port int\n        Container port. (default 11211)"));
        assert_non_null(strstr(buf, "  --verbose\n        Say more. (default false)"));
        assert_non_null(strstr(buf, "  --resync-interval duration\n        How often. (default "
                                    "1m30s)"));
        assert_non_null(strstr(buf, "  --print-rbac\n"));
        /* --help changes nothing. */
        assert_string_equal(image, "memcached:1.6.26-alpine");
}

static void test_renewal_verdict(void **state) {
        uint64_t confirmed = 100;

        /* A standby is always live. */
        assert_int_equal(koc__manager_renewal_verdict(false, false, 0, 1000000, &confirmed, 10), 0);
        assert_int_equal(confirmed, 100);
        /* A leader whose state reads true is live and refreshes the stamp. */
        assert_int_equal(koc__manager_renewal_verdict(true, true, 0, 500, &confirmed, 10), 0);
        assert_int_equal(confirmed, 500);
        /* State false but within the limit: still live. */
        assert_int_equal(koc__manager_renewal_verdict(true, false, 0, 510, &confirmed, 10), 0);
        assert_int_equal(confirmed, 500);
        /* Past the limit: the elector is wedged. */
        assert_int_equal(koc__manager_renewal_verdict(true, false, 0, 511, &confirmed, 10),
                         -ETIMEDOUT);
        assert_int_equal(confirmed, 500);
        /* A clock reading before the stamp never fails. */
        assert_int_equal(koc__manager_renewal_verdict(true, false, 0, 400, &confirmed, 10), 0);
        /* An elector that stopped itself on an error is not live, standby or
         * not: it would never compete again. */
        assert_int_equal(koc__manager_renewal_verdict(false, false, -ENOMEM, 400, &confirmed, 10),
                         -ENOMEM);
        assert_int_equal(koc__manager_renewal_verdict(true, true, -ENOMEM, 600, &confirmed, 10),
                         -ENOMEM);
        assert_int_equal(confirmed, 500);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),        cmocka_unit_test(test_all_flags),
                cmocka_unit_test(test_bad_flags),       cmocka_unit_test(test_help),
                cmocka_unit_test(test_renewal_verdict), cmocka_unit_test(test_program_flags),
                cmocka_unit_test(test_program_flag_errors),
                cmocka_unit_test(test_program_flags_in_help),
                cmocka_unit_test(test_metrics_secure_flags),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

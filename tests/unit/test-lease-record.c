/* SPDX-License-Identifier: Apache-2.0 */
/* The Lease's JSON codec (leader/lease-record.c): what client-go writes reads
 * back as the record it meant, sparse and odd bodies are read without
 * guessing, and writing back keeps what is not ours. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "koc/time.h"
#include "leader/lease-record.h"

#define MS KOC_USEC_PER_MSEC
#define SEC KOC_USEC_PER_SEC
#define ME "pod-a"

static void test_parse_client_go_record(void **state) {
        const char *json =
                "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
                "\"metadata\":{\"name\":\"x\",\"namespace\":\"ns\",\"resourceVersion\":\"777\","
                "\"labels\":{\"app\":\"a\"}},"
                "\"spec\":{\"holderIdentity\":\"go-pod_1234\",\"leaseDurationSeconds\":15,"
                "\"acquireTime\":\"2026-11-24T10:00:00.12Z\","
                "\"renewTime\":\"2026-11-24T10:00:05Z\",\"leaseTransitions\":3}}";
        cJSON *o = cJSON_Parse(json);
        lease_record r;
        assert_int_equal(koc__lease_record_from_json(o, &r), 0);
        assert_string_equal(r.holder, "go-pod_1234");
        assert_int_equal(r.lease_duration_seconds, 15);
        assert_int_equal(r.lease_transitions, 3);
        assert_string_equal(r.resource_version, "777");
        uint64_t want;
        assert_int_equal(koc_parse_rfc3339("2026-11-24T10:00:00.120000Z", &want), 0);
        assert_int_equal(r.acquire_time, want);
        assert_int_equal(r.renew_time, want + 5 * SEC - 120 * MS);

        /* Writing keeps labels and sets every field with 6-digit MicroTime. */
        r.renew_time = want + 1;
        snprintf(r.holder, sizeof r.holder, "%s", "");
        cJSON *out = koc__lease_record_to_json(o, "ns", "x", &r);
        assert_non_null(out);
        char *s = cJSON_PrintUnformatted(out);
        assert_non_null(strstr(s, "\"labels\":{\"app\":\"a\"}"));
        assert_non_null(strstr(s, "\"holderIdentity\":\"\""));
        assert_non_null(strstr(s, "\"renewTime\":\"2026-11-24T10:00:00.120001Z\""));
        assert_non_null(strstr(s, "\"acquireTime\":\"2026-11-24T10:00:00.120000Z\""));
        assert_non_null(strstr(s, "\"resourceVersion\":\"777\""));
        assert_non_null(strstr(s, "\"leaseTransitions\":3"));
        assert_non_null(strstr(s, "\"leaseDurationSeconds\":15"));
        free(s);
        cJSON_Delete(out);
        cJSON_Delete(o);
}

static void test_parse_sparse_record(void **state) {
        /* holderIdentity absent, no times, no spec fields at all: free. */
        cJSON *o = cJSON_Parse("{\"metadata\":{\"name\":\"x\",\"resourceVersion\":\"5\"},"
                               "\"spec\":{}}");
        lease_record r;
        assert_int_equal(koc__lease_record_from_json(o, &r), 0);
        assert_string_equal(r.holder, "");
        assert_int_equal(r.lease_duration_seconds, 0);
        assert_int_equal(r.renew_time, 0);
        cJSON_Delete(o);

        /* leaseTransitions alone: a free Lease that keeps its count. */
        o = cJSON_Parse("{\"metadata\":{\"name\":\"x\",\"resourceVersion\":\"5\"},"
                        "\"spec\":{\"leaseTransitions\":2}}");
        assert_int_equal(koc__lease_record_from_json(o, &r), 0);
        assert_string_equal(r.holder, "");
        assert_string_equal(r.resource_version, "5");
        assert_int_equal(r.lease_transitions, 2);
        assert_int_equal(r.lease_duration_seconds, 0);
        assert_int_equal(r.acquire_time, 0);
        cJSON_Delete(o);

        o = cJSON_Parse("{\"metadata\":{\"name\":\"x\",\"resourceVersion\":\"6\"}}");
        assert_int_equal(koc__lease_record_from_json(o, &r), 0);
        assert_string_equal(r.holder, "");
        cJSON_Delete(o);

        /* Bad input is refused, not trusted. */
        o = cJSON_Parse("[1,2]");
        assert_int_equal(koc__lease_record_from_json(o, &r), -EINVAL);
        cJSON_Delete(o);
        o = cJSON_Parse("{\"spec\":{\"holderIdentity\":\"a\"}}");
        assert_int_equal(koc__lease_record_from_json(o, &r), -EINVAL);
        cJSON_Delete(o);
        o = cJSON_Parse("{\"metadata\":{},\"spec\":{\"holderIdentity\":7,"
                        "\"leaseDurationSeconds\":\"x\",\"renewTime\":\"yesterday\"}}");
        assert_int_equal(koc__lease_record_from_json(o, &r), 0);
        assert_string_equal(r.holder, "");
        assert_int_equal(r.renew_time, 0);
        cJSON_Delete(o);
}

/* A holder may write any positive int32 as leaseDurationSeconds: it is kept
 * as written (the state machine honours it: test-leader-fsm.c,
 * test_huge_foreign_lease_duration_honoured), more than an int32 is clamped
 * rather than dropped, and what is not a positive number reads as absent. */
static void test_huge_lease_duration_kept(void **state) {
        static const struct {
                const char *value;
                int64_t want;
        } cases[] = {
                {"2000000000", 2000000000},
                {"2147483647", INT32_MAX},
                {"1e12", INT32_MAX},
                {"15.5", 15},
                {"0", 0},
                {"-5", 0},
                {"\"15\"", 0},
                {"null", 0},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char json[256];
                snprintf(json, sizeof json,
                         "{\"metadata\":{\"name\":\"x\",\"resourceVersion\":\"5\"},"
                         "\"spec\":{\"holderIdentity\":\"go-pod\",\"leaseDurationSeconds\":%s}}",
                         cases[i].value);
                cJSON *o = cJSON_Parse(json);
                assert_non_null(o);
                lease_record r;
                assert_int_equal(koc__lease_record_from_json(o, &r), 0);
                assert_string_equal(r.holder, "go-pod");
                if (r.lease_duration_seconds != cases[i].want)
                        fail_msg("leaseDurationSeconds %s read as %lld, want %lld", cases[i].value,
                                 (long long)r.lease_duration_seconds, (long long)cases[i].want);
                cJSON_Delete(o);
        }
}

static void test_long_foreign_holder_never_ours(void **state) {
        char big[400];
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        memcpy(big, ME, strlen(ME));
        cJSON *o = cJSON_CreateObject();
        cJSON *m = cJSON_AddObjectToObject(o, "metadata");
        cJSON_AddStringToObject(m, "resourceVersion", "1");
        cJSON *s = cJSON_AddObjectToObject(o, "spec");
        cJSON_AddStringToObject(s, "holderIdentity", big);
        lease_record r;
        assert_int_equal(koc__lease_record_from_json(o, &r), 0);
        assert_true(r.holder_truncated);
        cJSON_Delete(o);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_client_go_record),
                cmocka_unit_test(test_parse_sparse_record),
                cmocka_unit_test(test_huge_lease_duration_kept),
                cmocka_unit_test(test_long_foreign_holder_never_ours),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

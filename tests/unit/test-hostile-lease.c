/* SPDX-License-Identifier: Apache-2.0 */
/* Hostile Lease bodies found by tests/fuzz/fuzz-leader-fsm.c: what koc writes
 * back from a base object must read back as the record it meant to write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "koc/time.h"
#include "leader/lease-record.h"

static size_t count_members(const cJSON *obj, const char *key) {
        size_t n = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, obj) if (c->string && strcmp(c->string, key) == 0) n++;
        return n;
}

/* Writes rec over base and reads the result back. */
static cJSON *write_back(const char *base_text, const lease_record *rec, lease_record *ret) {
        cJSON *base = cJSON_Parse(base_text);
        assert_non_null(base);
        cJSON *o = koc__lease_record_to_json(base, "ns", "lease", rec);
        assert_non_null(o);
        assert_int_equal(koc__lease_record_from_json(o, ret), 0);
        cJSON_Delete(base);
        return o;
}

/* The fuzzer's input: "spec" twice, a string first, then an object. */
static void test_duplicate_spec_roundtrip(void **state) {
        (void)state;
        const char *text = "{\"spec\":\"\", \"metadata\":{},\"spec\":{\"leaseTransitions\":3}}";
        cJSON *base = cJSON_Parse(text);
        assert_non_null(base);
        lease_record rec;
        assert_int_equal(koc__lease_record_from_json(base, &rec), 0);
        cJSON_Delete(base);
        assert_int_equal(rec.lease_transitions, 0); /* the first "spec" is not an object */

        lease_record back;
        cJSON *o = write_back(text, &rec, &back);
        assert_int_equal(back.lease_transitions, rec.lease_transitions);
        assert_string_equal(back.holder, rec.holder);
        assert_int_equal(count_members(o, "spec"), 1);
        cJSON_Delete(o);
}

/* Duplicates of the fields koc writes: only the new value is left, so that
 * a reader taking the last duplicate (Go) and one taking the first (cJSON)
 * both see what koc wrote. */
static void test_duplicate_fields_replaced(void **state) {
        (void)state;
        lease_record rec = {0};
        snprintf(rec.holder, sizeof rec.holder, "pod-a");
        snprintf(rec.resource_version, sizeof rec.resource_version, "42");
        rec.lease_duration_seconds = 15;
        rec.lease_transitions = 7;
        rec.acquire_time = rec.renew_time = UINT64_C(1795000000) * KOC_USEC_PER_SEC;

        lease_record back;
        cJSON *o = write_back("{\"metadata\":{\"resourceVersion\":\"1\",\"resourceVersion\":\"2\","
                              "\"managedFields\":[],\"managedFields\":[]},"
                              "\"spec\":{\"holderIdentity\":\"x\",\"holderIdentity\":\"y\","
                              "\"leaseTransitions\":1,\"leaseTransitions\":2},"
                              "\"spec\":{\"holderIdentity\":\"z\"},\"status\":{},\"status\":{}}",
                              &rec, &back);
        assert_string_equal(back.holder, "pod-a");
        assert_string_equal(back.resource_version, "42");
        assert_int_equal(back.lease_transitions, 7);
        assert_int_equal(back.lease_duration_seconds, 15);
        assert_int_equal(back.renew_time, rec.renew_time);

        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(o, "metadata");
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(o, "spec");
        assert_int_equal(count_members(o, "spec"), 1);
        assert_int_equal(count_members(o, "metadata"), 1);
        assert_int_equal(count_members(o, "status"), 0);
        assert_int_equal(count_members(meta, "resourceVersion"), 1);
        assert_int_equal(count_members(meta, "managedFields"), 0);
        assert_int_equal(count_members(spec, "holderIdentity"), 1);
        assert_int_equal(count_members(spec, "leaseTransitions"), 1);
        cJSON_Delete(o);

        /* No resourceVersion to send: every copy goes. */
        rec.resource_version[0] = '\0';
        o = write_back("{\"metadata\":{\"resourceVersion\":\"1\",\"resourceVersion\":\"2\"}}", &rec,
                       &back);
        assert_int_equal(
                count_members(cJSON_GetObjectItemCaseSensitive(o, "metadata"), "resourceVersion"),
                0);
        cJSON_Delete(o);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_duplicate_spec_roundtrip),
                cmocka_unit_test(test_duplicate_fields_replaced),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

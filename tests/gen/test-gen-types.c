/* The types koc-gen-types generates from tests/gen/widgets-crd.yaml and
 * gadgets-crd.yaml: parse, to_json, validate, free, every error message,
 * unknown fields, names that are not C identifiers, versioned names. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gadgets-crd-types.h"
#include "widgets-crd-types.h"

static cJSON *J(const char *text) {
        cJSON *j = cJSON_Parse(text);
        assert_non_null(j);
        return j;
}

/* Compact text of a JSON value, for comparisons. */
static char *text_of(const cJSON *j) {
        char *s = cJSON_PrintUnformatted(j);
        assert_non_null(s);
        return s;
}

static void assert_json_eq(const cJSON *got, const char *want_text) {
        cJSON *want = J(want_text);
        if (!cJSON_Compare(got, want, 1)) {
                char *g = text_of(got);
                fail_msg("got  %s\nwant %s", g, want_text);
        }
        cJSON_Delete(want);
}

static void parse_fails(const char *text, int code, const char *message) {
        cJSON *j = J(text);
        widget w;
        widget_init(&w);
        char err[256];
        int r = widget_parse(j, &w, err, sizeof err);
        if (r >= 0)
                fail_msg("parsed: %s", text);
        assert_int_equal(r, code);
        if (strcmp(err, message))
                fail_msg("input %s\ngot  \"%s\"\nwant \"%s\"", text, err, message);
        cJSON_Delete(j);
}

static void validate_fails(const char *text, const char *message) {
        cJSON *j = J(text);
        widget w;
        char err[256];
        if (widget_parse(j, &w, err, sizeof err) < 0)
                fail_msg("parse of %s: %s", text, err);
        int r = widget_validate(&w, err, sizeof err);
        assert_int_equal(r, -EINVAL);
        if (strcmp(err, message))
                fail_msg("input %s\ngot  \"%s\"\nwant \"%s\"", text, err, message);
        widget_free(&w);
        cJSON_Delete(j);
}

static void validate_ok(const char *text) {
        cJSON *j = J(text);
        widget w;
        char err[256];
        if (widget_parse(j, &w, err, sizeof err) < 0)
                fail_msg("parse of %s: %s", text, err);
        if (widget_validate(&w, err, sizeof err) < 0)
                fail_msg("validate of %s: %s", text, err);
        widget_free(&w);
        cJSON_Delete(j);
}

#define FULL                                                                                                       \
        "{\"apiVersion\":\"test.koc.dev/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"w\",\"namespace\":\"ns\"}," \
        "\"spec\":{\"size\":3,\"count\":7,\"ratio\":0.5,\"enabled\":true,\"name\":\"web-1\",\"version\":\"v1.2\","  \
        "\"mode\":\"in-between\",\"level\":2,\"tags\":[\"a\",\"bb\"],"                                              \
        "\"ports\":[{\"name\":\"http\",\"port\":80,\"protocol\":\"TCP\"},{\"name\":\"dns\",\"port\":53}],"          \
        "\"labels\":{\"app\":\"w\",\"tier\":\"web\"},\"limits\":{\"small\":{\"cpu\":\"100m\",\"weight\":1}},"       \
        "\"target\":8080,\"quantity\":\"50%\",\"config\":{\"any\":[1,{\"x\":null}]},\"raw\":[true],"               \
        "\"tls\":{\"secretName\":\"s\",\"extra\":{\"kept\":1}},\"created\":\"2024-01-02T03:04:05.5+01:00\","        \
        "\"day\":\"2024-02-29\",\"data\":\"aGk=\",\"matrix\":[[1,2],[]],\"hasSize\":true,\"size_len\":\"x\","        \
        "\"class\":\"c\",\"x.y\":\"xy\",\"1st\":\"first\",\"with\\\"quote*/\":\"q\",\"\xc3\xbcn\xc3\xaf\":\"u\"},"   \
        "\"status\":{\"observedGeneration\":4,\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\","             \
        "\"lastTransitionTime\":\"2024-01-02T03:04:05Z\",\"message\":\"ok\"}]}}"

static void parse_every_kind(void **state) {
        cJSON *j = J(FULL);
        widget w;
        char err[256];
        assert_int_equal(widget_parse(j, &w, err, sizeof err), 0);
        assert_string_equal(w.api_version, "test.koc.dev/v1");
        /* metadata stays whole although the schema names only metadata.name. */
        assert_string_equal(cJSON_GetObjectItem(w.metadata, "name")->valuestring, "w");
        assert_string_equal(cJSON_GetObjectItem(w.metadata, "namespace")->valuestring, "ns");
        assert_true(w.has_spec);
        assert_true(w.spec.has_size);
        assert_int_equal(w.spec.size, 3);
        assert_int_equal(w.spec.count, 7);
        assert_true(w.spec.ratio == 0.5);
        assert_true(w.spec.has_enabled && w.spec.enabled);
        assert_string_equal(w.spec.name, "web-1");
        assert_int_equal(w.spec.mode, WIDGET_SPEC_MODE_IN_BETWEEN);
        assert_int_equal(w.spec.level, 2);
        assert_int_equal(w.spec.tags_len, 2);
        assert_string_equal(w.spec.tags[1], "bb");
        assert_int_equal(w.spec.ports_len, 2);
        assert_string_equal(w.spec.ports[0].name, "http");
        assert_int_equal(w.spec.ports[0].protocol, WIDGET_SPEC_PORTS_ITEM_PROTOCOL_TCP);
        assert_int_equal(w.spec.ports[1].protocol, WIDGET_SPEC_PORTS_ITEM_PROTOCOL_UNSET);
        assert_true(w.spec.ports[1].has_port);
        assert_int_equal(w.spec.labels_len, 2);
        assert_string_equal(w.spec.labels[1].key, "tier");
        assert_string_equal(w.spec.labels[1].value, "web");
        assert_int_equal(w.spec.limits_len, 1);
        assert_string_equal(w.spec.limits[0].key, "small");
        assert_string_equal(w.spec.limits[0].value.cpu, "100m");
        assert_false(w.spec.target.is_string);
        assert_int_equal(w.spec.target.int_value, 8080);
        assert_true(w.spec.quantity.is_string);
        assert_string_equal(w.spec.quantity.string_value, "50%");
        assert_true(cJSON_IsObject(w.spec.config));
        assert_true(cJSON_IsArray(w.spec.raw));
        assert_string_equal(w.spec.tls.secret_name, "s");
        assert_non_null(cJSON_GetObjectItem(w.spec.tls.extra_fields, "extra"));
        assert_int_equal(w.spec.matrix_len, 2);
        assert_true(cJSON_IsArray(w.spec.matrix[0]));
        /* Names that are not C identifiers, or collide with has_ and _len. */
        assert_true(w.spec.has_size_2);
        assert_string_equal(w.spec.size_len_2, "x");
        assert_string_equal(w.spec.class_, "c");
        assert_string_equal(w.spec.x_y, "xy");
        assert_string_equal(w.spec.n_1st, "first");
        assert_string_equal(w.spec.with_quote, "q");
        assert_string_equal(w.spec.n, "u");
        assert_int_equal(w.status.observed_generation, 4);
        assert_int_equal(w.status.conditions[0].status, WIDGET_STATUS_CONDITIONS_ITEM_STATUS_TRUE);
        assert_int_equal(widget_validate(&w, err, sizeof err), 0);

        /* Written back: the same object. */
        cJSON *out = widget_to_json(&w);
        assert_non_null(out);
        assert_true(cJSON_Compare(out, j, 1));
        cJSON_Delete(out);
        widget_free(&w);
        assert_null(w.spec.name); /* free leaves an initialised object */
        widget_free(&w);
        cJSON_Delete(j);
}

static void type_errors(void **state) {
        parse_fails("[]", -EINVAL, "(root): expected object, got array");
        parse_fails("{\"spec\":\"x\"}", -EINVAL, "spec: expected object, got string");
        parse_fails("{\"spec\":{\"size\":\"3\"}}", -EINVAL, "spec.size: expected integer, got string");
        parse_fails("{\"spec\":{\"size\":1.5}}", -EINVAL, "spec.size: expected integer, got number");
        parse_fails("{\"spec\":{\"size\":2147483648}}", -ERANGE,
                    "spec.size: integer 2147483648 does not fit in int32");
        parse_fails("{\"spec\":{\"count\":1e19}}", -ERANGE,
                    "spec.count: integer 10000000000000000000 does not fit in int64");
        parse_fails("{\"spec\":{\"ratio\":\"1\"}}", -EINVAL, "spec.ratio: expected number, got string");
        parse_fails("{\"spec\":{\"enabled\":1}}", -EINVAL, "spec.enabled: expected boolean, got integer");
        parse_fails("{\"spec\":{\"name\":{}}}", -EINVAL, "spec.name: expected string, got object");
        parse_fails("{\"spec\":{\"mode\":\"Medium\"}}", -EINVAL,
                    "spec.mode: unsupported value \"Medium\", expected one of \"Fast\", \"Slow\", \"in-between\", \"\"");
        parse_fails("{\"spec\":{\"mode\":3}}", -EINVAL, "spec.mode: expected string, got integer");
        parse_fails("{\"spec\":{\"tags\":\"a\"}}", -EINVAL, "spec.tags: expected array, got string");
        parse_fails("{\"spec\":{\"tags\":[\"a\",2]}}", -EINVAL, "spec.tags[1]: expected string, got integer");
        parse_fails("{\"spec\":{\"tags\":[null]}}", -EINVAL, "spec.tags[0]: expected string, got null");
        parse_fails("{\"spec\":{\"ports\":[{\"name\":\"a\",\"port\":1},{\"port\":false}]}}", -EINVAL,
                    "spec.ports[1].port: expected integer, got boolean");
        parse_fails("{\"spec\":{\"ports\":[{\"protocol\":\"SCTP\"}]}}", -EINVAL,
                    "spec.ports[0].protocol: unsupported value \"SCTP\", expected one of \"TCP\", \"UDP\"");
        parse_fails("{\"spec\":{\"labels\":[]}}", -EINVAL, "spec.labels: expected object, got array");
        parse_fails("{\"spec\":{\"labels\":{\"app\":1}}}", -EINVAL, "spec.labels[app]: expected string, got integer");
        parse_fails("{\"spec\":{\"limits\":{\"big\":{\"weight\":\"x\"}}}}", -EINVAL,
                    "spec.limits[big].weight: expected integer, got string");
        parse_fails("{\"spec\":{\"target\":true}}", -EINVAL, "spec.target: expected integer or string, got boolean");
        parse_fails("{\"spec\":{\"target\":1.5}}", -EINVAL, "spec.target: expected integer, got number");
        parse_fails("{\"spec\":{\"tls\":[]}}", -EINVAL, "spec.tls: expected object, got array");
        parse_fails("{\"spec\":{\"matrix\":{}}}", -EINVAL, "spec.matrix: expected array, got object");
        parse_fails("{\"status\":{\"observedGeneration\":\"1\"}}", -EINVAL,
                    "status.observedGeneration: expected integer, got string");
        parse_fails("{\"status\":{\"conditions\":[{\"status\":\"Maybe\"}]}}", -EINVAL,
                    "status.conditions[0].status: unsupported value \"Maybe\", expected one of \"True\", \"False\", "
                    "\"Unknown\"");
        parse_fails("{\"kind\":7}", -EINVAL, "kind: expected string, got integer");

        /* NULL arguments and a short error buffer. */
        widget w;
        char err[8];
        assert_int_equal(widget_parse(NULL, &w, err, sizeof err), -EINVAL);
        assert_string_equal(err, "(root):");
        assert_int_equal(widget_parse(NULL, &w, NULL, 0), -EINVAL);
        char msg[64];
        cJSON *empty = cJSON_CreateObject();
        assert_int_equal(widget_parse(empty, NULL, msg, sizeof msg), -EINVAL);
        assert_string_equal(msg, "(root): no object to parse into");
        cJSON_Delete(empty);
        assert_int_equal(widget_validate(NULL, msg, sizeof msg), -EINVAL);
        assert_string_equal(msg, "(root): no object to validate");
        assert_int_equal(widget_parse(NULL, NULL, NULL, 0), -EINVAL);
        assert_int_equal(widget_validate(NULL, NULL, 0), -EINVAL);
        assert_null(widget_to_json(NULL));
        widget_free(NULL);
}

static void validation_errors(void **state) {
        validate_ok("{\"spec\":{\"size\":1}}");
        validate_ok("{\"spec\":{\"size\":5,\"count\":1,\"ratio\":0,\"name\":\"a\",\"version\":\"v10\"}}");
        validate_fails("{\"spec\":{}}", "spec.size: required field is missing");
        validate_fails("{\"spec\":{\"size\":9}}", "spec.size: must be <= 5, got 9");
        validate_fails("{\"spec\":{\"size\":0}}", "spec.size: must be >= 1, got 0");
        validate_fails("{\"spec\":{\"size\":1,\"count\":0}}", "spec.count: must be > 0, got 0");
        validate_fails("{\"spec\":{\"size\":1,\"ratio\":1}}", "spec.ratio: must be < 1, got 1");
        validate_fails("{\"spec\":{\"size\":1,\"ratio\":-0.25}}", "spec.ratio: must be >= 0, got -0.25");
        validate_fails("{\"spec\":{\"size\":1,\"name\":\"\"}}", "spec.name: must be at least 1 characters long, got 0");
        validate_fails("{\"spec\":{\"size\":1,\"name\":\"abcdefghi\"}}",
                       "spec.name: must be at most 8 characters long, got 9");
        validate_fails("{\"spec\":{\"size\":1,\"name\":\"Web\"}}", "spec.name: \"Web\" does not match ^[a-z][-a-z0-9]*$");
        validate_fails("{\"spec\":{\"size\":1,\"version\":\"v1.x\"}}",
                       "spec.version: \"v1.x\" does not match ^v\\d+(\\.\\d+)*$");
        validate_fails("{\"spec\":{\"size\":1,\"level\":4}}", "spec.level: unsupported value 4");
        validate_fails("{\"spec\":{\"size\":1,\"tags\":[]}}", "spec.tags: must have at least 1 items, got 0");
        validate_fails("{\"spec\":{\"size\":1,\"tags\":[\"a\",\"b\",\"c\",\"d\"]}}",
                       "spec.tags: must have at most 3 items, got 4");
        /* maxLength counts characters, not bytes. */
        validate_ok("{\"spec\":{\"size\":1,\"tags\":[\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"]}}");
        validate_fails("{\"spec\":{\"size\":1,\"tags\":[\"a\",\"abcdef\"]}}",
                       "spec.tags[1]: must be at most 5 characters long, got 6");
        validate_fails("{\"spec\":{\"size\":1,\"ports\":[{\"port\":1}]}}", "spec.ports[0].name: required field is missing");
        validate_fails("{\"spec\":{\"size\":1,\"ports\":[{\"name\":\"a\"}]}}",
                       "spec.ports[0].port: required field is missing");
        validate_fails("{\"spec\":{\"size\":1,\"ports\":[{\"name\":\"a\",\"port\":65536}]}}",
                       "spec.ports[0].port: must be <= 65535, got 65536");
        validate_fails("{\"spec\":{\"size\":1,\"labels\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}}}",
                       "spec.labels: must have at most 2 properties, got 3");
        validate_fails("{\"spec\":{\"size\":1,\"labels\":{}}}", "spec.labels: must have at least 1 properties, got 0");
        validate_fails("{\"spec\":{\"size\":1,\"limits\":{\"l\":{\"weight\":11}}}}",
                       "spec.limits[l].weight: must be <= 10, got 11");
        validate_fails("{\"spec\":{\"size\":1,\"created\":\"yesterday\"}}",
                       "spec.created: expected an RFC 3339 date-time, got \"yesterday\"");
        validate_fails("{\"spec\":{\"size\":1,\"created\":\"2024-01-02T03:04:05\"}}",
                       "spec.created: expected an RFC 3339 date-time, got \"2024-01-02T03:04:05\"");
        validate_fails("{\"spec\":{\"size\":1,\"day\":\"2024-1-2\"}}",
                       "spec.day: expected an RFC 3339 date, got \"2024-1-2\"");
        validate_fails("{\"spec\":{\"size\":1,\"data\":\"a*==\"}}", "spec.data: expected base64, got \"a*==\"");
        validate_fails("{\"spec\":{\"size\":1},\"status\":{\"conditions\":[{\"status\":\"True\"}]}}",
                       "status.conditions[0].type: required field is missing");
        validate_fails("{\"spec\":{\"size\":1},\"status\":{\"conditions\":[{\"type\":\"A\"}]}}",
                       "status.conditions[0].status: required field is missing");

        /* An enum member set to a value the schema does not know. */
        widget w;
        widget_init(&w);
        KOC_SET(w.spec, size, 2);
        w.spec.mode = (widget_spec_mode)42;
        char err[128];
        assert_int_equal(widget_validate(&w, err, sizeof err), -EINVAL);
        assert_string_equal(err, "spec.mode: invalid enum value 42");
        /* KOC_HAS: the member and its flag in a designated initializer. */
        widget_spec ws = {KOC_HAS(size, 4)};
        assert_true(ws.has_size);
        assert_int_equal(ws.size, 4);
}

/* Unknown fields are pruned, as the apiserver prunes them, except under
 * x-kubernetes-preserve-unknown-fields; JSON null is "not set". */
static void unknown_fields_and_null(void **state) {
        cJSON *j = J("{\"bogus\":1,\"spec\":{\"size\":2,\"sise\":3,\"name\":null,\"tags\":null,"
                     "\"tls\":{\"secretName\":\"s\",\"more\":{\"a\":[1]}},\"config\":{\"free\":{\"form\":true}}},"
                     "\"status\":null}");
        widget w;
        char err[128];
        assert_int_equal(widget_parse(j, &w, err, sizeof err), 0);
        assert_null(w.spec.name);
        assert_false(w.spec.has_tags);
        assert_false(w.has_status);
        cJSON *out = widget_to_json(&w);
        assert_json_eq(out, "{\"apiVersion\":\"test.koc.dev/v1\",\"kind\":\"Widget\",\"spec\":{\"size\":2,"
                            "\"config\":{\"free\":{\"form\":true}},\"tls\":{\"secretName\":\"s\",\"more\":{\"a\":[1]}}}}");
        cJSON_Delete(out);
        widget_free(&w);
        cJSON_Delete(j);
}

/* Built in C: apiVersion and kind come from the CRD; an empty array is kept
 * when has_ says so; a nested object is written when anything in it is set. */
static void build_from_c(void **state) {
        char *tags[] = {"x", "y"};
        widget_spec_ports_item ports[] = {{.name = "http", .port = 80, .has_port = true,
                                           .protocol = WIDGET_SPEC_PORTS_ITEM_PROTOCOL_TCP}};
        koc_string_entry labels[] = {{"app", "w"}};
        widget w = {
                .spec = {.size = 3, .has_size = true, .tags = tags, .tags_len = 2, .ports = ports, .ports_len = 1,
                         .labels = labels, .labels_len = 1, .has_matrix = true, .target = {.is_string = true,
                         .string_value = "http"}, .has_target = true, .tls = {.secret_name = "s"}},
        };
        char err[128];
        assert_int_equal(widget_validate(&w, err, sizeof err), 0);
        cJSON *out = widget_to_json(&w);
        assert_json_eq(out, "{\"apiVersion\":\"test.koc.dev/v1\",\"kind\":\"Widget\",\"spec\":{\"size\":3,"
                            "\"tags\":[\"x\",\"y\"],\"ports\":[{\"name\":\"http\",\"port\":80,\"protocol\":\"TCP\"}],"
                            "\"labels\":{\"app\":\"w\"},\"target\":\"http\",\"tls\":{\"secretName\":\"s\"},"
                            "\"matrix\":[]}}");
        cJSON_Delete(out);
        assert_string_equal(WIDGET_API_VERSION, "test.koc.dev/v1");
        assert_string_equal(WIDGET_KIND, "Widget");
}

/* Several versions: every name carries its version. */
static void versioned_names(void **state) {
        gadget_v1alpha1 a;
        gadget_v1 b;
        char err[128];
        cJSON *j = J("{\"spec\":{\"size\":1}}");
        assert_int_equal(gadget_v1alpha1_parse(j, &a, err, sizeof err), 0);
        assert_int_equal(a.spec.size, 1);
        cJSON *out = gadget_v1alpha1_to_json(&a);
        assert_json_eq(out, "{\"apiVersion\":\"test.koc.dev/v1alpha1\",\"kind\":\"Gadget\",\"spec\":{\"size\":1}}");
        cJSON_Delete(out);
        gadget_v1alpha1_free(&a);
        cJSON_Delete(j);
        j = J("{\"spec\":{\"replicas\":2,\"mode\":\"B\",\"size\":1}}");
        assert_int_equal(gadget_v1_parse(j, &b, err, sizeof err), 0);
        gadget_v1_spec *s = &b.spec;
        assert_int_equal(s->mode, GADGET_V1_SPEC_MODE_B);
        out = gadget_v1_to_json(&b);
        assert_json_eq(out, "{\"apiVersion\":\"test.koc.dev/v1\",\"kind\":\"Gadget\",\"spec\":{\"replicas\":2,"
                            "\"mode\":\"B\"}}");
        cJSON_Delete(out);
        gadget_v1_free(&b);
        cJSON_Delete(j);
}

/* Hostile input: deep nesting in a free-form field (cJSON's own limit
 * bounds it), a long array, long keys in error paths. */
static void hostile(void **state) {
        size_t depth = 900;
        char *deep = malloc(depth * 2 + 64);
        assert_non_null(deep);
        size_t k = (size_t)sprintf(deep, "{\"spec\":{\"config\":{\"a\":");
        for (size_t i = 0; i < depth; i++)
                deep[k++] = '[';
        for (size_t i = 0; i < depth; i++)
                deep[k++] = ']';
        strcpy(deep + k, "}}}");
        cJSON *j = J(deep);
        free(deep);
        widget w;
        char err[256];
        assert_int_equal(widget_parse(j, &w, err, sizeof err), 0);
        cJSON *out = widget_to_json(&w);
        assert_non_null(out);
        cJSON_Delete(out);
        widget_free(&w);
        cJSON_Delete(j);

        cJSON *tags = cJSON_CreateArray();
        for (int i = 0; i < 100000; i++)
                cJSON_AddItemToArray(tags, cJSON_CreateString("t"));
        j = cJSON_CreateObject();
        cJSON *spec = cJSON_AddObjectToObject(j, "spec");
        cJSON_AddItemToObject(spec, "tags", tags);
        assert_int_equal(widget_parse(j, &w, err, sizeof err), 0);
        assert_int_equal(w.spec.tags_len, 100000);
        widget_free(&w);
        /* A bad last element names its index. */
        cJSON_AddItemToArray(tags, cJSON_CreateNumber(1));
        assert_int_equal(widget_parse(j, &w, err, sizeof err), -EINVAL);
        assert_string_equal(err, "spec.tags[100000]: expected string, got integer");
        cJSON_Delete(j);

        /* A map key of 4000 bytes: the path is cut, the message stays whole. */
        char key[4001];
        memset(key, 'k', 4000);
        key[4000] = 0;
        j = cJSON_CreateObject();
        cJSON *labels = cJSON_AddObjectToObject(cJSON_AddObjectToObject(j, "spec"), "labels");
        cJSON_AddNumberToObject(labels, key, 1);
        assert_int_equal(widget_parse(j, &w, err, sizeof err), -EINVAL);
        assert_int_equal(strncmp(err, "spec.labels[kkkk", 16), 0);
        assert_non_null(strstr(err, ": expected string, got integer"));
        cJSON_Delete(j);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(parse_every_kind), cmocka_unit_test(type_errors),
                cmocka_unit_test(validation_errors), cmocka_unit_test(unknown_fields_and_null),
                cmocka_unit_test(build_from_c), cmocka_unit_test(versioned_names),
                cmocka_unit_test(hostile),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* koc-apiserver serving custom resources as kube-apiserver does: the CRD's
 * structural schema (pruning, defaults, validation with the real server's
 * causes), fieldValidation, bounded schemas, OpenAPI documents, /scale,
 * Table output and the garbage collector. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness/apiserver.h"

static koc_test_apiserver srv;

#define CRDS "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
#define MEMCACHEDS "/apis/cache.example.com/v1/namespaces/default/memcacheds"

static long req(const char *method, const char *path, const char *body, const char *ct,
                cJSON **ret) {
        char *out = NULL;
        long code = koc_test_apiserver_http(&srv, method, path, body, ct, &out);
        if (ret) {
                *ret = out ? cJSON_Parse(out) : NULL;
                if (!*ret)
                        fprintf(stderr, "unparsable body for %s %s: %s\n", method, path,
                                out ? out : "(none)");
        }
        free(out);
        return code;
}

static const cJSON *at(const cJSON *o, const char *path) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", path);
        const cJSON *cur = o;
        for (char *save = NULL, *t = strtok_r(buf, ".", &save); cur && t;
             t = strtok_r(NULL, ".", &save))
                cur = cJSON_IsArray(cur) ? cJSON_GetArrayItem(cur, atoi(t))
                                         : cJSON_GetObjectItemCaseSensitive(cur, t);
        return cur;
}

static const char *str(const cJSON *o, const char *path) {
        const cJSON *v = at(o, path);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *o, const char *path) {
        const cJSON *v = at(o, path);
        return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* The Memcached CRD of the comparison test (tests/k8s/compare.sh). */
static const char crd[] =
        "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
        "\"metadata\":{\"name\":\"memcacheds.cache.example.com\"},\"spec\":{\"group\":"
        "\"cache.example.com\",\"scope\":\"Namespaced\",\"names\":{\"plural\":\"memcacheds\","
        "\"singular\":\"memcached\",\"kind\":\"Memcached\",\"listKind\":\"MemcachedList\"},"
        "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,\"subresources\":{"
        "\"status\":{},\"scale\":{\"specReplicasPath\":\".spec.size\",\"statusReplicasPath\":"
        "\".status.replicas\",\"labelSelectorPath\":\".status.selector\"}},"
        "\"additionalPrinterColumns\":[{\"name\":\"Size\",\"type\":\"integer\",\"jsonPath\":"
        "\".spec.size\"},{\"name\":\"Mode\",\"type\":\"string\",\"jsonPath\":\".spec.mode\"}],"
        "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"properties\":{"
        "\"spec\":{\"type\":\"object\",\"required\":[\"size\"],\"properties\":{"
        "\"size\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":5},"
        "\"ex\":{\"type\":\"integer\",\"exclusiveMinimum\":true,\"minimum\":0,"
        "\"exclusiveMaximum\":true,\"maximum\":10},"
        "\"mode\":{\"type\":\"string\",\"enum\":[\"fast\",\"slow\"],\"default\":\"fast\"},"
        "\"name\":{\"type\":\"string\",\"pattern\":\"^[a-z]+\\\\d*$\",\"maxLength\":5,"
        "\"minLength\":2},"
        "\"tags\":{\"type\":\"array\",\"maxItems\":2,\"minItems\":1,\"items\":{\"type\":"
        "\"string\",\"maxLength\":3}},"
        "\"port\":{\"x-kubernetes-int-or-string\":true},"
        "\"opt\":{\"type\":\"string\",\"nullable\":true},"
        "\"nn\":{\"type\":\"string\"},"
        "\"labels\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}},"
        "\"free\":{\"type\":\"object\",\"x-kubernetes-preserve-unknown-fields\":true,"
        "\"properties\":{\"k\":{\"type\":\"integer\"}}},"
        "\"items\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"n\"],"
        "\"properties\":{\"n\":{\"type\":\"string\"},\"v\":{\"type\":\"integer\",\"default\":3}}}},"
        "\"ratio\":{\"type\":\"number\",\"maximum\":2.5},"
        "\"flag\":{\"type\":\"boolean\"}}},"
        "\"status\":{\"type\":\"object\",\"properties\":{\"replicas\":{\"type\":\"integer\","
        "\"minimum\":0},\"selector\":{\"type\":\"string\"}}}}}}}]}}";

static long create_mc(const char *name, const char *spec, const char *query, cJSON **ret) {
        char body[2048], path[256];
        snprintf(body, sizeof body,
                 "{\"apiVersion\":\"cache.example.com/v1\",\"kind\":\"Memcached\",\"metadata\":"
                 "{\"name\":\"%s\"},\"spec\":%s}",
                 name, spec);
        snprintf(path, sizeof path, "%s%s", MEMCACHEDS, query ? query : "");
        return req("POST", path, body, NULL, ret);
}

/* A cause with this field, reason and message is in the Status. */
static void assert_cause(const cJSON *st, const char *field, const char *reason,
                         const char *message) {
        const cJSON *c;
        cJSON_ArrayForEach(c, at(st, "details.causes")) {
                if (strcmp(str(c, "field") ?: "", field) == 0 &&
                    strcmp(str(c, "reason") ?: "", reason) == 0 &&
                    strcmp(str(c, "message") ?: "", message) == 0)
                        return;
        }
        char *s = cJSON_PrintUnformatted(st);
        fail_msg("no cause %s %s \"%s\" in %s", field, reason, message, s);
        free(s);
}

static void assert_invalid(const char *name, const char *spec, int n_causes) {
        cJSON *o = NULL;
        assert_int_equal(create_mc(name, spec, NULL, &o), 422);
        assert_string_equal(str(o, "reason"), "Invalid");
        assert_string_equal(str(o, "details.kind"), "Memcached");
        assert_string_equal(str(o, "details.group"), "cache.example.com");
        assert_int_equal(cJSON_GetArraySize(at(o, "details.causes")), n_causes);
        cJSON_Delete(o);
}

static void test_schema_validation(void **state) {
        (void)state;
        cJSON *o = NULL;

        assert_int_equal(create_mc("a", "{\"size\":9}", NULL, &o), 422);
        assert_string_equal(str(o, "message"),
                            "Memcached.cache.example.com \"a\" is invalid: spec.size: Invalid "
                            "value: 9: spec.size in body should be less than or equal to 5");
        assert_cause(o, "spec.size", "FieldValueInvalid",
                     "Invalid value: 9: spec.size in body should be less than or equal to 5");
        cJSON_Delete(o);

        assert_int_equal(create_mc("b", "{\"size\":\"x\"}", NULL, &o), 422);
        assert_cause(o, "spec.size", "FieldValueTypeInvalid",
                     "Invalid value: \"string\": spec.size in body must be of type integer: "
                     "\"string\"");
        cJSON_Delete(o);

        assert_int_equal(create_mc("c", "{}", NULL, &o), 422);
        assert_string_equal(str(o, "message"),
                            "Memcached.cache.example.com \"c\" is invalid: spec.size: Required "
                            "value");
        cJSON_Delete(o);

        /* Several errors: one cause each, the message an aggregate. */
        assert_int_equal(create_mc("d",
                                   "{\"size\":1,\"mode\":\"c\",\"name\":\"ABCDEFG\",\"tags\":[\"a\","
                                   "\"b\",\"cdef\"]}",
                                   NULL, &o),
                         422);
        assert_int_equal(cJSON_GetArraySize(at(o, "details.causes")), 4);
        assert_cause(o, "spec.mode", "FieldValueNotSupported",
                     "Unsupported value: \"c\": supported values: \"fast\", \"slow\"");
        assert_cause(o, "spec.name", "FieldValueTooLong", "Too long: may not be more than 5 bytes");
        assert_cause(o, "spec.tags", "FieldValueTooMany", "Too many: 3: must have at most 2 items");
        assert_cause(o, "spec.tags[2]", "FieldValueTooLong",
                     "Too long: may not be more than 3 bytes");
        assert_non_null(strstr(str(o, "message"), "is invalid: ["));
        cJSON_Delete(o);

        assert_int_equal(create_mc("e", "{\"size\":0,\"ex\":10,\"name\":\"a\",\"tags\":[]}", NULL,
                                   &o),
                         422);
        assert_cause(o, "spec.size", "FieldValueInvalid",
                     "Invalid value: 0: spec.size in body should be greater than or equal to 1");
        assert_cause(o, "spec.ex", "FieldValueInvalid",
                     "Invalid value: 10: spec.ex in body should be less than 10");
        assert_cause(o, "spec.name", "FieldValueInvalid",
                     "Invalid value: \"a\": spec.name in body should be at least 2 chars long");
        assert_cause(o, "spec.tags", "FieldValueInvalid",
                     "Invalid value: 0: spec.tags in body should have at least 1 items");
        cJSON_Delete(o);

        assert_int_equal(create_mc("f",
                                   "{\"size\":1,\"ex\":0,\"port\":true,\"labels\":{\"a\":\"x\"},"
                                   "\"items\":[{\"v\":1},{\"n\":\"x\"}],\"ratio\":2.6,\"flag\":"
                                   "\"yes\",\"free\":{\"k\":\"s\",\"zz\":1},\"name\":\"ab1x\"}",
                                   NULL, &o),
                         422);
        assert_int_equal(cJSON_GetArraySize(at(o, "details.causes")), 8);
        assert_cause(o, "spec.ex", "FieldValueInvalid",
                     "Invalid value: 0: spec.ex in body should be greater than 0");
        assert_cause(o, "spec.port", "FieldValueTypeInvalid",
                     "Invalid value: \"boolean\": spec.port in body must be of type "
                     "integer,string: \"boolean\"");
        assert_cause(o, "spec.labels.a", "FieldValueTypeInvalid",
                     "Invalid value: \"string\": spec.labels.a in body must be of type integer: "
                     "\"string\"");
        assert_cause(o, "spec.items[0].n", "FieldValueRequired", "Required value");
        assert_cause(o, "spec.ratio", "FieldValueInvalid",
                     "Invalid value: 2.6: spec.ratio in body should be less than or equal to 2.5");
        assert_cause(o, "spec.flag", "FieldValueTypeInvalid",
                     "Invalid value: \"string\": spec.flag in body must be of type boolean: "
                     "\"string\"");
        assert_cause(o, "spec.free.k", "FieldValueTypeInvalid",
                     "Invalid value: \"string\": spec.free.k in body must be of type integer: "
                     "\"string\"");
        /* \d in the pattern, as RE2 has it. */
        assert_cause(o, "spec.name", "FieldValueInvalid",
                     "Invalid value: \"ab1x\": spec.name in body should match '^[a-z]+\\d*$'");
        cJSON_Delete(o);
        assert_invalid("g", "{\"size\":1,\"tags\":[\"a\",\"b\",\"c\"],\"name\":[\"x\"],\"free\":5}",
                       3);
        /* The schema's type error and the scale path's accessor error. */
        assert_invalid("h", "{\"size\":1.5}", 2);
        assert_invalid("i", "{\"size\":2,\"ratio\":1e30}", 1);
        /* Nothing was stored. */
        assert_int_equal(req("GET", MEMCACHEDS "/a", NULL, NULL, NULL), 404);
}

static void test_defaults_and_pruning(void **state) {
        (void)state;
        cJSON *o = NULL;

        assert_int_equal(create_mc("ok",
                                   "{\"size\":1,\"opt\":null,\"nn\":null,\"items\":[{\"n\":\"x\"}],"
                                   "\"bogus\":1,\"free\":{\"k\":1,\"zz\":{\"a\":1}},\"name\":"
                                   "\"ab12\",\"port\":\"80\"},\"top\":1,\"status\":{\"replicas\":1}",
                                   NULL, &o),
                         201);
        assert_string_equal(str(o, "spec.mode"), "fast");         /* default */
        assert_int_equal((int)num(o, "spec.items.0.v"), 3);        /* default in a list item */
        assert_null(at(o, "spec.bogus"));                          /* pruned */
        assert_null(at(o, "top"));                                 /* pruned at the root */
        assert_null(at(o, "spec.nn"));                             /* null, not nullable */
        assert_true(cJSON_IsNull(at(o, "spec.opt")));              /* nullable */
        assert_int_equal((int)num(o, "spec.free.zz.a"), 1);        /* preserved */
        assert_null(at(o, "status"));                              /* status subresource */
        assert_string_equal(str(o, "metadata.name"), "ok");
        char rv[32];
        snprintf(rv, sizeof rv, "%s", str(o, "metadata.resourceVersion"));
        cJSON_Delete(o);

        /* A null where a default exists gets the default; a patch that
         * only adds an unknown field is a no-op (same resourceVersion). */
        assert_int_equal(req("PATCH", MEMCACHEDS "/ok", "{\"spec\":{\"mode\":null,\"zzz\":1}}",
                             "application/merge-patch+json", &o),
                         200);
        assert_string_equal(str(o, "spec.mode"), "fast");
        assert_null(at(o, "spec.zzz"));
        assert_string_equal(str(o, "metadata.resourceVersion"), rv);
        cJSON_Delete(o);

        /* Updates and patches are validated too. */
        assert_int_equal(req("PATCH", MEMCACHEDS "/ok", "{\"spec\":{\"size\":9}}",
                             "application/merge-patch+json", &o),
                         422);
        assert_cause(o, "spec.size", "FieldValueInvalid",
                     "Invalid value: 9: spec.size in body should be less than or equal to 5");
        cJSON_Delete(o);
        assert_int_equal(req("PATCH", MEMCACHEDS "/ok", "{\"spec\":{\"size\":null}}",
                             "application/merge-patch+json", &o),
                         422);
        assert_cause(o, "spec.size", "FieldValueRequired", "Required value");
        cJSON_Delete(o);
        /* A PUT is validated; without resourceVersion it is refused
         * first, as custom resources allow no unconditional update. */
        char body[400], crv[32];
        assert_int_equal(req("GET", MEMCACHEDS "/ok", NULL, NULL, &o), 200);
        snprintf(crv, sizeof crv, "%s", str(o, "metadata.resourceVersion"));
        cJSON_Delete(o);
        snprintf(body, sizeof body,
                 "{\"apiVersion\":\"cache.example.com/v1\",\"kind\":\"Memcached\","
                 "\"metadata\":{\"name\":\"ok\",\"resourceVersion\":\"%s\"},\"spec\":{\"size\":6}}",
                 crv);
        assert_int_equal(req("PUT", MEMCACHEDS "/ok", body, NULL, &o), 422);
        assert_cause(o, "spec.size", "FieldValueInvalid",
                     "Invalid value: 6: spec.size in body should be less than or equal to 5");
        cJSON_Delete(o);
        assert_int_equal(req("PUT", MEMCACHEDS "/ok",
                             "{\"apiVersion\":\"cache.example.com/v1\",\"kind\":\"Memcached\","
                             "\"metadata\":{\"name\":\"ok\"},\"spec\":{\"size\":2}}",
                             NULL, &o),
                         422);
        assert_cause(o, "metadata.resourceVersion", "FieldValueInvalid",
                     "Invalid value: 0: must be specified for an update");
        assert_string_equal(str(o, "message"),
                            "memcacheds.cache.example.com \"ok\" is invalid: metadata.resourceVersion: "
                            "Invalid value: 0: must be specified for an update");
        cJSON_Delete(o);
        assert_int_equal(req("PUT", MEMCACHEDS "/ok/status",
                             "{\"apiVersion\":\"cache.example.com/v1\",\"kind\":\"Memcached\","
                             "\"metadata\":{\"name\":\"ok\"},\"spec\":{\"size\":2}}",
                             NULL, &o),
                         422);
        assert_cause(o, "metadata.resourceVersion", "FieldValueInvalid",
                     "Invalid value: 0: must be specified for an update");
        cJSON_Delete(o);
        assert_int_equal(req("PATCH", MEMCACHEDS "/ok?fieldManager=t&force=true",
                             "{\"apiVersion\":\"cache.example.com/v1\",\"kind\":\"Memcached\","
                             "\"metadata\":{\"name\":\"ok\"},\"spec\":{\"size\":7}}",
                             "application/apply-patch+yaml", &o),
                         422);
        cJSON_Delete(o);

        /* Status writes validate the status part, named from status in
         * the message as the real server's status validator does. */
        assert_int_equal(req("PATCH", MEMCACHEDS "/ok/status",
                             "{\"status\":{\"replicas\":-1},\"spec\":{\"size\":9}}",
                             "application/merge-patch+json", &o),
                         422);
        assert_cause(o, "status.replicas", "FieldValueInvalid",
                     "Invalid value: -1: replicas in body should be greater than or equal to 0");
        cJSON_Delete(o);
        assert_int_equal(req("PATCH", MEMCACHEDS "/ok/status",
                             "{\"status\":{\"replicas\":2,\"x\":1},\"spec\":{\"size\":9}}",
                             "application/merge-patch+json", &o),
                         200);
        assert_int_equal((int)num(o, "status.replicas"), 2);
        assert_null(at(o, "status.x"));
        assert_int_equal((int)num(o, "spec.size"), 1);
        cJSON_Delete(o);
}

static void test_field_validation(void **state) {
        (void)state;
        cJSON *o = NULL;
        assert_int_equal(create_mc("st", "{\"size\":1,\"sise\":3,\"items\":[{\"n\":\"a\",\"q\":1}]}",
                                   "?fieldValidation=Strict", &o),
                         400);
        assert_string_equal(str(o, "reason"), "BadRequest");
        assert_string_equal(str(o, "message"),
                            "Memcached in version \"v1\" cannot be handled as a Memcached: strict "
                            "decoding error: unknown field \"spec.items[0].q\", unknown field "
                            "\"spec.sise\"");
        cJSON_Delete(o);
        assert_int_equal(create_mc("st", "{\"size\":1}", "?fieldValidation=Strict", &o), 201);
        cJSON_Delete(o);
        assert_int_equal(req("PATCH", MEMCACHEDS "/st?fieldValidation=Strict",
                             "{\"spec\":{\"sise\":3}}", "application/merge-patch+json", &o),
                         422);
        assert_string_equal(str(o, "reason"), "Invalid");
        cJSON_Delete(o);
        /* Ignore and Warn drop unknown fields. */
        assert_int_equal(create_mc("ig", "{\"size\":1,\"sise\":3}", "?fieldValidation=Ignore", &o),
                         201);
        assert_null(at(o, "spec.sise"));
        cJSON_Delete(o);
}

static long create_crd(const char *name, const char *schema, cJSON **ret) {
        size_t n = strlen(schema) + 1024;
        char *body = malloc(n);
        assert_non_null(body);
        snprintf(body, n,
                 "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":"
                 "\"CustomResourceDefinition\",\"metadata\":{\"name\":\"%ss.x.example.com\"},"
                 "\"spec\":{\"group\":\"x.example.com\",\"scope\":\"Namespaced\",\"names\":{"
                 "\"plural\":\"%ss\",\"kind\":\"X%s\"},\"versions\":[{\"name\":\"v1\",\"served\":"
                 "true,\"storage\":true,\"schema\":{\"openAPIV3Schema\":%s}}]}}",
                 name, name, name, schema);
        long code = req("POST", CRDS, body, NULL, ret);
        free(body);
        return code;
}

/* Schemas come from users: bad ones are refused on the CRD, clearly. */
static void test_bad_schemas(void **state) {
        (void)state;
        cJSON *o = NULL;
        assert_int_equal(create_crd("pat",
                                    "{\"type\":\"object\",\"properties\":{\"spec\":{\"type\":"
                                    "\"object\",\"properties\":{\"a\":{\"type\":\"string\","
                                    "\"pattern\":\"(ab\"}}}}}",
                                    &o),
                         422);
        assert_string_equal(str(o, "details.causes.0.field"),
                            "spec.validation.openAPIV3Schema.properties[spec].properties[a]."
                            "pattern");
        assert_non_null(strstr(str(o, "message"), "must be a valid regular expression"));
        cJSON_Delete(o);
        assert_int_equal(create_crd("typ",
                                    "{\"type\":\"object\",\"properties\":{\"spec\":{\"type\":"
                                    "\"strin\"}}}",
                                    &o),
                         422);
        assert_string_equal(str(o, "details.causes.0.reason"), "FieldValueNotSupported");
        assert_string_equal(str(o, "details.causes.0.field"),
                            "spec.validation.openAPIV3Schema.properties[spec].type");
        cJSON_Delete(o);
        /* Patterns that would make regcomp build huge automata: refused as
         * Go's regexp refuses them (repeats nested past 1000). */
        static const char *const huge[] = {"((a{1000}){1000}){1000}", "a{1001}", "(a{100}){100}",
                                           "(((a{10}){10}){10}){2}"};
        for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
                char schema[300];
                snprintf(schema, sizeof schema,
                         "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\","
                         "\"pattern\":\"%s\"}}}",
                         huge[i]);
                assert_int_equal(create_crd("huge", schema, &o), 422);
                assert_non_null(strstr(str(o, "message"), "invalid repeat count"));
                cJSON_Delete(o);
        }
        /* Stacked repetitions, which glibc unrolls exponentially. */
        assert_int_equal(create_crd("stack",
                                    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":"
                                    "\"string\",\"pattern\":\"x++++++++++++++++++++++++++++++\"}}}",
                                    &o),
                         422);
        assert_non_null(strstr(str(o, "message"), "invalid nested repetition operator: `++`"));
        cJSON_Delete(o);
        assert_int_equal(create_crd("okpat",
                                    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":"
                                    "\"string\",\"pattern\":\"^(a{10}){100}[0-9]{1,1000}x*?$\"}}}",
                                    &o),
                         201);
        cJSON_Delete(o);
        /* (?:...) groups, as kube-apiserver (RE2) takes them; flags it
         * takes too, POSIX cannot say: refused, naming the group. */
        assert_int_equal(create_crd("ncpat",
                                    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":"
                                    "\"string\",\"pattern\":\"^(?:ab|c)+$\"}}}",
                                    &o),
                         201);
        cJSON_Delete(o);
        assert_int_equal(create_crd("flagpat",
                                    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":"
                                    "\"string\",\"pattern\":\"(?i)ab\"}}}",
                                    &o),
                         422);
        assert_non_null(strstr(str(o, "message"), "unsupported group `(?i`"));
        cJSON_Delete(o);
        /* 200 levels of nesting. */
        char *deep = malloc(200 * 48 + 64);
        assert_non_null(deep);
        deep[0] = 0;
        for (int i = 0; i < 200; i++)
                strcat(deep, "{\"type\":\"object\",\"properties\":{\"a\":");
        strcat(deep, "{\"type\":\"string\"}");
        for (int i = 0; i < 200; i++)
                strcat(deep, "}}");
        assert_int_equal(create_crd("deep", deep, &o), 422);
        assert_non_null(strstr(str(o, "message"), "nested more than"));
        free(deep);
        cJSON_Delete(o);
        /* A very wide schema. */
        size_t cap = 30000 * 40 + 64, len = 0;
        char *wide = malloc(cap);
        assert_non_null(wide);
        len += (size_t)snprintf(wide + len, cap - len, "{\"type\":\"object\",\"properties\":{");
        for (int i = 0; i < 30000; i++)
                len += (size_t)snprintf(wide + len, cap - len, "%s\"p%d\":{\"type\":\"string\"}",
                                        i ? "," : "", i);
        snprintf(wide + len, cap - len, "}}");
        assert_int_equal(create_crd("wide", wide, &o), 422);
        assert_non_null(strstr(str(o, "message"), "more than"));
        free(wide);
        cJSON_Delete(o);
        /* Scale paths must lead under .spec and .status. */
        assert_int_equal(req("POST", CRDS,
                             "{\"metadata\":{\"name\":\"sps.x.example.com\"},\"spec\":{\"group\":"
                             "\"x.example.com\",\"scope\":\"Namespaced\",\"names\":{\"plural\":"
                             "\"sps\",\"kind\":\"Sp\"},\"versions\":[{\"name\":\"v1\",\"served\":"
                             "true,\"storage\":true,\"subresources\":{\"scale\":{"
                             "\"specReplicasPath\":\".metadata.name\",\"statusReplicasPath\":"
                             "\".status.r\"}}}]}}",
                             NULL, &o),
                         422);
        assert_string_equal(str(o, "details.causes.0.field"),
                            "spec.subresources.scale.specReplicasPath");
        assert_string_equal(str(o, "details.causes.0.message"),
                            "Invalid value: \".metadata.name\": should be a json path under .spec");
        cJSON_Delete(o);
        /* The server still answers. */
        assert_int_equal(req("GET", CRDS, NULL, NULL, NULL), 200);
}

static void test_openapi(void **state) {
        (void)state;
        cJSON *o = NULL;
        assert_int_equal(req("GET", "/openapi/v3", NULL, NULL, &o), 200);
        const char *url = str(cJSON_GetObjectItemCaseSensitive(at(o, "paths"),
                                                               "apis/cache.example.com/v1"),
                              "serverRelativeURL");
        assert_non_null(url);
        assert_non_null(strstr(url, "/openapi/v3/apis/cache.example.com/v1?hash="));
        assert_non_null(at(o, "paths.api/v1"));
        assert_non_null(at(o, "paths.apis/apps/v1"));
        cJSON_Delete(o);

        assert_int_equal(req("GET", "/openapi/v3/apis/cache.example.com/v1", NULL, NULL, &o), 200);
        assert_string_equal(str(o, "openapi"), "3.0.0");
        const cJSON *schemas = at(o, "components");
        const cJSON *mc = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(schemas, "schemas"),
                "com.example.cache.v1.Memcached");
        assert_non_null(mc);
        assert_int_equal((int)num(mc, "properties.spec.properties.size.maximum"), 5);
        assert_string_equal(str(mc, "properties.metadata.type"), "object");
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(
                at(o, "paths"), "/apis/cache.example.com/v1/namespaces/{namespace}/memcacheds/{name}");
        assert_non_null(path);
        /* What kubectl looks for to let the server validate. */
        assert_string_equal(str(path, "patch.x-kubernetes-group-version-kind.kind"), "Memcached");
        bool field_validation = false;
        const cJSON *param;
        cJSON_ArrayForEach(param, at(path, "patch.parameters")) {
                if (strcmp(str(param, "name") ?: "", "fieldValidation") == 0 &&
                    strcmp(str(param, "in") ?: "", "query") == 0)
                        field_validation = true;
        }
        assert_true(field_validation);
        cJSON_Delete(o);
        assert_int_equal(req("GET", "/openapi/v3/apis/nothing.example.com/v1", NULL, NULL, NULL),
                         404);
        assert_int_equal(req("GET", "/openapi/v2", NULL, NULL, &o), 200);
        assert_string_equal(str(o, "swagger"), "2.0");
        assert_non_null(cJSON_GetObjectItemCaseSensitive(at(o, "definitions"),
                                                         "com.example.cache.v1.Memcached"));
        assert_non_null(cJSON_GetObjectItemCaseSensitive(at(o, "definitions"),
                                                         "io.k8s.api.core.v1.ConfigMap"));
        cJSON_Delete(o);
}

/* The hash in the index's URL of a group version. */
static char *openapi_url(const char *gv) {
        cJSON *o = NULL;
        assert_int_equal(req("GET", "/openapi/v3", NULL, NULL, &o), 200);
        const char *url = str(cJSON_GetObjectItemCaseSensitive(at(o, "paths"), gv),
                              "serverRelativeURL");
        assert_non_null(url);
        char *copy = strdup(url);
        cJSON_Delete(o);
        return copy;
}

/* A CRD's change shows in the documents and their hashes at once; without
 * a change they stay the same. */
static void test_openapi_follows_crds(void **state) {
        (void)state;
        static const char max_path[] =
                "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/size/maximum";
        char patch[300];
        cJSON *o = NULL;
        char *before = openapi_url("apis/cache.example.com/v1");
        char *again = openapi_url("apis/cache.example.com/v1");
        assert_string_equal(before, again);
        free(again);

        snprintf(patch, sizeof patch, "[{\"op\":\"replace\",\"path\":\"%s\",\"value\":6}]",
                 max_path);
        assert_int_equal(req("PATCH", CRDS "/memcacheds.cache.example.com", patch,
                             "application/json-patch+json", NULL),
                         200);
        char *after = openapi_url("apis/cache.example.com/v1");
        assert_string_not_equal(before, after);
        assert_int_equal(req("GET", "/openapi/v3/apis/cache.example.com/v1", NULL, NULL, &o), 200);
        const cJSON *mc = cJSON_GetObjectItemCaseSensitive(at(o, "components.schemas"),
                                                           "com.example.cache.v1.Memcached");
        assert_int_equal((int)num(mc, "properties.spec.properties.size.maximum"), 6);
        cJSON_Delete(o);

        snprintf(patch, sizeof patch, "[{\"op\":\"replace\",\"path\":\"%s\",\"value\":5}]",
                 max_path);
        assert_int_equal(req("PATCH", CRDS "/memcacheds.cache.example.com", patch,
                             "application/json-patch+json", NULL),
                         200);
        char *back = openapi_url("apis/cache.example.com/v1");
        assert_string_equal(before, back);
        free(before);
        free(after);
        free(back);
}

static void test_scale(void **state) {
        (void)state;
        cJSON *o = NULL;
        assert_int_equal(create_mc("sc", "{\"size\":2}", NULL, &o), 201);
        cJSON_Delete(o);
        assert_int_equal(req("GET", MEMCACHEDS "/sc/scale", NULL, NULL, &o), 200);
        assert_string_equal(str(o, "kind"), "Scale");
        assert_string_equal(str(o, "apiVersion"), "autoscaling/v1");
        assert_int_equal((int)num(o, "spec.replicas"), 2);
        assert_int_equal((int)num(o, "status.replicas"), 0);
        cJSON_Delete(o);
        assert_int_equal(req("PATCH", MEMCACHEDS "/sc/scale", "{\"spec\":{\"replicas\":4}}",
                             "application/merge-patch+json", &o),
                         200);
        assert_int_equal((int)num(o, "spec.replicas"), 4);
        cJSON_Delete(o);
        assert_int_equal(req("GET", MEMCACHEDS "/sc", NULL, NULL, &o), 200);
        assert_int_equal((int)num(o, "spec.size"), 4);
        assert_int_equal((int)num(o, "metadata.generation"), 2);
        cJSON_Delete(o);
        /* The custom resource's schema applies. */
        assert_int_equal(req("PUT", MEMCACHEDS "/sc/scale",
                             "{\"kind\":\"Scale\",\"apiVersion\":\"autoscaling/v1\",\"metadata\":"
                             "{\"name\":\"sc\"},\"spec\":{\"replicas\":-3}}",
                             NULL, &o),
                         422);
        assert_cause(o, ".spec.size", "FieldValueInvalid",
                     "Invalid value: -3: should be a non-negative integer");
        assert_cause(o, "spec.size", "FieldValueInvalid",
                     "Invalid value: -3: spec.size in body should be greater than or equal to 1");
        cJSON_Delete(o);
        assert_int_equal(req("PUT", MEMCACHEDS "/sc/scale",
                             "{\"kind\":\"Scale\",\"apiVersion\":\"autoscaling/v1\",\"metadata\":"
                             "{\"name\":\"sc\",\"resourceVersion\":\"1\"},\"spec\":{\"replicas\":3}}",
                             NULL, NULL),
                         409);
        assert_int_equal(req("GET", MEMCACHEDS "/missing/scale", NULL, NULL, NULL), 404);
        /* Status replicas through the status subresource. */
        assert_int_equal(req("PATCH", MEMCACHEDS "/sc/status",
                             "{\"status\":{\"replicas\":3,\"selector\":\"app=sc\"}}",
                             "application/merge-patch+json", NULL),
                         200);
        assert_int_equal(req("GET", MEMCACHEDS "/sc/scale", NULL, NULL, &o), 200);
        assert_int_equal((int)num(o, "status.replicas"), 3);
        assert_string_equal(str(o, "status.selector"), "app=sc");
        cJSON_Delete(o);

        /* Deployments: replicas default to 1, the selector is written out. */
        assert_int_equal(req("POST", "/apis/apps/v1/namespaces/default/deployments",
                             "{\"metadata\":{\"name\":\"d\"},\"spec\":{\"selector\":{"
                             "\"matchLabels\":{\"b\":\"2\",\"a\":\"1\"},\"matchExpressions\":[{"
                             "\"key\":\"k\",\"operator\":\"NotIn\",\"values\":[\"y\",\"x\"]},{"
                             "\"key\":\"e\",\"operator\":\"Exists\"}]}}}",
                             NULL, NULL),
                         201);
        assert_int_equal(req("GET", "/apis/apps/v1/namespaces/default/deployments/d/scale", NULL,
                             NULL, &o),
                         200);
        assert_int_equal((int)num(o, "spec.replicas"), 1);
        assert_string_equal(str(o, "status.selector"), "a=1,b=2,e,k notin (x,y)");
        cJSON_Delete(o);
        assert_int_equal(req("PATCH", "/apis/apps/v1/namespaces/default/deployments/d/scale",
                             "{\"spec\":{\"replicas\":-1}}", "application/merge-patch+json", &o),
                         422);
        assert_string_equal(str(o, "details.kind"), "Scale");
        cJSON_Delete(o);
        assert_int_equal(req("PATCH", "/apis/apps/v1/namespaces/default/deployments/d/scale",
                             "[{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":5}]",
                             "application/json-patch+json", NULL),
                         200);
        assert_int_equal(req("GET", "/apis/apps/v1/namespaces/default/deployments/d", NULL, NULL,
                             &o),
                         200);
        assert_int_equal((int)num(o, "spec.replicas"), 5);
        cJSON_Delete(o);
        assert_int_equal(req("GET", "/api/v1/namespaces/default/configmaps/x/scale", NULL, NULL,
                             NULL),
                         404);
        /* Discovery lists the subresource. */
        assert_int_equal(req("GET", "/apis/cache.example.com/v1", NULL, NULL, &o), 200);
        bool listed = false;
        const cJSON *r;
        cJSON_ArrayForEach(r, at(o, "resources")) {
                if (strcmp(str(r, "name") ?: "", "memcacheds/scale") == 0 &&
                    strcmp(str(r, "kind") ?: "", "Scale") == 0)
                        listed = true;
        }
        assert_true(listed);
        cJSON_Delete(o);
}

#define TABLE "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"

/* A GET with an Accept header. */
static long req_accept(const char *path, const char *accept, cJSON **ret) {
        CURL *e = curl_easy_init();
        struct curl_slist *h = NULL;
        char url[1024], auth[256], acc[512];
        koc_test_buffer b = {0};
        long code = -1;
        snprintf(url, sizeof url, "%s%s", srv.url, path);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", srv.token);
        snprintf(acc, sizeof acc, "Accept: %s", accept);
        h = curl_slist_append(h, auth);
        h = curl_slist_append(h, acc);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(e, CURLOPT_CAINFO, srv.ca_file);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, koc_test_buffer_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
        if (curl_easy_perform(e) == CURLE_OK)
                curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        curl_slist_free_all(h);
        curl_easy_cleanup(e);
        *ret = b.data ? cJSON_Parse(b.data) : NULL;
        free(b.data);
        return code;
}

static void test_table(void **state) {
        (void)state;
        cJSON *o = NULL;
        assert_int_equal(create_mc("tb", "{\"size\":3,\"mode\":\"slow\"}", NULL, &o), 201);
        cJSON_Delete(o);
        assert_int_equal(req_accept(MEMCACHEDS "?limit=100", TABLE, &o), 200);
        assert_string_equal(str(o, "kind"), "Table");
        assert_string_equal(str(o, "apiVersion"), "meta.k8s.io/v1");
        assert_non_null(str(o, "metadata.resourceVersion"));
        assert_int_equal(cJSON_GetArraySize(at(o, "columnDefinitions")), 3);
        assert_string_equal(str(o, "columnDefinitions.0.name"), "Name");
        assert_string_equal(str(o, "columnDefinitions.0.format"), "name");
        assert_string_equal(str(o, "columnDefinitions.1.name"), "Size");
        assert_string_equal(str(o, "columnDefinitions.1.type"), "integer");
        assert_string_equal(str(o, "columnDefinitions.2.name"), "Mode");
        bool found = false;
        const cJSON *row;
        cJSON_ArrayForEach(row, at(o, "rows")) {
                if (strcmp(str(row, "cells.0") ?: "", "tb") != 0)
                        continue;
                found = true;
                assert_int_equal((int)num(row, "cells.1"), 3);
                assert_string_equal(str(row, "cells.2"), "slow");
                assert_string_equal(str(row, "object.kind"), "PartialObjectMetadata");
                assert_null(at(row, "object.spec"));
        }
        assert_true(found);
        cJSON_Delete(o);
        assert_int_equal(req_accept(MEMCACHEDS "/tb?includeObject=Object", TABLE, &o), 200);
        assert_int_equal(cJSON_GetArraySize(at(o, "rows")), 1);
        assert_string_equal(str(o, "rows.0.object.kind"), "Memcached");
        cJSON_Delete(o);
        assert_int_equal(req_accept(MEMCACHEDS "/tb?includeObject=None", TABLE, &o), 200);
        assert_null(at(o, "rows.0.object"));
        cJSON_Delete(o);
        /* Built-in printers, and Name and Age for the rest. */
        assert_int_equal(req("POST", "/api/v1/namespaces/default/configmaps",
                             "{\"metadata\":{\"name\":\"cm\"},\"data\":{\"a\":\"1\",\"b\":\"2\"}}",
                             NULL, NULL),
                         201);
        assert_int_equal(req_accept("/api/v1/namespaces/default/configmaps/cm", TABLE, &o), 200);
        assert_string_equal(str(o, "columnDefinitions.1.name"), "Data");
        assert_int_equal((int)num(o, "rows.0.cells.1"), 2);
        assert_string_equal(str(o, "columnDefinitions.2.name"), "Age");
        const char *age = str(o, "rows.0.cells.2");
        assert_non_null(age);
        assert_true(age[strlen(age) - 1] == 's');
        cJSON_Delete(o);
        assert_int_equal(req("POST", "/api/v1/namespaces/default/serviceaccounts",
                             "{\"metadata\":{\"name\":\"sa\"}}", NULL, NULL),
                         201);
        assert_int_equal(req_accept("/api/v1/namespaces/default/serviceaccounts", TABLE, &o), 200);
        assert_int_equal(cJSON_GetArraySize(at(o, "columnDefinitions")), 2);
        assert_string_equal(str(o, "columnDefinitions.1.name"), "Age");
        cJSON_Delete(o);
        /* A watch asked as Table: each event's object a one-row Table. */
        assert_int_equal(req_accept(MEMCACHEDS "?watch=1&timeoutSeconds=1&fieldSelector="
                                                "metadata.name%3Dtb",
                                    TABLE, &o),
                         200);
        assert_string_equal(str(o, "type"), "ADDED");
        assert_string_equal(str(o, "object.kind"), "Table");
        assert_string_equal(str(o, "object.columnDefinitions.1.name"), "Size");
        assert_string_equal(str(o, "object.rows.0.cells.0"), "tb");
        assert_non_null(str(o, "object.metadata.resourceVersion"));
        cJSON_Delete(o);
        /* Without the Table media type: the plain list. */
        assert_int_equal(req_accept(MEMCACHEDS, "application/json", &o), 200);
        assert_string_equal(str(o, "kind"), "MemcachedList");
        cJSON_Delete(o);
}

#define CMS "/api/v1/namespaces/default/configmaps"

/* Creates ConfigMap name owned by the objects (apiVersion, kind, name,
 * uid, blockOwnerDeletion) given as a JSON array. */
static void create_dependent(const char *name, const char *refs) {
        char body[2048];
        snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"%s\",\"ownerReferences\":%s}}",
                 name, refs);
        assert_int_equal(req("POST", CMS, body, NULL, NULL), 201);
}

static char *uid_of(const char *path) {
        cJSON *o = NULL;
        assert_int_equal(req("GET", path, NULL, NULL, &o), 200);
        char *uid = strdup(str(o, "metadata.uid"));
        cJSON_Delete(o);
        return uid;
}

/* How many 10 ms rounds a wait may take: 10 s, or 60 s when the test or
 * the server runs under valgrind.  Waits end as soon as the condition
 * holds. */
static int wait_rounds(void) {
        const char *v = getenv("KOC_UNDER_VALGRIND"), *w = getenv("KOC_APISERVER_WRAPPER");
        return (v && *v) || (w && *w) ? 6000 : 1000;
}

/* Waits (bounded) until GET path answers code. */
static bool wait_code(const char *path, long code) {
        for (int i = 0, max = wait_rounds(); i < max; i++) {
                if (req("GET", path, NULL, NULL, NULL) == code)
                        return true;
                usleep(10 * 1000);
        }
        return false;
}

static void test_garbage_collector(void **state) {
        (void)state;
        char refs[1024];
        cJSON *o = NULL;

        /* Background (the default): the owner goes at once, its dependents
         * soon after. */
        assert_int_equal(create_mc("owner", "{\"size\":1}", NULL, NULL), 201);
        char *uid = uid_of(MEMCACHEDS "/owner");
        snprintf(refs, sizeof refs,
                 "[{\"apiVersion\":\"cache.example.com/v1\",\"kind\":\"Memcached\",\"name\":"
                 "\"owner\",\"uid\":\"%s\",\"controller\":true}]",
                 uid);
        create_dependent("bg-1", refs);
        create_dependent("bg-2", refs);
        free(uid);
        assert_int_equal(req("DELETE", MEMCACHEDS "/owner", NULL, NULL, NULL), 200);
        assert_true(wait_code(CMS "/bg-1", 404));
        assert_true(wait_code(CMS "/bg-2", 404));

        /* A dependent whose owner (by uid) never existed goes; one whose
         * owner's kind is unknown stays; a reference to a missing owner is
         * dropped when another owner remains. */
        assert_int_equal(req("POST", CMS, "{\"metadata\":{\"name\":\"keeper\"}}", NULL, NULL),
                         201);
        uid = uid_of(CMS "/keeper");
        create_dependent("dangling", "[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":"
                                     "\"keeper\",\"uid\":\"not-its-uid\"}]");
        create_dependent("unknown", "[{\"apiVersion\":\"nothing.example.com/v1\",\"kind\":"
                                    "\"Thing\",\"name\":\"t\",\"uid\":\"u\"}]");
        snprintf(refs, sizeof refs,
                 "[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"keeper\",\"uid\":"
                 "\"%s\"},{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"gone\","
                 "\"uid\":\"gone-uid\"}]",
                 uid);
        create_dependent("two-owners", refs);
        assert_true(wait_code(CMS "/dangling", 404));
        for (int i = 0, max = wait_rounds(); i < max; i++) {
                assert_int_equal(req("GET", CMS "/two-owners", NULL, NULL, &o), 200);
                int n = cJSON_GetArraySize(at(o, "metadata.ownerReferences"));
                cJSON_Delete(o);
                if (n == 1)
                        break;
                usleep(10 * 1000);
        }
        assert_int_equal(req("GET", CMS "/two-owners", NULL, NULL, &o), 200);
        assert_int_equal(cJSON_GetArraySize(at(o, "metadata.ownerReferences")), 1);
        assert_string_equal(str(o, "metadata.ownerReferences.0.name"), "keeper");
        cJSON_Delete(o);
        assert_int_equal(req("GET", CMS "/unknown", NULL, NULL, NULL), 200);
        free(uid);

        /* Foreground: the owner waits, with its finalizer, for the
         * dependents that block it. */
        assert_int_equal(req("POST", CMS, "{\"metadata\":{\"name\":\"fg\"}}", NULL, NULL), 201);
        uid = uid_of(CMS "/fg");
        snprintf(refs, sizeof refs,
                 "[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"fg\",\"uid\":"
                 "\"%s\",\"blockOwnerDeletion\":true}]",
                 uid);
        free(uid);
        /* The dependent holds on with a finalizer of its own. */
        char body[2048];
        snprintf(body, sizeof body,
                 "{\"metadata\":{\"name\":\"fg-dep\",\"finalizers\":[\"example.com/hold\"],"
                 "\"ownerReferences\":%s}}",
                 refs);
        assert_int_equal(req("POST", CMS, body, NULL, NULL), 201);
        assert_int_equal(req("DELETE", CMS "/fg",
                             "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\","
                             "\"propagationPolicy\":\"Foreground\"}",
                             NULL, &o),
                         200);
        assert_non_null(str(o, "metadata.deletionTimestamp"));
        assert_string_equal(str(o, "metadata.finalizers.0"), "foregroundDeletion");
        cJSON_Delete(o);
        for (int i = 0, max = wait_rounds(); i < max; i++) {
                assert_int_equal(req("GET", CMS "/fg-dep", NULL, NULL, &o), 200);
                bool deleting = at(o, "metadata.deletionTimestamp") != NULL;
                cJSON_Delete(o);
                if (deleting)
                        break;
                usleep(10 * 1000);
        }
        usleep(500 * 1000);
        assert_int_equal(req("GET", CMS "/fg", NULL, NULL, NULL), 200); /* still waiting */
        assert_int_equal(req("PATCH", CMS "/fg-dep", "{\"metadata\":{\"finalizers\":null}}",
                             "application/merge-patch+json", NULL),
                         200);
        assert_true(wait_code(CMS "/fg-dep", 404));
        assert_true(wait_code(CMS "/fg", 404));

        /* Orphan: the dependents stay, without the reference. */
        assert_int_equal(req("POST", CMS, "{\"metadata\":{\"name\":\"or\"}}", NULL, NULL), 201);
        uid = uid_of(CMS "/or");
        snprintf(refs, sizeof refs,
                 "[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"or\",\"uid\":"
                 "\"%s\"}]",
                 uid);
        free(uid);
        create_dependent("or-dep", refs);
        assert_int_equal(req("DELETE", CMS "/or?propagationPolicy=Orphan", NULL, NULL, NULL), 200);
        assert_true(wait_code(CMS "/or", 404));
        assert_int_equal(req("GET", CMS "/or-dep", NULL, NULL, &o), 200);
        assert_null(at(o, "metadata.ownerReferences"));
        cJSON_Delete(o);
        assert_int_equal(req("DELETE", CMS "/or-dep?propagationPolicy=Sideways", NULL, NULL, &o),
                         422);
        cJSON_Delete(o);
}

/* A pass of the garbage collector examines 2000 objects a tick: with more,
 * a pass spans ticks.  An owner deleted in the foreground between two
 * ticks of a pass, after its blocking dependent was examined and before
 * the owner was, still waits for that dependent.  The deletion lands at
 * several points of the 100 ms ticks, so that some fall inside a pass. */
static void test_garbage_collector_long_pass(void **state) {
        (void)state;
        char name[64], body[2048], path[256];
        cJSON *o = NULL;

        /* Between the dependents ("default/a...") and the owners
         * ("default/z...") in key order. */
        for (int i = 0; i < 150; i++) { /* past --gc-examine-per-tick 100 */
                snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"m-%04d\"}}", i);
                assert_int_equal(req("POST", CMS, body, NULL, NULL), 201);
        }
        for (int t = 0; t < 8; t++) {
                snprintf(name, sizeof name, "z-own-%d", t);
                snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"%s\"}}", name);
                assert_int_equal(req("POST", CMS, body, NULL, NULL), 201);
                snprintf(path, sizeof path, CMS "/%s", name);
                char *uid = uid_of(path);
                snprintf(body, sizeof body,
                         "{\"metadata\":{\"name\":\"a-dep-%d\",\"finalizers\":[\"example.com/"
                         "hold\"],\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":"
                         "\"ConfigMap\",\"name\":\"%s\",\"uid\":\"%s\",\"blockOwnerDeletion\":"
                         "true}]}}",
                         t, name, uid);
                free(uid);
                assert_int_equal(req("POST", CMS, body, NULL, NULL), 201);
                usleep((useconds_t)((t * 29) % 200) * 1000);
                assert_int_equal(req("DELETE", path,
                                     "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\","
                                     "\"propagationPolicy\":\"Foreground\"}",
                                     NULL, &o),
                                 200);
                cJSON_Delete(o);
                usleep(400 * 1000);
                assert_int_equal(req("GET", path, NULL, NULL, NULL), 200); /* still waiting */
                char dep[256];
                snprintf(dep, sizeof dep, CMS "/a-dep-%d", t);
                assert_int_equal(req("PATCH", dep, "{\"metadata\":{\"finalizers\":null}}",
                                     "application/merge-patch+json", NULL),
                                 200);
                assert_true(wait_code(dep, 404));
                assert_true(wait_code(path, 404));
        }
}

static int group_setup(void **state) {
        (void)state;
        /* A pass of the garbage collector spans ticks past 100 objects
         * (test_garbage_collector_long_pass). */
        if (koc_test_apiserver_start(&srv, "--gc-examine-per-tick 100") < 0)
                return -1;
        return req("POST", CRDS, crd, NULL, NULL) == 201 ? 0 : -1;
}

static int group_teardown(void **state) {
        (void)state;
        koc_test_apiserver_stop(&srv);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_schema_validation),
                cmocka_unit_test(test_defaults_and_pruning),
                cmocka_unit_test(test_field_validation),
                cmocka_unit_test(test_bad_schemas),
                cmocka_unit_test(test_openapi),
                cmocka_unit_test(test_openapi_follows_crds),
                cmocka_unit_test(test_scale),
                cmocka_unit_test(test_table),
                cmocka_unit_test(test_garbage_collector),
                cmocka_unit_test(test_garbage_collector_long_pass),
        };
        int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
        if (srv.exit_status != 0) {
                fprintf(stderr, "koc-apiserver exit status %d\n", srv.exit_status);
                return 1;
        }
        return failed;
}

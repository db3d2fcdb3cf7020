/* SPDX-License-Identifier: Apache-2.0 */
/* koc-apiserver's pure parts: selectors, patches, API paths, the protobuf
 * decoder and the small containers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/apiserver.h"

static bool labels_match(const char *sel, const char *labels_json) {
        selector *s = NULL;
        char err[256];
        cJSON *labels = labels_json ? cJSON_Parse(labels_json) : NULL;
        assert_int_equal(selector_parse_labels(sel, &s, err, sizeof err), 0);
        bool m = selector_match_labels(s, labels);
        selector_free(s);
        cJSON_Delete(labels);
        return m;
}

static void test_label_selectors(void **state) {
        const char *l = "{\"app\":\"web\",\"tier\":\"front\",\"n\":\"5\"}";
        assert_true(labels_match("", l));
        assert_true(labels_match("", NULL));
        assert_true(labels_match("app=web", l));
        assert_true(labels_match("app==web", l));
        assert_false(labels_match("app=db", l));
        assert_true(labels_match("app!=db", l));
        assert_true(labels_match("missing!=x", l)); /* != matches absent keys */
        assert_true(labels_match("app in (db, web)", l));
        assert_false(labels_match("app notin (db,web)", l));
        assert_true(labels_match("missing notin (x)", l));
        assert_true(labels_match("app", l));
        assert_false(labels_match("!app", l));
        assert_true(labels_match("!missing", l));
        assert_true(labels_match("app=web, tier=front", l));
        assert_false(labels_match("app=web,tier=back", l));
        assert_true(labels_match("n>3", l));
        assert_false(labels_match("n<3", l));
        assert_true(labels_match("example.com/key!=v", l));
        assert_true(labels_match("app=", "{\"app\":\"\"}"));

        static const char *const bad[] = {"app in (a",
                                          "=x",
                                          "app in a",
                                          "a,",
                                          "app=web)",
                                          "a=="
                                          "=b",
                                          /* apimachinery: the value of > and < is an integer */
                                          "n>x",
                                          "n<"};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                selector *s = NULL;
                char err[256] = "";
                assert_int_equal(selector_parse_labels(bad[i], &s, err, sizeof err), -EINVAL);
                assert_null(s);
                assert_true(strlen(err) > 0);
        }
}

static void test_field_selectors(void **state) {
        cJSON *o = cJSON_Parse("{\"metadata\":{\"name\":\"a,b\",\"namespace\":\"ns\"},\"spec\":{"
                               "\"n\":3,\"on\":true}}");
        selector *s = NULL;
        char err[256];

        assert_int_equal(selector_parse_fields("metadata.name=a\\,b,metadata.namespace==ns", &s,
                                               err, sizeof err),
                         0);
        assert_true(selector_match_fields(s, o));
        assert_string_equal(selector_field_name(s), "a,b");
        s = selector_free(s);
        assert_int_equal(selector_parse_fields("metadata.namespace!=ns", &s, err, sizeof err), 0);
        assert_false(selector_match_fields(s, o));
        assert_null(selector_field_name(s));
        s = selector_free(s);
        assert_int_equal(
                selector_parse_fields("spec.n=3,spec.on=true,spec.missing=", &s, err, sizeof err),
                0);
        assert_true(selector_match_fields(s, o));
        s = selector_free(s);
        assert_int_equal(selector_parse_fields("metadata.name", &s, err, sizeof err), -EINVAL);
        assert_int_equal(selector_parse_fields("=x", &s, err, sizeof err), -EINVAL);
        cJSON_Delete(o);
}

static void check_merge(const char *target, const char *patch, const char *want) {
        cJSON *t = cJSON_Parse(target), *p = cJSON_Parse(patch), *w = cJSON_Parse(want);
        cJSON *r = merge_patch(t, p);
        char *got = cJSON_PrintUnformatted(r);
        if (!cJSON_Compare(r, w, true))
                fail_msg("merge %s + %s = %s, want %s", target, patch, got, want);
        free(got);
        cJSON_Delete(t);
        cJSON_Delete(p);
        cJSON_Delete(w);
        cJSON_Delete(r);
}

static void test_merge_patch(void **state) {
        /* The examples of RFC 7386, appendix A. */
        check_merge("{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
        check_merge("{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}");
        check_merge("{\"a\":\"b\"}", "{\"a\":null}", "{}");
        check_merge("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}");
        check_merge("{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
        check_merge("{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}");
        check_merge("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}",
                    "{\"a\":{\"b\":\"d\"}}");
        check_merge("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}");
        check_merge("[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]");
        check_merge("{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]");
        check_merge("{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}");
        check_merge("[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}");
        check_merge("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}");
}

static int apply_json_patch(const char *doc, const char *ops, char **ret) {
        cJSON *d = cJSON_Parse(doc), *o = cJSON_Parse(ops);
        char err[256] = "";
        int r = json_patch(&d, o, err, sizeof err);
        if (r < 0)
                assert_true(strlen(err) > 0);
        *ret = cJSON_PrintUnformatted(d);
        cJSON_Delete(d);
        cJSON_Delete(o);
        return r;
}

static void test_json_patch(void **state) {
        char *out = NULL;
        assert_int_equal(apply_json_patch("{\"a\":[1,2]}",
                                          "[{\"op\":\"add\",\"path\":\"/a/1\",\"value\":9},"
                                          "{\"op\":\"add\",\"path\":\"/a/-\",\"value\":3},"
                                          "{\"op\":\"add\",\"path\":\"/b~1c~0d\",\"value\":true}]",
                                          &out),
                         0);
        assert_string_equal(out, "{\"a\":[1,9,2,3],\"b/c~d\":true}");
        free(out);
        assert_int_equal(apply_json_patch("{\"a\":{\"x\":1},\"b\":{}}",
                                          "[{\"op\":\"move\",\"from\":\"/a/x\",\"path\":\"/b/y\"},"
                                          "{\"op\":\"copy\",\"from\":\"/b\",\"path\":\"/c\"},"
                                          "{\"op\":\"replace\",\"path\":\"/a\",\"value\":0},"
                                          "{\"op\":\"test\",\"path\":\"/c/y\",\"value\":1}]",
                                          &out),
                         0);
        assert_string_equal(out, "{\"a\":0,\"b\":{\"y\":1},\"c\":{\"y\":1}}");
        free(out);
        assert_int_equal(
                apply_json_patch("{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"/b\"}]", &out),
                -EINVAL);
        free(out);
        assert_int_equal(apply_json_patch("{\"a\":1}",
                                          "[{\"op\":\"replace\",\"path\":\"/b\",\"value\":1}]",
                                          &out),
                         -EINVAL);
        free(out);
        assert_int_equal(apply_json_patch("{\"a\":[1]}",
                                          "[{\"op\":\"add\",\"path\":\"/a/5\",\"value\":1}]", &out),
                         -EINVAL);
        free(out);
        assert_int_equal(apply_json_patch("{\"a\":1}",
                                          "[{\"op\":\"test\",\"path\":\"/a\",\"value\":2}]", &out),
                         -ECANCELED);
        free(out);
        assert_int_equal(apply_json_patch("{\"a\":1}", "[{\"op\":\"jump\",\"path\":\"/a\"}]", &out),
                         -EINVAL);
        free(out);
        assert_int_equal(apply_json_patch("{\"a\":1}", "{\"op\":\"add\"}", &out), -EINVAL);
        free(out);
        assert_int_equal(apply_json_patch("{\"a\":1}",
                                          "[{\"op\":\"add\",\"path\":\"\",\"value\":[1]}]", &out),
                         0);
        assert_string_equal(out, "[1]");
        free(out);
}

static void test_api_paths(void **state) {
        api_path p = {0};
        assert_int_equal(api_path_parse("/apis/coordination.k8s.io/v1/namespaces/ns/leases/l1", &p),
                         0);
        assert_string_equal(p.group, "coordination.k8s.io");
        assert_string_equal(p.version, "v1");
        assert_string_equal(p.ns, "ns");
        assert_string_equal(p.resource, "leases");
        assert_string_equal(p.name, "l1");
        assert_null(p.sub);
        api_path_free(&p);
        assert_int_equal(api_path_parse("/api/v1/namespaces/ns", &p), 0);
        assert_string_equal(p.group, "");
        assert_null(p.ns);
        assert_string_equal(p.resource, "namespaces");
        assert_string_equal(p.name, "ns");
        api_path_free(&p);
        assert_int_equal(api_path_parse("/api/v1/namespaces/ns/status", &p), 0);
        assert_string_equal(p.resource, "namespaces");
        assert_string_equal(p.sub, "status");
        api_path_free(&p);
        assert_int_equal(api_path_parse("/apis/apps/v1/namespaces/d/deployments/x/status", &p), 0);
        assert_string_equal(p.sub, "status");
        api_path_free(&p);
        assert_int_equal(api_path_parse("/apis/apps/v1/deployments", &p), 0);
        assert_null(p.ns);
        assert_null(p.name);
        api_path_free(&p);
        assert_int_equal(api_path_parse("/apis/apps/v1", &p), 0);
        assert_null(p.resource);
        api_path_free(&p);
        assert_int_equal(api_path_parse("/apis/apps", &p), -ENOENT);
        assert_int_equal(api_path_parse("/metrics", &p), -ENOENT);
        assert_int_equal(api_path_parse("/api/v1/namespaces/a/b/c/d/e", &p), -ENOENT);
        assert_true(cluster_scoped_resource("", "namespaces"));
        assert_true(cluster_scoped_resource("rbac.authorization.k8s.io", "clusterroles"));
        assert_false(cluster_scoped_resource("coordination.k8s.io", "leases"));
        assert_false(cluster_scoped_resource("example.com", "widgets"));
}

/* Minimal protobuf writer for the test. */
typedef struct pb {
        uint8_t buf[1024];
        size_t len;
} pb;

static void pb_varint(pb *b, uint64_t v) {
        do {
                uint8_t c = v & 0x7f;
                v >>= 7;
                b->buf[b->len++] = c | (v ? 0x80 : 0);
        } while (v);
}

static void pb_bytes(pb *b, unsigned field, const void *data, size_t n) {
        pb_varint(b, (uint64_t)field << 3 | 2);
        pb_varint(b, n);
        memcpy(b->buf + b->len, data, n);
        b->len += n;
}

static void pb_str(pb *b, unsigned field, const char *s) {
        pb_bytes(b, field, s, strlen(s));
}

static void pb_msg(pb *b, unsigned field, const pb *m) {
        pb_bytes(b, field, m->buf, m->len);
}

static void test_protobuf(void **state) {
        pb meta = {0}, entry = {0}, labels = {0}, time = {0}, cm = {0}, tm = {0}, env = {0};
        char err[256];

        pb_str(&meta, 1, "settings");
        pb_str(&meta, 2, ""); /* empty strings are omitted */
        pb_str(&meta, 3, "default");
        pb_str(&labels, 1, "app");
        pb_str(&labels, 2, "web");
        pb_msg(&meta, 11, &labels);
        pb_varint(&time, 1 << 3 | 0);
        pb_varint(&time, 1700000000);
        pb_msg(&meta, 8, &time);
        pb_str(&meta, 14, "koc.dev/f");
        pb_msg(&cm, 1, &meta);
        pb_str(&entry, 1, "mode");
        pb_str(&entry, 2, "fast");
        pb_msg(&cm, 2, &entry);
        pb_str(&tm, 1, "v1");
        pb_str(&tm, 2, "ConfigMap");
        memcpy(env.buf, "k8s\0", 4);
        env.len = 4;
        pb_msg(&env, 1, &tm);
        pb_msg(&env, 2, &cm);

        char *json = protobuf_to_json(env.buf, env.len, err, sizeof err);
        assert_non_null(json);
        cJSON *o = cJSON_Parse(json);
        assert_string_equal(json_str(o, "kind"), "ConfigMap");
        assert_string_equal(json_str(o, "apiVersion"), "v1");
        assert_string_equal(json_str(o, "metadata.name"), "settings");
        assert_string_equal(json_str(o, "metadata.namespace"), "default");
        assert_null(json_path(o, "metadata.generateName"));
        assert_string_equal(json_str(o, "metadata.labels.app"), "web");
        assert_string_equal(json_str(o, "metadata.creationTimestamp"), "2023-11-14T22:13:20Z");
        assert_string_equal(cJSON_GetArrayItem(json_path(o, "metadata.finalizers"), 0)->valuestring,
                            "koc.dev/f");
        assert_string_equal(json_str(o, "data.mode"), "fast");
        cJSON_Delete(o);
        free(json);

        /* Unknown kinds, bad magic and truncated input are refused. */
        pb other = {0}, env2 = {0};
        pb_str(&other, 1, "apps/v1");
        pb_str(&other, 2, "Deployment");
        memcpy(env2.buf, "k8s\0", 4);
        env2.len = 4;
        pb_msg(&env2, 1, &other);
        pb_msg(&env2, 2, &cm);
        assert_null(protobuf_to_json(env2.buf, env2.len, err, sizeof err));
        assert_null(protobuf_to_json("{}", 2, err, sizeof err));
        for (size_t n = 5; n < env.len; n++) {
                char *j = protobuf_to_json(env.buf, n, err, sizeof err);
                free(j); /* must not crash; may or may not decode a prefix */
        }
}

static void test_containers(void **state) {
        strmap m = {0};
        char key[32];
        for (int i = 0; i < 1000; i++) {
                snprintf(key, sizeof key, "k%d", i);
                assert_int_equal(strmap_put(&m, key, (void *)(intptr_t)(i + 1)), 0);
        }
        assert_int_equal(m.n, 1000);
        assert_int_equal((intptr_t)strmap_get(&m, "k500"), 501);
        assert_int_equal((intptr_t)strmap_remove(&m, "k500"), 501);
        assert_null(strmap_get(&m, "k500"));
        size_t b = 0, n = 0;
        for (strmap_entry *e = strmap_next(&m, &b, NULL); e; e = strmap_next(&m, &b, e))
                n++;
        assert_int_equal(n, 999);
        strmap_clear(&m, NULL);

        static const char *const samples[] = {"", "a", "ab", "abc", "abcd", "hello, world"};
        for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
                char *enc = base64_encode(samples[i], strlen(samples[i]));
                size_t len = 0;
                char *dec = base64_decode(enc, &len);
                assert_non_null(dec);
                assert_int_equal(len, strlen(samples[i]));
                assert_string_equal(dec, samples[i]);
                free(enc);
                free(dec);
        }
        assert_null(base64_decode("abc", NULL));

        strbuf sb = {0};
        for (int i = 0; i < 100; i++)
                assert_int_equal(strbuf_printf(&sb, "%d,", i), 0);
        assert_int_equal(strncmp(sb.data, "0,1,2,", 6), 0);
        strbuf_consume(&sb, 2);
        assert_int_equal(strncmp(sb.data, "1,2,", 4), 0);
        strbuf_free(&sb);
}

/* Copies from the root double the document each time: 40 of them in a small
 * body would need terabytes.  The patch is refused once the copies add up to
 * more than the limit, and memory stays bounded. */
static void test_json_patch_copy_bomb(void **state) {
        char ops[4096];
        size_t n = 0;
        n += (size_t)snprintf(ops + n, sizeof ops - n, "[{\"op\":\"add\",\"path\":\"/s\",\"value\":\"%0512d\"}", 0);
        for (int i = 0; i < 40; i++)
                n += (size_t)snprintf(ops + n, sizeof ops - n,
                                      ",{\"op\":\"copy\",\"from\":\"\",\"path\":\"/k%d\"}", i);
        snprintf(ops + n, sizeof ops - n, "]");
        char *out = NULL;
        assert_int_equal(apply_json_patch("{}", ops, &out), -EINVAL);
        free(out);
        /* A handful of copies well under the limit still work. */
        assert_int_equal(apply_json_patch("{\"a\":{\"x\":1}}",
                                          "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/b\"},"
                                          "{\"op\":\"copy\",\"from\":\"\",\"path\":\"/c\"}]",
                                          &out),
                         0);
        assert_string_equal(out, "{\"a\":{\"x\":1},\"b\":{\"x\":1},\"c\":{\"a\":{\"x\":1},\"b\":{\"x\":1}}}");
        free(out);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_json_patch_copy_bomb),
                cmocka_unit_test(test_label_selectors), cmocka_unit_test(test_field_selectors),
                cmocka_unit_test(test_merge_patch),     cmocka_unit_test(test_json_patch),
                cmocka_unit_test(test_api_paths),       cmocka_unit_test(test_protobuf),
                cmocka_unit_test(test_containers),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

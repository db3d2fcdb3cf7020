/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Predicates, finalizer, owner-reference and condition helpers, resource
 * paths and keys (include/koc/controller.h), on plain JSON, without a server.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "framework/controller/controller-internal.h"
#include "framework/cache/informer.h"
#include "koc/controller.h"

static cJSON *parse(const char *s) {
        cJSON *j = cJSON_Parse(s);
        assert_non_null(j);
        return j;
}

static void test_predicates(void **state) {
        cJSON *a = parse("{\"metadata\":{\"generation\":1,\"labels\":{\"x\":\"1\"},"
                         "\"annotations\":{\"n\":\"1\"}},\"data\":{\"v\":\"1\"}}");
        cJSON *same_gen = parse("{\"metadata\":{\"generation\":1,\"labels\":{\"x\":\"1\"},"
                                "\"annotations\":{\"n\":\"1\"}},\"data\":{\"v\":\"2\"}}");
        cJSON *new_gen = parse("{\"metadata\":{\"generation\":2,\"labels\":{\"x\":\"1\"},"
                               "\"annotations\":{\"n\":\"2\"}}}");
        cJSON *new_labels = parse("{\"metadata\":{\"generation\":1,\"labels\":{\"x\":\"2\"},"
                                  "\"annotations\":{\"n\":\"1\"}}}");

        assert_false(koc_predicate_generation_changed(a, same_gen, NULL));
        assert_true(koc_predicate_generation_changed(a, new_gen, NULL));
        assert_false(koc_predicate_labels_changed(a, new_gen, NULL));
        assert_true(koc_predicate_labels_changed(a, new_labels, NULL));
        assert_true(koc_predicate_annotations_changed(a, new_gen, NULL));
        assert_false(koc_predicate_annotations_changed(a, new_labels, NULL));
        /* Adds and deletes always pass. */
        assert_true(koc_predicate_generation_changed(NULL, a, NULL));
        assert_true(koc_predicate_labels_changed(a, NULL, NULL));
        cJSON_Delete(a);
        cJSON_Delete(same_gen);
        cJSON_Delete(new_gen);
        cJSON_Delete(new_labels);
}

static void test_finalizers(void **state) {
        cJSON *o = parse("{\"metadata\":{\"name\":\"a\"}}");
        assert_false(koc_object_has_finalizer(o, "x/y"));
        assert_int_equal(koc_object_add_finalizer(o, "x/y"), 1);
        assert_int_equal(koc_object_add_finalizer(o, "x/y"), 0);
        assert_int_equal(koc_object_add_finalizer(o, "x/z"), 1);
        assert_true(koc_object_has_finalizer(o, "x/y"));
        assert_int_equal(koc_object_remove_finalizer(o, "x/y"), 1);
        assert_int_equal(koc_object_remove_finalizer(o, "x/y"), 0);
        assert_false(koc_object_has_finalizer(o, "x/y"));
        assert_true(koc_object_has_finalizer(o, "x/z"));
        assert_false(koc_object_is_deleting(o));
        cJSON_AddStringToObject(cJSON_GetObjectItem(o, "metadata"), "deletionTimestamp",
                                "2026-01-01T00:00:00Z");
        assert_true(koc_object_is_deleting(o));
        assert_int_equal(koc_object_add_finalizer(NULL, "x"), -EINVAL);
        cJSON_Delete(o);
}

static void test_controller_reference(void **state) {
        cJSON *owner = parse("{\"metadata\":{\"name\":\"p\",\"uid\":\"u1\"}}");
        cJSON *other = parse("{\"metadata\":{\"name\":\"q\",\"uid\":\"u2\"}}");
        cJSON *o = parse("{\"metadata\":{\"name\":\"child\"}}");
        assert_int_equal(koc_object_set_controller_reference(o, owner, "v1", "ConfigMap"), 0);
        /* Setting it again replaces, never duplicates. */
        assert_int_equal(koc_object_set_controller_reference(o, owner, "v1", "ConfigMap"), 0);
        cJSON *refs = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metadata"), "ownerReferences");
        assert_int_equal(cJSON_GetArraySize(refs), 1);
        cJSON *r = cJSON_GetArrayItem(refs, 0);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(r, "uid")), "u1");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "controller")));
        /* A second controller is refused. */
        assert_int_equal(koc_object_set_controller_reference(o, other, "v1", "ConfigMap"),
                         -EADDRINUSE);
        cJSON_Delete(owner);
        cJSON_Delete(other);
        cJSON_Delete(o);
}

static void test_conditions(void **state) {
        cJSON *o = parse("{\"metadata\":{\"name\":\"a\",\"generation\":3}}");
        assert_int_equal(koc_object_set_condition(o, "Ready", "False", "Waiting", "not yet"), 1);
        assert_int_equal(koc_object_set_condition(o, "Ready", "False", "Waiting", "not yet"), 0);
        cJSON *conds = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "status"), "conditions");
        cJSON *c = cJSON_GetArrayItem(conds, 0);
        assert_int_equal(cJSON_GetObjectItem(c, "observedGeneration")->valueint, 3);
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(c, "lastTransitionTime"));
        assert_non_null(t);
        assert_null(strchr(t, '.')); /* whole seconds, metav1.Time */
        /* Same status, new message: the transition time stays. */
        cJSON_ReplaceItemInObject(c, "lastTransitionTime",
                                  cJSON_CreateString("2000-01-01T00:00:00Z"));
        assert_int_equal(koc_object_set_condition(o, "Ready", "False", "Waiting", "still not"), 1);
        c = cJSON_GetArrayItem(conds, 0);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(c, "lastTransitionTime")),
                            "2000-01-01T00:00:00Z");
        /* A new status moves it. */
        assert_int_equal(koc_object_set_condition(o, "Ready", "True", "Done", ""), 1);
        c = cJSON_GetArrayItem(conds, 0);
        assert_string_not_equal(cJSON_GetStringValue(cJSON_GetObjectItem(c, "lastTransitionTime")),
                                "2000-01-01T00:00:00Z");
        assert_int_equal(cJSON_GetArraySize(conds), 1);
        cJSON_Delete(o);
}

static void test_paths_and_keys(void **state) {
        char buf[256];
        koc_resource cm = {
                .version = "v1", .resource = "configmaps", .kind = "ConfigMap", .namespaced = true};
        koc_resource dep = {.group = "apps",
                            .version = "v1",
                            .resource = "deployments",
                            .kind = "Deployment",
                            .namespaced = true};
        assert_int_equal(koc_resource_path(&cm, "ns", "a", NULL, buf, sizeof buf), 0);
        assert_string_equal(buf, "/api/v1/namespaces/ns/configmaps/a");
        assert_int_equal(koc_resource_path(&dep, "ns", "d", "status", buf, sizeof buf), 0);
        assert_string_equal(buf, "/apis/apps/v1/namespaces/ns/deployments/d/status");
        assert_int_equal(koc_resource_path(&dep, NULL, NULL, NULL, buf, sizeof buf), 0);
        assert_string_equal(buf, "/apis/apps/v1/deployments");
        assert_int_equal(koc_resource_path(&cm, "ns", "a", NULL, buf, 8), -ENAMETOOLONG);
        koc_resource bad = {.version = "v1"};
        assert_int_equal(koc_resource_path(&bad, NULL, NULL, NULL, buf, sizeof buf), -EINVAL);
        /* Each part is exactly one segment, or nothing is built. */
        static const char *const bad_names[] = {
                "",       ".",         "..",     "a/b", "kube-system/configmaps/coredns",
                "%2e%2e", "coredns?x=", "a#b",   "a b", "a\r\nX: y",
                "a\x7f",  "\t",
        };
        for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
                strcpy(buf, "untouched");
                assert_int_equal(koc_resource_path(&cm, "ns", bad_names[i], NULL, buf, sizeof buf),
                                 -EINVAL);
                assert_string_equal(buf, "untouched");
                assert_int_equal(koc_resource_path(&dep, "ns", "d", bad_names[i], buf, sizeof buf),
                                 -EINVAL);
        }
        static const char *const bad_namespaces[] = {
                "..", "a/b", "kube-system/configmaps/coredns?x=", "%2e", "Kube-System", "a_b",
                "a.b", "-a", "a\n",
        };
        for (size_t i = 0; i < sizeof bad_namespaces / sizeof *bad_namespaces; i++)
                assert_int_equal(
                        koc_resource_path(&cm, bad_namespaces[i], "a", NULL, buf, sizeof buf),
                        -EINVAL);
        /* Names the path-segment rule allows (RBAC names carry ':'). */
        assert_int_equal(koc_resource_path(&cm, "ns", "system:controller:x", NULL, buf, sizeof buf),
                         0);
        assert_string_equal(buf, "/api/v1/namespaces/ns/configmaps/system:controller:x");
        assert_int_equal(koc_resource_path(&cm, "ns", "...", NULL, buf, sizeof buf), 0);
        /* "" and NULL namespaces leave the namespace out. */
        assert_int_equal(koc_resource_path(&cm, "", "a", NULL, buf, sizeof buf), 0);
        assert_string_equal(buf, "/api/v1/configmaps/a");
        /* The resource's own parts follow the rule too. */
        koc_resource odd = {.group = "evil.io/../x", .version = "v1", .resource = "things"};
        assert_int_equal(koc_resource_path(&odd, NULL, NULL, NULL, buf, sizeof buf), -EINVAL);
        odd = (koc_resource){.group = "ok.io", .version = "v1?x", .resource = "things"};
        assert_int_equal(koc_resource_path(&odd, NULL, NULL, NULL, buf, sizeof buf), -EINVAL);
        odd = (koc_resource){.group = "ok.io", .version = "v1", .resource = "a/b"};
        assert_int_equal(koc_resource_path(&odd, NULL, NULL, NULL, buf, sizeof buf), -EINVAL);
        /* A subresource needs a name. */
        assert_int_equal(koc_resource_path(&dep, "ns", NULL, "status", buf, sizeof buf), -EINVAL);

        /* The internal form says which field and which value, printable. */
        koc_error err = {0};
        assert_int_equal(koc__resource_path(&cm, "ns", "coredns?x=\n", NULL, buf, sizeof buf, &err),
                         -EINVAL);
        assert_int_equal(err.code, -EINVAL);
        assert_string_equal(err.message,
                            "invalid name \"coredns?x=\\x0a\": may not contain '?'");
        assert_int_equal(koc__resource_path(&cm, "a/b", "x", NULL, buf, sizeof buf, &err), -EINVAL);
        assert_non_null(strstr(err.message, "invalid namespace \"a/b\": "));
        assert_int_equal(koc__resource_path(&dep, "ns", "d", "..", buf, sizeof buf, &err), -EINVAL);
        assert_string_equal(err.message, "invalid subresource \"..\": may not be '..'");
        /* Found by fuzz-path: every value in a message is quoted printable. */
        assert_int_equal(koc__resource_path(&dep, "ns", NULL, "\xa9x", buf, sizeof buf, &err),
                         -EINVAL);
        assert_string_equal(err.message, "subresource \"\\xa9x\" without a name");

        assert_int_equal(koc_object_key_format("ns", "a", buf, sizeof buf), 0);
        assert_string_equal(buf, "ns/a");
        assert_int_equal(koc_object_key_format(NULL, "node-1", buf, sizeof buf), 0);
        assert_string_equal(buf, "node-1");
}

static char *print(const cJSON *o) {
        char *s = cJSON_PrintUnformatted(o);
        assert_non_null(s);
        return s;
}

/* Hostile metadata (found by tests/fuzz/fuzz-helpers.c). */
static void test_finalizers_hostile(void **state) {
        /* Every copy goes: remove then has is false. */
        cJSON *o = parse("{\"metadata\":{\"finalizers\":[\"f\",\"x\",1,\"f\",null,\"f\"]}}");
        assert_int_equal(koc_object_remove_finalizer(o, "f"), 1);
        assert_false(koc_object_has_finalizer(o, "f"));
        char *s = print(o);
        assert_string_equal(s, "{\"metadata\":{\"finalizers\":[\"x\",1,null]}}");
        free(s);
        cJSON_Delete(o);

        /* metadata that is not an object is refused and left alone: a
         * finalizer added under a number would never be sent. */
        o = parse("{\"metadata\":7}");
        assert_int_equal(koc_object_add_finalizer(o, "f"), -EINVAL);
        assert_false(koc_object_has_finalizer(o, "f"));
        assert_int_equal(koc_object_remove_finalizer(o, "f"), 0);
        cJSON *owner = parse("{\"metadata\":{\"name\":\"p\",\"uid\":\"u1\"}}");
        assert_int_equal(koc_object_set_controller_reference(o, owner, "v1", "ConfigMap"),
                         -EINVAL);
        s = print(o);
        assert_string_equal(s, "{\"metadata\":7}");
        free(s);
        cJSON_Delete(o);

        /* finalizers that are not an array hold no finalizer; add replaces
         * them with one. */
        o = parse("{\"metadata\":{\"finalizers\":{\"f\":\"f\"}}}");
        assert_false(koc_object_has_finalizer(o, "f"));
        assert_int_equal(koc_object_remove_finalizer(o, "f"), 0);
        assert_int_equal(koc_object_add_finalizer(o, "f"), 1);
        s = print(o);
        assert_string_equal(s, "{\"metadata\":{\"finalizers\":[\"f\"]}}");
        free(s);
        cJSON_Delete(o);

        /* ownerReferences that are not an array name no controller. */
        o = parse("{\"metadata\":{\"ownerReferences\":{\"a\":{\"uid\":\"u2\","
                  "\"controller\":true}}}}");
        assert_int_equal(koc_object_set_controller_reference(o, owner, "v1", "ConfigMap"), 0);
        cJSON_Delete(o);
        cJSON_Delete(owner);
}

struct owners {
        int n;
        char names[4][16];
};

static void on_owner(const char *namespace_, const char *name, void *userdata) {
        struct owners *w = userdata;
        if (w->n < 4)
                snprintf(w->names[w->n], sizeof w->names[0], "%s/%s", namespace_ ? namespace_ : "",
                         name);
        w->n++;
}

/* An owned object names at most one owner: its controller, the first
 * reference with controller: true (metav1.GetControllerOf), as
 * controller-runtime's EnqueueRequestForOwner(OnlyControllerOwner) reads it. */
static void test_owner_refs(void **state) {
        koc_resource res = {.group = "", .version = "v1", .resource = "configmaps",
                            .kind = "ConfigMap", .namespaced = true};
        struct owners w = {0};
        cJSON *o = parse("{\"metadata\":{\"namespace\":\"ns\",\"ownerReferences\":["
                         "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"a\"},"
                         "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"b\","
                         "\"controller\":true},"
                         "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"c\","
                         "\"controller\":true}]}}");
        koc__owner_refs_foreach(o, &res, on_owner, &w);
        assert_int_equal(w.n, 1);
        assert_string_equal(w.names[0], "ns/b");
        cJSON_Delete(o);

        /* The controller is of another kind: nothing, even if a later
         * reference claims to be a controller of ours. */
        w = (struct owners){0};
        o = parse("{\"metadata\":{\"ownerReferences\":["
                  "{\"apiVersion\":\"apps/v1\",\"kind\":\"ConfigMap\",\"name\":\"a\","
                  "\"controller\":true},"
                  "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"b\","
                  "\"controller\":true}]}}");
        koc__owner_refs_foreach(o, &res, on_owner, &w);
        assert_int_equal(w.n, 0);
        cJSON_Delete(o);

        /* Not an array: no owner. */
        o = parse("{\"metadata\":{\"ownerReferences\":{\"x\":{\"apiVersion\":\"v1\","
                  "\"kind\":\"ConfigMap\",\"name\":\"b\",\"controller\":true}}}}");
        koc__owner_refs_foreach(o, &res, on_owner, &w);
        assert_int_equal(w.n, 0);
        cJSON_Delete(o);
}

/* koc/reconcile.h's owner references: controllerutil's SetControllerReference
 * and SetOwnerReference. */
static void test_owner_reference(void **state) {
        cJSON *owner =
                parse("{\"apiVersion\":\"cache.example.com/v1alpha1\",\"kind\":\"Memcached\","
                      "\"metadata\":{\"name\":\"m\",\"namespace\":\"ns\",\"uid\":\"u1\"}}");
        cJSON *o = parse("{\"metadata\":{\"name\":\"d\",\"namespace\":\"ns\"}}");
        koc_error err = {0};
        assert_int_equal(koc_object_set_owner_reference(o, owner, KOC_OWNER_CONTROLLER, &err), 0);
        const cJSON *ref = koc_object_get_controller_reference(o);
        assert_non_null(ref);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(ref, "apiVersion")),
                            "cache.example.com/v1alpha1");
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(ref, "kind")), "Memcached");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(ref, "blockOwnerDeletion")));
        /* Again, and with the owner recreated under the same name (new uid,
         * another version): the same owner, replaced in place. */
        assert_int_equal(koc_object_set_owner_reference(o, owner, KOC_OWNER_CONTROLLER, &err), 0);
        koc_resource mres = {.group = "cache.example.com",
                             .version = "v1beta1",
                             .resource = "memcacheds",
                             .kind = "Memcached",
                             .namespaced = true};
        assert_int_equal(
                koc_object_set_owner_reference_to(o, &mres, "m", "u9", KOC_OWNER_CONTROLLER, &err),
                0);
        cJSON *refs = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metadata"), "ownerReferences");
        assert_int_equal(cJSON_GetArraySize(refs), 1);
        ref = koc_object_get_controller_reference(o);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(ref, "uid")), "u9");
        /* Another controller is not stolen; the message names both. */
        char *before = print(o);
        assert_int_equal(koc_object_set_owner_reference_to(o, &mres, "thief", "u3",
                                                           KOC_OWNER_CONTROLLER, &err),
                         -EADDRINUSE);
        assert_non_null(strstr(err.message, "Memcached m"));
        assert_non_null(strstr(err.message, "Memcached thief"));
        char *after = print(o);
        assert_string_equal(before, after);
        free(before);
        free(after);
        /* A plain owner reference next to the controller, without blocking. */
        assert_int_equal(koc_object_set_owner_reference_to(o, &mres, "other", "u4",
                                                           KOC_OWNER_NO_BLOCK_DELETION, &err),
                         0);
        assert_int_equal(cJSON_GetArraySize(refs), 2);
        cJSON *plain = cJSON_GetArrayItem(refs, 1);
        assert_null(cJSON_GetObjectItem(plain, "controller"));
        assert_true(cJSON_IsFalse(cJSON_GetObjectItem(plain, "blockOwnerDeletion")));
        /* KOC_OWNER_NO_ADOPT: the object it controls already, or one not
         * yet created, is fine; an existing object without this controller
         * (made by someone else, no owner at all) is not adopted. */
        assert_int_equal(koc_object_set_owner_reference_to(
                                 o, &mres, "m", "u9", KOC_OWNER_CONTROLLER | KOC_OWNER_NO_ADOPT,
                                 &err),
                         0);
        cJSON *fresh = parse("{\"metadata\":{\"name\":\"d\",\"namespace\":\"ns\"}}");
        assert_int_equal(koc_object_set_owner_reference(
                                 fresh, owner, KOC_OWNER_CONTROLLER | KOC_OWNER_NO_ADOPT, &err),
                         0);
        assert_non_null(koc_object_get_controller_reference(fresh));
        cJSON_Delete(fresh);
        cJSON *taken = parse("{\"metadata\":{\"name\":\"d\",\"namespace\":\"ns\",\"uid\":\"x1\"}}");
        char *taken_before = print(taken);
        assert_int_equal(koc_object_set_owner_reference(
                                 taken, owner, KOC_OWNER_CONTROLLER | KOC_OWNER_NO_ADOPT, &err),
                         -EADDRINUSE);
        assert_non_null(strstr(err.message, "not adopted"));
        char *taken_after = print(taken);
        assert_string_equal(taken_before, taken_after);
        free(taken_before);
        free(taken_after);
        /* Without the flag it is adopted, as controllerutil does. */
        assert_int_equal(koc_object_set_owner_reference(taken, owner, KOC_OWNER_CONTROLLER, &err),
                         0);
        cJSON_Delete(taken);
        /* An owner without a kind, or in another namespace. */
        cJSON *bad = parse("{\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"x\",\"uid\":\"u\"}}");
        assert_int_equal(koc_object_set_owner_reference(o, bad, 0, &err), -EINVAL);
        assert_non_null(strstr(err.message, "kind"));
        cJSON_Delete(bad);
        bad = parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"x\","
                    "\"namespace\":\"elsewhere\",\"uid\":\"u\"}}");
        assert_int_equal(koc_object_set_owner_reference(o, bad, 0, &err), -EINVAL);
        cJSON_Delete(bad);
        cJSON_Delete(owner);
        cJSON_Delete(o);
}

static void test_conditions_read_back(void **state) {
        cJSON *o = parse("{\"metadata\":{\"name\":\"a\",\"generation\":2}}");
        assert_true(koc_object_condition_is_unknown(o, "Available"));
        assert_false(koc_object_condition_is_true(o, "Available"));
        assert_int_equal(koc_object_set_condition(o, "Available", "Unknown", "Reconciling", ""), 1);
        assert_true(koc_object_condition_is_unknown(o, "Available"));
        assert_int_equal(koc_object_set_condition(o, "Available", "True", "Ready", "3 replicas"),
                         1);
        assert_true(koc_object_condition_is_true(o, "Available"));
        assert_false(koc_object_condition_is_false(o, "Available"));
        const cJSON *c = koc_object_find_condition(o, "Available");
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(c, "message")), "3 replicas");
        assert_null(koc_object_find_condition(o, "Degraded"));
        assert_int_equal(koc_object_set_condition(o, "Degraded", "False", "Fine", NULL), 1);
        assert_true(koc_object_condition_is_false(o, "Degraded"));
        assert_int_equal(koc_object_set_condition(o, "Degraded", "Maybe", "x", NULL), -EINVAL);
        assert_int_equal(koc_object_remove_condition(o, "Degraded"), 1);
        assert_int_equal(koc_object_remove_condition(o, "Degraded"), 0);
        assert_null(koc_object_find_condition(o, "Degraded"));
        /* A new generation: observedGeneration follows, the time stays. */
        cJSON *conds = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "status"), "conditions");
        cJSON_ReplaceItemInObject(cJSON_GetArrayItem(conds, 0), "lastTransitionTime",
                                  cJSON_CreateString("2000-01-01T00:00:00Z"));
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(o, "metadata"), "generation",
                                  cJSON_CreateNumber(5));
        assert_int_equal(koc_object_set_condition(o, "Available", "True", "Ready", "3 replicas"),
                         1);
        c = koc_object_find_condition(o, "Available");
        assert_int_equal(cJSON_GetObjectItem(c, "observedGeneration")->valueint, 5);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(c, "lastTransitionTime")),
                            "2000-01-01T00:00:00Z");
        assert_int_equal(koc_object_set_observed_generation(o), 1);
        assert_int_equal(koc_object_set_observed_generation(o), 0);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "status"), "observedGeneration")
                                 ->valueint,
                         5);
        cJSON_Delete(o);
        /* The list on its own, as typed code keeps it. */
        cJSON *list = cJSON_CreateArray();
        assert_int_equal(koc_conditions_set(list, "Ready", "True", "R", "m", -1), 1);
        assert_int_equal(koc_conditions_set(list, "Ready", "True", "R", "m", -1), 0);
        assert_null(cJSON_GetObjectItem(koc_conditions_find(list, "Ready"), "observedGeneration"));
        assert_int_equal(koc_conditions_set(NULL, "Ready", "True", "R", "m", -1), -EINVAL);
        assert_int_equal(koc_conditions_remove(list, "Ready"), 1);
        assert_int_equal(cJSON_GetArraySize(list), 0);
        cJSON_Delete(list);
}

static void test_mutate_merge(void **state) {
        cJSON *cur = parse("{\"metadata\":{\"name\":\"d\",\"labels\":{\"a\":\"1\",\"b\":\"2\"}},"
                           "\"spec\":{\"replicas\":1,\"paused\":false},\"status\":{\"x\":1}}");
        cJSON *want = parse("{\"metadata\":{\"labels\":{\"b\":null,\"c\":\"3\"}},"
                            "\"spec\":{\"replicas\":3}}");
        assert_int_equal(koc_mutate_merge(cur, want), 0);
        char *s = print(cur);
        assert_string_equal(s,
                            "{\"metadata\":{\"name\":\"d\",\"labels\":{\"a\":\"1\",\"c\":\"3\"}},"
                            "\"spec\":{\"replicas\":3,\"paused\":false},\"status\":{\"x\":1}}");
        free(s);
        assert_int_equal(koc_mutate_merge(cur, NULL), -EINVAL);
        cJSON_Delete(cur);
        cJSON_Delete(want);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_predicates),
                cmocka_unit_test(test_finalizers),
                cmocka_unit_test(test_controller_reference),
                cmocka_unit_test(test_conditions),
                cmocka_unit_test(test_paths_and_keys),
                cmocka_unit_test(test_finalizers_hostile),
                cmocka_unit_test(test_owner_refs),
                cmocka_unit_test(test_owner_reference),
                cmocka_unit_test(test_conditions_read_back),
                cmocka_unit_test(test_mutate_merge),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

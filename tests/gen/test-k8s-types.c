/* libkoc-types: the built-in types generated from the Kubernetes OpenAPI
 * schemas (third_party/k8s-openapi): the Memcached Deployment built in C,
 * a server's Deployment parsed and written back, validation of enums. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <koc/types/k8s.h>

static void assert_json_eq(const cJSON *got, const char *want_text) {
        cJSON *want = cJSON_Parse(want_text);
        assert_non_null(want);
        if (!cJSON_Compare(got, want, 1)) {
                char *g = cJSON_PrintUnformatted(got);
                fail_msg("got  %s\nwant %s", g, want_text);
        }
        cJSON_Delete(want);
}

/* What an operator writes to create the Memcached Deployment. */
static void memcached_deployment(void **state) {
        koc_string_entry labels[] = {{"app.kubernetes.io/name", "memcached"}};
        koc_core_v1_container_port port = {.container_port = 11211, .has_container_port = true, .name = "memcached"};
        koc_core_v1_container c = {.name = "memcached", .image = "memcached:1.6.26-alpine",
                                   .command = (char *[]){"memcached", "--memory-limit=64", "-o", "modern", "-v"},
                                   .command_len = 5, .ports = &port, .ports_len = 1};
        koc_apps_v1_deployment d = {
                .metadata = {.name = "example", .namespace_ = "default", .labels = labels, .labels_len = 1},
                .spec = {.replicas = 3, .has_replicas = true,
                         .selector = {.match_labels = labels, .match_labels_len = 1},
                         .template_ = {.metadata = {.labels = labels, .labels_len = 1},
                                       .spec = {.containers = &c, .containers_len = 1}}}};
        cJSON *json = koc_apps_v1_deployment_to_json(&d);

        assert_json_eq(json, "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\","
                             "\"metadata\":{\"name\":\"example\",\"namespace\":\"default\","
                             "\"labels\":{\"app.kubernetes.io/name\":\"memcached\"}},"
                             "\"spec\":{\"replicas\":3,\"selector\":{\"matchLabels\":{\"app.kubernetes.io/name\":"
                             "\"memcached\"}},\"template\":{\"metadata\":{\"labels\":{\"app.kubernetes.io/name\":"
                             "\"memcached\"}},\"spec\":{\"containers\":[{\"name\":\"memcached\",\"image\":"
                             "\"memcached:1.6.26-alpine\",\"command\":[\"memcached\",\"--memory-limit=64\",\"-o\","
                             "\"modern\",\"-v\"],\"ports\":[{\"containerPort\":11211,\"name\":\"memcached\"}]}]}}}}");
        char err[256];
        assert_int_equal(koc_apps_v1_deployment_validate(&d, err, sizeof err), 0);
        cJSON_Delete(json);
        assert_string_equal(KOC_APPS_V1_DEPLOYMENT_API_VERSION, "apps/v1");
        assert_string_equal(KOC_APPS_V1_DEPLOYMENT_KIND, "Deployment");
}

/* A Deployment as a server returns it: everything survives a parse and a
 * write, opaque parts (managedFields, affinity) included. */
static void server_deployment(void **state) {
        const char *text =
                "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"m\",\"namespace\":\"d\","
                "\"uid\":\"u-1\",\"resourceVersion\":\"42\",\"generation\":2,\"creationTimestamp\":"
                "\"2026-01-02T03:04:05Z\",\"managedFields\":[{\"manager\":\"koc\",\"fieldsV1\":{\"f:spec\":{}}}],"
                "\"ownerReferences\":[{\"apiVersion\":\"cache.example.com/v1alpha1\",\"kind\":\"Memcached\","
                "\"name\":\"m\",\"uid\":\"u-0\",\"controller\":true,\"blockOwnerDeletion\":true}]},"
                "\"spec\":{\"replicas\":1,\"selector\":{\"matchLabels\":{\"a\":\"b\"}},\"strategy\":{\"type\":"
                "\"RollingUpdate\",\"rollingUpdate\":{\"maxSurge\":\"25%\",\"maxUnavailable\":1}},"
                "\"template\":{\"metadata\":{\"labels\":{\"a\":\"b\"}},\"spec\":{\"affinity\":{\"nodeAffinity\":{}},"
                "\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"imagePullPolicy\":\"IfNotPresent\","
                "\"resources\":{\"limits\":{\"cpu\":\"500m\",\"memory\":1024}},\"ports\":[{\"containerPort\":"
                "80,\"protocol\":\"TCP\"}],\"env\":[{\"name\":\"X\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":"
                "\"metadata.name\"}}}]}],\"restartPolicy\":\"Always\",\"terminationGracePeriodSeconds\":30}}},"
                "\"status\":{\"observedGeneration\":2,\"replicas\":1,\"readyReplicas\":1,\"conditions\":[{\"type\":"
                "\"Available\",\"status\":\"True\",\"lastTransitionTime\":\"2026-01-02T03:04:06Z\"}]}}";
        cJSON *j = cJSON_Parse(text);
        assert_non_null(j);
        koc_apps_v1_deployment d;
        char err[256];
        assert_int_equal(koc_apps_v1_deployment_parse(j, &d, err, sizeof err), 0);
        assert_int_equal(d.spec.replicas, 1);
        assert_true(d.spec.strategy.rolling_update.max_surge.is_string);
        assert_int_equal(d.spec.strategy.rolling_update.max_unavailable.int_value, 1);
        assert_true(d.metadata.owner_references[0].controller);
        koc_core_v1_container *c = &d.spec.template_.spec.containers[0];
        assert_string_equal(c->resources.limits[1].value, "1024"); /* a Quantity given as a number */
        assert_string_equal(c->env[0].value_from.field_ref.field_path, "metadata.name");
        assert_true(cJSON_IsObject(d.spec.template_.spec.affinity));
        assert_int_equal(koc_apps_v1_deployment_validate(&d, err, sizeof err), 0);
        cJSON *out = koc_apps_v1_deployment_to_json(&d);
        /* The number Quantity is written as its text, as the server writes it. */
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(
                                  cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "spec"), "template"),
                                                      "spec"), "containers"), 0), "resources"), "limits"),
                                  "memory", cJSON_CreateString("1024"));
        assert_true(cJSON_Compare(out, j, 1));
        cJSON_Delete(out);

        /* String enums stay char * (a newer server's value still parses); validate names the bad one. */
        free(c->image_pull_policy);
        c->image_pull_policy = strdup("Sometimes");
        assert_int_equal(koc_apps_v1_deployment_validate(&d, err, sizeof err), -EINVAL);
        assert_string_equal(err, "spec.template.spec.containers[0].imagePullPolicy: unsupported value \"Sometimes\"");
        koc_apps_v1_deployment_free(&d);
        cJSON_Delete(j);

        j = cJSON_Parse("{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"c\",\"ports\":"
                        "[{\"containerPort\":\"80\"}]}]}}}}");
        assert_int_equal(koc_apps_v1_deployment_parse(j, &d, err, sizeof err), -EINVAL);
        assert_string_equal(err, "spec.template.spec.containers[0].ports[0].containerPort: expected integer, got string");
        cJSON_Delete(j);
        j = cJSON_Parse("{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"c\",\"resources\":"
                        "{\"limits\":{\"cpu\":true}}}]}}}}");
        assert_int_equal(koc_apps_v1_deployment_parse(j, &d, err, sizeof err), -EINVAL);
        assert_string_equal(err, "spec.template.spec.containers[0].resources.limits[cpu]: expected string or number, "
                                 "got boolean");
        cJSON_Delete(j);
}

/* The other roots: Service, ConfigMap, Secret, StatefulSet, Job. */
static void other_roots(void **state) {
        koc_string_entry sel[] = {{"app", "m"}};
        koc_core_v1_service_port p = {.port = 11211, .has_port = true,
                                      .target_port = {.is_string = true, .string_value = "memcached"},
                                      .has_target_port = true};
        koc_core_v1_service s = {.metadata = {.name = "m"},
                                 .spec = {.selector = sel, .selector_len = 1, .ports = &p, .ports_len = 1}};
        cJSON *j = koc_core_v1_service_to_json(&s);
        assert_json_eq(j, "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"m\"},\"spec\":"
                          "{\"selector\":{\"app\":\"m\"},\"ports\":[{\"port\":11211,\"targetPort\":\"memcached\"}]}}");
        cJSON_Delete(j);
        koc_string_entry data[] = {{"k", "v"}};
        koc_core_v1_config_map cm = {.metadata = {.name = "c"}, .data = data, .data_len = 1};
        j = koc_core_v1_config_map_to_json(&cm);
        assert_json_eq(j, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"},"
                          "\"data\":{\"k\":\"v\"}}");
        cJSON_Delete(j);
        koc_core_v1_secret sec = {.metadata = {.name = "s"}, .string_data = data, .string_data_len = 1,
                                  .type = "Opaque"};
        j = koc_core_v1_secret_to_json(&sec);
        assert_json_eq(j, "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"s\"},"
                          "\"stringData\":{\"k\":\"v\"},\"type\":\"Opaque\"}");
        cJSON_Delete(j);
        koc_apps_v1_stateful_set ss = {.metadata = {.name = "ss"}, .spec = {.service_name = "svc"}};
        j = koc_apps_v1_stateful_set_to_json(&ss);
        assert_json_eq(j, "{\"apiVersion\":\"apps/v1\",\"kind\":\"StatefulSet\",\"metadata\":{\"name\":\"ss\"},"
                          "\"spec\":{\"serviceName\":\"svc\"}}");
        cJSON_Delete(j);
        koc_batch_v1_job job = {.metadata = {.name = "j"}, .spec = {.backoff_limit = 2, .has_backoff_limit = true}};
        j = koc_batch_v1_job_to_json(&job);
        assert_json_eq(j, "{\"apiVersion\":\"batch/v1\",\"kind\":\"Job\",\"metadata\":{\"name\":\"j\"},"
                          "\"spec\":{\"backoffLimit\":2}}");
        cJSON_Delete(j);
        char err[256];
        /* The selector and the template are required in a StatefulSet's spec. */
        assert_int_equal(koc_apps_v1_stateful_set_validate(&ss, err, sizeof err), -EINVAL);
        assert_string_equal(err, "spec.selector: required field is missing");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(memcached_deployment),
                cmocka_unit_test(server_deployment),
                cmocka_unit_test(other_roots),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

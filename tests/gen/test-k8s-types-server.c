/* libkoc-types against a server (koc-apiserver; kube-apiserver as
 * k8s-test-k8s-types-server): objects built with the generated builders are
 * accepted, and what the server answers (with its defaults, managedFields,
 * status) parses, validates, and is written back without losing a field. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <koc/types/k8s.h>

#include "harness/apiserver.h"

/* JSON null means "not set" to the generated types; the server writes some
 * (template metadata's creationTimestamp), so they are dropped before the
 * comparison. */
static void drop_nulls(cJSON *j) {
        cJSON *it = j ? j->child : NULL;
        while (it) {
                cJSON *next = it->next;
                if (cJSON_IsNull(it) && cJSON_IsObject(j))
                        cJSON_Delete(cJSON_DetachItemViaPointer(j, it));
                else
                        drop_nulls(it);
                it = next;
        }
}

#define CHECK_TYPE(T, body)                                                                                        \
        do {                                                                                                       \
                cJSON *resp = cJSON_Parse(body);                                                                   \
                assert_non_null(resp);                                                                             \
                drop_nulls(resp);                                                                                  \
                T obj;                                                                                             \
                char err[256];                                                                                     \
                if (T##_parse(resp, &obj, err, sizeof err) < 0)                                                    \
                        fail_msg("%s", err);                                                                       \
                if (T##_validate(&obj, err, sizeof err) < 0)                                                       \
                        fail_msg("%s", err);                                                                       \
                cJSON *back = T##_to_json(&obj);                                                                   \
                if (!cJSON_Compare(back, resp, 1)) {                                                               \
                        char *a = cJSON_PrintUnformatted(back);                                                    \
                        fail_msg("server: %s\nback:   %s", body, a);                                               \
                }                                                                                                  \
                cJSON_Delete(back);                                                                                \
                T##_free(&obj);                                                                                    \
                cJSON_Delete(resp);                                                                                \
        } while (0)

static char *create(koc_test_apiserver *s, const char *path, cJSON *obj) {
        assert_non_null(obj);
        char *text = cJSON_PrintUnformatted(obj);
        cJSON_Delete(obj);
        char *body = NULL;
        long code = koc_test_apiserver_http(s, "POST", path, text, "application/json", &body);
        if (code != 201)
                fail_msg("POST %s: %ld %s", path, code, body ? body : "");
        free(text);
        return body;
}

static void delete(koc_test_apiserver *s, const char *path) {
        char *body = NULL;
        long code = koc_test_apiserver_http(s, "DELETE", path, NULL, NULL, &body);
        if (code != 200 && code != 202)
                fail_msg("DELETE %s: %ld %s", path, code, body ? body : "");
        free(body);
}

static void builders_on_server(void **state) {
        koc_test_apiserver s;
        assert_int_equal(koc_test_apiserver_start(&s, NULL), 0);

        koc_string_entry labels[] = {{"app.kubernetes.io/name", "koc-types-test"}};
        koc_core_v1_container_port port = {.container_port = 11211, .has_container_port = true, .name = "memcached"};
        koc_core_v1_container c = {.name = "memcached", .image = "memcached:1.6.26-alpine",
                                   .command = (char *[]){"memcached", "-m=64"}, .command_len = 2,
                                   .ports = &port, .ports_len = 1};
        koc_apps_v1_deployment d = {
                .metadata = {.name = "koc-types-test", .namespace_ = "default", .labels = labels, .labels_len = 1},
                .spec = {.replicas = 2, .has_replicas = true,
                         .selector = {.match_labels = labels, .match_labels_len = 1},
                         .template_ = {.metadata = {.labels = labels, .labels_len = 1},
                                       .spec = {.containers = &c, .containers_len = 1}}}};
        char *body = create(&s, "/apis/apps/v1/namespaces/default/deployments", koc_apps_v1_deployment_to_json(&d));
        CHECK_TYPE(koc_apps_v1_deployment, body);
        /* kube-apiserver's defaults came back, and went through the types above. */
        if (s.real)
                assert_non_null(strstr(body, "\"progressDeadlineSeconds\":600"));
        free(body);
        delete(&s, "/apis/apps/v1/namespaces/default/deployments/koc-types-test");

        koc_apps_v1_stateful_set ss = {
                .metadata = {.name = "koc-types-test", .namespace_ = "default"},
                .spec = {.service_name = "koc-types-test", .selector = {.match_labels = labels, .match_labels_len = 1},
                         .template_ = {.metadata = {.labels = labels, .labels_len = 1},
                                       .spec = {.containers = &c, .containers_len = 1}}}};
        body = create(&s, "/apis/apps/v1/namespaces/default/statefulsets", koc_apps_v1_stateful_set_to_json(&ss));
        CHECK_TYPE(koc_apps_v1_stateful_set, body);
        free(body);
        delete(&s, "/apis/apps/v1/namespaces/default/statefulsets/koc-types-test");

        koc_core_v1_service_port sp = {.port = 11211, .has_port = true,
                                       .target_port = {.is_string = true, .string_value = "memcached"},
                                       .has_target_port = true};
        koc_core_v1_service svc = {.metadata = {.name = "koc-types-test", .namespace_ = "default"},
                                   .spec = {.selector = labels, .selector_len = 1, .ports = &sp, .ports_len = 1}};
        body = create(&s, "/api/v1/namespaces/default/services", koc_core_v1_service_to_json(&svc));
        CHECK_TYPE(koc_core_v1_service, body);
        free(body);
        delete(&s, "/api/v1/namespaces/default/services/koc-types-test");

        koc_string_entry data[] = {{"key", "value"}};
        koc_core_v1_config_map cm = {.metadata = {.name = "koc-types-test", .namespace_ = "default"},
                                     .data = data, .data_len = 1};
        body = create(&s, "/api/v1/namespaces/default/configmaps", koc_core_v1_config_map_to_json(&cm));
        CHECK_TYPE(koc_core_v1_config_map, body);
        free(body);
        delete(&s, "/api/v1/namespaces/default/configmaps/koc-types-test");

        koc_string_entry bytes[] = {{"key", "dmFsdWU="}};
        koc_core_v1_secret sec = {.metadata = {.name = "koc-types-test", .namespace_ = "default"},
                                  .data = bytes, .data_len = 1, .type = "Opaque"};
        body = create(&s, "/api/v1/namespaces/default/secrets", koc_core_v1_secret_to_json(&sec));
        CHECK_TYPE(koc_core_v1_secret, body);
        free(body);
        delete(&s, "/api/v1/namespaces/default/secrets/koc-types-test");

        koc_core_v1_container jc = {.name = "job", .image = "busybox", .command = (char *[]){"true"}, .command_len = 1};
        koc_batch_v1_job job = {.metadata = {.name = "koc-types-test", .namespace_ = "default"},
                                .spec = {.template_ = {.spec = {.containers = &jc, .containers_len = 1,
                                                                .restart_policy = "Never"}}}};
        body = create(&s, "/apis/batch/v1/namespaces/default/jobs", koc_batch_v1_job_to_json(&job));
        CHECK_TYPE(koc_batch_v1_job, body);
        free(body);
        delete(&s, "/apis/batch/v1/namespaces/default/jobs/koc-types-test?propagationPolicy=Background");

        koc_test_apiserver_stop(&s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(builders_on_server),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

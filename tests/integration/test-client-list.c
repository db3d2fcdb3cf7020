/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Paginated lists against koc-apiserver: the query builder's selectors,
 * limit and continue tokens, and the per-request cap on a response body.
 * Every wait runs the loop until a condition holds, bounded by a generous
 * safety deadline.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "koc/client.h"
#include "koc/config.h"
#include "koc/time.h"
#include "tests/harness/apiserver.h"

#define CONFIGMAPS "/api/v1/namespaces/default/configmaps"
#define SAFETY_USEC (60 * KOC_USEC_PER_SEC)

static koc_test_apiserver srv;
static sd_event *event;
static koc_cluster_config *cfg;
static koc_client *client;

typedef struct result {
        bool done;
        int error;
        long status;
        cJSON *body;
        char message[256];
} result;

static void on_result(koc_client *c, const koc_response *r, void *userdata) {
        result *res = userdata;
        res->done = true;
        res->error = r->error;
        res->status = r->status;
        snprintf(res->message, sizeof res->message, "%s", r->message);
        res->body = koc_response_steal_body(r);
}

static void request(const koc_request_spec *spec, result *res) {
        cJSON_Delete(res->body);
        *res = (result){0};
        assert_int_equal(koc_client_request(client, spec, on_result, res, NULL), 0);
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (!res->done) {
                assert_true(koc_now_boottime_usec() < end);
                assert_true(sd_event_run(event, 100 * KOC_USEC_PER_MSEC) >= 0);
        }
}

static void create_configmap(const char *name, const char *label, size_t data_size) {
        char *big = malloc(data_size + 1);
        assert_non_null(big);
        memset(big, 'd', data_size);
        big[data_size] = 0;
        cJSON *o = cJSON_CreateObject();
        cJSON *md = cJSON_AddObjectToObject(o, "metadata");
        cJSON_AddStringToObject(md, "name", name);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "labels"), "koc-page", label);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "data"), "d", big);
        free(big);
        result res = {0};
        request(&(koc_request_spec){.method = "POST", .path = CONFIGMAPS, .body = o}, &res);
        cJSON_Delete(o);
        assert_int_equal(res.status, 201);
        cJSON_Delete(res.body);
}

static int group_setup(void **state) {
        koc_error err = {0};
        if (koc_test_apiserver_start(&srv, NULL) < 0 || sd_event_new(&event) < 0 ||
            koc_cluster_config_from_kubeconfig(srv.kubeconfig, NULL, &cfg, &err) < 0 ||
            koc_client_new(event, cfg, &client) < 0)
                return -1;
        /* Seven to page through (selector "in (yes, also)" with a space and
         * parentheses, which must be encoded), and one the selector skips. */
        static const char *names[] = {"p1", "p2", "p3", "p4", "p5", "p6", "p7"};
        for (size_t i = 0; i < 7; i++)
                create_configmap(names[i], i % 2 ? "also" : "yes", 16);
        create_configmap("other", "no", 16);
        return 0;
}

static int group_teardown(void **state) {
        client = koc_client_unref(client);
        cfg = koc_cluster_config_unref(cfg);
        event = sd_event_unref(event);
        koc_test_apiserver_stop(&srv);
        return 0;
}

static void test_paginated_list(void **state) {
        _koc_cleanup_(koc_query_freep) koc_query *q = NULL;
        assert_int_equal(koc_query_new(&q), 0);
        assert_int_equal(koc_query_set_label_selector(q, "koc-page in (yes, also)"), 0);
        assert_int_equal(koc_query_set_limit(q, 3), 0);

        char seen[256] = "";
        int pages = 0;
        result res = {0};
        for (;;) {
                assert_true(++pages <= 10);
                request(&(koc_request_spec){.method = "GET",
                                            .path = CONFIGMAPS,
                                            .query = koc_query_string(q)},
                        &res);
                assert_int_equal(res.error, 0);
                assert_int_equal(res.status, 200);
                const cJSON *items = cJSON_GetObjectItemCaseSensitive(res.body, "items");
                assert_true(cJSON_GetArraySize(items) <= 3);
                const cJSON *it;
                cJSON_ArrayForEach(it, items) {
                        const cJSON *md = cJSON_GetObjectItemCaseSensitive(it, "metadata");
                        const cJSON *n = cJSON_GetObjectItemCaseSensitive(md, "name");
                        assert_true(cJSON_IsString(n));
                        strcat(seen, n->valuestring);
                        strcat(seen, " ");
                }
                const cJSON *md = cJSON_GetObjectItemCaseSensitive(res.body, "metadata");
                const cJSON *cont = cJSON_GetObjectItemCaseSensitive(md, "continue");
                if (!cJSON_IsString(cont) || !cont->valuestring[0])
                        break;
                assert_int_equal(koc_query_set_continue(q, cont->valuestring), 0);
        }
        cJSON_Delete(res.body);
        assert_int_equal(pages, 3);
        assert_string_equal(seen, "p1 p2 p3 p4 p5 p6 p7 ");
}

static void test_request_response_cap(void **state) {
        create_configmap("big", "big", 200000);
        result res = {0};
        /* The client's cap is small; one request asks for more. */
        koc_client_set_max_response_size(client, 64 * 1024);
        request(&(koc_request_spec){.method = "GET", .path = CONFIGMAPS "/big"}, &res);
        assert_int_equal(res.error, -EMSGSIZE);
        assert_null(res.body);
        assert_non_null(strstr(res.message, "65536"));
        request(&(koc_request_spec){.method = "GET",
                                    .path = CONFIGMAPS "/big",
                                    .max_response_size = 1024 * 1024},
                &res);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 200);
        /* And one asks for less than the default. */
        koc_client_set_max_response_size(client, 0);
        request(&(koc_request_spec){.method = "GET",
                                    .path = CONFIGMAPS "/big",
                                    .max_response_size = 1000},
                &res);
        assert_int_equal(res.error, -EMSGSIZE);
        request(&(koc_request_spec){.method = "GET", .path = CONFIGMAPS "/big"}, &res);
        assert_int_equal(res.error, 0);
        cJSON_Delete(res.body);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_paginated_list),
                cmocka_unit_test(test_request_response_cap),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

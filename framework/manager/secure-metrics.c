/* SPDX-License-Identifier: Apache-2.0 */
/*
 * --metrics-secure: the registry on /metrics over HTTPS (serving/), behind
 * the TokenReview and SubjectAccessReview filter (serving/authz.h), as
 * controller-runtime's metrics server with
 * filters.WithAuthenticationAndAuthorization.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "framework/manager/manager-internal.h"
#include "koc/log.h"
#include "koc/manager.h"
#include "serving/authz.h"
#include "serving/serving.h"

#define LOG "manager"

struct koc__secure_metrics {
        koc_metrics *metrics;
        koc_serving *server;
        koc__serving_authz *authz;
};

static void serve_metrics(koc_serving_request *req, void *userdata) {
        koc__secure_metrics *sm = userdata;
        char *text = NULL;
        size_t len = 0;
        int r = koc_metrics_render(sm->metrics, &text, &len);
        if (r < 0) {
                koc__serving_respond_text(req, 500, "cannot render the metrics\n");
                return;
        }
        koc__serving_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len,
                             NULL);
}

koc__secure_metrics *koc__secure_metrics_free(koc__secure_metrics *sm) {
        if (!sm)
                return NULL;
        /* The server first: stopping it cancels the reviews under way. */
        koc__serving_free(sm->server);
        koc__serving_authz_free(sm->authz);
        koc_metrics_unref(sm->metrics);
        free(sm);
        return NULL;
}

void koc__secure_metrics_stop(koc__secure_metrics *sm) {
        if (sm)
                koc__serving_stop(sm->server);
}

uint16_t koc__secure_metrics_port(const koc__secure_metrics *sm) {
        return koc__serving_port(sm->server);
}

int koc__secure_metrics_new(sd_event *event, koc_client *client, koc_metrics *metrics,
                            const koc_manager_config *cfg, koc__secure_metrics **ret,
                            koc_error *err) {
        koc__secure_metrics *sm = calloc(1, sizeof(*sm));
        koc_error e = {0};
        int r;

        if (!sm)
                return koc_error_set(err, -ENOMEM, "out of memory");
        sm->metrics = koc_metrics_ref(metrics);
        koc_serving_config sc = {
                .name = "metrics",
                .address = cfg->metrics_bind_address,
                .cert_dir = cfg->metrics_cert_dir && cfg->metrics_cert_dir[0]
                                    ? cfg->metrics_cert_dir
                                    : NULL,
                .cert_file = cfg->metrics_cert_file && cfg->metrics_cert_file[0]
                                     ? cfg->metrics_cert_file
                                     : NULL,
                .key_file = cfg->metrics_key_file && cfg->metrics_key_file[0]
                                    ? cfg->metrics_key_file
                                    : NULL,
                .metrics = metrics,
        };
        r = koc__serving_new(event, &sc, &sm->server, &e);
        if (r < 0) {
                koc__secure_metrics_free(sm);
                return koc_error_set(err, r, "--metrics-secure: %s", e.message);
        }
        r = koc__serving_authz_new(&(koc__serving_authz_config){.client = client,
                                                                .metrics = metrics,
                                                                .server_name = "metrics"},
                                   &sm->authz);
        if (r >= 0)
                r = koc__serving_add_handler(sm->server, "/metrics", "GET", 0, serve_metrics, sm);
        if (r < 0) {
                koc__secure_metrics_free(sm);
                return koc_error_set(err, r, "--metrics-secure: %s", strerror(-r));
        }
        koc__serving_set_filter(sm->server, koc__serving_authz_filter, sm->authz);
        koc_log_info(LOG,
                     "metrics served over HTTPS on port %u to those the cluster allows (get "
                     "/metrics)",
                     koc__serving_port(sm->server));
        *ret = sm;
        return 0;
}

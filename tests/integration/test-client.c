/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API client against koc-apiserver over HTTPS with a bearer token:
 * CRUD and Status reasons, watches (order, resume, expiry, caps, stop and
 * restart from handlers), response caps, timeouts, faults, token rotation,
 * the synchronous facade and shutdown with requests in flight.
 *
 * Every wait runs the loop until a condition holds, bounded by a generous
 * safety deadline; nothing asserts how long anything took.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/client-internal.h"
#include "core/config-internal.h"
#include "core/sync.h"
#include "koc/client.h"
#include "koc/config.h"
#include "koc/time.h"
#include "tests/harness/apiserver.h"

#define LEASES "/apis/coordination.k8s.io/v1/namespaces/default/leases"
#define SAFETY_USEC (60 * KOC_USEC_PER_SEC)

static koc_test_apiserver srv;

typedef struct ctx {
        sd_event *event;
        koc_cluster_config *cfg;
        koc_client *client;
} ctx;

static int group_setup(void **state) {
        /* A short watch history, so that an old resourceVersion expires. */
        int r = koc_test_apiserver_start(&srv, "--history 20");
        if (r < 0) {
                fprintf(stderr, "koc-apiserver did not start: %s\n", strerror(-r));
                return -1;
        }
        return 0;
}

static int group_teardown(void **state) {
        koc_test_apiserver_stop(&srv);
        return 0;
}

static void ctx_open(ctx *x, const char *kubeconfig) {
        koc_error err = {0};
        assert_int_equal(sd_event_new(&x->event), 0);
        int r = koc_cluster_config_from_kubeconfig(kubeconfig, NULL, &x->cfg, &err);
        if (r < 0)
                fail_msg("kubeconfig: %s", err.message);
        assert_int_equal(koc_client_new(x->event, x->cfg, &x->client), 0);
}

static void ctx_close(ctx *x) {
        x->client = koc_client_unref(x->client);
        x->cfg = koc_cluster_config_unref(x->cfg);
        /* Let anything the client left behind run once (there must be nothing). */
        if (x->event)
                (void)sd_event_run(x->event, 0);
        x->event = sd_event_unref(x->event);
}

static int setup(void **state) {
        ctx *x = calloc(1, sizeof *x);
        if (!x)
                return -1;
        ctx_open(x, srv.kubeconfig);
        *state = x;
        return 0;
}

static int teardown(void **state) {
        ctx *x = *state;
        ctx_close(x);
        free(x);
        koc_test_apiserver_clear_faults(&srv);
        return 0;
}

/* Runs the loop until *flag is set (bounded). */
static void run_until(ctx *x, const volatile bool *flag) {
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (!*flag) {
                if (koc_now_boottime_usec() > end)
                        fail_msg("condition not reached within the safety deadline");
                assert_true(sd_event_run(x->event, 100 * KOC_USEC_PER_MSEC) >= 0);
        }
}

/* --- requests ------------------------------------------------------------ */

typedef struct result {
        bool done;
        int calls;
        int error;
        long status;
        koc_reason reason;
        char message[512];
        cJSON *body;
        uint64_t retry_after;
} result;

static void on_watch_noop(koc_watch *w, koc_watch_event *e, void *userdata) {
}

static void on_result(koc_client *c, koc_response *r, void *userdata) {
        result *res = userdata;
        res->calls++;
        res->done = true;
        res->error = r->error;
        res->status = r->status;
        res->reason = r->reason;
        assert_non_null(r->message);
        snprintf(res->message, sizeof res->message, "%s", r->message);
        res->retry_after = r->retry_after_usec;
        cJSON_Delete(res->body);
        res->body = koc_response_steal_body(r);
}

static void result_clear(result *r) {
        cJSON_Delete(r->body);
        memset(r, 0, sizeof *r);
}

static void start(ctx *x, const char *method, const char *path, const char *body, result *res,
                  uint64_t timeout_usec) {
        cJSON *b = NULL;
        result_clear(res);
        if (body) {
                b = cJSON_Parse(body);
                assert_non_null(b);
        }
        assert_int_equal(koc_client_request(x->client,
                                            &(koc_request_spec){.method = method,
                                                                .path = path,
                                                                .body = b,
                                                                .timeout_usec = timeout_usec},
                                            on_result, res, NULL),
                         0);
        cJSON_Delete(b); /* serialised at submit */
}

static void request(ctx *x, const char *method, const char *path, const char *body, result *res) {
        start(x, method, path, body, res, 0);
        run_until(x, &res->done);
        assert_int_equal(res->calls, 1);
}

static char *lease_json(const char *name, const char *holder, const char *rv) {
        char *s = NULL;
        assert_true(asprintf(&s,
                             "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
                             "\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\"%s%s%s},"
                             "\"spec\":{\"holderIdentity\":\"%s\",\"leaseDurationSeconds\":15}}",
                             name, rv ? ",\"resourceVersion\":\"" : "", rv ? rv : "",
                             rv ? "\"" : "", holder) > 0);
        return s;
}

static const char *json_get(const cJSON *o, const char *a, const char *b) {
        const cJSON *i = cJSON_GetObjectItemCaseSensitive(o, a);
        if (b)
                i = cJSON_GetObjectItemCaseSensitive(i, b);
        return cJSON_IsString(i) ? i->valuestring : NULL;
}

static void create_lease(ctx *x, const char *name, const char *holder, char *ret_rv, size_t size) {
        result res = {0};
        char *body = lease_json(name, holder, NULL);
        request(x, "POST", LEASES, body, &res);
        free(body);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 201);
        assert_int_equal(res.reason, KOC_REASON_NONE);
        const char *rv = json_get(res.body, "metadata", "resourceVersion");
        assert_non_null(rv);
        if (ret_rv)
                snprintf(ret_rv, size, "%s", rv);
        result_clear(&res);
}

static void list_rv(ctx *x, char *ret, size_t size) {
        result res = {0};
        request(x, "GET", LEASES, NULL, &res);
        assert_int_equal(res.status, 200);
        const char *rv = json_get(res.body, "metadata", "resourceVersion");
        assert_non_null(rv);
        snprintf(ret, size, "%s", rv);
        result_clear(&res);
}

static void test_crud(void **state) {
        ctx *x = *state;
        result res = {0};
        char rv[64], path[256];

        snprintf(path, sizeof path, "%s/crud", LEASES);
        create_lease(x, "crud", "a", rv, sizeof rv);

        /* Create again: 409 AlreadyExists, told apart from Conflict. */
        char *body = lease_json("crud", "a", NULL);
        request(x, "POST", LEASES, body, &res);
        free(body);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 409);
        assert_int_equal(res.reason, KOC_REASON_ALREADY_EXISTS);
        assert_true(strlen(res.message) > 0);

        request(x, "GET", path, NULL, &res);
        assert_int_equal(res.status, 200);
        assert_string_equal(json_get(res.body, "metadata", "name"), "crud");
        assert_string_equal(json_get(res.body, "spec", "holderIdentity"), "a");

        /* Update with the current resourceVersion. */
        body = lease_json("crud", "b", rv);
        request(x, "PUT", path, body, &res);
        free(body);
        assert_int_equal(res.status, 200);
        assert_int_equal(res.reason, KOC_REASON_NONE);
        assert_string_equal(json_get(res.body, "spec", "holderIdentity"), "b");
        assert_string_not_equal(json_get(res.body, "metadata", "resourceVersion"), rv);

        /* Update with the stale one: 409 Conflict. */
        body = lease_json("crud", "c", rv);
        request(x, "PUT", path, body, &res);
        free(body);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 409);
        assert_int_equal(res.reason, KOC_REASON_CONFLICT);

        /* A merge patch with its own content type. */
        cJSON *patch = cJSON_Parse("{\"spec\":{\"holderIdentity\":\"p\"}}");
        result_clear(&res);
        assert_int_equal(koc_client_request(x->client,
                                            &(koc_request_spec){
                                                    .method = "PATCH",
                                                    .path = path,
                                                    .body = patch,
                                                    .content_type = "application/merge-patch+json"},
                                            on_result, &res, NULL),
                         0);
        cJSON_Delete(patch);
        run_until(x, &res.done);
        assert_int_equal(res.status, 200);
        assert_string_equal(json_get(res.body, "spec", "holderIdentity"), "p");

        request(x, "DELETE", path, NULL, &res);
        assert_int_equal(res.error, 0);
        assert_true(res.status == 200 || res.status == 202);

        request(x, "GET", path, NULL, &res);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 404);
        assert_int_equal(res.reason, KOC_REASON_NOT_FOUND);
        assert_true(strlen(res.message) > 0);
        assert_non_null(res.body); /* the Status */

        /* Bad arguments are refused before anything is sent. */
        assert_int_equal(
                koc_client_request(x->client,
                                   &(koc_request_spec){.method = "GET", .path = "no-slash"},
                                   on_result, &res, NULL),
                -EINVAL);
        assert_int_equal(koc_client_request(x->client,
                                            &(koc_request_spec){.method = "G T", .path = "/"},
                                            on_result, &res, NULL),
                         -EINVAL);
        assert_int_equal(koc_client_request(x->client,
                                            &(koc_request_spec){.method = "GET", .path = "/a b"},
                                            on_result, &res, NULL),
                         -EINVAL);
        result_clear(&res);
        /* A path is exactly the segments it names: no query or fragment in
         * it, no dot segments, no empty segment but a trailing one, "%" only
         * as an escape; a query has no fragment and no control characters. */
        static const char *const bad_paths[] = {
                "/api/v1/namespaces/kube-system/configmaps/coredns?x=",
                "/api/v1/namespaces/x/configmaps/a#b",
                "/api/v1/namespaces/x/configmaps/..",
                "/api/v1/namespaces/x/configmaps/../../kube-system/configmaps/coredns",
                "/api/./v1",
                "/..",
                "/.",
                "/api//v1",
                "//api",
                "/api/v1/a%2",
                "/api/v1/a%zz",
                "/api/v1/a%",
                "/api/v1/a\x01",
                "/api/v1/a\x7f",
                "/api/v1/a\tb",
                "/api/v1/a\r\nX-Evil: 1",
                /* What the server decodes counts: an escaped separator or
                 * dot segment, or an escaped control character. */
                "/api/v1/namespaces/x/configmaps/a%2Fb",
                "/api/v1/namespaces/x/configmaps/a%2fb",
                "/api/v1/namespaces/x/configmaps/a%5Cb",
                "/api/v1/namespaces/x/configmaps/%2e%2e/%2E%2E/kube-system",
                "/api/v1/namespaces/x/configmaps/.%2e",
                "/api/v1/namespaces/x/configmaps/%2e",
                "/api/v1/namespaces/x/configmaps/a%00",
                "/api/v1/namespaces/x/configmaps/a%0d%0aX",
                "",
                NULL,
        };
        for (size_t i = 0; i < sizeof bad_paths / sizeof *bad_paths; i++) {
                assert_int_equal(koc_client_request(x->client,
                                                    &(koc_request_spec){.method = "DELETE",
                                                                        .path = bad_paths[i]},
                                                    on_result, &res, NULL),
                                 -EINVAL);
                assert_int_equal(koc_client_watch(x->client,
                                                  &(koc_watch_spec){.path = bad_paths[i]},
                                                  on_watch_noop, NULL, NULL, NULL),
                                 -EINVAL);
        }
        static const char *const bad_queries[] = {"a=b#c", "a=b c", "a=b\r\nX: y", "a=\x7f"};
        for (size_t i = 0; i < sizeof bad_queries / sizeof *bad_queries; i++)
                assert_int_equal(koc_client_request(x->client,
                                                    &(koc_request_spec){.method = "GET",
                                                                        .path = LEASES,
                                                                        .query = bad_queries[i]},
                                                    on_result, &res, NULL),
                                 -EINVAL);
        assert_false(res.done);
        assert_int_equal(
                koc_client_request(x->client,
                                   &(koc_request_spec){.method = "POST",
                                                       .path = LEASES,
                                                       .content_type = "text/plain\r\nX-Evil: 1"},
                                   on_result, &res, NULL),
                -EINVAL);
        result_clear(&res);
}

/* --- watches ------------------------------------------------------------- */

#define MAX_EVENTS 64

typedef struct recorder {
        int n;
        koc_watch_event_type type[MAX_EVENTS];
        char name[MAX_EVENTS][64];
        char rv[MAX_EVENTS][32];
        long status[MAX_EVENTS];
        koc_reason reason[MAX_EVENTS];
        int error[MAX_EVENTS];
        int bookmarks;
        bool closed;
        int after_closed; /* events after CLOSED: must stay 0 */
        /* behaviour */
        int stop_after; /* koc_watch_stop() inside the handler after this many events */
        bool stopped;
        int (*on_closed)(struct recorder *r);
        koc_client *client;
        void *extra;
} recorder;

static void on_watch(koc_watch *w, koc_watch_event *e, void *userdata) {
        recorder *r = userdata;

        assert_non_null(e->message);
        if (r->closed)
                r->after_closed++;
        if (e->type == KOC_WATCH_BOOKMARK) {
                r->bookmarks++;
                return;
        }
        assert_true(r->n < MAX_EVENTS);
        int i = r->n++;
        r->type[i] = e->type;
        r->status[i] = e->status;
        r->reason[i] = e->reason;
        r->error[i] = e->error;
        const char *name = e->object ? json_get(e->object, "metadata", "name") : NULL;
        const char *rv = e->object ? json_get(e->object, "metadata", "resourceVersion") : NULL;
        snprintf(r->name[i], sizeof r->name[i], "%s", name ? name : "");
        snprintf(r->rv[i], sizeof r->rv[i], "%s", rv ? rv : "");
        if (e->type == KOC_WATCH_CLOSED) {
                assert_null(e->object);
                r->closed = true;
                if (r->on_closed)
                        r->on_closed(r);
                return;
        }
        assert_non_null(e->object);
        if (r->stop_after > 0 && r->n == r->stop_after) {
                koc_watch_stop(w);
                koc_watch_stop(w); /* twice: still harmless inside the handler */
                r->stopped = true;
        }
}

static void run_until_events(ctx *x, recorder *r, int n) {
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (r->n < n && !r->closed) {
                if (koc_now_boottime_usec() > end)
                        fail_msg("watch events not received within the safety deadline");
                assert_true(sd_event_run(x->event, 100 * KOC_USEC_PER_MSEC) >= 0);
        }
}

static void lease_update(ctx *x, const char *name, const char *holder) {
        char path[256];
        result res = {0};
        snprintf(path, sizeof path, "%s/%s", LEASES, name);
        request(x, "GET", path, NULL, &res);
        assert_int_equal(res.status, 200);
        char *body = lease_json(name, holder, json_get(res.body, "metadata", "resourceVersion"));
        request(x, "PUT", path, body, &res);
        free(body);
        assert_int_equal(res.status, 200);
        result_clear(&res);
}

static void lease_delete(ctx *x, const char *name) {
        char path[256];
        result res = {0};
        snprintf(path, sizeof path, "%s/%s", LEASES, name);
        request(x, "DELETE", path, NULL, &res);
        assert_true(res.status == 200 || res.status == 202);
        result_clear(&res);
}

static void test_watch_order_and_resume(void **state) {
        ctx *x = *state;
        recorder r = {0}, r2 = {0};
        char rv[64];
        koc_watch *w = NULL;

        list_rv(x, rv, sizeof rv);
        assert_int_equal(koc_client_watch(x->client,
                                          &(koc_watch_spec){
                                                  .path = LEASES,
                                                  .field_selector = "metadata.name=watched",
                                                  .resource_version = rv,
                                                  .allow_bookmarks = true,
                                          },
                                          on_watch, &r, NULL, &w),
                         0);
        assert_non_null(w);
        create_lease(x, "watched", "a", NULL, 0);
        create_lease(x, "unwatched", "a", NULL, 0); /* filtered out by the selector */
        lease_update(x, "watched", "b");
        lease_delete(x, "watched");
        lease_delete(x, "unwatched");
        run_until_events(x, &r, 3);
        assert_false(r.closed);
        assert_int_equal(r.n, 3);
        assert_int_equal(r.type[0], KOC_WATCH_ADDED);
        assert_int_equal(r.type[1], KOC_WATCH_MODIFIED);
        assert_int_equal(r.type[2], KOC_WATCH_DELETED);
        for (int i = 0; i < 3; i++) {
                assert_string_equal(r.name[i], "watched");
                assert_int_equal(r.status[i], 0);
                assert_int_equal(r.error[i], 0);
        }
        assert_true(strtoull(r.rv[0], NULL, 10) < strtoull(r.rv[1], NULL, 10));
        assert_true(strtoull(r.rv[1], NULL, 10) < strtoull(r.rv[2], NULL, 10));
        koc_watch_stop(w);

        /* Resume from the ADDED event: the rest comes again, in order; the
         * handler stops the watch from inside after the second event. */
        r2.stop_after = 2;
        assert_int_equal(koc_client_watch(x->client,
                                          &(koc_watch_spec){
                                                  .path = LEASES,
                                                  .field_selector = "metadata.name=watched",
                                                  .resource_version = r.rv[0],
                                          },
                                          on_watch, &r2, NULL, NULL),
                         0);
        run_until(x, &r2.stopped);
        assert_int_equal(r2.n, 2);
        assert_int_equal(r2.type[0], KOC_WATCH_MODIFIED);
        assert_int_equal(r2.type[1], KOC_WATCH_DELETED);
        assert_string_equal(r2.rv[0], r.rv[1]);
        assert_string_equal(r2.rv[1], r.rv[2]);
        /* Nothing after the stop, not even CLOSED: make the server busy. */
        create_lease(x, "watched", "again", NULL, 0);
        lease_delete(x, "watched");
        assert_int_equal(r2.n, 2);
        assert_false(r2.closed);
}

static void test_watch_expired(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&srv);
        ctx *x = *state;
        recorder r = {0};
        char rv[64];

        /* Push the resourceVersion we start from out of the history. */
        list_rv(x, rv, sizeof rv);
        create_lease(x, "churn", "0", NULL, 0);
        for (int i = 0; i < 30; i++) {
                char h[16];
                snprintf(h, sizeof h, "%d", i);
                lease_update(x, "churn", h);
        }
        lease_delete(x, "churn");
        assert_int_equal(koc_client_watch(x->client,
                                          &(koc_watch_spec){.path = LEASES, .resource_version = rv},
                                          on_watch, &r, NULL, NULL),
                         0);
        run_until(x, &r.closed);
        /* Either an ERROR event with a 410 Status and then the end of the
         * stream (what kube-apiserver does), or a 410 answer. */
        int i = 0;
        if (r.type[0] == KOC_WATCH_ERROR) {
                assert_int_equal(r.status[0], 410);
                i = 1;
        } else {
                assert_int_equal(r.type[0], KOC_WATCH_CLOSED);
                assert_int_equal(r.status[0], 410);
        }
        assert_true(r.reason[0] == KOC_REASON_EXPIRED || r.reason[0] == KOC_REASON_GONE);
        assert_int_equal(r.type[i], KOC_WATCH_CLOSED);
        assert_int_equal(r.n, i + 1);
        assert_int_equal(r.after_closed, 0);
}

static void test_watch_forbidden(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&srv);
        ctx *x = *state;
        recorder r = {0};

        assert_int_equal(koc_test_apiserver_fault(&srv,
                                                  "{\"resource\":\"leases\",\"verb\":\"watch\","
                                                  "\"error_rate\":1.0,\"error_code\":403,"
                                                  "\"count\":1}"),
                         200);
        assert_int_equal(koc_client_watch(x->client, &(koc_watch_spec){.path = LEASES}, on_watch,
                                          &r, NULL, NULL),
                         0);
        run_until(x, &r.closed);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.type[0], KOC_WATCH_CLOSED);
        assert_int_equal(r.status[0], 403);
        assert_int_equal(r.reason[0], KOC_REASON_FORBIDDEN);
        assert_int_equal(r.error[0], 0);
}

/* The server ends the stream (timeoutSeconds); the CLOSED handler starts a
 * new watch, which a later handler stops from inside. */
static int restart_on_closed(recorder *r) {
        recorder *next = r->extra;
        if (!next)
                return 0;
        assert_int_equal(
                koc_client_watch(r->client,
                                 &(koc_watch_spec){.path = LEASES,
                                                   .field_selector = "metadata.name=restart"},
                                 on_watch, next, NULL, NULL),
                0);
        return 0;
}

static void test_watch_closed_restart(void **state) {
        ctx *x = *state;
        recorder first = {0}, second = {.stop_after = 1};
        char rv[64];

        first.client = x->client;
        first.extra = &second;
        first.on_closed = restart_on_closed;
        list_rv(x, rv, sizeof rv);
        assert_int_equal(
                koc_client_watch(x->client,
                                 &(koc_watch_spec){.path = LEASES,
                                                   .resource_version = rv,
                                                   .field_selector = "metadata.name=nothing",
                                                   .timeout_seconds = 1},
                                 on_watch, &first, NULL, NULL),
                0);
        run_until(x, &first.closed);
        assert_int_equal(first.n, 1);
        assert_int_equal(first.status[0], 200);
        assert_int_equal(first.error[0], 0);
        assert_int_equal(first.reason[0], KOC_REASON_NONE);

        /* The second watch began without a resourceVersion: it gets the
         * current state, then changes.  Create the object until seen. */
        create_lease(x, "restart", "a", NULL, 0);
        run_until(x, &second.stopped);
        assert_int_equal(second.n, 1);
        assert_int_equal(second.type[0], KOC_WATCH_ADDED);
        assert_string_equal(second.name[0], "restart");
        lease_delete(x, "restart");
        assert_int_equal(second.n, 1);
        assert_int_equal(first.after_closed, 0);
}

/* An event line over the watch's cap closes the watch with -EMSGSIZE. */
static void test_watch_line_cap(void **state) {
        ctx *x = *state;
        recorder r = {0};
        char rv[64];

        list_rv(x, rv, sizeof rv);
        assert_int_equal(
                koc_client_watch(x->client,
                                 &(koc_watch_spec){.path = LEASES,
                                                   .resource_version = rv,
                                                   .field_selector = "metadata.name=long-line",
                                                   .max_line = 2048},
                                 on_watch, &r, NULL, NULL),
                0);
        char big[8192];
        memset(big, 'h', sizeof big - 1);
        big[sizeof big - 1] = 0;
        create_lease(x, "long-line", big, NULL, 0);
        run_until(x, &r.closed);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.type[0], KOC_WATCH_CLOSED);
        assert_int_equal(r.error[0], -EMSGSIZE);
        lease_delete(x, "long-line");
}

/* --- caps, timeouts, faults ---------------------------------------------- */

static void test_response_cap(void **state) {
        ctx *x = *state;
        result res = {0};
        char big[16384];

        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = 0;
        create_lease(x, "big", big, NULL, 0);

        koc_client_set_max_response_size(x->client, 4096);
        request(x, "GET", LEASES "/big", NULL, &res);
        assert_int_equal(res.error, -EMSGSIZE);
        assert_null(res.body);
        request(x, "GET", LEASES, NULL, &res);
        assert_int_equal(res.error, -EMSGSIZE);

        koc_client_set_max_response_size(x->client, 0);
        request(x, "GET", LEASES "/big", NULL, &res);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 200);
        assert_string_equal(json_get(res.body, "spec", "holderIdentity"), big);
        result_clear(&res);
        lease_delete(x, "big");
}

static void test_timeout(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&srv);
        ctx *x = *state;
        result res = {0};

        assert_int_equal(koc_test_apiserver_fault(&srv, "{\"resource\":\"leases\",\"verb\":\"get\","
                                                        "\"latency_ms\":3000,\"count\":1}"),
                         200);
        start(x, "GET", LEASES "/slow", NULL, &res, 200 * KOC_USEC_PER_MSEC);
        run_until(x, &res.done);
        assert_int_equal(res.error, -ETIMEDOUT);
        assert_int_equal(res.calls, 1);
        assert_null(res.body);
        assert_true(strlen(res.message) > 0);
        result_clear(&res);
}

static void test_service_unavailable(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&srv);
        ctx *x = *state;
        result res = {0};

        assert_int_equal(koc_test_apiserver_fault(&srv, "{\"resource\":\"leases\",\"verb\":\"get\","
                                                        "\"error_rate\":1.0,\"error_code\":503,"
                                                        "\"retry_after\":7,\"count\":1}"),
                         200);
        request(x, "GET", LEASES "/whatever", NULL, &res);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 503);
        assert_int_equal(res.reason, KOC_REASON_SERVICE_UNAVAILABLE);
        assert_int_equal(res.retry_after, 7 * KOC_USEC_PER_SEC);
        /* The rule applied once. */
        request(x, "GET", LEASES "/whatever", NULL, &res);
        assert_int_equal(res.status, 404);
        assert_int_equal(res.retry_after, 0);
        result_clear(&res);
}

/* A request cancelled from another request's handler never calls back; a
 * request cancelling itself inside its own handler is harmless. */
typedef struct cancel_ctx {
        koc_request *victim;
        koc_request *self;
        bool done;
} cancel_ctx;

static void on_result_cancel(koc_client *c, koc_response *r, void *userdata) {
        cancel_ctx *cc = userdata;
        koc_request_cancel(cc->victim);
        cc->victim = NULL;
        koc_request_cancel(cc->self);
        cc->done = true;
}

static void test_cancel_from_handler(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&srv);
        ctx *x = *state;
        result victim_res = {0}, after = {0};
        cancel_ctx cc = {0};

        /* The victim (a "get") is held by the server for a while. */
        assert_int_equal(koc_test_apiserver_fault(&srv, "{\"resource\":\"leases\",\"verb\":\"get\","
                                                        "\"latency_ms\":500,\"count\":1}"),
                         200);
        assert_int_equal(
                koc_client_request(x->client,
                                   &(koc_request_spec){.method = "GET", .path = LEASES "/victim"},
                                   on_result, &victim_res, &cc.victim),
                0);
        assert_non_null(cc.victim);
        assert_int_equal(koc_client_request(x->client,
                                            &(koc_request_spec){.method = "GET", .path = LEASES},
                                            on_result_cancel, &cc, &cc.self),
                         0);
        run_until(x, &cc.done);
        assert_null(cc.victim);
        /* Something that ends after the victim's answer would have come. */
        assert_int_equal(koc_test_apiserver_fault(&srv, "{\"resource\":\"leases\",\"verb\":\"get\","
                                                        "\"latency_ms\":1000,\"count\":1}"),
                         200);
        request(x, "GET", LEASES "/after", NULL, &after);
        assert_int_equal(after.status, 404);
        assert_int_equal(victim_res.calls, 0);
        result_clear(&after);

        /* Cancelling a request before the loop ever ran it. */
        koc_request *r = NULL;
        assert_int_equal(koc_client_request(x->client,
                                            &(koc_request_spec){.method = "GET", .path = LEASES},
                                            on_result, &victim_res, &r),
                         0);
        koc_request_cancel(r);
        request(x, "GET", LEASES "/after", NULL, &after);
        assert_int_equal(victim_res.calls, 0);
        result_clear(&after);
}

/* --- authentication ------------------------------------------------------ */

static uint64_t frozen_clock(void *userdata) {
        return *(uint64_t *)userdata;
}

static void write_file(const char *path, const char *content) {
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        assert_true(fputs(content, f) >= 0);
        assert_int_equal(fclose(f), 0);
}

static void write_kubeconfig(const char *path, const char *server, const char *user_fields) {
        char *s = NULL;
        assert_true(asprintf(&s,
                             "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
                             "clusters:\n- name: t\n  cluster:\n    server: %s\n"
                             "    certificate-authority: %s\n"
                             "contexts:\n- name: t\n  context: {cluster: t, user: t}\n"
                             "users:\n- name: t\n  user:\n%s",
                             server, srv.ca_file, user_fields) > 0);
        write_file(path, s);
        free(s);
}

static void test_token_rotation(void **state) {
        char token_path[512], kc_path[512], fields[700];
        ctx x = {0};
        result res = {0};
        uint64_t now = 1000;

        snprintf(token_path, sizeof token_path, "%s/rotating-token", srv.dir);
        snprintf(kc_path, sizeof kc_path, "%s/rotating.kubeconfig", srv.dir);
        snprintf(fields, sizeof fields, "    tokenFile: %s\n", token_path);
        write_file(token_path, "wrong-token\n");
        write_kubeconfig(kc_path, srv.url, fields);
        ctx_open(&x, kc_path);
        /* The config's clock stands still: the 60 s refresh never comes, so
         * only the re-read after a 401 can pick up the new token. */
        koc__cluster_config_set_clock(x.cfg, frozen_clock, &now);

        request(&x, "GET", LEASES, NULL, &res);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 401);
        assert_int_equal(res.reason, KOC_REASON_UNAUTHORIZED);

        /* The kubelet rotates the token. */
        char good[256];
        snprintf(good, sizeof good, "%s\n", srv.token);
        write_file(token_path, good);
        request(&x, "GET", LEASES, NULL, &res);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 200);
        assert_int_equal(res.calls, 1);

        /* And the next request uses the new token straight away. */
        request(&x, "GET", LEASES, NULL, &res);
        assert_int_equal(res.status, 200);
        result_clear(&res);

        /* A watch with the wrong token: the initial 401 closes it. */
        write_file(token_path, "wrong-again\n");
        koc__cluster_config_token_invalidate(x.cfg);
        recorder r = {0};
        assert_int_equal(koc_client_watch(x.client, &(koc_watch_spec){.path = LEASES}, on_watch, &r,
                                          NULL, NULL),
                         0);
        run_until(&x, &r.closed);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.status[0], 401);
        assert_int_equal(r.reason[0], KOC_REASON_UNAUTHORIZED);
        ctx_close(&x);
}

static void test_transport_errors(void **state) {
        char kc_path[512];
        ctx x = {0};
        result res = {0};
        char fields[256];

        snprintf(fields, sizeof fields, "    token: %s\n", srv.token);
        /* Nothing listens on port 1 of the loopback. */
        snprintf(kc_path, sizeof kc_path, "%s/refused.kubeconfig", srv.dir);
        write_kubeconfig(kc_path, "https://127.0.0.1:1", fields);
        ctx_open(&x, kc_path);
        request(&x, "GET", LEASES, NULL, &res);
        assert_int_equal(res.error, -ECONNREFUSED);
        assert_int_equal(res.status, 0);
        assert_int_equal(res.reason, KOC_REASON_NONE);
        assert_true(strlen(res.message) > 0);
        recorder r = {0};
        assert_int_equal(koc_client_watch(x.client, &(koc_watch_spec){.path = LEASES}, on_watch, &r,
                                          NULL, NULL),
                         0);
        run_until(&x, &r.closed);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.error[0], -ECONNREFUSED);
        ctx_close(&x);

        /* The server's certificate does not match the CA: a TLS failure. */
        char *s = NULL;
        snprintf(kc_path, sizeof kc_path, "%s/badca.kubeconfig", srv.dir);
        assert_true(asprintf(&s,
                             "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
                             "clusters:\n- name: t\n  cluster:\n    server: %s\n"
                             "contexts:\n- name: t\n  context: {cluster: t, user: t}\n"
                             "users:\n- name: t\n  user:\n%s",
                             srv.url, fields) > 0);
        write_file(kc_path, s);
        free(s);
        ctx_open(&x, kc_path);
        request(&x, "GET", LEASES, NULL, &res);
        assert_int_equal(res.error, -EPROTO);
        ctx_close(&x);
        result_clear(&res);
}

/* --- the synchronous facade ---------------------------------------------- */

#define N_WORKERS 4
#define N_CALLS 8

typedef struct worker {
        koc_client *client;
        int id;
        int ok;
        atomic_int *finished;
} worker;

static void *worker_main(void *p) {
        worker *w = p;
        for (int i = 0; i < N_CALLS; i++) {
                char name[64], path[256];
                snprintf(name, sizeof name, "sync-%d-%d", w->id, i);
                snprintf(path, sizeof path, "%s/%s", LEASES, name);
                char *body = lease_json(name, "worker", NULL);
                cJSON *b = cJSON_Parse(body);
                free(body);
                koc_response *r = NULL;
                int k = koc_client_call(
                        w->client, &(koc_request_spec){.method = "POST", .path = LEASES, .body = b},
                        &r);
                cJSON_Delete(b);
                if (k == 0 && r->error == 0 && r->status == 201)
                        w->ok++;
                r = koc_response_free(r);
                k = koc_client_call(w->client, &(koc_request_spec){.method = "GET", .path = path},
                                    &r);
                if (k == 0 && r->status == 200 && r->body &&
                    strcmp(json_get(r->body, "metadata", "name"), name) == 0)
                        w->ok++;
                r = koc_response_free(r);
                k = koc_client_call(w->client,
                                    &(koc_request_spec){.method = "DELETE", .path = path}, &r);
                if (k == 0 && r->status == 200)
                        w->ok++;
                koc_response_free(r);
        }
        atomic_fetch_add(w->finished, 1);
        return NULL;
}

static void test_sync_workers(void **state) {
        ctx *x = *state;
        pthread_t threads[N_WORKERS];
        worker workers[N_WORKERS];
        atomic_int finished = 0;

        for (int i = 0; i < N_WORKERS; i++) {
                workers[i] = (worker){.client = x->client, .id = i, .finished = &finished};
                assert_int_equal(pthread_create(&threads[i], NULL, worker_main, &workers[i]), 0);
        }
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (atomic_load(&finished) < N_WORKERS) {
                if (koc_now_boottime_usec() > end)
                        fail_msg("workers did not finish within the safety deadline");
                assert_true(sd_event_run(x->event, 100 * KOC_USEC_PER_MSEC) >= 0);
        }
        for (int i = 0; i < N_WORKERS; i++) {
                assert_int_equal(pthread_join(threads[i], NULL), 0);
                assert_int_equal(workers[i].ok, 3 * N_CALLS);
        }
}

static void test_sync_deadlock(void **state) {
        ctx *x = *state;
        koc_response *r = (koc_response *)0x1;
        assert_int_equal(koc_client_call(x->client,
                                         &(koc_request_spec){.method = "GET", .path = LEASES}, &r),
                         -EDEADLK);
        assert_ptr_equal(r, (koc_response *)0x1);
}

/* The client made on another thread for this thread's default loop: the
 * loop's owner is still refused. */
static void *make_client(void *p) {
        ctx *x = p;
        assert_int_equal(koc_client_new(x->event, x->cfg, &x->client), 0);
        return NULL;
}

static void test_sync_deadlock_default_loop(void **state) {
        ctx x = {0};
        koc_error err = {0};
        pthread_t t;
        koc_response *r = NULL;

        assert_true(sd_event_default(&x.event) >= 0);
        assert_int_equal(koc_cluster_config_from_kubeconfig(srv.kubeconfig, NULL, &x.cfg, &err), 0);
        assert_int_equal(pthread_create(&t, NULL, make_client, &x), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_non_null(x.client);
        assert_int_equal(
                koc_client_call(x.client, &(koc_request_spec){.method = "GET", .path = LEASES}, &r),
                -EDEADLK);
        assert_null(r);
        ctx_close(&x);
}

/* --- the post-and-wait mechanism's hooks (core/sync.h) --------------------- */

static size_t count_transfers(koc_client *c);

typedef struct hooked {
        koc_client *client;
        pthread_t loop;
        int refuse;           /* before_submit's answer */
        koc__call call;
        int result;
        koc_response *resp;
        atomic_int order;     /* hooks seen, in order: 1 before, 2 submitted, 3 answered */
        atomic_bool submitted, answered, dropped, wrong_thread, returned;
        atomic_bool answered_before_wake;
} hooked;

static void hook_thread(hooked *h) {
        if (!pthread_equal(pthread_self(), h->loop))
                atomic_store(&h->wrong_thread, true);
}

static int hook_before(void *userdata) {
        hooked *h = userdata;
        hook_thread(h);
        atomic_store(&h->order, 1);
        return h->refuse;
}

static void hook_submitted(void *userdata) {
        hooked *h = userdata;
        hook_thread(h);
        if (atomic_load(&h->order) == 1)
                atomic_store(&h->order, 2);
        atomic_store(&h->submitted, true);
}

static void hook_answered(const koc_response *resp, void *userdata) {
        hooked *h = userdata;
        hook_thread(h);
        if (atomic_load(&h->order) == 2 && resp->status == 200)
                atomic_store(&h->order, 3);
        atomic_store(&h->answered_before_wake, !atomic_load(&h->returned));
        atomic_store(&h->answered, true);
}

static void hook_dropped(void *userdata) {
        hooked *h = userdata;
        atomic_store(&h->dropped, true);
}

static const koc__call_hooks test_hooks = {.before_submit = hook_before,
                                           .submitted = hook_submitted,
                                           .answered = hook_answered,
                                           .dropped = hook_dropped};

static void *hooked_main(void *p) {
        hooked *h = p;
        h->call = (koc__call){.client = h->client,
                              .spec = {.method = "GET", .path = LEASES},
                              .hooks = &test_hooks,
                              .userdata = h};
        h->result = koc__call_run(h->client->sync_mailbox, &h->call, &h->resp);
        atomic_store(&h->returned, true);
        return NULL;
}

static void run_until_set(ctx *x, atomic_bool *flag) {
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (!atomic_load(flag)) {
                if (koc_now_boottime_usec() > end)
                        fail_msg("not done within the safety deadline");
                assert_true(sd_event_run(x->event, 10 * KOC_USEC_PER_MSEC) >= 0);
        }
}

static void test_call_hooks(void **state) {
        ctx *x = *state;
        pthread_t t;

        /* Every hook runs on the loop thread, in order, and the answer is
         * seen before the caller wakes up. */
        hooked h = {.client = x->client, .loop = pthread_self()};
        assert_int_equal(pthread_create(&t, NULL, hooked_main, &h), 0);
        run_until_set(x, &h.returned);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(h.result, 0);
        assert_non_null(h.resp);
        assert_int_equal(h.resp->status, 200);
        assert_int_equal(atomic_load(&h.order), 3);
        assert_true(atomic_load(&h.answered_before_wake));
        assert_false(atomic_load(&h.wrong_thread));
        assert_false(atomic_load(&h.dropped));
        koc_response_free(h.resp);

        /* A refusal right before submission: nothing is sent, the caller
         * gets the hook's errno. */
        hooked r = {.client = x->client, .loop = pthread_self(), .refuse = -ENOLCK};
        assert_int_equal(pthread_create(&t, NULL, hooked_main, &r), 0);
        run_until_set(x, &r.returned);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(r.result, -ENOLCK);
        assert_null(r.resp);
        assert_int_equal(atomic_load(&r.order), 1);
        assert_false(atomic_load(&r.submitted));
        assert_false(atomic_load(&r.answered));
        assert_int_equal(count_transfers(x->client), 0);

        /* On the calling thread of the mailbox's loop: refused at once. */
        koc__call self = {.client = x->client, .spec = {.method = "GET", .path = LEASES}};
        koc_response *resp = NULL;
        assert_int_equal(koc__call_run(x->client->sync_mailbox, &self, &resp), -EDEADLK);
        assert_null(resp);
}

/* A call in flight ended by its owner: the caller wakes with -ECANCELED, no
 * answer hook runs. */
static void test_call_cancel(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&srv);
        ctx *x = *state;
        pthread_t t;

        assert_int_equal(koc_test_apiserver_fault(&srv, "{\"resource\":\"leases\",\"verb\":\"list\","
                                                        "\"latency_ms\":5000}"),
                         200);
        hooked h = {.client = x->client, .loop = pthread_self()};
        assert_int_equal(pthread_create(&t, NULL, hooked_main, &h), 0);
        run_until_set(x, &h.submitted);
        assert_false(atomic_load(&h.returned));
        uint64_t start = koc_now_boottime_usec();
        koc__call_cancel(&h.call);
        assert_int_equal(pthread_join(t, NULL), 0);
        koc_test_apiserver_clear_faults(&srv);
        assert_true(koc_now_boottime_usec() - start < 2 * KOC_USEC_PER_SEC);
        assert_int_equal(h.result, -ECANCELED);
        assert_null(h.resp);
        assert_false(atomic_load(&h.answered));
        assert_false(atomic_load(&h.dropped));
        assert_int_equal(count_transfers(x->client), 0);
}

/* --- shutdown with work in flight ---------------------------------------- */

typedef struct blocked_call {
        koc_client *client;
        int result;
        atomic_bool returned;
} blocked_call;

static void *blocked_main(void *p) {
        blocked_call *b = p;
        koc_response *r = NULL;
        b->result = koc_client_call(
                b->client, &(koc_request_spec){.method = "GET", .path = LEASES "/held"}, &r);
        koc_response_free(r);
        atomic_store(&b->returned, true);
        return NULL;
}

static void on_result_never(koc_client *c, koc_response *r, void *userdata) {
        (*(int *)userdata)++;
}

static void on_watch_never(koc_watch *w, koc_watch_event *e, void *userdata) {
        (*(int *)userdata)++;
}

static size_t count_transfers(koc_client *c) {
        size_t n = 0;
        for (struct koc_list *l = c->transfers.next; l != &c->transfers; l = l->next)
                n++;
        return n;
}

static void test_unref_in_flight(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&srv);
        ctx x = {0};
        int calls = 0;
        char rv[64];

        ctx_open(&x, srv.kubeconfig);
        list_rv(&x, rv, sizeof rv);
        assert_int_equal(koc_test_apiserver_fault(&srv, "{\"resource\":\"leases\",\"verb\":\"get\","
                                                        "\"latency_ms\":5000}"),
                         200);
        for (int i = 0; i < 3; i++)
                assert_int_equal(koc_client_request(x.client,
                                                    &(koc_request_spec){.method = "GET",
                                                                        .path = LEASES "/held"},
                                                    on_result_never, &calls, NULL),
                                 0);
        assert_int_equal(koc_client_watch(x.client,
                                          &(koc_watch_spec){.path = LEASES, .resource_version = rv},
                                          on_watch_never, &calls, NULL, NULL),
                         0);
        blocked_call b = {.client = x.client};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, blocked_main, &b), 0);
        /* Run until the worker's call is on the wire too. */
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (count_transfers(x.client) < 5) {
                assert_true(koc_now_boottime_usec() < end);
                assert_true(sd_event_run(x.event, 10 * KOC_USEC_PER_MSEC) >= 0);
        }
        assert_false(atomic_load(&b.returned));
        ctx_close(&x); /* drops the client with everything in flight */
        assert_int_equal(pthread_join(t, NULL), 0);
        koc_test_apiserver_clear_faults(&srv);
        assert_int_equal(b.result, -ECANCELED);
        assert_int_equal(calls, 0);
}

/* The last reference dropped from inside a handler: no handler after it. */
typedef struct drop_ctx {
        ctx *x;
        int calls;
} drop_ctx;

static void on_result_drop(koc_client *c, koc_response *r, void *userdata) {
        drop_ctx *d = userdata;
        d->calls++;
        d->x->client = koc_client_unref(d->x->client);
}

static void test_unref_in_handler(void **state) {
        ctx x = {0};
        drop_ctx d = {.x = &x};

        ctx_open(&x, srv.kubeconfig);
        for (int i = 0; i < 4; i++)
                assert_int_equal(
                        koc_client_request(x.client,
                                           &(koc_request_spec){.method = "GET", .path = LEASES},
                                           on_result_drop, &d, NULL),
                        0);
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (d.calls == 0) {
                assert_true(koc_now_boottime_usec() < end);
                assert_true(sd_event_run(x.event, 100 * KOC_USEC_PER_MSEC) >= 0);
        }
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(x.event, 0) >= 0);
        assert_int_equal(d.calls, 1);
        assert_null(x.client);
        ctx_close(&x);
}

/* --- a canned HTTP server for what koc-apiserver never sends -------------- */

/* Serves fixed byte sequences over plain HTTP on the loopback, one connection
 * at a time, each part written with its own send() so that events arrive
 * split and joined in odd places. */
typedef struct canned_route {
        const char *path; /* prefix of the request path */
        const char *parts[8];
} canned_route;

static const canned_route canned_routes[] = {
        {"/notjson",
         {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n"
          "Connection: close\r\n\r\nhello"}},
        {"/retry-date", {NULL}}, /* built at run time: needs the current date */
        {"/w/split",
         {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
          "Connection: close\r\n\r\n",
          "1c\r\n{\"type\":\"ADDED\",\"object\":{\"m\r\n",
          "2b\r\netadata\":{\"name\":\"a\"}}}\n{\"type\":\"BOOKMARK\",\r\n",
          "67\r\n\"object\":{\"metadata\":{\"resourceVersion\":\"9\"}}}\r\n{\"type\":\"ERROR\","
          "\"object\":"
          "{\"code\":410,\"reason\":\"Gone\"}}\n\r\n",
          "2c\r\n{\"type\":\"DELETED\",\"object\":{\"metadata\":{}}}\n\r\n", "0\r\n\r\n"}},
        {"/w/garbage",
         {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
          "Connection: close\r\n\r\n",
          "3d\r\n{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}\nnot json\n\r\n",
          "0\r\n\r\n"}},
        {"/w/badtype",
         {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
          "Connection: close\r\n\r\n",
          "1d\r\n{\"type\":\"WEIRD\",\"object\":{}}\n\r\n",
          "22\r\n{\"type\":\"ADDED\",\"object\":{\"a\":1}}\n\r\n", "0\r\n\r\n"}},
        {"/w/truncated",
         {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
          "Connection: close\r\n\r\n",
          "22\r\n{\"type\":\"ADDED\",\"object\":{\"a\":1}}\n\r\n", "40\r\n{\"type\":\"MOD"}},
        {"/w/tail",
         /* The last event lacks its newline: still an event. */
         {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 33\r\n"
          "Connection: close\r\n\r\n",
          "{\"type\":\"ADDED\",\"object\":{\"a\":1}}"}},
        {"/w/oops",
         {"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\n",
          "oops"}},
};

typedef struct canned_server {
        int fd;
        int port;
        pthread_t thread;
        atomic_bool stop;
} canned_server;

static const canned_route *canned_find(const char *req) {
        const char *sp = strchr(req, ' ');
        if (!sp)
                return NULL;
        for (size_t i = 0; i < sizeof canned_routes / sizeof canned_routes[0]; i++)
                if (strncmp(sp + 1, canned_routes[i].path, strlen(canned_routes[i].path)) == 0)
                        return &canned_routes[i];
        return NULL;
}

static void canned_serve(int c) {
        char req[8192];
        size_t n = 0;
        while (n < sizeof req - 1) {
                ssize_t k = recv(c, req + n, sizeof req - 1 - n, 0);
                if (k <= 0)
                        return;
                n += (size_t)k;
                req[n] = 0;
                if (strstr(req, "\r\n\r\n"))
                        break;
        }
        const canned_route *r = canned_find(req);
        if (r && strcmp(r->path, "/retry-date") == 0) {
                char date[64], resp[512];
                time_t t = time(NULL) + 30;
                struct tm tm;
                gmtime_r(&t, &tm);
                strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
                snprintf(resp, sizeof resp,
                         "HTTP/1.1 429 Too Many Requests\r\nRetry-After: %s\r\n"
                         "Content-Length: 0\r\nConnection: close\r\n\r\n",
                         date);
                (void)!send(c, resp, strlen(resp), MSG_NOSIGNAL);
                return;
        }
        if (!r) {
                const char *nf = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: "
                                 "close\r\n\r\n";
                (void)!send(c, nf, strlen(nf), MSG_NOSIGNAL);
                return;
        }
        for (size_t i = 0; i < 8 && r->parts[i]; i++) {
                if (send(c, r->parts[i], strlen(r->parts[i]), MSG_NOSIGNAL) < 0)
                        return;
                usleep(2000); /* lets the client read each part on its own, usually */
        }
}

static void *canned_main(void *p) {
        canned_server *s = p;
        while (!atomic_load(&s->stop)) {
                struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
                if (poll(&pfd, 1, 50) <= 0)
                        continue;
                int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        continue;
                canned_serve(c);
                shutdown(c, SHUT_RDWR);
                close(c);
        }
        return NULL;
}

static void canned_start(canned_server *s) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof a;
        s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(s->fd >= 0);
        assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
        assert_int_equal(listen(s->fd, 16), 0);
        assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
        s->port = ntohs(a.sin_port);
        atomic_store(&s->stop, false);
        assert_int_equal(pthread_create(&s->thread, NULL, canned_main, s), 0);
}

static void canned_stop(canned_server *s) {
        atomic_store(&s->stop, true);
        pthread_join(s->thread, NULL);
        close(s->fd);
}

static void canned_ctx(ctx *x, canned_server *s) {
        char kc[512], server[64], *yaml = NULL;
        snprintf(kc, sizeof kc, "%s/canned.kubeconfig", srv.dir);
        snprintf(server, sizeof server, "http://127.0.0.1:%d", s->port);
        assert_true(asprintf(&yaml,
                             "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
                             "clusters:\n- name: t\n  cluster:\n    server: %s\n"
                             "contexts:\n- name: t\n  context: {cluster: t, user: t}\n"
                             "users:\n- name: t\n  user:\n    token: canned\n",
                             server) > 0);
        write_file(kc, yaml);
        free(yaml);
        ctx_open(x, kc);
}

static void canned_watch(ctx *x, const char *path, recorder *r) {
        memset(r, 0, sizeof *r);
        assert_int_equal(koc_client_watch(x->client, &(koc_watch_spec){.path = path}, on_watch, r,
                                          NULL, NULL),
                         0);
        run_until(x, &r->closed);
        assert_int_equal(r->after_closed, 0);
}

static void test_canned(void **state) {
        canned_server s;
        ctx x = {0};
        result res = {0};
        recorder r;

        canned_start(&s);
        canned_ctx(&x, &s);

        /* A 2xx answer whose body is not JSON. */
        request(&x, "GET", "/notjson", NULL, &res);
        assert_int_equal(res.error, -EBADMSG);
        assert_int_equal(res.status, 200);
        assert_null(res.body);

        /* Retry-After as an HTTP date, 30 s ahead. */
        request(&x, "GET", "/retry-date", NULL, &res);
        assert_int_equal(res.status, 429);
        assert_int_equal(res.reason, KOC_REASON_TOO_MANY_REQUESTS);
        assert_true(res.retry_after > 0 && res.retry_after <= 31 * KOC_USEC_PER_SEC);

        /* Events split and joined across chunks, a bookmark and an ERROR. */
        canned_watch(&x, "/w/split", &r);
        assert_int_equal(r.n, 4);
        assert_int_equal(r.bookmarks, 1);
        assert_int_equal(r.type[0], KOC_WATCH_ADDED);
        assert_string_equal(r.name[0], "a");
        assert_int_equal(r.type[1], KOC_WATCH_ERROR);
        assert_int_equal(r.status[1], 410);
        assert_int_equal(r.reason[1], KOC_REASON_GONE);
        assert_int_equal(r.type[2], KOC_WATCH_DELETED);
        assert_int_equal(r.type[3], KOC_WATCH_CLOSED);
        assert_int_equal(r.status[3], 200);
        assert_int_equal(r.error[3], 0);

        /* A line that is not JSON ends the watch with -EBADMSG. */
        canned_watch(&x, "/w/garbage", &r);
        assert_int_equal(r.n, 2);
        assert_int_equal(r.type[0], KOC_WATCH_ADDED);
        assert_int_equal(r.type[1], KOC_WATCH_CLOSED);
        assert_int_equal(r.error[1], -EBADMSG);

        /* An event of a type this client does not know is skipped (with a
         * warning); the stream goes on. */
        canned_watch(&x, "/w/badtype", &r);
        assert_int_equal(r.n, 2);
        assert_int_equal(r.type[0], KOC_WATCH_ADDED);
        assert_int_equal(r.type[1], KOC_WATCH_CLOSED);
        assert_int_equal(r.error[1], 0);

        /* The connection drops in the middle of an event. */
        canned_watch(&x, "/w/truncated", &r);
        assert_int_equal(r.n, 2);
        assert_int_equal(r.type[0], KOC_WATCH_ADDED);
        assert_int_equal(r.type[1], KOC_WATCH_CLOSED);
        assert_int_equal(r.error[1], -ECONNRESET);

        canned_watch(&x, "/w/tail", &r);
        assert_int_equal(r.n, 2);
        assert_int_equal(r.type[0], KOC_WATCH_ADDED);
        assert_int_equal(r.error[1], 0);

        /* An error answer that is not a Status: the reason from the code. */
        canned_watch(&x, "/w/oops", &r);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.status[0], 500);
        assert_int_equal(r.reason[0], KOC_REASON_INTERNAL_ERROR);
        assert_int_equal(r.error[0], 0);

        result_clear(&res);
        ctx_close(&x);
        canned_stop(&s);
}

/* --- HTTP/2: many watches and requests share one connection ------------- */

/* koc-apiserver speaks HTTP/1.1, so this uses Node's http2 module when node
 * and openssl are installed (skipped otherwise): 20 watches and 30 requests
 * must share (nearly) one connection. */
static const char h2_server_js[] =
        "const http2 = require('http2'); const fs = require('fs');\n"
        "let sessions = 0, streams = 0;\n"
        "const s = http2.createSecureServer({ key: fs.readFileSync('h2key.pem'),\n"
        "                                     cert: fs.readFileSync('h2cert.pem') });\n"
        "s.on('session', () => { sessions++; });\n"
        "s.on('stream', (st, h) => {\n"
        "  streams++;\n"
        "  const p = h[':path'];\n"
        "  st.respond({ ':status': 200, 'content-type': 'application/json' });\n"
        "  if (p.startsWith('/stats')) { st.end(JSON.stringify({ sessions, streams })); return; }\n"
        "  if (!p.includes('watch=1')) { st.end(JSON.stringify({ path: p })); return; }\n"
        "  st.write(JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a' } } }) + "
        "'\\n');\n"
        "  setTimeout(() => { st.end(JSON.stringify({ type: 'DELETED', object: {} }) + '\\n'); }, "
        "100);\n"
        "});\n"
        "s.listen(0, '127.0.0.1', () => { console.log(s.address().port); });\n"
        "process.stdin.on('end', () => process.exit(0)); process.stdin.resume();\n";

typedef struct h2_server {
        pid_t pid;
        int port;
        int stdin_fd; /* closing it ends the server */
} h2_server;

static bool h2_server_start(h2_server *h) {
        char cmd[2048], path[512];
        int out[2], in[2];

        if (system("command -v node >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1") != 0)
                return false;
        snprintf(cmd, sizeof cmd,
                 "cd '%s' && openssl req -x509 -newkey rsa:2048 -nodes -keyout h2key.pem "
                 "-out h2cert.pem -days 1 -subj /CN=127.0.0.1 "
                 "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
                 srv.dir);
        if (system(cmd) != 0)
                return false;
        snprintf(path, sizeof path, "%s/h2server.js", srv.dir);
        write_file(path, h2_server_js);
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        assert_int_equal(pipe2(in, O_CLOEXEC), 0);
        h->pid = fork();
        assert_true(h->pid >= 0);
        if (h->pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                dup2(out[1], STDOUT_FILENO);
                dup2(in[0], STDIN_FILENO);
                if (chdir(srv.dir) < 0)
                        _exit(127);
                execlp("node", "node", "h2server.js", (char *)NULL);
                _exit(127);
        }
        close(out[1]);
        close(in[0]);
        h->stdin_fd = in[1];
        char line[32] = {0};
        size_t n = 0;
        while (n < sizeof line - 1 && !strchr(line, '\n')) {
                struct pollfd pfd = {.fd = out[0], .events = POLLIN};
                if (poll(&pfd, 1, 10000) <= 0)
                        break;
                ssize_t k = read(out[0], line + n, sizeof line - 1 - n);
                if (k <= 0)
                        break;
                n += (size_t)k;
        }
        close(out[0]);
        h->port = atoi(line);
        return h->port > 0;
}

static void h2_server_stop(h2_server *h) {
        if (h->pid <= 0)
                return;
        close(h->stdin_fd);
        kill(h->pid, SIGTERM);
        waitpid(h->pid, NULL, 0);
        h->pid = 0;
}

static void test_http2_multiplex(void **state) {
        h2_server h = {0};
        ctx x = {0};
        char kc[512], *yaml = NULL;
        recorder w[20];
        result res[30];

        if (!h2_server_start(&h)) {
                h2_server_stop(&h);
                skip();
        }
        snprintf(kc, sizeof kc, "%s/h2.kubeconfig", srv.dir);
        assert_true(asprintf(&yaml,
                             "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
                             "clusters:\n- name: t\n  cluster:\n"
                             "    server: https://127.0.0.1:%d\n"
                             "    certificate-authority: %s/h2cert.pem\n"
                             "contexts:\n- name: t\n  context: {cluster: t, user: t}\n"
                             "users:\n- name: t\n  user:\n    token: h2\n",
                             h.port, srv.dir) > 0);
        write_file(kc, yaml);
        free(yaml);
        ctx_open(&x, kc);

        memset(w, 0, sizeof w);
        memset(res, 0, sizeof res);
        for (int i = 0; i < 20; i++)
                assert_int_equal(koc_client_watch(x.client, &(koc_watch_spec){.path = "/w"},
                                                  on_watch, &w[i], NULL, NULL),
                                 0);
        for (int i = 0; i < 30; i++)
                start(&x, "GET", "/r", NULL, &res[i], 0);
        for (int i = 0; i < 20; i++) {
                run_until(&x, &w[i].closed);
                assert_int_equal(w[i].n, 3);
                assert_int_equal(w[i].type[0], KOC_WATCH_ADDED);
                assert_int_equal(w[i].type[1], KOC_WATCH_DELETED);
                assert_int_equal(w[i].error[2], 0);
        }
        for (int i = 0; i < 30; i++) {
                run_until(&x, &res[i].done);
                assert_int_equal(res[i].status, 200);
                result_clear(&res[i]);
        }
        result stats = {0};
        request(&x, "GET", "/stats", NULL, &stats);
        assert_int_equal(stats.status, 200);
        const cJSON *sessions = cJSON_GetObjectItemCaseSensitive(stats.body, "sessions");
        const cJSON *streams = cJSON_GetObjectItemCaseSensitive(stats.body, "streams");
        assert_true(cJSON_IsNumber(sessions) && cJSON_IsNumber(streams));
        assert_int_equal(streams->valueint, 51);
        /* Over HTTP/1.1 this would be 20 + up to 30 connections. */
        assert_true(sessions->valueint >= 1 && sessions->valueint <= 2);
        result_clear(&stats);
        ctx_close(&x);
        h2_server_stop(&h);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_crud, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watch_order_and_resume, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watch_expired, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watch_forbidden, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watch_closed_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watch_line_cap, setup, teardown),
                cmocka_unit_test_setup_teardown(test_response_cap, setup, teardown),
                cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_service_unavailable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_from_handler, setup, teardown),
                cmocka_unit_test(test_token_rotation),
                cmocka_unit_test(test_transport_errors),
                cmocka_unit_test_setup_teardown(test_sync_workers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sync_deadlock, setup, teardown),
                cmocka_unit_test_setup_teardown(test_call_hooks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_call_cancel, setup, teardown),
                cmocka_unit_test(test_sync_deadlock_default_loop),
                cmocka_unit_test(test_unref_in_flight),
                cmocka_unit_test(test_unref_in_handler),
                cmocka_unit_test(test_canned),
                cmocka_unit_test(test_http2_multiplex),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

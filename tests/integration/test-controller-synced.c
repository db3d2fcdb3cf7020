/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Workers start on a synced cache, on start and on a failover.
 *
 * An orphan cleaner: N child ConfigMaps each name their parent (a Secret)
 * in a label; the controller "orphans" reconciles the children and deletes
 * every child whose parent it cannot find in the cache of a second
 * controller "parents" (whose informer it shares through watches(), so the
 * parents' informer is one of its own).  On koc-apiserver the parents' list
 * is held (a hang fault) until every page of the children (20 ms each) has
 * been answered and a second more: a controller that started its workers
 * before every informer had listed would see the children and no parent, and
 * delete them.  Two replicas (child
 * processes): the first leads from the start; the second is started and the
 * first stopped at once, so that the second leads while its own lists are
 * still arriving.  Each reconcile appends a line to a trace file; the test
 * waits until each replica has reconciled every child, then checks that no
 * child was deleted, and that the synced notification came before the first
 * reconcile.  A third replica with start_before_synced then shows the danger
 * of the pipelined start: it deletes children whose parent exists.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "harness/apiserver.h"
#include "koc/controller.h"
#include "koc/manager.h"
#include "koc/time.h"

static koc_test_apiserver api;
static char trace_dir[256];
static char trace_path[400];
static int n_children;
static pid_t replicas[3]; /* killed by teardown if a check failed */

#define NS "ctrl-synced"
#define PARENT "the-parent"

static const koc_resource configmaps = {
        .version = "v1", .resource = "configmaps", .kind = "ConfigMap", .namespaced = true};
static const koc_resource secrets = {
        .version = "v1", .resource = "secrets", .kind = "Secret", .namespaced = true};

static bool under_valgrind(void) {
        const char *v = getenv("KOC_UNDER_VALGRIND");
        return v && *v;
}

static bool under_tsan(void) {
#if defined(__SANITIZE_THREAD__)
        return true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
        return true;
#endif
#endif
        return false;
}

/* --- the child: one replica ---------------------------------------------------- */

struct child {
        const char *identity;
        int trace;
        koc_controller *parents;
        atomic_bool synced_seen; /* written on the loop thread, read by workers */
};

static void trace(struct child *c, const char *what, const char *key) {
        char line[256];
        int n = snprintf(line, sizeof line, "%s %s %s\n", what, c->identity, key);
        /* One write with O_APPEND: lines of both replicas never interleave. */
        (void)!write(c->trace, line, (size_t)n);
}

static koc_result orphans_reconcile(koc_reconcile_context *ctx, void *userdata) {
        struct child *c = userdata;
        koc_object *child = koc_reconcile_get_cached(ctx);
        if (!child)
                return koc_result_done();
        const char *parent = koc_object_get_label(child, "parent");
        koc_object *p = parent ? koc_controller_ref_object(c->parents, NS, parent) : NULL;
        if (p) {
                koc_object_unref(p);
                trace(c, atomic_load(&c->synced_seen) ? "kept" : "kept-before-synced",
                      koc_reconcile_get_key(ctx));
                return koc_result_done();
        }
        /* An orphan, as far as this cache knows. */
        trace(c, "delete", koc_reconcile_get_key(ctx));
        koc_response *resp = NULL;
        int r = koc_reconcile_delete(ctx, &configmaps, NS, koc_reconcile_get_name(ctx), &resp);
        koc_response_free(resp);
        return r == 0 ? koc_result_done() : koc_result_error(r);
}

static koc_result parents_reconcile(koc_reconcile_context *ctx, void *userdata) {
        return koc_result_done();
}

/* A parent's events enqueue nothing: children are not listed by parent here. */
static void map_nothing(const cJSON *object, koc_keys *out, void *userdata) {
}

static void on_synced(koc_controller *ctl, void *userdata) {
        struct child *c = userdata;
        atomic_store(&c->synced_seen, true);
        trace(c, "synced", koc_controller_get_name(ctl));
}

static void child_main(const char *identity) {
        struct child c = {.identity = identity};
        koc_manager_config cfg;
        koc_error err = {0};
        koc_manager *m = NULL;
        koc_controller *orphans = NULL;

        c.trace = open(trace_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        koc_manager_config_init(&cfg);
        cfg.kubeconfig = api.kubeconfig;
        cfg.identity = identity;
        cfg.leader_election_id = "synced";
        cfg.leader_election_namespace = NS;
        cfg.lease_duration_usec = 2 * KOC_USEC_PER_SEC;
        cfg.renew_deadline_usec = 1500 * KOC_USEC_PER_MSEC;
        cfg.retry_period_usec = 250 * KOC_USEC_PER_MSEC;
        cfg.health_probe_bind_address = "127.0.0.1:0";
        cfg.metrics_bind_address = "0";
        if (c.trace < 0 || koc_manager_new(NULL, &cfg, &m, &err) < 0)
                _exit(3);
        koc_controller_options o;
        koc_controller_options_init(&o);
        o.name = "parents";
        o.resource = secrets;
        /* In the namespace of "orphans", whose watch of the parents then
         * shares this informer (a watched namespaced type follows the
         * controller's namespace): cluster-wide, it would be a second
         * informer that "orphans" does not wait for. */
        o.namespace_ = NS;
        o.label_selector = "role=parent";
        /* Paginated lists: the hold is a fault on list requests. */
        o.list_mode = KOC_LIST_PAGES;
        o.reconcile = parents_reconcile;
        if (koc_controller_new(m, &o, &c.parents, &err) < 0)
                _exit(4);
        koc_controller_options_init(&o);
        o.name = "orphans";
        o.resource = configmaps;
        o.namespace_ = NS;
        o.label_selector = "role=child";
        o.list_mode = KOC_LIST_PAGES;
        o.workers = 4;
        o.reconcile = orphans_reconcile;
        /* The third replica shows what the pipelined start risks. */
        o.start_before_synced = strcmp(identity, "synced-3") == 0;
        o.userdata = &c;
        if (koc_controller_new(m, &o, &orphans, &err) < 0 ||
            koc_controller_watches(orphans, &secrets, "role=parent", map_nothing, NULL, NULL,
                                   &err) < 0 ||
            koc_controller_on_synced(orphans, on_synced, &c, NULL) < 0)
                _exit(5);
        int r = koc_manager_run(m);
        koc_controller_unref(orphans);
        koc_controller_unref(c.parents);
        koc_manager_unref(m);
        _exit(r);
}

static pid_t start_child(const char *identity) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                child_main(identity);
        return pid;
}

static int stop_child(pid_t pid) {
        int status = 0;
        kill(pid, SIGTERM);
        if (waitpid(pid, &status, 0) != pid)
                return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* --- the test --------------------------------------------------------------------- */

/* Creates the children on one connection (a new one per request would take
 * minutes at 20,000). */
static void create_children(int n) {
        CURL *e = curl_easy_init();
        struct curl_slist *h = NULL;
        char auth[200], url[512], body[512];

        assert_non_null(e);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", api.token);
        h = curl_slist_append(h, auth);
        h = curl_slist_append(h, "Content-Type: application/json");
        snprintf(url, sizeof url, "%s/api/v1/namespaces/" NS "/configmaps", api.url);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(e, CURLOPT_CAINFO, api.ca_file);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, koc_test_buffer_write);
        for (int i = 0; i < n; i++) {
                koc_test_buffer b = {0};
                long code = 0;
                snprintf(body, sizeof body,
                         "{\"metadata\":{\"name\":\"child-%05d\",\"labels\":{\"role\":\"child\","
                         "\"parent\":\"" PARENT "\"}},\"data\":{\"i\":\"%d\"}}",
                         i, i);
                curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
                curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
                CURLcode cr = curl_easy_perform(e);
                free(b.data);
                if (cr == CURLE_OK)
                        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
                if (code != 201)
                        fail_msg("creating child-%05d: curl %d, status %ld", i, (int)cr, code);
        }
        curl_slist_free_all(h);
        curl_easy_cleanup(e);
}

static int count_children(void) {
        char *body = NULL;
        long st = koc_test_apiserver_http(
                &api, "GET", "/api/v1/namespaces/" NS "/configmaps?labelSelector=role%3Dchild",
                NULL, NULL, &body);
        cJSON *j = body ? cJSON_Parse(body) : NULL;
        free(body);
        int n = st == 200 ? cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")) : -1;
        cJSON_Delete(j);
        return n;
}

/* Lines of the trace that start with what (NULL: any) from identity. */
static int count_trace(const char *what, const char *identity) {
        FILE *f = fopen(trace_path, "r");
        if (!f)
                return 0;
        char w[32], who[32], key[128];
        int n = 0;
        while (fscanf(f, "%31s %31s %127s", w, who, key) == 3)
                if ((!what || strcmp(w, what) == 0) && strcmp(who, identity) == 0)
                        n++;
        fclose(f);
        return n;
}

/* Until identity has reconciled every child once (kept or deleted), or a
 * bound: 90 s, 300 s under valgrind. */
static void wait_reconciled(const char *identity) {
        int rounds = under_valgrind() ? 3000 : 900;
        for (int i = 0; i < rounds; i++) {
                if (count_trace("kept", identity) + count_trace("kept-before-synced", identity) +
                            count_trace("delete", identity) >=
                    n_children)
                        return;
                nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
        }
        fail_msg("%s did not reconcile %d children within %d s (kept %d, deleted %d)", identity,
                 n_children, rounds / 10, count_trace("kept", identity),
                 count_trace("delete", identity));
}

static char *lease_holder(void) {
        char *body = NULL;
        long st = koc_test_apiserver_http(
                &api, "GET", "/apis/coordination.k8s.io/v1/namespaces/" NS "/leases/synced", NULL,
                NULL, &body);
        cJSON *j = st == 200 && body ? cJSON_Parse(body) : NULL;
        free(body);
        const char *h = cJSON_GetStringValue(
                cJSON_GetObjectItem(cJSON_GetObjectItem(j, "spec"), "holderIdentity"));
        char *r = h && *h ? strdup(h) : NULL;
        cJSON_Delete(j);
        return r;
}

static void check_replica(const char *identity) {
        assert_int_equal(count_trace("synced", identity), 1);
        assert_int_equal(count_trace("kept-before-synced", identity), 0);
        if (count_trace("delete", identity) > 0)
                fail_msg("%s deleted %d children whose parent exists (a partial cache)", identity,
                         count_trace("delete", identity));
        assert_int_equal(count_children(), n_children);
}

#define LIST_CONFIGMAPS                                                                            \
        "apiserver_request_total{verb=\"LIST\",resource=\"configmaps\",code=\"200\"}"

/* koc-apiserver: holds every list of the parents until release_parents(),
 * and answers each page of children after 20 ms. */
static void hold_parents(void) {
        if (api.real)
                return;
        assert_int_equal(koc_test_apiserver_fault(&api, "{\"resource\":\"secrets\","
                                                        "\"verb\":\"list\",\"hang\":true}"),
                         200);
        assert_int_equal(koc_test_apiserver_fault(&api, "{\"resource\":\"configmaps\","
                                                        "\"verb\":\"list\","
                                                        "\"latency_ms\":20}"),
                         200);
}

/* Waits until a replica started after `before` was read has had every page
 * of the children answered, and a little more: with workers that started
 * before the parents' list, the deletes would begin now.  Then lets the
 * parents' list through. */
static void release_parents(const char *identity, double before) {
        if (api.real)
                return;
        int pages = (n_children + 499) / 500, rounds = under_valgrind() ? 3000 : 900;
        int i = 0;
        for (; i < rounds; i++) {
                if (koc_test_apiserver_metric(&api, LIST_CONFIGMAPS) - before >= pages)
                        break;
                nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
        }
        if (i == rounds)
                fail_msg("the children's %d pages were not listed within %d s", pages,
                         rounds / 10);
        nanosleep(&(struct timespec){under_valgrind() ? 3 : 1, 0}, NULL);
        /* The hold worked: this replica's caches have not all listed. */
        assert_int_equal(count_trace("synced", identity), 0);
        assert_int_equal(koc_test_apiserver_clear_faults(&api), 200);
}

/* The real server is shared by the k8s tests: what an earlier run left in
 * the namespace goes (the namespace itself stays, so that a rerun does not
 * meet it terminating). */
static void clean_real(void) {
        if (!api.real)
                return;
        (void)koc_test_apiserver_http(&api, "DELETE",
                                      "/api/v1/namespaces/" NS
                                      "/configmaps?labelSelector=role%3Dchild",
                                      NULL, NULL, NULL);
        (void)koc_test_apiserver_http(&api, "DELETE", "/api/v1/namespaces/" NS "/secrets/" PARENT,
                                      NULL, NULL, NULL);
        (void)koc_test_apiserver_http(
                &api, "DELETE", "/apis/coordination.k8s.io/v1/namespaces/" NS "/leases/synced",
                NULL, NULL, NULL);
}

static void test_no_orphan_deleted_on_start_or_failover(void **state) {
        long st;

        /* The real server has no hold on the parents' list, and its writes
         * go through etcd: fewer children there. */
        n_children = under_valgrind() ? 1000 : under_tsan() || api.real ? 4000 : 20000;
        clean_real();
        st = koc_test_apiserver_http(&api, "POST", "/api/v1/namespaces",
                                     "{\"metadata\":{\"name\":\"" NS "\"}}", NULL, NULL);
        assert_true(st == 201 || st == 409);
        st = koc_test_apiserver_http(&api, "POST", "/api/v1/namespaces/" NS "/secrets",
                                     "{\"metadata\":{\"name\":\"" PARENT
                                     "\",\"labels\":{\"role\":\"parent\"}}}",
                                     NULL, NULL);
        assert_int_equal(st, 201);
        create_children(n_children);
        assert_int_equal(count_children(), n_children);
        snprintf(trace_path, sizeof trace_path, "%s/synced-trace", trace_dir);

        /* On start. */
        hold_parents();
        double before = api.real ? 0 : koc_test_apiserver_metric(&api, LIST_CONFIGMAPS);
        pid_t a = replicas[0] = start_child("synced-1");
        release_parents("synced-1", before);
        wait_reconciled("synced-1");
        check_replica("synced-1");
        char *holder = lease_holder();
        assert_non_null(holder);
        assert_string_equal(holder, "synced-1");
        free(holder);

        /* On failover: the successor leads while its lists are on their way. */
        hold_parents();
        before = api.real ? 0 : koc_test_apiserver_metric(&api, LIST_CONFIGMAPS);
        pid_t b = replicas[1] = start_child("synced-2");
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
        assert_int_equal(stop_child(a), 0);
        replicas[0] = 0;
        release_parents("synced-2", before);
        wait_reconciled("synced-2");
        check_replica("synced-2");
        holder = lease_holder();
        assert_non_null(holder);
        assert_string_equal(holder, "synced-2");
        free(holder);
        assert_int_equal(stop_child(b), 0);
        replicas[1] = 0;

        /* The explicit pipelined start (start_before_synced): the workers
         * begin before the parents' list, and this reconciler deletes
         * children whose parent exists, the danger the option documents. */
        if (api.real)
                return;
        hold_parents();
        pid_t c = replicas[2] = start_child("synced-3");
        int rounds = under_valgrind() ? 3000 : 900, i = 0;
        for (; i < rounds && count_trace("delete", "synced-3") == 0; i++)
                nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
        assert_true(i < rounds);
        assert_int_equal(count_trace("synced", "synced-3"), 0);
        assert_int_equal(koc_test_apiserver_clear_faults(&api), 200);
        assert_int_equal(stop_child(c), 0);
        replicas[2] = 0;
}

static int setup(void **state) {
        signal(SIGPIPE, SIG_IGN);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        snprintf(trace_dir, sizeof trace_dir, "/tmp/koc-synced-XXXXXX");
        if (!mkdtemp(trace_dir))
                return -1;
        return koc_test_apiserver_start(&api, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state) {
        for (int i = 0; i < 3; i++)
                if (replicas[i] > 0) {
                        kill(replicas[i], SIGKILL);
                        waitpid(replicas[i], NULL, 0);
                }
        clean_real();
        unlink(trace_path);
        rmdir(trace_dir);
        koc_test_apiserver_stop(&api);
        curl_global_cleanup();
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_no_orphan_deleted_on_start_or_failover),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

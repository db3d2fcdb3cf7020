/* SPDX-License-Identifier: Apache-2.0 */
/*
 * examples/configmap-mirror end to end: two replicas of the real program
 * against the API server.  The test creates a source ConfigMap, checks that
 * its copies appear and that its status annotation says so, stops the leading
 * replica with SIGTERM (it must drain and exit 0), changes the source and
 * damages a copy, checks that the other replica repairs both, deletes the
 * source and checks that the finalizer removed every copy first.  A second
 * case names targets the operator must refuse (a ConfigMap it did not
 * create, an entry that is not a namespace, a namespace it was not allowed to
 * write into) and checks that they stay untouched and that the refusals are
 * Warning Events on the source; others check the cap on a source's entries
 * and that a status write whose answer broke off is retried as a failure.
 * Only end states are asserted, each polled with a generous bound.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
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

static koc_test_apiserver api;
/* The replicas' logs; our own directory, since the real server has none. */
static char log_dir[256];

#define SRC_NS "mirror-src"
#define LEASE "koc-example-configmap-mirror"

/* Under valgrind (KOC_UNDER_VALGRIND, set by valgrind-test-configmap-mirror)
 * the replicas run under KOC_MIRROR_WRAPPER too (space-separated, "valgrind
 * --error-exitcode=99 ..."), so their own memory errors and leaks fail their
 * exit status; their leases are longer, since valgrind slows every renewal
 * about twenty times, and every wait is three times as long. */
static bool slow(void) {
        const char *v = getenv("KOC_UNDER_VALGRIND");
        return v && *v;
}

static pid_t start_replica(const char *identity) {
        char kc[400], id[128], log[400], wrapper[512] = "";
        const char *w = getenv("KOC_MIRROR_WRAPPER");
        char *argv[32];
        size_t argc = 0;
        snprintf(kc, sizeof kc, "--kubeconfig=%s", api.kubeconfig);
        snprintf(id, sizeof id, "--identity=%s", identity);
        snprintf(log, sizeof log, "%s/%s.log", log_dir, identity);
        if (w)
                snprintf(wrapper, sizeof wrapper, "%s", w);
        for (char *save = NULL, *t = strtok_r(wrapper, " ", &save); t && argc < 16;
             t = strtok_r(NULL, " ", &save))
                argv[argc++] = t;
        argv[argc++] = (char *)KOC_MIRROR_PATH;
        argv[argc++] = kc;
        argv[argc++] = id;
        argv[argc++] = (char *)"--leader-elect-resource-namespace=" SRC_NS;
        argv[argc++] = slow() ? (char *)"--leader-elect-lease-duration=8s"
                              : (char *)"--leader-elect-lease-duration=2s";
        argv[argc++] = slow() ? (char *)"--leader-elect-renew-deadline=6s"
                              : (char *)"--leader-elect-renew-deadline=1500ms";
        argv[argc++] = slow() ? (char *)"--leader-elect-retry-period=1s"
                              : (char *)"--leader-elect-retry-period=250ms";
        argv[argc++] = (char *)"--health-probe-bind-address=127.0.0.1:0";
        argv[argc++] = (char *)"--metrics-bind-address=0";
        /* Where copies may go; kube-system is deliberately not allowed. */
        argv[argc++] = (char *)"--target-namespaces=mirror-a,mirror-b,mirror-victim";
        argv[argc] = NULL;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                /* Warn lines are asserted on (debug keeps them too). */
                const char *level = getenv("KOC_LOG_LEVEL");
                if (!level || strcmp(level, "debug") != 0)
                        setenv("KOC_LOG_LEVEL", "info", 1);
                execvp(argv[0], argv);
                _exit(127);
        }
        return pid;
}

static int stop_replica(pid_t pid) {
        int status = 0;
        kill(pid, SIGTERM);
        if (waitpid(pid, &status, 0) != pid)
                return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static cJSON *get(const char *path, long *ret_status) {
        char *body = NULL;
        *ret_status = koc_test_apiserver_http(&api, "GET", path, NULL, NULL, &body);
        cJSON *j = body ? cJSON_Parse(body) : NULL;
        free(body);
        return j;
}

static void ensure_namespace(const char *ns) {
        char body[256];
        snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"%s\"}}", ns);
        long st = koc_test_apiserver_http(&api, "POST", "/api/v1/namespaces", body, NULL, NULL);
        assert_true(st == 201 || st == 409);
}

static const char *json_str(const cJSON *o, const char *a, const char *b, const char *c) {
        const cJSON *x = cJSON_GetObjectItem(o, a);
        if (b)
                x = cJSON_GetObjectItem(x, b);
        if (c)
                x = cJSON_GetObjectItem(x, c);
        return cJSON_GetStringValue(x);
}

/* The copy NAME in ns has data.k == want (want NULL: the copy is gone). */
static bool copy_named_is(const char *ns, const char *name, const char *want) {
        char path[256];
        long st;
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps/%s", ns, name);
        cJSON *j = get(path, &st);
        const char *k = json_str(j, "data", "k", NULL);
        bool ok = want ? st == 200 && k && strcmp(k, want) == 0 : st == 404;
        cJSON_Delete(j);
        return ok;
}

static bool copy_is(const char *ns, const char *want) {
        return copy_named_is(ns, "settings", want);
}

static bool source_status_is(const char *want) {
        long st;
        cJSON *j = get("/api/v1/namespaces/" SRC_NS "/configmaps/settings", &st);
        const char *s = json_str(j, "metadata", "annotations", "koc.example/mirror-status");
        bool ok = st == 200 && s && strcmp(s, want) == 0;
        cJSON_Delete(j);
        return ok;
}

static bool source_gone(void) {
        long st;
        cJSON_Delete(get("/api/v1/namespaces/" SRC_NS "/configmaps/settings", &st));
        return st == 404;
}

/* Polls cond for up to 60 s (180 s under valgrind). */
#define EVENTUALLY(cond)                                                                           \
        do {                                                                                       \
                bool ok_ = false;                                                                  \
                for (int i_ = 0; i_ < (slow() ? 1800 : 600) && !(ok_ = (cond)); i_++)              \
                        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);                 \
                if (!ok_)                                                                          \
                        fail_msg("not reached in time: %s", #cond);                                \
        } while (0)

static void test_two_replicas_mirror(void **state) {
        ensure_namespace(SRC_NS);
        ensure_namespace("mirror-a");
        ensure_namespace("mirror-b");
        pid_t r1 = start_replica("mirror-1"), r2 = start_replica("mirror-2");

        long st = koc_test_apiserver_http(
                &api, "POST", "/api/v1/namespaces/" SRC_NS "/configmaps",
                "{\"metadata\":{\"name\":\"settings\",\"labels\":{\"koc.example/mirror\":\"true\"},"
                "\"annotations\":{\"koc.example/mirror-to\":\"mirror-a, mirror-b\"}},"
                "\"data\":{\"k\":\"v1\"}}",
                NULL, NULL);
        assert_int_equal(st, 201);
        EVENTUALLY(copy_is("mirror-a", "v1") && copy_is("mirror-b", "v1"));
        EVENTUALLY(source_status_is("2/2 in sync"));

        /* Stop whichever replica leads; it drains and exits 0. */
        cJSON *lease = get("/apis/coordination.k8s.io/v1/namespaces/" SRC_NS "/leases/" LEASE, &st);
        assert_int_equal(st, 200);
        const char *holder = json_str(lease, "spec", "holderIdentity", NULL);
        assert_non_null(holder);
        bool first = strcmp(holder, "mirror-1") == 0;
        cJSON_Delete(lease);
        assert_int_equal(stop_replica(first ? r1 : r2), 0);
        pid_t survivor = first ? r2 : r1;

        /* The other replica takes over: a change and a damaged copy are repaired. */
        st = koc_test_apiserver_http(
                &api, "PATCH", "/api/v1/namespaces/" SRC_NS "/configmaps/settings",
                "{\"data\":{\"k\":\"v2\"}}", "application/merge-patch+json", NULL);
        assert_int_equal(st, 200);
        st = koc_test_apiserver_http(&api, "DELETE",
                                     "/api/v1/namespaces/mirror-b/configmaps/settings", NULL, NULL,
                                     NULL);
        assert_true(st == 200 || st == 404);
        EVENTUALLY(copy_is("mirror-a", "v2") && copy_is("mirror-b", "v2"));

        /* Deleting the source removes the copies first, then the source. */
        st = koc_test_apiserver_http(&api, "DELETE",
                                     "/api/v1/namespaces/" SRC_NS "/configmaps/settings", NULL,
                                     NULL, NULL);
        assert_int_equal(st, 200);
        EVENTUALLY(source_gone());
        assert_true(copy_is("mirror-a", NULL));
        assert_true(copy_is("mirror-b", NULL));
        assert_int_equal(stop_replica(survivor), 0);
}

/* The configmap's resourceVersion and data.k ("" when absent); false when it
 * cannot be read. */
static bool read_cm(const char *ns, const char *name, char *rv, size_t rv_size, char *k,
                    size_t k_size) {
        char path[256];
        long st;
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps/%s", ns, name);
        cJSON *j = get(path, &st);
        const char *v = json_str(j, "metadata", "resourceVersion", NULL);
        const char *d = json_str(j, "data", "k", NULL);
        snprintf(rv, rv_size, "%s", v ? v : "");
        snprintf(k, k_size, "%s", d ? d : "");
        cJSON_Delete(j);
        return st == 200;
}

/* A Warning Event with this reason on the source `name`. */
static bool warning_event_on(const char *name, const char *reason) {
        long st;
        cJSON *list = get("/apis/events.k8s.io/v1/namespaces/" SRC_NS "/events", &st);
        bool found = false;
        const cJSON *ev;
        cJSON_ArrayForEach(ev, cJSON_GetObjectItem(list, "items")) {
                const char *r = json_str(ev, "reason", NULL, NULL);
                const char *t = json_str(ev, "type", NULL, NULL);
                const char *n = json_str(ev, "regarding", "name", NULL);
                if (r && t && n && strcmp(r, reason) == 0 && strcmp(t, "Warning") == 0 &&
                    strcmp(n, name) == 0)
                        found = true;
        }
        cJSON_Delete(list);
        return st == 200 && found;
}

static bool warning_event(const char *reason) {
        return warning_event_on("hostile", reason);
}

static bool hostile_status_is(const char *want) {
        long st;
        cJSON *j = get("/api/v1/namespaces/" SRC_NS "/configmaps/hostile", &st);
        const char *s = json_str(j, "metadata", "annotations", "koc.example/mirror-status");
        bool ok = st == 200 && s && strcmp(s, want) == 0;
        cJSON_Delete(j);
        return ok;
}

static bool hostile_gone(void) {
        long st;
        cJSON_Delete(get("/api/v1/namespaces/" SRC_NS "/configmaps/hostile", &st));
        return st == 404;
}

/* The confused deputy: a source that names a ConfigMap the operator did not
 * create, an entry that would reach another object if it became part of a
 * path, and a namespace the operator was not allowed to write into (where
 * nothing exists, so that a create would succeed: a user who may write
 * ConfigMaps only in their own namespace must not get one made in
 * kube-system).  None is written, now or when the source goes; each is a
 * Warning Event on the source. */
static void test_refuses_targets_it_does_not_own(void **state) {
        ensure_namespace(SRC_NS);
        ensure_namespace("mirror-a");
        ensure_namespace("mirror-victim");
        ensure_namespace("kube-system");
        long st = koc_test_apiserver_http(
                &api, "POST", "/api/v1/namespaces/mirror-victim/configmaps",
                "{\"metadata\":{\"name\":\"hostile\"},\"data\":{\"k\":\"precious\"}}", NULL, NULL);
        assert_true(st == 201 || st == 409);
        st = koc_test_apiserver_http(
                &api, "POST", "/api/v1/namespaces/kube-system/configmaps",
                "{\"metadata\":{\"name\":\"coredns\"},\"data\":{\"k\":\"precious\"}}", NULL, NULL);
        assert_true(st == 201 || st == 409);
        char victim_rv[64], coredns_rv[64], rv[64], k[64];
        assert_true(read_cm("mirror-victim", "hostile", victim_rv, sizeof victim_rv, k, sizeof k));
        assert_true(read_cm("kube-system", "coredns", coredns_rv, sizeof coredns_rv, k, sizeof k));

        pid_t r1 = start_replica("mirror-1");
        st = koc_test_apiserver_http(
                &api, "POST", "/api/v1/namespaces/" SRC_NS "/configmaps",
                "{\"metadata\":{\"name\":\"hostile\",\"labels\":{\"koc.example/mirror\":\"true\"},"
                "\"annotations\":{\"koc.example/mirror-to\":"
                "\"mirror-victim, kube-system/configmaps/coredns?x=, mirror-a, kube-system\"}},"
                "\"data\":{\"k\":\"v1\"}}",
                NULL, NULL);
        assert_int_equal(st, 201);
        /* What it may do, it does; what it may not, it says. */
        EVENTUALLY(copy_named_is("mirror-a", "hostile", "v1"));
        EVENTUALLY(hostile_status_is("1/4 in sync, 3 refused"));
        EVENTUALLY(warning_event("MirrorTargetNotOwned"));
        EVENTUALLY(warning_event("InvalidMirrorTarget"));
        EVENTUALLY(warning_event("MirrorTargetNotAllowed"));
        assert_true(copy_named_is("kube-system", "hostile", NULL));

        /* A change of the source is mirrored, never onto the victim. */
        st = koc_test_apiserver_http(&api, "PATCH",
                                     "/api/v1/namespaces/" SRC_NS "/configmaps/hostile",
                                     "{\"data\":{\"k\":\"v2\"}}", "application/merge-patch+json",
                                     NULL);
        assert_int_equal(st, 200);
        EVENTUALLY(copy_named_is("mirror-a", "hostile", "v2"));

        /* The source goes: its own copy goes first, the victim stays. */
        st = koc_test_apiserver_http(&api, "DELETE",
                                     "/api/v1/namespaces/" SRC_NS "/configmaps/hostile", NULL,
                                     NULL, NULL);
        assert_int_equal(st, 200);
        EVENTUALLY(hostile_gone());
        assert_true(copy_named_is("mirror-a", "hostile", NULL));
        assert_int_equal(stop_replica(r1), 0);

        assert_true(read_cm("mirror-victim", "hostile", rv, sizeof rv, k, sizeof k));
        assert_string_equal(rv, victim_rv);
        assert_string_equal(k, "precious");
        /* (Another test may have made it first on a shared real server: its
         * resourceVersion is what must not change.) */
        assert_true(read_cm("kube-system", "coredns", rv, sizeof rv, k, sizeof k));
        assert_string_equal(rv, coredns_rv);
        assert_true(copy_named_is("kube-system", "hostile", NULL));
}

static bool status_of_is(const char *name, const char *want) {
        char path[256];
        long st;
        snprintf(path, sizeof path, "/api/v1/namespaces/" SRC_NS "/configmaps/%s", name);
        cJSON *j = get(path, &st);
        const char *s = json_str(j, "metadata", "annotations", "koc.example/mirror-status");
        bool ok = st == 200 && s && strcmp(s, want) == 0;
        cJSON_Delete(j);
        return ok;
}

static bool gone(const char *name) {
        return copy_named_is(SRC_NS, name, NULL);
}

/* One source cannot make every reconcile cost thousands of requests: the
 * entries after the first 64 are refused, unread, with one Warning Event. */
static void test_caps_targets_per_source(void **state) {
        ensure_namespace(SRC_NS);
        ensure_namespace("mirror-a");
        ensure_namespace("mirror-b");
        char body[2048];
        size_t o = (size_t)snprintf(body, sizeof body,
                                    "{\"metadata\":{\"name\":\"many\",\"labels\":{"
                                    "\"koc.example/mirror\":\"true\"},\"annotations\":{"
                                    "\"koc.example/mirror-to\":\"");
        for (int i = 0; i < 64; i++)
                o += (size_t)snprintf(body + o, sizeof body - o, "mirror-a,");
        snprintf(body + o, sizeof body - o, "mirror-b\"}},\"data\":{\"k\":\"v1\"}}");

        pid_t r1 = start_replica("mirror-1");
        long st = koc_test_apiserver_http(&api, "POST", "/api/v1/namespaces/" SRC_NS "/configmaps",
                                          body, NULL, NULL);
        assert_int_equal(st, 201);
        EVENTUALLY(copy_named_is("mirror-a", "many", "v1"));
        EVENTUALLY(status_of_is("many", "64/65 in sync, 1 refused"));
        EVENTUALLY(warning_event_on("many", "TooManyMirrorTargets"));
        assert_true(copy_named_is("mirror-b", "many", NULL));

        st = koc_test_apiserver_http(&api, "DELETE", "/api/v1/namespaces/" SRC_NS "/configmaps/many",
                                     NULL, NULL, NULL);
        assert_int_equal(st, 200);
        EVENTUALLY(gone("many"));
        assert_true(copy_named_is("mirror-a", "many", NULL));
        assert_int_equal(stop_replica(r1), 0);
}

/* A line of the replica's log that contains all of a, b and c. */
static bool log_has(const char *identity, const char *a, const char *b, const char *c) {
        char path[400], line[4096];
        snprintf(path, sizeof path, "%s/%s.log", log_dir, identity);
        FILE *f = fopen(path, "r");
        bool found = false;
        while (f && !found && fgets(line, sizeof line, f))
                found = strstr(line, a) && strstr(line, b) && strstr(line, c);
        if (f)
                fclose(f);
        return found;
}

/* The status write's answer breaks off after its status line (a transport
 * failure: the response has an error, and a status of 200 or none at all):
 * that is a failed reconcile, said at warn and retried, not a success that
 * waits an hour. */
static void test_status_transport_failure_is_a_failure(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&api);
        ensure_namespace(SRC_NS);
        ensure_namespace("mirror-a");
        pid_t r1 = start_replica("mirror-1");
        long st = koc_test_apiserver_http(
                &api, "POST", "/api/v1/namespaces/" SRC_NS "/configmaps",
                "{\"metadata\":{\"name\":\"patchy\",\"labels\":{\"koc.example/mirror\":\"true\"},"
                "\"annotations\":{\"koc.example/mirror-to\":\"mirror-a\"}},\"data\":{\"k\":\"v1\"}}",
                NULL, NULL);
        assert_int_equal(st, 201);
        EVENTUALLY(status_of_is("patchy", "1/1 in sync"));

        /* The next PATCH of a ConfigMap (only the status write: the finalizer
         * is in place) gets half its answer, then the connection closes. */
        assert_int_equal(koc_test_apiserver_fault(&api, "{\"resource\":\"configmaps\",\"verb\":"
                                                        "\"patch\",\"drop_rate\":1.0,\"count\":1}"),
                         200);
        /* A change that writes no copy (whose watch event would reconcile
         * the source again anyway), only a new status: a refused entry. */
        cJSON *src = get("/api/v1/namespaces/" SRC_NS "/configmaps/patchy", &st);
        assert_int_equal(st, 200);
        cJSON *ann = cJSON_GetObjectItem(cJSON_GetObjectItem(src, "metadata"), "annotations");
        cJSON_ReplaceItemInObject(ann, "koc.example/mirror-to",
                                  cJSON_CreateString("mirror-a, Not_A_Namespace"));
        char *put = cJSON_PrintUnformatted(src);
        cJSON_Delete(src);
        st = koc_test_apiserver_http(&api, "PUT", "/api/v1/namespaces/" SRC_NS "/configmaps/patchy",
                                     put, NULL, NULL);
        cJSON_free(put);
        assert_int_equal(st, 200);
        /* Said as the transport failure it is, not as the 200 that came
         * before the answer broke off. */
        EVENTUALLY(log_has("mirror-1", "key=" SRC_NS "/patchy reconcile failed", "method=PATCH",
                           "path=/api/v1/namespaces/" SRC_NS "/configmaps/patchy transport="));
        EVENTUALLY(status_of_is("patchy", "1/2 in sync, 1 refused"));
        assert_int_equal(koc_test_apiserver_clear_faults(&api), 200);

        st = koc_test_apiserver_http(&api, "DELETE",
                                     "/api/v1/namespaces/" SRC_NS "/configmaps/patchy", NULL, NULL,
                                     NULL);
        assert_int_equal(st, 200);
        EVENTUALLY(gone("patchy"));
        assert_int_equal(stop_replica(r1), 0);
}

static int setup(void **state) {
        signal(SIGPIPE, SIG_IGN);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        snprintf(log_dir, sizeof log_dir, "/tmp/koc-mirror-XXXXXX");
        if (!mkdtemp(log_dir))
                return -1;
        return koc_test_apiserver_start(&api, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state) {
        char path[400];
        for (int i = 1; i <= 2; i++) {
                snprintf(path, sizeof path, "%s/mirror-%d.log", log_dir, i);
                unlink(path);
        }
        rmdir(log_dir);
        koc_test_apiserver_stop(&api);
        curl_global_cleanup();
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_two_replicas_mirror),
                cmocka_unit_test(test_refuses_targets_it_does_not_own),
                cmocka_unit_test(test_caps_targets_per_source),
                cmocka_unit_test(test_status_transport_failure_is_a_failure),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

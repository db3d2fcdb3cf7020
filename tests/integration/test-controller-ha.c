/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A leader change in the middle of a burst of changes: two replicas (child
 * processes, each a manager with a two-worker controller) reconcile 40
 * ConfigMaps while the test changes all of them and stops the leader with
 * SIGTERM half-way.  Each reconcile copies data.v to data.done with a fenced
 * write and appends "begin"/"end" lines stamped with CLOCK_BOOTTIME (one clock
 * for the whole machine) to a shared trace file.  The test then checks the
 * end state (every object done with its last value) and the trace: no key was
 * ever reconciled by both replicas at overlapping times.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
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

#define NS "ctrl-ha"
#define N_OBJECTS 40

static const koc_resource configmaps = {
        .version = "v1", .resource = "configmaps", .kind = "ConfigMap", .namespaced = true};

/* --- the child: one replica ---------------------------------------------------- */

struct child {
        const char *identity;
        int trace;
};

static void trace(struct child *c, const char *what, const char *key) {
        char line[256];
        int n = snprintf(line, sizeof line, "%s %s %s %" PRIu64 "\n", what, c->identity, key,
                         koc_now_boottime_usec());
        /* One write with O_APPEND: lines of both replicas never interleave. */
        (void)!write(c->trace, line, (size_t)n);
}

static koc_result child_reconcile(koc_reconcile_context *ctx, void *userdata) {
        struct child *c = userdata;
        const cJSON *obj = koc_reconcile_get_object(ctx);
        if (!obj)
                return koc_result_done();
        const cJSON *data = cJSON_GetObjectItem(obj, "data");
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(data, "v"));
        const char *done = cJSON_GetStringValue(cJSON_GetObjectItem(data, "done"));
        if (!v || (done && strcmp(v, done) == 0))
                return koc_result_done();
        trace(c, "begin", koc_reconcile_get_key(ctx));
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(cJSON_AddObjectToObject(p, "data"), "done", v);
        koc_response *resp = NULL;
        int r = koc_reconcile_patch(ctx, &configmaps, koc_reconcile_get_namespace(ctx),
                                    koc_reconcile_get_name(ctx), KOC_PATCH_MERGE, p, &resp);
        cJSON_Delete(p);
        bool ok = r == 0 && resp->status == 200;
        koc_response_free(resp);
        trace(c, "end", koc_reconcile_get_key(ctx));
        return ok ? koc_result_done() : koc_result_error(r < 0 ? r : -EIO);
}

static void child_main(const char *identity) {
        struct child c = {.identity = identity};
        koc_manager_config cfg;
        koc_error err = {0};
        koc_manager *m = NULL;
        koc_controller *ctl = NULL;

        c.trace = open(trace_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        koc_manager_config_init(&cfg);
        cfg.kubeconfig = api.kubeconfig;
        cfg.identity = identity;
        cfg.leader_election_id = "ha-burst";
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
        o.name = "ha";
        o.resource = configmaps;
        o.namespace_ = NS;
        o.label_selector = "test=ha";
        o.workers = 2;
        o.reconcile = child_reconcile;
        o.userdata = &c;
        if (koc_controller_new(m, &o, &ctl, &err) < 0)
                _exit(4);
        int r = koc_manager_run(m);
        koc_controller_unref(ctl);
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

static cJSON *get(const char *path, long *ret_status) {
        char *body = NULL;
        *ret_status = koc_test_apiserver_http(&api, "GET", path, NULL, NULL, &body);
        cJSON *j = body ? cJSON_Parse(body) : NULL;
        free(body);
        return j;
}

static int count_done(const char *want) {
        long st;
        cJSON *list = get("/api/v1/namespaces/" NS "/configmaps?labelSelector=test%3Dha", &st);
        int n = 0;
        cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItem(list, "items")) {
                const char *d = cJSON_GetStringValue(
                        cJSON_GetObjectItem(cJSON_GetObjectItem(item, "data"), "done"));
                if (d && strcmp(d, want) == 0)
                        n++;
        }
        cJSON_Delete(list);
        return n;
}

/* 60 s, or 180 s under valgrind (KOC_UNDER_VALGRIND, valgrind-test-controller-ha:
 * the replicas are forked children, so they run under valgrind too). */
static void wait_all_done(const char *want) {
        const char *v = getenv("KOC_UNDER_VALGRIND");
        int rounds = v && *v ? 1800 : 600;
        for (int i = 0; i < rounds; i++) {
                if (count_done(want) == N_OBJECTS)
                        return;
                nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
        }
        fail_msg("not every object reached done=%s within %d s (%d did)", want, rounds / 10,
                 count_done(want));
}

struct interval {
        char who[32];
        char key[64];
        uint64_t begin, end;
};

/* Reads the trace and checks that no key's intervals of two replicas overlap. */
static void check_trace(void) {
        FILE *f = fopen(trace_path, "r");
        assert_non_null(f);
        static struct interval iv[4096];
        size_t n = 0;
        char what[8], who[32], key[64];
        uint64_t t;
        while (fscanf(f, "%7s %31s %63s %" SCNu64, what, who, key, &t) == 4) {
                if (strcmp(what, "begin") == 0 && n < 4096) {
                        iv[n] = (struct interval){.begin = t, .end = UINT64_MAX};
                        snprintf(iv[n].who, sizeof iv[n].who, "%s", who);
                        snprintf(iv[n].key, sizeof iv[n].key, "%s", key);
                        n++;
                        continue;
                }
                /* The latest open interval of this replica and key ends. */
                for (size_t i = n; i > 0; i--)
                        if (iv[i - 1].end == UINT64_MAX && !strcmp(iv[i - 1].who, who) &&
                            !strcmp(iv[i - 1].key, key)) {
                                iv[i - 1].end = t;
                                break;
                        }
        }
        fclose(f);
        assert_true(n >= N_OBJECTS);
        size_t by_each[2] = {0};
        for (size_t i = 0; i < n; i++) {
                by_each[strcmp(iv[i].who, "ha-1") == 0 ? 0 : 1]++;
                for (size_t j = i + 1; j < n; j++)
                        if (!strcmp(iv[i].key, iv[j].key) && strcmp(iv[i].who, iv[j].who) &&
                            iv[i].begin < iv[j].end && iv[j].begin < iv[i].end)
                                fail_msg("%s reconciled by %s and %s at once", iv[i].key, iv[i].who,
                                         iv[j].who);
        }
        /* Both replicas did work: the leader change happened mid-burst. */
        assert_true(by_each[0] > 0 && by_each[1] > 0);
}

static void test_leader_change_mid_burst(void **state) {
        char path[256], body[512];
        long st;

        st = koc_test_apiserver_http(&api, "POST", "/api/v1/namespaces",
                                     "{\"metadata\":{\"name\":\"" NS "\"}}", NULL, NULL);
        assert_true(st == 201 || st == 409);
        snprintf(trace_path, sizeof trace_path, "%s/ha-trace", trace_dir);
        pid_t a = start_child("ha-1"), b = start_child("ha-2");

        for (int i = 0; i < N_OBJECTS; i++) {
                snprintf(body, sizeof body,
                         "{\"metadata\":{\"name\":\"ha-%d\",\"labels\":{\"test\":\"ha\"}},"
                         "\"data\":{\"v\":\"1\"}}",
                         i);
                assert_int_equal(koc_test_apiserver_http(&api, "POST",
                                                         "/api/v1/namespaces/" NS "/configmaps",
                                                         body, NULL, NULL),
                                 201);
        }
        wait_all_done("1");

        /* The burst, with the leader stopped half-way through it. */
        cJSON *lease = get("/apis/coordination.k8s.io/v1/namespaces/" NS "/leases/ha-burst", &st);
        const char *holder = cJSON_GetStringValue(
                cJSON_GetObjectItem(cJSON_GetObjectItem(lease, "spec"), "holderIdentity"));
        assert_non_null(holder);
        pid_t leader = strcmp(holder, "ha-1") == 0 ? a : b;
        pid_t other = leader == a ? b : a;
        cJSON_Delete(lease);
        for (int i = 0; i < N_OBJECTS; i++) {
                snprintf(path, sizeof path, "/api/v1/namespaces/" NS "/configmaps/ha-%d", i);
                assert_int_equal(koc_test_apiserver_http(&api, "PATCH", path,
                                                         "{\"data\":{\"v\":\"2\"}}",
                                                         "application/merge-patch+json", NULL),
                                 200);
                if (i == N_OBJECTS / 2)
                        assert_int_equal(stop_child(leader), 0);
        }
        wait_all_done("2");
        assert_int_equal(stop_child(other), 0);
        check_trace();
}

static int setup(void **state) {
        signal(SIGPIPE, SIG_IGN);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        /* Our own directory: on the real server the harness makes none. */
        snprintf(trace_dir, sizeof trace_dir, "/tmp/koc-ha-XXXXXX");
        if (!mkdtemp(trace_dir))
                return -1;
        return koc_test_apiserver_start(&api, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state) {
        unlink(trace_path);
        rmdir(trace_dir);
        koc_test_apiserver_stop(&api);
        curl_global_cleanup();
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_leader_change_mid_burst),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

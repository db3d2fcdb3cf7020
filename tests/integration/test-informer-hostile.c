/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The informer and its reflector against a scripted server that answers
 * badly on purpose (plain HTTP on 127.0.0.1, one thread per connection):
 * a re-list after 410 that goes back in resourceVersions, a watch event of
 * an unknown type, continue tokens that repeat, pages without end, lists
 * over the caps, and answers that are not JSON, too deep, too large, error
 * statuses and ERROR events.  Each is survived, said at warn with the
 * request and the reason, and counted; no object of an abandoned list
 * reaches the cache.
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/reflector.h"
#include "framework/cache/cache-internal.h"
#include "framework/cache/informer.h"
#include "koc/client.h"
#include "koc/config.h"
#include "koc/log.h"
#include "koc/metrics.h"
#include "koc/time.h"

#define PATH "/api/v1/namespaces/ns/configmaps"
#define MAX_CONNS 256

/* --- the scripted server ---------------------------------------------------------- */

/* Answers one request: n counts the lists (or the watches) so far, from 1. */
typedef void (*serve_fn)(int fd, bool watch, unsigned n, const char *query);

static struct {
        int fd, port;
        pthread_t thread;
        atomic_bool stop;
        serve_fn serve;
        atomic_uint lists, watches;
        pthread_t conns[MAX_CONNS];
        atomic_uint n_conns;
} srv;

static void send_str(int fd, const char *s) {
        (void)!send(fd, s, strlen(s), MSG_NOSIGNAL);
}

static void send_json(int fd, int code, const char *body) {
        char head[256];
        snprintf(head, sizeof head,
                 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 code, strlen(body));
        send_str(fd, head);
        send_str(fd, body);
}

static void send_list(int fd, const char *rv, const char *cont, const char *items) {
        char *b = NULL;
        assert_true(asprintf(&b,
                             "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":{"
                             "\"resourceVersion\":\"%s\",\"continue\":\"%s\"},\"items\":[%s]}",
                             rv, cont ? cont : "", items) > 0);
        send_json(fd, 200, b);
        free(b);
}

static void watch_begin(int fd) {
        send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
}

static void watch_event(int fd, const char *line) {
        char head[32];
        snprintf(head, sizeof head, "%zx\r\n", strlen(line) + 1);
        send_str(fd, head);
        send_str(fd, line);
        send_str(fd, "\n\r\n");
}

static void watch_end(int fd) {
        send_str(fd, "0\r\n\r\n");
}

/* Keeps a watch open until the test ends or the client goes (at most 30 s). */
static void watch_hold(int fd) {
        for (int i = 0; i < 600 && !atomic_load(&srv.stop); i++) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, 50) > 0) {
                        char b[256];
                        if (recv(fd, b, sizeof b, 0) <= 0)
                                return;
                }
        }
}

static void *conn_main(void *p) {
        int fd = (int)(intptr_t)p;
        char req[8192];
        size_t n = 0;
        while (n < sizeof req - 1) {
                ssize_t k = recv(fd, req + n, sizeof req - 1 - n, 0);
                if (k <= 0)
                        break;
                n += (size_t)k;
                req[n] = 0;
                if (strstr(req, "\r\n\r\n"))
                        break;
        }
        req[n] = 0;
        char *sp = strchr(req, ' ');
        char *end = sp ? strchr(sp + 1, ' ') : NULL;
        if (sp && end) {
                *end = 0;
                const char *q = strchr(sp + 1, '?');
                q = q ? q + 1 : "";
                bool watch = strstr(q, "watch=1") != NULL;
                unsigned k = watch ? atomic_fetch_add(&srv.watches, 1) + 1
                                   : atomic_fetch_add(&srv.lists, 1) + 1;
                srv.serve(fd, watch, k, q);
        }
        shutdown(fd, SHUT_RDWR);
        close(fd);
        return NULL;
}

static void *accept_main(void *p) {
        (void)p;
        while (!atomic_load(&srv.stop)) {
                struct pollfd pfd = {.fd = srv.fd, .events = POLLIN};
                if (poll(&pfd, 1, 50) <= 0)
                        continue;
                int c = accept4(srv.fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        continue;
                unsigned i = atomic_load(&srv.n_conns);
                if (i >= MAX_CONNS ||
                    pthread_create(&srv.conns[i], NULL, conn_main, (void *)(intptr_t)c) != 0) {
                        close(c); /* bounded: the client retries */
                        continue;
                }
                atomic_store(&srv.n_conns, i + 1);
        }
        return NULL;
}

static void server_start(serve_fn fn) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof a;
        srv.serve = fn;
        atomic_store(&srv.stop, false);
        atomic_store(&srv.lists, 0);
        atomic_store(&srv.watches, 0);
        atomic_store(&srv.n_conns, 0);
        srv.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(srv.fd >= 0);
        assert_int_equal(bind(srv.fd, (struct sockaddr *)&a, sizeof a), 0);
        assert_int_equal(listen(srv.fd, 64), 0);
        assert_int_equal(getsockname(srv.fd, (struct sockaddr *)&a, &len), 0);
        srv.port = ntohs(a.sin_port);
        assert_int_equal(pthread_create(&srv.thread, NULL, accept_main, NULL), 0);
}

static void server_stop(void) {
        atomic_store(&srv.stop, true);
        pthread_join(srv.thread, NULL);
        for (unsigned i = 0; i < atomic_load(&srv.n_conns); i++)
                pthread_join(srv.conns[i], NULL);
        close(srv.fd);
}

/* --- the client side ------------------------------------------------------------- */

static sd_event *event;
static koc_cluster_config *cfg;
static koc_client *client;
static koc_metrics *metrics;
static koc_cache *cache;

/* Warn lines of the reflector and the client. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char warns[16384];

static void on_log(int level, const char *component, const char *message, void *userdata) {
        (void)userdata;
        if (level != KOC_LOG_WARN)
                return;
        pthread_mutex_lock(&log_lock);
        size_t n = strlen(warns);
        snprintf(warns + n, sizeof warns - n, "%s: %s\n", component, message);
        pthread_mutex_unlock(&log_lock);
}

static unsigned count_warns(const char *needle) {
        unsigned n = 0;
        pthread_mutex_lock(&log_lock);
        for (const char *p = warns; (p = strstr(p, needle)); p++)
                n++;
        pthread_mutex_unlock(&log_lock);
        return n;
}

static void client_open(void) {
        char kc[] = "/tmp/koc-test-informer-hostile-XXXXXX";
        int fd = mkstemp(kc);
        assert_true(fd >= 0);
        char *yaml = NULL;
        int len = asprintf(&yaml,
                           "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
                           "clusters:\n- name: t\n  cluster:\n    server: http://127.0.0.1:%d\n"
                           "contexts:\n- name: t\n  context: {cluster: t, user: t}\n"
                           "users:\n- name: t\n  user: {}\n",
                           srv.port);
        assert_true(len > 0);
        assert_int_equal(write(fd, yaml, (size_t)len), len);
        close(fd);
        free(yaml);
        koc_error err = {0};
        assert_int_equal(sd_event_new(&event), 0);
        int r = koc_cluster_config_from_kubeconfig(kc, NULL, &cfg, &err);
        unlink(kc);
        if (r < 0)
                fail_msg("kubeconfig: %s", err.message);
        assert_int_equal(koc_client_new(event, cfg, &client), 0);
        assert_int_equal(koc_metrics_new(&metrics), 0);
        assert_int_equal(koc__cache_new(client, metrics, &cache), 0);
        pthread_mutex_lock(&log_lock);
        warns[0] = 0;
        pthread_mutex_unlock(&log_lock);
        koc_log_set_handler(on_log, NULL, NULL);
}

static void client_close(void) {
        cache = koc__cache_free(cache);
        client = koc_client_unref(client);
        cfg = koc_cluster_config_unref(cfg);
        (void)sd_event_run(event, 0);
        event = sd_event_unref(event);
        metrics = koc_metrics_unref(metrics);
        koc_log_set_handler(NULL, NULL, NULL);
}

/* Runs the loop until cond(arg) holds or `usec` passed; returns cond's value. */
static bool run_until(bool (*cond)(void *), void *arg, uint64_t usec) {
        uint64_t end = koc_now_boottime_usec() + usec;
        while (!(cond && cond(arg)) && koc_now_boottime_usec() < end)
                assert_true(sd_event_run(event, 20 * KOC_USEC_PER_MSEC) >= 0);
        return cond && cond(arg);
}

static const koc_resource configmaps = {
        .version = "v1", .resource = "configmaps", .kind = "ConfigMap", .namespaced = true};

typedef struct seen {
        koc_informer *inf;
        unsigned adds, updates, deletes;
        char deleted[256];
} seen;

static void on_add(koc_object *o, void *userdata) {
        ((seen *)userdata)->adds++;
}

static void on_update(koc_object *old, koc_object *o, void *userdata) {
        ((seen *)userdata)->updates++;
}

static void on_delete(koc_object *o, void *userdata) {
        seen *s = userdata;
        s->deletes++;
        size_t n = strlen(s->deleted);
        snprintf(s->deleted + n, sizeof s->deleted - n, "%s ", koc_object_get_name(o));
}

/* opts NULL: paginated lists (most cases here script list pages); the
 * streaming cases pass their own. */
static void informer_open(seen *s, const koc_informer_opts *opts) {
        static const koc_informer_handler h = {
                .on_add = on_add, .on_update = on_update, .on_delete = on_delete};
        static const koc_informer_opts pages = {.list_mode = KOC_LIST_PAGES};
        if (!opts)
                opts = &pages;
        memset(s, 0, sizeof *s);
        assert_int_equal(koc__informer_get(cache, client, &configmaps, "ns", NULL, NULL, opts,
                                           metrics, &s->inf, NULL),
                         0);
        assert_int_equal(koc__informer_add_handler(s->inf, &h, s), 0);
}

static char *rv_of(seen *s, const char *key) {
        koc_object *o = koc__store_get(koc__informer_get_store(s->inf), key);
        char *rv = o ? strdup(koc_object_get_resource_version(o)) : NULL;
        koc_object_unref(o);
        return rv;
}

static double rejected_metric(const char *reason) {
        char *text = NULL, needle[128];
        size_t len = 0;
        double v = -1;
        assert_int_equal(koc_metrics_render(metrics, &text, &len), 0);
        snprintf(needle, sizeof needle, "reason=\"%s\"", reason);
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
                if (strncmp(line, "koc_informer_rejected_answers_total{", 36) == 0 &&
                    strstr(line, needle))
                        v = strtod(strrchr(line, ' ') + 1, NULL);
        free(text);
        return v;
}

static koc_reflector_stats stats_of(seen *s) {
        koc_reflector_stats st;
        koc__informer_get_stats(s->inf, &st);
        return st;
}

#define ITEM(name, rv, v)                                                                          \
        "{\"metadata\":{\"name\":\"" name "\",\"namespace\":\"ns\",\"resourceVersion\":\"" rv      \
        "\"},\"data\":{\"v\":\"" v "\"}}"

/* --- a re-list is authoritative ---------------------------------------------------- */

static void serve_restore(int fd, bool watch, unsigned n, const char *q) {
        if (!watch && n == 1) /* before the restore */
                send_list(fd, "101", NULL, ITEM("a", "100", "new") "," ITEM("b", "101", "x"));
        else if (!watch) /* the server was restored from an older snapshot */
                send_list(fd, "6", NULL, ITEM("a", "5", "restored"));
        else if (n == 1) {
                watch_begin(fd);
                watch_event(fd, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
                                "\"reason\":\"Expired\",\"message\":\"too old\"}}");
                watch_end(fd);
        } else {
                watch_begin(fd);
                watch_hold(fd);
        }
}

static bool restored(void *p) {
        seen *s = p;
        char *rv = rv_of(s, "ns/a");
        bool done = rv && strcmp(rv, "5") == 0 && s->deletes > 0;
        free(rv);
        return done;
}

static void test_relist_is_authoritative(void **state) {
        seen s;
        server_start(serve_restore);
        client_open();
        informer_open(&s, NULL);
        bool ok = run_until(restored, &s, 10 * KOC_USEC_PER_SEC);
        char *rv = rv_of(&s, "ns/a");
        print_message("after the re-list: a at %s, deleted: %s\n", rv ? rv : "(none)", s.deleted);
        assert_true(ok);
        assert_string_equal(rv, "5");
        free(rv);
        /* The object the re-list did not have is gone, with its event. */
        assert_null(koc__store_get(koc__informer_get_store(s.inf), "ns/b"));
        assert_string_equal(s.deleted, "b ");
        assert_int_equal(s.adds, 2);
        assert_int_equal(s.updates, 1);
        assert_int_equal(stats_of(&s).relists_gone, 1);
        koc__informer_unref(s.inf);
        client_close();
        server_stop();
}

/* --- streaming lists (the default) ------------------------------------------------ */

#define BOOKMARK_END(rv)                                                                           \
        "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\","       \
        "\"metadata\":{\"resourceVersion\":\"" rv "\",\"annotations\":{"                        \
        "\"k8s.io/initial-events-end\":\"true\"}}}}"
#define ADDED(item) "{\"type\":\"ADDED\",\"object\":" item "}"

static atomic_bool end_marker_sent;
static atomic_bool release_end_marker;

/* A WatchList server: the initial events, then (once the test lets it) the
 * end marker; a request without sendInitialEvents is a plain watch. */
static void serve_stream(int fd, bool watch, unsigned n, const char *q) {
        if (!watch) {
                send_list(fd, "9", NULL, ITEM("z", "9", "listed"));
                return;
        }
        watch_begin(fd);
        if (strstr(q, "sendInitialEvents=true") && strstr(q, "resourceVersionMatch=NotOlderThan") &&
            strstr(q, "allowWatchBookmarks=true")) {
                watch_event(fd, ADDED(ITEM("a", "3", "1")));
                watch_event(fd, ADDED(ITEM("b", "4", "1")));
                for (int i = 0; i < 200 && !atomic_load(&release_end_marker); i++)
                        usleep(10000);
                watch_event(fd, BOOKMARK_END("5"));
                atomic_store(&end_marker_sent, true);
        }
        watch_hold(fd);
}

static bool two_cached(void *p) {
        seen *s = p;
        return koc__store_count(koc__informer_get_store(s->inf)) == 2;
}

static bool synced(void *p) {
        seen *s = p;
        return koc__informer_has_synced(s->inf);
}

/* With no options an informer streams: no list request; the initial events
 * reach the cache and the handlers as they arrive, before the end marker;
 * "synced" only at the marker. */
static void test_stream_default(void **state) {
        seen s;
        atomic_store(&end_marker_sent, false);
        atomic_store(&release_end_marker, false);
        server_start(serve_stream);
        client_open();
        memset(&s, 0, sizeof s);
        assert_int_equal(koc__informer_get(cache, client, &configmaps, "ns", NULL, NULL, NULL,
                                           metrics, &s.inf, NULL),
                         0);
        static const koc_informer_handler h = {
                .on_add = on_add, .on_update = on_update, .on_delete = on_delete};
        assert_int_equal(koc__informer_add_handler(s.inf, &h, &s), 0);
        assert_true(run_until(two_cached, &s, 10 * KOC_USEC_PER_SEC));
        /* Applied as they arrived: the server holds the marker back. */
        assert_false(atomic_load(&end_marker_sent));
        assert_false(koc__informer_has_synced(s.inf));
        assert_int_equal(s.adds, 2);
        atomic_store(&release_end_marker, true);
        assert_true(run_until(synced, &s, 10 * KOC_USEC_PER_SEC));
        koc_reflector_stats st = stats_of(&s);
        assert_int_equal(st.streams_done, 1);
        assert_int_equal(st.list_requests, 0);
        assert_int_equal(atomic_load(&srv.lists), 0);
        assert_int_equal(koc__store_count(koc__informer_get_store(s.inf)), 2);
        char *rv = rv_of(&s, "ns/b");
        assert_string_equal(rv, "4");
        free(rv);
        koc__informer_unref(s.inf);
        client_close();
        server_stop();
}

/* A server that refuses the streaming list (422, the WatchList gate off):
 * the informer lists with pages from then on, and says so once. */
static void serve_no_stream(int fd, bool watch, unsigned n, const char *q) {
        if (watch && strstr(q, "sendInitialEvents=true")) {
                send_json(fd, 422,
                          "{\"kind\":\"Status\",\"code\":422,\"reason\":\"Invalid\",\"message\":"
                          "\"resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden "
                          "for watch\"}");
                return;
        }
        if (!watch) {
                send_list(fd, "9", NULL, ITEM("a", "8", "1") "," ITEM("b", "9", "1"));
                return;
        }
        watch_begin(fd);
        watch_hold(fd);
}

static void test_stream_refused_falls_back(void **state) {
        seen s;
        server_start(serve_no_stream);
        client_open();
        memset(&s, 0, sizeof s);
        assert_int_equal(koc__informer_get(cache, client, &configmaps, "ns", NULL, NULL, NULL,
                                           metrics, &s.inf, NULL),
                         0);
        assert_true(run_until(synced, &s, 10 * KOC_USEC_PER_SEC));
        koc_reflector_stats st = stats_of(&s);
        assert_true(st.stream_unsupported);
        assert_int_equal(st.streams_done, 0);
        assert_int_equal(st.lists, 1);
        assert_int_equal(atomic_load(&srv.lists), 1);
        assert_int_equal(koc__store_count(koc__informer_get_store(s.inf)), 2);
        /* Not a failure: no warn line. */
        assert_int_equal(count_warns("answer rejected"), 0);
        koc__informer_unref(s.inf);
        client_close();
        server_stop();
}

/* A streaming re-list is authoritative: after a 410 the second stream (a
 * server restored from an older snapshot) replaces what it sent, whatever
 * the resourceVersions, and what it did not send is removed at its end
 * marker, not before. */
static void serve_stream_restore(int fd, bool watch, unsigned n, const char *q) {
        if (!watch) {
                send_json(fd, 500, "{}"); /* never a list */
                return;
        }
        watch_begin(fd);
        if (n == 1) {
                watch_event(fd, ADDED(ITEM("a", "100", "new")));
                watch_event(fd, ADDED(ITEM("b", "101", "x")));
                watch_event(fd, BOOKMARK_END("101"));
                usleep(200000);
                watch_event(fd, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
                                "\"reason\":\"Expired\",\"message\":\"too old\"}}");
                watch_end(fd);
                return;
        }
        if (n == 2) {
                watch_event(fd, ADDED(ITEM("a", "5", "restored")));
                for (int i = 0; i < 200 && !atomic_load(&release_end_marker); i++)
                        usleep(10000);
                watch_event(fd, BOOKMARK_END("6"));
        }
        watch_hold(fd);
}

static bool a_restored(void *p) {
        char *rv = rv_of(p, "ns/a");
        bool done = rv && strcmp(rv, "5") == 0;
        free(rv);
        return done;
}

static bool b_gone(void *p) {
        return ((seen *)p)->deletes > 0;
}

static void test_stream_relist_is_authoritative(void **state) {
        seen s;
        atomic_store(&release_end_marker, false);
        server_start(serve_stream_restore);
        client_open();
        informer_open(&s, &(koc_informer_opts){.list_mode = KOC_LIST_STREAM});
        assert_true(run_until(a_restored, &s, 10 * KOC_USEC_PER_SEC));
        /* b is still there until the second stream's end marker. */
        koc_object *b = koc__store_get(koc__informer_get_store(s.inf), "ns/b");
        assert_non_null(b);
        koc_object_unref(b);
        assert_int_equal(s.deletes, 0);
        atomic_store(&release_end_marker, true);
        assert_true(run_until(b_gone, &s, 10 * KOC_USEC_PER_SEC));
        assert_null(koc__store_get(koc__informer_get_store(s.inf), "ns/b"));
        assert_string_equal(s.deleted, "b ");
        assert_int_equal(s.adds, 2);
        assert_int_equal(s.updates, 1);
        koc_reflector_stats st = stats_of(&s);
        assert_int_equal(st.relists_gone, 1);
        assert_int_equal(st.streams_done, 2);
        assert_int_equal(atomic_load(&srv.lists), 0);
        koc__informer_unref(s.inf);
        client_close();
        server_stop();
}

/* --- own writes during a re-list ---------------------------------------------------- */

/* The re-list's answer waits until the test has applied its own writes: they
 * are answered after the list request went out, and the list's snapshot
 * (resourceVersion 11) predates them. */
static atomic_bool release_list;

static void serve_slow_relist(int fd, bool watch, unsigned n, const char *q) {
        if (!watch && n == 1) {
                send_list(fd, "10", NULL, ITEM("a", "10", "old") "," ITEM("b", "10", "old"));
        } else if (!watch) {
                for (int i = 0; i < 500 && !atomic_load(&release_list); i++)
                        usleep(10000); /* at most 5 s */
                send_list(fd, "11", NULL, ITEM("a", "10", "old") "," ITEM("b", "10", "old"));
        } else if (n == 1) {
                watch_begin(fd);
                watch_event(fd, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
                                "\"reason\":\"Expired\",\"message\":\"too old\"}}");
                watch_end(fd);
        } else {
                watch_begin(fd);
                watch_hold(fd);
        }
}

static bool relist_sent(void *p) {
        (void)p;
        return atomic_load(&srv.lists) >= 2;
}

static bool listed_twice(void *p) {
        return stats_of(p).lists >= 2;
}

/* A write and a deletion of this process, answered after the re-list's
 * request was sent and before its page arrived: the older listed objects
 * neither replace the write nor bring the deleted object back. */
static void test_own_writes_during_relist(void **state) {
        seen s;
        atomic_store(&release_list, false);
        server_start(serve_slow_relist);
        client_open();
        informer_open(&s, NULL);
        assert_true(run_until(relist_sent, NULL, 10 * KOC_USEC_PER_SEC));
        assert_int_equal(stats_of(&s).lists, 1);
        cJSON *w = cJSON_Parse(ITEM("a", "12", "mine"));
        assert_non_null(w);
        koc__informer_apply_write(s.inf, w);
        cJSON_Delete(w);
        koc__informer_apply_delete(s.inf, "ns/b", NULL); /* a Status answer */
        assert_int_equal(s.deletes, 1);
        atomic_store(&release_list, true);
        assert_true(run_until(listed_twice, &s, 10 * KOC_USEC_PER_SEC));
        char *rv = rv_of(&s, "ns/a");
        koc_object *b = koc__store_get(koc__informer_get_store(s.inf), "ns/b");
        print_message("after the re-list: a at %s, b %s\n", rv ? rv : "(none)",
                      b ? "back" : "gone");
        assert_string_equal(rv, "12");
        free(rv);
        assert_null(b);
        koc_object_unref(b);
        assert_int_equal(s.adds, 2); /* the first list's */
        assert_int_equal(s.deletes, 1);
        koc__informer_unref(s.inf);
        client_close();
        server_stop();
}

/* --- 410 again and again ------------------------------------------------------------- */

/* Every watch ends at once with 410, as from a server whose watch cache
 * cannot serve what its own lists say. */
static void serve_gone_always(int fd, bool watch, unsigned n, const char *q) {
        if (!watch) {
                send_list(fd, "10", NULL, ITEM("a", "10", "x"));
                return;
        }
        watch_begin(fd);
        watch_event(fd, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
                        "\"reason\":\"Expired\",\"message\":\"too old resource version\"}}");
        watch_end(fd);
}

static void test_repeated_gone_backs_off(void **state) {
        seen s;
        server_start(serve_gone_always);
        client_open();
        informer_open(&s, NULL);
        run_until(NULL, NULL, 2500 * KOC_USEC_PER_MSEC);
        koc_reflector_stats st = stats_of(&s);
        unsigned lists = atomic_load(&srv.lists);
        print_message("2.5 s of 410s: %u lists, %u re-lists on 410, %.0f counted as gone\n", lists,
                      st.relists_gone, rejected_metric("gone"));
        /* At once after the first 410, then 0.8-1.6 s, then 1.6-3.2 s. */
        assert_true(lists >= 2);
        assert_true(lists <= 4);
        assert_true(st.rejected[KOC_REFLECTOR_REJECT_GONE] >= 1);
        assert_true(rejected_metric("gone") >= 1);
        assert_true(count_warns("GET " PATH " (watch) reason=gone status=410") >= 1);
        /* The cache holds the list's object through it all. */
        char *rv = rv_of(&s, "ns/a");
        assert_string_equal(rv, "10");
        free(rv);
        koc__informer_unref(s.inf);
        client_close();
        server_stop();
}

/* --- a watch event of an unknown type ---------------------------------------------- */

static void serve_unknown_type(int fd, bool watch, unsigned n, const char *q) {
        if (!watch) {
                send_list(fd, "10", NULL, "");
                return;
        }
        watch_begin(fd);
        watch_event(fd, "{\"type\":\"FUTURE\",\"object\":{\"metadata\":{\"name\":\"x\","
                        "\"namespace\":\"ns\",\"resourceVersion\":\"11\"}}}");
        watch_event(fd, "{\"type\":\"ADDED\",\"object\":" ITEM("c", "12", "1") "}");
        watch_hold(fd);
}

static bool has_c(void *p) {
        char *rv = rv_of(p, "ns/c");
        free(rv);
        return rv != NULL;
}

static void test_unknown_event_type_skipped(void **state) {
        seen s;
        server_start(serve_unknown_type);
        client_open();
        informer_open(&s, NULL);
        assert_true(run_until(has_c, &s, 10 * KOC_USEC_PER_SEC));
        run_until(NULL, NULL, 300 * KOC_USEC_PER_MSEC);
        /* One watch: the event did not end it. */
        assert_int_equal(stats_of(&s).watches, 1);
        assert_int_equal(atomic_load(&srv.watches), 1);
        assert_null(koc__store_get(koc__informer_get_store(s.inf), "ns/x"));
        assert_int_equal(count_warns("unknown type \"FUTURE\""), 1);
        koc__informer_unref(s.inf);
        client_close();
        server_stop();
}

/* --- lists without end ------------------------------------------------------------- */

/* The same continue token on every page. */
static void serve_same_token(int fd, bool watch, unsigned n, const char *q) {
        char item[256];
        if (watch) {
                watch_begin(fd);
                watch_hold(fd);
                return;
        }
        snprintf(item, sizeof item,
                 "{\"metadata\":{\"name\":\"o-%u\",\"namespace\":\"ns\",\"resourceVersion\":\"%u\"}}",
                 n, n);
        send_list(fd, "1", "same-token", item);
}

static void test_continue_loop_abandoned(void **state) {
        seen s;
        server_start(serve_same_token);
        client_open();
        informer_open(&s, NULL);
        run_until(NULL, NULL, 2500 * KOC_USEC_PER_MSEC);
        koc_reflector_stats st = stats_of(&s);
        print_message("%u list requests, %u abandoned, %zu cached\n", st.list_requests,
                      st.lists_abandoned, koc__store_count(koc__informer_get_store(s.inf)));
        /* Nothing of the looping list reached the cache or the handlers. */
        assert_int_equal(koc__store_count(koc__informer_get_store(s.inf)), 0);
        assert_int_equal(s.adds, 0);
        assert_false(koc__informer_has_synced(s.inf));
        /* Each attempt stops at the first repeat (two pages), with backoff. */
        assert_true(st.lists_abandoned >= 1);
        assert_true(st.list_requests <= 2 * (st.lists_abandoned + 1));
        assert_int_equal(st.rejected[KOC_REFLECTOR_REJECT_CONTINUE_LOOP], st.lists_abandoned);
        assert_true(rejected_metric("continue_loop") >= 1);
        assert_true(count_warns("GET " PATH " (list page) reason=continue_loop") >= 1);
        koc__informer_unref(s.inf);
        client_close();
        server_stop();
}

/* A new token on every page, ten objects each: the pages never end. */
static void serve_endless_pages(int fd, bool watch, unsigned n, const char *q) {
        char items[4096] = "", cont[32];
        if (watch) {
                watch_begin(fd);
                watch_hold(fd);
                return;
        }
        for (int i = 0; i < 10; i++) {
                size_t l = strlen(items);
                snprintf(items + l, sizeof items - l,
                         "%s{\"metadata\":{\"name\":\"o-%u-%d\",\"namespace\":\"ns\","
                         "\"resourceVersion\":\"%u\"}}",
                         i ? "," : "", n, i, n);
        }
        snprintf(cont, sizeof cont, "t-%u", n);
        send_list(fd, "1", cont, items);
}

static void test_list_object_cap(void **state) {
        seen s;
        server_start(serve_endless_pages);
        client_open();
        informer_open(&s, &(koc_informer_opts){.list_mode = KOC_LIST_PAGES, .max_list_objects = 55});
        run_until(NULL, NULL, 2500 * KOC_USEC_PER_MSEC);
        koc_reflector_stats st = stats_of(&s);
        print_message("%u list requests, %u abandoned\n", st.list_requests, st.lists_abandoned);
        assert_int_equal(koc__store_count(koc__informer_get_store(s.inf)), 0);
        assert_int_equal(s.adds, 0);
        assert_true(st.lists_abandoned >= 1);
        /* Six pages (60 objects) reach the cap, a seventh may be in flight. */
        assert_true(st.list_requests <= 7 * (st.lists_abandoned + 1));
        assert_int_equal(st.rejected[KOC_REFLECTOR_REJECT_LIST_TOO_LARGE], st.lists_abandoned);
        assert_true(rejected_metric("list_too_large") >= 1);
        assert_true(count_warns("more than 55 objects") >= 1);
        koc__informer_unref(s.inf);
        client_close();
        server_stop();
}

/* Three pages of ten, then the end: over a cap of 1000 bytes. */
static void serve_three_pages(int fd, bool watch, unsigned n, const char *q) {
        unsigned page = strstr(q, "continue=t-2") ? 3 : strstr(q, "continue=t-1") ? 2 : 1;
        char items[4096] = "", cont[32] = "";
        if (watch) {
                watch_begin(fd);
                watch_hold(fd);
                return;
        }
        for (int i = 0; i < 10; i++) {
                size_t l = strlen(items);
                snprintf(items + l, sizeof items - l,
                         "%s{\"metadata\":{\"name\":\"o-%u-%d\",\"namespace\":\"ns\","
                         "\"resourceVersion\":\"7\"},\"data\":{\"k\":\"0123456789\"}}",
                         i ? "," : "", page, i);
        }
        if (page < 3)
                snprintf(cont, sizeof cont, "t-%u", page);
        send_list(fd, "7", cont, items);
}

static void test_list_byte_cap(void **state) {
        seen s;
        server_start(serve_three_pages);
        client_open();
        informer_open(&s, &(koc_informer_opts){.list_mode = KOC_LIST_PAGES, .max_list_bytes = 1000});
        run_until(NULL, NULL, 2 * KOC_USEC_PER_SEC);
        koc_reflector_stats st = stats_of(&s);
        assert_int_equal(koc__store_count(koc__informer_get_store(s.inf)), 0);
        assert_false(koc__informer_has_synced(s.inf));
        assert_true(st.lists_abandoned >= 1);
        assert_int_equal(st.lists, 0);
        assert_true(rejected_metric("list_too_large") >= 1);
        assert_true(count_warns("max_list_bytes") >= 1);
        koc__informer_unref(s.inf);
        client_close();
        server_stop();

        /* The same list under the default caps fills the cache. */
        server_start(serve_three_pages);
        client_open();
        informer_open(&s, NULL);
        assert_true(run_until((bool (*)(void *))koc__informer_has_synced, s.inf,
                              10 * KOC_USEC_PER_SEC));
        assert_int_equal(koc__store_count(koc__informer_get_store(s.inf)), 30);
        assert_int_equal(s.adds, 30);
        koc__informer_unref(s.inf);
        client_close();
        server_stop();
}

/* --- every rejected answer is said --------------------------------------------------- */

/* One of each, then a good list; the first watch gets an ERROR 500 event. */
static void serve_bad_answers(int fd, bool watch, unsigned n, const char *q) {
        if (watch && n == 1) {
                watch_begin(fd);
                watch_event(fd, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":500,"
                                "\"reason\":\"InternalError\",\"message\":\"etcd is sad\"}}");
                watch_end(fd);
                return;
        }
        if (watch) {
                watch_begin(fd);
                watch_hold(fd);
                return;
        }
        switch (n) {
        case 1: /* cut in the middle of the JSON */
                send_json(fd, 200, "{\"kind\":\"ConfigMapList\",\"items\":[{\"metadata\":");
                return;
        case 2: { /* deeper than any parser should follow */
                char deep[4100];
                memset(deep, '[', 2048);
                memset(deep + 2048, ']', 2048);
                deep[4096] = 0;
                send_json(fd, 200, deep);
                return;
        }
        case 3: /* a body without end */
                send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
                for (int i = 0; i < 4096 && !atomic_load(&srv.stop); i++) {
                        char chunk[1100];
                        snprintf(chunk, sizeof chunk, "400\r\n%01024d\r\n", 0);
                        if (send(fd, chunk, strlen(chunk), MSG_NOSIGNAL) < 0)
                                return;
                }
                return;
        case 4:
                send_json(fd, 500, "{\"kind\":\"Status\",\"code\":500,\"reason\":\"InternalError\","
                                   "\"message\":\"storage is down\"}");
                return;
        default:
                send_list(fd, "3", NULL, ITEM("a", "3", "1"));
        }
}

static void on_begin(void *userdata) {
}

static int on_item(cJSON *o, void *userdata) {
        return 0;
}

static void on_end(const char *rv, void *userdata) {
        (*(unsigned *)userdata)++;
}

static bool watched_twice(void *p) {
        return atomic_load(&srv.watches) >= 2;
}

static void test_rejected_answers_said(void **state) {
        unsigned lists = 0;
        koc_reflector *r = NULL;
        server_start(serve_bad_answers);
        client_open();
        koc_client_set_max_response_size(client, 64 * 1024);
        assert_int_equal(
                koc__reflector_new(client,
                                   &(koc_reflector_spec){.path = PATH,
                                                         .backoff_initial_usec = 10000,
                                                         .backoff_max_usec = 50000},
                                   &(koc_reflector_handlers){.list_begin = on_begin,
                                                             .list_item = on_item,
                                                             .list_end = on_end},
                                   &lists, &r),
                0);
        assert_int_equal(koc__reflector_start(r), 0);
        assert_true(run_until(watched_twice, NULL, 10 * KOC_USEC_PER_SEC));
        koc_reflector_stats st;
        koc__reflector_get_stats(r, &st);
        pthread_mutex_lock(&log_lock);
        print_message("%s", warns);
        pthread_mutex_unlock(&log_lock);
        assert_int_equal(lists, 1);
        assert_int_equal(st.rejected[KOC_REFLECTOR_REJECT_INVALID], 2);
        assert_int_equal(st.rejected[KOC_REFLECTOR_REJECT_TOO_LARGE], 1);
        assert_int_equal(st.rejected[KOC_REFLECTOR_REJECT_STATUS], 1);
        assert_int_equal(st.rejected[KOC_REFLECTOR_REJECT_ERROR_EVENT], 1);
        /* One warn line each, with the request and the reason. */
        assert_int_equal(count_warns("GET " PATH " (list) reason=invalid status=200"), 2);
        assert_int_equal(count_warns("GET " PATH " (list) reason=too_large"), 1);
        assert_int_equal(count_warns("GET " PATH " (list) reason=status status=500: storage is down"),
                         1);
        assert_int_equal(count_warns("GET " PATH " (watch) reason=error_event status=500: etcd is sad"),
                         1);
        koc__reflector_free(r);
        client_close();
        server_stop();
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_relist_is_authoritative),
                cmocka_unit_test(test_stream_default),
                cmocka_unit_test(test_stream_refused_falls_back),
                cmocka_unit_test(test_stream_relist_is_authoritative),
                cmocka_unit_test(test_unknown_event_type_skipped),
                cmocka_unit_test(test_continue_loop_abandoned),
                cmocka_unit_test(test_list_object_cap),
                cmocka_unit_test(test_list_byte_cap),
                cmocka_unit_test(test_rejected_answers_said),
                cmocka_unit_test(test_own_writes_during_relist),
                cmocka_unit_test(test_repeated_gone_backs_off),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Exec credential plugins (users[].user.exec), ExecCredential
 * client.authentication.k8s.io/v1 and v1beta1.
 *
 * The plugin runs without a shell (posix_spawnp), with stdin on /dev/null,
 * its own environment entries added to ours, and KUBERNETES_EXEC_INFO set as
 * client-go does (with spec.cluster when the kubeconfig asks for
 * provideClusterInfo).  Its output is bounded (1 MiB on stdout, the last 512 bytes
 * of stderr are kept for the error message) and so is its run time (10 s,
 * then SIGKILL to its process group).
 *
 * A run is asynchronous on an sd-event loop: I/O sources read its stdout and
 * stderr, a CLOCK_BOOTTIME timer bounds it, and the process's exit is seen
 * through a pidfd I/O source (an sd-event child source when pidfds are not
 * available: that one needs SIGCHLD blocked in every thread, which a library
 * cannot demand of its program).  The API client runs plugins this way, so a
 * slow plugin never stalls the loop that renews the Lease.  The synchronous
 * koc__exec_credential_run(), used while a kubeconfig is loaded, runs the same
 * code on a private loop.
 */
#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cluster-config.h"
#include "koc/log.h"
#include "koc/time.h"
#include "ratelimit.h"
#include "util.h"

#define EXEC_TIMEOUT_USEC (10 * KOC_USEC_PER_SEC)
#define EXEC_STDOUT_MAX (1024 * 1024)
#define EXEC_STDERR_KEEP 512

extern char **environ;

void koc__exec_config_free(koc_exec_config *e) {
        if (!e)
                return;
        free(e->command);
        if (e->argv)
                for (char **a = e->argv; *a; a++)
                        free(*a);
        free(e->argv);
        for (size_t i = 0; i < e->n_env; i++) {
                free(e->env[i].name);
                if (e->env[i].value)
                        OPENSSL_cleanse(e->env[i].value, strlen(e->env[i].value));
                free(e->env[i].value);
        }
        free(e->env);
        free(e->api_version);
        free(e->cluster_json);
        free(e->install_hint);
        free(e->where);
        free(e);
}

static void strv_free(char **v) {
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

/* environ, minus the names the plugin config sets, plus those entries and
 * KUBERNETES_EXEC_INFO. */
static char **build_env(const koc_exec_config *e) {
        size_t n = 0;
        for (char **p = environ; p && *p; p++)
                n++;
        char **v = calloc(n + e->n_env + 2, sizeof(char *));
        if (!v)
                return NULL;
        size_t k = 0;
        for (char **p = environ; p && *p; p++) {
                const char *eq = strchr(*p, '=');
                size_t nl = eq ? (size_t)(eq - *p) : strlen(*p);
                bool overridden = nl == strlen("KUBERNETES_EXEC_INFO") &&
                                  strncmp(*p, "KUBERNETES_EXEC_INFO", nl) == 0;
                for (size_t i = 0; i < e->n_env && !overridden; i++)
                        if (strlen(e->env[i].name) == nl && strncmp(*p, e->env[i].name, nl) == 0)
                                overridden = true;
                if (!overridden && !(v[k++] = strdup(*p)))
                        goto fail;
        }
        for (size_t i = 0; i < e->n_env; i++)
                if (asprintf(&v[k++], "%s=%s", e->env[i].name, e->env[i].value) < 0) {
                        v[k - 1] = NULL;
                        goto fail;
                }
        if (asprintf(&v[k++],
                     "KUBERNETES_EXEC_INFO={\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","
                     "\"spec\":{%s%s%s\"interactive\":false}}",
                     e->api_version, e->cluster_json ? "\"cluster\":" : "",
                     e->cluster_json ? e->cluster_json : "", e->cluster_json ? "," : "") < 0) {
                v[k - 1] = NULL;
                goto fail;
        }
        return v;
fail:
        strv_free(v);
        return NULL;
}

typedef struct exec_output {
        char *out;
        size_t out_len;
        char err[EXEC_STDERR_KEEP + 1];
        size_t err_len;
        bool out_overflow;
} exec_output;

static void keep_stderr(exec_output *o, const char *buf, size_t n) {
        if (n >= EXEC_STDERR_KEEP) {
                memcpy(o->err, buf + n - EXEC_STDERR_KEEP, EXEC_STDERR_KEEP);
                o->err_len = EXEC_STDERR_KEEP;
        } else {
                if (o->err_len + n > EXEC_STDERR_KEEP) {
                        size_t drop = o->err_len + n - EXEC_STDERR_KEEP;
                        memmove(o->err, o->err + drop, o->err_len - drop);
                        o->err_len -= drop;
                }
                memcpy(o->err + o->err_len, buf, n);
                o->err_len += n;
        }
        o->err[o->err_len] = '\0';
}

static int spawn_plugin(const koc_exec_config *e, pid_t *ret_pid, int *ret_out, int *ret_err) {
        int out[2] = {-1, -1}, errp[2] = {-1, -1};
        int r = 0;
        char **env = NULL;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        bool fa_init = false, attr_init = false;

        if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
                r = -errno;
                goto out;
        }
        env = build_env(e);
        if (!env) {
                r = -ENOMEM;
                goto out;
        }
        if ((r = -posix_spawn_file_actions_init(&fa)) < 0)
                goto out;
        fa_init = true;
        if ((r = -posix_spawnattr_init(&attr)) < 0)
                goto out;
        attr_init = true;
        if ((r = -posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) < 0 ||
            (r = -posix_spawn_file_actions_adddup2(&fa, out[1], 1)) < 0 ||
            (r = -posix_spawn_file_actions_adddup2(&fa, errp[1], 2)) < 0)
                goto out;
        /* The loop thread usually blocks signals (sd-event); the plugin
         * must start with a clean mask and default handlers. */
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        sigdelset(&all, SIGKILL);
        sigdelset(&all, SIGSTOP);
        /* Its own process group, so that a timeout kills what it started too. */
        if ((r = -posix_spawnattr_setpgroup(&attr, 0)) < 0 ||
            (r = -posix_spawnattr_setsigmask(&attr, &none)) < 0 ||
            (r = -posix_spawnattr_setsigdefault(&attr, &all)) < 0 ||
            (r = -posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                                          POSIX_SPAWN_SETPGROUP)) < 0)
                goto out;
        pid_t pid;
        r = -posix_spawnp(&pid, e->command, &fa, &attr, e->argv, env);
        if (r < 0)
                goto out;
        *ret_pid = pid;
        *ret_out = out[0];
        *ret_err = errp[0];
        out[0] = errp[0] = -1;
out:
        if (fa_init)
                posix_spawn_file_actions_destroy(&fa);
        if (attr_init)
                posix_spawnattr_destroy(&attr);
        strv_free(env);
        for (int i = 0; i < 2; i++) {
                if (out[i] >= 0)
                        close(out[i]);
                if (errp[i] >= 0)
                        close(errp[i]);
        }
        return r;
}

int koc__exec_credential_parse(const koc_exec_config *e, const char *text, char **ret_token,
                               uint64_t *ret_expiry, koc_error *err) {
        /* One JSON value and nothing after it but white space, as
         * client-go's decoder demands. */
        cJSON *j = cJSON_ParseWithOpts(text, NULL, true);
        if (!j)
                return koc_error_set(err, -EBADMSG, "%s: %s: output is not JSON", e->where,
                                     e->command);
        int r = 0;
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(j, "kind");
        const cJSON *api = cJSON_GetObjectItemCaseSensitive(j, "apiVersion");
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(j, "status");
        const cJSON *token = cJSON_GetObjectItemCaseSensitive(status, "token");
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(status, "expirationTimestamp");
        uint64_t expiry = 0;
        if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "ExecCredential") != 0)
                r = koc_error_set(err, -EBADMSG, "%s: %s: output: kind is not \"ExecCredential\"",
                                  e->where, e->command);
        else if (!cJSON_IsString(api) || strcmp(api->valuestring, e->api_version) != 0)
                r = koc_error_set(err, -EBADMSG,
                                  "%s: %s: output: apiVersion is not \"%s\" as configured",
                                  e->where, e->command, e->api_version);
        else if (!cJSON_IsObject(status))
                r = koc_error_set(err, -EBADMSG, "%s: %s: output: status: missing", e->where,
                                  e->command);
        else if (!cJSON_IsString(token) || !koc__token_is_valid(token->valuestring))
                r = koc_error_set(err, -EBADMSG,
                                  "%s: %s: output: status.token: missing or invalid (client "
                                  "certificates from exec plugins are not supported)",
                                  e->where, e->command);
        else if (exp && !cJSON_IsNull(exp) &&
                 (!cJSON_IsString(exp) || koc_parse_rfc3339(exp->valuestring, &expiry) < 0))
                r = koc_error_set(err, -EBADMSG,
                                  "%s: %s: output: status.expirationTimestamp: not an RFC 3339 "
                                  "time",
                                  e->where, e->command);
        if (r == 0) {
                *ret_token = strdup(token->valuestring);
                if (!*ret_token)
                        r = koc_error_set(err, -ENOMEM, "out of memory");
                else
                        *ret_expiry = expiry;
        }
        if (r == 0 && (cJSON_GetObjectItemCaseSensitive(status, "clientCertificateData") ||
                       cJSON_GetObjectItemCaseSensitive(status, "clientKeyData"))) {
                /* client-go would present it too; say that koc does not. */
                static koc__ratelimit rl = KOC__RATELIMIT_INIT(60 * KOC_USEC_PER_SEC, 1);
                koc__log_ratelimited(&rl, KOC_LOG_WARN, "config",
                                     "%s: %s: output: status.clientCertificateData and "
                                     "clientKeyData ignored (client certificates from exec "
                                     "plugins are not supported); using status.token",
                                     e->where, e->command);
        }
        if (cJSON_IsString(token))
                OPENSSL_cleanse(token->valuestring, strlen(token->valuestring));
        cJSON_Delete(j);
        return r;
}

/* --- the asynchronous run ------------------------------------------------ */

struct koc_exec_run {
        sd_event *event;
        const koc_exec_config *e;
        koc_exec_done_t done;
        void *userdata;

        pid_t pid; /* -1 once reaped */
        int pidfd;
        int out_fd, err_fd;
        sd_event_source *out_source, *err_source, *exit_source, *timer;
        exec_output o;
        size_t out_cap;
        uint64_t timeout_usec;
        int failure;        /* -ETIMEDOUT, -EFBIG, -ENOMEM: the plugin was killed for it */
        int status;         /* waitpid status once reaped */
        uint64_t poll_usec; /* without a pidfd: the next waitpid poll */
        bool finished;
};

static void run_close_pipe(sd_event_source **s, int *fd) {
        *s = sd_event_source_disable_unref(*s);
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

/* The message and code of a finished run, as the synchronous runner always
 * reported them. */
static int run_result(koc_exec_run *run, char **ret_token, uint64_t *ret_expiry, koc_error *err) {
        const koc_exec_config *e = run->e;
        exec_output *o = &run->o;
        int status = run->status;

        if (run->failure == -ETIMEDOUT) {
                char d[32];
                return koc_error_set(err, -ETIMEDOUT, "%s: \"%s\" did not finish within %s; killed",
                                     e->where, e->command,
                                     koc_format_duration(run->timeout_usec, d, sizeof d));
        }
        if (run->failure == -EFBIG)
                return koc_error_set(err, -EFBIG, "%s: \"%s\" wrote more than 1 MiB", e->where,
                                     e->command);
        if (run->failure < 0)
                return koc_error_set(err, run->failure, "%s: \"%s\": %s", e->where, e->command,
                                     strerror(-run->failure));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                /* One line of stderr for the message. */
                for (char *c = o->err; *c; c++)
                        if (*c == '\n' || *c == '\r')
                                *c = ' ';
                if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && !o->err[0])
                        return koc_error_set(err, -ENOENT,
                                             "%s: cannot run \"%s\" (exit status 127: not found?)",
                                             e->where, e->command);
                if (WIFEXITED(status))
                        return koc_error_set(err, -EPERM, "%s: \"%s\" exited with status %d: %s",
                                             e->where, e->command, WEXITSTATUS(status), o->err);
                return koc_error_set(err, -EPERM, "%s: \"%s\" was killed by signal %d", e->where,
                                     e->command, WTERMSIG(status));
        }
        if (!o->out || o->out_len != strlen(o->out))
                return koc_error_set(err, -EBADMSG, "%s: \"%s\" wrote no usable output", e->where,
                                     e->command);
        return koc__exec_credential_parse(e, o->out, ret_token, ret_expiry, err);
}

static void run_kill(koc_exec_run *run, int why);

/* Reports once the process is reaped and both pipes are closed (at EOF, or
 * early when the plugin was killed). */
static void run_maybe_finish(koc_exec_run *run) {
        if (run->finished || run->out_fd >= 0 || run->err_fd >= 0)
                return;
        if (run->pid >= 0) {
                if (run->pidfd < 0 && run->exit_source)
                        (void)sd_event_source_set_enabled(run->exit_source, SD_EVENT_ONESHOT);
                return;
        }
        run->finished = true;
        run->timer = sd_event_source_disable_unref(run->timer);
        char *token = NULL;
        uint64_t expiry = 0;
        koc_error err = {0};
        int r = run_result(run, &token, &expiry, &err);
        /* The handler may free the run: nothing touches it afterwards. */
        run->done(r, r < 0 ? NULL : token, expiry, &err, run->userdata);
}

static void run_kill(koc_exec_run *run, int why) {
        if (run->failure == 0)
                run->failure = why;
        if (run->pid > 0)
                (void)kill(-run->pid, SIGKILL);
        /* Whatever it wrote no longer matters, and a grandchild outside the
         * group could hold the pipes open. */
        run_close_pipe(&run->out_source, &run->out_fd);
        run_close_pipe(&run->err_source, &run->err_fd);
        run_maybe_finish(run);
}

static void run_reaped(koc_exec_run *run, int status) {
        run->status = status;
        run->pid = -1;
        run->exit_source = sd_event_source_disable_unref(run->exit_source);
        if (run->pidfd >= 0)
                close(run->pidfd);
        run->pidfd = -1;
        run_maybe_finish(run);
}

static int on_run_exit_pidfd(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        koc_exec_run *run = userdata;
        int status = 0;
        pid_t p;
        while ((p = waitpid(run->pid, &status, WNOHANG)) < 0 && errno == EINTR)
                ;
        if (p == 0)
                return 0; /* not yet: the pidfd reports only exits, so this is rare */
        run_reaped(run, p < 0 ? W_EXITCODE(255, 0) : status);
        return 0;
}

/* Without a pidfd: polled, from the moment both pipes are closed (which is
 * when a plugin normally exits), with a growing interval. */
static int on_run_exit_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        koc_exec_run *run = userdata;
        int status = 0;
        pid_t p;
        while ((p = waitpid(run->pid, &status, WNOHANG)) < 0 && errno == EINTR)
                ;
        if (p != 0) {
                run_reaped(run, p < 0 ? W_EXITCODE(255, 0) : status);
                return 0;
        }
        if (run->poll_usec < 100 * KOC_USEC_PER_MSEC)
                run->poll_usec *= 2;
        if (sd_event_source_set_time_relative(s, run->poll_usec) < 0 ||
            sd_event_source_set_enabled(s, SD_EVENT_ONESHOT) < 0)
                run_kill(run, -ENOMEM);
        return 0;
}

static int on_run_output(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        koc_exec_run *run = userdata;
        exec_output *o = &run->o;
        bool is_out = fd == run->out_fd;
        char buf[4096];

        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return 0;
        if (n <= 0) {
                if (is_out)
                        run_close_pipe(&run->out_source, &run->out_fd);
                else
                        run_close_pipe(&run->err_source, &run->err_fd);
                run_maybe_finish(run);
                return 0;
        }
        if (!is_out) {
                keep_stderr(o, buf, (size_t)n);
                return 0;
        }
        if (o->out_len + (size_t)n > EXEC_STDOUT_MAX) {
                o->out_overflow = true;
                run_kill(run, -EFBIG);
                return 0;
        }
        if (o->out_len + (size_t)n + 1 > run->out_cap) {
                size_t ncap = run->out_cap ? run->out_cap * 2 : 8192;
                while (ncap < o->out_len + (size_t)n + 1)
                        ncap *= 2;
                char *q = realloc(o->out, ncap);
                if (!q) {
                        run_kill(run, -ENOMEM);
                        return 0;
                }
                o->out = q;
                run->out_cap = ncap;
        }
        memcpy(o->out + o->out_len, buf, (size_t)n);
        o->out_len += (size_t)n;
        o->out[o->out_len] = '\0';
        return 0;
}

static int on_run_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        koc_exec_run *run = userdata;
        run_kill(run, -ETIMEDOUT);
        /* Reported once the killed process is reaped, so that no run leaves
         * a zombie behind; SIGKILL makes that prompt. */
        return 0;
}

static int run_watch_exit(koc_exec_run *run) {
        run->pidfd = (int)syscall(SYS_pidfd_open, run->pid, 0);
        if (run->pidfd >= 0)
                return sd_event_add_io(run->event, &run->exit_source, run->pidfd, EPOLLIN,
                                       on_run_exit_pidfd, run);
        /* Kernels before 5.3 (and valgrind) have no pidfd_open. */
        run->poll_usec = KOC_USEC_PER_MSEC;
        int r = sd_event_add_time_relative(run->event, &run->exit_source, CLOCK_BOOTTIME,
                                           run->poll_usec, 0, on_run_exit_poll, run);
        if (r >= 0)
                r = sd_event_source_set_enabled(run->exit_source, SD_EVENT_OFF);
        return r;
}

koc_exec_run *koc__exec_run_free(koc_exec_run *run) {
        if (!run)
                return NULL;
        if (run->pid > 0) {
                /* Cancelled while running: killed, and reaped at once (SIGKILL
                 * makes the wait short) so that no zombie is left. */
                (void)kill(-run->pid, SIGKILL);
                while (waitpid(run->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        run_close_pipe(&run->out_source, &run->out_fd);
        run_close_pipe(&run->err_source, &run->err_fd);
        sd_event_source_disable_unref(run->exit_source);
        sd_event_source_disable_unref(run->timer);
        if (run->pidfd >= 0)
                close(run->pidfd);
        if (run->o.out) {
                OPENSSL_cleanse(run->o.out, run->o.out_len);
                free(run->o.out);
        }
        sd_event_unref(run->event);
        free(run);
        return NULL;
}

static int run_setup(koc_exec_run *run) {
        int r;
        if (fcntl(run->out_fd, F_SETFL, O_NONBLOCK) < 0 ||
            fcntl(run->err_fd, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        r = sd_event_add_io(run->event, &run->out_source, run->out_fd, EPOLLIN, on_run_output, run);
        if (r < 0)
                return r;
        r = sd_event_add_io(run->event, &run->err_source, run->err_fd, EPOLLIN, on_run_output, run);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(run->event, &run->timer, CLOCK_BOOTTIME, run->timeout_usec,
                                       KOC_USEC_PER_MSEC, on_run_timeout, run);
        if (r < 0)
                return r;
        r = run_watch_exit(run);
        if (r < 0)
                return r;
        (void)sd_event_source_set_description(run->out_source, "koc-exec-stdout");
        (void)sd_event_source_set_description(run->err_source, "koc-exec-stderr");
        (void)sd_event_source_set_description(run->timer, "koc-exec-timeout");
        (void)sd_event_source_set_description(run->exit_source, "koc-exec-exit");
        return 0;
}

int koc__exec_credential_start(sd_event *event, const koc_exec_config *e, koc_exec_done_t done,
                               void *userdata, koc_exec_run **ret, koc_error *err) {
        int r = 0;

        assert(event && e && done && ret);
        /* For a path, say plainly when it cannot be run (posix_spawnp
         * reports that only as exit status 127 in some environments). */
        if (strchr(e->command, '/') && access(e->command, X_OK) < 0)
                r = -errno;
        koc_exec_run *run = NULL;
        if (r == 0) {
                run = calloc(1, sizeof *run);
                if (!run)
                        r = -ENOMEM;
        }
        if (r == 0) {
                *run = (koc_exec_run){
                        .event = sd_event_ref(event),
                        .e = e,
                        .done = done,
                        .userdata = userdata,
                        .pid = -1,
                        .pidfd = -1,
                        .out_fd = -1,
                        .err_fd = -1,
                        .timeout_usec = e->timeout_usec ? e->timeout_usec : EXEC_TIMEOUT_USEC,
                };
                r = spawn_plugin(e, &run->pid, &run->out_fd, &run->err_fd);
        }
        if (r < 0) {
                koc__exec_run_free(run);
                return koc_error_set(err, r, "%s: cannot run \"%s\": %s%s%s", e->where, e->command,
                                     strerror(-r), e->install_hint ? ". " : "",
                                     e->install_hint ? e->install_hint : "");
        }
        r = run_setup(run);
        if (r < 0) {
                koc__exec_run_free(run);
                return koc_error_set(err, r, "%s: \"%s\": cannot watch the plugin: %s", e->where,
                                     e->command, strerror(-r));
        }
        *ret = run;
        return 0;
}

/* --- the synchronous run -------------------------------------------------- */

typedef struct sync_run {
        bool done;
        int r;
        char *token;
        uint64_t expiry;
        koc_error err;
} sync_run;

static void on_sync_done(int r, char *token, uint64_t expiry, const koc_error *err,
                         void *userdata) {
        sync_run *s = userdata;
        s->done = true;
        s->r = r;
        s->token = token;
        s->expiry = expiry;
        if (r < 0)
                s->err = *err;
}

int koc__exec_credential_run(const koc_exec_config *e, char **ret_token, uint64_t *ret_expiry,
                            koc_error *err) {
        sd_event *event = NULL;
        koc_exec_run *run = NULL;
        sync_run s = {0};

        int r = sd_event_new(&event);
        if (r < 0)
                return koc_error_set(err, r, "%s: \"%s\": %s", e->where, e->command, strerror(-r));
        r = koc__exec_credential_start(event, e, on_sync_done, &s, &run, err);
        if (r < 0) {
                sd_event_unref(event);
                return r;
        }
        /* The run's own timer bounds this loop. */
        while (r >= 0 && !s.done)
                r = sd_event_run(event, UINT64_MAX);
        koc__exec_run_free(run);
        sd_event_unref(event);
        if (!s.done)
                return koc_error_set(err, r, "%s: \"%s\": %s", e->where, e->command, strerror(-r));
        if (s.r < 0) {
                if (err)
                        *err = s.err;
                return s.r;
        }
        *ret_token = s.token;
        *ret_expiry = s.expiry;
        return 0;
}

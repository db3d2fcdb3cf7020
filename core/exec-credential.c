/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Exec credential plugins (users[].user.exec), ExecCredential
 * client.authentication.k8s.io/v1 and v1beta1.
 *
 * The plugin runs without a shell (posix_spawnp), with stdin on /dev/null,
 * its own environment entries added to ours, and KUBERNETES_EXEC_INFO set as
 * client-go does.  Its output is bounded (1 MiB on stdout, the last 512 bytes
 * of stderr are kept for the error message) and so is its run time (10 s,
 * then SIGKILL).  The run is synchronous: it happens at load time and when
 * the credential has expired or was rejected (401), so the loop can stall
 * for at most those 10 s in the worst case; plugins normally answer from a
 * cache in milliseconds.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cluster-config.h"
#include "koc/log.h"
#include "koc/time.h"
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
                     "\"spec\":{\"interactive\":false}}",
                     e->api_version) < 0) {
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

/* Reads both pipes until EOF on both or the deadline; returns -ETIMEDOUT on
 * the deadline. */
static int collect(int out_fd, int err_fd, uint64_t timeout_usec, exec_output *o) {
        uint64_t deadline = koc_now_boottime_usec() + timeout_usec;
        size_t cap = 0;
        struct pollfd p[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};
        while (p[0].fd >= 0 || p[1].fd >= 0) {
                uint64_t now = koc_now_boottime_usec();
                if (now >= deadline)
                        return -ETIMEDOUT;
                int ms = (int)((deadline - now + 999) / 1000);
                int k = poll(p, 2, ms);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                for (int i = 0; i < 2; i++) {
                        if (p[i].fd < 0 || !p[i].revents)
                                continue;
                        char buf[4096];
                        ssize_t n = read(p[i].fd, buf, sizeof buf);
                        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (n <= 0) {
                                p[i].fd = -1;
                                continue;
                        }
                        if (i == 1) {
                                keep_stderr(o, buf, (size_t)n);
                                continue;
                        }
                        if (o->out_len + (size_t)n > EXEC_STDOUT_MAX) {
                                o->out_overflow = true;
                                return -EFBIG;
                        }
                        if (o->out_len + (size_t)n + 1 > cap) {
                                size_t ncap = cap ? cap * 2 : 8192;
                                while (ncap < o->out_len + (size_t)n + 1)
                                        ncap *= 2;
                                char *q = realloc(o->out, ncap);
                                if (!q)
                                        return -ENOMEM;
                                o->out = q;
                                cap = ncap;
                        }
                        memcpy(o->out + o->out_len, buf, (size_t)n);
                        o->out_len += (size_t)n;
                        o->out[o->out_len] = '\0';
                }
        }
        return 0;
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

static int parse_credential(const koc_exec_config *e, const char *text, char **ret_token,
                            uint64_t *ret_expiry, koc_error *err) {
        cJSON *j = cJSON_Parse(text);
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
        if (cJSON_IsString(token))
                OPENSSL_cleanse(token->valuestring, strlen(token->valuestring));
        cJSON_Delete(j);
        return r;
}

int koc__exec_credential_run(const koc_exec_config *e, char **ret_token, uint64_t *ret_expiry,
                            koc_error *err) {
        pid_t pid = -1;
        int out_fd = -1, err_fd = -1;
        int r = 0;
        /* For a path, say plainly when it cannot be run (posix_spawnp
         * reports that only as exit status 127 in some environments). */
        if (strchr(e->command, '/') && access(e->command, X_OK) < 0)
                r = -errno;
        if (r == 0)
                r = spawn_plugin(e, &pid, &out_fd, &err_fd);
        if (r < 0)
                return koc_error_set(err, r, "%s: cannot run \"%s\": %s%s%s", e->where, e->command,
                                     strerror(-r), e->install_hint ? ". " : "",
                                     e->install_hint ? e->install_hint : "");
        exec_output o = {0};
        uint64_t timeout = e->timeout_usec ? e->timeout_usec : EXEC_TIMEOUT_USEC;
        r = collect(out_fd, err_fd, timeout, &o);
        close(out_fd);
        close(err_fd);
        if (r < 0)
                (void)kill(-pid, SIGKILL);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (r == -ETIMEDOUT) {
                char d[32];
                r = koc_error_set(err, r, "%s: \"%s\" did not finish within %s; killed", e->where,
                                  e->command, koc_format_duration(timeout, d, sizeof d));
        } else if (r == -EFBIG)
                r = koc_error_set(err, r, "%s: \"%s\" wrote more than 1 MiB", e->where, e->command);
        else if (r < 0)
                r = koc_error_set(err, r, "%s: \"%s\": %s", e->where, e->command, strerror(-r));
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                /* One line of stderr for the message. */
                for (char *c = o.err; *c; c++)
                        if (*c == '\n' || *c == '\r')
                                *c = ' ';
                if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && !o.err[0])
                        r = koc_error_set(err, -ENOENT,
                                          "%s: cannot run \"%s\" (exit status 127: not found?)",
                                          e->where, e->command);
                else if (WIFEXITED(status))
                        r = koc_error_set(err, -EPERM, "%s: \"%s\" exited with status %d: %s",
                                          e->where, e->command, WEXITSTATUS(status), o.err);
                else
                        r = koc_error_set(err, -EPERM, "%s: \"%s\" was killed by signal %d",
                                          e->where, e->command, WTERMSIG(status));
        } else if (!o.out || o.out_len != strlen(o.out))
                r = koc_error_set(err, -EBADMSG, "%s: \"%s\" wrote no usable output", e->where,
                                  e->command);
        else
                r = parse_credential(e, o.out, ret_token, ret_expiry, err);
        if (o.out) {
                OPENSSL_cleanse(o.out, o.out_len);
                free(o.out);
        }
        return r;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Test harness: runs koc-apiserver as a child process (see apiserver.h). */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness/apiserver.h"

#define MAX_ARGS 64

static void sleep_ms(long ms) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static const char *server_path(void) {
        const char *env = getenv("KOC_APISERVER");
        if (env && *env)
                return env;
#ifdef KOC_APISERVER_PATH
        return KOC_APISERVER_PATH;
#else
        return NULL;
#endif
}

static void remove_dir(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *e;
        char path[600];

        if (!d)
                return;
        while ((e = readdir(d))) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                        continue;
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                unlink(path);
        }
        closedir(d);
        rmdir(dir);
}

/* Reads "key: value" from the kubeconfig koc-apiserver writes (one value per
 * line, in the layout main.c writes). */
static int read_field(const char *file, const char *key, char *buf, size_t size) {
        FILE *f = fopen(file, "re");
        char line[8192];
        size_t klen = strlen(key);
        int r = -ENOENT;

        if (!f)
                return -errno;
        while (fgets(line, sizeof line, f)) {
                char *p = line;
                while (*p == ' ' || *p == '-')
                        p++;
                if (strncmp(p, key, klen) == 0 && p[klen] == ':' && p[klen + 1] == ' ') {
                        p += klen + 2;
                        p[strcspn(p, "\r\n")] = 0;
                        if (strlen(p) >= size) {
                                r = -ENAMETOOLONG;
                                break;
                        }
                        strcpy(buf, p);
                        r = 0;
                        break;
                }
        }
        fclose(f);
        return r;
}

bool koc_test_on_real_server(void) {
        const char *e = getenv("KOC_K8S_ENV");
        return e && *e;
}

/* Reads KEY=value from the env file tests/k8s/env.sh writes. */
static int read_env(const char *file, const char *key, char *buf, size_t size) {
        FILE *f = fopen(file, "re");
        char line[1024];
        size_t klen = strlen(key);
        int r = -ENOENT;

        if (!f)
                return -errno;
        while (fgets(line, sizeof line, f))
                if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
                        char *v = line + klen + 1;
                        v[strcspn(v, "\r\n")] = 0;
                        r = strlen(v) < size ? 0 : -ENAMETOOLONG;
                        if (r == 0)
                                strcpy(buf, v);
                        break;
                }
        fclose(f);
        return r;
}

static int attach_real(koc_test_apiserver *s, const char *dir) {
        char env[400];
        static const char *const reset[] = {
                "/apis/coordination.k8s.io/v1/namespaces/default/leases",
                "/api/v1/namespaces/default/configmaps",
        };

        snprintf(env, sizeof env, "%s/env", dir);
        snprintf(s->kubeconfig, sizeof s->kubeconfig, "%s/admin.kubeconfig", dir);
        snprintf(s->user_kubeconfig, sizeof s->user_kubeconfig, "%s/user.kubeconfig", dir);
        if (read_env(env, "KOC_K8S_URL", s->url, sizeof s->url) < 0 ||
            read_env(env, "KOC_K8S_ADMIN_TOKEN", s->token, sizeof s->token) < 0 ||
            read_env(env, "KOC_K8S_USER_TOKEN", s->user_token, sizeof s->user_token) < 0 ||
            read_env(env, "KOC_K8S_CA", s->ca_file, sizeof s->ca_file) < 0) {
                fprintf(stderr, "harness: KOC_K8S_ENV=%s: no usable %s (start it with "
                                "tests/k8s/env.sh start %s)\n",
                        dir, env, dir);
                return -ENOENT;
        }
        s->real = true;
        /* The real server keeps its state across test cases: start each from
         * an empty default namespace, as a fresh koc-apiserver would. */
        for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++) {
                long code = koc_test_apiserver_http(s, "DELETE", reset[i], NULL, NULL, NULL);
                if (code != 200) {
                        fprintf(stderr, "harness: DELETE %s%s: %ld\n", s->url, reset[i], code);
                        return code < 0 ? (int)code : -EIO;
                }
        }
        /* Deletion of a collection is acknowledged before the objects are gone. */
        for (int tries = 0; tries < 500; tries++) {
                char *body = NULL;
                bool empty = true;
                for (size_t i = 0; i < sizeof reset / sizeof reset[0] && empty; i++) {
                        if (koc_test_apiserver_http(s, "GET", reset[i], NULL, NULL, &body) != 200 ||
                            !strstr(body, "\"items\":[]"))
                                empty = false;
                        free(body);
                        body = NULL;
                }
                if (empty)
                        return 0;
                sleep_ms(10);
        }
        return -ETIMEDOUT;
}

int koc_test_apiserver_start(koc_test_apiserver *s, const char *extra_args) {
        const char *path = server_path();
        const char *tmp = getenv("TMPDIR");
        char *argv[MAX_ARGS + 1], *extra = NULL, *wrapper = NULL;
        const char *wrap_env = getenv("KOC_APISERVER_WRAPPER");
        size_t argc = 0;

        memset(s, 0, sizeof *s);
        s->pid = -1;
        if (koc_test_on_real_server()) {
                curl_global_init(CURL_GLOBAL_DEFAULT);
                return attach_real(s, getenv("KOC_K8S_ENV"));
        }
        if (!path)
                return -ENOENT;
        curl_global_init(CURL_GLOBAL_DEFAULT);
        snprintf(s->dir, sizeof s->dir, "%s/koc-apiserver-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(s->dir))
                return -errno;
        snprintf(s->kubeconfig, sizeof s->kubeconfig, "%s/kubeconfig", s->dir);
        snprintf(s->ca_file, sizeof s->ca_file, "%s/ca.crt", s->dir);

        if (wrap_env && *wrap_env) {
                wrapper = strdup(wrap_env);
                if (!wrapper) {
                        remove_dir(s->dir);
                        return -ENOMEM;
                }
                for (char *save = NULL, *t = strtok_r(wrapper, " ", &save); t && argc < 16;
                     t = strtok_r(NULL, " ", &save))
                        argv[argc++] = t;
        }
        argv[argc++] = (char *)path;
        argv[argc++] = (char *)"--listen";
        argv[argc++] = (char *)"127.0.0.1:0";
        argv[argc++] = (char *)"--kubeconfig-out";
        argv[argc++] = s->kubeconfig;
        argv[argc++] = (char *)"--ca-out";
        argv[argc++] = s->ca_file;
        if (extra_args) {
                extra = strdup(extra_args);
                if (!extra) {
                        free(wrapper);
                        remove_dir(s->dir);
                        return -ENOMEM;
                }
                for (char *save = NULL, *t = strtok_r(extra, " ", &save); t;
                     t = strtok_r(NULL, " ", &save)) {
                        if (argc == MAX_ARGS) {
                                free(wrapper);
                                free(extra);
                                remove_dir(s->dir);
                                return -E2BIG;
                        }
                        argv[argc++] = t;
                }
        }
        argv[argc] = NULL;

        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
                int r = -errno;
                free(wrapper);
                free(extra);
                remove_dir(s->dir);
                return r;
        }
        if (pid == 0) {
                sigset_t none;
                /* Never outlive the test, even when it aborts. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                execvp(argv[0], argv);
                _exit(127);
        }
        free(wrapper);
        free(extra);
        s->pid = pid;

        /* The kubeconfig appears (atomically) once the server serves. */
        for (int i = 0; i < 3000; i++) {
                int status;
                if (access(s->kubeconfig, F_OK) == 0)
                        break;
                if (waitpid(pid, &status, WNOHANG) == pid) {
                        s->pid = -1;
                        s->exit_status =
                                WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                        remove_dir(s->dir);
                        return -ECHILD;
                }
                sleep_ms(10);
        }
        if (access(s->kubeconfig, F_OK) != 0 ||
            read_field(s->kubeconfig, "server", s->url, sizeof s->url) < 0 ||
            read_field(s->kubeconfig, "token", s->token, sizeof s->token) < 0) {
                koc_test_apiserver_stop(s);
                return -ETIMEDOUT;
        }
        return 0;
}

void koc_test_apiserver_stop(koc_test_apiserver *s) {
        if (s->pid > 0) {
                int status = 0;
                bool gone = false;
                const char *wrap = getenv("KOC_APISERVER_WRAPPER");
                /* A wrapped server (valgrind) needs longer to exit. */
                int tries = wrap && *wrap ? 6000 : 500;
                kill(s->pid, SIGTERM);
                for (int i = 0; i < tries && !gone; i++) {
                        if (waitpid(s->pid, &status, WNOHANG) == s->pid)
                                gone = true;
                        else
                                sleep_ms(10);
                }
                if (!gone) {
                        kill(s->pid, SIGKILL);
                        waitpid(s->pid, &status, 0);
                }
                s->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                if (s->exit_status != 0)
                        fprintf(stderr, "koc-apiserver exited with status %d\n", s->exit_status);
                s->pid = -1;
        }
        if (s->dir[0]) {
                remove_dir(s->dir);
                s->dir[0] = 0;
        }
}

size_t koc_test_buffer_write(char *ptr, size_t size, size_t n, void *userdata) {
        koc_test_buffer *b = userdata;
        size_t add = size * n;
        char *d = realloc(b->data, b->len + add + 1);
        if (!d)
                return 0;
        memcpy(d + b->len, ptr, add);
        b->data = d;
        b->len += add;
        b->data[b->len] = 0;
        return add;
}

long koc_test_apiserver_http(koc_test_apiserver *s, const char *method, const char *path,
                             const char *body, const char *content_type, char **ret_body) {
        CURL *c = curl_easy_init();
        struct curl_slist *headers = NULL;
        char auth[200], ct[200], url[1024];
        koc_test_buffer b = {0};
        long code = -EIO;

        if (!c)
                return -ENOMEM;
        snprintf(url, sizeof url, "%s%s", s->url, path);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", s->token);
        headers = curl_slist_append(headers, auth);
        if (body) {
                snprintf(ct, sizeof ct, "Content-Type: %s",
                         content_type ? content_type : "application/json");
                headers = curl_slist_append(headers, ct);
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        }
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, koc_test_buffer_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        CURLcode cr = curl_easy_perform(c);
        if (cr == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        else
                code = cr == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
        curl_slist_free_all(headers);
        curl_easy_cleanup(c);
        if (ret_body && code >= 0)
                *ret_body = b.data ? b.data : strdup("");
        else
                free(b.data);
        return code;
}

int koc_test_apiserver_fault(koc_test_apiserver *s, const char *json_rule) {
        if (s->real)
                return -EOPNOTSUPP;
        return (int)koc_test_apiserver_http(s, "POST", "/admin/faults", json_rule,
                                            "application/json", NULL);
}

int koc_test_apiserver_clear_faults(koc_test_apiserver *s) {
        if (s->real)
                return 200;
        return (int)koc_test_apiserver_http(s, "DELETE", "/admin/faults", NULL, NULL, NULL);
}

double koc_test_apiserver_metric(koc_test_apiserver *s, const char *prefix) {
        char *body = NULL;
        double sum = 0;
        size_t plen = strlen(prefix);

        if (koc_test_apiserver_http(s, "GET", "/metrics", NULL, NULL, &body) != 200) {
                free(body);
                return -1;
        }
        for (char *save = NULL, *line = strtok_r(body, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                if (line[0] == '#' || strncmp(line, prefix, plen) != 0)
                        continue;
                char *sp = strrchr(line, ' ');
                if (sp)
                        sum += strtod(sp + 1, NULL);
        }
        free(body);
        return sum;
}

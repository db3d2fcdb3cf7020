/* SPDX-License-Identifier: Apache-2.0 */
/* Private side of the cluster configuration: the object both loaders
 * (kubeconfig.c, cluster-config.c) fill in, and the exec credential runner. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "config-internal.h"

/* Bounds on what koc reads from files: a kubeconfig, a token file, a PEM file. */
#define KOC_KUBECONFIG_MAX (4u * 1024u * 1024u)
#define KOC_TOKEN_MAX (64u * 1024u)
#define KOC_TOKEN_REFRESH_USEC (60 * KOC_USEC_PER_SEC)
#define KOC_EXEC_RETRY_USEC (5 * KOC_USEC_PER_SEC)

typedef struct koc_blob {
        unsigned char *data;
        size_t size;
} koc_blob;

enum koc_token_kind {
        KOC_TOKEN_NONE = 0,
        KOC_TOKEN_STATIC, /* users[].user.token */
        KOC_TOKEN_FILE,   /* users[].user.tokenFile or the service-account token */
        KOC_TOKEN_EXEC,   /* users[].user.exec */
};

typedef struct koc_exec_env {
        char *name;
        char *value;
} koc_exec_env;

/* users[].user.exec, as read from the kubeconfig. */
typedef struct koc_exec_config {
        char *command;
        char **argv; /* argv[0] is command; NULL-terminated */
        size_t n_args;
        koc_exec_env *env;
        size_t n_env;
        char *api_version;
        char *install_hint;    /* shown when the command cannot be run */
        uint64_t timeout_usec; /* 0: 10 s */
        bool provide_cluster_info;
        char *cluster_json;    /* provideClusterInfo: spec.cluster, as JSON */
        char *where;           /* "/path/kubeconfig: users[0].user.exec", for errors */
} koc_exec_config;

struct koc_cluster_config {
        atomic_uint n_ref;

        char *server; /* the URL base requests are built from */
        char *source; /* file path or "in-cluster" */
        char *namespace;
        bool tls;                      /* https:// */
        bool insecure;                 /* insecure-skip-tls-verify: true */
        struct curl_slist *connect_to; /* tls-server-name routing, see set_server */

        char *proxy;              /* CURLOPT_PROXY (proxy-url); NULL: libcurl's default */
        bool proxy_tls;           /* an https:// proxy */
        bool disable_compression; /* no Accept-Encoding: gzip */
        /* Header lines every request carries (Impersonate-User, -Uid,
         * -Group, -Extra-KEY), in the order client-go adds them. */
        struct curl_slist *headers;
        char *username; /* basic auth (username/password): both set, or neither */
        char *password;

        char *ca_file;
        koc_blob ca_data;
        char *cert_file;
        koc_blob cert_data;
        char *key_file;
        koc_blob key_data;

        enum koc_token_kind token_kind;
        char *token;                /* current bearer token (NULL: none yet) */
        char *token_file;           /* KOC_TOKEN_FILE */
        uint64_t token_read_usec;   /* clock reading of the last (attempted) re-read */
        uint64_t token_expiry_usec; /* exec: realtime usec, 0 = never */
        bool token_invalidated;
        char *auth_header;

        koc_exec_config *exec;
        int exec_errno;   /* the last plugin run failed with it, or 0 */
        char *exec_error; /* and this message */

        uint64_t (*now)(void *userdata);
        void *now_userdata;
};

koc_cluster_config *koc__cluster_config_alloc(void);

/* Parses and checks server (https:// or http://), applies tls_server_name
 * (may be NULL).  where names the file and field for errors. */
int koc__cluster_config_set_server(koc_cluster_config *cfg, const char *server,
                                  const char *tls_server_name, const char *where, koc_error *err);

/* Reads a whole regular file of at most max bytes; the result is
 * NUL-terminated (size excludes the NUL).  Negative errno on failure. */
int koc__read_file_bounded(const char *path, size_t max, char **ret, size_t *ret_size);

/* Reads a bearer token file: trims surrounding whitespace, rejects empty
 * tokens and control characters.  *ret_why gets a static reason on failure. */
int koc__read_token_file(const char *path, char **ret, const char **ret_why);

/* Checks that a token may go into an HTTP header. */
bool koc__token_is_valid(const char *token);

/* Exec credential plugins (exec-credential.c). */
void koc__exec_config_free(koc_exec_config *e);

/* Reads a plugin's output (text, NUL-terminated): an ExecCredential of e's
 * apiVersion with a valid status.token and an optional RFC 3339
 * status.expirationTimestamp.  On success the token (the caller's to free)
 * and the expiry (realtime usec, 0 = none); -EBADMSG with err's message
 * otherwise.  tests/fuzz/fuzz-exec-credential.c feeds it hostile output. */
int koc__exec_credential_parse(const koc_exec_config *e, const char *text, char **ret_token,
                               uint64_t *ret_expiry, koc_error *err);

/* One asynchronous run of a plugin on an sd-event loop. */
typedef struct koc_exec_run koc_exec_run;
/* r: 0 with token (the callee owns it) and expiry (realtime usec, 0 = none),
 * or a negative errno with err's message naming the kubeconfig field and the
 * command.  Runs from one of the run's sources, never inside
 * koc__exec_credential_start(); it may free the run. */
typedef void (*koc_exec_done_t)(int r, char *token, uint64_t expiry, const koc_error *err,
                                void *userdata);
/* Starts the plugin (bounded as koc__exec_credential_run()).  e must outlive
 * the run.  Fails (with err set) when the plugin cannot be started. */
int koc__exec_credential_start(sd_event *event, const koc_exec_config *e, koc_exec_done_t done,
                               void *userdata, koc_exec_run **ret, koc_error *err);
/* Frees the run; a plugin still running is killed (and reaped), and done is
 * not called. */
koc_exec_run *koc__exec_run_free(koc_exec_run *run);
/* Runs the plugin (bounded: 10 s, 1 MiB of output), and on success returns the
 * token and its expiry (realtime usec, 0 = none). */
int koc__exec_credential_run(const koc_exec_config *e, char **ret_token, uint64_t *ret_expiry,
                            koc_error *err);

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc/config.h: where the Kubernetes API is and how to authenticate to it.
 *
 * koc_cluster_config_load() follows controller-runtime's order: an explicit
 * kubeconfig path (the --kubeconfig flag), then $KUBECONFIG (a colon-separated
 * list, merged like kubectl: the first file to set a key wins), then the
 * in-cluster service account, then ~/.kube/config.
 *
 *   _koc_cleanup_(koc_cluster_config_unrefp) koc_cluster_config *cfg = NULL;
 *   koc_error err = {0};
 *   if (koc_cluster_config_load(flag_kubeconfig, NULL, &cfg, &err) < 0)
 *           fprintf(stderr, "%s\n", err.message);   // names the file and field
 *
 * Every field of client-go's kubeconfig is either used or refused with an
 * error naming the file and the field; none is silently ignored:
 *   clusters: server, tls-server-name, certificate-authority(-data),
 *     insecure-skip-tls-verify, disable-compression, and proxy-url (http://,
 *     https:// or socks5://, the name resolved by the proxy as Go does; every
 *     request goes through it, whatever NO_PROXY says; an https proxy is
 *     verified with the cluster's CA and insecure-skip-tls-verify, as Go does).
 *   users: token, tokenFile, client-certificate(-data), client-key(-data),
 *     exec (a command with a slash but not absolute is relative to the
 *     kubeconfig's directory; provideClusterInfo gives the plugin the
 *     cluster in KUBERNETES_EXEC_INFO, with the cluster's extension
 *     client.authentication.k8s.io/exec as its config), username/password
 *     (HTTP basic auth; refused next to a token or exec), and as, as-uid,
 *     as-groups, as-user-extra: client-go's Impersonate-User, -Uid, -Group
 *     (one per group) and -Extra-KEY headers (KEY percent-encoded) on every
 *     request.
 *     auth-provider alone is refused; next to another credential it is
 *     warned about and ignored.
 *   Other extensions and preferences carry nothing koc uses.
 * Loading warns (one line each, naming the file) when a file holding a
 * credential (a kubeconfig with a token, password or client key; a token
 * file; a client key file) is readable by group or others, and when a token
 * or password would be sent over plain http://.
 *
 * Inline certificate data is handed to libcurl as memory blobs, never written
 * to temporary files.  The service-account token is re-read from its file at
 * most every 60 s and at once after a 401, keeping the old token when the
 * re-read fails, because bound tokens rotate.
 */
#ifndef KOC_CONFIG_H
#define KOC_CONFIG_H

#include <koc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct koc_cluster_config koc_cluster_config;

/* kubeconfig_path: explicit file (may be NULL); context: context name to use
 * instead of current-context (may be NULL). */
KOC_EXPORT int koc_cluster_config_load(const char *kubeconfig_path, const char *context,
                                       koc_cluster_config **ret, koc_error *err);
/* Loads one kubeconfig file (or a colon-separated list, merged). */
KOC_EXPORT int koc_cluster_config_from_kubeconfig(const char *paths, const char *context,
                                                  koc_cluster_config **ret, koc_error *err);
/* In-cluster: KUBERNETES_SERVICE_HOST/PORT and the service-account directory
 * (NULL: /var/run/secrets/kubernetes.io/serviceaccount). */
KOC_EXPORT int koc_cluster_config_in_cluster(const char *sa_dir, koc_cluster_config **ret,
                                             koc_error *err);

KOC_EXPORT koc_cluster_config *koc_cluster_config_ref(koc_cluster_config *cfg);
KOC_EXPORT koc_cluster_config *koc_cluster_config_unref(koc_cluster_config *cfg);
KOC_DEFINE_POINTER_CLEANUP_FUNC(koc_cluster_config, koc_cluster_config_unref)

/* "https://host:port" (plus a path prefix, if the kubeconfig's server has
 * one) without a trailing slash: the base of every request URL.  When the
 * cluster sets tls-server-name, the host part is that name, and
 * koc__cluster_config_apply_tls() routes the connection to the real server
 * address (CURLOPT_CONNECT_TO), so that libcurl sends the name as SNI and
 * verifies the certificate against it, as client-go's ServerName does. */
KOC_EXPORT const char *koc_cluster_config_server(const koc_cluster_config *cfg);
/* The default namespace: POD_NAMESPACE, the context's or the service account's
 * namespace, else "default". */
KOC_EXPORT const char *koc_cluster_config_namespace(const koc_cluster_config *cfg);
/* Where the configuration came from, for logs: a file path or "in-cluster". */
KOC_EXPORT const char *koc_cluster_config_source(const koc_cluster_config *cfg);

#ifdef __cplusplus
}
#endif
#endif

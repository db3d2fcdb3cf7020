/* SPDX-License-Identifier: Apache-2.0 */
/* Internal side of koc/config.h, used by the API client. */
#pragma once

#include <curl/curl.h>
#include <koc/config.h>

/* Sets everything a request to this cluster needs on an easy handle except
 * the URL and the header lines: CA (file or blob), client certificate and key
 * (file or blob), tls-server-name, insecure-skip-tls-verify, proxy-url, and
 * basic auth (username/password).  The header lines are the Authorization
 * header (koc__cluster_config_auth_header()) and the impersonation headers
 * (cfg->headers, see cluster-config.h). */
int koc__cluster_config_apply_tls(koc_cluster_config *cfg, CURL *easy);

/* The "Authorization: Bearer ..." header line for the next request, or NULL
 * when the config has no token auth.  Re-reads a tokenFile / service-account
 * token when it is older than 60 s or was invalidated, and keeps the previous
 * token when the re-read fails.  Runs exec credential plugins when their
 * credential has expired or was invalidated; that run is synchronous and
 * bounded (10 s, then the plugin's process group is killed), and a failing
 * plugin is retried at most every 5 s unless invalidated.  The API client
 * does not call this for exec plugins: it runs them asynchronously
 * (koc__cluster_config_exec_due and what follows).  Loop thread only.  The
 * string stays valid until the next call. */
const char *koc__cluster_config_auth_header(koc_cluster_config *cfg);

/* The header for the token at hand, without re-reading or running anything. */
const char *koc__cluster_config_current_auth_header(koc_cluster_config *cfg);

/* Exec plugins on the loop: true when the credential must be (re)fetched
 * before the next request (none yet, expired, or invalidated by a 401; a
 * failed or expired run is retried at most every 5 s unless invalidated). */
bool koc__cluster_config_exec_due(koc_cluster_config *cfg);
/* Stores the outcome of a plugin run (takes token over on success; on
 * failure keeps the previous credential and remembers err). */
void koc__cluster_config_exec_result(koc_cluster_config *cfg, int r, char *token, uint64_t expiry,
                                     const koc_error *err);
/* A negative errno (and *ret_message) when the last run failed and there is
 * no unexpired credential to send meanwhile; else 0. */
int koc__cluster_config_exec_failure(koc_cluster_config *cfg, const char **ret_message);

/* Called after a 401: the next koc__cluster_config_auth_header() re-reads the
 * token file (or re-runs the exec plugin) at once. */
void koc__cluster_config_token_invalidate(koc_cluster_config *cfg);

/* For tests: the clock used for the 60 s token refresh (CLOCK_BOOTTIME usec). */
void koc__cluster_config_set_clock(koc_cluster_config *cfg, uint64_t (*now)(void *), void *userdata);

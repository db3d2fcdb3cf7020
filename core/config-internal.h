/* SPDX-License-Identifier: Apache-2.0 */
/* Internal side of koc/config.h, used by the API client. */
#pragma once

#include <curl/curl.h>
#include <koc/config.h>

/* Sets everything a request to this cluster needs on an easy handle except
 * the URL and the Authorization header: CA (file or blob), client certificate
 * and key (file or blob), tls-server-name, insecure-skip-tls-verify. */
int koc__cluster_config_apply_tls(koc_cluster_config *cfg, CURL *easy);

/* The "Authorization: Bearer ..." header line for the next request, or NULL
 * when the config has no token auth.  Re-reads a tokenFile / service-account
 * token when it is older than 60 s or was invalidated, and keeps the previous
 * token when the re-read fails.  Runs exec credential plugins when their
 * credential has expired or was invalidated; the run is synchronous and
 * bounded (10 s, then the plugin's process group is killed), and a failing
 * plugin is retried at most every 5 s unless invalidated.  Loop thread only.  The string stays valid until
 * the next call. */
const char *koc__cluster_config_auth_header(koc_cluster_config *cfg);

/* Called after a 401: the next koc__cluster_config_auth_header() re-reads the
 * token file (or re-runs the exec plugin) at once. */
void koc__cluster_config_token_invalidate(koc_cluster_config *cfg);

/* For tests: the clock used for the 60 s token refresh (CLOCK_BOOTTIME usec). */
void koc__cluster_config_set_clock(koc_cluster_config *cfg, uint64_t (*now)(void *), void *userdata);

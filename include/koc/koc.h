/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc/koc.h: every public koc header at once.
 *
 *   #include <koc/koc.h>
 *
 * koc builds highly available Kubernetes operators in C: an asynchronous API
 * client on sd-event (client.h), with the cluster configuration from a
 * kubeconfig or in-cluster (config.h), Lease leader election compatible with
 * client-go (leader.h), health, readiness and metrics endpoints (probes.h,
 * metrics.h), graceful shutdown (shutdown.h), the manager that puts them
 * together on one loop (manager.h) and serves admission webhooks (webhook.h), its cache of informers (cache.h) and
 * what they serve, resources and cached objects (object.h), and the
 * controller runtime on it: a work queue and reconcilers (controller.h), and
 * what reconcilers do around their logic: create-or-update, owner
 * references, status patches and conditions (reconcile.h).
 * Beneath them: logging (log.h), clocks and Kubernetes time formats (time.h), and
 * what every header shares: errors, extensible structs, the export and
 * cleanup macros (common.h).
 */
#ifndef KOC_KOC_H
#define KOC_KOC_H

#include <koc/common.h>
#include <koc/log.h>
#include <koc/time.h>
#include <koc/config.h>
#include <koc/client.h>
#include <koc/metrics.h>
#include <koc/leader.h>
#include <koc/probes.h>
#include <koc/shutdown.h>
#include <koc/manager.h>
#include <koc/webhook.h>
#include <koc/object.h>
#include <koc/cache.h>
#include <koc/controller.h>
#include <koc/reconcile.h>

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc/metrics.h: a small Prometheus metrics registry.
 *
 * Modules register counters, gauges and histograms; the probes server renders
 * the registry in the Prometheus text exposition format (version 0.0.4) on
 * /metrics.  Updating a metric is lock-free (atomics) and safe from any thread;
 * registering and rendering take the registry's lock.  Collectors compute
 * values at scrape time (process RSS, open fds, "is leader now").
 *
 *   koc_metric *renews;
 *   koc_metrics_add_counter(reg, "leader_election_renew_total", "Lease renewals.",
 *                           "name=\"my-operator\"", &renews);
 *   koc_metric_inc(renews);
 */
#ifndef KOC_METRICS_H
#define KOC_METRICS_H

#include <koc/common.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct koc_metrics koc_metrics;
typedef struct koc_metric koc_metric;

KOC_EXPORT int koc_metrics_new(koc_metrics **ret);
KOC_EXPORT koc_metrics *koc_metrics_ref(koc_metrics *m);
KOC_EXPORT koc_metrics *koc_metrics_unref(koc_metrics *m);
KOC_DEFINE_POINTER_CLEANUP_FUNC(koc_metrics, koc_metrics_unref)

/* name: a valid Prometheus metric name; labels: the label pairs without braces
 * ("name=\"x\",code=\"200\"") or NULL.  Label values use the exposition
 * format's escapes (\\, \" and \n); label names must be unique, must not
 * start with "__", and histograms may not use "le".  Metrics of one name share
 * HELP/TYPE lines; registering the same name and labels twice returns the
 * existing metric (so modules may call this idempotently).  -EINVAL for a bad
 * name or labels, or a name already registered with another type (or, for a
 * histogram, the same labels with other buckets).  The metric lives as long
 * as the registry. */
KOC_EXPORT int koc_metrics_add_counter(koc_metrics *m, const char *name, const char *help,
                                       const char *labels, koc_metric **ret);
KOC_EXPORT int koc_metrics_add_gauge(koc_metrics *m, const char *name, const char *help,
                                     const char *labels, koc_metric **ret);
/* buckets: upper bounds in increasing order (le), +Inf is implicit. */
KOC_EXPORT int koc_metrics_add_histogram(koc_metrics *m, const char *name, const char *help,
                                         const char *labels, const double *buckets,
                                         size_t n_buckets, koc_metric **ret);

/* A gauge whose value is fn(userdata), computed each time it is read or
 * rendered (so it can never be stale, e.g. "leads now" evaluated against the
 * renew deadline).  fn runs on the reading thread, under the registry's lock:
 * it must be cheap, lock-free and must not call back into the registry.
 * destroy (may be NULL) runs on userdata when the registry is freed or the
 * function is replaced by registering the same name and labels again.  ret
 * may be NULL.  koc_metric_set() on such a gauge has no visible effect. */
KOC_EXPORT int koc_metrics_add_gauge_function(koc_metrics *m, const char *name, const char *help,
                                              const char *labels, double (*fn)(void *userdata),
                                              void *userdata, void (*destroy)(void *userdata),
                                              koc_metric **ret);

KOC_EXPORT void koc_metric_inc(koc_metric *metric);
KOC_EXPORT void koc_metric_add(koc_metric *metric, double v);  /* counters: v >= 0 */
KOC_EXPORT void koc_metric_set(koc_metric *metric, double v);  /* gauges */
KOC_EXPORT void koc_metric_observe(koc_metric *metric, double v); /* histograms */
KOC_EXPORT double koc_metric_get(const koc_metric *metric);   /* counters, gauges; histogram: sum */
KOC_EXPORT uint64_t koc_metric_get_count(const koc_metric *metric); /* histograms */

/* A collector appends whole samples (with their own HELP/TYPE lines) at
 * render time, e.g. process_resident_memory_bytes.  It runs on the thread that
 * renders, under the registry's lock: it must not block and must not call
 * koc_metrics_* functions of the same registry.  Collectors render after the
 * registered metrics, in the order they were added; adding the same function
 * and userdata again is a no-op (the first registration's destroy stays).
 * destroy (may be NULL) runs on userdata when the registry is freed. */
typedef void (*koc_metrics_collector_t)(FILE *out, void *userdata);
KOC_EXPORT int koc_metrics_add_collector(koc_metrics *m, koc_metrics_collector_t fn, void *userdata,
                                         koc_destroy_t destroy);
/* Registers the standard process_* metrics (RSS, CPU seconds, open fds, max
 * fds, start time) as a collector. */
KOC_EXPORT int koc_metrics_add_process_collector(koc_metrics *m);

/* Renders the whole registry. ret is a malloc'ed NUL-terminated string. */
KOC_EXPORT int koc_metrics_render(koc_metrics *m, char **ret, size_t *ret_len);

#ifdef __cplusplus
}
#endif
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics registry and its Prometheus text exposition (format 0.0.4).
 *
 * Families (one name, one type, one HELP text) are kept in registration
 * order, and each family's samples in the order their label sets were
 * registered, so a scrape's output is stable.  Values are doubles stored as
 * the bit patterns of _Atomic uint64_t; adding is a compare-and-swap loop,
 * so updates from any thread need no lock.  Histogram buckets are counted
 * per bucket (not cumulatively) and summed at render time; the _count is
 * the sum of the buckets, so one scrape's buckets and count always agree.
 *
 * Label sets are parsed when a metric is registered (name="value" pairs,
 * with \\, \" and \n escapes in values) and rendered again with canonical
 * escaping, so what reaches /metrics is always well-formed.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "koc/metrics.h"
#include "util.h"

enum metric_type {
        METRIC_COUNTER,
        METRIC_GAUGE,
        METRIC_HISTOGRAM,
};

static const char *const type_names[] = {"counter", "gauge", "histogram"};

typedef struct family family;

struct koc_metric {
        family *family;
        char *labels;           /* canonical: a="x",b="y" (escaped), or "" */
        _Atomic uint64_t value; /* counter/gauge value, histogram sum (double bits) */
        /* Histograms: n_bounds upper bounds, n_bounds + 1 counters (the last
         * one is +Inf). */
        double *bounds;
        size_t n_bounds;
        _Atomic uint64_t *buckets;
        /* Gauges whose value is computed when read (koc_metrics_add_gauge_function). */
        double (*fn)(void *userdata);
        void *fn_userdata;
        void (*fn_destroy)(void *userdata);
        koc_metric *next;
};

struct family {
        char *name;
        char *help;
        enum metric_type type;
        koc_metric *first, *last;
        family *next;
};

typedef struct collector {
        koc_metrics_collector_t fn;
        void *userdata;
        koc_destroy_t destroy;
        struct collector *next;
} collector;

struct koc_metrics {
        atomic_uint n_ref;
        pthread_mutex_t lock;
        family *first, *last;
        collector *collectors, *collectors_last;
};

/* ---- atomics on doubles -------------------------------------------------- */

static inline uint64_t d2u(double d) {
        uint64_t u;
        memcpy(&u, &d, sizeof u);
        return u;
}

static inline double u2d(uint64_t u) {
        double d;
        memcpy(&d, &u, sizeof d);
        return d;
}

static void atomic_add_double(_Atomic uint64_t *p, double v) {
        uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
        while (!atomic_compare_exchange_weak_explicit(p, &old, d2u(u2d(old) + v),
                                                      memory_order_relaxed, memory_order_relaxed))
                ;
}

/* ---- lifetime ----------------------------------------------------------- */

KOC_EXPORT int koc_metrics_new(koc_metrics **ret) {
        if (!ret)
                return -EINVAL;
        koc_metrics *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        atomic_init(&m->n_ref, 1);
        pthread_mutex_init(&m->lock, NULL);
        *ret = m;
        return 0;
}

KOC_EXPORT koc_metrics *koc_metrics_ref(koc_metrics *m) {
        if (m)
                atomic_fetch_add(&m->n_ref, 1);
        return m;
}

static void metric_free(koc_metric *x) {
        if (x->fn_destroy)
                x->fn_destroy(x->fn_userdata);
        free(x->labels);
        free(x->bounds);
        free(x->buckets);
        free(x);
}

KOC_EXPORT koc_metrics *koc_metrics_unref(koc_metrics *m) {
        if (!m || atomic_fetch_sub(&m->n_ref, 1) != 1)
                return NULL;
        for (family *f = m->first, *fn; f; f = fn) {
                fn = f->next;
                for (koc_metric *x = f->first, *xn; x; x = xn) {
                        xn = x->next;
                        metric_free(x);
                }
                free(f->name);
                free(f->help);
                free(f);
        }
        for (collector *c = m->collectors, *cn; c; c = cn) {
                cn = c->next;
                if (c->destroy)
                        c->destroy(c->userdata);
                free(c);
        }
        pthread_mutex_destroy(&m->lock);
        free(m);
        return NULL;
}

/* ---- names and labels --------------------------------------------------- */

static bool valid_metric_name(const char *s) {
        if (!s || !*s)
                return false;
        if (!isalpha((unsigned char)s[0]) && s[0] != '_' && s[0] != ':')
                return false;
        for (const char *p = s + 1; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '_' && *p != ':')
                        return false;
        return true;
}

static void put_escaped(FILE *f, const char *s, bool quote) {
        for (; *s; s++) {
                if (*s == '\\')
                        fputs("\\\\", f);
                else if (*s == '\n')
                        fputs("\\n", f);
                else if (quote && *s == '"')
                        fputs("\\\"", f);
                else
                        fputc(*s, f);
        }
}

/* Parses `a="x", b="y"` into its canonical form `a="x",b="y"`.  Label names
 * follow [a-zA-Z_][a-zA-Z0-9_]*, must be unique and must not start with
 * "__"; histograms may not use "le". */
static int canonical_labels(const char *in, bool histogram, char **ret) {
        char *out = NULL;
        size_t out_len = 0;
        FILE *f = open_memstream(&out, &out_len);
        if (!f)
                return -ENOMEM;
        char names[32][128];
        size_t n_names = 0;
        int r = 0;
        const char *p = in ? in : "";
        while (r == 0) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p)
                        break;
                /* name */
                const char *name = p;
                if (!isalpha((unsigned char)*p) && *p != '_') {
                        r = -EINVAL;
                        break;
                }
                while (isalnum((unsigned char)*p) || *p == '_')
                        p++;
                size_t nl = (size_t)(p - name);
                if (nl >= sizeof names[0] || n_names >= KOC_ELEMENTSOF(names) ||
                    (nl >= 2 && name[0] == '_' && name[1] == '_') ||
                    (histogram && nl == 2 && strncmp(name, "le", 2) == 0)) {
                        r = -EINVAL;
                        break;
                }
                for (size_t i = 0; i < n_names; i++)
                        if (strlen(names[i]) == nl && strncmp(names[i], name, nl) == 0)
                                r = -EINVAL;
                if (r < 0)
                        break;
                memcpy(names[n_names], name, nl);
                names[n_names++][nl] = '\0';
                while (*p == ' ')
                        p++;
                if (*p++ != '=') {
                        r = -EINVAL;
                        break;
                }
                while (*p == ' ')
                        p++;
                if (*p++ != '"') {
                        r = -EINVAL;
                        break;
                }
                if (n_names > 1)
                        fputc(',', f);
                fprintf(f, "%.*s=\"", (int)nl, name);
                /* value, unescaped then escaped again */
                for (;;) {
                        char c = *p++;
                        if (c == '\0') {
                                r = -EINVAL;
                                break;
                        }
                        if (c == '"')
                                break;
                        /* A raw line break would end the sample line. */
                        if (c == '\n') {
                                r = -EINVAL;
                                break;
                        }
                        if (c == '\\') {
                                c = *p++;
                                if (c == 'n')
                                        c = '\n';
                                else if (c != '\\' && c != '"') {
                                        r = -EINVAL;
                                        break;
                                }
                        }
                        char one[2] = {c, 0};
                        put_escaped(f, one, true);
                }
                if (r < 0)
                        break;
                fputc('"', f);
                while (*p == ' ' || *p == '\t')
                        p++;
                if (*p == ',') {
                        p++;
                        while (*p == ' ' || *p == '\t')
                                p++;
                        if (!*p) {
                                r = -EINVAL; /* a trailing comma */
                                break;
                        }
                } else if (*p) {
                        r = -EINVAL;
                        break;
                }
        }
        if (fclose(f) != 0 && r == 0)
                r = -ENOMEM;
        if (r < 0) {
                free(out);
                return r;
        }
        *ret = out;
        return 0;
}

/* ---- registration ------------------------------------------------------- */

static family *find_family(koc_metrics *m, const char *name) {
        for (family *f = m->first; f; f = f->next)
                if (strcmp(f->name, name) == 0)
                        return f;
        return NULL;
}

static int add_metric(koc_metrics *m, enum metric_type type, const char *name, const char *help,
                      const char *labels, const double *bounds, size_t n_bounds, koc_metric **ret) {
        if (!m || !ret || !valid_metric_name(name))
                return -EINVAL;
        _koc_cleanup_free_ char *canon = NULL;
        int r = canonical_labels(labels, type == METRIC_HISTOGRAM, &canon);
        if (r < 0)
                return r;

        pthread_mutex_lock(&m->lock);
        family *f = find_family(m, name);
        if (f && f->type != type) {
                r = -EINVAL;
                goto out;
        }
        if (f)
                for (koc_metric *x = f->first; x; x = x->next)
                        if (strcmp(x->labels, canon) == 0) {
                                if (type == METRIC_HISTOGRAM &&
                                    (x->n_bounds != n_bounds ||
                                     (n_bounds &&
                                      memcmp(x->bounds, bounds, n_bounds * sizeof(double)) != 0))) {
                                        r = -EINVAL;
                                        goto out;
                                }
                                *ret = x;
                                r = 0;
                                goto out;
                        }

        koc_metric *x = calloc(1, sizeof *x);
        if (!x) {
                r = -ENOMEM;
                goto out;
        }
        if (type == METRIC_HISTOGRAM) {
                x->bounds = n_bounds ? malloc(n_bounds * sizeof(double)) : NULL;
                x->buckets = calloc(n_bounds + 1, sizeof(*x->buckets));
                if ((n_bounds && !x->bounds) || !x->buckets) {
                        metric_free(x);
                        r = -ENOMEM;
                        goto out;
                }
                if (n_bounds)
                        memcpy(x->bounds, bounds, n_bounds * sizeof(double));
                x->n_bounds = n_bounds;
        }
        x->labels = canon;
        canon = NULL;
        if (!f) {
                f = calloc(1, sizeof *f);
                if (!f || !(f->name = strdup(name)) ||
                    (help && *help && !(f->help = strdup(help)))) {
                        if (f)
                                free(f->name);
                        free(f);
                        metric_free(x);
                        r = -ENOMEM;
                        goto out;
                }
                f->type = type;
                if (m->last)
                        m->last->next = f;
                else
                        m->first = f;
                m->last = f;
        }
        x->family = f;
        if (f->last)
                f->last->next = x;
        else
                f->first = x;
        f->last = x;
        *ret = x;
        r = 0;
out:
        pthread_mutex_unlock(&m->lock);
        return r;
}

KOC_EXPORT int koc_metrics_add_counter(koc_metrics *m, const char *name, const char *help,
                                       const char *labels, koc_metric **ret) {
        return add_metric(m, METRIC_COUNTER, name, help, labels, NULL, 0, ret);
}

KOC_EXPORT int koc_metrics_add_gauge(koc_metrics *m, const char *name, const char *help,
                                     const char *labels, koc_metric **ret) {
        return add_metric(m, METRIC_GAUGE, name, help, labels, NULL, 0, ret);
}

KOC_EXPORT int koc_metrics_add_histogram(koc_metrics *m, const char *name, const char *help,
                                         const char *labels, const double *buckets,
                                         size_t n_buckets, koc_metric **ret) {
        if (n_buckets > 0 && !buckets)
                return -EINVAL;
        /* A trailing +Inf is implicit anyway. */
        if (n_buckets > 0 && isinf(buckets[n_buckets - 1]) && buckets[n_buckets - 1] > 0)
                n_buckets--;
        if (n_buckets > 1024)
                return -EINVAL;
        for (size_t i = 0; i < n_buckets; i++)
                if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
                        return -EINVAL;
        return add_metric(m, METRIC_HISTOGRAM, name, help, labels, buckets, n_buckets, ret);
}

/* ---- updates ------------------------------------------------------------ */

KOC_EXPORT int koc_metrics_add_gauge_function(koc_metrics *m, const char *name, const char *help,
                                              const char *labels, double (*fn)(void *userdata),
                                              void *userdata, void (*destroy)(void *userdata),
                                              koc_metric **ret) {
        koc_metric *x;
        if (!fn)
                return -EINVAL;
        int r = add_metric(m, METRIC_GAUGE, name, help, labels, NULL, 0, &x);
        if (r < 0)
                return r;
        /* Under the registry lock, so a concurrent render sees the old or the
         * new function, never half of each. */
        pthread_mutex_lock(&m->lock);
        void (*old_destroy)(void *) = x->fn_destroy;
        void *old_userdata = x->fn_userdata;
        x->fn = fn;
        x->fn_userdata = userdata;
        x->fn_destroy = destroy;
        pthread_mutex_unlock(&m->lock);
        if (old_destroy)
                old_destroy(old_userdata);
        if (ret)
                *ret = x;
        return 0;
}

KOC_EXPORT void koc_metric_inc(koc_metric *x) {
        koc_metric_add(x, 1.0);
}

KOC_EXPORT void koc_metric_add(koc_metric *x, double v) {
        if (!x || isnan(v))
                return;
        switch (x->family->type) {
        case METRIC_COUNTER:
                /* Counters only go up. */
                if (v < 0)
                        return;
                atomic_add_double(&x->value, v);
                return;
        case METRIC_GAUGE:
                atomic_add_double(&x->value, v);
                return;
        case METRIC_HISTOGRAM:
                return;
        }
}

KOC_EXPORT void koc_metric_set(koc_metric *x, double v) {
        if (!x || x->family->type != METRIC_GAUGE)
                return;
        atomic_store_explicit(&x->value, d2u(v), memory_order_relaxed);
}

KOC_EXPORT void koc_metric_observe(koc_metric *x, double v) {
        if (!x || x->family->type != METRIC_HISTOGRAM || isnan(v))
                return;
        /* The first bucket whose upper bound is >= v (le is inclusive). */
        size_t lo = 0, hi = x->n_bounds;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (v <= x->bounds[mid])
                        hi = mid;
                else
                        lo = mid + 1;
        }
        atomic_add_double(&x->value, v);
        atomic_fetch_add_explicit(&x->buckets[lo], 1, memory_order_relaxed);
}

KOC_EXPORT double koc_metric_get(const koc_metric *x) {
        if (!x)
                return 0;
        if (x->fn)
                return x->fn(x->fn_userdata);
        return u2d(atomic_load_explicit(&((koc_metric *)x)->value, memory_order_relaxed));
}

KOC_EXPORT uint64_t koc_metric_get_count(const koc_metric *x) {
        if (!x || x->family->type != METRIC_HISTOGRAM)
                return 0;
        uint64_t n = 0;
        for (size_t i = 0; i <= x->n_bounds; i++)
                n += atomic_load_explicit(&x->buckets[i], memory_order_relaxed);
        return n;
}

/* ---- rendering ---------------------------------------------------------- */

/* Prometheus float text: the shortest form that reads back exactly, and
 * +Inf, -Inf, NaN. */
static void put_double(FILE *f, double v) {
        if (isnan(v)) {
                fputs("NaN", f);
                return;
        }
        if (isinf(v)) {
                fputs(v > 0 ? "+Inf" : "-Inf", f);
                return;
        }
        /* Integers as integers ("1000000", not "1e+06"): counters read
         * better that way. */
        if (v == floor(v) && fabs(v) < 1e15) {
                fprintf(f, "%.0f", v);
                return;
        }
        char buf[40];
        /* Every double with at most 15 significant digits reads back from %.15g
         * (which drops trailing zeros), so that is where the search starts. */
        for (int prec = 15; prec <= 17; prec++) {
                snprintf(buf, sizeof buf, "%.*g", prec, v);
                if (strtod(buf, NULL) == v)
                        break;
        }
        fputs(buf, f);
}

static void put_sample(FILE *f, const char *name, const char *suffix, const char *labels,
                       const char *extra) {
        fprintf(f, "%s%s", name, suffix);
        bool has = labels && *labels, has_extra = extra && *extra;
        if (has || has_extra) {
                fputc('{', f);
                if (has)
                        fputs(labels, f);
                if (has && has_extra)
                        fputc(',', f);
                if (has_extra)
                        fputs(extra, f);
                fputc('}', f);
        }
        fputc(' ', f);
}

static void render_family(FILE *f, const family *fam) {
        if (fam->help) {
                fprintf(f, "# HELP %s ", fam->name);
                put_escaped(f, fam->help, false);
                fputc('\n', f);
        }
        fprintf(f, "# TYPE %s %s\n", fam->name, type_names[fam->type]);
        for (koc_metric *x = fam->first; x; x = x->next) {
                if (fam->type != METRIC_HISTOGRAM) {
                        put_sample(f, fam->name, "", x->labels, NULL);
                        put_double(f, koc_metric_get(x));
                        fputc('\n', f);
                        continue;
                }
                uint64_t cum = 0;
                for (size_t i = 0; i <= x->n_bounds; i++) {
                        cum += atomic_load_explicit(&x->buckets[i], memory_order_relaxed);
                        char le[64];
                        FILE *lf = fmemopen(le, sizeof le, "w");
                        if (!lf)
                                continue;
                        fputs("le=\"", lf);
                        put_double(lf, i < x->n_bounds ? x->bounds[i] : INFINITY);
                        fputc('"', lf);
                        fputc('\0', lf);
                        fclose(lf);
                        le[sizeof le - 1] = '\0';
                        put_sample(f, fam->name, "_bucket", x->labels, le);
                        fprintf(f, "%" PRIu64 "\n", cum);
                }
                put_sample(f, fam->name, "_sum", x->labels, NULL);
                put_double(f, koc_metric_get(x));
                fputc('\n', f);
                put_sample(f, fam->name, "_count", x->labels, NULL);
                fprintf(f, "%" PRIu64 "\n", cum);
        }
}

KOC_EXPORT int koc_metrics_render(koc_metrics *m, char **ret, size_t *ret_len) {
        if (!m || !ret)
                return -EINVAL;
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        pthread_mutex_lock(&m->lock);
        for (family *fam = m->first; fam; fam = fam->next)
                render_family(f, fam);
        for (collector *c = m->collectors; c; c = c->next)
                c->fn(f, c->userdata);
        pthread_mutex_unlock(&m->lock);
        if (fclose(f) != 0 || !buf) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        if (ret_len)
                *ret_len = len;
        return 0;
}

/* ---- collectors --------------------------------------------------------- */

KOC_EXPORT int koc_metrics_add_collector(koc_metrics *m, koc_metrics_collector_t fn, void *userdata,
                                         koc_destroy_t destroy) {
        if (!m || !fn)
                return -EINVAL;
        int r = 0;
        pthread_mutex_lock(&m->lock);
        for (collector *c = m->collectors; c; c = c->next)
                if (c->fn == fn && c->userdata == userdata)
                        goto out; /* already there */
        collector *c = calloc(1, sizeof *c);
        if (!c) {
                r = -ENOMEM;
                goto out;
        }
        c->fn = fn;
        c->userdata = userdata;
        c->destroy = destroy;
        if (m->collectors_last)
                m->collectors_last->next = c;
        else
                m->collectors = c;
        m->collectors_last = c;
out:
        pthread_mutex_unlock(&m->lock);
        return r;
}

static void put_process_metric(FILE *f, const char *name, const char *type, const char *help,
                               double v) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s ", name, help, name, type, name);
        put_double(f, v);
        fputc('\n', f);
}

/* Reads the whole of a small /proc file. */
static int read_proc(const char *path, char *buf, size_t size) {
        FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        size_t n = fread(buf, 1, size - 1, f);
        fclose(f);
        buf[n] = '\0';
        return n > 0 ? 0 : -ENODATA;
}

static int boot_time_seconds(double *ret) {
        char buf[16384];
        int r = read_proc("/proc/stat", buf, sizeof buf);
        if (r < 0)
                return r;
        const char *p = strstr(buf, "\nbtime ");
        if (!p)
                return -ENODATA;
        *ret = strtod(p + 7, NULL);
        return 0;
}

/* The process_* metrics of the Prometheus client libraries, from /proc. */
static void process_collector(FILE *f, void *userdata) {
        long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
        char buf[4096];
        if (ticks > 0 && page > 0 && read_proc("/proc/self/stat", buf, sizeof buf) == 0) {
                /* The command name (field 2) may hold spaces and parentheses:
                 * fields are counted from the last ')'. */
                const char *p = strrchr(buf, ')');
                unsigned long long v[24] = {0};
                int n = 0;
                if (p) {
                        p++;
                        /* field 3 is the state letter */
                        while (*p == ' ')
                                p++;
                        if (*p)
                                p++;
                        for (n = 0; n < 22; n++) {
                                char *end;
                                v[n] = strtoull(p, &end, 10);
                                if (end == p)
                                        break;
                                p = end;
                        }
                }
                /* v[0] is field 4 (ppid): utime 14, stime 15, starttime 22,
                 * vsize 23, rss 24. */
                if (n >= 21) {
                        put_process_metric(f, "process_cpu_seconds_total", "counter",
                                           "Total user and system CPU time spent in seconds.",
                                           (double)(v[10] + v[11]) / (double)ticks);
                        put_process_metric(f, "process_virtual_memory_bytes", "gauge",
                                           "Virtual memory size in bytes.", (double)v[19]);
                        put_process_metric(f, "process_resident_memory_bytes", "gauge",
                                           "Resident memory size in bytes.",
                                           (double)v[20] * (double)page);
                        double btime;
                        if (boot_time_seconds(&btime) == 0)
                                put_process_metric(f, "process_start_time_seconds", "gauge",
                                                   "Start time of the process since unix epoch "
                                                   "in seconds.",
                                                   btime + (double)v[18] / (double)ticks);
                }
        }
        DIR *d = opendir("/proc/self/fd");
        if (d) {
                unsigned long n = 0;
                for (struct dirent *de; (de = readdir(d));)
                        if (de->d_name[0] != '.')
                                n++;
                closedir(d);
                /* Minus the directory's own descriptor. */
                put_process_metric(f, "process_open_fds", "gauge",
                                   "Number of open file descriptors.", (double)(n > 0 ? n - 1 : 0));
        }
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
                put_process_metric(f, "process_max_fds", "gauge",
                                   "Maximum number of open file descriptors.",
                                   rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
}

KOC_EXPORT int koc_metrics_add_process_collector(koc_metrics *m) {
        return koc_metrics_add_collector(m, process_collector, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics registry behind koc/metrics.h.
 *
 * Values are updated lock-free: a double lives in an atomic 64-bit word (its
 * bit pattern) and additions are compare-and-swap loops, so any thread may
 * update without taking the registry's lock and without libatomic.
 * Registration and rendering take the lock.  Families keep registration
 * order, which keeps the output stable for diffs and tests.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "koc/metrics.h"

#define MAX_BUCKETS 64

enum metric_type { TYPE_COUNTER, TYPE_GAUGE, TYPE_HISTOGRAM };
static const char *const type_names[] = { "counter", "gauge", "histogram" };

struct koc_metric {
        enum metric_type type;
        char *labels; /* "" when none */
        _Atomic uint64_t value; /* double bits: counter, gauge, histogram sum */
        _Atomic uint64_t count; /* histogram */
        size_t n_buckets;
        double *bounds;
        _Atomic uint64_t *buckets; /* per bucket (not cumulative) */
        struct koc_metric *next;
};

typedef struct family {
        char *name;
        char *help;
        enum metric_type type;
        koc_metric *first, *last;
        struct family *next;
} family;

typedef struct collector {
        koc_metrics_collector_t fn;
        void *userdata;
        struct collector *next;
} collector;

struct koc_metrics {
        _Atomic unsigned n_ref;
        pthread_mutex_t lock;
        family *first, *last;
        collector *collectors, *collectors_last;
};

static uint64_t d2u(double d) {
        uint64_t u;
        memcpy(&u, &d, sizeof(u));
        return u;
}

static double u2d(uint64_t u) {
        double d;
        memcpy(&d, &u, sizeof(d));
        return d;
}

static void atomic_add_double(_Atomic uint64_t *p, double v) {
        uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
        while (!atomic_compare_exchange_weak_explicit(p, &old, d2u(u2d(old) + v),
                                                      memory_order_relaxed, memory_order_relaxed))
                ;
}

/* --- registry --------------------------------------------------------------------- */

KOC_EXPORT int koc_metrics_new(koc_metrics **ret) {
        if (!ret)
                return -EINVAL;
        koc_metrics *m = calloc(1, sizeof(*m));
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
                free(c);
        }
        pthread_mutex_destroy(&m->lock);
        free(m);
        return NULL;
}

static bool valid_name(const char *s) {
        if (!s || !*s || strlen(s) > 200)
                return false;
        for (size_t i = 0; s[i]; i++) {
                char c = s[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                          c == ':' || (i > 0 && c >= '0' && c <= '9');
                if (!ok)
                        return false;
        }
        return true;
}

/* Label pairs: name="value"[,name="value"...], values with \\, \" and \n
 * escapes.  Bounded, so a bad string cannot break the exposition format. */
static bool valid_labels(const char *s) {
        if (strlen(s) > 1024)
                return false;
        const char *p = s;
        while (*p) {
                const char *start = p;
                while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                       (p > start && *p >= '0' && *p <= '9'))
                        p++;
                if (p == start || p[0] != '=' || p[1] != '"')
                        return false;
                p += 2;
                while (*p && *p != '"') {
                        if (*p == '\n')
                                return false;
                        if (*p == '\\') {
                                if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                                        return false;
                                p++;
                        }
                        p++;
                }
                if (*p != '"')
                        return false;
                p++;
                if (*p == ',') {
                        p++;
                        if (!*p)
                                return false; /* trailing comma */
                } else if (*p)
                        return false;
        }
        return true;
}

static family *find_family(koc_metrics *m, const char *name) {
        for (family *f = m->first; f; f = f->next)
                if (strcmp(f->name, name) == 0)
                        return f;
        return NULL;
}

static int add_metric(koc_metrics *m, enum metric_type type, const char *name, const char *help,
                      const char *labels, const double *bounds, size_t n_bounds,
                      koc_metric **ret) {
        if (!m || !ret || !valid_name(name))
                return -EINVAL;
        if (!labels)
                labels = "";
        if (!valid_labels(labels))
                return -EINVAL;
        if (type == TYPE_HISTOGRAM) {
                if (n_bounds > MAX_BUCKETS || (n_bounds > 0 && !bounds))
                        return -EINVAL;
                for (size_t i = 0; i < n_bounds; i++)
                        if (isnan(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
                                return -EINVAL;
        }

        int r = 0;
        pthread_mutex_lock(&m->lock);
        family *f = find_family(m, name);
        if (f && f->type != type) {
                r = -EINVAL;
                goto out;
        }
        if (f)
                for (koc_metric *x = f->first; x; x = x->next)
                        if (strcmp(x->labels, labels) == 0) {
                                *ret = x;
                                goto out;
                        }

        koc_metric *x = calloc(1, sizeof(*x));
        if (!x) {
                r = -ENOMEM;
                goto out;
        }
        x->type = type;
        x->labels = strdup(labels);
        if (type == TYPE_HISTOGRAM && n_bounds > 0) {
                x->bounds = malloc(n_bounds * sizeof(double));
                x->buckets = calloc(n_bounds, sizeof(*x->buckets));
                if (x->bounds)
                        memcpy(x->bounds, bounds, n_bounds * sizeof(double));
                x->n_buckets = n_bounds;
        }
        if (!x->labels || (x->n_buckets > 0 && (!x->bounds || !x->buckets))) {
                metric_free(x);
                r = -ENOMEM;
                goto out;
        }
        if (!f) {
                f = calloc(1, sizeof(*f));
                if (f) {
                        f->name = strdup(name);
                        f->help = strdup(help ? help : "");
                        f->type = type;
                }
                if (!f || !f->name || !f->help) {
                        if (f) {
                                free(f->name);
                                free(f->help);
                                free(f);
                        }
                        metric_free(x);
                        r = -ENOMEM;
                        goto out;
                }
                if (m->last)
                        m->last->next = f;
                else
                        m->first = f;
                m->last = f;
        }
        if (f->last)
                f->last->next = x;
        else
                f->first = x;
        f->last = x;
        *ret = x;
out:
        pthread_mutex_unlock(&m->lock);
        return r;
}

KOC_EXPORT int koc_metrics_add_counter(koc_metrics *m, const char *name, const char *help,
                                       const char *labels, koc_metric **ret) {
        return add_metric(m, TYPE_COUNTER, name, help, labels, NULL, 0, ret);
}

KOC_EXPORT int koc_metrics_add_gauge(koc_metrics *m, const char *name, const char *help,
                                     const char *labels, koc_metric **ret) {
        return add_metric(m, TYPE_GAUGE, name, help, labels, NULL, 0, ret);
}

KOC_EXPORT int koc_metrics_add_histogram(koc_metrics *m, const char *name, const char *help,
                                         const char *labels, const double *buckets,
                                         size_t n_buckets, koc_metric **ret) {
        return add_metric(m, TYPE_HISTOGRAM, name, help, labels, buckets, n_buckets, ret);
}

KOC_EXPORT int koc_metrics_add_collector(koc_metrics *m, koc_metrics_collector_t fn,
                                         void *userdata) {
        if (!m || !fn)
                return -EINVAL;
        collector *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fn = fn;
        c->userdata = userdata;
        pthread_mutex_lock(&m->lock);
        if (m->collectors_last)
                m->collectors_last->next = c;
        else
                m->collectors = c;
        m->collectors_last = c;
        pthread_mutex_unlock(&m->lock);
        return 0;
}

/* --- updates (any thread, lock-free) ---------------------------------------------- */

KOC_EXPORT void koc_metric_inc(koc_metric *x) {
        koc_metric_add(x, 1);
}

KOC_EXPORT void koc_metric_add(koc_metric *x, double v) {
        if (!x || x->type == TYPE_HISTOGRAM || isnan(v))
                return;
        if (x->type == TYPE_COUNTER && v < 0)
                return; /* counters only go up */
        atomic_add_double(&x->value, v);
}

KOC_EXPORT void koc_metric_set(koc_metric *x, double v) {
        if (!x || x->type != TYPE_GAUGE)
                return;
        atomic_store_explicit(&x->value, d2u(v), memory_order_relaxed);
}

KOC_EXPORT void koc_metric_observe(koc_metric *x, double v) {
        if (!x || x->type != TYPE_HISTOGRAM || isnan(v))
                return;
        for (size_t i = 0; i < x->n_buckets; i++)
                if (v <= x->bounds[i]) {
                        atomic_fetch_add_explicit(&x->buckets[i], 1, memory_order_relaxed);
                        break;
                }
        atomic_add_double(&x->value, v);
        atomic_fetch_add_explicit(&x->count, 1, memory_order_relaxed);
}

KOC_EXPORT double koc_metric_get(const koc_metric *x) {
        if (!x)
                return 0;
        return u2d(atomic_load_explicit(&((koc_metric *)x)->value, memory_order_relaxed));
}

KOC_EXPORT uint64_t koc_metric_get_count(const koc_metric *x) {
        if (!x || x->type != TYPE_HISTOGRAM)
                return 0;
        return atomic_load_explicit(&((koc_metric *)x)->count, memory_order_relaxed);
}

/* --- rendering ------------------------------------------------------------------------- */

/* Go's strconv.FormatFloat(v, 'g', -1, 64) in spirit: the shortest text that
 * reads back as the same double, integers without a fraction. */
static void put_value(FILE *out, double v) {
        if (isnan(v)) {
                fputs("NaN", out);
                return;
        }
        if (isinf(v)) {
                fputs(v > 0 ? "+Inf" : "-Inf", out);
                return;
        }
        if (v == floor(v) && fabs(v) < 1e15) {
                fprintf(out, "%.0f", v);
                return;
        }
        char buf[40];
        for (int prec = 15; prec <= 17; prec++) {
                snprintf(buf, sizeof(buf), "%.*g", prec, v);
                if (strtod(buf, NULL) == v)
                        break;
        }
        fputs(buf, out);
}

static void put_help(FILE *out, const char *help) {
        for (const char *p = help; *p; p++) {
                if (*p == '\\')
                        fputs("\\\\", out);
                else if (*p == '\n')
                        fputs("\\n", out);
                else
                        fputc(*p, out);
        }
}

static void put_sample(FILE *out, const char *name, const char *suffix, const char *labels,
                       const char *extra, double v) {
        fprintf(out, "%s%s", name, suffix);
        if (*labels || extra) {
                fputc('{', out);
                fputs(labels, out);
                if (extra)
                        fprintf(out, "%s%s", *labels ? "," : "", extra);
                fputc('}', out);
        }
        fputc(' ', out);
        put_value(out, v);
        fputc('\n', out);
}

static void render_histogram(FILE *out, const char *name, koc_metric *x) {
        uint64_t cumulative = 0;
        char le[64];
        for (size_t i = 0; i < x->n_buckets; i++) {
                cumulative += atomic_load_explicit(&x->buckets[i], memory_order_relaxed);
                char v[40];
                FILE *vf = fmemopen(v, sizeof(v), "w");
                if (!vf)
                        continue;
                put_value(vf, x->bounds[i]);
                fclose(vf);
                snprintf(le, sizeof(le), "le=\"%s\"", v);
                put_sample(out, name, "_bucket", x->labels, le, (double)cumulative);
        }
        /* Read count after the buckets so +Inf is never below a bucket. */
        uint64_t count = atomic_load_explicit(&x->count, memory_order_relaxed);
        if (count < cumulative)
                count = cumulative;
        put_sample(out, name, "_bucket", x->labels, "le=\"+Inf\"", (double)count);
        put_sample(out, name, "_sum", x->labels, NULL, koc_metric_get(x));
        put_sample(out, name, "_count", x->labels, NULL, (double)count);
}

KOC_EXPORT int koc_metrics_render(koc_metrics *m, char **ret, size_t *ret_len) {
        if (!m || !ret)
                return -EINVAL;
        char *buf = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&buf, &len);
        if (!out)
                return -ENOMEM;

        pthread_mutex_lock(&m->lock);
        for (family *f = m->first; f; f = f->next) {
                if (*f->help) {
                        fprintf(out, "# HELP %s ", f->name);
                        put_help(out, f->help);
                        fputc('\n', out);
                }
                fprintf(out, "# TYPE %s %s\n", f->name, type_names[f->type]);
                for (koc_metric *x = f->first; x; x = x->next) {
                        if (f->type == TYPE_HISTOGRAM)
                                render_histogram(out, f->name, x);
                        else
                                put_sample(out, f->name, "", x->labels, NULL, koc_metric_get(x));
                }
        }
        for (collector *c = m->collectors; c; c = c->next)
                c->fn(out, c->userdata);
        pthread_mutex_unlock(&m->lock);

        if (fclose(out) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        if (ret_len)
                *ret_len = len;
        return 0;
}

/* --- process metrics, as Prometheus' client libraries name them ------------------------ */

static long count_open_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        if (!d)
                return -1;
        long n = 0;
        struct dirent *e;
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1; /* the directory's own fd */
}

/* utime, stime (clock ticks), starttime (ticks after boot), vsize, rss (pages)
 * from /proc/self/stat; fields after the parenthesised command. */
static int read_proc_stat(double *cpu_sec, double *start_ticks, double *vsize, double *rss_pages) {
        char buf[1024];
        FILE *f = fopen("/proc/self/stat", "re");
        if (!f)
                return -errno;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        if (!p)
                return -EINVAL;
        unsigned long utime, stime, vs;
        unsigned long long start;
        long rss;
        /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
         * utime stime cutime cstime priority nice threads itrealvalue starttime
         * vsize rss */
        if (sscanf(p + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
                   "%llu %lu %ld",
                   &utime, &stime, &start, &vs, &rss) != 5)
                return -EINVAL;
        long hz = sysconf(_SC_CLK_TCK);
        *cpu_sec = (double)(utime + stime) / (double)hz;
        *start_ticks = (double)start / (double)hz;
        *vsize = (double)vs;
        *rss_pages = (double)rss;
        return 0;
}

static double boot_time(void) {
        FILE *f = fopen("/proc/stat", "re");
        char line[256];
        double btime = 0;
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "btime ", 6) == 0) {
                        btime = strtod(line + 6, NULL);
                        break;
                }
        fclose(f);
        return btime;
}

static void process_collector(FILE *out, void *userdata) {
        double cpu, start, vsize, rss;
        if (read_proc_stat(&cpu, &start, &vsize, &rss) == 0) {
                fputs("# HELP process_cpu_seconds_total Total user and system CPU time spent in "
                      "seconds.\n# TYPE process_cpu_seconds_total counter\n",
                      out);
                put_sample(out, "process_cpu_seconds_total", "", "", NULL, cpu);
                fputs("# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                      "# TYPE process_resident_memory_bytes gauge\n",
                      out);
                put_sample(out, "process_resident_memory_bytes", "", "", NULL,
                           rss * (double)sysconf(_SC_PAGESIZE));
                fputs("# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                      "# TYPE process_virtual_memory_bytes gauge\n",
                      out);
                put_sample(out, "process_virtual_memory_bytes", "", "", NULL, vsize);
                double btime = boot_time();
                if (btime > 0) {
                        fputs("# HELP process_start_time_seconds Start time of the process since "
                              "unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\n",
                              out);
                        put_sample(out, "process_start_time_seconds", "", "", NULL,
                                   btime + start);
                }
        }
        long fds = count_open_fds();
        if (fds >= 0) {
                fputs("# HELP process_open_fds Number of open file descriptors.\n"
                      "# TYPE process_open_fds gauge\n",
                      out);
                put_sample(out, "process_open_fds", "", "", NULL, (double)fds);
        }
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
                fputs("# HELP process_max_fds Maximum number of open file descriptors.\n"
                      "# TYPE process_max_fds gauge\n",
                      out);
                put_sample(out, "process_max_fds", "", "", NULL,
                           rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
        }
}

KOC_EXPORT int koc_metrics_add_process_collector(koc_metrics *m) {
        return koc_metrics_add_collector(m, process_collector, NULL);
}

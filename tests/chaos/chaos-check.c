/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chaos-check: reads what a chaos run (tests/chaos/run.sh) recorded and
 * prints its invariants, every anomaly with its time, and a timeline (SVG).
 *
 * Leadership is taken from what each replica itself did, never from what it
 * logged after the fact: the leader's "validity" debug lines give, on
 * CLOCK_BOOTTIME, the instant leadership started to read true and the
 * instant it stops reading true (last successful renewal's send time + the
 * renew deadline, DESIGN.md invariant 3).  A SIGSTOPped leader logs nothing
 * while frozen, and its window ends where its last renewal put it, not when
 * it logs the loss after SIGCONT.  The "fenced write" lines give each write's
 * send time (right after the fence passed) and its fencing token (the term).
 *
 * Invariants (any violation fails, exit 1):
 *   - no two replicas' validity windows overlap (goal 0 ms);
 *   - every fenced write lies inside its replica's own window and inside no
 *     other replica's window;
 *   - fencing tokens never go backwards in the order the writes were sent,
 *     nor in the Lease writes the server stored;
 *   - every object reached its end state (--endstate, written by run.sh).
 * Reported, not failed (they depend on timing): the longest time without a
 * leader against what the schedule forced, hand-overs, reconciles begun as
 * the window closed (their writes are fenced), writes the server applied
 * after their sender's window had closed (a delayed or partitioned
 * connection delivers late: only optimistic concurrency guards those).
 *
 *   chaos-check --clock-offset      prints CLOCK_REALTIME - CLOCK_BOOTTIME (us)
 *   chaos-check --replica NAME=LOG ... --events FILE --schedule FILE
 *               [--readyz FILE] [--server-writes FILE | --server-audit FILE]
 *               [--endstate FILE] [--svg FILE] [--title TEXT]
 *               --lease-duration-ms N --renew-deadline-ms N --retry-period-ms N
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REPLICAS 16

typedef struct interval {
        int replica;
        unsigned process; /* which start of the replica (restarts append to its log) */
        uint64_t start, end, term;
} interval;

typedef struct write_rec {
        int replica;
        uint64_t at, term;
        char what[160];
} write_rec;

typedef struct mark {
        uint64_t at;
        int replica; /* -1: all */
        char what[200];
} mark;

typedef struct fault {
        uint64_t start, end;
        int replica; /* -1: all */
        char kind[64];
        uint64_t gap; /* the longest time without a leader it forced */
} fault;

#define VEC(T)                                                                                     \
        struct {                                                                                   \
                T *v;                                                                              \
                size_t n, cap;                                                                     \
        }
#define PUSH(vec, x)                                                                               \
        do {                                                                                       \
                if ((vec).n == (vec).cap) {                                                        \
                        (vec).cap = (vec).cap ? 2 * (vec).cap : 64;                                \
                        (vec).v = realloc((vec).v, (vec).cap * sizeof *(vec).v);                   \
                        if (!(vec).v)                                                              \
                                abort();                                                           \
                }                                                                                  \
                (vec).v[(vec).n++] = (x);                                                          \
        } while (0)

static const char *names[MAX_REPLICAS];
static int n_replicas;
static VEC(interval) windows;
static VEC(write_rec) writes;
static VEC(mark) reconciles_late, marks, anomalies_v, server_late, readyz;
static VEC(fault) faults;
static uint64_t lease_us, renew_us, retry_us, offset_us;
static uint64_t t_begin = UINT64_MAX, t_faults_begin, t_faults_end, t_settled, t_last;
static unsigned n_reconciles, n_reconciles_late_count, n_anomalies, n_ready_200, n_ready_outside;

static uint64_t clock_us(clockid_t c) {
        struct timespec ts;
        clock_gettime(c, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static double rel_s(uint64_t t) {
        return t >= t_begin ? (double)(t - t_begin) / 1e6 : -(double)(t_begin - t) / 1e6;
}

static void anomaly(uint64_t at, int replica, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void anomaly(uint64_t at, int replica, const char *fmt, ...) {
        mark m = {.at = at, .replica = replica};
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m.what, sizeof m.what, fmt, ap);
        va_end(ap);
        PUSH(anomalies_v, m);
}

static int replica_index(const char *name, size_t len) {
        for (int i = 0; i < n_replicas; i++)
                if (strlen(names[i]) == len && strncmp(names[i], name, len) == 0)
                        return i;
        return -1;
}

static bool field_u64(const char *line, const char *key, uint64_t *ret) {
        const char *p = strstr(line, key);
        if (!p)
                return false;
        char *end;
        unsigned long long v = strtoull(p + strlen(key), &end, 10);
        if (end == p + strlen(key))
                return false;
        *ret = v;
        return true;
}

/* time=2026-12-02T01:23:45.123Z -> CLOCK_BOOTTIME us (through the offset). */
static bool wall_to_boot(const char *s, uint64_t *ret) {
        struct tm tm = {0};
        const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!rest)
                return false;
        uint64_t us = (uint64_t)timegm(&tm) * 1000000u;
        if (*rest == '.') {
                uint64_t frac = 0, scale = 1000000;
                for (rest++; *rest >= '0' && *rest <= '9'; rest++) {
                        scale /= 10;
                        frac += (uint64_t)(*rest - '0') * scale;
                }
                us += frac;
        }
        *ret = us - offset_us;
        return true;
}

static void note_time(uint64_t t) {
        if (t && t < t_begin)
                t_begin = t;
        if (t > t_last)
                t_last = t;
}

/* --- replica logs ------------------------------------------------------------------------------
 */

typedef struct open_window {
        bool open;
        interval w;
} open_window;

static void close_window(open_window *o) {
        if (o->open && o->w.end > o->w.start)
                PUSH(windows, o->w);
        o->open = false;
}

static void read_replica(int r, const char *path) {
        FILE *f = fopen(path, "re");
        if (!f) {
                fprintf(stderr, "chaos-check: %s: %m\n", path);
                exit(2);
        }
        char line[4096];
        open_window o = {0};
        unsigned process = 0;
        while (fgets(line, sizeof line, f)) {
                uint64_t now, until, term, at, wall = 0;
                if (strncmp(line, "time=", 5) == 0)
                        wall_to_boot(line + 5, &wall);
                /* A restarted process: its windows are its own, even when it
                 * takes over its predecessor's Lease at once (same identity). */
                if (strstr(line, "component=manager msg=\"starting ")) {
                        close_window(&o);
                        process++;
                        continue;
                }
                if (strstr(line, "msg=\"validity lease=") && field_u64(line, " term=", &term) &&
                    field_u64(line, " now=", &now) && field_u64(line, " valid_until=", &until)) {
                        note_time(now);
                        if (until == 0) {
                                if (o.open && now < o.w.end)
                                        o.w.end = now;
                                close_window(&o);
                        } else if (o.open && now < o.w.end && term == o.w.term) {
                                o.w.end = until;
                        } else {
                                close_window(&o);
                                o = (open_window){.open = until > now,
                                                  .w = {.replica = r,
                                                        .process = process,
                                                        .start = now,
                                                        .end = until,
                                                        .term = term}};
                        }
                } else if (strstr(line, "msg=\"fenced write ") &&
                           field_u64(line, " term=", &term) && field_u64(line, " at=", &at)) {
                        write_rec w = {.replica = r, .at = at, .term = term};
                        const char *k = strstr(line, "key=");
                        const char *e = strstr(line, " term=");
                        if (k && e > k)
                                snprintf(w.what, sizeof w.what, "%.*s", (int)(e - k), k);
                        PUSH(writes, w);
                        note_time(at);
                } else if (strstr(line, "msg=\"reconcile begins ") &&
                           field_u64(line, " at=", &at)) {
                        uint64_t leading = 1;
                        field_u64(line, " leading=", &leading);
                        n_reconciles++;
                        if (!leading) {
                                mark m = {.at = at, .replica = r};
                                const char *k = strstr(line, "key=");
                                snprintf(m.what, sizeof m.what, "%.80s", k ? k : "?");
                                char *sp = strchr(m.what, ' ');
                                if (sp)
                                        *sp = '\0';
                                PUSH(reconciles_late, m);
                        }
                } else if (wall && (strstr(line, "msg=\"lost lease ") ||
                                    strstr(line, "msg=\"became leader ") ||
                                    strstr(line, "msg=\"released lease="))) {
                        mark m = {.at = wall, .replica = r};
                        const char *reason = strstr(line, "reason=");
                        snprintf(m.what, sizeof m.what, "%s",
                                 strstr(line, "lost lease")      ? "lost"
                                 : strstr(line, "became leader") ? "became leader"
                                                                 : "released");
                        if (reason) {
                                size_t n = strcspn(reason + 7, "\" \n");
                                snprintf(m.what, sizeof m.what, "lost (%.*s)", (int)n, reason + 7);
                        }
                        PUSH(marks, m);
                }
        }
        close_window(&o);
        fclose(f);
}

/* --- events, schedule, readyz -------------------------------------------------------------------
 */

static void read_events(const char *path) {
        FILE *f = fopen(path, "re");
        if (!f)
                return;
        char line[512], kind[64], target[64];
        while (fgets(line, sizeof line, f)) {
                unsigned long long t;
                char what[64];
                if (sscanf(line, "%llu %63s", &t, what) != 2)
                        continue;
                note_time(t);
                if (strcmp(what, "faults-begin") == 0)
                        t_faults_begin = t;
                else if (strcmp(what, "faults-end") == 0)
                        t_faults_end = t;
                else if (strcmp(what, "settled") == 0)
                        t_settled = t;
                else if (strcmp(what, "fault-begin") == 0 &&
                         sscanf(line, "%*u %*s %63s %63s", kind, target) == 2) {
                        fault fl = {.start = t, .replica = replica_index(target, strlen(target))};
                        snprintf(fl.kind, sizeof fl.kind, "%s", kind);
                        PUSH(faults, fl);
                } else if (strcmp(what, "fault-end") == 0 && faults.n)
                        faults.v[faults.n - 1].end = t;
                else if ((strcmp(what, "start") == 0 || strcmp(what, "exit") == 0) &&
                         sscanf(line, "%*u %*s %63s %63s", target, kind) >= 1) {
                        mark m = {.at = t, .replica = replica_index(target, strlen(target))};
                        snprintf(m.what, sizeof m.what, "%s%s%s", what,
                                 strcmp(what, "exit") == 0 ? " " : "",
                                 strcmp(what, "exit") == 0 ? kind : "");
                        PUSH(marks, m);
                }
        }
        fclose(f);
}

static void read_readyz(const char *path) {
        FILE *f = path ? fopen(path, "re") : NULL;
        if (!f)
                return;
        char line[256], name[64];
        unsigned long long t;
        int code;
        while (fgets(line, sizeof line, f))
                if (sscanf(line, "%llu %63s %d", &t, name, &code) == 3) {
                        mark m = {.at = t, .replica = replica_index(name, strlen(name))};
                        snprintf(m.what, sizeof m.what, "%d", code);
                        if (m.replica >= 0)
                                PUSH(readyz, m);
                }
        fclose(f);
}

/* --- the server's view ------------------------------------------------------------------------ */

static unsigned srv_lease_writes, srv_lease_ok, srv_other_writes, srv_other_ok, srv_backwards;
static unsigned srv_holder_changes;

/* "koc-example-configmap-mirror/0.1 (chaos-2)" -> 1 */
static int replica_of_agent(const char *ua) {
        const char *open = ua ? strrchr(ua, '(') : NULL;
        const char *close = open ? strchr(open, ')') : NULL;
        return close ? replica_index(open + 1, (size_t)(close - open - 1)) : -1;
}

static bool valid_at(int r, uint64_t t) {
        for (size_t i = 0; i < windows.n; i++)
                if (windows.v[i].replica == r && windows.v[i].start <= t && t < windows.v[i].end)
                        return true;
        return false;
}

/* A successor's window began after the sender's last window ended and before
 * the write was applied: the late write landed in another replica's term. */
static bool successor_before(int r, uint64_t t) {
        uint64_t last_end = 0;
        for (size_t i = 0; i < windows.n; i++)
                if (windows.v[i].replica == r && windows.v[i].end <= t &&
                    windows.v[i].end > last_end)
                        last_end = windows.v[i].end;
        for (size_t i = 0; i < windows.n; i++)
                if (windows.v[i].replica != r && windows.v[i].start >= last_end &&
                    windows.v[i].start <= t)
                        return true;
        return false;
}

static unsigned srv_late_in_successor;

static void server_write(int r, uint64_t received, const char *verb, const char *resource,
                         const char *path, int code, const char *holder, double transitions,
                         bool has_lease) {
        static double last_transitions = -1;
        static char last_holder[128];
        bool ok = code >= 200 && code < 300;
        if (strcmp(resource, "leases") == 0) {
                srv_lease_writes++;
                srv_lease_ok += ok;
                /* Without the stored record (an audit log at level Metadata),
                 * a successful write names its sender as the holder. */
                if (ok && !has_lease && r >= 0)
                        holder = names[r];
                if (ok && has_lease) {
                        if (transitions < last_transitions) {
                                srv_backwards++;
                                anomaly(received, r,
                                        "server stored leaseTransitions %.0f after %.0f",
                                        transitions, last_transitions);
                        }
                        last_transitions = transitions;
                }
                if (ok && holder[0] && strcmp(holder, last_holder) != 0) {
                        srv_holder_changes++;
                        snprintf(last_holder, sizeof last_holder, "%s", holder);
                }
                return;
        }
        if (r < 0)
                return;
        srv_other_writes++;
        srv_other_ok += ok;
        if (ok && !valid_at(r, received)) {
                mark m = {.at = received, .replica = r};
                bool succ = successor_before(r, received);
                srv_late_in_successor += succ;
                snprintf(m.what, sizeof m.what, "%s %s -> %d%s", verb, path, code,
                         succ ? " (a successor led already)" : "");
                PUSH(server_late, m);
        }
}

static void read_server_writes(const char *path) {
        FILE *f = fopen(path, "re");
        if (!f)
                return;
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
                cJSON *o = cJSON_Parse(line);
                if (!o)
                        continue;
                const char *holder = cJSON_GetStringValue(cJSON_GetObjectItem(o, "holder"));
                const char *res = cJSON_GetStringValue(cJSON_GetObjectItem(o, "resource"));
                const char *verb = cJSON_GetStringValue(cJSON_GetObjectItem(o, "verb"));
                const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(o, "path"));
                server_write(replica_of_agent(
                                     cJSON_GetStringValue(cJSON_GetObjectItem(o, "user_agent"))),
                             (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "boottime_us")),
                             verb ? verb : "?", res ? res : "", p ? p : "",
                             (int)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "code")),
                             holder ? holder : "",
                             cJSON_GetNumberValue(cJSON_GetObjectItem(o, "transitions")), holder);
                cJSON_Delete(o);
        }
        free(line);
        fclose(f);
}

static void read_server_audit(const char *path) {
        FILE *f = fopen(path, "re");
        if (!f)
                return;
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
                cJSON *o = cJSON_Parse(line);
                const char *stage = cJSON_GetStringValue(cJSON_GetObjectItem(o, "stage"));
                const char *verb = cJSON_GetStringValue(cJSON_GetObjectItem(o, "verb"));
                const cJSON *ref = cJSON_GetObjectItem(o, "objectRef");
                const char *res = cJSON_GetStringValue(cJSON_GetObjectItem(ref, "resource"));
                /* When the answer was complete: the write was applied by then. */
                const char *rt = cJSON_GetStringValue(cJSON_GetObjectItem(o, "stageTimestamp"));
                uint64_t received;
                if (o && stage && strcmp(stage, "ResponseComplete") == 0 && verb && res && rt &&
                    (strcmp(verb, "create") == 0 || strcmp(verb, "update") == 0 ||
                     strcmp(verb, "patch") == 0 || strcmp(verb, "delete") == 0) &&
                    wall_to_boot(rt, &received)) {
                        const char *uri =
                                cJSON_GetStringValue(cJSON_GetObjectItem(o, "requestURI"));
                        int code = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(
                                cJSON_GetObjectItem(o, "responseStatus"), "code"));
                        server_write(replica_of_agent(cJSON_GetStringValue(
                                             cJSON_GetObjectItem(o, "userAgent"))),
                                     received, verb, res, uri ? uri : "", code, "", 0, false);
                }
                cJSON_Delete(o);
        }
        free(line);
        fclose(f);
}

/* --- analysis --------------------------------------------------------------------------------- */

static int cmp_window(const void *a, const void *b) {
        const interval *x = a, *y = b;
        return x->start < y->start ? -1 : x->start > y->start;
}

static int cmp_write(const void *a, const void *b) {
        const write_rec *x = a, *y = b;
        return x->at < y->at ? -1 : x->at > y->at;
}

static int cmp_mark(const void *a, const void *b) {
        const mark *x = a, *y = b;
        return x->at < y->at ? -1 : x->at > y->at;
}

typedef struct figures {
        uint64_t max_overlap;
        unsigned overlaps, handovers, terms, outside_own, inside_other, backwards;
        uint64_t longest_gap, longest_gap_at, longest_unforced, longest_unforced_at;
        unsigned unforced_gaps;
        uint64_t first_leader;
} figures;

/* The fault whose window (plus the time the election needs to recover:
 * lease + retry period + 1 s) overlaps the gap [from, to), or NULL. */
static fault *forcing_fault(uint64_t from, uint64_t to) {
        fault *best = NULL;
        /* The fault under way (or recovering) when the gap began, else the
         * first one that began during it. */
        for (size_t i = 0; i < faults.n; i++) {
                uint64_t end = (faults.v[i].end ? faults.v[i].end : t_last) + lease_us + retry_us +
                               1000000;
                if (faults.v[i].start <= from && from < end &&
                    (!best || faults.v[i].start > best->start))
                        best = &faults.v[i];
        }
        for (size_t i = 0; i < faults.n && !best; i++)
                if (faults.v[i].start > from && faults.v[i].start < to)
                        best = &faults.v[i];
        return best;
}

static bool exited_between(int r, uint64_t from, uint64_t to) {
        for (size_t i = 0; i < marks.n; i++)
                if (marks.v[i].replica == r && strncmp(marks.v[i].what, "exit", 4) == 0 &&
                    marks.v[i].at >= from && marks.v[i].at <= to)
                        return true;
        return false;
}

/* Where a window ends for the gap figures: a process that exited (SIGKILL)
 * leads no more, even though its window had time left.  The overlap and
 * write checks keep the whole window, which is the stricter view. */
static uint64_t acting_end(const interval *w) {
        uint64_t end = w->end;
        for (size_t i = 0; i < marks.n; i++)
                if (marks.v[i].replica == w->replica && strncmp(marks.v[i].what, "exit", 4) == 0 &&
                    marks.v[i].at >= w->start && marks.v[i].at < end)
                        end = marks.v[i].at;
        return end;
}

static void analyse(figures *fg) {
        /* An empty vector's v is NULL, which qsort may not be given. */
        if (windows.n)
                qsort(windows.v, windows.n, sizeof *windows.v, cmp_window);
        if (writes.n)
                qsort(writes.v, writes.n, sizeof *writes.v, cmp_write);
        /* Overlaps between windows of different replicas. */
        for (size_t i = 0; i < windows.n; i++)
                for (size_t j = i + 1; j < windows.n && windows.v[j].start < windows.v[i].end;
                     j++) {
                        const interval *a = &windows.v[i], *b = &windows.v[j];
                        if (a->replica == b->replica && a->process == b->process)
                                continue;
                        /* One identity, two processes: harmless only when the
                         * older one had exited when the newer one began. */
                        if (a->replica == b->replica &&
                            exited_between(a->replica, a->start, b->start))
                                continue;
                        uint64_t e = a->end < b->end ? a->end : b->end;
                        uint64_t ov = e - b->start;
                        fg->overlaps++;
                        if (ov > fg->max_overlap)
                                fg->max_overlap = ov;
                        anomaly(b->start, b->replica,
                                "OVERLAP %.3f ms: %s (term %" PRIu64 ") and %s (term %" PRIu64
                                ") both valid",
                                (double)ov / 1e3, names[a->replica], a->term, names[b->replica],
                                b->term);
                }
        /* Hand-overs and gaps, on the union of the windows. */
        int last_replica = -1;
        uint64_t last_term = UINT64_MAX, covered_to = 0;
        uint64_t horizon = t_settled ? t_settled : t_last;
        for (size_t i = 0; i < windows.n; i++) {
                const interval *w = &windows.v[i];
                if (!fg->first_leader)
                        fg->first_leader = w->start;
                if (w->term != last_term)
                        fg->terms++;
                if (last_replica >= 0 && w->replica != last_replica)
                        fg->handovers++;
                if (covered_to && w->start > covered_to && w->start <= horizon) {
                        uint64_t gap = w->start - covered_to;
                        if (gap > fg->longest_gap) {
                                fg->longest_gap = gap;
                                fg->longest_gap_at = covered_to;
                        }
                        fault *fl = forcing_fault(covered_to, w->start);
                        if (fl && gap > fl->gap)
                                fl->gap = gap;
                        if (!fl && gap > fg->longest_unforced) {
                                fg->longest_unforced = gap;
                                fg->longest_unforced_at = covered_to;
                        }
                        if (!fl && gap > lease_us + retry_us + 1000000) {
                                fg->unforced_gaps++;
                                anomaly(covered_to, -1,
                                        "no leader for %.0f ms, no fault forcing it (bound %.0f "
                                        "ms)",
                                        (double)gap / 1e3,
                                        (double)(lease_us + retry_us + 1000000) / 1e3);
                        }
                }
                if (acting_end(w) > covered_to)
                        covered_to = acting_end(w);
                last_replica = w->replica;
                last_term = w->term;
        }
        /* Writes: inside their own window, in no other, tokens never backwards. */
        uint64_t max_term = 0;
        int max_term_replica = -1;
        for (size_t i = 0; i < writes.n; i++) {
                const write_rec *w = &writes.v[i];
                bool own = false;
                int other = -1;
                for (size_t j = 0; j < windows.n && windows.v[j].start <= w->at; j++) {
                        if (w->at >= windows.v[j].end)
                                continue;
                        if (windows.v[j].replica == w->replica)
                                own = true;
                        else
                                other = windows.v[j].replica;
                }
                if (!own) {
                        fg->outside_own++;
                        anomaly(w->at, w->replica, "write outside its own window: %s term %" PRIu64,
                                w->what, w->term);
                }
                if (other >= 0) {
                        fg->inside_other++;
                        anomaly(w->at, w->replica, "write while %s was valid: %s term %" PRIu64,
                                names[other], w->what, w->term);
                }
                if (w->term < max_term) {
                        fg->backwards++;
                        anomaly(w->at, w->replica,
                                "fencing token backwards: term %" PRIu64 " after %" PRIu64
                                " (by %s): %s",
                                w->term, max_term, names[max_term_replica], w->what);
                } else {
                        max_term = w->term;
                        max_term_replica = w->replica;
                }
        }
        for (size_t i = 0; i < reconciles_late.n; i++)
                n_reconciles_late_count++;
        /* /readyz (gated on leadership) said 200: the replica must have had a
         * window while the sampler's request ran (up to 0.5 s before it was
         * stamped). */
        for (size_t i = 0; i < readyz.n; i++) {
                const mark *m = &readyz.v[i];
                if (strcmp(m->what, "200") != 0)
                        continue;
                n_ready_200++;
                bool seen = false;
                for (size_t j = 0; j < windows.n && !seen; j++)
                        seen = windows.v[j].replica == m->replica && windows.v[j].start <= m->at &&
                               windows.v[j].end + 500000 > m->at;
                if (!seen) {
                        n_ready_outside++;
                        anomaly(m->at, m->replica, "/readyz answered 200 outside any window");
                }
        }
}

/* --- the picture -------------------------------------------------------------------------------
 */

static void svg_text(FILE *f, const char *s) {
        for (; *s; s++)
                if (*s == '<')
                        fputs("&lt;", f);
                else if (*s == '&')
                        fputs("&amp;", f);
                else if (*s == '>')
                        fputs("&gt;", f);
                else
                        fputc(*s, f);
}

static void write_svg(const char *path, const char *title, const figures *fg, bool pass) {
        FILE *f = fopen(path, "we");
        if (!f) {
                fprintf(stderr, "chaos-check: %s: %m\n", path);
                return;
        }
        const double left = 110, right = 20, top = 60, lane = 46, width = 1400;
        double plot_w = width - left - right;
        uint64_t span = t_last > t_begin ? t_last - t_begin : 1;
        double height = top + lane * n_replicas + 120;
#define X(t) (left + plot_w * (double)((t) > t_begin ? (t)-t_begin : 0) / (double)span)
        fprintf(f,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                "font-family=\"sans-serif\" font-size=\"12\">\n"
                "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                width, height);
        fprintf(f, "<text x=\"%.0f\" y=\"22\" font-size=\"16\">koc chaos run: ", left);
        svg_text(f, title ? title : "");
        fprintf(f, " - %s</text>\n", pass ? "PASS" : "FAIL");
        fprintf(f,
                "<text x=\"%.0f\" y=\"40\" fill=\"#444\">leadership windows (green; /readyz 200 "
                "light above), fenced writes (ticks), faults (shaded), anomalies (red); max "
                "overlap %.3f ms, longest "
                "gap %.0f ms, %u hand-overs, %zu writes</text>\n",
                left, (double)fg->max_overlap / 1e3, (double)fg->longest_gap / 1e3, fg->handovers,
                writes.n);
        /* Faults: shaded bands, over every lane or over the target's lane. */
        for (size_t i = 0; i < faults.n; i++) {
                const fault *fl = &faults.v[i];
                double x0 = X(fl->start), x1 = X(fl->end ? fl->end : t_last);
                double y0 = fl->replica < 0 ? top - 6 : top + lane * fl->replica;
                double h = fl->replica < 0 ? lane * n_replicas + 6 : lane;
                const char *color =
                        strncmp(fl->kind, "api-", 4) == 0 || strncmp(fl->kind, "all-", 4) == 0
                                ? "#f5c26b"
                        : strncmp(fl->kind, "sig", 3) == 0 ? "#c9a0dc"
                                                           : "#8ec5ea";
                fprintf(f,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
                        "opacity=\"0.55\"><title>%s %.1f-%.1f s</title></rect>\n",
                        x0, y0, x1 - x0 > 1 ? x1 - x0 : 1, h, color, fl->kind, rel_s(fl->start),
                        rel_s(fl->end));
                fprintf(f,
                        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" transform=\"rotate(60 "
                        "%.1f %.1f)\">%s</text>\n",
                        x0, top + lane * n_replicas + 12, x0, top + lane * n_replicas + 12,
                        fl->kind);
        }
        for (int r = 0; r < n_replicas; r++) {
                double y = top + lane * r;
                fprintf(f,
                        "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                        "<text x=\"8\" y=\"%.1f\">%s</text>\n",
                        left, y + lane, width - right, y + lane, y + lane / 2 + 4, names[r]);
        }
        for (size_t i = 0; i < windows.n; i++) {
                const interval *w = &windows.v[i];
                double y = top + lane * w->replica + 10;
                fprintf(f,
                        "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" "
                        "fill=\"#2e9d4f\"><title>%s term %" PRIu64 ": %.3f-%.3f s</title></rect>\n",
                        X(w->start), y,
                        X(w->end) - X(w->start) > 0.5 ? X(w->end) - X(w->start) : 0.5, lane - 24,
                        names[w->replica], w->term, rel_s(w->start), rel_s(w->end));
        }
        /* /readyz answered 200 (gated on leadership): a thin strip above the
         * window, one rectangle per run of such answers. */
        if (readyz.n)
                qsort(readyz.v, readyz.n, sizeof *readyz.v, cmp_mark);
        for (int r = 0; r < n_replicas; r++) {
                uint64_t run_start = 0, run_end = 0;
                for (size_t i = 0; i <= readyz.n; i++) {
                        const mark *m = i < readyz.n ? &readyz.v[i] : NULL;
                        if (m && m->replica != r)
                                continue;
                        bool ok = m && strcmp(m->what, "200") == 0;
                        if (ok && run_end && m->at <= run_end + 1000000) {
                                run_end = m->at + 500000;
                                continue;
                        }
                        if (run_end)
                                fprintf(f,
                                        "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"3\" "
                                        "fill=\"#9fd8a8\"/>\n",
                                        X(run_start), top + lane * r + 4,
                                        X(run_end) - X(run_start));
                        run_start = run_end = 0;
                        if (ok) {
                                run_start = m->at;
                                run_end = m->at + 500000;
                        }
                }
        }
        /* Writes: one tick per 3 pixels at most (the picture stays small). */
        double last_x[MAX_REPLICAS];
        for (int r = 0; r < MAX_REPLICAS; r++)
                last_x[r] = -1;
        for (size_t i = 0; i < writes.n; i++) {
                const write_rec *w = &writes.v[i];
                double x = X(w->at);
                if (last_x[w->replica] >= 0 && x - last_x[w->replica] < 3)
                        continue;
                last_x[w->replica] = x;
                double y = top + lane * w->replica;
                fprintf(f,
                        "<line x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\" stroke=\"#0b3d1c\" "
                        "stroke-width=\"0.6\"/>\n",
                        x, y + lane - 12, x, y + lane - 4);
        }
        /* Process events and what the replicas logged. */
        for (size_t i = 0; i < marks.n; i++) {
                const mark *m = &marks.v[i];
                if (m->replica < 0)
                        continue;
                double y = top + lane * m->replica + 6;
                const char *c = strncmp(m->what, "exit", 4) == 0    ? "#7a1fa2"
                                : strncmp(m->what, "start", 5) == 0 ? "#1f4fa2"
                                                                    : "#555";
                fprintf(f,
                        "<circle cx=\"%.2f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"><title>%s %.3f "
                        "s: %s</title></circle>\n",
                        X(m->at), y, c, names[m->replica], rel_s(m->at), m->what);
        }
        for (size_t i = 0; i < anomalies_v.n; i++) {
                const mark *m = &anomalies_v.v[i];
                double y0 = m->replica < 0 ? top : top + lane * m->replica;
                double h = m->replica < 0 ? lane * n_replicas : lane;
                fprintf(f,
                        "<line x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\" stroke=\"red\" "
                        "stroke-width=\"2\"><title>",
                        X(m->at), y0, X(m->at), y0 + h);
                svg_text(f, m->what);
                fputs("</title></line>\n", f);
        }
        /* Time axis. */
        double axis_y = top + lane * n_replicas;
        unsigned step = span > 1200000000u  ? 60
                        : span > 300000000u ? 30
                        : span > 90000000u  ? 10
                                            : 5;
        for (unsigned s = 0; (uint64_t)s * 1000000u <= span; s += step)
                fprintf(f,
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/>"
                        "<text x=\"%.1f\" y=\"%.1f\" fill=\"#666\" font-size=\"10\">%us</text>\n",
                        X(t_begin + (uint64_t)s * 1000000u), axis_y,
                        X(t_begin + (uint64_t)s * 1000000u), axis_y + 4,
                        X(t_begin + (uint64_t)s * 1000000u) + 2, axis_y + 96, s);
        fprintf(f,
                "<text x=\"%.0f\" y=\"%.0f\" fill=\"#444\">bands: orange API faults (all "
                "replicas), violet process faults, blue network faults (one replica)</text>\n",
                left, height - 6);
        fputs("</svg>\n", f);
        fclose(f);
#undef X
}

/* --- main --------------------------------------------------------------------------------------
 */

int main(int argc, char **argv) {
        const char *replica_logs[MAX_REPLICAS] = {0};
        const char *events = NULL, *schedule = NULL, *readyz_path = NULL, *srv_writes = NULL,
                   *srv_audit = NULL, *endstate = NULL, *svg = NULL, *title = NULL;
        enum {
                O_OFFSET = 256,
                O_REPLICA,
                O_EVENTS,
                O_SCHEDULE,
                O_READYZ,
                O_WRITES,
                O_AUDIT,
                O_END,
                O_SVG,
                O_TITLE,
                O_LEASE,
                O_RENEW,
                O_RETRY
        };
        static const struct option opts[] = {
                {"clock-offset", no_argument, NULL, O_OFFSET},
                {"replica", required_argument, NULL, O_REPLICA},
                {"events", required_argument, NULL, O_EVENTS},
                {"schedule", required_argument, NULL, O_SCHEDULE},
                {"readyz", required_argument, NULL, O_READYZ},
                {"server-writes", required_argument, NULL, O_WRITES},
                {"server-audit", required_argument, NULL, O_AUDIT},
                {"endstate", required_argument, NULL, O_END},
                {"svg", required_argument, NULL, O_SVG},
                {"title", required_argument, NULL, O_TITLE},
                {"lease-duration-ms", required_argument, NULL, O_LEASE},
                {"renew-deadline-ms", required_argument, NULL, O_RENEW},
                {"retry-period-ms", required_argument, NULL, O_RETRY},
                {}};
        offset_us = clock_us(CLOCK_REALTIME) - clock_us(CLOCK_BOOTTIME);
        int o;
        while ((o = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                switch (o) {
                case O_OFFSET:
                        printf("%" PRIu64 "\n", offset_us);
                        return 0;
                case O_REPLICA: {
                        char *eq = strchr(optarg, '=');
                        if (!eq || n_replicas == MAX_REPLICAS) {
                                fprintf(stderr, "chaos-check: --replica NAME=LOG (at most %d)\n",
                                        MAX_REPLICAS);
                                return 2;
                        }
                        *eq = '\0';
                        names[n_replicas] = optarg;
                        replica_logs[n_replicas++] = eq + 1;
                        break;
                }
                case O_EVENTS:
                        events = optarg;
                        break;
                case O_SCHEDULE:
                        schedule = optarg;
                        break;
                case O_READYZ:
                        readyz_path = optarg;
                        break;
                case O_WRITES:
                        srv_writes = optarg;
                        break;
                case O_AUDIT:
                        srv_audit = optarg;
                        break;
                case O_END:
                        endstate = optarg;
                        break;
                case O_SVG:
                        svg = optarg;
                        break;
                case O_TITLE:
                        title = optarg;
                        break;
                case O_LEASE:
                        lease_us = strtoull(optarg, NULL, 10) * 1000u;
                        break;
                case O_RENEW:
                        renew_us = strtoull(optarg, NULL, 10) * 1000u;
                        break;
                case O_RETRY:
                        retry_us = strtoull(optarg, NULL, 10) * 1000u;
                        break;
                default:
                        return 2;
                }
        }
        if (!n_replicas || !lease_us || !renew_us || !retry_us) {
                fprintf(stderr, "chaos-check: --replica, --lease-duration-ms, --renew-deadline-ms "
                                "and --retry-period-ms are needed\n");
                return 2;
        }
        (void)schedule;
        read_events(events);
        for (int r = 0; r < n_replicas; r++)
                read_replica(r, replica_logs[r]);
        if (srv_writes)
                read_server_writes(srv_writes);
        if (srv_audit)
                read_server_audit(srv_audit);
        read_readyz(readyz_path);
        if (t_begin == UINT64_MAX)
                t_begin = 0;
        figures fg = {0};
        analyse(&fg);

        char end_line[256] = "no end state recorded";
        unsigned end_wrong = 1;
        FILE *ef = endstate ? fopen(endstate, "re") : NULL;
        if (ef) {
                if (fgets(end_line, sizeof end_line, ef)) {
                        end_line[strcspn(end_line, "\n")] = '\0';
                        const char *w = strstr(end_line, "wrong=");
                        end_wrong = w && w[6] >= '0' && w[6] <= '9' ? (unsigned)atoi(w + 6) : 1;
                }
                char l[512];
                while (fgets(l, sizeof l, ef)) {
                        l[strcspn(l, "\n")] = '\0';
                        anomaly(t_settled ? t_settled : t_last, -1, "end state: %s", l);
                }
                fclose(ef);
        }
        bool pass = fg.overlaps == 0 && fg.outside_own == 0 && fg.inside_other == 0 &&
                    fg.backwards == 0 && srv_backwards == 0 && end_wrong == 0 && windows.n > 0;

        unsigned stopped_ms = 0;
        for (size_t i = 0; i < faults.n; i++)
                if (strcmp(faults.v[i].kind, "sigstop-leader") == 0 && faults.v[i].end)
                        stopped_ms += (unsigned)((faults.v[i].end - faults.v[i].start) / 1000);
        printf("== chaos-check: %s\n", title ? title : "");
        printf("  replicas %d, faults %zu, lease %.1f s / renew deadline %.1f s / retry %.0f ms\n",
               n_replicas, faults.n, (double)lease_us / 1e6, (double)renew_us / 1e6,
               (double)retry_us / 1e3);
        printf("  leadership windows:          %zu in %u terms, %u hand-overs\n", windows.n,
               fg.terms, fg.handovers);
        printf("  longest overlap of two leaders: %.3f ms (%u overlaps; goal 0)\n",
               (double)fg.max_overlap / 1e3, fg.overlaps);
        printf("  longest time without a leader: %.0f ms at %.1f s (%s)\n",
               (double)fg.longest_gap / 1e3, rel_s(fg.longest_gap_at),
               forcing_fault(fg.longest_gap_at, fg.longest_gap_at + fg.longest_gap)
                       ? forcing_fault(fg.longest_gap_at, fg.longest_gap_at + fg.longest_gap)->kind
                       : "no fault");
        printf("  longest gap no fault forced: %.0f ms (bound lease + retry + 1 s = %.0f ms; "
               "%u over it)\n",
               (double)fg.longest_unforced / 1e3, (double)(lease_us + retry_us + 1000000) / 1e3,
               fg.unforced_gaps);
        printf("  fenced writes:               %zu; outside the writer's window %u, while "
               "another was valid %u (goal 0)\n",
               writes.n, fg.outside_own, fg.inside_other);
        printf("  fencing tokens backwards:    %u in sent writes, %u in stored Leases (goal 0)\n",
               fg.backwards, srv_backwards);
        printf("  reconciles:                  %u; begun as the window closed (leading=0, "
               "writes fenced) %u\n",
               n_reconciles, n_reconciles_late_count);
        if (srv_writes || srv_audit)
                printf("  server saw:                  %u Lease writes (%u ok; %u holders in "
                       "turn), "
                       "%u other writes by replicas (%u ok)\n"
                       "  applied late:                %zu successful writes applied after their "
                       "sender's window closed, %u of them once a successor led\n",
                       srv_lease_writes, srv_lease_ok, srv_holder_changes, srv_other_writes,
                       srv_other_ok, server_late.n, srv_late_in_successor);
        printf("  /readyz samples:             %u answered 200, %u of them outside the replica's "
               "window\n",
               n_ready_200, n_ready_outside);
        printf("  leader frozen by SIGSTOP:    %u ms in total\n", stopped_ms);
        printf("  end state:                   %s\n", end_line);
        if (anomalies_v.n)
                qsort(anomalies_v.v, anomalies_v.n, sizeof *anomalies_v.v, cmp_mark);
        n_anomalies = (unsigned)anomalies_v.n;
        printf("\n== faults (time from the first event)\n");
        for (size_t i = 0; i < faults.n; i++)
                printf("  %7.2f-%7.2f s  %-20s %s\n", rel_s(faults.v[i].start),
                       rel_s(faults.v[i].end), faults.v[i].kind,
                       faults.v[i].replica >= 0 ? names[faults.v[i].replica] : "all");
        printf("\n== time without a leader, by fault (longest gap / fault length, max over "
               "faults of that kind)\n");
        for (size_t i = 0; i < faults.n; i++) {
                bool seen = false;
                for (size_t j = 0; j < i && !seen; j++)
                        seen = strcmp(faults.v[j].kind, faults.v[i].kind) == 0;
                if (seen)
                        continue;
                uint64_t gap = 0, len = 0;
                unsigned n = 0, with_gap = 0;
                for (size_t j = i; j < faults.n; j++) {
                        const fault *fl = &faults.v[j];
                        if (strcmp(fl->kind, faults.v[i].kind) != 0)
                                continue;
                        n++;
                        with_gap += fl->gap > 0;
                        if (fl->gap >= gap) {
                                gap = fl->gap;
                                len = fl->end > fl->start ? fl->end - fl->start : 0;
                        }
                }
                printf("  %-20s %2u times, %2u left no leader; longest %6.0f ms (that fault "
                       "lasted %.0f ms)\n",
                       faults.v[i].kind, n, with_gap, (double)gap / 1e3, (double)len / 1e3);
        }
        printf("\n== anomalies (%u)\n", n_anomalies);
        for (size_t i = 0; i < anomalies_v.n; i++)
                printf("  %8.3f s  %-10s %s\n", rel_s(anomalies_v.v[i].at),
                       anomalies_v.v[i].replica >= 0 ? names[anomalies_v.v[i].replica] : "-",
                       anomalies_v.v[i].what);
        if (reconciles_late.n) {
                printf("\n== reconciles begun as the window closed (%zu)\n", reconciles_late.n);
                for (size_t i = 0; i < reconciles_late.n && i < 50; i++)
                        printf("  %8.3f s  %-10s %s\n", rel_s(reconciles_late.v[i].at),
                               names[reconciles_late.v[i].replica], reconciles_late.v[i].what);
        }
        if (server_late.n) {
                qsort(server_late.v, server_late.n, sizeof *server_late.v, cmp_mark);
                printf("\n== writes the server applied after the sender's window closed (%zu)\n",
                       server_late.n);
                for (size_t i = 0; i < server_late.n && i < 50; i++)
                        printf("  %8.3f s  %-10s %s\n", rel_s(server_late.v[i].at),
                               names[server_late.v[i].replica], server_late.v[i].what);
        }
        if (svg)
                write_svg(svg, title, &fg, pass);
        printf("\nchaos-check: %s\n", pass ? "PASS" : "FAIL");
        return pass ? 0 : 1;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc-example-configmap-mirror: a small operator on the controller runtime.
 *
 * ConfigMaps labelled koc.example/mirror=true are copied into every namespace
 * listed in their annotation koc.example/mirror-to ("a,b,c") and kept in sync;
 * a changed or deleted copy is restored.  When the source goes, a finalizer
 * makes sure its copies go first.  The source's annotation
 * koc.example/mirror-status says how many copies are in sync ("2/2 in sync"),
 * and a failure is recorded as a Warning Event on the source.
 *
 * The operator acts with its own rights on names that anyone who may write a
 * ConfigMap chooses, so it never lets those names pick what it writes:
 *   - it writes only into the namespaces its deployer allowed with
 *     --target-namespaces=a,b (none by default): a source cannot make it
 *     create a ConfigMap anywhere else;
 *   - every mirror-to entry must be a namespace (a DNS-1123 label), nothing
 *     else; anything else is refused before it can become part of a request;
 *     at most MAX_TARGETS entries of one source are looked at;
 *   - it creates a copy only where none exists, and updates or deletes only a
 *     ConfigMap that it created for this very source (the annotation
 *     koc.example/mirror-of: NS/NAME), checked on the object as read, with the
 *     write conditional on that object's resourceVersion, so that the check
 *     and the write act on the same version (a 409 means read again);
 *   - a target it does not own is left alone: a Warning Event on the source
 *     and one warn line (rate-limited) say so.
 *
 *   koc-example-configmap-mirror --kubeconfig=kc.yaml --identity=a \
 *           --target-namespaces=team-a,team-b
 *
 * Run two or more copies: one reconciles, the others keep a warm cache and
 * take over when it goes.  Every flag of the manager is accepted (--help).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <koc/koc.h>

#define FINALIZER "koc.example/mirror"
#define TARGETS "koc.example/mirror-to"
#define STATUS "koc.example/mirror-status"
#define ORIGIN "koc.example/mirror-of"
#define COPY_LABEL "koc.example/mirror-copy"
#define LOG "configmap-mirror"
/* Entries of one source's mirror-to that are looked at; the rest are
 * refused, so that one source cannot make every reconcile cost thousands of
 * requests. */
#define MAX_TARGETS 64

static const koc_resource configmaps = {
        .version = "v1", .resource = "configmaps", .kind = "ConfigMap", .namespaced = true};

/* metadata.SECTION.KEY as a string, "" when absent. */
static const char *meta(const cJSON *o, const char *section, const char *key) {
        const cJSON *md = cJSON_GetObjectItem(o, "metadata");
        const char *v =
                cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(md, section), key));
        return v ? v : "";
}

static const char *meta_field(const cJSON *o, const char *field) {
        const char *v = cJSON_GetStringValue(
                cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metadata"), field));
        return v ? v : "";
}

/* A value from an object, made safe to print: printable ASCII as it is, every
 * other byte (and '"', '\\') as \xNN, cut at 64 characters. */
static const char *printable(const char *s, char *buf, size_t size) {
        size_t o = 0;
        for (; *s && o + 8 < size && o < 64; s++) {
                unsigned char c = (unsigned char)*s;
                if (c >= ' ' && c < 0x7f && c != '"' && c != '\\')
                        buf[o++] = (char)c;
                else
                        o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        }
        snprintf(buf + o, size - o, "%s", *s ? "..." : "");
        return buf;
}

/* A namespace is a DNS-1123 label: 1-63 of [a-z0-9-], starting and ending
 * with a letter or digit.  Nothing else ("/", "?", "..", "%") can pass. */
static bool is_namespace(const char *s, size_t n) {
        if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                        return false;
        return true;
}

/* --target-namespaces: the namespaces copies may be written into, as given
 * (comma-separated, each one validated); NULL or "": none. */
static const char *allowed_namespaces;

static bool list_contains(const char *list, const char *ns) {
        size_t len = strlen(ns);
        for (const char *p = list ? list : ""; *p;) {
                size_t n = strcspn(p, ",");
                if (n == len && memcmp(p, ns, n) == 0)
                        return true;
                p += n;
                p += *p == ',';
        }
        return false;
}

/* Refusals are said at most 5 times per 10 s (the first line after that
 * counts the rest), so a source that names a hundred foreign targets does
 * not flood the log; the Event on the source is the per-object record. */
static void warn_limited(const char *fmt, const char *a, const char *b, const char *c) {
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        static uint64_t window;
        static unsigned used, held;
        uint64_t now = koc_now_boottime_usec();
        unsigned before = 0;
        pthread_mutex_lock(&lock);
        if (window == 0 || now - window >= 10 * KOC_USEC_PER_SEC) {
                window = now;
                used = 0;
                before = held;
                held = 0;
        }
        bool say = used < 5;
        if (say)
                used++;
        else
                held++;
        pthread_mutex_unlock(&lock);
        if (!say)
                return;
        char line[1024];
        snprintf(line, sizeof line, fmt, a, b, c);
        if (before)
                koc_log_warn(LOG, "%s (%u similar held back)", line, before);
        else
                koc_log_warn(LOG, "%s", line);
}

/* What one pass over the targets found. */
typedef struct tally {
        int want;    /* entries, own namespace excluded */
        int ok;      /* copies in sync (apply) or gone (cleanup) */
        int refused; /* invalid entries and targets this operator does not own */
} tally;

typedef enum outcome { OUTCOME_OK, OUTCOME_FAILED, OUTCOME_REFUSED } outcome;

typedef outcome (*target_fn)(koc_reconcile_context *ctx, const cJSON *src, const char *ns);

static void refuse(koc_reconcile_context *ctx, const cJSON *src, const char *reason,
                   const char *what, const char *why) {
        char origin[512], msg[512];
        snprintf(origin, sizeof origin, "%s/%s", koc_reconcile_get_namespace(ctx),
                 koc_reconcile_get_name(ctx));
        snprintf(msg, sizeof msg, "mirror target \"%.200s\" refused: %.250s", what, why);
        koc_reconcile_record_event(ctx, src, "Warning", reason, msg);
        warn_limited("source=%.300s mirror target \"%.200s\" refused: %.250s", origin, what, why);
}

/* Calls fn for each entry of the source's target list except its own
 * namespace; an entry that is not a namespace, a namespace not allowed by
 * --target-namespaces, and every entry after the first MAX_TARGETS are
 * refused. */
static tally for_each_target(koc_reconcile_context *ctx, const cJSON *src, target_fn fn) {
        tally t = {0};
        int entries = 0, excess = 0;
        const char *list = meta(src, "annotations", TARGETS);
        for (const char *p = list; *p;) {
                p += strspn(p, ", \t");
                size_t n = strcspn(p, ",");
                while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
                        n--;
                if (n == 0)
                        break;
                const char *entry = p;
                p += n;
                if (++entries > MAX_TARGETS) {
                        /* Counted, not read: no request for any of them. */
                        t.want++;
                        t.refused++;
                        excess++;
                        continue;
                }
                char ns[64];
                if (!is_namespace(entry, n)) {
                        char raw[1024], shown[600];
                        snprintf(raw, sizeof raw, "%.*s", (int)(n < 1000 ? n : 1000), entry);
                        t.want++;
                        t.refused++;
                        refuse(ctx, src, "InvalidMirrorTarget", printable(raw, shown, sizeof shown),
                               "not a namespace (a DNS-1123 label)");
                        continue;
                }
                memcpy(ns, entry, n);
                ns[n] = '\0';
                if (strcmp(ns, koc_reconcile_get_namespace(ctx)) == 0)
                        continue;
                t.want++;
                if (!list_contains(allowed_namespaces, ns)) {
                        /* Deny by default: whoever deployed the operator
                         * chose where it may write, not whoever wrote the
                         * source.  Nothing is read or written there. */
                        char what[320];
                        snprintf(what, sizeof what, "%s/%s", ns, koc_reconcile_get_name(ctx));
                        t.refused++;
                        refuse(ctx, src, "MirrorTargetNotAllowed", what,
                               "the namespace is not one this operator may write into "
                               "(--target-namespaces); it is left untouched");
                        continue;
                }
                outcome o = fn(ctx, src, ns);
                t.ok += o == OUTCOME_OK;
                t.refused += o == OUTCOME_REFUSED;
        }
        if (excess) {
                char what[64], why[160];
                snprintf(what, sizeof what, "%d entries after the first %d", excess, MAX_TARGETS);
                snprintf(why, sizeof why,
                         "a source may name at most %d targets; the rest are ignored",
                         MAX_TARGETS);
                refuse(ctx, src, "TooManyMirrorTargets", what, why);
        }
        return t;
}

/* Whether cur (a ConfigMap as read) is this source's copy: made by this
 * operator for exactly this source. */
static bool owned(koc_reconcile_context *ctx, const cJSON *cur) {
        char origin[512];
        snprintf(origin, sizeof origin, "%s/%s", koc_reconcile_get_namespace(ctx),
                 koc_reconcile_get_name(ctx));
        return strcmp(meta(cur, "annotations", ORIGIN), origin) == 0 &&
               strcmp(meta(cur, "labels", COPY_LABEL), "true") == 0;
}

static outcome not_owned(koc_reconcile_context *ctx, const cJSON *src, const char *ns) {
        char what[320];
        snprintf(what, sizeof what, "%s/%s", ns, koc_reconcile_get_name(ctx));
        refuse(ctx, src, "MirrorTargetNotOwned", what,
               "a ConfigMap of that name exists and was not made by this operator for this "
               "source; it is left untouched");
        return OUTCOME_REFUSED;
}

/* Makes the copy in ns match the source. */
static outcome sync_copy(koc_reconcile_context *ctx, const cJSON *src, const char *ns) {
        _koc_cleanup_(koc_response_freep) koc_response *cur = NULL, *resp = NULL;
        const char *name = koc_reconcile_get_name(ctx);
        char origin[512];
        snprintf(origin, sizeof origin, "%s/%s", koc_reconcile_get_namespace(ctx), name);

        if (koc_reconcile_get(ctx, &configmaps, ns, name, &cur) < 0 || cur->error < 0 ||
            (cur->status != 200 && cur->status != 404))
                return OUTCOME_FAILED;
        if (cur->status == 200 && !owned(ctx, cur->body))
                return not_owned(ctx, src, ns);
        const cJSON *data = cJSON_GetObjectItem(src, "data");
        if (cur->status == 200 && cJSON_Compare(cJSON_GetObjectItem(cur->body, "data"), data, true))
                return OUTCOME_OK;
        cJSON *copy = cJSON_CreateObject();
        cJSON *md = cJSON_AddObjectToObject(copy, "metadata");
        cJSON_AddStringToObject(md, "name", name);
        cJSON_AddStringToObject(md, "namespace", ns);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "labels"), COPY_LABEL, "true");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "annotations"), ORIGIN, origin);
        cJSON_AddItemToObject(copy, "data",
                              data ? cJSON_Duplicate(data, true) : cJSON_CreateObject());
        int r;
        if (cur->status == 200) {
                /* Replace exactly the copy that was checked: if anyone changed
                 * it since (took it over, say), the server answers 409 and the
                 * next attempt checks again. */
                cJSON_AddStringToObject(md, "resourceVersion",
                                        meta_field(cur->body, "resourceVersion"));
                r = koc_reconcile_update(ctx, &configmaps, copy, &resp);
        } else
                /* Only where nothing exists: a 409 (someone created one
                 * meanwhile) is checked again on the next attempt. */
                r = koc_reconcile_create(ctx, &configmaps, ns, copy, &resp);
        cJSON_Delete(copy);
        if (r < 0 || resp->error < 0 || resp->status >= 300) {
                char msg[256];
                snprintf(msg, sizeof msg, "cannot write the copy in namespace %s: %s", ns,
                         r < 0 ? strerror(-r) : resp->message);
                koc_reconcile_record_event(ctx, src, "Warning", "MirrorFailed", msg);
                return OUTCOME_FAILED;
        }
        return OUTCOME_OK;
}

/* Deletes the copy in ns if, and only if, it is this source's copy. */
static outcome delete_copy(koc_reconcile_context *ctx, const cJSON *src, const char *ns) {
        _koc_cleanup_(koc_response_freep) koc_response *cur = NULL, *resp = NULL;
        const char *name = koc_reconcile_get_name(ctx);
        if (koc_reconcile_get(ctx, &configmaps, ns, name, &cur) < 0 || cur->error < 0)
                return OUTCOME_FAILED;
        if (cur->status == 404)
                return OUTCOME_OK;
        if (cur->status != 200)
                return OUTCOME_FAILED;
        if (!owned(ctx, cur->body))
                return not_owned(ctx, src, ns);
        /* Delete exactly the version that was checked (uid and
         * resourceVersion preconditions); 409 means read again. */
        cJSON *opts = cJSON_CreateObject();
        cJSON *pre = cJSON_AddObjectToObject(opts, "preconditions");
        cJSON_AddStringToObject(pre, "uid", meta_field(cur->body, "uid"));
        cJSON_AddStringToObject(pre, "resourceVersion", meta_field(cur->body, "resourceVersion"));
        int r = koc_reconcile_delete_with_options(ctx, &configmaps, ns, name, opts, &resp);
        cJSON_Delete(opts);
        return r == 0 && resp->error == 0 && (resp->status < 300 || resp->status == 404)
                       ? OUTCOME_OK
                       : OUTCOME_FAILED;
}

static koc_result apply(koc_reconcile_context *ctx, const cJSON *src, void *userdata) {
        tally t = for_each_target(ctx, src, sync_copy);
        char status[96];
        if (t.refused)
                snprintf(status, sizeof status, "%d/%d in sync, %d refused", t.ok, t.want,
                         t.refused);
        else
                snprintf(status, sizeof status, "%d/%d in sync", t.ok, t.want);
        if (strcmp(meta(src, "annotations", STATUS), status) != 0) {
                _koc_cleanup_(koc_response_freep) koc_response *resp = NULL;
                cJSON *p = cJSON_CreateObject();
                cJSON_AddStringToObject(
                        cJSON_AddObjectToObject(cJSON_AddObjectToObject(p, "metadata"),
                                                "annotations"),
                        STATUS, status);
                int r = koc_reconcile_patch(ctx, &configmaps, koc_reconcile_get_namespace(ctx),
                                            koc_reconcile_get_name(ctx), KOC_PATCH_MERGE, p, &resp);
                cJSON_Delete(p);
                /* A transport failure (resp->error; the status is 0, or 200
                 * when the body broke off) is a failure too: whether the
                 * status was written is unknown, so it is retried. */
                if (r < 0)
                        return koc_result_error(r);
                if (resp->error < 0 || resp->status >= 300)
                        return koc_result_error(koc_response_errno(resp));
        }
        /* Failed copies are retried with backoff; healthy ones, and refused
         * targets (which may be freed later), re-checked hourly. */
        return t.ok + t.refused < t.want ? koc_result_error(-EAGAIN)
                                         : koc_result_requeue_after(3600 * KOC_USEC_PER_SEC);
}

static koc_result cleanup(koc_reconcile_context *ctx, const cJSON *src, void *userdata) {
        /* A refused target is not ours to delete: it does not hold the
         * source's deletion back. */
        tally t = for_each_target(ctx, src, delete_copy);
        return t.ok + t.refused == t.want ? koc_result_done() : koc_result_error(-EAGAIN);
}

static koc_result reconcile(koc_reconcile_context *ctx, void *userdata) {
        return koc_reconcile_finalizer(ctx, FINALIZER, apply, cleanup, NULL);
}

/* A copy's event reconciles its source, so tampering is undone.  The
 * annotation only picks which source is looked at again; what is written is
 * decided by that source and the ownership check. */
static void copy_to_source(const cJSON *copy, koc_keys *out, void *userdata) {
        char origin[512];
        snprintf(origin, sizeof origin, "%s", meta(copy, "annotations", ORIGIN));
        char *slash = strchr(origin, '/');
        if (slash) {
                *slash = '\0';
                koc_keys_add(out, origin, slash + 1);
        }
}

/* Each entry of --target-namespaces must be a namespace.  -EINVAL (with a
 * message on stderr) otherwise. */
static int check_target_namespaces(void) {
        static const char flag[] = "target-namespaces";
        for (const char *p = allowed_namespaces ? allowed_namespaces : ""; *p;) {
                size_t n = strcspn(p, ",");
                if (!is_namespace(p, n)) {
                        char raw[1024], shown[600];
                        snprintf(raw, sizeof raw, "%.*s", (int)(n < 1000 ? n : 1000), p);
                        fprintf(stderr,
                                "invalid --%s entry \"%s\": not a namespace (a DNS-1123 label)\n",
                                flag, printable(raw, shown, sizeof shown));
                        return -EINVAL;
                }
                p += n;
                p += *p == ',';
        }
        return 0;
}

int main(int argc, char *argv[]) {
        koc_manager_config cfg;
        koc_error err = {0};
        koc_manager_config_init(&cfg);
        cfg.leader_election_id = "koc-example-configmap-mirror";
        koc_manager_add_flag_string(&cfg, "target-namespaces", NULL,
                                    "Comma-separated namespaces that copies may be written "
                                    "into; a mirror-to entry naming any other namespace is "
                                    "refused (default: none, so nothing is mirrored).",
                                    &allowed_namespaces);
        int r = koc_manager_parse_flags(&cfg, argc, argv, &err);
        if (r == KOC_MANAGER_FLAGS_HELP)
                return 0;
        if (r != 0)
                return fprintf(stderr, "%s\n", err.message), 2;
        if (check_target_namespaces() < 0)
                return 2;
        if ((!allowed_namespaces || !*allowed_namespaces) && !cfg.print_rbac)
                koc_log_warn(LOG, "no --target-namespaces given: every mirror-to entry will be "
                                  "refused");

        _koc_cleanup_(koc_manager_unrefp) koc_manager *m = NULL;
        if (koc_manager_new(NULL, &cfg, &m, &err) < 0)
                return fprintf(stderr, "%s\n", err.message), 1;
        /* The identity in the User-Agent lets the API server's logs (audit,
         * koc-apiserver --log-writes) tell the replicas' requests apart. */
        char ua[320];
        snprintf(ua, sizeof ua, "koc-example-configmap-mirror/0.1 (%s)",
                 koc_manager_get_identity(m));
        koc_client_set_user_agent(koc_manager_get_client(m), ua);

        koc_controller_options o;
        koc_controller_options_init(&o);
        o.name = "configmap-mirror";
        o.resource = configmaps;
        o.label_selector = "koc.example/mirror=true";
        o.reconcile = reconcile;
        koc_controller *c = NULL;
        /* Its writes, for --print-rbac: copies are read, created, updated
         * and deleted, sources get a finalizer (patch). */
        koc_manager_declare_access(m, &configmaps, "get,create,update,patch,delete");
        if (koc_controller_new(m, &o, &c, &err) < 0 ||
            koc_controller_watches(c, &configmaps, COPY_LABEL "=true", copy_to_source, NULL, NULL,
                                   &err) < 0)
                return fprintf(stderr, "%s\n", err.message), 1;
        r = koc_manager_run(m);
        koc_controller_unref(c);
        return r;
}

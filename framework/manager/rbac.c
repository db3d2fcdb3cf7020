/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The RBAC rules a program needs, derived from what its manager knows:
 * every informer of its cache (list, watch), the accesses the program and
 * its controllers declare (koc_manager_declare_access), and the Lease of
 * leader election.  --print-rbac prints them as Helm values for
 * charts/koc-example (rbac.rules, rbac.allNamespaces, leaderElection.rbac).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framework/cache/cache-internal.h"
#include "framework/manager/manager-internal.h"
#include "koc/manager.h"

#include "core/util.h"

/* Sorted as kubebuilder's controller-gen prints them. */
static const char *const verb_names[] = {
        "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch",
};

struct koc__rbac_rule {
        char *group;
        char *resource; /* "memcacheds" or "memcacheds/status" */
        char *namespace_; /* NULL: every namespace (a ClusterRole) */
        unsigned verbs;  /* bits of verb_names */
};

static bool resource_name_ok(const char *s) {
        if (!s || !*s || strlen(s) > 253)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
                      *s == '.'))
                        return false;
        return true;
}

static int verb_bit(const char *v, size_t n) {
        for (size_t i = 0; i < KOC_ELEMENTSOF(verb_names); i++)
                if (strlen(verb_names[i]) == n && strncmp(verb_names[i], v, n) == 0)
                        return (int)i;
        return -1;
}

static int add(koc__rbac *r, const char *group, const char *resource, const char *sub,
               const char *ns, unsigned verbs) {
        char full[600];
        snprintf(full, sizeof full, "%s%s%s", resource, sub ? "/" : "", sub ? sub : "");
        for (size_t i = 0; i < r->n; i++) {
                struct koc__rbac_rule *x = &r->rules[i];
                if (strcmp(x->group, group) == 0 && strcmp(x->resource, full) == 0 &&
                    ((!x->namespace_ && !ns) ||
                     (x->namespace_ && ns && strcmp(x->namespace_, ns) == 0))) {
                        x->verbs |= verbs;
                        return 0;
                }
        }
        struct koc__rbac_rule *v = realloc(r->rules, (r->n + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        r->rules = v;
        struct koc__rbac_rule n = {
                .group = strdup(group),
                .resource = strdup(full),
                .namespace_ = ns ? strdup(ns) : NULL,
                .verbs = verbs,
        };
        if (!n.group || !n.resource || (ns && !n.namespace_)) {
                free(n.group);
                free(n.resource);
                free(n.namespace_);
                return -ENOMEM;
        }
        r->rules[r->n++] = n;
        return 0;
}

int koc__rbac_declare(koc__rbac *r, const char *group, const char *resource,
                      const char *namespace_, const char *verbs, koc_error *err) {
        if (!r || !resource_name_ok(resource) || (group && *group && !resource_name_ok(group)))
                return koc_error_set(err, -EINVAL, "declared access: bad resource \"%s\"",
                                     resource ? resource : "(null)");
        if (namespace_ && !*namespace_)
                namespace_ = NULL;
        if (!verbs || !*verbs)
                return koc_error_set(err, -EINVAL, "declared access to %s: no verbs", resource);
        /* Items "verb" or "subresource/verb", comma-separated. */
        for (const char *p = verbs; *p;) {
                size_t n = strcspn(p, ",");
                const char *slash = memchr(p, '/', n);
                char sub[64] = "";
                const char *v = p;
                size_t vn = n;
                if (slash) {
                        size_t sn = (size_t)(slash - p);
                        if (sn == 0 || sn >= sizeof sub)
                                return koc_error_set(err, -EINVAL,
                                                     "declared access to %s: bad item \"%.*s\"",
                                                     resource, (int)n, p);
                        memcpy(sub, p, sn);
                        sub[sn] = '\0';
                        if (!resource_name_ok(sub))
                                return koc_error_set(err, -EINVAL,
                                                     "declared access to %s: bad subresource "
                                                     "\"%s\"",
                                                     resource, sub);
                        v = slash + 1;
                        vn = n - sn - 1;
                }
                int b = verb_bit(v, vn);
                if (b < 0)
                        return koc_error_set(err, -EINVAL,
                                             "declared access to %s: unknown verb \"%.*s\" (use "
                                             "get, list, watch, create, update, patch, delete, "
                                             "deletecollection)",
                                             resource, (int)vn, v);
                int e = add(r, group ? group : "", resource, slash ? sub : NULL, namespace_,
                            1u << b);
                if (e < 0)
                        return koc_error_set(err, e, "out of memory");
                p += n;
                p += *p == ',';
        }
        return 0;
}

void koc__rbac_free(koc__rbac *r) {
        if (!r)
                return;
        for (size_t i = 0; i < r->n; i++) {
                free(r->rules[i].group);
                free(r->rules[i].resource);
                free(r->rules[i].namespace_);
        }
        free(r->rules);
        r->rules = NULL;
        r->n = 0;
}

static int add_informer(koc_informer *inf, void *userdata) {
        koc__rbac *r = userdata;
        const koc_resource *res = koc__informer_get_resource(inf);
        const char *ns = res->namespaced ? koc__informer_get_namespace(inf) : NULL;
        return add(r, res->group ? res->group : "", res->resource, NULL, ns,
                   1u << verb_bit("list", 4) | 1u << verb_bit("watch", 5));
}

static int cmp_rule(const void *a, const void *b) {
        const struct koc__rbac_rule *x = a, *y = b;
        int c = strcmp(x->group, y->group);
        return c ? c : strcmp(x->resource, y->resource);
}

static void print_rule(FILE *out, const char *indent, const struct koc__rbac_rule *x) {
        fprintf(out, "%s- apiGroups: [\"%s\"]\n", indent, x->group);
        fprintf(out, "%s  resources: [\"%s\"]\n", indent, x->resource);
        fprintf(out, "%s  verbs: [", indent);
        bool first = true;
        for (size_t v = 0; v < KOC_ELEMENTSOF(verb_names); v++)
                if (x->verbs & (1u << v)) {
                        fprintf(out, "%s\"%s\"", first ? "" : ", ", verb_names[v]);
                        first = false;
                }
        fprintf(out, "]\n");
}

static int rbac_print_values(koc__rbac *declared, koc_cache *cache, bool lease, FILE *out) {
        koc__rbac all = {0};
        int r = 0;

        for (size_t i = 0; i < declared->n && r >= 0; i++)
                r = add(&all, declared->rules[i].group, declared->rules[i].resource, NULL,
                        declared->rules[i].namespace_, declared->rules[i].verbs);
        if (r >= 0 && cache)
                r = koc__cache_foreach_informer(cache, add_informer, &all);
        if (r < 0) {
                koc__rbac_free(&all);
                return r;
        }
        /* One namespace for everything: a Role in it (the release's); a rule
         * for all namespaces makes every rule a ClusterRole's.  Rules named
         * in two namespaces are the ClusterRole's too: the chart binds one
         * namespace. */
        const char *ns = NULL;
        bool cluster = false;
        for (size_t i = 0; i < all.n; i++) {
                if (!all.rules[i].namespace_)
                        cluster = true;
                else if (!ns)
                        ns = all.rules[i].namespace_;
                else if (strcmp(ns, all.rules[i].namespace_) != 0)
                        cluster = true;
        }
        char the_ns[256] = "";
        if (ns)
                snprintf(the_ns, sizeof the_ns, "%s", ns);
        ns = ns ? the_ns : NULL;
        /* Merge the namespaces' rules: one rule per group and resource. */
        koc__rbac merged = {0};
        for (size_t i = 0; i < all.n && r >= 0; i++)
                r = add(&merged, all.rules[i].group, all.rules[i].resource, NULL, NULL,
                        all.rules[i].verbs);
        koc__rbac_free(&all);
        if (r < 0) {
                koc__rbac_free(&merged);
                return r;
        }
        if (merged.n > 1)
                qsort(merged.rules, merged.n, sizeof *merged.rules, cmp_rule);

        fprintf(out, "# The RBAC rules this program needs, printed by --print-rbac: Helm values\n"
                     "# for charts/koc-example (helm install -f FILE).  Derived from its\n"
                     "# informers (list, watch), the accesses it declares, its Events and its\n"
                     "# Lease; do not edit, print again.\n");
        fprintf(out, "rbac:\n");
        if (merged.n == 0)
                fprintf(out, "  rules: []\n");
        else {
                fprintf(out, "  rules:\n");
                for (size_t i = 0; i < merged.n; i++)
                        print_rule(out, "    ", &merged.rules[i]);
        }
        if (merged.n == 0)
                fprintf(out, "  # No access besides the Lease.\n");
        else if (cluster || !ns)
                fprintf(out, "  # A ClusterRole: the program reads or writes in every "
                             "namespace.\n");
        else
                fprintf(out, "  # A Role in the release's namespace: the program works in "
                             "namespace \"%s\" only.\n",
                        ns);
        fprintf(out, "  allNamespaces: %s\n", merged.n && (cluster || !ns) ? "true" : "false");
        if (lease) {
                /* The elector's requests: GET, a single-object watch, POST
                 * while the Lease does not exist, PUT to acquire, renew and
                 * release; the chart's "recommended" Role has exactly these,
                 * create unscoped and the rest for the Lease's name only. */
                fprintf(out, "leaderElection:\n"
                             "  # A Role in the Lease's namespace:\n"
                             "  #   - apiGroups: [\"coordination.k8s.io\"]\n"
                             "  #     resources: [\"leases\"]\n"
                             "  #     verbs: [\"create\"]\n"
                             "  #   - apiGroups: [\"coordination.k8s.io\"]\n"
                             "  #     resources: [\"leases\"]\n"
                             "  #     resourceNames: [LEASE]\n"
                             "  #     verbs: [\"get\", \"update\", \"watch\"]\n"
                             "  enabled: true\n"
                             "  rbac: recommended\n");
        } else
                fprintf(out, "leaderElection:\n  enabled: false\n");
        koc__rbac_free(&merged);
        return fflush(out) == 0 ? 0 : -errno;
}

/* Under a key: the leading comment as it is, then "KEY:" and every other
 * line indented by two spaces, so a chart that has charts/koc-example as a
 * dependency named KEY takes the file with helm install -f. */
int koc__rbac_print(koc__rbac *declared, koc_cache *cache, bool lease, const char *under,
                    FILE *out) {
        if (!under || !*under)
                return rbac_print_values(declared, cache, lease, out);
        char *buf = NULL;
        size_t size = 0;
        FILE *mem = open_memstream(&buf, &size);
        if (!mem)
                return -errno;
        int r = rbac_print_values(declared, cache, lease, mem);
        if (fclose(mem) != 0 && r >= 0)
                r = -errno;
        bool head = true;
        for (char *line = buf; r >= 0 && line && *line;) {
                char *end = strchr(line, '\n');
                size_t n = end ? (size_t)(end - line) : strlen(line);
                if (head && line[0] != '#') {
                        fprintf(out, "%s:\n", under);
                        head = false;
                }
                fprintf(out, "%s%.*s\n", head ? "" : "  ", (int)n, line);
                line = end ? end + 1 : NULL;
        }
        free(buf);
        return r < 0 ? r : fflush(out) == 0 ? 0 : -errno;
}

/* koc-gen-types: C types from a CustomResourceDefinition's schema, or from
 * Kubernetes OpenAPI v3 documents.  Usage: see README.md or --help. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"

/* A build tool that exits right after writing its output: what it has not
 * freed then is not a leak worth failing a sanitized build for (ASan still
 * checks every access). */
const char *__asan_default_options(void);
__attribute__((visibility("default"), used)) const char *__asan_default_options(void) {
        return "detect_leaks=0";
}

static void usage(FILE *f) {
        fputs("usage: koc-gen-types --crd CRD.yaml [--prefix NAME] --header OUT.h --source OUT.c\n"
              "       koc-gen-types --openapi DOC.json ... --root SCHEMA ... [--prefix koc_]\n"
              "                     [--opaque SCHEMA|SCHEMA.property ...] [--string-enums]\n"
              "                     --header OUT.h --source OUT.c\n"
              "  --crd FILE          a CustomResourceDefinition (YAML or JSON): every version of\n"
              "                      spec.versions becomes a type (versioned names when several)\n"
              "  --prefix NAME       C prefix of every name (CRD: default the kind in snake_case)\n"
              "  --openapi FILE      an OpenAPI v3 document (components.schemas), repeatable\n"
              "  --root NAME         a schema of those documents to generate, with its closure\n"
              "  --opaque NAME       a schema, or a property (SCHEMA.property), kept as cJSON\n"
              "  --string-enums      string enums stay char * (checked by _validate) instead of C enums\n"
              "  --header FILE       the header to write\n"
              "  --source FILE       the source to write; it includes the header by its base name\n"
              "  --include NAME      how the source includes the header (default: its base name)\n",
              f);
}

static cJSON *find_crd(cJSON *docs) {
        if (cJSON_IsObject(docs))
                return docs;
        cJSON *d;
        cJSON_ArrayForEach(d, docs) {
                const cJSON *k = cJSON_GetObjectItemCaseSensitive(d, "kind");
                if (cJSON_IsString(k) && !strcmp(k->valuestring, "CustomResourceDefinition"))
                        return d;
        }
        return NULL;
}

static const char *sget(const cJSON *o, const char *path) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", path);
        const cJSON *cur = o;
        for (char *save = NULL, *seg = strtok_r(buf, ".", &save); seg; seg = strtok_r(NULL, ".", &save))
                cur = cJSON_GetObjectItemCaseSensitive(cur, seg);
        return cJSON_IsString(cur) ? cur->valuestring : NULL;
}

static int gen_crd(struct kg_gen *g, const char *path) {
        char err[512];
        cJSON *docs = kg_load_file(path, err, sizeof err);
        if (!docs) {
                fprintf(stderr, "koc-gen-types: %s: %s\n", path, err);
                return -1;
        }
        cJSON *crd = find_crd(docs);
        const char *kind = crd ? sget(crd, "spec.names.kind") : NULL;
        const char *group = crd ? sget(crd, "spec.group") : NULL;
        const cJSON *versions = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(crd, "spec"),
                                                                 "versions");
        if (!kind || !group || cJSON_GetArraySize(versions) < 1) {
                fprintf(stderr, "koc-gen-types: %s: not a CustomResourceDefinition with spec.group, "
                                "spec.names.kind and spec.versions\n",
                        path);
                cJSON_Delete(docs);
                return -1;
        }
        char *prefix = g->prefix && *g->prefix ? kg_snake(g->prefix) : kg_snake(kind);
        int n = cJSON_GetArraySize(versions);
        g->roots = kg_xcalloc((size_t)n, sizeof *g->roots);
        const cJSON *v;
        cJSON_ArrayForEach(v, versions) {
                const char *name = sget(v, "name");
                const cJSON *schema = cJSON_GetObjectItemCaseSensitive(
                        cJSON_GetObjectItemCaseSensitive(v, "schema"), "openAPIV3Schema");
                if (!name || !cJSON_IsObject(schema)) {
                        fprintf(stderr, "koc-gen-types: %s: a version without name or schema.openAPIV3Schema\n",
                                path);
                        cJSON_Delete(docs);
                        return -1;
                }
                char *vs = kg_snake(name);
                char *cname = n > 1 ? kg_xprintf("%s_%s", prefix, vs) : kg_xstrdup(prefix);
                char *gv = kg_xprintf("%s/%s", group, name);
                struct kg_type *t = kg_root_object(g, schema, cname, gv, kg_xstrdup(kind));
                free(vs);
                free(cname);
                if (!t || t->kind != KG_OBJECT) {
                        fprintf(stderr, "koc-gen-types: %s: version %s: %s\n", path, name,
                                g->error ? g->error : "the schema is not an object");
                        cJSON_Delete(docs);
                        return -1;
                }
                g->roots[g->n_roots++] = t;
        }
        free(prefix);
        cJSON_Delete(docs);
        return 0;
}

static void merge_schemas(struct kg_gen *g, cJSON *doc) {
        cJSON *s = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "components"), "schemas");
        cJSON *it;
        cJSON_ArrayForEach(it, s) if (!cJSON_GetObjectItemCaseSensitive(g->schemas, it->string))
                cJSON_AddItemToObject(g->schemas, it->string, cJSON_Duplicate(it, 1));
}

int main(int argc, char **argv) {
        struct kg_gen g = {.prefix = ""};
        const char *crd = NULL, *hpath = NULL, *cpath = NULL, *include = NULL;
        const char **docs = kg_xcalloc((size_t)argc, sizeof *docs), **roots = kg_xcalloc((size_t)argc, sizeof *roots);
        size_t n_docs = 0, n_roots = 0;
        g.opaque = kg_xcalloc((size_t)argc, sizeof *g.opaque);
        static const struct option opts[] = {
                {"crd", required_argument, NULL, 'c'},    {"prefix", required_argument, NULL, 'p'},
                {"openapi", required_argument, NULL, 'o'}, {"root", required_argument, NULL, 'r'},
                {"opaque", required_argument, NULL, 'q'},  {"string-enums", no_argument, NULL, 'e'},
                {"header", required_argument, NULL, 'H'},  {"source", required_argument, NULL, 'S'},
                {"include", required_argument, NULL, 'i'}, {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        int ch;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (ch) {
                case 'c': crd = optarg; break;
                case 'p': g.prefix = optarg; break;
                case 'o': docs[n_docs++] = optarg; break;
                case 'r': roots[n_roots++] = optarg; break;
                case 'q': g.opaque[g.n_opaque++] = optarg; break;
                case 'e': g.string_enums = true; break;
                case 'H': hpath = optarg; break;
                case 'S': cpath = optarg; break;
                case 'i': include = optarg; break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (optind != argc || !hpath || !cpath || (!crd == !n_docs) || (n_docs && !n_roots)) {
                usage(stderr);
                return 2;
        }
        const char *source;
        if (crd) {
                if (gen_crd(&g, crd) < 0)
                        return 1;
                source = crd;
        } else {
                g.schemas = cJSON_CreateObject();
                for (size_t i = 0; i < n_docs; i++) {
                        char err[512];
                        cJSON *d = kg_load_file(docs[i], err, sizeof err);
                        if (!d) {
                                fprintf(stderr, "koc-gen-types: %s: %s\n", docs[i], err);
                                return 1;
                        }
                        merge_schemas(&g, d);
                        cJSON_Delete(d);
                }
                g.roots = kg_xcalloc(n_roots, sizeof *g.roots);
                for (size_t i = 0; i < n_roots; i++) {
                        struct kg_type *t = kg_resolve_ref(&g, roots[i], 0);
                        if (!t || t->kind != KG_OBJECT) {
                                fprintf(stderr, "koc-gen-types: --root %s: %s\n", roots[i],
                                        g.error ? g.error : "not an object schema");
                                return 1;
                        }
                        const cJSON *gvk = cJSON_GetArrayItem(
                                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g.schemas, roots[i]),
                                                                 "x-kubernetes-group-version-kind"),
                                0);
                        const char *grp = sget(gvk, "group"), *ver = sget(gvk, "version"), *k = sget(gvk, "kind");
                        if (grp && ver && k) {
                                t->gv = *grp ? kg_xprintf("%s/%s", grp, ver) : kg_xstrdup(ver);
                                t->kind_name = kg_xstrdup(k);
                        }
                        g.roots[g.n_roots++] = t;
                }
                source = "Kubernetes OpenAPI v3 documents";
                if (n_docs == 1)
                        source = docs[0];
        }
        if (!include) {
                include = strrchr(hpath, '/') ? strrchr(hpath, '/') + 1 : hpath;
        }
        /* The include guard from the header's name. */
        char *guard = kg_upper(include);
        char *guard2 = kg_xprintf("KOC_GEN_%s", guard);
        /* Write to temporary files and rename, so that a failed run leaves no
         * half-written output for the next build to trust. */
        char *htmp = kg_xprintf("%s.tmp", hpath), *ctmp = kg_xprintf("%s.tmp", cpath);
        FILE *h = fopen(htmp, "w"), *c = fopen(ctmp, "w");
        if (!h || !c) {
                fprintf(stderr, "koc-gen-types: cannot write %s: %s\n", !h ? htmp : ctmp, strerror(errno));
                return 1;
        }
        /* Only the base name, so that the output does not depend on where the build runs. */
        const char *base = strrchr(source, '/') ? strrchr(source, '/') + 1 : source;
        int r = kg_emit(&g, h, c, include, guard2, base);
        if (fclose(h) != 0 || fclose(c) != 0 || r < 0) {
                fprintf(stderr, "koc-gen-types: writing %s or %s failed\n", hpath, cpath);
                unlink(htmp);
                unlink(ctmp);
                return 1;
        }
        if (rename(htmp, hpath) < 0 || rename(ctmp, cpath) < 0) {
                fprintf(stderr, "koc-gen-types: rename: %s\n", strerror(errno));
                return 1;
        }
        return 0;
}

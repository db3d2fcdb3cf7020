/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc's one label-selector parser (core/selector.c): the parser and the
 * matcher that decide what koc_controller_list() returns, whether an object
 * this process wrote stays in an informer's cache, and what koc-apiserver
 * lists and watches.
 *
 * Input: "selector NUL labels", the labels one "key=value" per line (a
 * line without "=" is a key with an empty value).  The selector is parsed;
 * when it parses it is matched against the labels, against no labels and
 * against every single label alone.
 *
 * Checked: a failure says why and returns no selector; matching is the same
 * whichever way the labels are looked up; and koc-apiserver's label
 * selectors (apiserver/select.c, which wraps the same parser) accept exactly
 * the selectors the library accepts and agree on every match, since an
 * object the client keeps must be one the server would have listed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/apiserver.h"
#include "core/selector.h"

static const char *json_label(const char *key, void *userdata) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(userdata, key);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *no_label(const char *key, void *userdata) {
        (void)key;
        (void)userdata;
        return NULL;
}

/* "k=v" lines into a JSON object; a key given twice keeps its first value. */
static cJSON *parse_labels(const char *s) {
        cJSON *labels = cJSON_CreateObject();
        if (!labels)
                abort();
        while (*s) {
                size_t n = strcspn(s, "\n");
                char *line = strndup(s, n);
                if (!line)
                        abort();
                char *eq = strchr(line, '=');
                const char *v = "";
                if (eq) {
                        *eq = '\0';
                        v = eq + 1;
                }
                if (!cJSON_GetObjectItemCaseSensitive(labels, line))
                        cJSON_AddStringToObject(labels, line, v);
                free(line);
                s += n;
                if (*s)
                        s++;
        }
        return labels;
}

static void compare(const koc_selector *mine, const selector *theirs, cJSON *labels) {
        bool a = koc__selector_matches(mine, json_label, labels);
        if (a != selector_match_labels(theirs, labels))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        const char *rest = strlen(s) < size ? s + strlen(s) + 1 : "";

        koc_selector *sel = NULL;
        koc_error err = {0};
        int r = koc__selector_parse(s, &sel, &err);
        selector *server = NULL;
        char serr[256] = "";
        int sr = selector_parse_labels(s, &server, serr, sizeof serr);
        if ((r < 0) != (sr < 0) || (sr < 0 && (server || serr[0] == '\0')))
                abort();
        if (r < 0) {
                if (sel || err.message[0] == '\0')
                        abort();
                free(s);
                return 0;
        }

        cJSON *labels = parse_labels(rest);
        compare(sel, server, labels);
        cJSON *empty = cJSON_CreateObject();
        if (!empty)
                abort();
        if (koc__selector_matches(sel, no_label, NULL) !=
            koc__selector_matches(sel, json_label, empty))
                abort();
        compare(sel, server, empty);
        cJSON_Delete(empty);
        const cJSON *l;
        cJSON_ArrayForEach(l, labels) {
                cJSON *one = cJSON_CreateObject();
                cJSON_AddStringToObject(one, l->string, l->valuestring);
                compare(sel, server, one);
                cJSON_Delete(one);
        }
        if (koc__selector_is_empty(sel) && !koc__selector_matches(sel, no_label, NULL))
                abort();
        if (koc__selector_is_empty(sel) != selector_empty(server))
                abort();
        /* The cache's coverage rule: a selector includes itself and the
         * empty one, and only an empty selector is included in nothing. */
        if (!koc__selector_includes(sel, sel) || !koc__selector_includes(sel, NULL) ||
            koc__selector_includes(NULL, sel) != koc__selector_is_empty(sel))
                abort();
        cJSON_Delete(labels);
        selector_free(server);
        koc__selector_free(sel);
        free(s);
        return 0;
}

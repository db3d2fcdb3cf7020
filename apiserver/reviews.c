/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TokenReview (authentication.k8s.io/v1) and SubjectAccessReview
 * (authorization.k8s.io/v1), minimal: enough for a server that delegates its
 * authentication and authorisation to this one (koc's secure metrics).
 *
 * Tokens: the server's own (user "koc-admin", groups system:masters and
 * system:authenticated) and those given with --user TOKEN=NAME[:GROUP,...].
 * Access: system:masters may do anything; others what --allow
 * NAME:VERB:PATH grants (non-resource URLs; PATH may end in '*').  The
 * server itself still accepts only its own token for everything else.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"

#define MAX_ENTRIES 64

static struct user {
        char *token, *name, *groups; /* groups: comma-separated, may be NULL */
} users[MAX_ENTRIES];
static size_t n_users;

static struct allow {
        char *name, *verb, *path;
} allows[MAX_ENTRIES];
static size_t n_allows;

int reviews_add_user(const char *arg) {
        const char *eq = strchr(arg, '=');
        if (!eq || eq == arg || !eq[1] || n_users == MAX_ENTRIES || strpbrk(arg, " \t\r\n"))
                return -EINVAL;
        char *copy = strdup(eq + 1), *colon = copy ? strchr(copy, ':') : NULL;
        if (!copy)
                return -ENOMEM;
        if (colon)
                *colon = 0;
        users[n_users] = (struct user){.token = strndup(arg, (size_t)(eq - arg)),
                                       .name = strdup(copy),
                                       .groups = colon ? strdup(colon + 1) : NULL};
        free(copy);
        n_users++;
        return 0;
}

int reviews_add_allow(const char *arg) {
        char *copy = strdup(arg);
        if (!copy)
                return -ENOMEM;
        char *v = strchr(copy, ':'), *p = v ? strchr(v + 1, ':') : NULL;
        if (!v || !p || v == copy || p == v + 1 || !p[1] || n_allows == MAX_ENTRIES) {
                free(copy);
                return -EINVAL;
        }
        *v++ = 0;
        *p++ = 0;
        allows[n_allows++] = (struct allow){.name = strdup(copy), .verb = strdup(v), .path = strdup(p)};
        free(copy);
        return 0;
}

void reviews_free(void) {
        for (size_t i = 0; i < n_users; i++) {
                free(users[i].token);
                free(users[i].name);
                free(users[i].groups);
        }
        for (size_t i = 0; i < n_allows; i++) {
                free(allows[i].name);
                free(allows[i].verb);
                free(allows[i].path);
        }
        n_users = n_allows = 0;
}

bool reviews_is_review(const api_path *p) {
        return p->group && !p->ns && !p->name &&
               ((strcmp(p->group, "authentication.k8s.io") == 0 &&
                 strcmp(p->resource, "tokenreviews") == 0) ||
                (strcmp(p->group, "authorization.k8s.io") == 0 &&
                 strcmp(p->resource, "subjectaccessreviews") == 0)) &&
               strcmp(p->version, "v1") == 0;
}

static void token_review(server *srv, cJSON *obj, reply *r) {
        const cJSON *token =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "spec"), "token");
        if (!cJSON_IsString(token) || !token->valuestring[0]) {
                reply_status(r, 422, "Invalid", "TokenReview: spec.token: Required value", NULL);
                return;
        }
        cJSON *status = cJSON_AddObjectToObject(obj, "status");
        const char *name = NULL, *groups = NULL;
        if (strcmp(token->valuestring, srv->token) == 0) {
                name = "koc-admin";
                groups = "system:masters";
        }
        for (size_t i = 0; !name && i < n_users; i++)
                if (strcmp(token->valuestring, users[i].token) == 0) {
                        name = users[i].name;
                        groups = users[i].groups;
                }
        cJSON_AddBoolToObject(status, "authenticated", name != NULL);
        if (name) {
                cJSON *user = cJSON_AddObjectToObject(status, "user");
                cJSON_AddStringToObject(user, "username", name);
                cJSON_AddStringToObject(user, "uid", name);
                cJSON *g = cJSON_AddArrayToObject(user, "groups");
                char *copy = groups ? strdup(groups) : NULL, *save = NULL;
                for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t;
                     t = strtok_r(NULL, ",", &save))
                        cJSON_AddItemToArray(g, cJSON_CreateString(t));
                free(copy);
                cJSON_AddItemToArray(g, cJSON_CreateString("system:authenticated"));
        } else
                cJSON_AddStringToObject(status, "error", "invalid bearer token");
        cJSON_DeleteItemFromObjectCaseSensitive(obj, "spec");
        cJSON_AddItemToObject(obj, "spec", cJSON_CreateObject());
        r->code = 201;
        r->body = cJSON_PrintUnformatted(obj);
}

static bool path_matches(const char *pattern, const char *path) {
        size_t n = strlen(pattern);
        if (n && pattern[n - 1] == '*')
                return strncmp(pattern, path, n - 1) == 0;
        return strcmp(pattern, path) == 0;
}

static void access_review(cJSON *obj, reply *r) {
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
        const cJSON *user = cJSON_GetObjectItemCaseSensitive(spec, "user");
        const cJSON *groups = cJSON_GetObjectItemCaseSensitive(spec, "groups");
        const cJSON *nr = cJSON_GetObjectItemCaseSensitive(spec, "nonResourceAttributes");
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(nr, "path");
        const cJSON *verb = cJSON_GetObjectItemCaseSensitive(nr, "verb");
        const cJSON *ra = cJSON_GetObjectItemCaseSensitive(spec, "resourceAttributes");
        const cJSON *g;
        bool allowed = false;

        if (!cJSON_IsString(user) && !cJSON_IsArray(groups)) {
                reply_status(r, 422, "Invalid",
                             "SubjectAccessReview: spec.user: Invalid value: at least one of "
                             "user or group must be specified",
                             NULL);
                return;
        }
        if (!ra && (!cJSON_IsString(path) || !cJSON_IsString(verb))) {
                reply_status(r, 422, "Invalid",
                             "SubjectAccessReview: spec: exactly one of nonResourceAttributes "
                             "or resourceAttributes must be specified",
                             NULL);
                return;
        }
        cJSON_ArrayForEach(g, groups) if (cJSON_IsString(g) &&
                                          strcmp(g->valuestring, "system:masters") == 0) allowed =
                true;
        for (size_t i = 0; !allowed && !ra && cJSON_IsString(user) && i < n_allows; i++)
                allowed = strcmp(allows[i].name, user->valuestring) == 0 &&
                          (strcmp(allows[i].verb, "*") == 0 ||
                           strcmp(allows[i].verb, verb->valuestring) == 0) &&
                          path_matches(allows[i].path, path->valuestring);
        cJSON *status = cJSON_AddObjectToObject(obj, "status");
        cJSON_AddBoolToObject(status, "allowed", allowed);
        if (allowed)
                cJSON_AddStringToObject(status, "reason", "allowed by koc-apiserver");
        r->code = 201;
        r->body = cJSON_PrintUnformatted(obj);
}

void reviews_handle(server *srv, const char *verb, const api_path *p, const char *body,
                    size_t len, reply *r) {
        if (strcmp(verb, "create") != 0) {
                reply_status(r, 405, "MethodNotAllowed",
                             "the server does not allow this method on the requested resource",
                             NULL);
                return;
        }
        cJSON *obj = cJSON_ParseWithLength(body, len);
        if (!cJSON_IsObject(obj)) {
                cJSON_Delete(obj);
                reply_status(r, 400, "BadRequest", "the request body is not a JSON object",
                             NULL);
                return;
        }
        if (strcmp(p->resource, "tokenreviews") == 0)
                token_review(srv, obj, r);
        else
                access_review(obj, r);
        cJSON_Delete(obj);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The answers the API server gives the serving filter (serving/authz.c): a
 * TokenReview's, koc__serving_parse_token_review, and a
 * SubjectAccessReview's, koc__serving_parse_access_review, on arbitrary
 * bodies.
 *
 * Input: one JSON document, read as both answers.
 *
 * Checked beyond "no crash, leak, UB": a TokenReview authenticates only when
 * status.authenticated is the boolean true, and then gives a user name of 1
 * to 512 bytes, at most 64 groups, each of 1 to 512 bytes, and a uid of at
 * most 512 bytes; a refused or malformed answer leaves the identity empty
 * and a malformed one says why.  A SubjectAccessReview allows only when
 * status.allowed is the boolean true: anything else is a refusal or an error,
 * never access.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "serving/authz.h"

static bool name_ok(const char *s) {
        return s && s[0] && strlen(s) <= KOC__SERVING_MAX_NAME;
}

static void check_token_review(const cJSON *body) {
        koc__serving_identity who;
        const char *why = NULL;
        int r = koc__serving_parse_token_review(body, &who, &why);
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(body, "status");
        const cJSON *authenticated = cJSON_GetObjectItemCaseSensitive(status, "authenticated");

        if (r <= 0) {
                if (who.user || who.uid || who.n_groups)
                        abort();
                if (r < 0 && (!why || !why[0]))
                        abort();
                return;
        }
        if (r != 1 || !cJSON_IsTrue(authenticated) || !cJSON_IsObject(status))
                abort();
        if (!name_ok(who.user) || (who.uid && !name_ok(who.uid)) ||
            who.n_groups > KOC__SERVING_MAX_GROUPS)
                abort();
        const cJSON *user = cJSON_GetObjectItemCaseSensitive(status, "user");
        if (strcmp(who.user, cJSON_GetObjectItemCaseSensitive(user, "username")->valuestring) != 0)
                abort();
        for (size_t i = 0; i < who.n_groups; i++)
                if (!name_ok(who.groups[i]))
                        abort();
        koc__serving_identity_clear(&who);
}

static void check_access_review(const cJSON *body) {
        int r = koc__serving_parse_access_review(body);
        const cJSON *allowed = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(body, "status"), "allowed");

        if (r > 0 && (r != 1 || !cJSON_IsTrue(allowed)))
                abort();
        if (r == 0 && !cJSON_IsFalse(allowed))
                abort();
        if (r < 0 && cJSON_IsBool(allowed))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        cJSON *body = cJSON_ParseWithLength((const char *)data, size);

        check_token_review(body);
        check_access_review(body);
        cJSON_Delete(body);
        return 0;
}

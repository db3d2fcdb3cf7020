/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What an exec credential plugin prints (users[].user.exec): the
 * ExecCredential parser, koc__exec_credential_parse (core/exec-credential.c),
 * on arbitrary output.  No plugin is run; the input is its stdout.
 *
 * Input: one byte choosing the configured apiVersion, then the output.
 *
 * Checked beyond "no crash, leak, UB": a success means the whole output is one
 * JSON value (trailing junk is refused, as client-go's decoder does), of kind
 * ExecCredential and exactly the configured apiVersion, and returns exactly
 * its status.token, which may go into a header (koc__token_is_valid), and the
 * expiry of status.expirationTimestamp (0 without one); a failure returns
 * nothing, says why, and its message never carries the token (checked with
 * a marker token in the same output).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/cluster-config.h"
#include "koc/time.h"

#define MARKER "k0c-s3cr3t-t0k3n-m4rk3r"

static const char *const versions[] = {
        "client.authentication.k8s.io/v1",
        "client.authentication.k8s.io/v1beta1",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        char *argv[] = {(char *)"plugin", NULL};
        koc_exec_config e = {
                .command = (char *)"plugin",
                .argv = argv,
                .n_args = 1,
                .api_version = (char *)versions[data[0] % 2],
                .where = (char *)"fuzz: users[0].user.exec",
        };
        /* The runner refuses output with a NUL byte before it gets here. */
        char *text = strndup((const char *)data + 1, size - 1);
        if (!text)
                return 0;

        char *token = NULL;
        uint64_t expiry = UINT64_MAX;
        koc_error err = {0};
        int r = koc__exec_credential_parse(&e, text, &token, &expiry, &err);

        /* The reference: the output read once more, independently. */
        cJSON *j = cJSON_ParseWithOpts(text, NULL, 1);
        cJSON *status = cJSON_GetObjectItemCaseSensitive(j, "status");
        const char *want_token =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(status, "token"));
        if (r == 0) {
                const cJSON *exp =
                        cJSON_GetObjectItemCaseSensitive(status, "expirationTimestamp");
                uint64_t want_expiry = 0;
                if (!j || !token || !want_token || strcmp(token, want_token) != 0 ||
                    !koc__token_is_valid(token))
                        abort();
                if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "kind")) ?: "",
                           "ExecCredential") != 0 ||
                    strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "apiVersion"))
                                   ?: "",
                           e.api_version) != 0)
                        abort();
                if (cJSON_IsString(exp) && koc_parse_rfc3339(exp->valuestring, &want_expiry) < 0)
                        abort();
                if (expiry != want_expiry)
                        abort();
        } else {
                if (token || expiry != UINT64_MAX || r != -EBADMSG || err.code != r ||
                    err.message[0] == '\0')
                        abort();
                /* The same output with a token no message template holds:
                 * the message must not carry it. */
                if (cJSON_IsObject(status) &&
                    cJSON_GetObjectItemCaseSensitive(status, "token") &&
                    cJSON_ReplaceItemInObjectCaseSensitive(status, "token",
                                                           cJSON_CreateString(MARKER))) {
                        char *again = cJSON_PrintUnformatted(j);
                        koc_error err2 = {0};
                        char *tok2 = NULL;
                        uint64_t exp2;
                        if (again &&
                            koc__exec_credential_parse(&e, again, &tok2, &exp2, &err2) < 0 &&
                            strstr(err2.message, MARKER))
                                abort(); /* the credential leaked into the message */
                        free(tok2);
                        free(again);
                }
        }
        free(token);
        cJSON_Delete(j);
        free(text);
        return 0;
}

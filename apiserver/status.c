/* SPDX-License-Identifier: Apache-2.0 */
/* Status bodies shaped like the real API server's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"

void qualified_resource(const char *group, const char *resource, char *buf, size_t size) {
        if (group && *group)
                snprintf(buf, size, "%s.%s", resource, group);
        else
                snprintf(buf, size, "%s", resource);
}

void reply_json(reply *ret, int code, const cJSON *obj) {
        ret->code = code;
        ret->body = cJSON_PrintUnformatted(obj);
        if (!ret->body) {
                ret->code = 500;
                ret->body = strdup("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                                   "\"status\":\"Failure\",\"message\":\"out of memory\","
                                   "\"reason\":\"InternalError\",\"code\":500}");
        }
}

void reply_status(reply *ret, int code, const char *reason, const char *message, cJSON *details) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "kind", "Status");
        cJSON_AddStringToObject(s, "apiVersion", "v1");
        cJSON_AddObjectToObject(s, "metadata");
        cJSON_AddStringToObject(s, "status", code < 300 ? "Success" : "Failure");
        if (message)
                cJSON_AddStringToObject(s, "message", message);
        if (reason && *reason)
                cJSON_AddStringToObject(s, "reason", reason);
        if (details)
                cJSON_AddItemToObject(s, "details", details);
        cJSON_AddNumberToObject(s, "code", code);
        reply_json(ret, code, s);
        cJSON_Delete(s);
}

void reply_not_found(reply *ret, const api_path *p, const char *name) {
        char qr[256], msg[700];
        cJSON *d = cJSON_CreateObject();

        qualified_resource(p->group, p->resource, qr, sizeof qr);
        snprintf(msg, sizeof msg, "%s \"%s\" not found", qr, name);
        cJSON_AddStringToObject(d, "name", name);
        if (*p->group)
                cJSON_AddStringToObject(d, "group", p->group);
        cJSON_AddStringToObject(d, "kind", p->resource);
        reply_status(ret, 404, "NotFound", msg, d);
}

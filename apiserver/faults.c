/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fault injection rules (see README.md).  A rule matches a request by
 * resource and verb (either may be omitted: any); every matching rule
 * applies, and one with a "count" applies to that many more requests only.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "apiserver.h"

static const char *const verbs[] = {"get", "list", "watch", "create", "update", "patch", "delete"};

static bool number_in(const cJSON *rule, const char *name, double lo, double hi, char *err,
                      size_t errlen) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(rule, name);
        if (!v)
                return true;
        if (!cJSON_IsNumber(v) || isnan(v->valuedouble) || v->valuedouble < lo ||
            v->valuedouble > hi) {
                snprintf(err, errlen, "%s must be a number in [%g, %g]", name, lo, hi);
                return false;
        }
        return true;
}

int faults_add(server *srv, const cJSON *rule, char *err, size_t errlen) {
        static const char *const known[] = {
                "resource",    "verb",      "latency_ms", "error_rate",           "error_code",
                "retry_after", "drop_rate", "hang",       "watch_close_after_ms", "count",
                "group"};
        const cJSON *item;

        if (!cJSON_IsObject(rule)) {
                snprintf(err, errlen, "a fault rule must be a JSON object");
                return -EINVAL;
        }
        cJSON_ArrayForEach(item, rule) {
                bool ok = false;
                for (size_t i = 0; i < KOC_ELEMENTSOF(known); i++)
                        ok = ok || strcmp(item->string, known[i]) == 0;
                if (!ok) {
                        snprintf(err, errlen, "unknown fault rule field \"%s\"", item->string);
                        return -EINVAL;
                }
        }
        const cJSON *res = cJSON_GetObjectItemCaseSensitive(rule, "resource");
        const cJSON *verb = cJSON_GetObjectItemCaseSensitive(rule, "verb");
        if (res && !cJSON_IsString(res)) {
                snprintf(err, errlen, "resource must be a string");
                return -EINVAL;
        }
        const cJSON *group = cJSON_GetObjectItemCaseSensitive(rule, "group");
        if (group && !cJSON_IsString(group)) {
                snprintf(err, errlen, "group must be a string (\"\" for the core group)");
                return -EINVAL;
        }
        if (verb) {
                bool ok = false;
                for (size_t i = 0; cJSON_IsString(verb) && i < KOC_ELEMENTSOF(verbs); i++)
                        ok = ok || strcmp(verb->valuestring, verbs[i]) == 0;
                if (!ok) {
                        snprintf(err, errlen,
                                 "verb must be one of get, list, watch, create, update, patch, "
                                 "delete");
                        return -EINVAL;
                }
        }
        const cJSON *hang = cJSON_GetObjectItemCaseSensitive(rule, "hang");
        if (hang && !cJSON_IsBool(hang)) {
                snprintf(err, errlen, "hang must be true or false");
                return -EINVAL;
        }
        if (!number_in(rule, "latency_ms", 0, 3600000, err, errlen) ||
            !number_in(rule, "error_rate", 0, 1, err, errlen) ||
            !number_in(rule, "error_code", 400, 599, err, errlen) ||
            !number_in(rule, "retry_after", 0, 86400, err, errlen) ||
            !number_in(rule, "drop_rate", 0, 1, err, errlen) ||
            !number_in(rule, "watch_close_after_ms", 0, 86400000, err, errlen) ||
            !number_in(rule, "count", 1, 1e12, err, errlen))
                return -EINVAL;
        if (cJSON_GetObjectItemCaseSensitive(rule, "error_rate") &&
            !cJSON_GetObjectItemCaseSensitive(rule, "error_code")) {
                snprintf(err, errlen, "error_rate needs an error_code");
                return -EINVAL;
        }
        if (!srv->faults)
                srv->faults = cJSON_CreateArray();
        cJSON *copy = cJSON_Duplicate(rule, true);
        if (!srv->faults || !copy) {
                cJSON_Delete(copy);
                return -ENOMEM;
        }
        cJSON_AddItemToArray(srv->faults, copy);
        char *s = cJSON_PrintUnformatted(copy);
        koc_log_info(COMPONENT, "fault rule added: %s", s ? s : "?");
        cJSON_free(s);
        return 0;
}

void faults_clear(server *srv) {
        cJSON_Delete(srv->faults);
        srv->faults = NULL;
        koc_log_info(COMPONENT, "fault rules cleared");
        http_release_hanging(srv);
}

cJSON *faults_list(server *srv) {
        return srv->faults ? cJSON_Duplicate(srv->faults, true) : cJSON_CreateArray();
}

static bool chance(double rate) {
        if (rate >= 1.0)
                return true;
        if (rate <= 0.0)
                return false;
        return (double)koc__random_u64(1000000) < rate * 1000000.0;
}

static double num(const cJSON *rule, const char *name, double dflt) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(rule, name);
        return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

void faults_match(server *srv, const char *group, const char *resource, const char *verb,
                  fault_action *ret) {
        fault_action fa = {.watch_close_after_ms = -1};
        cJSON *rule = srv->faults ? srv->faults->child : NULL, *next;

        for (; rule; rule = next) {
                next = rule->next;
                const char *r = json_str(rule, "resource"), *v = json_str(rule, "verb");
                const char *g = json_str(rule, "group");
                if ((r && (!resource || strcmp(r, resource) != 0)) || (v && strcmp(v, verb) != 0) ||
                    (g && strcmp(g, group ? group : "") != 0))
                        continue;
                double latency = num(rule, "latency_ms", 0);
                if ((uint64_t)latency > fa.latency_ms)
                        fa.latency_ms = (uint64_t)latency;
                if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rule, "hang")))
                        fa.hang = true;
                /* An error_code without an error_rate fails every match. */
                double rate = num(rule, "error_rate",
                                  cJSON_GetObjectItemCaseSensitive(rule, "error_code") ? 1 : 0);
                if (!fa.error_code && chance(rate)) {
                        fa.error_code = (int)num(rule, "error_code", 500);
                        fa.retry_after = (unsigned)num(rule, "retry_after", 0);
                }
                if (chance(num(rule, "drop_rate", 0)))
                        fa.drop = true;
                double wc = num(rule, "watch_close_after_ms", -1);
                if (wc >= 0 &&
                    (fa.watch_close_after_ms < 0 || (int64_t)wc < fa.watch_close_after_ms))
                        fa.watch_close_after_ms = (int64_t)wc;
                cJSON *count = cJSON_GetObjectItemCaseSensitive(rule, "count");
                if (cJSON_IsNumber(count)) {
                        if (count->valuedouble <= 1)
                                cJSON_Delete(cJSON_DetachItemViaPointer(srv->faults, rule));
                        else
                                cJSON_SetNumberValue(count, count->valuedouble - 1);
                }
        }
        *ret = fa;
}

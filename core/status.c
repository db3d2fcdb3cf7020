/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kubernetes Status bodies and transport errors as koc sees them.
 *
 * The reason comes from the Status "reason" field when it names one koc knows;
 * otherwise it is derived from the HTTP (or Status) code, the way client-go's
 * k8s.io/apimachinery/pkg/api/errors does (IsNotFound is true for reason
 * NotFound or, when the reason is unknown, for code 404).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client-internal.h"
#include "util.h"

static const char *const reason_names[_KOC_REASON_MAX] = {
        [KOC_REASON_NONE] = "",
        [KOC_REASON_UNKNOWN] = "Unknown",
        [KOC_REASON_BAD_REQUEST] = "BadRequest",
        [KOC_REASON_UNAUTHORIZED] = "Unauthorized",
        [KOC_REASON_FORBIDDEN] = "Forbidden",
        [KOC_REASON_NOT_FOUND] = "NotFound",
        [KOC_REASON_METHOD_NOT_ALLOWED] = "MethodNotAllowed",
        [KOC_REASON_ALREADY_EXISTS] = "AlreadyExists",
        [KOC_REASON_CONFLICT] = "Conflict",
        [KOC_REASON_GONE] = "Gone",
        [KOC_REASON_EXPIRED] = "Expired",
        [KOC_REASON_REQUEST_ENTITY_TOO_LARGE] = "RequestEntityTooLarge",
        [KOC_REASON_UNSUPPORTED_MEDIA_TYPE] = "UnsupportedMediaType",
        [KOC_REASON_INVALID] = "Invalid",
        [KOC_REASON_TOO_MANY_REQUESTS] = "TooManyRequests",
        [KOC_REASON_INTERNAL_ERROR] = "InternalError",
        [KOC_REASON_SERVICE_UNAVAILABLE] = "ServiceUnavailable",
        [KOC_REASON_SERVER_TIMEOUT] = "ServerTimeout",
        [KOC_REASON_TIMEOUT] = "Timeout",
};

KOC_EXPORT const char *koc_reason_to_string(koc_reason reason) {
        if ((unsigned)reason >= _KOC_REASON_MAX)
                return "Unknown";
        return reason_names[reason];
}

/* The code client-go's errors package pairs with each reason, for answers
 * whose Status has no reason koc knows. */
static const struct {
        long code;
        koc_reason reason;
} code_reasons[] = {
        {400, KOC_REASON_BAD_REQUEST},
        {401, KOC_REASON_UNAUTHORIZED},
        {403, KOC_REASON_FORBIDDEN},
        {404, KOC_REASON_NOT_FOUND},
        {405, KOC_REASON_METHOD_NOT_ALLOWED},
        {409, KOC_REASON_CONFLICT},
        {410, KOC_REASON_GONE},
        {413, KOC_REASON_REQUEST_ENTITY_TOO_LARGE},
        {415, KOC_REASON_UNSUPPORTED_MEDIA_TYPE},
        {422, KOC_REASON_INVALID},
        {429, KOC_REASON_TOO_MANY_REQUESTS},
        {500, KOC_REASON_INTERNAL_ERROR},
        {503, KOC_REASON_SERVICE_UNAVAILABLE},
        {504, KOC_REASON_SERVER_TIMEOUT},
};

static koc_reason reason_from_code(long code) {
        if (code >= 200 && code < 300)
                return KOC_REASON_NONE;
        for (size_t i = 0; i < KOC_ELEMENTSOF(code_reasons); i++)
                if (code_reasons[i].code == code)
                        return code_reasons[i].reason;
        return KOC_REASON_UNKNOWN;
}

KOC_EXPORT koc_reason koc_reason_from_status(const char *reason, long http_code) {
        /* "Unknown" (and "") are what the API server sends when it has no
         * reason; they fall back to the code like an absent reason. */
        if (reason && reason[0])
                for (int i = KOC_REASON_BAD_REQUEST; i < _KOC_REASON_MAX; i++)
                        if (strcmp(reason, reason_names[i]) == 0)
                                return (koc_reason)i;
        return reason_from_code(http_code);
}

/* The one table from an API failure to an errno; include/koc/client.h
 * documents it and says why each code was chosen. */
static const int reason_errnos[_KOC_REASON_MAX] = {
        [KOC_REASON_NONE] = 0,
        [KOC_REASON_UNKNOWN] = -EREMOTEIO,
        [KOC_REASON_BAD_REQUEST] = -EINVAL,
        [KOC_REASON_UNAUTHORIZED] = -EKEYREJECTED,
        [KOC_REASON_FORBIDDEN] = -EACCES,
        [KOC_REASON_NOT_FOUND] = -ENOENT,
        [KOC_REASON_METHOD_NOT_ALLOWED] = -EOPNOTSUPP,
        [KOC_REASON_ALREADY_EXISTS] = -EEXIST,
        [KOC_REASON_CONFLICT] = -EBUSY,
        [KOC_REASON_GONE] = -ESTALE,
        [KOC_REASON_EXPIRED] = -ESTALE,
        [KOC_REASON_REQUEST_ENTITY_TOO_LARGE] = -E2BIG,
        [KOC_REASON_UNSUPPORTED_MEDIA_TYPE] = -EPROTONOSUPPORT,
        [KOC_REASON_INVALID] = -EINVAL,
        [KOC_REASON_TOO_MANY_REQUESTS] = -EAGAIN,
        [KOC_REASON_INTERNAL_ERROR] = -EREMOTEIO,
        [KOC_REASON_SERVICE_UNAVAILABLE] = -EAGAIN,
        [KOC_REASON_SERVER_TIMEOUT] = -ETIMEDOUT,
        [KOC_REASON_TIMEOUT] = -ETIMEDOUT,
};

KOC_EXPORT int koc_reason_to_errno(koc_reason reason) {
        if ((unsigned)reason >= _KOC_REASON_MAX)
                return -EREMOTEIO;
        return reason_errnos[reason];
}

KOC_EXPORT int koc_response_errno(const koc_response *r) {
        if (!r)
                return -EINVAL;
        if (r->error < 0)
                return r->error;
        if (r->status >= 200 && r->status < 300)
                return 0;
        if (r->status <= 0)
                return -EIO; /* no answer and no transport error: nothing to go by */
        /* A failure always has a reason (UNKNOWN at least); NONE would be a
         * response built by hand. */
        koc_reason reason = r->reason != KOC_REASON_NONE ? r->reason
                                                         : koc_reason_from_status(NULL, r->status);
        int e = koc_reason_to_errno(reason);
        return e < 0 ? e : -EREMOTEIO;
}

/* A JSON number that is a whole number within [min, max]. */
static bool json_integer(const cJSON *item, double min, double max, long *ret) {
        if (!cJSON_IsNumber(item))
                return false;
        double d = item->valuedouble;
        if (!isfinite(d) || d < min || d > max || d != floor(d))
                return false;
        *ret = (long)d;
        return true;
}

void koc__status_parse(const cJSON *body, long http_code, koc_status *ret) {
        const char *reason = NULL;
        long code = 0, retry = 0;

        *ret = (koc_status){.code = http_code};
        if (cJSON_IsObject(body)) {
                const cJSON *item = cJSON_GetObjectItemCaseSensitive(body, "reason");
                if (cJSON_IsString(item))
                        reason = item->valuestring;
                item = cJSON_GetObjectItemCaseSensitive(body, "message");
                if (cJSON_IsString(item))
                        ret->message = item->valuestring;
                item = cJSON_GetObjectItemCaseSensitive(body, "code");
                if (json_integer(item, 100, 999, &code))
                        ret->code = code;
                const cJSON *details = cJSON_GetObjectItemCaseSensitive(body, "details");
                if (cJSON_IsObject(details)) {
                        item = cJSON_GetObjectItemCaseSensitive(details, "retryAfterSeconds");
                        if (json_integer(item, 0, 86400.0 * 365, &retry))
                                ret->retry_after_usec = (uint64_t)retry * KOC_USEC_PER_SEC;
                }
        }
        if (ret->code == 0 && !reason)
                ret->reason = KOC_REASON_UNKNOWN;
        else
                ret->reason = koc_reason_from_status(reason, ret->code);
}

int koc__curl_code_to_errno(CURLcode code) {
        switch (code) {
        case CURLE_OK:
                return 0;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_ENGINE_NOTFOUND:
        case CURLE_SSL_ENGINE_SETFAILED:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_ENGINE_INITFAILED:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_SHUTDOWN_FAILED:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_CLIENTCERT:
        case CURLE_USE_SSL_FAILED:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_WEIRD_SERVER_REPLY:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_BAD_CONTENT_ENCODING:
                return -EPROTO;
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
                return -ECONNRESET;
        case CURLE_URL_MALFORMAT:
        case CURLE_BAD_FUNCTION_ARGUMENT:
                return -EINVAL;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_FILESIZE_EXCEEDED:
                return -EMSGSIZE;
        case CURLE_ABORTED_BY_CALLBACK:
                return -ECANCELED;
        case CURLE_LOGIN_DENIED:
        case CURLE_REMOTE_ACCESS_DENIED:
                return -EACCES;
        default:
                return -EIO;
        }
}

int koc__parse_retry_after(const char *value, uint64_t now_realtime_usec, uint64_t *ret_usec) {
        if (!value)
                return -EINVAL;
        while (isspace((unsigned char)*value))
                value++;
        if (isdigit((unsigned char)*value)) {
                char *end;
                errno = 0;
                unsigned long long s = strtoull(value, &end, 10);
                while (isspace((unsigned char)*end))
                        end++;
                if (*end || errno == ERANGE)
                        return -EINVAL;
                /* A day is far beyond any sensible back-off; clamp. */
                if (s > 86400)
                        s = 86400;
                *ret_usec = (uint64_t)s * KOC_USEC_PER_SEC;
                return 0;
        }
        time_t t = curl_getdate(value, NULL);
        if (t == (time_t)-1 || t < 0)
                return -EINVAL;
        uint64_t at = (uint64_t)t * KOC_USEC_PER_SEC;
        *ret_usec = at > now_realtime_usec ? at - now_realtime_usec : 0;
        if (*ret_usec > 86400 * KOC_USEC_PER_SEC)
                *ret_usec = 86400 * KOC_USEC_PER_SEC;
        return 0;
}

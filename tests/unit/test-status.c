/* SPDX-License-Identifier: Apache-2.0 */
/* Status bodies, reasons, Retry-After and curl error mapping. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/client-internal.h"

static const struct {
        const char *name;
        koc_reason reason;
        long code; /* the code client-go's errors package pairs with it */
        int err;   /* koc_reason_to_errno(), the table of koc/client.h */
} reasons[] = {
        {"BadRequest", KOC_REASON_BAD_REQUEST, 400, -EINVAL},
        {"Unauthorized", KOC_REASON_UNAUTHORIZED, 401, -EKEYREJECTED},
        {"Forbidden", KOC_REASON_FORBIDDEN, 403, -EACCES},
        {"NotFound", KOC_REASON_NOT_FOUND, 404, -ENOENT},
        {"MethodNotAllowed", KOC_REASON_METHOD_NOT_ALLOWED, 405, -EOPNOTSUPP},
        {"AlreadyExists", KOC_REASON_ALREADY_EXISTS, 409, -EEXIST},
        {"Conflict", KOC_REASON_CONFLICT, 409, -EBUSY},
        {"Gone", KOC_REASON_GONE, 410, -ESTALE},
        {"Expired", KOC_REASON_EXPIRED, 410, -ESTALE},
        {"RequestEntityTooLarge", KOC_REASON_REQUEST_ENTITY_TOO_LARGE, 413, -E2BIG},
        {"UnsupportedMediaType", KOC_REASON_UNSUPPORTED_MEDIA_TYPE, 415, -EPROTONOSUPPORT},
        {"Invalid", KOC_REASON_INVALID, 422, -EINVAL},
        {"TooManyRequests", KOC_REASON_TOO_MANY_REQUESTS, 429, -EAGAIN},
        {"InternalError", KOC_REASON_INTERNAL_ERROR, 500, -EREMOTEIO},
        {"ServiceUnavailable", KOC_REASON_SERVICE_UNAVAILABLE, 503, -EAGAIN},
        {"ServerTimeout", KOC_REASON_SERVER_TIMEOUT, 504, -ETIMEDOUT},
        {"Timeout", KOC_REASON_TIMEOUT, 504, -ETIMEDOUT},
};

static cJSON *parse(const char *s) {
        cJSON *j = cJSON_Parse(s);
        assert_non_null(j);
        return j;
}

static void test_reason_strings(void **state) {
        assert_string_equal(koc_reason_to_string(KOC_REASON_NONE), "");
        assert_string_equal(koc_reason_to_string(KOC_REASON_UNKNOWN), "Unknown");
        assert_string_equal(koc_reason_to_string((koc_reason)_KOC_REASON_MAX), "Unknown");
        assert_string_equal(koc_reason_to_string((koc_reason)-1), "Unknown");
        for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
                assert_string_equal(koc_reason_to_string(reasons[i].reason), reasons[i].name);
                /* The string wins over the code, whatever the code. */
                assert_int_equal(koc_reason_from_status(reasons[i].name, 0), reasons[i].reason);
                assert_int_equal(koc_reason_from_status(reasons[i].name, 500), reasons[i].reason);
        }
        /* Every enum value except NONE/UNKNOWN is in the table above. */
        assert_int_equal(sizeof reasons / sizeof reasons[0], _KOC_REASON_MAX - 2);
}

static void test_reason_from_code(void **state) {
        static const struct {
                long code;
                koc_reason reason;
        } codes[] = {
                {200, KOC_REASON_NONE},
                {201, KOC_REASON_NONE},
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
                {418, KOC_REASON_UNKNOWN},
                {502, KOC_REASON_UNKNOWN},
                {302, KOC_REASON_UNKNOWN},
                {0, KOC_REASON_UNKNOWN},
        };
        for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
                assert_int_equal(koc_reason_from_status(NULL, codes[i].code), codes[i].reason);
                /* Unknown, empty or foreign reasons fall back to the code. */
                assert_int_equal(koc_reason_from_status("", codes[i].code), codes[i].reason);
                assert_int_equal(koc_reason_from_status("Unknown", codes[i].code), codes[i].reason);
                assert_int_equal(koc_reason_from_status("notfound", codes[i].code),
                                 codes[i].reason);
                assert_int_equal(koc_reason_from_status("SomethingNew", codes[i].code),
                                 codes[i].reason);
        }
}

/* Real Status bodies of every reason, as kube-apiserver writes them. */
static void test_status_bodies(void **state) {
        for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
                char buf[512];
                snprintf(buf, sizeof buf,
                         "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                         "\"status\":\"Failure\",\"message\":\"m-%s\",\"reason\":\"%s\","
                         "\"details\":{\"name\":\"x\",\"kind\":\"leases\"},\"code\":%ld}",
                         reasons[i].name, reasons[i].name, reasons[i].code);
                cJSON *j = parse(buf);
                koc_status st;
                koc__status_parse(j, reasons[i].code, &st);
                assert_int_equal(st.reason, reasons[i].reason);
                assert_int_equal(st.code, reasons[i].code);
                assert_non_null(st.message);
                snprintf(buf, sizeof buf, "m-%s", reasons[i].name);
                assert_string_equal(st.message, buf);
                assert_int_equal(st.retry_after_usec, 0);
                /* A watch ERROR event: no HTTP code, the Status code counts. */
                koc__status_parse(j, 0, &st);
                assert_int_equal(st.reason, reasons[i].reason);
                assert_int_equal(st.code, reasons[i].code);
                cJSON_Delete(j);
        }
}

static void test_status_fallbacks(void **state) {
        koc_status st;

        /* No body at all. */
        koc__status_parse(NULL, 404, &st);
        assert_int_equal(st.reason, KOC_REASON_NOT_FOUND);
        assert_int_equal(st.code, 404);
        assert_null(st.message);
        koc__status_parse(NULL, 0, &st);
        assert_int_equal(st.reason, KOC_REASON_UNKNOWN);

        /* Reason missing: from the Status code, else the HTTP code. */
        cJSON *j = parse("{\"kind\":\"Status\",\"code\":410,\"message\":\"too old\"}");
        koc__status_parse(j, 0, &st);
        assert_int_equal(st.reason, KOC_REASON_GONE);
        assert_int_equal(st.code, 410);
        assert_string_equal(st.message, "too old");
        cJSON_Delete(j);
        j = parse("{\"kind\":\"Status\",\"message\":\"busy\"}");
        koc__status_parse(j, 503, &st);
        assert_int_equal(st.reason, KOC_REASON_SERVICE_UNAVAILABLE);
        assert_int_equal(st.code, 503);
        cJSON_Delete(j);

        /* An ERROR event Status with neither code nor reason. */
        j = parse("{\"kind\":\"Status\"}");
        koc__status_parse(j, 0, &st);
        assert_int_equal(st.reason, KOC_REASON_UNKNOWN);
        cJSON_Delete(j);

        /* retryAfterSeconds from the details. */
        j = parse("{\"reason\":\"TooManyRequests\",\"code\":429,"
                  "\"details\":{\"retryAfterSeconds\":3}}");
        koc__status_parse(j, 429, &st);
        assert_int_equal(st.reason, KOC_REASON_TOO_MANY_REQUESTS);
        assert_int_equal(st.retry_after_usec, 3 * 1000000ULL);
        cJSON_Delete(j);
}

/* Hostile and malformed bodies: wrong types are ignored field by field. */
static void test_status_hostile(void **state) {
        static const char *const bodies[] = {
                "{\"code\":\"x\",\"reason\":123,\"message\":{\"a\":1}}",
                "{\"code\":null,\"reason\":null,\"message\":null}",
                "{\"code\":1e308,\"reason\":[\"NotFound\"],\"message\":[1,2]}",
                "{\"code\":-404,\"reason\":true}",
                "{\"code\":404.5,\"reason\":false}",
                "{\"code\":99,\"details\":\"nope\"}",
                "{\"code\":1000,\"details\":{\"retryAfterSeconds\":\"5\"}}",
                "{\"details\":{\"retryAfterSeconds\":-1}}",
                "{\"details\":{\"retryAfterSeconds\":1e300}}",
                "{\"details\":[{\"retryAfterSeconds\":1}]}",
                "{\"status\":{\"reason\":\"NotFound\"},\"a\":{\"b\":{\"c\":[[[{}]]]}}}",
                "[\"reason\",\"NotFound\"]",
                "\"NotFound\"",
                "404",
                "null",
                "true",
        };
        for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
                cJSON *j = parse(bodies[i]);
                koc_status st;
                koc__status_parse(j, 500, &st);
                assert_int_equal(st.reason, KOC_REASON_INTERNAL_ERROR);
                assert_int_equal(st.code, 500);
                assert_null(st.message);
                assert_int_equal(st.retry_after_usec, 0);
                koc__status_parse(j, 0, &st);
                assert_int_equal(st.reason, KOC_REASON_UNKNOWN);
                cJSON_Delete(j);
        }
        /* Deeply nested garbage: cJSON refuses it, parse gets NULL. */
        char deep[5000];
        memset(deep, '[', sizeof deep - 1);
        deep[sizeof deep - 1] = 0;
        cJSON *j = cJSON_Parse(deep);
        koc_status st;
        koc__status_parse(j, 409, &st);
        assert_int_equal(st.reason, KOC_REASON_CONFLICT);
        cJSON_Delete(j);
        /* A reason of the right type but not a string we know. */
        j = parse("{\"reason\":\"\\u0000NotFound\",\"code\":403}");
        koc__status_parse(j, 0, &st);
        assert_int_equal(st.reason, KOC_REASON_FORBIDDEN);
        cJSON_Delete(j);
}

static void test_retry_after(void **state) {
        uint64_t u = 1;
        assert_int_equal(koc__parse_retry_after("5", 0, &u), 0);
        assert_int_equal(u, 5000000ULL);
        assert_int_equal(koc__parse_retry_after("  0 ", 0, &u), 0);
        assert_int_equal(u, 0);
        assert_int_equal(koc__parse_retry_after("99999999999999999999999", 0, &u), -EINVAL);
        assert_int_equal(koc__parse_retry_after("9999999", 0, &u), 0);
        assert_int_equal(u, 86400ULL * 1000000ULL); /* clamped to a day */
        assert_int_equal(koc__parse_retry_after("5s", 0, &u), -EINVAL);
        assert_int_equal(koc__parse_retry_after("-5", 0, &u), -EINVAL);
        assert_int_equal(koc__parse_retry_after("", 0, &u), -EINVAL);
        assert_int_equal(koc__parse_retry_after(NULL, 0, &u), -EINVAL);
        assert_int_equal(koc__parse_retry_after("garbage", 0, &u), -EINVAL);
        /* HTTP date, relative to "now". */
        uint64_t now = 1445412480ULL * 1000000ULL; /* Wed, 21 Oct 2015 07:28:00 GMT */
        assert_int_equal(koc__parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now, &u), 0);
        assert_int_equal(u, 10ULL * 1000000ULL);
        assert_int_equal(koc__parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now, &u), 0);
        assert_int_equal(u, 0);
}

static void test_curl_codes(void **state) {
        assert_int_equal(koc__curl_code_to_errno(CURLE_OK), 0);
        assert_int_equal(koc__curl_code_to_errno(CURLE_OPERATION_TIMEDOUT), -ETIMEDOUT);
        assert_int_equal(koc__curl_code_to_errno(CURLE_COULDNT_CONNECT), -ECONNREFUSED);
        assert_int_equal(koc__curl_code_to_errno(CURLE_COULDNT_RESOLVE_HOST), -EHOSTUNREACH);
        assert_int_equal(koc__curl_code_to_errno(CURLE_PEER_FAILED_VERIFICATION), -EPROTO);
        assert_int_equal(koc__curl_code_to_errno(CURLE_SSL_CONNECT_ERROR), -EPROTO);
        assert_int_equal(koc__curl_code_to_errno(CURLE_SSL_CACERT_BADFILE), -EPROTO);
        assert_int_equal(koc__curl_code_to_errno(CURLE_RECV_ERROR), -ECONNRESET);
        assert_int_equal(koc__curl_code_to_errno(CURLE_SEND_ERROR), -ECONNRESET);
        assert_int_equal(koc__curl_code_to_errno(CURLE_GOT_NOTHING), -ECONNRESET);
        assert_int_equal(koc__curl_code_to_errno(CURLE_PARTIAL_FILE), -ECONNRESET);
        assert_int_equal(koc__curl_code_to_errno(CURLE_OUT_OF_MEMORY), -ENOMEM);
        assert_int_equal(koc__curl_code_to_errno(CURLE_FILESIZE_EXCEEDED), -EMSGSIZE);
        assert_int_equal(koc__curl_code_to_errno(CURLE_URL_MALFORMAT), -EINVAL);
        assert_int_equal(koc__curl_code_to_errno(CURLE_HTTP2_STREAM), -EPROTO);
        assert_int_equal(koc__curl_code_to_errno(CURLE_WRITE_ERROR), -EIO);
        /* Every code maps to some negative errno. */
        for (int i = 1; i < CURL_LAST; i++)
                assert_true(koc__curl_code_to_errno((CURLcode)i) < 0);
}

static void test_reason_errnos(void **state) {
        assert_int_equal(koc_reason_to_errno(KOC_REASON_NONE), 0);
        assert_int_equal(koc_reason_to_errno(KOC_REASON_UNKNOWN), -EREMOTEIO);
        assert_int_equal(koc_reason_to_errno((koc_reason)_KOC_REASON_MAX), -EREMOTEIO);
        assert_int_equal(koc_reason_to_errno((koc_reason)-1), -EREMOTEIO);
        for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
                int e = koc_reason_to_errno(reasons[i].reason);
                assert_int_equal(e, reasons[i].err);
                /* An answer is never an I/O error, nor a transport failure's
                 * code (a program tells "the server said no" from "no
                 * answer"), except the timeout, whose outcome is unknown
                 * either way. */
                assert_int_not_equal(e, -EIO);
                assert_int_not_equal(e, -ECONNREFUSED);
                assert_int_not_equal(e, -ECONNRESET);
                assert_int_not_equal(e, -EHOSTUNREACH);
                assert_int_not_equal(e, -EPROTO);
                assert_int_not_equal(e, -EMSGSIZE);
                assert_int_not_equal(e, -EBADMSG);
                assert_int_not_equal(e, -ECANCELED);
                /* Only the reasons that mean the same share a code. */
                for (size_t j = 0; j < sizeof reasons / sizeof reasons[0]; j++) {
                        static const koc_reason same[][2] = {
                                {KOC_REASON_BAD_REQUEST, KOC_REASON_INVALID},
                                {KOC_REASON_GONE, KOC_REASON_EXPIRED},
                                {KOC_REASON_TOO_MANY_REQUESTS, KOC_REASON_SERVICE_UNAVAILABLE},
                                {KOC_REASON_SERVER_TIMEOUT, KOC_REASON_TIMEOUT},
                        };
                        bool alike = i == j;
                        for (size_t k = 0; k < sizeof same / sizeof same[0]; k++)
                                alike |= (same[k][0] == reasons[i].reason &&
                                          same[k][1] == reasons[j].reason) ||
                                         (same[k][1] == reasons[i].reason &&
                                          same[k][0] == reasons[j].reason);
                        if (!alike)
                                assert_int_not_equal(e, koc_reason_to_errno(reasons[j].reason));
                }
        }
}

static void test_response_errno(void **state) {
        koc_response r = {.status = 200, .message = ""};
        assert_int_equal(koc_response_errno(NULL), -EINVAL);
        assert_int_equal(koc_response_errno(&r), 0);
        r.status = 201;
        assert_int_equal(koc_response_errno(&r), 0);
        /* A transport failure keeps its own code, whatever else is set. */
        r = (koc_response){.error = -ECONNREFUSED, .message = ""};
        assert_int_equal(koc_response_errno(&r), -ECONNREFUSED);
        r = (koc_response){.error = -EBADMSG, .status = 200, .message = ""};
        assert_int_equal(koc_response_errno(&r), -EBADMSG);
        /* An answer: its reason decides. */
        for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
                r = (koc_response){
                        .status = reasons[i].code, .reason = reasons[i].reason, .message = ""};
                assert_int_equal(koc_response_errno(&r), reasons[i].err);
        }
        /* A 409 is told apart by its reason, not its code. */
        r = (koc_response){.status = 409, .reason = KOC_REASON_ALREADY_EXISTS, .message = ""};
        assert_int_equal(koc_response_errno(&r), -EEXIST);
        r.reason = KOC_REASON_CONFLICT;
        assert_int_equal(koc_response_errno(&r), -EBUSY);
        /* A code with no reason koc knows, and a response built by hand
         * without a reason. */
        r = (koc_response){.status = 418, .reason = KOC_REASON_UNKNOWN, .message = ""};
        assert_int_equal(koc_response_errno(&r), -EREMOTEIO);
        r = (koc_response){.status = 302, .message = ""};
        assert_int_equal(koc_response_errno(&r), -EREMOTEIO);
        r = (koc_response){.status = 403, .message = ""};
        assert_int_equal(koc_response_errno(&r), -EACCES);
        /* Neither an answer nor a transport error. */
        r = (koc_response){.message = ""};
        assert_int_equal(koc_response_errno(&r), -EIO);
}

/* The client's reading of header lines (core/client.c, fuzzed by
 * tests/fuzz/fuzz-response.c). */
static void test_header_lines(void **state) {
        const uint64_t now = 1700000000ull * 1000000ull;
        koc_header_line h;
        koc__header_line_parse("HTTP/1.1 429 Too Many\r\n", 23, now, &h);
        assert_int_equal(h.status, 429);
        assert_false(h.http2);
        koc__header_line_parse("HTTP/2 200 \r\n", 13, now, &h);
        assert_int_equal(h.status, 200);
        assert_true(h.http2);
        /* A status line without three digits has no code (0), not a
         * part of one. */
        koc__header_line_parse("HTTP/1.1 2x\r\n\r\n", 15, now, &h);
        assert_int_equal(h.status, 0);
        koc__header_line_parse("retry-after:  7 \r\n", 18, now, &h);
        assert_int_equal(h.status, -1);
        assert_true(h.has_retry_after);
        assert_int_equal(h.retry_after_usec, 7000000);
        koc__header_line_parse("Retry-After: 99999999\r\n", 23, now, &h);
        assert_int_equal(h.retry_after_usec, 86400ull * 1000000ull);
        koc__header_line_parse("Retry-After: soon\r\n", 19, now, &h);
        assert_false(h.has_retry_after);
        koc__header_line_parse("Content-Type: application/json\r\n", 32, now, &h);
        assert_int_equal(h.status, -1);
        assert_false(h.has_retry_after);
        koc__header_line_parse("HTTP/", 5, now, &h);
        assert_int_equal(h.status, -1);
}

static void test_body_cap(void **state) {
        char *data = NULL;
        size_t len = 0, alloc = 0;
        assert_int_equal(koc__body_append(&data, &len, &alloc, 10, "hello", 5), 0);
        assert_int_equal(koc__body_append(&data, &len, &alloc, 10, "world", 5), 0);
        assert_int_equal(len, 10);
        assert_true(alloc <= 11);
        assert_int_equal(koc__body_append(&data, &len, &alloc, 10, "!", 1), -EMSGSIZE);
        assert_int_equal(len, 10);
        assert_memory_equal(data, "helloworld", 10);
        free(data);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reason_strings), cmocka_unit_test(test_reason_from_code),
                cmocka_unit_test(test_status_bodies),  cmocka_unit_test(test_status_fallbacks),
                cmocka_unit_test(test_status_hostile), cmocka_unit_test(test_retry_after),
                cmocka_unit_test(test_curl_codes),     cmocka_unit_test(test_reason_errnos),
                cmocka_unit_test(test_response_errno), cmocka_unit_test(test_header_lines),
                cmocka_unit_test(test_body_cap),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

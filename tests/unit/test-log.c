/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "koc/log.h"

struct captured {
        int n;
        int level;
        char component[32];
        char message[256];
};

static void capture(int level, const char *component, const char *message, void *userdata) {
        struct captured *c = userdata;
        c->n++;
        c->level = level;
        snprintf(c->component, sizeof c->component, "%s", component);
        snprintf(c->message, sizeof c->message, "%s", message);
}

static void test_levels_and_handler(void **state) {
        struct captured c = { 0 };
        koc_log_set_handler(capture, &c, NULL);
        koc_log_set_level(KOC_LOG_INFO);
        koc_log_debug("leader", "hidden %d", 1);
        assert_int_equal(c.n, 0);
        koc_log_info("leader", "became leader identity=%s", "pod-a");
        assert_int_equal(c.n, 1);
        assert_int_equal(c.level, KOC_LOG_INFO);
        assert_string_equal(c.component, "leader");
        assert_string_equal(c.message, "became leader identity=pod-a");
        koc_log_set_level(KOC_LOG_DEBUG);
        koc_log_debug("client", "shown");
        assert_int_equal(c.n, 2);
        koc_log_set_level(KOC_LOG_ERROR);
        koc_log_warn("client", "hidden");
        assert_int_equal(c.n, 2);
        koc_log_set_handler(NULL, NULL, NULL);
}

static void test_level_names(void **state) {
        assert_int_equal(koc_log_level_from_string("error"), KOC_LOG_ERROR);
        assert_int_equal(koc_log_level_from_string("WARN"), KOC_LOG_WARN);
        assert_int_equal(koc_log_level_from_string("warning"), KOC_LOG_WARN);
        assert_int_equal(koc_log_level_from_string("info"), KOC_LOG_INFO);
        assert_int_equal(koc_log_level_from_string("debug"), KOC_LOG_DEBUG);
        assert_true(koc_log_level_from_string("loud") < 0);
        assert_true(koc_log_level_from_string(NULL) < 0);
}

/* Runs one log call with stderr redirected to a file and returns what it wrote. */
static char *capture_stderr(enum koc_log_format format, const char *msg) {
        char path[] = "/tmp/koc-test-log-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        fflush(stderr);
        int saved = dup(STDERR_FILENO);
        dup2(fd, STDERR_FILENO);
        koc_log_set_format(format);
        koc_log_set_level(KOC_LOG_INFO);
        koc_log_info("probes", "%s", msg);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        char *buf = calloc(1, 4096);
        assert_true(pread(fd, buf, 4095, 0) > 0);
        close(fd);
        unlink(path);
        return buf;
}

static void test_logfmt_line(void **state) {
        char *line = capture_stderr(KOC_LOG_FORMAT_LOGFMT, "say \"hi\"\nnext");
        assert_true(strncmp(line, "time=20", 7) == 0);
        assert_non_null(strstr(line, " level=info component=probes msg=\"say \\\"hi\\\"\\nnext\"\n"));
        /* Exactly one line per event. */
        assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
        free(line);
}

static void test_json_line(void **state) {
        char *line = capture_stderr(KOC_LOG_FORMAT_JSON, "tab\there");
        assert_true(strncmp(line, "{\"time\":\"20", 11) == 0);
        assert_non_null(strstr(line, "\"level\":\"info\",\"component\":\"probes\",\"msg\":\"tab\\there\"}\n"));
        free(line);
        koc_log_set_format(KOC_LOG_FORMAT_LOGFMT);
}

static void test_error_set(void **state) {
        koc_error err = { 0 };
        assert_int_equal(koc_error_set(&err, -22, "%s: field %s: %s", "/f", "server", "missing"), -22);
        assert_int_equal(err.code, -22);
        assert_string_equal(err.message, "/f: field server: missing");
        assert_int_equal(koc_error_set(NULL, -5, "ignored"), -5);
}

static void count_destroy(void *userdata) {
        (*(int *)userdata)++;
}

static void quiet_handler(int level, const char *component, const char *message, void *userdata) {
}

/* Replacing the log handler destroys the old userdata once, and not when
 * the same userdata is installed again. */
static void test_handler_destroy(void **state) {
        int a = 0, b = 0;

        koc_log_set_handler(quiet_handler, &a, count_destroy);
        koc_log_set_handler(quiet_handler, &a, count_destroy);
        assert_int_equal(a, 0);
        koc_log_set_handler(quiet_handler, &b, count_destroy);
        assert_int_equal(a, 1);
        koc_log_set_handler(NULL, NULL, NULL);
        assert_int_equal(b, 1);
        assert_int_equal(a, 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_handler_destroy), cmocka_unit_test(test_levels_and_handler),
                cmocka_unit_test(test_level_names),     cmocka_unit_test(test_logfmt_line),
                cmocka_unit_test(test_json_line),       cmocka_unit_test(test_error_set),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

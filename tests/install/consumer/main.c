/* A separate project using the installed koc: proves headers, library and
 * package files are complete.  Prints one line per check and exits non-zero
 * on the first failure. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <koc/config.h>
#include <koc/log.h>
#include <koc/time.h>

int main(void) {
        uint64_t usec = 0;
        if (koc_parse_duration("1m30s", &usec) < 0 || usec != 90 * KOC_USEC_PER_SEC) {
                fprintf(stderr, "consumer: koc_parse_duration failed\n");
                return 1;
        }
        char uuid[37];
        if (koc_uuid_random(uuid) < 0 || strlen(uuid) != 36) {
                fprintf(stderr, "consumer: koc_uuid_random failed\n");
                return 1;
        }
        koc_cluster_config *cfg = NULL;
        koc_error err = { 0 };
        int r = koc_cluster_config_from_kubeconfig("/nonexistent/kubeconfig", NULL, &cfg, &err);
        if (r >= 0 || strstr(err.message, "/nonexistent/kubeconfig") == NULL) {
                fprintf(stderr, "consumer: expected an error naming the file, got %d '%s'\n", r,
                        err.message);
                return 1;
        }
        koc_log_info("consumer", "linked against koc: uuid=%s", uuid);
        printf("consumer ok\n");
        return 0;
}

/* Compiled twice by tests/gen.cmake: as is it must compile, with -DTYPO it
 * must not (a misspelt field of a built-in type is a compile error). */
#include <koc/types/k8s.h>

int typo_check(void);
int typo_check(void) {
#ifdef TYPO
        koc_apps_v1_deployment d = {.spec = {.replica = 3, .has_replicas = true}};
#else
        koc_apps_v1_deployment d = {.spec = {.replicas = 3, .has_replicas = true}};
#endif
        return d.spec.replicas;
}

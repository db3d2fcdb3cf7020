# The controller runtime (framework/controller) and its base pieces in core/.

koc_add_test(NAME test-workqueue SOURCES unit/test-workqueue.c MODULES core leader probes shutdown manager controller
             LABELS unit TIMEOUT 120)
koc_add_test(NAME test-store SOURCES unit/test-store.c MODULES core leader probes shutdown manager controller
             LABELS unit TIMEOUT 120)
koc_add_test(NAME test-mailbox SOURCES unit/test-mailbox.c MODULES core LABELS unit TIMEOUT 120)

# The controller runtime against koc-apiserver over HTTPS: event flows, a
# conflict retried, the drain, finalizers, 410 re-lists, fenced writes.
koc_add_test(NAME test-controller SOURCES integration/test-controller.c ${KOC_HARNESS_SOURCES}
             MODULES core leader probes shutdown manager controller LIBS PkgConfig::CURL
             LABELS integration TIMEOUT 240)

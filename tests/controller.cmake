# The controller runtime (framework/controller) and its base pieces in core/.

koc_add_test(NAME test-workqueue SOURCES unit/test-workqueue.c MODULES core leader probes shutdown manager controller
             LABELS unit tsan TIMEOUT 120)
koc_add_test(NAME test-store SOURCES unit/test-store.c MODULES core leader probes shutdown manager controller
             LABELS unit tsan TIMEOUT 120)
koc_add_test(NAME test-controller-helpers SOURCES unit/test-controller-helpers.c
             MODULES core leader probes shutdown manager controller LABELS unit TIMEOUT 120)
koc_add_test(NAME test-controller-fence SOURCES unit/test-controller-fence.c
             MODULES core leader probes shutdown manager controller LABELS unit tsan TIMEOUT 120)
koc_add_test(NAME test-mailbox SOURCES unit/test-mailbox.c MODULES core LABELS unit tsan TIMEOUT 120)

# The controller runtime against koc-apiserver over HTTPS: event flows, a
# conflict retried, the drain, finalizers, 410 re-lists, fenced writes.
koc_add_test(NAME test-controller SOURCES integration/test-controller.c ${KOC_HARNESS_SOURCES}
             MODULES core leader probes shutdown manager controller LIBS PkgConfig::CURL
             LABELS integration tsan K8S TIMEOUT 240)

# examples/configmap-mirror: two replicas of the program, a leader change,
# the end state of the copies and the finalizer.
if(TARGET koc-example-configmap-mirror)
  koc_add_test(NAME test-configmap-mirror SOURCES integration/test-configmap-mirror.c
                    ${KOC_HARNESS_SOURCES}
               MODULES core LIBS PkgConfig::CURL LABELS integration tsan K8S TIMEOUT 240)
  target_compile_definitions(test-configmap-mirror PRIVATE
                             KOC_MIRROR_PATH="$<TARGET_FILE:koc-example-configmap-mirror>")
  add_dependencies(test-configmap-mirror koc-example-configmap-mirror)
endif()

# A leader change in the middle of a burst: two replicas in child processes;
# every object reaches its end state and no key is reconciled by both at once.
koc_add_test(NAME test-controller-ha SOURCES integration/test-controller-ha.c ${KOC_HARNESS_SOURCES}
             MODULES core leader probes shutdown manager controller LIBS PkgConfig::CURL
             LABELS integration tsan K8S TIMEOUT 240)
# Under valgrind the replicas of the example run under valgrind too.
if(TEST valgrind-test-configmap-mirror)
  set_property(TEST valgrind-test-configmap-mirror APPEND PROPERTY ENVIRONMENT
               "KOC_MIRROR_WRAPPER=${VALGRIND_EXECUTABLE} --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect")
endif()

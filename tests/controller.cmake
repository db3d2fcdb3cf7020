# The controller runtime (framework/controller) and its base pieces in core/.

koc_add_test(NAME test-workqueue SOURCES unit/test-workqueue.c MODULES core leader probes shutdown manager controller
             LABELS unit tsan TIMEOUT 120)
koc_add_test(NAME test-store SOURCES unit/test-store.c MODULES core cache
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

# The informer against a scripted server that answers badly on purpose: an
# authoritative re-list after 410, an unknown watch event type, continue
# loops and pages without end, the list caps, every rejected answer said.
koc_add_test(NAME test-informer-hostile SOURCES integration/test-informer-hostile.c
             MODULES core cache LIBS Threads::Threads
             LABELS integration tsan VALGRIND TIMEOUT 180)

# The streaming-list case once more, on a kube-apiserver of its own started
# with the WatchList gate off: the informer falls back to paginated lists.
if(KOC_K8S_ENABLED)
  add_test(NAME k8s-test-controller-watchlist-off
           COMMAND env KOC_K8S_FEATURE_GATES=WatchList=false KOC_TEST_WATCHLIST_OFF=1
                   bash ${KOC_K8S_SRC}/env.sh run $<TARGET_FILE:test-controller>)
  set_tests_properties(k8s-test-controller-watchlist-off PROPERTIES LABELS k8s TIMEOUT 180
                       RESOURCE_LOCK k8s-apiserver
                       ENVIRONMENT "KOC_LOG_LEVEL=$ENV{KOC_TEST_LOG_LEVEL}")
endif()

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

# Workers start on a synced cache: an orphan cleaner that deletes children
# whose parent its cache lacks deletes none of 20,000 on start and on a
# failover, with the parents' list answered seconds after the children's.
koc_add_test(NAME test-controller-synced SOURCES integration/test-controller-synced.c
                  ${KOC_HARNESS_SOURCES}
             MODULES core leader probes shutdown manager controller LIBS PkgConfig::CURL
             LABELS integration tsan K8S TIMEOUT 300)

# The cache of a manager (framework/cache, koc/cache.h): two managers in one
# process share no informer and no controller name.
koc_add_test(NAME test-cache SOURCES integration/test-cache.c ${KOC_HARNESS_SOURCES}
             MODULES core cache leader probes shutdown manager controller LIBS PkgConfig::CURL
             LABELS integration tsan TIMEOUT 180)

# Scoped informers (koc/cache.h, "Scopes"): owned and watched types in their
# own namespace, label and field selectors and metadata-only mode; reads
# answered only by an informer that covers them; indexes of any cached type.
koc_add_test(NAME test-cache-scopes SOURCES integration/test-cache-scopes.c ${KOC_HARNESS_SOURCES}
             MODULES core cache leader probes shutdown manager controller LIBS PkgConfig::CURL
             LABELS integration tsan K8S TIMEOUT 180)

# koc/reconcile.h: create-or-update/patch with the requests they send, apply
# with its outcome, ownership not stolen, status patches next to another
# writer, conditions over time, a finalizer whose cleanup writes the status.
koc_add_test(NAME test-reconcile SOURCES integration/test-reconcile.c ${KOC_HARNESS_SOURCES}
             MODULES core cache leader probes shutdown manager controller LIBS PkgConfig::CURL
             LABELS integration tsan K8S TIMEOUT 180)

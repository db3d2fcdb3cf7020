# KocEnvtest: tests of an operator on a real kube-apiserver, as envtest gives
# Go projects.  Installed with koc beside kocConfig.cmake, which puts this
# directory on CMAKE_MODULE_PATH:
#
#   find_package(koc REQUIRED)
#   include(KocEnvtest)
#   koc_add_envtest(NAME my-operator-e2e TIMEOUT 300 [CONTROLLER_MANAGER]
#                   [SERVER auto|kube-apiserver|koc-apiserver]  (default: KOC_ENVTEST_SERVER or auto)
#                   COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/e2e.sh $<TARGET_FILE:my-operator>)
#
# The test runs `koc-envtest run COMMAND...`: a control plane of its own
# (etcd and kube-apiserver from ~/.cache/koc, built from the Go modules the
# first time; koc-apiserver where Go is missing), COMMAND with KUBECONFIG,
# KOC_ENVTEST_DIR and KOC_ENVTEST_SERVER set, and the control plane stopped
# afterwards whatever COMMAND did.  CONTROLLER_MANAGER also starts
# kube-controller-manager (garbage collection, Deployments, ReplicaSets).
set(_KOC_ENVTEST_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../../..")
find_program(KOC_ENVTEST_EXECUTABLE koc-envtest
             HINTS "${_KOC_ENVTEST_PREFIX}/bin" "${_KOC_ENVTEST_PREFIX}/../bin" NO_DEFAULT_PATH)
find_program(KOC_ENVTEST_EXECUTABLE koc-envtest)

function(koc_add_envtest)
  cmake_parse_arguments(E "CONTROLLER_MANAGER" "NAME;TIMEOUT;SERVER" "COMMAND" ${ARGN})
  if(NOT E_NAME OR NOT E_COMMAND)
    message(FATAL_ERROR "koc_add_envtest: NAME and COMMAND are required")
  endif()
  if(NOT KOC_ENVTEST_EXECUTABLE)
    message(FATAL_ERROR "koc_add_envtest: koc-envtest not found next to koc; reinstall koc")
  endif()
  if(NOT E_TIMEOUT)
    set(E_TIMEOUT 600)
  endif()
  set(cm 0)
  if(E_CONTROLLER_MANAGER)
    set(cm 1)
  endif()
  add_test(NAME ${E_NAME} COMMAND ${KOC_ENVTEST_EXECUTABLE} run ${E_COMMAND})
  set(envs "KOC_ENVTEST_CONTROLLER_MANAGER=${cm}")
  if(E_SERVER)
    list(APPEND envs "KOC_ENVTEST_SERVER=${E_SERVER}")
  endif()
  # Without SERVER the environment of ctest picks (KOC_ENVTEST_SERVER; auto).
  set_tests_properties(${E_NAME} PROPERTIES TIMEOUT ${E_TIMEOUT} LABELS envtest
                       ENVIRONMENT "${envs}")
endfunction()

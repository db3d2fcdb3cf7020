# A separate project finds and links the installed koc (CMake package and pkg-config).
add_test(NAME install-check
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install/check.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
set_tests_properties(install-check PROPERTIES LABELS install TIMEOUT 600 RESOURCE_LOCK k8s-apiserver)
# koc-envtest from the installed tree (kube-apiserver from the cached binaries
# when present, koc-apiserver, the fallback without Go, KocEnvtest.cmake).
add_test(NAME install-envtest
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install/envtest.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
set_tests_properties(install-envtest PROPERTIES LABELS install TIMEOUT 300 RESOURCE_LOCK k8s-apiserver)

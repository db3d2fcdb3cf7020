# koc-gen-types (tools/koc-gen-types): types generated at build time from the
# test CRDs in tests/gen/ by koc_generate_types(), as a user's project does,
# then compiled with koc's warnings (-Werror under KOC_WERROR) and tested.
koc_add_test(NAME test-gen-types SOURCES gen/test-gen-types.c MODULES core LABELS unit)
koc_generate_types(TARGET test-gen-types CRD gen/widgets-crd.yaml)
koc_generate_types(TARGET test-gen-types CRD gen/gadgets-crd.yaml)
# The generator's own refusals and its output's stability (a shell test).
add_test(NAME test-gen-types-cli
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/gen/cli.sh $<TARGET_FILE:koc-gen-types>
                 ${CMAKE_CURRENT_SOURCE_DIR}/gen)
set_tests_properties(test-gen-types-cli PROPERTIES LABELS unit TIMEOUT 120)

# The built-in types (libkoc-types, types/CMakeLists.txt).
koc_add_test(NAME test-k8s-types SOURCES gen/test-k8s-types.c MODULES core LABELS unit LIBS koc-types)
# A typo in a field name is a compile error: the same file compiles without
# -DTYPO (so the failure is the typo's) and fails with it.
foreach(v ok typo)
  set(def "")
  if(v STREQUAL "typo")
    set(def -DTYPO)
  endif()
  add_test(NAME test-k8s-types-compile-${v}
           COMMAND ${CMAKE_C_COMPILER} -std=c11 -Wall -Werror -fsyntax-only ${def}
                   -I${PROJECT_BINARY_DIR}/types/include -I${PROJECT_SOURCE_DIR}/include
                   ${CMAKE_CURRENT_SOURCE_DIR}/gen/typo.c)
  set_tests_properties(test-k8s-types-compile-${v} PROPERTIES LABELS unit TIMEOUT 60)
endforeach()
set_tests_properties(test-k8s-types-compile-typo PROPERTIES WILL_FAIL TRUE)
# The builders' objects on a server, and the server's answers through the
# types (k8s-test-k8s-types-server: on kube-apiserver, with its defaults).
koc_add_test(NAME test-k8s-types-server SOURCES gen/test-k8s-types-server.c ${KOC_HARNESS_SOURCES}
             MODULES core LIBS koc-types PkgConfig::CURL LABELS integration K8S TIMEOUT 120)

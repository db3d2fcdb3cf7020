# Tests and benchmark of the probes module.
koc_add_test(NAME test-probes SOURCES unit/test-probes.c MODULES core probes
             LIBS PkgConfig::CURL LABELS unit tsan TIMEOUT 60)
# 1,000 slow and idle clients against the probes server, and against a leading
# manager: the kubelet's probes are still answered within 1 s, and the Lease
# keeps renewing.
koc_add_test(NAME test-probes-slow-clients
             SOURCES integration/test-probes-slow-clients.c ${KOC_HARNESS_SOURCES}
             MODULES core leader probes shutdown manager LIBS PkgConfig::CURL
             LABELS integration TIMEOUT 240)

# probes-server: the probes server under wrk load while a leader renews on the
# same loop; `cmake --build build --target bench-probes` runs it (needs wrk).
if(TARGET koc-apiserver)
  add_executable(probes-server bench/probes-server.c ${KOC_HARNESS_SOURCES})
  koc_target_settings(probes-server)
  koc_link_modules(probes-server core leader probes)
  target_include_directories(probes-server PRIVATE ${PROJECT_SOURCE_DIR}/include
                                                   ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(probes-server PRIVATE PkgConfig::CURL m)
  target_compile_definitions(probes-server PRIVATE
                             KOC_APISERVER_PATH="$<TARGET_FILE:koc-apiserver>")
  add_dependencies(probes-server koc-apiserver)
  add_custom_target(bench-probes COMMAND probes-server DEPENDS probes-server USES_TERMINAL
                    COMMENT "bench-probes: wrk on /readyz while the leader renews")
endif()

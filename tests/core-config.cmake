# Cluster configuration (kubeconfig, in-cluster, token reload) and the metrics
# registry, all in core.
koc_add_test(NAME test-incluster SOURCES unit/test-incluster.c MODULES core LABELS unit
             LIBS PkgConfig::CURL)
koc_add_test(NAME test-token-reload SOURCES unit/test-token-reload.c MODULES core LABELS unit
             LIBS PkgConfig::CURL)
koc_add_test(NAME test-kubeconfig SOURCES unit/test-kubeconfig.c MODULES core LABELS unit
             LIBS PkgConfig::CURL)
koc_add_test(NAME test-config-tls SOURCES integration/test-config-tls.c ${KOC_HARNESS_SOURCES}
             MODULES core LIBS PkgConfig::CURL LABELS integration K8S TIMEOUT 120)
koc_add_test(NAME test-config-client-cert SOURCES unit/test-config-client-cert.c MODULES core
             LABELS unit tsan LIBS PkgConfig::CURL PkgConfig::OPENSSL Threads::Threads)

# Figures (not tests): tests/bench/bench-metrics.c, tests/bench/bench-kubeconfig.c.
foreach(b bench-metrics bench-kubeconfig)
  add_executable(${b} bench/${b}.c)
  koc_target_settings(${b})
  koc_link_modules(${b} core)
  target_include_directories(${b} PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR})
  target_link_libraries(${b} PRIVATE PkgConfig::CURL PkgConfig::OPENSSL Threads::Threads)
endforeach()

# The chaos run (tests/chaos/run.sh): replicas of koc-example-configmap-mirror
# under a seeded schedule of API, process and network faults, checked by
# chaos-check (no overlap of leaders, no write outside its window, fencing
# tokens never backwards, every object at its end state).  The short version
# (one minute, fixed seed, 3 replicas) runs in the suite, label chaos; the
# long one is `tests/chaos/run.sh --seed N --duration S --replicas N`.
add_executable(chaos-proxy chaos/chaos-proxy.c)
koc_target_settings(chaos-proxy)
add_executable(chaos-check chaos/chaos-check.c)
koc_target_settings(chaos-check)
target_link_libraries(chaos-check PRIVATE PkgConfig::CJSON)

if(TARGET koc-apiserver)
  add_test(NAME chaos-proxy COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/chaos/proxy-test.sh
                                    ${PROJECT_BINARY_DIR})
  set_tests_properties(chaos-proxy PROPERTIES LABELS chaos TIMEOUT 60)
endif()
if(TARGET koc-apiserver AND TARGET koc-example-configmap-mirror)
  add_test(NAME chaos
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/chaos/run.sh --seed 7 --duration 60
                   --replicas 3 --server koc --out ${CMAKE_CURRENT_BINARY_DIR}/chaos-short-koc
                   --bin ${PROJECT_BINARY_DIR})
  # Two processors: three replicas, their proxies and the server are busy.
  set_tests_properties(chaos PROPERTIES LABELS chaos TIMEOUT 300 PROCESSORS 2)
  add_dependencies(chaos-check chaos-proxy koc-apiserver koc-example-configmap-mirror)
  # The same on the real kube-apiserver of the k8s fixture (network and process
  # faults; its API cannot inject errors).
  koc_add_k8s_test(k8s-chaos 300 bash ${CMAKE_CURRENT_SOURCE_DIR}/chaos/run.sh --seed 7
                   --duration 60 --replicas 3 --server k8s
                   --out ${CMAKE_CURRENT_BINARY_DIR}/chaos-short-k8s --bin ${PROJECT_BINARY_DIR})
  if(TEST k8s-chaos)
    set_tests_properties(k8s-chaos PROPERTIES LABELS "k8s;chaos" PROCESSORS 2)
  endif()
endif()

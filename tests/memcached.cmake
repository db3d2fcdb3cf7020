# examples/memcached end to end: on koc-apiserver (label integration), and on
# a control plane of its own with kube-controller-manager (label k8s: the
# Deployment, ReplicaSet and garbage collector controllers run).
if(TARGET koc-example-memcached AND TARGET koc-apiserver)
  set(_mc ${PROJECT_SOURCE_DIR}/examples/memcached)
  add_test(NAME memcached-e2e COMMAND bash ${_mc}/tests/e2e.sh
           $<TARGET_FILE:koc-example-memcached> koc ${_mc}/chart $<TARGET_FILE:koc-apiserver>)
  set_tests_properties(memcached-e2e PROPERTIES LABELS integration TIMEOUT 180
                       ENVIRONMENT "KOC_LOG_LEVEL=$ENV{KOC_TEST_LOG_LEVEL}")
  if(KOC_K8S_ENABLED)
    add_test(NAME k8s-memcached-e2e COMMAND bash ${_mc}/tests/e2e.sh
             $<TARGET_FILE:koc-example-memcached> k8s ${_mc}/chart)
    set_tests_properties(k8s-memcached-e2e PROPERTIES LABELS k8s TIMEOUT 300
                         RESOURCE_LOCK k8s-apiserver
                         ENVIRONMENT "KOC_LOG_LEVEL=$ENV{KOC_TEST_LOG_LEVEL}")
    # Its admission webhooks called by kube-apiserver (url: on loopback, caBundle).
    add_test(NAME k8s-memcached-webhook COMMAND bash ${_mc}/tests/webhook-e2e.sh
             $<TARGET_FILE:koc-example-memcached> ${_mc}/chart)
    set_tests_properties(k8s-memcached-webhook PROPERTIES LABELS k8s TIMEOUT 300
                         RESOURCE_LOCK k8s-apiserver
                         ENVIRONMENT "KOC_LOG_LEVEL=$ENV{KOC_TEST_LOG_LEVEL}")
  endif()
endif()
if(TARGET koc-example-memcached AND TARGET koc-apiserver AND VALGRIND_EXECUTABLE AND NOT KOC_SANITIZED)
  add_test(NAME valgrind-memcached-e2e COMMAND bash ${_mc}/tests/e2e.sh
           $<TARGET_FILE:koc-example-memcached> koc ${_mc}/chart $<TARGET_FILE:koc-apiserver>)
  set_tests_properties(valgrind-memcached-e2e PROPERTIES LABELS valgrind TIMEOUT 600
                       ENVIRONMENT "KOC_LOG_LEVEL=$ENV{KOC_TEST_LOG_LEVEL};KOC_E2E_VALGRIND=${VALGRIND_EXECUTABLE}")
endif()

# A real one-node cluster (tests/k8s/node.sh): kubelet, containerd and the
# rest in a network namespace of their own, the example images built without
# a container engine (scripts/image.sh), charts/koc-example installed, probed
# and rolled.  Label node: `ctest -L node`.  One node at a time per machine
# (RESOURCE_LOCK koc-node); each test brings its own up and down.
#
# KOC_NODE_TESTS: AUTO (registered when the real control plane's tests are,
# and the machine has containerd, runc, mmdebstrap and runs as root), ON, OFF.
set(KOC_NODE_TESTS AUTO CACHE STRING "Run the tests on a real one-node cluster (root, containerd)")
find_program(KOC_CONTAINERD_EXECUTABLE containerd)
find_program(KOC_MMDEBSTRAP_EXECUTABLE mmdebstrap)
set(KOC_NODE_ENABLED OFF)
if(KOC_NODE_TESTS STREQUAL "AUTO")
  execute_process(COMMAND id -u OUTPUT_VARIABLE _koc_uid OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(KOC_K8S_ENABLED AND KOC_CONTAINERD_EXECUTABLE AND KOC_MMDEBSTRAP_EXECUTABLE AND _koc_uid STREQUAL "0")
    set(KOC_NODE_ENABLED ON)
  endif()
elseif(KOC_NODE_TESTS)
  set(KOC_NODE_ENABLED ON)
endif()

if(KOC_NODE_ENABLED AND TARGET koc-example-leader)
  set(KOC_NODE_IMAGES ${PROJECT_BINARY_DIR}/node-images)
  # The images, from this build's programs unless they are sanitised
  # (image.sh then builds its own Release build beside the archives).
  if(KOC_SANITIZE STREQUAL "none" OR NOT KOC_SANITIZE)
    set(_koc_image_build --build-dir ${PROJECT_BINARY_DIR})
  else()
    set(_koc_image_build)
  endif()
  set(_koc_node_images koc-example-leader koc-test-curl)
  set(_koc_node_cases install gated upgrade failover crash drain helm-test)
  if(TARGET koc-example-memcached)
    list(APPEND _koc_node_images koc-example-memcached memcached)
    list(APPEND _koc_node_cases memcached)
  endif()
  add_test(NAME node-images
           COMMAND ${PROJECT_SOURCE_DIR}/scripts/image.sh ${_koc_image_build} --out ${KOC_NODE_IMAGES}
                   ${_koc_node_images})
  set_tests_properties(node-images PROPERTIES FIXTURES_SETUP node-images LABELS node TIMEOUT 900)
  add_test(NAME node-image-dockerfile
           COMMAND bash ${PROJECT_SOURCE_DIR}/tests/image/check-built.sh ${PROJECT_SOURCE_DIR}/Dockerfile
                   ${KOC_NODE_IMAGES}/koc-example-leader.tar)
  set_tests_properties(node-image-dockerfile PROPERTIES FIXTURES_REQUIRED node-images LABELS node TIMEOUT 60)
  add_test(NAME node-fixture COMMAND bash ${KOC_K8S_SRC}/node-fixture.sh)
  set_tests_properties(node-fixture PROPERTIES LABELS node TIMEOUT 300 RESOURCE_LOCK koc-node)
  foreach(c IN LISTS _koc_node_cases)
    add_test(NAME node-chart-${c}
             COMMAND bash ${KOC_K8S_SRC}/node-chart.sh ${KOC_NODE_IMAGES} ${c})
    set_tests_properties(node-chart-${c} PROPERTIES LABELS node TIMEOUT 300 RESOURCE_LOCK koc-node
                         FIXTURES_REQUIRED node-images)
  endforeach()
  message(STATUS "koc: tests on a real node enabled (ctest -L node)")
elseif(KOC_NODE_TESTS STREQUAL "AUTO")
  message(STATUS "koc: the tests on a real node are not registered (they need root, containerd, runc, "
                 "mmdebstrap and the real control plane: scripts/install-deps.sh, tests/k8s/build.sh)")
endif()

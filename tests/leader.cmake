# Leader election (leader/).  The state machine, its randomised simulation,
# the Lease's JSON codec and the configuration tests build from their sources
# alone (no API client); the driver test injects a fake transport and clock;
# the integration test runs against koc-apiserver.
koc_add_test(NAME test-leader-fsm
             SOURCES unit/test-leader-fsm.c ${PROJECT_SOURCE_DIR}/leader/fsm.c
             MODULES core LABELS unit)
koc_add_test(NAME test-lease-record
             SOURCES unit/test-lease-record.c ${PROJECT_SOURCE_DIR}/leader/lease-record.c
             MODULES core LABELS unit)
# The state machine stays free of I/O and JSON: its object calls nothing but
# pure C library helpers (the check reads the object the library is built from).
add_test(NAME leader-fsm-pure
         COMMAND bash ${PROJECT_SOURCE_DIR}/tests/abi/check-fsm-pure.sh
                 "$<TARGET_OBJECTS:koc_leader>")
set_tests_properties(leader-fsm-pure PROPERTIES LABELS unit TIMEOUT 60)
koc_add_test(NAME test-leader-sim
             SOURCES unit/test-leader-sim.c ${PROJECT_SOURCE_DIR}/leader/fsm.c
             MODULES core LABELS unit)
koc_add_test(NAME test-leader-config
             SOURCES unit/test-leader-config.c ${PROJECT_SOURCE_DIR}/leader/config.c
             MODULES core LABELS unit)
koc_add_test(NAME test-leader SOURCES unit/test-leader.c MODULES core leader LABELS unit)
koc_add_test(NAME test-leader-integration SOURCES integration/test-leader.c ${KOC_HARNESS_SOURCES}
             MODULES core leader LIBS PkgConfig::CURL LABELS integration K8S TIMEOUT 120)
# A follower's watch on a dead HTTP/1.1 connection, through a partitioning
# proxy in front of koc-apiserver.  Not on the real server: kube-apiserver
# speaks HTTP/2, where the client's PING health check covers this.  Label
# tsan: the proxy runs on a thread of its own.
koc_add_test(NAME test-leader-partition
             SOURCES integration/test-leader-partition.c ${KOC_HARNESS_SOURCES}
             MODULES core leader LIBS PkgConfig::CURL Threads::Threads
             LABELS integration tsan TIMEOUT 120)

# bench-leader: handoff and failover latency, API load and RSS (not a test).
if(TARGET koc-apiserver)
  add_executable(bench-leader bench/bench-leader.c ${KOC_HARNESS_SOURCES})
  koc_target_settings(bench-leader)
  koc_link_modules(bench-leader core leader)
  target_include_directories(bench-leader PRIVATE ${PROJECT_SOURCE_DIR}/include
                                                  ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  target_compile_definitions(bench-leader PRIVATE
                             KOC_APISERVER_PATH="$<TARGET_FILE:koc-apiserver>")
  target_link_libraries(bench-leader PRIVATE PkgConfig::CURL)
  add_dependencies(bench-leader koc-apiserver)
endif()

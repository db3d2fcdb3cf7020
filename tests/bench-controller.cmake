# bench-controller: the koc side of ./scripts/bench.sh controller (not a test).
add_executable(bench-controller bench/bench-controller.c)
koc_target_settings(bench-controller)
koc_link_modules(bench-controller core leader probes shutdown manager controller)
target_include_directories(bench-controller PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR})
target_link_libraries(bench-controller PRIVATE Threads::Threads)

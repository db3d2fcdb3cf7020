# Tests of the metrics registry (core/metrics.c).
koc_add_test(NAME test-metrics SOURCES unit/test-metrics.c MODULES core LABELS unit tsan TIMEOUT 60)

# The API client: the watch line splitter, Status parsing, and the client
# against koc-apiserver over HTTPS.  test-client asserts no timing, so it
# runs under valgrind too.
koc_add_test(NAME test-linebuf SOURCES unit/test-linebuf.c MODULES core LABELS unit)
koc_add_test(NAME test-status SOURCES unit/test-status.c MODULES core LABELS unit)
koc_add_test(NAME test-client SOURCES integration/test-client.c ${KOC_HARNESS_SOURCES}
             MODULES core LIBS PkgConfig::CURL LABELS integration VALGRIND TIMEOUT 120)

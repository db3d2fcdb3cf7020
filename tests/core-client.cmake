# The API client: the watch line splitter, Status parsing, and the client
# against koc-apiserver.
koc_add_test(NAME test-linebuf SOURCES unit/test-linebuf.c MODULES core LABELS unit)
koc_add_test(NAME test-status SOURCES unit/test-status.c MODULES core LABELS unit)

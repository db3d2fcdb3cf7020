# Handles shared with worker threads (client, manager, leadership state),
# through libkoc.so.  Label tsan: scripts/test.sh runs it, with the other
# threaded tests, in the ThreadSanitizer build.
koc_add_test(NAME test-threads SOURCES unit/test-threads.c LIBS koc Threads::Threads
             LABELS unit tsan TIMEOUT 120)

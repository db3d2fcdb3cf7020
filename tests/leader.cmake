# Leader election tests (leader/).  The state machine and configuration tests
# build from their sources so that they do not need the API client.
koc_add_test(NAME test-leader-fsm
             SOURCES unit/test-leader-fsm.c ${PROJECT_SOURCE_DIR}/leader/fsm.c
             MODULES core LABELS unit)
koc_add_test(NAME test-leader-config
             SOURCES unit/test-leader-config.c ${PROJECT_SOURCE_DIR}/leader/config.c
             MODULES core LABELS unit)
koc_add_test(NAME test-leader SOURCES unit/test-leader.c MODULES core leader LABELS unit)

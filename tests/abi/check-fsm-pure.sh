#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The leader election state machine (leader/fsm.c) is a pure function of
# (state, event, now): no I/O, no JSON, no logging, no clock of its own
# (docs/design.md).  Its object file may call only the C library's string,
# memory and number helpers, its own koc__ functions and core's pure
# resourceVersion comparison (koc__rv_compare); a call into cJSON,
# libcurl, sd-event, the log or a system call fails this test.
# Usage: check-fsm-pure.sh OBJECTS (the koc_leader objects, ';'-separated or
# one an argument; the one built from fsm.c is checked)
set -euo pipefail

obj=$(printf '%s\n' "$@" | tr ';' '\n' | grep -E '/fsm\.c\.o(bj)?$' || true)
if [ -z "$obj" ] || [ ! -f "$obj" ]; then
        echo "no object built from leader/fsm.c among: $*"
        exit 1
fi

# What it may call: pure C library helpers (and their _FORTIFY_SOURCE
# variants), assert's and the stack protector's failure paths, the
# sanitizers' and coverage's hooks, and the state machine's own functions.
allowed='^(_GLOBAL_OFFSET_TABLE_|__errno_location|abort|__assert_fail|__stack_chk_fail'
allowed+='|mem(set|cpy|move|cmp|chr)|str(len|nlen|cmp|ncmp|chr|rchr|toull|toll|toul|tol)'
allowed+='|snprintf|__[a-z]*_chk'
allowed+='|__(asan|ubsan|tsan|msan|sanitizer|gcov|llvm)_[A-Za-z0-9_]*|__gcov[A-Za-z0-9_]*'
allowed+='|koc__rv_compare|koc__(leader_fsm|lease_rv|lease_req|leader_fsm_state)_[a-z_]*)$'

called=$(nm -u "$obj" | awk '{print $NF}' | sort -u)
if [ -z "$called" ]; then
        echo "nm found no undefined symbol in $obj (is it an object file?)"
        exit 1
fi
impure=$(echo "$called" | grep -Ev "$allowed" || true)
if [ -n "$impure" ]; then
        echo "leader/fsm.c calls outside the pure helpers (I/O, JSON, logging, clocks?):"
        echo "$impure" | sed 's/^/  + /'
        echo "  (the driver, leader/leader.c, does I/O; the Lease's JSON is leader/lease-record.c)"
        exit 1
fi
echo "leader/fsm.c calls only pure helpers ($(echo "$called" | wc -l) symbols)"

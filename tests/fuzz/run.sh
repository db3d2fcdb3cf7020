#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds koc's libFuzzer harnesses with clang (outside the CMake build) and
# runs each for a bounded time.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS: per target (default 60).  TARGET: linebuf status time kubeconfig
# leader-fsm apiserver (default: all).  Build output and the growing corpora go to
# $KOC_FUZZ_DIR (default /tmp/koc-fuzz); the small seed corpora live in
# tests/fuzz/corpus/<target>/.  Crashes are written to
# $KOC_FUZZ_DIR/artifacts/<target>/ and make the script exit non-zero.
set -euo pipefail

SECONDS_PER=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(linebuf status time kubeconfig leader-fsm apiserver)

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
OUT=${KOC_FUZZ_DIR:-/tmp/koc-fuzz}
CC=${CC_FUZZ:-clang}
mkdir -p "$OUT/obj"

PKGS="libcurl libcjson openssl libsystemd yaml-0.1"
CFLAGS="-g -O1 -std=gnu11 -D_GNU_SOURCE -DKOC_BUILDING -I$SRC/include -I$SRC \
        -fno-omit-frame-pointer -fno-sanitize-recover=undefined $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lpthread -lm"

# The framework's core module, instrumented, built once per run into an
# archive, so that each harness links only the objects it needs.
rm -f "$OUT/obj/"*.o "$OUT/libkoc-core-fuzz.a"
for c in "$SRC"/core/*.c; do
        o="$OUT/obj/core-$(basename "${c%.c}").o"
        $CC $CFLAGS -fsanitize=fuzzer-no-link,address,undefined -c "$c" -o "$o"
done
ar rcs "$OUT/libkoc-core-fuzz.a" "$OUT/obj/"*.o

build() { # name extra-sources... -- extra-flags...
        local name=$1
        shift
        local srcs=() flags=()
        while [ $# -gt 0 ] && [ "$1" != "--" ]; do srcs+=("$1"); shift; done
        [ $# -gt 0 ] && shift
        flags=("$@")
        $CC $CFLAGS -fsanitize=fuzzer,address,undefined "$HERE/fuzz-$name.c" "${srcs[@]}" \
                "$OUT/libkoc-core-fuzz.a" "${flags[@]}" $LIBS -o "$OUT/fuzz-$name"
}

status=0
for t in "${TARGETS[@]}"; do
        case $t in
        leader-fsm) build "$t" "$SRC/leader/fsm.c" ;;
        kubeconfig) build "$t" -- -Wl,--wrap=koc__exec_credential_run ;;
        apiserver)
                build "$t" "$SRC/apiserver/select.c" "$SRC/apiserver/patch.c" \
                        "$SRC/apiserver/util.c" -- \
                        $(pkg-config --cflags --libs libmicrohttpd) ;;
        linebuf | status | time) build "$t" ;;
        *) echo "unknown target: $t" >&2; exit 2 ;;
        esac
        maxlen=4096
        mkdir -p "$OUT/corpus/$t" "$OUT/artifacts/$t"
        seeds=() dict=()
        [ -d "$HERE/corpus/$t" ] && seeds=("$HERE/corpus/$t")
        [ -f "$HERE/$t.dict" ] && dict=(-dict="$HERE/$t.dict")
        echo "=== fuzz-$t: ${SECONDS_PER}s"
        if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
             UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 KOC_LOG_LEVEL=error \
             "$OUT/fuzz-$t" -max_total_time="$SECONDS_PER" -max_len=$maxlen -timeout=10 \
                -rss_limit_mb=2048 -malloc_limit_mb=256 -print_final_stats=1 "${dict[@]}" \
                -artifact_prefix="$OUT/artifacts/$t/" "$OUT/corpus/$t" "${seeds[@]}" \
                >"$OUT/$t.log" 2>&1; then
                echo "fuzz-$t FAILED (see $OUT/$t.log, $OUT/artifacts/$t/)"
                status=1
        fi
        grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$OUT/$t.log" || true
        grep -E 'ERROR|SUMMARY|Test unit written' "$OUT/$t.log" | head -5 || true
done
exit $status

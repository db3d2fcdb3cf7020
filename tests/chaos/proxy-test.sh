#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# chaos-proxy's own test: koc-apiserver behind one proxy, curl through it in
# every mode.  pass answers at once; delay 300 answers, later than 300 ms
# (a TLS handshake and a request take several chunks each way); blackhole
# answers nothing within 2 s and the same connection's request is forwarded
# when the mode returns to pass; drop resets at once; pass works again.
#
#   tests/chaos/proxy-test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: proxy-test.sh BUILD_DIR}
# shellcheck source=../tools/ports.sh
. "$here/../tools/ports.sh"
work=$(mktemp -d /tmp/koc-chaos-proxy.XXXXXX)
api_pid= proxy_pid=
cleanup() {
        for p in $api_pid $proxy_pid; do kill -KILL "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "proxy-test: FAILED: $*" >&2; cat "$work/proxy.log" >&2; exit 1; }

api_port=$(free_port)
"$bin/apiserver/koc-apiserver" --listen "127.0.0.1:$api_port" --ca-out "$work/ca.crt" \
        --kubeconfig-out "$work/kc" --token tok --log-level warn &
api_pid=$!
port=$(free_port)
"$bin/tests/chaos-proxy" --listen "127.0.0.1:$port" --target "127.0.0.1:$api_port" \
        --control "$work/ctl" --max-seconds 60 2>"$work/proxy.log" &
proxy_pid=$!
for _ in $(seq 1 100); do [[ -s $work/kc ]] && break; sleep 0.1; done
[[ -s $work/kc ]] || fail "koc-apiserver did not start"

get() { # max-seconds -> "CODE SECONDS"
        curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time "$1" --cacert "$work/ca.crt" \
                -H 'Authorization: Bearer tok' "https://127.0.0.1:$port/api/v1/namespaces" || true
}
mode() { timeout 2 bash -c 'echo "$1" >"$2"' _ "$1" "$work/ctl"; sleep 0.2; }
ms() { awk -v s="$1" 'BEGIN { printf "%d", s * 1000 }'; }

read -r code secs <<<"$(get 5)"
[[ $code == 200 ]] || fail "pass: HTTP $code"
mode "delay 300"
read -r code secs <<<"$(get 10)"
[[ $code == 200 && $(ms "$secs") -ge 300 ]] || fail "delay 300: HTTP $code after $secs s"
mode blackhole
read -r code secs <<<"$(get 2)"
[[ $code == 000 ]] || fail "blackhole: HTTP $code"
# A request started in the black hole is answered once the mode is pass again.
get 10 >"$work/late" &
late=$!
sleep 1.5
mode pass
wait "$late" || true
read -r code secs <"$work/late" || true
[[ $code == 200 && $(ms "$secs") -ge 1000 ]] || fail "after the black hole: HTTP $code after $secs s"
mode drop
read -r code secs <<<"$(get 5)"
[[ $code == 000 && $(ms "$secs") -lt 1000 ]] || fail "drop: HTTP $code after $secs s"
mode pass
read -r code secs <<<"$(get 5)"
[[ $code == 200 ]] || fail "pass again: HTTP $code"
mode quit
for _ in $(seq 1 50); do kill -0 "$proxy_pid" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$proxy_pid" 2>/dev/null || fail "quit did not end the proxy"
grep -q 'mode blackhole' "$work/proxy.log" || fail "mode changes are not logged"
echo "proxy-test: OK"

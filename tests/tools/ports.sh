# SPDX-License-Identifier: Apache-2.0
# Sourced by the test and demo scripts: free_port prints a TCP port on
# 127.0.0.1 that no socket uses now (ss), for a listener started next.
free_port() {
        local p
        for _ in $(seq 1 200); do
                p=$(( 30000 + RANDOM % 20000 ))
                [ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ] && { echo "$p"; return 0; }
        done
        echo "no free TCP port found on 127.0.0.1" >&2
        return 1
}

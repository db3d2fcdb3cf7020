# SPDX-License-Identifier: Apache-2.0
# Sourced by the test and demo scripts: free_port prints a TCP port on
# 127.0.0.1 that no socket uses now (ss), for a listener started next.  The
# port is below the kernel's ephemeral range (ip_local_port_range), so that no
# outgoing connection of another test takes it between this check and the bind.
free_port() {
        local p lo=32768
        read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
        [ "$lo" -gt 12000 ] || lo=32768
        for _ in $(seq 1 200); do
                p=$(( 10000 + RANDOM % (lo - 10000) ))
                [ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ] && { echo "$p"; return 0; }
        done
        echo "no free TCP port found on 127.0.0.1" >&2
        return 1
}

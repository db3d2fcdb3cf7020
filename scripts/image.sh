#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds the example operators' container images without a container engine,
# from the Dockerfile's runtime stage: the same Debian packages (fetched with
# mmdebstrap from the archives apt is configured with here, extracted, not
# configured: nothing runs in the image but the program), the program at the
# path the Dockerfile copies it to, the same USER and exec-form ENTRYPOINT.
# Each image is one layer, written as a docker archive (`docker load`,
# `ctr images import`, `podman load` read it) and tagged as the charts expect:
#
#   build-image/koc-example-leader.tar            koc-example-leader:<appVersion>
#   build-image/koc-example-configmap-mirror.tar  koc-example-configmap-mirror:<appVersion>
#   build-image/koc-example-memcached.tar         koc-example-memcached:<appVersion>
#
# and two images of Debian programs, for the tests on a real node:
#
#   build-image/koc-test-curl.tar    koc-test-curl:<appVersion>  (curl; the chart's `helm test` pod)
#   build-image/memcached.tar        memcached:<appVersion>      (memcached, the Memcached example's workload)
#
#   scripts/image.sh [--build-dir DIR] [--out DIR] [--tag TAG] [IMAGE...]
#
# --build-dir: take the programs from this CMake build (not sanitised) instead
# of building them in build-image/build (Release, like the Dockerfile).
# --out: write the archives there instead of build-image/.
# --tag: the image tag (default: the appVersion of charts/koc-example).
# The runtime root filesystem is cached in build-image/ per package list.
# Needs root (mmdebstrap extracts as root), mmdebstrap, jq, and Debian's archive.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tests/k8s/node/oci.sh
. "$root/tests/k8s/node/oci.sh"
die() { echo "image: $*" >&2; exit 1; }

build_dir=
out=$root/build-image
tag=
programs=()
while [ $# -gt 0 ]; do
        case $1 in
        --build-dir) build_dir=${2:?--build-dir needs a directory}; shift 2 ;;
        --tag) tag=${2:?--tag needs a tag}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) programs+=("$1"); shift ;;
        esac
done
[ ${#programs[@]} -gt 0 ] || programs=(koc-example-leader koc-example-configmap-mirror koc-example-memcached koc-test-curl memcached)
# The images of Debian programs: package and entrypoint.
declare -A debian_pkg=([koc-test-curl]=curl [memcached]=memcached)
declare -A debian_ep=([koc-test-curl]='["/usr/bin/curl"]' [memcached]='["/usr/bin/memcached"]')
koc_programs=()
for prog in "${programs[@]}"; do [ -n "${debian_pkg[$prog]:-}" ] || koc_programs+=("$prog"); done
[ -n "$tag" ] || tag=$(awk '$1 == "appVersion:" { gsub(/"/, "", $2); print $2 }' "$root/charts/koc-example/Chart.yaml")
[ -n "$tag" ] || die "no appVersion in charts/koc-example/Chart.yaml (give --tag)"
[ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap extracts the packages as root)"
for c in mmdebstrap jq tar sha256sum; do
        command -v "$c" >/dev/null || die "$c is missing (scripts/install-deps.sh installs it)"
done

# The Dockerfile's runtime stage (the last FROM), continuation lines joined.
dockerfile=$root/Dockerfile
runtime=$(sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$dockerfile" | grep -v '^[[:space:]]*#' |
        awk 'toupper($1) == "FROM" { n++; delete l; k = 0 } { l[++k] = $0 } END { for (i = 1; i <= k; i++) print l[i] }')
packages=$(grep -o 'apt-get[^&;|]*install[^&;|]*' <<<"$runtime" | sed 's/.*install//' | tr ' \t' '\n\n' |
        grep -v -e '^-' -e '^$' | sort -u | paste -sd, -)
user=$(awk 'toupper($1) == "USER" { u = $2 } END { print u }' <<<"$runtime")
entrypoint=$(grep -i '^ENTRYPOINT' <<<"$runtime" | tail -n1 | sed 's/^ENTRYPOINT[[:space:]]*//I')
jq -e 'type == "array" and length >= 1 and (.[0] | startswith("/"))' <<<"$entrypoint" >/dev/null 2>&1 ||
        die "$dockerfile: the runtime ENTRYPOINT is not an exec-form array with an absolute path: $entrypoint"
[ -n "$packages" ] || die "$dockerfile: no apt-get install in the runtime stage"
[[ $user =~ ^[0-9]+(:[0-9]+)?$ ]] || die "$dockerfile: the runtime USER is not numeric: $user"
# The program's directory in the image: where the Dockerfile puts its program.
prog_dir=$(dirname "$(jq -r '.[0]' <<<"$entrypoint")")
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$suite" ] || die "/etc/os-release names no VERSION_CODENAME (the Debian suite)"

mkdir -p "$out"; out=$(cd "$out" && pwd)

# The archives apt fetches from here: its enabled source files, never a host
# written in this script.
sources=()
src_list=$(apt-config dump | sed -n 's/^Dir::Etc::sourcelist "\(.*\)";/\1/p')
src_parts=$(apt-config dump | sed -n 's/^Dir::Etc::sourceparts "\(.*\)";/\1/p')
[ -f "/etc/apt/${src_list:-sources.list}" ] && [ -s "/etc/apt/${src_list:-sources.list}" ] &&
        grep -q '^deb ' "/etc/apt/${src_list:-sources.list}" && sources+=("/etc/apt/${src_list:-sources.list}")
for f in "/etc/apt/${src_parts:-sources.list.d}"/*.list "/etc/apt/${src_parts:-sources.list.d}"/*.sources; do
        [ -f "$f" ] && sources+=("$f")
done
[ ${#sources[@]} -gt 0 ] || die "apt has no enabled sources (/etc/apt/sources.list, /etc/apt/sources.list.d)"

# rootfs PACKAGES: the root filesystem (a tar) of those packages and their
# dependencies, once per package list.
rootfs() {
        local key base
        key=$(printf '%s %s %s\n' "$suite" "$1" "$(cat "${sources[@]}")" | sha256sum | cut -c1-16)
        base=$out/rootfs-$key.tar
        if [ ! -f "$base" ]; then
                echo "image: mmdebstrap $suite with $1" >&2
                mmdebstrap --quiet --variant=extract --include="$1" --format=tar \
                        "$suite" "$base.tmp" "${sources[@]}" >&2 ||
                        die "mmdebstrap failed (above: the package or archive it could not fetch)"
                mv "$base.tmp" "$base"
        fi
        echo "$base"
}

if [ -z "$build_dir" ] && [ ${#koc_programs[@]} -gt 0 ]; then
        build_dir=$out/build
        echo "image: building ${koc_programs[*]} (Release) in $build_dir"
        cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
                -DKOC_BUILD_APISERVER=OFF >/dev/null
        cmake --build "$build_dir" -j"$(nproc)" --target "${koc_programs[@]}" >/dev/null
fi

for prog in "${programs[@]}"; do
        if [ -n "${debian_pkg[$prog]:-}" ]; then
                base=$(rootfs "${debian_pkg[$prog]}")
                stage=$(mktemp -d)
                tar -C "$stage" -xf "$base"
                ep=${debian_ep[$prog]}
                if ! err=$(chroot --userspec="$user" "$stage" "$(jq -r '.[0]' <<<"$ep")" --version 2>&1 >/dev/null); then
                        rm -rf "$stage"
                        die "$prog does not start in its image: ${err:-exit status not 0}"
                fi
                tar -C "$stage" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
                        --exclude=./var/cache/apt --exclude=./var/lib/apt/lists -cf "$out/$prog.layer.tar" .
                rm -rf "$stage"
                oci_archive "$out/$prog.tar" "$prog:$tag" "$out/$prog.layer.tar" "$user" "$ep"
                rm -f "$out/$prog.layer.tar"
                echo "image: $out/$prog.tar ($prog:$tag, Debian's ${debian_pkg[$prog]}, USER $user, ENTRYPOINT $ep, $(du -h "$out/$prog.tar" | cut -f1))"
                continue
        fi
        base=$(rootfs "$packages")
        bin=$(find "$build_dir/examples" -maxdepth 2 -type f -name "$prog" -perm -u+x | head -n1)
        [ -n "$bin" ] || die "$prog is not built in $build_dir/examples"
        if objdump -p "$bin" | grep -q 'NEEDED.*lib[at]san\|NEEDED.*libubsan'; then
                die "$bin is built with a sanitizer; give a regular build (--build-dir)"
        fi
        stage=$(mktemp -d)
        tar -C "$stage" -xf "$base"
        install -D -m 0755 "$bin" "$stage$prog_dir/$prog"
        strip "$stage$prog_dir/$prog"
        # The program starts in the image as its USER: every library it needs is there.
        if ! err=$(chroot --userspec="$user" "$stage" "$prog_dir/$prog" --help 2>&1 >/dev/null); then
                rm -rf "$stage"
                die "$prog does not start in its image: ${err:-exit status not 0}"
        fi
        tar -C "$stage" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
                --exclude=./var/cache/apt --exclude=./var/lib/apt/lists -cf "$out/$prog.layer.tar" .
        rm -rf "$stage"
        ep=$(jq -c --arg p "$prog_dir/$prog" '.[0] = $p' <<<"$entrypoint")
        oci_archive "$out/$prog.tar" "$prog:$tag" "$out/$prog.layer.tar" "$user" "$ep"
        rm -f "$out/$prog.layer.tar"
        echo "image: $out/$prog.tar ($prog:$tag, USER $user, ENTRYPOINT $ep, $(du -h "$out/$prog.tar" | cut -f1))"
done

#!/usr/bin/env bash
# Builds the real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager), the node (kubelet, kube-scheduler, kube-proxy; see
# tests/k8s/node.sh) and the Go peer programs from the Go module proxy
# into a cache outside the tree, keyed by version:
#
#   ${KOC_CACHE:-~/.cache/koc}/k8s-<version>/bin/
#
# Only what is missing is built.  A cold build takes several minutes on two
# cores (see README); a warm run returns at once.  Prints the bin directory on
# its last line.
#
#   tests/k8s/build.sh            build what is missing
#   tests/k8s/build.sh --print    print the bin directory, build nothing
#
# The staging modules (k8s.io/api, k8s.io/client-go, ...) that k8s.io/kubernetes
# requires at v0.0.0 are pinned with one replace line each, derived here from
# k8s.io/kubernetes's own go.mod in the module cache, never from a hand list.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

die() { echo "k8s-build: $*" >&2; exit 1; }
command -v go >/dev/null || die "no Go toolchain (go) on PATH; the real-server tests need Go 1.26"

k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2 }' go.mod)
etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2 }' go.mod)
[ -n "$k8s_version" ] || die "tests/k8s/go.mod names no k8s.io/kubernetes version"
[ -n "$etcd_version" ] || die "tests/k8s/go.mod names no go.etcd.io/etcd/server/v3 version"
bin=${KOC_CACHE:-$HOME/.cache/koc}/k8s-$k8s_version/bin
if [ "${1:-}" = --print ]; then echo "$bin"; exit 0; fi

export GOFLAGS="${GOFLAGS:-} -mod=mod -buildvcs=false"
export CGO_ENABLED=0

# go's own words name the module and version the proxy refused; keep them.
run_go() {
        local log; log=$(mktemp)
        if ! "$@" >"$log" 2>&1; then
                grep -E 'not found|unknown revision|invalid version|reading https?://|410 Gone|404|verifying' "$log" \
                        | sed 's/^/k8s-build:   /' | head -20 >&2 || true
                tail -20 "$log" >&2
                rm -f "$log"
                die "'$*' failed in tests/k8s (above: the module or version that was refused)"
        fi
        cat "$log"; rm -f "$log"
}

stamp_ldflags() { # $1 = version like v1.36.3
        local v=$1 major minor
        major=${v#v}; major=${major%%.*}
        minor=${v#v*.}; minor=${minor%%.*}
        local f
        for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
                f+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
                f+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
        done
        echo "-s -w$f"
}

need=()
for prog in etcd kube-apiserver kube-controller-manager kubelet kube-scheduler kube-proxy; do
        [ -x "$bin/$prog" ] || need+=("$prog")
done
peers=()
for p in "$here"/../peers/*/; do
        [ -f "$p/go.mod" ] || continue
        name=$(basename "$p")
        [ -x "$bin/$name" ] || peers+=("$p")
done

if [ ${#need[@]} -gt 0 ]; then
        echo "k8s-build: building ${need[*]} for Kubernetes $k8s_version, etcd $etcd_version into $bin"
        echo "k8s-build: a cold build takes several minutes on two cores (go build -p 2)"
        mkdir -p "$bin"
        run_go go mod download "k8s.io/kubernetes@$k8s_version" >/dev/null
        kmod=$(go mod download -json "k8s.io/kubernetes@$k8s_version" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
        [ -f "$kmod" ] || die "k8s.io/kubernetes@$k8s_version: go.mod not found in the module cache"
        staging_v="v0.${k8s_version#v1.}"
        # Every "k8s.io/X => ./staging/..." of k8s.io/kubernetes becomes "k8s.io/X => k8s.io/X v0.N.M".
        mapfile -t staging < <(awk '/=> \.\/staging\/src\// { print $1 }' "$kmod")
        [ ${#staging[@]} -gt 0 ] || die "no staging replace lines found in $kmod"
        edits=()
        for m in "${staging[@]}"; do edits+=("-replace=$m=$m@$staging_v"); done
        go mod edit "${edits[@]}"
        run_go go mod tidy >/dev/null
        ld=$(stamp_ldflags "$k8s_version")
        for prog in "${need[@]}"; do
                t0=$(date +%s)
                case $prog in
                etcd) pkg=./cmd/etcd; ldp="-s -w" ;;
                *) pkg=k8s.io/kubernetes/cmd/$prog; ldp=$ld ;;
                esac
                echo "k8s-build: go build $prog ..."
                run_go go build -p 2 -trimpath -ldflags "$ldp" -o "$bin/$prog.tmp" "$pkg" >/dev/null
                mv "$bin/$prog.tmp" "$bin/$prog"
                echo "k8s-build: $prog built in $(( $(date +%s) - t0 )) s"
        done
fi

for p in "${peers[@]}"; do
        name=$(basename "$p")
        echo "k8s-build: building peer $name"
        mkdir -p "$bin"
        (cd "$p" && run_go go build -p 2 -trimpath -ldflags "-s -w" -o "$bin/$name.tmp" . >/dev/null)
        mv "$bin/$name.tmp" "$bin/$name"
done
echo "$bin"

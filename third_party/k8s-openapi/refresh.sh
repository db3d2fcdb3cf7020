#!/usr/bin/env bash
# Refreshes the Kubernetes OpenAPI v3 schemas that koc-gen-types turns into
# koc's built-in types (libkoc-types, include/koc/types/k8s.h): starts the
# test control plane (tests/k8s/env.sh, with the kube-apiserver that
# tests/k8s/build.sh caches), GETs /openapi/v3/apis/apps/v1, /openapi/v3/api/v1
# and /openapi/v3/apis/batch/v1, and writes the schemas that the roots of
# types.list need (their closure through $ref, stopping at the opaque ones)
# to v<version>/schemas.json, one sorted, indented JSON document.
#
#   third_party/k8s-openapi/refresh.sh [--from DIR]
#
# --from DIR reads DIR/apis_apps_v1.json, api_v1.json, apis_batch_v1.json and
# DIR/version (e.g. v1.36.3) instead of starting the control plane.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
raw=$(mktemp -d)
cleanup() { rm -rf "$raw"; }
trap cleanup EXIT
if [ "${1:-}" = --from ]; then
        cp "$2"/apis_apps_v1.json "$2"/api_v1.json "$2"/apis_batch_v1.json "$2"/version "$raw/"
else
        env_dir=$(mktemp -u -d)
        trap '"$src/tests/k8s/env.sh" stop "$env_dir" >/dev/null 2>&1 || true; cleanup' EXIT
        "$src/tests/k8s/env.sh" start "$env_dir" >/dev/null
        # shellcheck disable=SC1091
        . "$env_dir/env"
        for p in apis/apps/v1 api/v1 apis/batch/v1; do
                curl -sSf --cacert "$KOC_K8S_CA" -H "Authorization: Bearer $KOC_K8S_ADMIN_TOKEN" \
                        "$KOC_K8S_URL/openapi/v3/$p" >"$raw/$(echo "$p" | tr / _).json"
        done
        echo "$KOC_K8S_VERSION" >"$raw/version"
fi
version=$(cat "$raw/version")
out=$here/$version
mkdir -p "$out"
python3 - "$here/types.list" "$raw" "$out/schemas.json" "$version" <<'PY'
import json, sys
lst, raw, out, version = sys.argv[1:]
roots, opaque = [], set()
for line in open(lst):
    w = line.split()
    if len(w) == 2 and w[0] == "root": roots.append(w[1])
    if len(w) == 2 and w[0] == "opaque": opaque.add(w[1])
schemas = {}
for f in ("apis_apps_v1", "api_v1", "apis_batch_v1"):
    for k, v in json.load(open(f"{raw}/{f}.json"))["components"]["schemas"].items():
        schemas.setdefault(k, v)
keep, todo = {}, list(roots)
def refs(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "$ref" and isinstance(v, str): yield v.rsplit("/", 1)[-1]
            else: yield from refs(v)
    elif isinstance(o, list):
        for v in o: yield from refs(v)
while todo:
    n = todo.pop()
    if n in keep or n in opaque: continue
    keep[n] = schemas[n]
    todo.extend(refs(schemas[n]))
doc = {"openapi": "3.0.0",
       "info": {"title": "Kubernetes", "version": version,
                "x-koc-source": "GET /openapi/v3/apis/apps/v1, /openapi/v3/api/v1, /openapi/v3/apis/batch/v1 "
                                "of kube-apiserver " + version + "; the closure of the roots of types.list"},
       "components": {"schemas": keep}}
with open(out, "w") as f:
    json.dump(doc, f, indent=1, sort_keys=True)
    f.write("\n")
print(f"refresh: {len(keep)} schemas into {out}")
PY

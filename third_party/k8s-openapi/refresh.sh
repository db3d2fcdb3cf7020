#!/usr/bin/env bash
# Refreshes the Kubernetes OpenAPI v3 documents that koc-gen-types turns into
# koc's built-in types (include/koc/types/*.h): starts the test control plane
# (tests/k8s/env.sh, the kube-apiserver cached by tests/k8s/build.sh), GETs
# /openapi/v3/{apis/apps/v1,api/v1,apis/batch/v1} and writes them, formatted
# with one schema per line group, under third_party/k8s-openapi/<version>/.
#
#   third_party/k8s-openapi/refresh.sh            (needs the cached control plane)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
env_dir=$(mktemp -u -d)
trap '"$src/tests/k8s/env.sh" stop "$env_dir" >/dev/null 2>&1 || true' EXIT
"$src/tests/k8s/env.sh" start "$env_dir" >/dev/null
# shellcheck disable=SC1091
. "$env_dir/env"
version=${KOC_K8S_VERSION#v}
out=$here/v$version
mkdir -p "$out"
for p in apis/apps/v1 api/v1 apis/batch/v1; do
        name=$(echo "$p" | tr / _)
        curl -sSf --cacert "$KOC_K8S_CA" -H "Authorization: Bearer $KOC_K8S_ADMIN_TOKEN" \
                "$KOC_K8S_URL/openapi/v3/$p" >"$out/$name.raw.json"
        # Only components.schemas matters to the generator; paths are dropped.
        python3 - "$out/$name.raw.json" "$out/$name.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
keep = {"openapi": doc.get("openapi"), "info": doc.get("info"),
        "components": {"schemas": doc["components"]["schemas"]}}
with open(sys.argv[2], "w") as f:
    json.dump(keep, f, indent=1, sort_keys=True)
    f.write("\n")
PY
        rm -f "$out/$name.raw.json"
done
echo "refresh: wrote $(ls "$out") into $out"

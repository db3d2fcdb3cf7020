#!/usr/bin/env bash
# The same requests to koc-apiserver and to the real kube-apiserver
# (KOC_K8S_ENV); every answer's HTTP status and Status reason (or the kind of
# the object) must agree.  The real server is right: a difference is a bug in
# koc-apiserver (or, where it is deliberate, a line in apiserver/README.md's
# list of what koc-apiserver does not do, and then not in this list).
#
#   compare.sh KOC_APISERVER
set -euo pipefail
koc_apiserver=${1:?usage: compare.sh path/to/koc-apiserver}
env_dir=${KOC_K8S_ENV:?KOC_K8S_ENV is not set (run through ctest -L k8s)}
# shellcheck disable=SC1091
. "$env_dir/env"
work=$(mktemp -d "${TMPDIR:-/tmp}/koc-compare.XXXXXX")
# No periodic bookmarks: the real server sends about one a minute.
"$koc_apiserver" --listen 127.0.0.1:0 --kubeconfig-out "$work/kc" --ca-out "$work/ca.crt" --bookmark-interval 0 \
        --log-level error >"$work/koc-apiserver.log" 2>&1 &
koc_pid=$!
trap 'kill $koc_pid 2>/dev/null; wait $koc_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 500); do [ -s "$work/kc" ] && break; sleep 0.01; done
koc_url=$(sed -n 's/^ *server: //p' "$work/kc"); koc_token=$(sed -n 's/^ *token: //p' "$work/kc")

# req SERVER METHOD PATH [BODY [CONTENT-TYPE]] -> "STATUS REASON-or-KIND"
req() {
        local url token ca
        if [ "$1" = koc ]; then url=$koc_url token=$koc_token ca=$work/ca.crt
        else url=$KOC_K8S_URL token=$KOC_K8S_ADMIN_TOKEN ca=$KOC_K8S_CA; fi
        local args=(-s -o "$work/body" -w '%{http_code}' --cacert "$ca" -H "Authorization: Bearer $token" -X "$2")
        [ $# -ge 4 ] && args+=(-H "Content-Type: ${5:-application/json}" --data-binary "$4")
        [ -n "${ACCEPT:-}" ] && args+=(-H "Accept: $ACCEPT")
        local code; code=$(curl "${args[@]}" "$url$3")
        # A watch's events as TYPE:NAME, one word each.
        local what; what=$(jq -r 'if .type then "\(.type):\(.object.metadata.name // "-")" elif .kind == "Status" then (.reason // "-") else .kind end' "$work/body" 2>/dev/null | tr '\n' ' ' | sed 's/ $//' || echo "-")
        echo "$code $what"
}
n=0 bad=0
check() { # description METHOD PATH [BODY [CT]]
        local d=$1; shift
        local a b; a=$(req koc "$@"); b=$(req k8s "$@")
        n=$((n + 1))
        if [ "$a" = "$b" ]; then printf '  same      %-58s %s\n' "$d" "$b"
        else bad=$((bad + 1)); printf '  DIFFERENT %-58s koc-apiserver: %s, kube-apiserver: %s\n' "$d" "$a" "$b"; fi
}
# A namespace of its own: the real server keeps what earlier runs left.
ns=cmp-$(date +%s%N | tail -c 9)
L=/apis/coordination.k8s.io/v1/namespaces/$ns/leases
C=/api/v1/namespaces/$ns/configmaps
lease() { echo "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":\"$1\"$2},\"spec\":$3}"; }
cm() { echo "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"$1\"$2},\"data\":{\"k\":\"v\"}}"; }

echo "compare: koc-apiserver ($koc_url) against kube-apiserver $KOC_K8S_VERSION ($KOC_K8S_URL)"
check "create a namespace" POST /api/v1/namespaces "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$ns\"}}"
check "create a Lease" POST $L "$(lease a '' '{"holderIdentity":"x","leaseDurationSeconds":15}')"
check "create it again" POST $L "$(lease a '' '{"holderIdentity":"x"}')"
check "get it" GET $L/a
check "get a missing Lease" GET $L/missing
check "PUT with a stale resourceVersion" PUT $L/a "$(lease a ',"resourceVersion":"1"' '{"holderIdentity":"y"}')"
check "PUT without resourceVersion (Lease)" PUT $L/a "$(lease a '' '{"holderIdentity":"y"}')"
check "PUT a missing Lease (create on update)" PUT $L/b "$(lease b '' '{"holderIdentity":"y"}')"
check "PUT with a name that differs from the path" PUT $L/a "$(lease other '' '{}')"
check "Lease with a malformed renewTime" POST $L "$(lease c '' '{"renewTime":"yesterday"}')"
check "Lease with renewTime without microseconds" POST $L "$(lease d '' '{"renewTime":"2026-01-01T00:00:00Z"}')"
check "Lease with a negative leaseDurationSeconds" POST $L "$(lease e '' '{"leaseDurationSeconds":-1}')"
check "Lease with leaseDurationSeconds 0" POST $L "$(lease e0 '' '{"leaseDurationSeconds":0}')"
check "Lease with negative leaseTransitions" POST $L "$(lease f '' '{"leaseTransitions":-1}')"
check "an upper-case name" POST $L "$(lease Upper '' '{}')"
check "a name with a slash in the path" GET "$L/a%2Fb"
check "a body that is not JSON" POST $L 'not json'
check "a body of another kind" POST $L "$(cm wrongkind '')"
check "create in a missing namespace" POST /api/v1/namespaces/nowhere/configmaps "$(cm x '')"
check "create ConfigMaps" POST $C "$(cm c1 ',"labels":{"app":"a"}')"
check "  ... a second" POST $C "$(cm c2 ',"labels":{"app":"b"}')"
check "  ... a third" POST $C "$(cm c3 ',"labels":{"app":"a"}')"
check "list with a label selector" GET "$C?labelSelector=app%3Da"
check "list with a malformed label selector" GET "$C?labelSelector=app%3D%3D%3Da"
check "list with a field selector on metadata.name" GET "$C?fieldSelector=metadata.name%3Dc1"
check "list with an unsupported field selector" GET "$C?fieldSelector=data.k%3Dv"
check "list with limit=1" GET "$C?limit=1"
check "list with a malformed continue token" GET "$C?limit=1&continue=bogus"
check "continue together with resourceVersion" GET "$C?limit=1&continue=bogus&resourceVersion=1"
check "list with resourceVersionMatch but no resourceVersion" GET "$C?resourceVersionMatch=NotOlderThan"
check "list with resourceVersion=0" GET "$C?resourceVersion=0"
check "merge patch" PATCH $C/c1 '{"data":{"k":"w"}}' application/merge-patch+json
check "JSON patch" PATCH $C/c1 '[{"op":"replace","path":"/data/k","value":"z"}]' application/json-patch+json
check "JSON patch with a failing test" PATCH $C/c1 '[{"op":"test","path":"/data/k","value":"nope"}]' application/json-patch+json
check "patch with an unknown content type" PATCH $C/c1 '{"data":{}}' text/plain
check "patch of a missing object" PATCH $C/missing '{"data":{}}' application/merge-patch+json
A=application/apply-patch+yaml
check "apply without fieldManager" PATCH $C/s1 "$(cm s1 '')" $A
check "apply creates" PATCH "$C/s1?fieldManager=m1" "$(cm s1 '')" $A
check "apply the same again" PATCH "$C/s1?fieldManager=m1" "$(cm s1 '')" $A
check "apply without kind" PATCH "$C/s1?fieldManager=m1" '{"apiVersion":"v1","metadata":{"name":"s1"}}' $A
check "apply with a name that differs from the path" PATCH "$C/s1?fieldManager=m1" "$(cm other '')" $A
check "apply another manager's field (conflict)" PATCH "$C/s1?fieldManager=m2" '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"s1"},"data":{"k":"other"}}' $A
check "  ... the same value (shared)" PATCH "$C/s1?fieldManager=m2" '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"s1"},"data":{"k":"v"}}' $A
check "  ... forced" PATCH "$C/s1?fieldManager=m3&force=true" '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"s1"},"data":{"k":"forced"}}' $A
check "merge patch, then apply over the patched field" PATCH $C/c3 '{"data":{"k":"patched"}}' application/merge-patch+json
check "  ... conflicts with the updater" PATCH "$C/c3?fieldManager=m1" "$(cm c3 '')" $A
check "apply with a stale resourceVersion" PATCH "$C/s1?fieldManager=m1" "$(cm s1 ',"resourceVersion":"1"')" $A
check "POST with an unsupported content type" POST $C "$(cm c9 '')" text/plain
check "delete with a stale resourceVersion precondition" DELETE $C/c2 '{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"resourceVersion":"1"}}'
check "delete" DELETE $C/c2
check "delete a missing object" DELETE $C/c2
check "get the status subresource of a ConfigMap" GET $C/c1/status
check "watch with a malformed resourceVersion" GET "$C?watch=1&resourceVersion=abc&timeoutSeconds=1"
check "streaming list (sendInitialEvents)" GET "$C?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"
check "sendInitialEvents without resourceVersionMatch" GET "$C?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&timeoutSeconds=1"
check "resourceVersionMatch on a watch without sendInitialEvents" GET "$C?watch=1&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"
PM='application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1'
PML='application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1'
ACCEPT=$PML check "list of metadata only" GET "$C"
ACCEPT=$PM check "get of metadata only" GET "$C/c1"
ACCEPT=$PM check "list asked as one object's metadata" GET "$C"
ACCEPT=$PML check "get asked as a list of metadata" GET "$C/c1"
ACCEPT="$PML, application/json" check "metadata first, JSON as the fallback" GET "$C"
ACCEPT=$PM check "watch of metadata only (streaming list)" GET "$C?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"
check "a resource that does not exist" GET /api/v1/namespaces/$ns/nothings
check "an API group that does not exist" GET /apis/nothing.example.com/v1/things
check "delete the namespace's Leases (collection)" DELETE $L
# A list is one snapshot: the second page shows the state at the first
# page's resourceVersion although objects were deleted, created and changed
# in between, and carries that resourceVersion.
pages() { # SERVER -> "names of page 2; rv of page 2 equals page 1's; p3's value"
        local P=/api/v1/namespaces/$ns/configmaps s=$1
        for c in p1 p2 p3; do req "$s" POST $P "$(cm $c ',"labels":{"page":"x"}')" >/dev/null; done
        req "$s" GET "$P?labelSelector=page%3Dx&limit=1" >/dev/null
        local tok rv1; tok=$(jq -r .metadata.continue "$work/body"); rv1=$(jq -r .metadata.resourceVersion "$work/body")
        req "$s" DELETE $P/p2 >/dev/null
        req "$s" POST $P "$(cm p4 ',"labels":{"page":"x"}')" >/dev/null
        req "$s" PATCH $P/p3 '{"data":{"k":"changed"}}' application/merge-patch+json >/dev/null
        req "$s" GET "$P?labelSelector=page%3Dx&limit=10&continue=$tok" >/dev/null
        echo "$(jq -r '[.items[].metadata.name] | join(",")' "$work/body");" \
                "$([ "$(jq -r .metadata.resourceVersion "$work/body")" = "$rv1" ] && echo same-rv || echo other-rv);" \
                "$(jq -r '.items[] | select(.metadata.name == "p3") | .data.k' "$work/body")"
}
a=$(pages koc); b=$(pages k8s); n=$((n + 1))
if [ "$a" = "$b" ]; then printf '  same      %-58s %s\n' "a continued list is the first page's snapshot" "$b"
else bad=$((bad + 1)); printf '  DIFFERENT %-58s koc-apiserver: %s, kube-apiserver: %s\n' "a continued list is the first page's snapshot" "$a" "$b"; fi

echo "compare: $n requests, $bad answered differently"
[ "$bad" = 0 ]

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

summary='if .type then "\(.type):\(.object.metadata.name // "-")" elif .kind == "Status" then (.reason // "-") else .kind end'
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
        # WHAT (a jq filter) replaces the default summary of the answer.
        local what; what=$(jq -cSr "${WHAT:-$summary}" "$work/body" 2>/dev/null | tr '\n' ' ' | sed 's/ $//' || echo "-")
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

# Custom resources: the CRD's structural schema (validation errors with
# their causes, defaults, pruning, fieldValidation), each answer compared in
# full but for the order of the causes (the real server's follows Go map
# iteration) and server-set metadata.
grp=cache-$(date +%s%N | tail -c 7).example.com
crd=$(cat <<JSON
{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"memcacheds.$grp"},
"spec":{"group":"$grp","scope":"Namespaced","names":{"plural":"memcacheds","singular":"memcached","kind":"Memcached","listKind":"MemcachedList"},
"versions":[{"name":"v1","served":true,"storage":true,"subresources":{"status":{},"scale":{"specReplicasPath":".spec.size","statusReplicasPath":".status.replicas","labelSelectorPath":".status.selector"}},
"additionalPrinterColumns":[{"name":"Size","type":"integer","jsonPath":".spec.size"},{"name":"Mode","type":"string","jsonPath":".spec.mode"}],
"schema":{"openAPIV3Schema":{"type":"object","properties":{
 "spec":{"type":"object","required":["size"],"properties":{
   "size":{"type":"integer","minimum":1,"maximum":5},
   "ex":{"type":"integer","exclusiveMinimum":true,"minimum":0,"exclusiveMaximum":true,"maximum":10},
   "mode":{"type":"string","enum":["fast","slow"],"default":"fast"},
   "name":{"type":"string","pattern":"^[a-z]+\\\\d*$","maxLength":5,"minLength":2},
   "tags":{"type":"array","maxItems":2,"minItems":1,"items":{"type":"string","maxLength":3}},
   "port":{"x-kubernetes-int-or-string":true},
   "opt":{"type":"string","nullable":true},
   "nn":{"type":"string"},
   "labels":{"type":"object","additionalProperties":{"type":"integer"}},
   "free":{"type":"object","x-kubernetes-preserve-unknown-fields":true,"properties":{"k":{"type":"integer"}}},
   "items":{"type":"array","items":{"type":"object","required":["n"],"properties":{"n":{"type":"string"},"v":{"type":"integer","default":3}}}},
   "ratio":{"type":"number","maximum":2.5},
   "flag":{"type":"boolean"}}},
 "status":{"type":"object","properties":{"replicas":{"type":"integer","minimum":0},"selector":{"type":"string"}}}}}}}]}}
JSON
)
check "create a CRD with a schema" POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions "$crd"
for _ in $(seq 1 100); do req k8s GET "/apis/$grp/v1/namespaces/$ns/memcacheds" | grep -q '^200' && break; sleep 0.1; done
MC=/apis/$grp/v1/namespaces/$ns/memcacheds
mc() { echo "{\"apiVersion\":\"$grp/v1\",\"kind\":\"Memcached\",\"metadata\":{\"name\":\"$1\"},\"spec\":$2${3:-}}"; }
# The answer without what differs by design: names and values the server
# sets, the order of causes, the order of keys.
full='if .kind == "Status" then {code, reason, message: (if (.details.causes // [] | length) > 1 then "(several)" else .message end), causes: (.details.causes // [] | sort_by(.field, .message))} else {kind, spec, status} end'
WHAT=$full check "a value above the maximum" POST $MC "$(mc a '{"size":9}')"
WHAT=$full check "a required field missing" POST $MC "$(mc c '{}')"
WHAT=$full check "enum, maxLength, maxItems, items' maxLength" POST $MC "$(mc d '{"size":1,"mode":"c","name":"ABCDEFG","tags":["a","b","cdef"]}')"
WHAT=$full check "minimum, exclusiveMaximum, minLength, minItems" POST $MC "$(mc e '{"size":0,"ex":10,"name":"a","tags":[]}')"
WHAT=$full check "types, int-or-string, maps, list items, pattern" POST $MC "$(mc f '{"size":1,"ex":0,"port":true,"labels":{"a":"x"},"items":[{"v":1},{"n":"x"}],"ratio":2.6,"flag":"yes","free":{"k":"s","zz":1},"name":"ab1x"}')"
WHAT=$full check "wrong types of lists, strings, objects" POST $MC "$(mc g '{"size":1,"tags":["a","b","c"],"name":["x"],"free":5}')"
WHAT=$full check "a float where a number is allowed" POST $MC "$(mc i '{"size":2,"ratio":1e30}')"
WHAT=$full check "defaults, pruning, nulls, preserved fields" POST $MC "$(mc ok '{"size":1,"opt":null,"nn":null,"items":[{"n":"x"}],"bogus":1,"free":{"k":1,"zz":{"a":1}},"name":"ab12","port":"80"}' ',"top":1,"status":{"replicas":1}')"
WHAT=$full check "a null gets the default, unknown fields pruned" PATCH $MC/ok '{"spec":{"mode":null,"zzz":1}}' application/merge-patch+json
WHAT=$full check "a patch validated" PATCH $MC/ok '{"spec":{"size":9}}' application/merge-patch+json
WHAT=$full check "a patch removing a required field" PATCH $MC/ok '{"spec":{"size":null}}' application/merge-patch+json
WHAT=$full check "a status write validates the status" PATCH $MC/ok/status '{"status":{"replicas":-1}}' application/merge-patch+json
WHAT=$full check "a status write prunes and keeps the spec" PATCH $MC/ok/status '{"status":{"replicas":2,"x":1},"spec":{"size":9}}' application/merge-patch+json
WHAT=$full check "fieldValidation=Strict on create" POST "$MC?fieldValidation=Strict" "$(mc st '{"size":1,"sise":3,"items":[{"n":"a","q":1}]}')"
WHAT='{code: (.code // 200), reason}' check "fieldValidation=Strict on a patch" PATCH "$MC/ok?fieldValidation=Strict" '{"spec":{"sise":3}}' application/merge-patch+json
WHAT=$full check "fieldValidation=Ignore" POST "$MC?fieldValidation=Ignore" "$(mc ig '{"size":1,"sise":3}')"
WHAT='{code, reason, causes: [.details.causes[] | {field, reason}]}' check "a CRD whose pattern does not compile" POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions \
        "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\",\"metadata\":{\"name\":\"bads.$grp\"},\"spec\":{\"group\":\"$grp\",\"scope\":\"Namespaced\",\"names\":{\"plural\":\"bads\",\"kind\":\"Bad\"},\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"properties\":{\"spec\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"(ab\"}}}}}}}]}}"
WHAT='{code, reason, causes: [.details.causes[] | {field, reason, message}]}' check "a CRD whose pattern nests repeats past 1000" POST "/apis/apiextensions.k8s.io/v1/customresourcedefinitions?dryRun=All" \
        "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\",\"metadata\":{\"name\":\"bads.$grp\"},\"spec\":{\"group\":\"$grp\",\"scope\":\"Namespaced\",\"names\":{\"plural\":\"bads\",\"kind\":\"Bad\"},\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"(a{100}){100}\"}}}}}]}}"
WHAT='{code, reason, causes: [.details.causes[] | {field, reason}]}' check "a CRD with an unknown type" POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions \
        "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\",\"metadata\":{\"name\":\"bads.$grp\"},\"spec\":{\"group\":\"$grp\",\"scope\":\"Namespaced\",\"names\":{\"plural\":\"bads\",\"kind\":\"Bad\"},\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"properties\":{\"spec\":{\"type\":\"strin\"}}}}}]}}"
WHAT='{code, reason, first: (.details.causes[0] | {field, message})}' check "a CRD whose scale path is not under .spec" POST "/apis/apiextensions.k8s.io/v1/customresourcedefinitions?dryRun=All" \
        "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\",\"metadata\":{\"name\":\"bads.$grp\"},\"spec\":{\"group\":\"$grp\",\"scope\":\"Namespaced\",\"names\":{\"plural\":\"bads\",\"kind\":\"Bad\"},\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,\"subresources\":{\"scale\":{\"specReplicasPath\":\".metadata.name\",\"statusReplicasPath\":\".status.r\"}},\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"x-kubernetes-preserve-unknown-fields\":true}}}]}}"

# The scale subresource of custom resources and Deployments.
sc='if .kind == "Status" then {code, reason, causes: (.details.causes // [] | map({field, reason}) | sort_by(.field))} else {kind, apiVersion, name: .metadata.name, spec, status} end'
WHAT=$sc check "get the scale of a custom resource" GET $MC/ok/scale
WHAT=$sc check "patch the scale" PATCH $MC/ok/scale '{"spec":{"replicas":4}}' application/merge-patch+json
WHAT=$full check "  ... the custom resource has the new size" GET $MC/ok
WHAT=$sc check "scale above the schema's maximum" PATCH $MC/ok/scale '{"spec":{"replicas":7}}' application/merge-patch+json
WHAT=$sc check "scale to a negative size" PUT $MC/ok/scale '{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"ok"},"spec":{"replicas":-3}}'
WHAT=$sc check "scale with a stale resourceVersion" PUT $MC/ok/scale '{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"ok","resourceVersion":"1"},"spec":{"replicas":3}}'
WHAT=$sc check "the scale of a missing custom resource" GET $MC/missing/scale
WHAT=$full check "a replicas path of the wrong type" POST $MC "$(mc b '{"size":"x"}')"
WHAT=$full check "a negative status replicas path" PATCH $MC/ok/status '{"status":{"replicas":-1}}' application/merge-patch+json
WHAT=$full check "PUT a custom resource without resourceVersion" PUT $MC/ok "$(mc ok '{"size":2}')"
WHAT=$full check "PUT its status without resourceVersion" PUT $MC/ok/status "$(mc ok '{"size":2}' ',"status":{"replicas":1}')"
D=/apis/apps/v1/namespaces/$ns/deployments
check "create a Deployment" POST $D '{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d1"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"x","b":"c"},"matchExpressions":[{"key":"k","operator":"In","values":["v2","v1"]}]},"template":{"metadata":{"labels":{"app":"x","b":"c","k":"v1"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}'
WHAT=$sc check "get the scale of a Deployment" GET $D/d1/scale
WHAT=$sc check "patch the scale of a Deployment" PATCH $D/d1/scale '{"spec":{"replicas":3}}' application/merge-patch+json
WHAT='{replicas: .spec.replicas, generation: .metadata.generation}' check "  ... the Deployment has the new replicas" GET $D/d1
WHAT=$sc check "a negative scale of a Deployment" PATCH $D/d1/scale '{"spec":{"replicas":-1}}' application/merge-patch+json
WHAT=$sc check "the scale of a ConfigMap" GET $C/c1/scale

# Table output, as kubectl get asks for it (ages are left out: they differ
# by the time between the two requests).
TBL='application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json'
cols='{kind, apiVersion, columns: [.columnDefinitions[] | {name, type, format, priority}], rows: [.rows[] | {cells: [.cells[] | if type == "string" and test("^[0-9]+[smhdy]") then "(age)" else . end], object: (.object.kind // null)}]}'
ACCEPT=$TBL WHAT=$cols check "a Table of custom resources (printer columns)" GET "$MC?labelSelector=none%21%3Dx"
ACCEPT=$TBL WHAT=$cols check "a Table of one custom resource" GET $MC/ok
ACCEPT=$TBL WHAT=$cols check "a Table with includeObject=Object" GET "$MC/ok?includeObject=Object"
ACCEPT=$TBL WHAT=$cols check "a Table with includeObject=None" GET "$MC/ok?includeObject=None"
ACCEPT=$TBL WHAT=$cols check "a Table of ConfigMaps" GET "$C/c1"
ACCEPT=$TBL WHAT=$cols check "a Table of Deployments" GET "$D/d1"
ACCEPT=$TBL WHAT=$cols check "a Table of Leases" GET "$L?labelSelector=none%21%3Dx"
ACCEPT=$TBL WHAT=$cols check "a Table of one Namespace" GET "/api/v1/namespaces/$ns"
ACCEPT=$TBL WHAT='{kind, continue: (.metadata.continue != null), rows: (.rows | length)}' check "a Table, paged" GET "$C?limit=1"
ACCEPT=$TBL WHAT='{type, kind: .object.kind, columns: [.object.columnDefinitions[]?.name], cells: [.object.rows[].cells[]]}' check "a watch asked as Table" GET "$MC?watch=1&fieldSelector=metadata.name%3Dok&timeoutSeconds=1"

echo "compare: $n requests, $bad answered differently"
[ "$bad" = 0 ]

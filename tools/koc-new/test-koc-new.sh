#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Tests koc-new: NAME validation, the files it writes, the renamed chart, and
# that the generated main.c compiles against koc's headers.  (Building and
# linking the project against an installed koc is the install test's job.)
#
# Usage: test-koc-new.sh KOC_NEW SOURCE_DIR
set -euo pipefail

koc_new=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
bad() { failed=$((failed + 1)); echo "not ok - $*"; }

# Invalid names are refused with exit 2 and a message naming the rule.
for n in Foo foo_bar -foo foo- "" "a.b" "$(printf 'a%.0s' {1..64})" "f oo" "ä" koc koc-new 2op 9; do
        if "$koc_new" "$n" "$tmp/bad" >"$tmp/out" 2>&1; then
                bad "name \"$n\" accepted"
        else
                rc=$?
                if [[ $rc -eq 2 ]] && grep -q "DNS-1123\|reserved\|Usage\|unknown option\|start with a letter" "$tmp/out" && [[ ! -e $tmp/bad/main.c ]]; then
                        ok "name \"$n\" rejected"
                else
                        bad "name \"$n\": exit $rc, output: $(cat "$tmp/out")"
                fi
        fi
done

# A valid name.
if "$koc_new" my-op2 "$tmp/my-op2" >"$tmp/out" 2>&1; then ok "koc-new my-op2"; else cat "$tmp/out"; bad "koc-new my-op2"; fi
for f in CMakeLists.txt main.c README.md Dockerfile tests/e2e.sh .dockerignore charts/my-op2/Chart.yaml \
        charts/my-op2/values.yaml charts/my-op2/values.schema.json charts/my-op2/templates/deployment.yaml \
        charts/my-op2/templates/role.yaml charts/my-op2/templates/rbac-operator.yaml \
        charts/my-op2/templates/tests/test-readyz.yaml charts/my-op2/ci/gated-readiness-values.yaml \
        charts/my-op2/README.md; do
        if [[ -s $tmp/my-op2/$f ]]; then ok "wrote $f"; else bad "missing $f"; fi
done
grep -q 'find_package(koc' "$tmp/my-op2/CMakeLists.txt" && ok "CMakeLists uses find_package(koc)" || bad "no find_package(koc)"
grep -q 'koc::koc' "$tmp/my-op2/CMakeLists.txt" && ok "CMakeLists links koc::koc" || bad "no koc::koc"
grep -q 'project(my-op2 ' "$tmp/my-op2/CMakeLists.txt" && ok "project named my-op2" || bad "project not named"
grep -q 'koc_manager_run' "$tmp/my-op2/main.c" && ok "main.c runs the manager" || bad "main.c has no manager"
grep -q 'koc_controller_new(m, &o' "$tmp/my-op2/main.c" && ok "main.c registers a controller" || bad "no controller in main.c"
grep -q 'koc_reconcile_finalizer(ctx, FINALIZER' "$tmp/my-op2/main.c" && ok "the reconciler uses a finalizer" || bad "no finalizer"
grep -q '#define FINALIZER "my-op2/mirror"' "$tmp/my-op2/main.c" && ok "finalizer named after the project" || bad "finalizer name"
grep -q 'koc_add_envtest(NAME my-op2-e2e' "$tmp/my-op2/CMakeLists.txt" && ok "CMakeLists registers the e2e test" || bad "no e2e test"
grep -q '"configmaps"' "$tmp/my-op2/charts/my-op2/values.yaml" && ok "chart's rbac.rules cover the controller's ConfigMaps" || bad "no ConfigMap rules in the chart"
grep -q 'ctest --test-dir build' "$tmp/my-op2/README.md" && ok "README has the test command" || bad "README: no test command"
grep -q 'leader_election_id = "my-op2"' "$tmp/my-op2/main.c" && ok "lease named after the project" || bad "lease name"
grep -q '^name: my-op2$' "$tmp/my-op2/charts/my-op2/Chart.yaml" && ok "chart renamed" || bad "chart not renamed"
if [[ ! -d $tmp/my-op2/charts ]] || grep -rq 'koc-example' "$tmp/my-op2/charts"; then bad "chart still mentions koc-example"; else ok "no koc-example left in the chart"; fi
# koc-apiserver is installed with koc: the README points there, not to koc's sources.
if grep -q 'koc sources' "$tmp/my-op2/README.md" || ! grep -q 'koc-apiserver --kubeconfig-out' "$tmp/my-op2/README.md"; then bad "README: koc-apiserver"; else ok "README runs the installed koc-apiserver"; fi
if grep -q '__NAME__\|__IDENT__' "$tmp/my-op2/main.c" "$tmp/my-op2/Dockerfile" "$tmp/my-op2/tests/e2e.sh"; then bad "placeholders left"; else ok "placeholders replaced"; fi
# The Dockerfile builds this project and runs it as the chart's UID.
grep -q '^ENTRYPOINT \["/usr/local/bin/my-op2"\]$' "$tmp/my-op2/Dockerfile" && ok "Dockerfile: ENTRYPOINT is the program" || bad "Dockerfile ENTRYPOINT"
grep -q '^USER 65532:65532$' "$tmp/my-op2/Dockerfile" && ok "Dockerfile: USER 65532:65532" || bad "Dockerfile USER"
grep -q -- '-DKOC_STATIC=ON' "$tmp/my-op2/Dockerfile" && grep -q 'koc::koc_static' "$tmp/my-op2/CMakeLists.txt" &&
        ok "Dockerfile links koc statically" || bad "Dockerfile does not link koc statically"
grep -q 'docker build --build-context koc=' "$tmp/my-op2/README.md" && ok "README says how to build the image" || bad "README: no image build"
grep -q 'helm install my-op2 charts/my-op2 .*image.repository=' "$tmp/my-op2/README.md" && ok "README says how to install the chart with it" || bad "README: no helm install"

# Never writes into a directory that is not empty.
mkdir -p "$tmp/taken" && echo "my own main" >"$tmp/taken/main.c"
if "$koc_new" my-op2 "$tmp/taken" >"$tmp/out" 2>&1; then bad "wrote into a non-empty directory"
elif grep -q 'not empty: nothing is overwritten' "$tmp/out" && [[ $(cat "$tmp/taken/main.c") == "my own main" ]] &&
        [[ $(ls -A "$tmp/taken") == main.c ]]; then
        ok "non-empty directory refused, its files untouched"
else bad "non-empty directory: $(cat "$tmp/out")"; fi
if "$koc_new" my-op2 "$tmp/my-op2" >"$tmp/out" 2>&1; then bad "wrote into an existing project"; else ok "an existing project is refused"; fi
if "$koc_new" --force my-op2 "$tmp/taken" >"$tmp/out" 2>&1; then bad "--force accepted"; else ok "there is no --force"; fi
mkdir -p "$tmp/empty"
"$koc_new" my-op3 "$tmp/empty" >/dev/null 2>&1 && [[ -f $tmp/empty/main.c ]] && ok "an empty directory is used" || bad "empty DIR refused"
"$koc_new" --help >"$tmp/help" 2>&1
for w in --help --version NAME DIR "nothing is ever overwritten" "tests/e2e.sh" "C identifier"; do
        grep -qF -- "$w" "$tmp/help" && ok "--help explains $w" || bad "--help does not mention $w"
done

# The project's files come from the templates: KOC_NEW_TEMPLATE_DIR first.
cp -R "$src/tools/koc-new/template" "$tmp/tpl"
echo '/* edited template for __NAME__ */' >>"$tmp/tpl/main.c"
KOC_NEW_TEMPLATE_DIR=$tmp/tpl "$koc_new" tpl-op "$tmp/tpl-op" >/dev/null 2>&1 &&
        grep -qx '/\* edited template for tpl-op \*/' "$tmp/tpl-op/main.c" &&
        ok "KOC_NEW_TEMPLATE_DIR's templates are used" || bad "KOC_NEW_TEMPLATE_DIR ignored"
# The test script it writes is valid shell.
bash -n "$tmp/my-op2/tests/e2e.sh" && ok "tests/e2e.sh parses" || bad "tests/e2e.sh does not parse"

# DIR defaults to ./NAME.
(cd "$tmp" && "$koc_new" other >/dev/null 2>&1) && [[ -f $tmp/other/main.c ]] && ok "DIR defaults to ./NAME" || bad "default DIR"

# main.c compiles against koc's headers.
cflags=$(pkg-config --cflags libcjson libsystemd 2>/dev/null || true)
if cc -std=gnu11 -Wall -Wextra -Werror -fsyntax-only -I"$src/include" $cflags "$tmp/my-op2/main.c" 2>"$tmp/cc"; then
        ok "generated main.c compiles"
else
        cat "$tmp/cc"
        bad "generated main.c does not compile"
fi

# koc-new api: every flag is checked, the error names it, nothing is written.
cp -R "$tmp/my-op2" "$tmp/api-op"
before=$(cd "$tmp/api-op" && find . -type f | sort | xargs md5sum)
api_refused() { # EXPECTED-WORDS FLAGS...: exit 2, a message with the words, nothing written
        local want=$1 rc=0; shift
        (cd "$tmp/api-op" && "$koc_new" api "$@") >"$tmp/out" 2>&1 || rc=$?
        if [[ $rc -eq 2 ]] && grep -qF -- "$want" "$tmp/out" &&
                [[ $(cd "$tmp/api-op" && find . -type f | sort | xargs md5sum) == "$before" ]]; then
                ok "api $* refused ($want)"
        else
                bad "api $*: exit $rc, output: $(cat "$tmp/out")"
        fi
}
good=(--group cache.example.com --version v1alpha1 --kind Memcached)
api_refused "--group is required" --version v1 --kind Foo
api_refused "--version is required" --group a.b --kind Foo
api_refused "--kind is required" --group a.b --version v1
for g in example Cache.example.com cache_x.example.com -a.b a.b- "a..b" "a.b/c" "$(printf 'a%.0s' {1..64}).com"; do
        api_refused "invalid --group \"$g\"" --group "$g" --version v1 --kind Foo
done
for v in v0 1 V1 v1gamma1 v1alpha v1beta0 v01 "v1 "; do
        api_refused "invalid --version \"$v\"" --group a.b --version "$v" --kind Foo
done
for k in memcached Mem-cached 1Kind "Mem cached" Memcached_ "$(printf 'A%.0s' {1..64})"; do
        api_refused "invalid --kind \"$k\"" --group a.b --version v1 --kind "$k"
done
for pl in Memcacheds mem_cacheds -x memcached; do
        api_refused "invalid --plural \"$pl\"" "${good[@]}" --plural "$pl"
done
for pr in Mem 1mem mem__x int koc_mem mem_ ; do
        api_refused "invalid --prefix \"$pr\"" "${good[@]}" --prefix "$pr"
done
api_refused "invalid --kind (its C prefix) \"int\"" --group a.b --version v1 --kind Int
api_refused "--namespaced and --cluster exclude each other" "${good[@]}" --namespaced --cluster
api_refused "--group needs a value" --version v1 --kind Foo --group
api_refused "unexpected argument" "${good[@]}" extra
api_refused "unknown option" "${good[@]}" --bogus
if (cd "$tmp" && "$koc_new" api "${good[@]}") >"$tmp/out" 2>&1; then bad "api outside a project accepted"
elif grep -q 'is not a koc-new project' "$tmp/out"; then ok "api outside a project refused"
else bad "api outside a project: $(cat "$tmp/out")"; fi

# The API's files.
if (cd "$tmp/api-op" && "$koc_new" api "${good[@]}") >"$tmp/out" 2>&1; then ok "koc-new api Memcached"
else cat "$tmp/out"; bad "koc-new api Memcached"; fi
for f in charts/my-op2/crds/cache.example.com_memcacheds.yaml config/samples/cache.example.com_v1alpha1_memcached.yaml \
        memcached_controller.c memcached_controller.h tests/e2e-memcached.sh tests/check-rbac.sh rbac-values.yaml; do
        if [[ -s $tmp/api-op/$f ]]; then ok "api wrote $f"; else bad "api did not write $f"; fi
done
crd=$tmp/api-op/charts/my-op2/crds/cache.example.com_memcacheds.yaml
grep -q '^  name: memcacheds.cache.example.com$' "$crd" && grep -q '^  scope: Namespaced$' "$crd" &&
        grep -q '^  - name: v1alpha1$' "$crd" && grep -q '^    kind: Memcached$' "$crd" &&
        grep -q 'subresources:' "$crd" && grep -q 'additionalPrinterColumns:' "$crd" &&
        grep -q 'x-kubernetes-list-map-keys: \[type\]' "$crd" && ok "CRD: name, scope, version, status subresource, columns, conditions" ||
        bad "CRD content"
grep -q 'koc_generate_types(TARGET my-op2 CRD charts/my-op2/crds/cache.example.com_memcacheds.yaml' "$tmp/api-op/CMakeLists.txt" &&
        grep -q 'target_sources(my-op2 PRIVATE memcached_controller.c)' "$tmp/api-op/CMakeLists.txt" &&
        grep -q 'koc::koc-types' "$tmp/api-op/CMakeLists.txt" && grep -q 'koc_add_envtest(NAME my-op2-memcached-e2e' "$tmp/api-op/CMakeLists.txt" &&
        grep -q 'add_test(NAME my-op2-rbac' "$tmp/api-op/CMakeLists.txt" && ok "CMakeLists: types, controller, e2e and RBAC tests" ||
        bad "CMakeLists not wired"
grep -q '^#include "memcached_controller.h"$' "$tmp/api-op/main.c" &&
        grep -q 'memcached_controller_setup(m, &memcached_controller, &err)' "$tmp/api-op/main.c" &&
        ok "main.c sets the controller up" || bad "main.c not wired"
grep -q 'koc_reconcile_create_or_update(ctx, &memcached_deployments' "$tmp/api-op/memcached_controller.c" &&
        grep -q 'koc_apps_v1_deployment d = {' "$tmp/api-op/memcached_controller.c" &&
        grep -q 'memcached_parse(obj, &cr' "$tmp/api-op/memcached_controller.c" &&
        grep -q 'koc_reconcile_patch_status' "$tmp/api-op/memcached_controller.c" &&
        grep -q 'koc_manager_declare_access' "$tmp/api-op/memcached_controller.c" &&
        ok "controller: typed read, typed Deployment, create-or-update, status patch, RBAC" || bad "controller content"
if grep -rq '__[A-Z]*__' "$tmp/api-op" --include=*.c --include=*.h --include=*.yaml --include=*.sh --include=CMakeLists.txt; then
        bad "api placeholders left: $(grep -rl '__[A-Z]*__' "$tmp/api-op" --include=*.c --include=*.h --include=*.yaml --include=*.sh --include=CMakeLists.txt)"
else ok "api placeholders replaced"; fi
bash -n "$tmp/api-op/tests/e2e-memcached.sh" && ok "tests/e2e-memcached.sh parses" || bad "tests/e2e-memcached.sh does not parse"
if command -v python3 >/dev/null && python3 -c 'import yaml' 2>/dev/null; then
        python3 -c 'import sys, yaml; [yaml.safe_load(open(f)) for f in sys.argv[1:]]' "$crd" \
                "$tmp/api-op/config/samples/cache.example.com_v1alpha1_memcached.yaml" "$tmp/api-op/rbac-values.yaml" &&
                ok "the API's YAML parses" || bad "the API's YAML does not parse"
fi

# Never overwritten without --force; --force writes the files again, the
# build and main.c once.
echo "my controller" >"$tmp/api-op/memcached_controller.c"
if (cd "$tmp/api-op" && "$koc_new" api "${good[@]}") >"$tmp/out" 2>&1; then bad "api overwrote its files"
elif grep -q 'exists: nothing is overwritten' "$tmp/out" && [[ $(cat "$tmp/api-op/memcached_controller.c") == "my controller" ]]; then
        ok "api refuses to overwrite, the file untouched"
else bad "api again: $(cat "$tmp/out")"; fi
"$koc_new" api --dir "$tmp/api-op" --force "${good[@]}" >"$tmp/out" 2>&1 &&
        grep -q 'koc_reconcile_create_or_update' "$tmp/api-op/memcached_controller.c" &&
        [[ $(grep -c 'memcached_controller.c)' "$tmp/api-op/CMakeLists.txt") == 1 ]] &&
        [[ $(grep -c 'memcached_controller_setup' "$tmp/api-op/main.c") == 1 ]] &&
        grep -q 'rbac-values.yaml kept' "$tmp/out" && ok "--force writes the files again, wires once, keeps rbac-values.yaml" ||
        bad "--force: $(cat "$tmp/out")"
# --version alone is koc's version; with a value the API's.
"$koc_new" --version | grep -q '^koc-new ' && ok "--version alone prints koc's version" || bad "--version"

# A second API, cluster-scoped, with plural rules and a C prefix from the kind.
(cd "$tmp/api-op" && "$koc_new" api --group=ops.example.com --version v2beta1 --kind CronPolicy --cluster) >"$tmp/out" 2>&1 &&
        grep -q '^  scope: Cluster$' "$tmp/api-op/charts/my-op2/crds/ops.example.com_cronpolicies.yaml" &&
        grep -q 'cron_policy_controller_setup' "$tmp/api-op/main.c" &&
        grep -q '^#include "memcached_controller.h"$' "$tmp/api-op/main.c" && [[ -f $tmp/api-op/tests/e2e-cronpolicy.sh ]] &&
        ok "a second, cluster-scoped API (cronpolicies, cron_policy_)" || bad "second API: $(cat "$tmp/out")"
for kp in Box:boxes Bus:buses Key:keys Match:matches Proxy:proxies; do
        (cd "$tmp/api-op" && "$koc_new" api --group a.b --version v1 --kind "${kp%%:*}" --plural "" >/dev/null 2>&1) &&
                [[ -f $tmp/api-op/charts/my-op2/crds/a.b_${kp##*:}.yaml ]] && ok "plural of ${kp%%:*} is ${kp##*:}" ||
                bad "plural of ${kp%%:*}"
done

# At project creation.
"$koc_new" with-api "$tmp/with-api" --group cache.example.com --version v1 --kind Memcached --plural mcs >"$tmp/out" 2>&1 &&
        [[ -f $tmp/with-api/charts/with-api/crds/cache.example.com_mcs.yaml ]] && grep -q 'memcached_controller_setup' "$tmp/with-api/main.c" &&
        ok "koc-new NAME --group --version --kind adds the API" || bad "API at creation: $(cat "$tmp/out")"
# rbac-values.yaml lists the rules as the program prints them: by group
# (strcmp), then resource, wherever the API's group falls.
for g in aa.example.com ops.example.com; do
        "$koc_new" "sorted-${g%%.*}" "$tmp/sorted-$g" --group "$g" --version v1 --kind Foo >/dev/null 2>&1
        got=$(awk '/^  rules:/ {r = 1; next} r && /^    - apiGroups:/ {g = $0} r && /^      resources:/ {print g " " $0} /^  #/ {r = 0}' \
                "$tmp/sorted-$g/rbac-values.yaml")
        if [[ -n $got && $got == "$(LC_ALL=C sort <<<"$got")" && $(grep -c "\"$g\"" <<<"$got") == 3 ]]; then
                ok "rbac-values.yaml sorted with the group $g"
        else bad "rbac-values.yaml with $g: $got"; fi
done
if "$koc_new" bad-api "$tmp/bad-api" --group nodot --version v1 --kind K >"$tmp/out" 2>&1; then bad "bad API at creation accepted"
elif [[ ! -e $tmp/bad-api ]] && grep -q 'invalid --group' "$tmp/out"; then ok "a bad API at creation writes no project"
else bad "bad API at creation: $(cat "$tmp/out")"; fi
"$koc_new" --force x "$tmp/x" >/dev/null 2>&1 && bad "--force for a new project" || ok "--force is only for api"

# The renamed chart lints with the real helm (tests/tools/k8s-tools.sh).
helm=${HELM:-$("$src/tests/tools/k8s-tools.sh" helm || true)}
if [[ -n $helm && -x $helm ]]; then
        if HELM_CACHE_HOME=$tmp/hc HELM_CONFIG_HOME=$tmp/hc HELM_DATA_HOME=$tmp/hc \
                "$helm" lint --strict "$tmp/my-op2/charts/my-op2" >"$tmp/lint" 2>&1; then
                ok "generated chart passes helm lint --strict"
        else
                cat "$tmp/lint"
                bad "generated chart fails helm lint"
        fi
        # With the API's CRDs in crds/ and its rbac-values.yaml.
        if HELM_CACHE_HOME=$tmp/hc HELM_CONFIG_HOME=$tmp/hc HELM_DATA_HOME=$tmp/hc \
                "$helm" lint --strict "$tmp/with-api/charts/with-api" -f "$tmp/with-api/rbac-values.yaml" >"$tmp/lint" 2>&1 &&
                HELM_CACHE_HOME=$tmp/hc HELM_CONFIG_HOME=$tmp/hc HELM_DATA_HOME=$tmp/hc \
                "$helm" template x "$tmp/with-api/charts/with-api" -f "$tmp/with-api/rbac-values.yaml" --include-crds |
                grep -q '^  name: mcs.cache.example.com$'; then
                ok "the chart with an API passes helm lint --strict with rbac-values.yaml and carries its CRD"
        else
                cat "$tmp/lint"
                bad "the chart with an API fails helm lint or lacks its CRD"
        fi
        # The same checks as koc's own chart (tests/chart/check.sh), renamed.
        if HELM=$helm bash "$src/tests/chart/check.sh" "$tmp/my-op2/charts/my-op2" >"$tmp/chart" 2>&1; then
                ok "generated chart passes tests/chart/check.sh ($(tail -n1 "$tmp/chart"))"
        else
                grep -v '^ok' "$tmp/chart"
                bad "generated chart fails tests/chart/check.sh"
        fi
else
        echo "# no helm at $helm: chart lint skipped"
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]

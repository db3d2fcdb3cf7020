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

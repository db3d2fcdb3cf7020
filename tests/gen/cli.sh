#!/usr/bin/env bash
# koc-gen-types as a command: its refusals name the file and the field, its
# output does not depend on the run, and bad schemas never crash it.
set -euo pipefail
gen=$(realpath "$1")
here=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "cli: $*"; exit 1; }
# The generator is a short-lived tool that leaves its model to the exit.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"

expect_fail() { # message-substring args...
        local want=$1
        shift
        if "$gen" "$@" >"$work/out" 2>&1; then fail "accepted: $*"; fi
        grep -qF -- "$want" "$work/out" || { cat "$work/out"; fail "no \"$want\" in the error of: $*"; }
}

expect_fail "usage:" --crd "$here/widgets-crd.yaml"
expect_fail "No such file" --crd "$work/none.yaml" --header "$work/a.h" --source "$work/a.c"
printf 'kind: ConfigMap\n' >"$work/cm.yaml"
expect_fail "not a CustomResourceDefinition" --crd "$work/cm.yaml" --header "$work/a.h" --source "$work/a.c"
printf 'a: [1\n' >"$work/bad.yaml"
expect_fail "line" --crd "$work/bad.yaml" --header "$work/a.h" --source "$work/a.c"
cat >"$work/look.yaml" <<'Y'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
spec:
  group: g.dev
  names: {kind: Look}
  versions:
  - name: v1
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              name: {type: string, pattern: '^(?!kube-).*$'}
Y
expect_fail "spec.name: pattern ^(?!kube-).*$ is not supported" --crd "$work/look.yaml" --header "$work/a.h" \
        --source "$work/a.c"
[ ! -e "$work/a.h" ] || fail "a failed run left a header behind"

# Same input, same output, wherever it runs.
"$gen" --crd "$here/widgets-crd.yaml" --header "$work/w1.h" --source "$work/w1.c"
(cd "$work" && "$gen" --crd "$here/widgets-crd.yaml" --header w2.h --source w2.c --include w1.h)
cmp "$work/w1.c" "$work/w2.c" || fail "two runs differ"

# Hostile schemas: deep nesting, odd names, aliases, wrong types everywhere.
{
        printf 'apiVersion: v1\nkind: CustomResourceDefinition\nspec:\n  group: g\n  names: {kind: Deep}\n'
        printf '  versions:\n  - name: v1\n    schema:\n      openAPIV3Schema:\n'
        ind="        "
        for i in $(seq 1 120); do
                printf '%stype: object\n%sproperties:\n%s  "p%s":\n' "$ind" "$ind" "$ind" "$i"
                ind="$ind    "
        done
        printf '%stype: string\n' "$ind"
} >"$work/deep.yaml"
"$gen" --crd "$work/deep.yaml" --header "$work/d.h" --source "$work/d.c"
grep -q "cJSON \*p" "$work/d.h" || fail "a schema nested past the bound is not kept as cJSON"
cat >"$work/odd.yaml" <<'Y'
kind: CustomResourceDefinition
spec:
  group: g
  names: {kind: "9 odd-Kind!"}
  versions:
  - name: v1
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              "": {type: string}
              "-": {type: integer}
              "a-b": {type: string, enum: ["x y", "X_Y", "", "x-y"]}
              a_b: {type: boolean}
              items: {type: array, items: 7}
              weird: {type: [string]}
              m: {type: object, additionalProperties: {type: array, items: {type: string}}}
              required: {type: string}
              "a-b": {type: integer}
            required: 5
Y
"$gen" --crd "$work/odd.yaml" --header "$work/o.h" --source "$work/o.c"
! grep -q "a_b_3" "$work/o.h" || fail "a property the YAML repeats became two members"
printf 'x: &a [1]\ny: *a\n' >"$work/alias.yaml"
expect_fail "aliases" --crd "$work/alias.yaml" --header "$work/a.h" --source "$work/a.c"
# Numbers no C type holds, in a JSON CRD: no bound, no undefined conversion.
cat >"$work/huge.json" <<'J'
{"kind": "CustomResourceDefinition", "spec": {"group": "g", "names": {"kind": "Huge"}, "versions": [{"name": "v1",
 "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {
 "a": {"type": "integer", "minimum": 1e400, "maximum": -1e400, "enum": [1e300, 2]},
 "b": {"type": "string", "maxLength": 1e300, "minLength": -5}}}}}}}]}}
J
"$gen" --crd "$work/huge.json" --header "$work/h.h" --source "$work/h.c"
for f in d o h; do
        cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter -Wmissing-prototypes \
                -Wstrict-prototypes -Werror -c "$work/$f.c" -o "$work/$f.o" ||
                fail "the code generated from $f.yaml does not compile"
done
echo "cli: ok"

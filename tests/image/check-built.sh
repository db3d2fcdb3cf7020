#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Keeps scripts/image.sh and the Dockerfile in step: the image archive that
# image.sh wrote for the program must have the Dockerfile runtime stage's
# USER and exec-form ENTRYPOINT, the program at that path, and every shared
# library of every package the runtime stage installs (dpkg -L on this Debian
# machine, the same release as the image).  Checks variants of the Dockerfile
# that it must refuse, so it can fail.
#
# Usage: tests/image/check-built.sh DOCKERFILE IMAGE.tar
set -euo pipefail
dockerfile=${1:?usage: check-built.sh DOCKERFILE IMAGE.tar}
archive=${2:?usage: check-built.sh DOCKERFILE IMAGE.tar}
for f in "$dockerfile" "$archive"; do [ -f "$f" ] || { echo "check-built: $f: no such file" >&2; exit 2; }; done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
bad() { failed=$((failed + 1)); echo "not ok - $*"; }

tar -C "$work" -xf "$archive" manifest.json
cfg=$(jq -r '.[0].Config' "$work/manifest.json")
layer=$(jq -r '.[0].Layers[0]' "$work/manifest.json")
tar -C "$work" -xf "$archive" "$cfg" "$layer"
tar -tf "$work/$layer" | sed 's|^\./|/|' >"$work/files"
img_user=$(jq -r '.config.User' "$work/$cfg")
img_ep=$(jq -c '.config.Entrypoint' "$work/$cfg")

runtime() { # the last stage, continuation lines joined, comments dropped
        sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$1" | grep -v '^[[:space:]]*#' |
                awk 'toupper($1) == "FROM" { delete l; k = 0 } { l[++k] = $0 } END { for (i = 1; i <= k; i++) print l[i] }'
}
# check DOCKERFILE: one line per difference from the image.
check() {
        local rt user ep pkgs p so
        rt=$(runtime "$1")
        user=$(awk 'toupper($1) == "USER" { u = $2 } END { print u }' <<<"$rt")
        [ "$user" = "$img_user" ] || echo "USER: Dockerfile $user, image $img_user"
        ep=$(grep -i '^ENTRYPOINT' <<<"$rt" | tail -n1 | sed 's/^ENTRYPOINT[[:space:]]*//I' | jq -c . 2>/dev/null || echo invalid)
        [ "$ep" = "$img_ep" ] || echo "ENTRYPOINT: Dockerfile $ep, image $img_ep"
        grep -qx "$(jq -r '.[0]' <<<"$img_ep")" "$work/files" || echo "the image has no $(jq -r '.[0]' <<<"$img_ep")"
        pkgs=$(grep -o 'apt-get[^&;|]*install[^&;|]*' <<<"$rt" | sed 's/.*install//' | tr ' \t' '\n\n' | grep -v -e '^-' -e '^$' | sort -u)
        for p in $pkgs; do
                dpkg-query -W "$p" >/dev/null 2>&1 || { echo "package $p is not installed on this machine to compare"; continue; }
                while read -r so; do
                        grep -qx "$so" "$work/files" || grep -qx "/usr$so" "$work/files" || grep -qx "${so#/usr}" "$work/files" ||
                                echo "package $p: $so is not in the image"
                done < <(dpkg -L "$p" | grep -E '/lib/.*\.so(\.[0-9]+)*$')
        done
}

problems=$(check "$dockerfile")
if [ -z "$problems" ]; then
        ok "$(basename "$archive") matches $(basename "$dockerfile"): USER $img_user, ENTRYPOINT $img_ep, every runtime package's libraries"
else
        while read -r p; do bad "$p"; done <<<"$problems"
fi
variant() { # NAME SED EXPECTED
        sed -e "$2" "$dockerfile" >"$work/v.Dockerfile"
        local out; out=$(check "$work/v.Dockerfile")
        if grep -q -- "$3" <<<"$out"; then ok "variant $1 refused"; else bad "variant $1 accepted: ${out:-no difference found}"; fi
}
variant other-user 's/^USER .*/USER 1000:1000/' 'USER: Dockerfile 1000:1000'
variant other-entrypoint 's|^ENTRYPOINT .*|ENTRYPOINT ["/usr/local/bin/other"]|' 'ENTRYPOINT: Dockerfile'
variant more-packages 's/libyaml-0-2/libyaml-0-2 libzstd1 libxml2/' 'package libxml2: '
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

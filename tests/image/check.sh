#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Checks a multi-stage Dockerfile without a container engine: its runtime
# stage (the last FROM) must
#   - start from Debian 12 (debian:12-slim, debian:bookworm-slim or debian:12),
#   - install, with apt-get, the Debian package of every library the built
#     binary needs directly (ELF NEEDED entries), and cover every library ldd
#     reports (its dependencies) through those packages' Depends closure;
#     the C library and the dynamic loader (libc6) are left out,
#   - install no -dev package,
#   - run as USER UID:GID equal to the chart's podSecurityContext
#     runAsUser/runAsGroup (numeric, non-zero),
#   - have an exec-form ENTRYPOINT (no shell) naming a file the stage copies in;
# and its build stage must start from Debian 12 and install the -dev packages
# that scripts/install-deps.sh installs for the build (not the test-only ones:
# libcmocka-dev, and libclang-rt-14-dev for the fuzz harnesses).
#
# Library paths map to packages with dpkg -S on this Debian 12 machine, the
# same release as the image.  To prove the check can fail, it also runs on
# copies of the Dockerfile with one runtime package removed, with another
# USER, and with a shell-form ENTRYPOINT, and expects each to be refused.
#
# Usage: tests/image/check.sh DOCKERFILE BINARY VALUES_YAML [INSTALL_DEPS_SH]
set -euo pipefail
dockerfile=${1:?usage: check.sh DOCKERFILE BINARY VALUES_YAML [INSTALL_DEPS_SH]}
binary=${2:?usage: check.sh DOCKERFILE BINARY VALUES_YAML [INSTALL_DEPS_SH]}
values=${3:?usage: check.sh DOCKERFILE BINARY VALUES_YAML [INSTALL_DEPS_SH]}
deps_sh=${4:-}
for f in "$dockerfile" "$binary" "$values"; do [ -f "$f" ] || { echo "image-check: $f: no such file" >&2; exit 2; }; done
command -v dpkg-query >/dev/null || { echo "image-check: needs dpkg (Debian)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
bad() { failed=$((failed + 1)); echo "not ok - $*"; }

# The packages that ship the library files, in one dpkg -S (usrmerge: a file
# may be known to dpkg under /lib or /usr/lib): "path package" lines.
declare -A pkg_by_path=()
map_packages() {
        local paths=() p r line
        for p in "$@"; do r=$(readlink -f "$p"); paths+=("$p" "$r" "${r#/usr}" "/usr${p#/usr}"); done
        while IFS= read -r line; do
                pkg_by_path[${line#*: }]=${line%%:*}
        done < <(dpkg -S "${paths[@]}" 2>/dev/null | grep -v ', ' || true)
}
pkg_of() {
        local p=$1 r c
        r=$(readlink -f "$p")
        for c in "$p" "$r" "${r#/usr}" "/usr${p#/usr}"; do
                [ -n "${pkg_by_path[$c]:-}" ] && { echo "${pkg_by_path[$c]}"; return 0; }
        done
        return 1
}

# The packages reachable from the given ones through Depends and Pre-Depends
# (every alternative of "a | b" counts), as installed on this machine.
closure() {
        awk -v roots="$*" -F'\t' '
                { deps[$1] = $2 }
                END {
                        n = split(roots, queue, " ")
                        for (i = 1; i <= n; i++) {
                                p = queue[i]
                                if (p in seen) continue
                                seen[p] = 1; print p
                                m = split(deps[p], d, /[,|]/)
                                for (j = 1; j <= m; j++) {
                                        x = d[j]; sub(/\(.*\)/, "", x); sub(/:any/, "", x); gsub(/[ \t]/, "", x)
                                        if (x != "" && !(x in seen)) queue[++n] = x
                                }
                        }
                }' "$work/depends"
}
dpkg-query -W -f='${Package}\t${Depends},${Pre-Depends}\n' >"$work/depends"

# The binary's libraries: direct (NEEDED) and all (ldd), as "soname path".
objdump -p "$binary" | awk '/NEEDED/ { print $2 }' >"$work/needed"
ldd "$binary" | awk '/=>/ && $3 ~ /^\// { print $1, $3 }' >"$work/ldd"
[ -s "$work/needed" ] && [ -s "$work/ldd" ] || { echo "image-check: no libraries found for $binary" >&2; exit 2; }
: >"$work/direct-pkgs"; : >"$work/all-pkgs"
map_packages $(awk '{ print $2 }' "$work/ldd")
while read -r so path; do
        pkg=$(pkg_of "$path") || { echo "image-check: no Debian package ships $path ($so)" >&2; exit 2; }
        [ "$pkg" = libc6 ] && continue
        echo "$pkg $so" >>"$work/all-pkgs"
        grep -qx "$so" "$work/needed" && echo "$pkg $so" >>"$work/direct-pkgs"
done <"$work/ldd"
uid=$(awk '/^podSecurityContext:/ { s = 1; next } /^[^ #]/ { s = 0 } s && /runAsUser:/ { print $2 }' "$values")
gid=$(awk '/^podSecurityContext:/ { s = 1; next } /^[^ #]/ { s = 0 } s && /runAsGroup:/ { print $2 }' "$values")
[[ $uid =~ ^[0-9]+$ && $gid =~ ^[0-9]+$ ]] || { echo "image-check: no podSecurityContext.runAsUser/runAsGroup in $values" >&2; exit 2; }

# stage FILE N: the Nth stage (1-based; 0 = the last), continuation lines joined.
stage() {
        sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$1" | grep -v '^[[:space:]]*#' |
                awk -v want="$2" 'toupper($1) == "FROM" { n++ } { line[NR] = $0; st[NR] = n }
                        END { if (want == 0) want = n; for (i = 1; i <= NR; i++) if (st[i] == want) print line[i] }'
}
# apt_packages STAGE_TEXT: the package names of its apt-get install commands.
apt_packages() {
        grep -o 'apt-get[^&;|]*install[^&;|]*' | sed 's/.*install//' | tr ' \t' '\n\n' |
                grep -v -e '^-' -e '^$' | sort -u
}

# check FILE: prints one line per problem; nothing when the Dockerfile is fine.
check() {
        local f=$1 rt build from pkgs closure_f user entry src
        rt=$(stage "$f" 0); build=$(stage "$f" 1)
        [ "$(grep -ci '^FROM' "$f")" -ge 2 ] || echo "not multi-stage (one FROM)"
        from=$(awk 'toupper($1) == "FROM" { print $2 }' <<<"$rt")
        [[ $from =~ ^(docker\.io/(library/)?)?debian:(12|bookworm)(-slim)?(@.*)?$ ]] ||
                echo "runtime stage FROM $from is not Debian 12"
        from=$(awk 'toupper($1) == "FROM" { print $2 }' <<<"$build")
        [[ $from =~ ^(docker\.io/(library/)?)?debian:(12|bookworm)(@.*)?$ ]] ||
                echo "build stage FROM $from is not debian:12"
        pkgs=$(apt_packages <<<"$rt")
        [ -n "$pkgs" ] || echo "runtime stage has no apt-get install"
        grep -- '-dev$' <<<"$pkgs" | sed 's/^/runtime stage installs a -dev package: /'
        closure_f=$(mktemp -p "$work")
        closure $pkgs >"$closure_f"
        while read -r pkg so; do
                grep -qx "$pkg" <<<"$pkgs" ||
                        echo "runtime stage does not install $pkg (ships $so, which the binary links directly)"
        done <"$work/direct-pkgs"
        while read -r pkg so; do
                grep -qx "$pkg" "$closure_f" ||
                        echo "$pkg (ships $so) is neither installed nor a dependency of what the runtime stage installs"
        done <"$work/all-pkgs"
        user=$(awk 'toupper($1) == "USER" { u = $2 } END { print u }' <<<"$rt")
        [ "$user" = "$uid:$gid" ] || [ "$user" = "$uid" -a "$uid" = "$gid" ] ||
                echo "runtime USER is \"$user\", the chart runs as $uid:$gid (podSecurityContext)"
        [ "$uid" != 0 ] || echo "the chart's UID is 0"
        entry=$(grep -i '^ENTRYPOINT' <<<"$rt" | tail -n1 | sed 's/^ENTRYPOINT[[:space:]]*//I')
        if [[ $entry =~ ^\[[[:space:]]*\"(/[^\"]+)\" ]]; then
                src=${BASH_REMATCH[1]}
                grep -Eq "^COPY .*[[:space:]]$src\$" <<<"$rt" || echo "ENTRYPOINT $src is not copied into the runtime stage"
        else
                echo "ENTRYPOINT is not in exec form with an absolute path (a shell would run it): $entry"
        fi
        if [ -n "$deps_sh" ]; then
                for d in $(grep -o '[a-z0-9.+-]*-dev\b' "$deps_sh" | grep -v -e cmocka -e libclang-rt | sort -u); do
                        grep -qx "$d" <(apt_packages <<<"$build") || echo "build stage does not install $d (scripts/install-deps.sh does)"
                done
        fi
}

echo "# binary: $binary links $(wc -l <"$work/ldd") libraries; packages (without libc6):" \
        "$(cut -d' ' -f1 "$work/all-pkgs" | sort -u | tr '\n' ' ')"
echo "# directly: $(cut -d' ' -f1 "$work/direct-pkgs" | sort -u | tr '\n' ' ')"
problems=$(check "$dockerfile")
if [ -z "$problems" ]; then
        ok "$(basename "$dockerfile"): runtime stage covers every library, USER $uid:$gid, exec-form ENTRYPOINT"
else
        while read -r p; do bad "$(basename "$dockerfile"): $p"; done <<<"$problems"
fi

# The check refuses broken variants.
mutate() { # NAME SED-EXPRESSION EXPECTED-PATTERN
        sed -e "$2" "$dockerfile" >"$work/$1.Dockerfile"
        if cmp -s "$dockerfile" "$work/$1.Dockerfile"; then bad "variant $1: the edit changed nothing"; return; fi
        local out; out=$(check "$work/$1.Dockerfile")
        if grep -q -- "$3" <<<"$out"; then ok "variant $1 refused"; else bad "variant $1 accepted: ${out:-no problem found}"; fi
}
last_from=$(grep -ni '^FROM' "$dockerfile" | tail -n1 | cut -d: -f1)
direct=$(cut -d' ' -f1 "$work/direct-pkgs" | sort -u | tail -n1)
mutate "without-$direct" "$last_from,\$s/ $direct\\b//" "does not install $direct"
mutate root-user 's/^USER .*/USER 0:0/' 'runtime USER is "0:0"'
mutate shell-entrypoint 's/^ENTRYPOINT .*/ENTRYPOINT koc-example-leader/' 'not in exec form'
mutate dev-package "$last_from,\$s/libyaml-0-2/libyaml-dev/" 'installs a -dev package'

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# layers.sh SOURCE_DIR: checks that the library's folders include only
# downwards (docs/design.md, "Layers"):
#
#   framework/manager      anything of the library (not apiserver/)
#   framework/controller   anything below, except framework/manager's own files
#                          (the manager's public API, koc/manager.h, is what
#                          koc_controller_new() takes)
#   framework/cache        core only
#   leader/ probes/ serving/ shutdown/   core only: they know the base, not each other
#   core/                  core only
#
# No library folder includes apiserver/ (the library never depends on
# koc-apiserver).  A public header (include/koc/X.h, as "koc/X.h" or
# <koc/X.h>) belongs to the layer that implements it (the table below); the
# public headers are checked by the same rules.  An include resolves the way
# the compiler does with koc's include path: the including file's folder,
# then include/, then the source root; includes that resolve to no file of
# the tree (system headers) are not checked.  Every offending include is
# printed as FILE:LINE: "INCLUDE" (its layer), and the check fails.
#
# The umbrella header include/koc/koc.h must include every public header and
# name it in its opening comment, which tells a reader what each one is for.
set -euo pipefail
src=${1:?usage: layers.sh SOURCE_DIR}
cd "$src"

# The layer of a public header.  A new header must be added here.
public_layer() {
        case $1 in
        common | log | time | config | client | metrics) echo core ;;
        leader | probes | shutdown) echo "$1" ;;
        object | cache) echo framework/cache ;;
        controller | reconcile) echo framework/controller ;;
        manager | webhook) echo framework/manager ;;
        koc) echo umbrella ;; # koc.h: every header at once
        *) return 1 ;;
        esac
}

# The layer of a file of the tree (a path relative to the source root).
file_layer() {
        case $1 in
        include/koc/*.h)
                local b=${1#include/koc/}
                public_layer "${b%.h}" || echo "unknown-public"
                ;;
        core/*) echo core ;;
        leader/*) echo leader ;;
        probes/*) echo probes ;;
        serving/*) echo serving ;;
        shutdown/*) echo shutdown ;;
        framework/cache/*) echo framework/cache ;;
        framework/controller/*) echo framework/controller ;;
        framework/manager/*) echo framework/manager ;;
        apiserver/*) echo apiserver ;;
        *) echo "other" ;;
        esac
}

# allowed FROM_LAYER TO_LAYER TO_FILE: 0 when FROM may include TO.
allowed() {
        local from=$1 to=$2 file=$3
        [[ $to == "$from" ]] && return 0
        case $from in
        core | leader | probes | serving | shutdown | framework/cache) [[ $to == core ]] ;;
        framework/controller)
                # The manager's public header only; never its internals, the
                # umbrella header or koc-apiserver.
                case $to in
                framework/manager) [[ $file == include/koc/* ]] ;;
                apiserver | umbrella | other | unknown-public) return 1 ;;
                *) return 0 ;;
                esac
                ;;
        framework/manager)
                # The composition root: everything of the library.
                case $to in
                apiserver | other | unknown-public) return 1 ;;
                *) return 0 ;;
                esac
                ;;
        *) return 0 ;;
        esac
}

# resolve FILE INCLUDE QUOTED: the path of the included file relative to the
# source root, or nothing.
resolve() {
        local dir=${1%/*} inc=$2 quoted=$3 c
        local candidates=()
        [[ $quoted == 1 ]] && candidates+=("$dir/$inc")
        candidates+=("include/$inc" "$inc")
        for c in "${candidates[@]}"; do
                if [[ -f $c ]]; then
                        # Normalise "a/../b" and "./".
                        realpath -m --relative-to=. "$c"
                        return 0
                fi
        done
}

failed=0
checked=0
re='^[[:space:]]*#[[:space:]]*include[[:space:]]*([<"])([^">]+)[">]'
mapfile -t files < <(find core leader probes serving shutdown framework include/koc -type f \
        \( -name '*.c' -o -name '*.h' \) 2>/dev/null | LC_ALL=C sort)
if [[ ${#files[@]} -eq 0 ]]; then
        echo "layers: no sources under $src" >&2
        exit 1
fi
for f in "${files[@]}"; do
        from=$(file_layer "$f")
        if [[ $from == unknown-public ]]; then
                echo "layers: $f: a public header without a layer (add it to public_layer in $0)"
                failed=$((failed + 1))
                continue
        fi
        n=0
        while IFS= read -r line || [[ -n $line ]]; do
                n=$((n + 1))
                [[ $line =~ $re ]] || continue
                inc=${BASH_REMATCH[2]}
                quoted=0
                [[ ${BASH_REMATCH[1]} == '"' ]] && quoted=1
                target=$(resolve "$f" "$inc" "$quoted")
                [[ -n $target ]] || continue
                checked=$((checked + 1))
                to=$(file_layer "$target")
                if ! allowed "$from" "$to" "$target"; then
                        echo "layers: $f:$n: includes \"$inc\" ($target, layer $to): $from may not include it"
                        failed=$((failed + 1))
                fi
        done <"$f"
done

umbrella=include/koc/koc.h
if [[ -f $umbrella ]]; then
        for h in include/koc/*.h; do
                b=${h#include/koc/}
                [[ $b == koc.h ]] && continue
                if ! grep -Eq "^#[[:space:]]*include[[:space:]]*[<\"]koc/$b[>\"]" "$umbrella"; then
                        echo "layers: $umbrella does not include koc/$b"
                        failed=$((failed + 1))
                fi
                # The opening comment: up to the first line that is not one.
                if ! awk '/^#/ { exit } { print }' "$umbrella" | grep -qF "$b"; then
                        echo "layers: $umbrella does not name $b in its opening comment"
                        failed=$((failed + 1))
                fi
        done
fi
echo "layers: ${#files[@]} files, $checked includes of the tree checked, $failed violations"
[[ $failed -eq 0 ]]

#!/usr/bin/env bash
# Installs the build tree into a temporary prefix and proves that a separate
# project finds and links it: with find_package(koc) (shared and static) and
# with pkg-config (shared and --static).  When koc-new is installed, the
# project it scaffolds must build against the same prefix.
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/koc-apiserver bin/koc-envtest share/koc/envtest/k8s/env.sh lib/cmake/koc/KocEnvtest.cmake \
         include/koc/koc.h include/koc/client.h lib/libkoc.so lib/libkoc.a \
         lib/cmake/koc/kocConfig.cmake lib/pkgconfig/koc.pc bin/koc-gen-types include/koc/types/k8s.h \
         lib/libkoc-types.so lib/libkoc-types.a lib/cmake/koc/KocGenerateTypes.cmake \
         lib/pkgconfig/koc-types.pc; do
        g=$prefix/$f
        [ -e "$g" ] || g=$(echo "$prefix"/lib*/"${f#lib/}" | cut -d' ' -f1)
        [ -e "$g" ] || { echo "install-check: missing $f"; exit 1; }
done
# koc-new's templates beside the chart, as in the sources.
if [ -x "$prefix/bin/koc-new" ]; then
        for f in CMakeLists.txt main.c Dockerfile .dockerignore README.md tests/e2e.sh chart-README-checking.md \
                 api/crd.yaml api/sample.yaml api/controller.c api/controller.h api/main-include.inc \
                 api/main-setup.inc api/CMakeLists.txt api/rbac.cmake api/rbac-values.yaml api/tests/e2e.sh \
                 api/tests/check-rbac.sh; do
                cmp -s "$src/tools/koc-new/template/$f" "$prefix/share/koc/koc-new/$f" ||
                        { echo "install-check: share/koc/koc-new/$f missing or not the template"; exit 1; }
        done
fi
echo "install-check: installed files present"

cmake -S "$src/tests/install/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
LD_LIBRARY_PATH=$(dirname "$(find "$prefix" -name 'libkoc.so' | head -1)") "$work/consumer/consumer-shared"
"$work/consumer/consumer-static"
echo "install-check: find_package(koc) shared and static ok"
LD_LIBRARY_PATH=$(dirname "$(find "$prefix" -name 'libkoc-types.so' | head -1)") "$work/consumer/consumer-types"
echo "install-check: koc_generate_types() and koc::koc-types from the installed package ok"

pcdir=$(dirname "$(find "$prefix" -name koc.pc | head -1)")
export PKG_CONFIG_PATH=$pcdir
cc -o "$work/pc-shared" "$src/tests/install/consumer/main.c" $(pkg-config --cflags --libs koc)
LD_LIBRARY_PATH=$(pkg-config --variable=libdir koc) "$work/pc-shared"
# What the README tells users of a non-system prefix: an RPATH, no LD_LIBRARY_PATH.
cc -o "$work/pc-rpath" "$src/tests/install/consumer/main.c" $(pkg-config --cflags --libs koc) \
        -Wl,-rpath,"$(pkg-config --variable=libdir koc)"
env -u LD_LIBRARY_PATH "$work/pc-rpath"
# libkoc.a itself, with its dependencies (Requires.private) linked as shared
# libraries: Debian ships libcurl's own dependencies without static archives.
cc -o "$work/pc-static" "$src/tests/install/consumer/main.c" $(pkg-config --cflags koc) \
        "$(pkg-config --variable=libdir koc)/libkoc.a" \
        $(pkg-config --libs koc $(pkg-config --print-requires-private koc) | sed 's/-lkoc//') -lpthread -lm
"$work/pc-static"
echo "install-check: pkg-config shared and static ok"
cc -o "$work/pc-types" "$src/tests/install/consumer/types-pc.c" $(pkg-config --cflags --libs koc-types)
LD_LIBRARY_PATH=$(pkg-config --variable=libdir koc-types) "$work/pc-types"
echo "install-check: pkg-config koc-types ok"

# The public headers are usable from C++ as well.
if command -v g++ >/dev/null 2>&1; then
        printf '#include <koc/koc.h>\nint main() { return koc_log_get_level() < 0; }\n' > "$work/cxx.cc"
        g++ -std=c++17 -Wall -Wextra -Werror -o "$work/cxx" "$work/cxx.cc" $(pkg-config --cflags --libs koc)
        LD_LIBRARY_PATH=$(pkg-config --variable=libdir koc) "$work/cxx"
        echo "install-check: koc/koc.h compiles and links as C++"
fi

if [ -x "$prefix/bin/koc-new" ]; then
        (cd "$work" && "$prefix/bin/koc-new" demo-operator "$work/demo-operator" >/dev/null)
        cmake -S "$work/demo-operator" -B "$work/demo-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
        cmake --build "$work/demo-build" >/dev/null
        echo "install-check: koc-new project builds against the installed koc"
        # Its own test: two replicas on the control plane koc-envtest starts
        # (kube-apiserver from the cached binaries when they are there, never
        # built here; koc-apiserver otherwise); one leads and the scaffolded
        # controller mirrors, restores and finalizes.
        server=koc-apiserver
        [ -x "$("$prefix/bin/koc-envtest" bin)/kube-apiserver" ] && server=kube-apiserver
        if KOC_ENVTEST_SERVER=$server ctest --test-dir "$work/demo-build" -V >"$work/e2e.txt" 2>&1 &&
                grep -q "e2e: on $server" "$work/e2e.txt" && grep -q 'e2e: OK' "$work/e2e.txt"; then
                sed -n 's/^.*\(e2e: .*\)$/install-check:   \1/p' "$work/e2e.txt"
        else
                cat "$work/e2e.txt"; echo "install-check: the koc-new project's own test failed"; exit 1
        fi
        # As its Dockerfile builds it: koc linked statically; the image's
        # runtime stage must then cover every library the binary links.
        cmake -S "$work/demo-operator" -B "$work/demo-static" -DCMAKE_PREFIX_PATH="$prefix" -DKOC_STATIC=ON >/dev/null
        cmake --build "$work/demo-static" >/dev/null
        if objdump -p "$work/demo-static/demo-operator" | grep -q 'NEEDED.*libkoc'; then
                echo "install-check: -DKOC_STATIC=ON still links libkoc.so"; exit 1
        fi
        bash "$src/tests/image/check.sh" "$work/demo-operator/Dockerfile" "$work/demo-static/demo-operator" \
                "$work/demo-operator/charts/demo-operator/values.yaml" "$src/scripts/install-deps.sh" >"$work/image.txt" ||
                { cat "$work/image.txt"; echo "install-check: the koc-new project's Dockerfile fails image-check"; exit 1; }
        echo "install-check: koc-new project links koc statically; its Dockerfile passes image-check"
fi
if [ -x "$prefix/bin/koc-new" ]; then
        # A project with an API (koc-new api, as `kubebuilder create api`):
        # its CRD's types generated by the installed koc-gen-types, the
        # built-in types of libkoc-types, its RBAC values checked against
        # --print-rbac, and its own end-to-end tests on kube-apiserver (the
        # cached binaries; koc-apiserver where they are missing).
        "$prefix/bin/koc-new" api-operator "$work/api-operator" >/dev/null
        (cd "$work/api-operator" && "$prefix/bin/koc-new" api --group cache.example.com --version v1alpha1 \
                --kind Memcached >/dev/null)
        cmake -S "$work/api-operator" -B "$work/api-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
        cmake --build "$work/api-build" >/dev/null
        echo "install-check: koc-new project with an API builds against the installed koc"
        if KOC_ENVTEST_SERVER=$server ctest --test-dir "$work/api-build" -V >"$work/api-e2e.txt" 2>&1 &&
                [ "$(grep -c "e2e: on $server" "$work/api-e2e.txt")" = 2 ] && grep -q 'e2e: the sample.s Deployment runs' "$work/api-e2e.txt" &&
                [ "$(grep -c 'e2e: OK' "$work/api-e2e.txt")" = 2 ] && grep -q 'check-rbac: OK' "$work/api-e2e.txt"; then
                sed -n 's/^.*\(\(e2e\|check-rbac\): .*\)$/install-check:   \1/p' "$work/api-e2e.txt"
        else
                cat "$work/api-e2e.txt"; echo "install-check: the API project's own tests failed"; exit 1
        fi
        cmake -S "$work/api-operator" -B "$work/api-static" -DCMAKE_PREFIX_PATH="$prefix" -DKOC_STATIC=ON >/dev/null
        cmake --build "$work/api-static" >/dev/null
        if objdump -p "$work/api-static/api-operator" | grep -q 'NEEDED.*libkoc'; then
                echo "install-check: -DKOC_STATIC=ON still links libkoc.so or libkoc-types.so"; exit 1
        fi
        echo "install-check: the API project links koc and koc-types statically"
fi
echo "install-check: 1 passed, 0 failed"

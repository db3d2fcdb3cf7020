#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# test-layers.sh LAYERS_SH: layers.sh on a small tree with one include of
# each forbidden kind must fail and name each of them, and nothing else;
# the same tree without them must pass.
set -euo pipefail
layers=${1:?usage: test-layers.sh LAYERS_SH}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
bad() { failed=$((failed + 1)); echo "not ok - $*"; }

t=$tmp/tree
mkdir -p "$t"/{core,leader,probes,shutdown,apiserver,include/koc} \
        "$t"/framework/{cache,controller,manager}
hs=(common log client leader probes shutdown controller manager object)
for h in "${hs[@]}"; do
        echo "#include <stdio.h>" >"$t/include/koc/$h.h"
done
# The umbrella header includes and names every one.
{
        echo "/* koc/koc.h: ${hs[*]/%/.h} */"
        for h in "${hs[@]}"; do echo "#include <koc/$h.h>"; done
} >"$t/include/koc/koc.h"
echo '#include "koc/common.h"' >"$t/include/koc/client.h"
echo '#include "koc/client.h"' >"$t/include/koc/leader.h"
printf '#include <koc/client.h>\n#include <koc/manager.h>\n' >"$t/include/koc/controller.h"
printf '#include <koc/leader.h>\n#include <koc/probes.h>\n' >"$t/include/koc/manager.h"
touch "$t/core/util.h" "$t/leader/fsm.h" "$t/probes/glue.h" "$t/shutdown/drain.h" \
        "$t/framework/manager/manager-internal.h" "$t/framework/controller/workqueue.h" \
        "$t/framework/cache/store.h" "$t/apiserver/apiserver.h"
# Allowed: own folder (both spellings), core, the public headers of the layer
# and below, a relative path, system headers.
cat >"$t/core/client.c" <<'EOF'
#include <errno.h>
#include "util.h"
#include "core/util.h"
#include <koc/client.h>
#include "koc/log.h"
EOF
printf '#include "fsm.h"\n#include "../core/util.h"\n#include "koc/leader.h"\n' >"$t/leader/leader.c"
printf '#include "glue.h"\n#include "koc/probes.h"\n' >"$t/probes/probes.c"
printf '#include "shutdown/drain.h"\n#include <koc/shutdown.h>\n' >"$t/shutdown/shutdown.c"
printf '#include "store.h"\n#include "core/util.h"\n#include "koc/object.h"\n' >"$t/framework/cache/informer.c"
cat >"$t/framework/controller/controller.c" <<'EOF'
#include "workqueue.h"
#include "framework/cache/store.h"
#include "koc/controller.h"
#include "koc/manager.h"
#include "koc/leader.h"
EOF
cat >"$t/framework/manager/manager.c" <<'EOF'
#include "manager-internal.h"
#include "framework/controller/workqueue.h"
#include "probes/glue.h"
#include <koc/koc.h>
EOF

out=$tmp/out
if bash "$layers" "$t" >"$out" 2>&1; then
        ok "a tree that includes only downwards passes"
else
        cat "$out"
        bad "a tree that includes only downwards fails"
fi

# One violation of each kind.
echo '#include "leader/fsm.h"' >>"$t/core/client.c"                                   # line 6
echo '#include <koc/manager.h>' >>"$t/core/client.c"                                  # line 7
echo '#include "koc/koc.h"' >>"$t/core/client.c"                                      # line 8
echo '#  include "../framework/cache/store.h"' >>"$t/core/client.c"                  # line 9
echo '#include "probes/glue.h"' >>"$t/leader/leader.c"                                # line 4
echo '#include "koc/shutdown.h"' >>"$t/probes/probes.c"                               # line 3
echo '#include "framework/controller/workqueue.h"' >>"$t/shutdown/shutdown.c"         # line 3
echo '#include "koc/leader.h"' >>"$t/framework/cache/informer.c"                      # line 4
echo '#include "koc/controller.h"' >>"$t/framework/cache/informer.c"                  # line 5
echo '#include "framework/manager/manager-internal.h"' >>"$t/framework/controller/controller.c" # line 6
echo '#include "apiserver/apiserver.h"' >>"$t/framework/manager/manager.c"            # line 5
echo '#include <koc/leader.h>' >>"$t/include/koc/client.h"                            # line 2
echo '#include <stdio.h>' >"$t/include/koc/newthing.h"
sed -i 's/ leader\.h / /' "$t/include/koc/koc.h"                                    # named no more
expected=(
        'core/client.c:6: includes "leader/fsm.h"'
        'core/client.c:7: includes "koc/manager.h"'
        'core/client.c:8: includes "koc/koc.h"'
        'core/client.c:9: includes "../framework/cache/store.h"'
        'leader/leader.c:4: includes "probes/glue.h"'
        'probes/probes.c:3: includes "koc/shutdown.h"'
        'shutdown/shutdown.c:3: includes "framework/controller/workqueue.h"'
        'framework/cache/informer.c:4: includes "koc/leader.h"'
        'framework/cache/informer.c:5: includes "koc/controller.h"'
        'framework/controller/controller.c:6: includes "framework/manager/manager-internal.h"'
        'framework/manager/manager.c:5: includes "apiserver/apiserver.h"'
        'include/koc/client.h:2: includes "koc/leader.h"'
        'include/koc/newthing.h: a public header without a layer'
        'include/koc/koc.h does not include koc/newthing.h'
        'include/koc/koc.h does not name newthing.h in its opening comment'
        'include/koc/koc.h does not name leader.h in its opening comment'
)
if bash "$layers" "$t" >"$out" 2>&1; then
        cat "$out"
        bad "a tree with forbidden includes passes"
else
        ok "a tree with forbidden includes fails"
fi
for e in "${expected[@]}"; do
        grep -qF "layers: $e" "$out" && ok "names $e" || { cat "$out"; bad "does not name $e"; }
done
n=$(grep -c '^layers: .*\(may not include\|without a layer\|does not\)' "$out" || true)
[[ $n -eq ${#expected[@]} ]] && ok "nothing else is reported ($n)" || { cat "$out"; bad "$n reports, expected ${#expected[@]}"; }

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]

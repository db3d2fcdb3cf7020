# SPDX-License-Identifier: Apache-2.0
#
# oci_archive OUT TAG LAYER_TAR USER ENTRYPOINT_JSON [ENV_JSON]
#   Writes a single-layer image as a docker archive (the `docker save` layout,
#   which `ctr images import` and `docker load` read): manifest.json, the
#   config named by its digest, the layer.  Sourced by scripts/image.sh and
#   tests/k8s/node.sh.  Byte-for-byte reproducible for the same layer.
oci_archive() {
        local out=$1 tag=$2 layer=$3 user=$4 entrypoint=$5
        local env=${6:-'["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]'}
        local tmp layer_sha config_sha
        tmp=$(mktemp -d)
        layer_sha=$(sha256sum "$layer" | cut -d' ' -f1)
        mkdir -p "$tmp/$layer_sha"
        cp "$layer" "$tmp/$layer_sha/layer.tar"
        jq -cn --arg user "$user" --argjson ep "$entrypoint" --argjson env "$env" \
                --arg diff "sha256:$layer_sha" '{
                        architecture: "amd64", os: "linux", created: "1970-01-01T00:00:00Z",
                        config: {User: $user, Entrypoint: $ep, Env: $env, WorkingDir: "/"},
                        rootfs: {type: "layers", diff_ids: [$diff]},
                        history: [{created: "1970-01-01T00:00:00Z", created_by: "koc image.sh"}]
                }' >"$tmp/config.json"
        config_sha=$(sha256sum "$tmp/config.json" | cut -d' ' -f1)
        mv "$tmp/config.json" "$tmp/$config_sha.json"
        jq -cn --arg c "$config_sha.json" --arg t "$tag" --arg l "$layer_sha/layer.tar" \
                '[{Config: $c, RepoTags: [$t], Layers: [$l]}]' >"$tmp/manifest.json"
        tar -C "$tmp" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
                -cf "$out.tmp" manifest.json "$config_sha.json" "$layer_sha"
        mv "$out.tmp" "$out"
        rm -rf "$tmp"
}

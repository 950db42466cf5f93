#!/usr/bin/env bash
# Builds Pylon's OCI images without a container daemon: an OCI image layout per component
# (https://github.com/opencontainers/image-spec/blob/main/image-layout.md), assembled here from
# the static release binaries with tar, gzip, sha256sum and jq.
#
#   scripts/images.sh [OUT_DIR]                  build both images from the release binaries
#                                                (scripts/build.sh release), into OUT_DIR
#                                                (default target/images)
#   IMAGE_BIN_DIR=DIR scripts/images.sh OUT      take the binaries from DIR instead of building
#   IMAGE_COMPONENTS="dataplane" ...             only these components (default: controller dataplane)
#
# Each image is one layer: the binary at /usr/local/bin/pylon-<component>, the CA certificates
# (/etc/ssl/certs/ca-certificates.crt, from the build host's Debian ca-certificates), and
# /etc/passwd and /etc/group naming the non-root user `pylon` (65532:65532) the image runs as.
# Nothing else: no shell, no libc (the binaries are static-pie). Labels and annotations
# org.opencontainers.image.{source,revision,version,created}; the reference name is the version
# (the chart's appVersion), so `skopeo copy oci:target/images/pylon-dataplane:0.1.0
# docker://ghcr.io/pylon-dev/pylon-dataplane:0.1.0` pushes what the chart pulls.
#
# Reproducible: file times are the commit's time (SOURCE_DATE_EPOCH, default `git log -1
# --format=%ct`), owners 0:0, entries sorted, gzip without a name or time, JSON written in a
# fixed key order; the same commit and binaries give the same digests (scripts/images-check.sh
# builds twice and compares). linux/amd64 is built where the host is x86_64; arm64 needs the
# aarch64-unknown-linux-gnu Rust target and a cross linker (not on this machine): build the
# binaries with `cargo build --release --target aarch64-unknown-linux-gnu` and run this script
# with IMAGE_BIN_DIR and IMAGE_ARCH=arm64.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$repo/target/images}
components=${IMAGE_COMPONENTS:-controller dataplane}
fail() { echo "images.sh: $*" >&2; exit 1; }
for tool in tar gzip sha256sum jq; do
  command -v "$tool" >/dev/null || fail "$tool is needed"
done

case ${IMAGE_ARCH:-$(uname -m)} in
x86_64 | amd64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
*) fail "unsupported architecture ${IMAGE_ARCH:-$(uname -m)}" ;;
esac

if [ -n "${IMAGE_BIN_DIR:-}" ]; then
  bin_dir=$IMAGE_BIN_DIR
else
  # One package per build: built together, their shared dependencies' features would unify and
  # the data plane would not be the binary release-check tested.
  for c in $components; do
    bin_dir=$(bash "$repo/scripts/build.sh" release -p "pylon-$c" | tail -n 1)
  done
fi

epoch=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
revision=$(git -C "$repo" rev-parse HEAD)
version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$repo/charts/pylon/Chart.yaml")
source_url=https://github.com/pylon-dev/pylon
certs=/etc/ssl/certs/ca-certificates.crt
[ -f "$certs" ] || fail "$certs is missing (Debian: apt-get install ca-certificates)"
[ -n "$version" ] || fail "no appVersion in charts/pylon/Chart.yaml"

# Writes `file` into the layout's blobs and prints "<digest> <size>".
blob() {
  local file=$1 layout=$2 sum
  sum=$(sha256sum "$file" | cut -d' ' -f1)
  cp "$file" "$layout/blobs/sha256/$sum"
  echo "sha256:$sum $(stat -c %s "$file")"
}

build() {
  local component=$1 name=pylon-$1 bin=$bin_dir/pylon-$1
  [ -x "$bin" ] || fail "$bin is missing"
  file -b "$bin" 2>/dev/null | grep -q 'dynamically linked' &&
    fail "$bin is dynamically linked: the image has no libc (build with scripts/build.sh release)"
  local work layout=$out/$name
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  rm -rf "$layout"
  mkdir -p "$layout/blobs/sha256" "$work/root/usr/local/bin" "$work/root/etc/ssl/certs"

  install -m 0755 "$bin" "$work/root/usr/local/bin/$name"
  install -m 0644 "$certs" "$work/root/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\npylon:x:65532:65532:pylon:/nonexistent:/sbin/nologin\n' \
    >"$work/root/etc/passwd"
  printf 'root:x:0:\npylon:x:65532:\n' >"$work/root/etc/group"
  chmod 0644 "$work/root/etc/passwd" "$work/root/etc/group"
  find "$work/root" -type d -exec chmod 0755 {} +

  # The layer: entries sorted, times the commit's, owners root, no PAX times that vary.
  (cd "$work/root" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort) >"$work/entries"
  tar --create --file="$work/layer.tar" --directory="$work/root" --no-recursion \
    --files-from="$work/entries" --format=posix --numeric-owner --owner=0 --group=0 \
    --mtime="@$epoch" --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime
  local diff_id layer layer_size
  diff_id=sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  gzip -n -9 <"$work/layer.tar" >"$work/layer.tar.gz"
  read -r layer layer_size < <(blob "$work/layer.tar.gz" "$layout")

  local labels
  labels=$(jq -n --arg src "$source_url" --arg rev "$revision" --arg ver "$version" \
    --arg created "$created" --arg title "$name" '{
      "org.opencontainers.image.created": $created,
      "org.opencontainers.image.licenses": "Apache-2.0",
      "org.opencontainers.image.revision": $rev,
      "org.opencontainers.image.source": $src,
      "org.opencontainers.image.title": $title,
      "org.opencontainers.image.version": $ver
    }')
  jq -cn --arg arch "$arch" --arg created "$created" --arg entry "/usr/local/bin/$name" \
    --arg diff "$diff_id" --argjson labels "$labels" '{
      "architecture": $arch,
      "os": "linux",
      "created": $created,
      "config": {
        "User": "65532:65532",
        "Entrypoint": [$entry],
        "Env": ["PATH=/usr/local/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
        "WorkingDir": "/",
        "Labels": $labels
      },
      "rootfs": {"type": "layers", "diff_ids": [$diff]},
      "history": [{"created": $created, "created_by": "scripts/images.sh"}]
    }' | tr -d '\n' >"$work/config.json"
  local config config_size
  read -r config config_size < <(blob "$work/config.json" "$layout")

  jq -cn --arg config "$config" --argjson config_size "$config_size" --arg layer "$layer" \
    --argjson layer_size "$layer_size" --argjson labels "$labels" '{
      "schemaVersion": 2,
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                 "digest": $config, "size": $config_size},
      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                  "digest": $layer, "size": $layer_size}],
      "annotations": $labels
    }' | tr -d '\n' >"$work/manifest.json"
  local manifest manifest_size
  read -r manifest manifest_size < <(blob "$work/manifest.json" "$layout")

  jq -cn --arg m "$manifest" --argjson size "$manifest_size" --arg arch "$arch" \
    --arg ver "$version" '{
      "schemaVersion": 2,
      "mediaType": "application/vnd.oci.image.index.v1+json",
      "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                     "digest": $m, "size": $size,
                     "platform": {"architecture": $arch, "os": "linux"},
                     "annotations": {"org.opencontainers.image.ref.name": $ver}}]
    }' | tr -d '\n' >"$layout/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  echo "$name $manifest $layout"
}

mkdir -p "$out"
for c in $components; do build "$c"; done

#!/usr/bin/env bash
# Checks Pylon's OCI images (scripts/images.sh) as a user's runtime would read them:
# - reproducible: built twice, a second apart and from a copy of the binaries with other file
#   times, the layouts are byte for byte the same (same digests);
# - valid: umoci (Debian's, an independent implementation of the image spec) unpacks each
#   layout by its reference name, checking every blob's digest on the way;
# - what the image says: user 65532:65532, entrypoint the binary, the files listed in
#   images.sh and nothing else;
# - self-contained: the binary runs inside the unpacked root filesystem alone (chroot, as user
#   65532), so it needs no libc, no shell, nothing the image lacks.
# Uses the release binaries scripts/build.sh release builds (release-check builds the data
# plane's; this builds the controller's if it is missing).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fail() { echo "images-check: FAIL: $*" >&2; exit 1; }
ok() { echo "images-check: ok: $*"; }
command -v umoci >/dev/null || fail "umoci is missing (make deps installs it)"

if [ -n "${IMAGE_BIN_DIR:-}" ]; then
  bin_dir=$IMAGE_BIN_DIR
else
  # One package per build, as images.sh does (features would unify across the two).
  bash "$repo/scripts/build.sh" release -p pylon-dataplane >/dev/null
  bin_dir=$(bash "$repo/scripts/build.sh" release -p pylon-controller | tail -n 1)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

IMAGE_BIN_DIR=$bin_dir bash "$repo/scripts/images.sh" "$work/a" >"$work/a.txt"
sleep 1
mkdir "$work/bin"
cp "$bin_dir/pylon-controller" "$bin_dir/pylon-dataplane" "$work/bin/"
touch -d '2001-02-03 04:05:06' "$work/bin/"*
IMAGE_BIN_DIR=$work/bin bash "$repo/scripts/images.sh" "$work/b" >"$work/b.txt"
diff -r "$work/a" "$work/b" >/dev/null || fail "two builds of the same commit differ: $(diff "$work/a.txt" "$work/b.txt")"
ok "reproducible: $(awk '{printf "%s %s; ", $1, $2}' "$work/a.txt")"

version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$repo/charts/pylon/Chart.yaml")
for name in pylon-controller pylon-dataplane; do
  bundle=$work/bundle-$name
  umoci unpack --image "$work/a/$name:$version" "$bundle" >/dev/null 2>"$work/umoci.err" ||
    fail "umoci cannot unpack $name:$version: $(cat "$work/umoci.err")"
  user=$(jq -c '.process.user' "$bundle/config.json")
  [ "$user" = '{"uid":65532,"gid":65532}' ] || fail "$name runs as $user, not 65532:65532"
  args=$(jq -c '.process.args' "$bundle/config.json")
  [ "$args" = "[\"/usr/local/bin/$name\"]" ] || fail "$name's entrypoint is $args"
  files=$(cd "$bundle/rootfs" && find . -type f | LC_ALL=C sort | tr '\n' ' ')
  want="./etc/group ./etc/passwd ./etc/ssl/certs/ca-certificates.crt ./usr/local/bin/$name "
  [ "$files" = "$want" ] || fail "$name holds [$files], not [$want]"
  # Inside the image's root filesystem alone, as its user: --version answers.
  chroot --userspec=65532:65532 "$bundle/rootfs" "/usr/local/bin/$name" --version >"$work/version" 2>&1 ||
    fail "$name does not run inside its own root filesystem: $(cat "$work/version")"
  blobs=$work/a/$name/blobs/sha256
  manifest=$(jq -r '.manifests[0].digest' "$work/a/$name/index.json")
  config=$(jq -r '.config.digest' "$blobs/${manifest#sha256:}")
  labels=$(jq -r '.config.Labels | keys | join(",")' "$blobs/${config#sha256:}")
  for l in source revision version created; do
    [[ ,$labels, == *",org.opencontainers.image.$l,"* ]] || fail "$name lacks label org.opencontainers.image.$l"
  done
  ok "$name: user 65532, entrypoint /usr/local/bin/$name, 4 files, runs alone ($(head -c 60 "$work/version" | tr -d '\n')), labels $labels"
done

#!/usr/bin/env bash
# Builds Pylon's binaries for a profile and says where they are.
#
#   scripts/build.sh PROFILE [cargo build arguments]   build (debug or release), then print the
#                                                      directory holding the binaries as the last line
#   scripts/build.sh --dir PROFILE                     only print that directory
#
# Release binaries are the ones that ship. On a glibc host they are built for the smallest
# footprint per data plane, with no change in CPU per request:
# - linked statically (static-pie): no shared libc, libm, libgcc_s or ld.so is mapped, about
#   1 MB of RSS. glibc 2.34 and later has its files and dns name services built in, so a static
#   data plane still resolves the controller's Service name;
# - relative relocations packed (RELR): start-up reads ~7 kB of them instead of ~600 kB;
# - the data plane's hot code first in .text (scripts/link-hot-first.sh, dataplane/hot-code.txt),
#   matched by v0 symbol names, which tell generic instances apart.
# Cargo applies these flags only with an explicit --target, since proc-macro crates cannot be
# linked statically, so release binaries land in target/<host triple>/release. Debug builds stay
# in target/debug and share the test build. CARGO_TARGET_DIR, if set, replaces target/ (cargo's own
# rule: a relative one is taken from the repository, where cargo runs).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARGO=${CARGO:-cargo}
target=${CARGO_TARGET_DIR:-target}
[[ $target = /* ]] || target=$repo/$target

fail() { echo "build.sh: $*" >&2; exit 1; }

only_dir=0
if [ "${1:-}" = --dir ]; then only_dir=1; shift; fi
profile=${1:-}
[ $# -gt 0 ] && shift
host=$(rustc -vV | sed -n 's/^host: //p')
[ -n "$host" ] || fail "rustc -vV names no host triple"

args=()
case $profile in
debug) dir=$target/debug ;;
release)
  case $host in
  *-linux-gnu*)
    dir=$target/$host/release
    args=(--release --target "$host")
    # With --target, RUSTFLAGS reach only the target's crates, not build scripts or proc macros.
    export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C symbol-mangling-version=v0 -C link-arg=-Wl,-z,pack-relative-relocs"
    # Cargo reads CARGO_TARGET_<TRIPLE>_LINKER with the triple upper-cased and '-' as '_'.
    triple_var=$(echo "$host" | tr 'a-z-' 'A-Z_')
    export "CARGO_TARGET_${triple_var}_LINKER=$repo/scripts/link-hot-first.sh"
    ;;
  *) dir=$target/release args=(--release) ;; # musl is static already; others as they come
  esac
  ;;
*) fail "usage: build.sh [--dir] debug|release [cargo build arguments]" ;;
esac

if [ "$only_dir" = 0 ]; then
  (cd "$repo" && $CARGO build "${args[@]}" "$@") >&2 || fail "cargo build ${args[*]} $* failed"
fi
echo "$dir"

#!/usr/bin/env bash
# The linker of release builds (scripts/build.sh sets it). It runs cc exactly as rustc asks, and
# for the data plane adds an lld --symbol-ordering-file that puts the functions listed in
# dataplane/hot-code.txt at the start of .text.
#
# Why: the kernel maps an executable's code in 64 kB windows around each page first used
# (fault-around), and every mapped page counts in the process's RSS. The ~1 MB of functions an idle
# data plane has run (start-up, config loading, serving HTTP/1.1) are otherwise spread over its
# 7 MB of .text, so nearly every window is touched and ~4 MB of code stays mapped; placed first,
# they map about their own size. bench/README.md has the figures.
#
# hot-code.txt names symbols without their build-specific parts (crate disambiguators, legacy
# hashes, LLVM's .llvm.N suffixes), so it survives rebuilds and dependency updates; here the
# names are matched against the symbols of the objects being linked. Names that are not Rust
# symbols (glibc's, linked from libc.a) are passed through as they are. scripts/hot-code.sh
# regenerates the list; a stale entry only costs a page or two of RSS, never a failed link.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
hot=${PYLON_HOT_CODE:-$here/../dataplane/hot-code.txt}

# One pass over the arguments: the output, whether lld links, the objects to read symbols from.
out="" prev="" uses_lld=0 objects=()
for a in "$@"; do
  [ "$prev" = -o ] && out=$a
  [ "$a" = -fuse-ld=lld ] && uses_lld=1
  case $a in *.o | *.rlib) [ -f "$a" ] && objects+=("$a") ;; esac
  prev=$a
done
# Only lld reads a symbol ordering file (rustc links x86_64-unknown-linux-gnu with it).
case ${out##*/} in
pylon_dataplane-*) [ -r "$hot" ] && [ "$uses_lld" = 1 ] || exec cc "$@" ;;
*) exec cc "$@" ;;
esac

order=$(mktemp)
trap 'rm -f "$order"' EXIT
# Output: "<rank in hot-code.txt> <symbol>", sorted by rank, so the file's order is the layout.
nm --defined-only "${objects[@]}" 2>/dev/null | awk '$2 ~ /^[tTwW]$/ {print $3}' |
  awk -v hot="$hot" -f "$here/symbol-key.awk" -f <(cat <<'AWK'
  BEGIN {
    while ((getline line < hot) > 0) {
      if (line ~ /^#/ || line == "") continue
      n++
      if (line ~ /^_(R|ZN)/) { if (!(line in rank)) rank[line] = n }
      else print n, line # a C symbol: its name is its key
    }
  }
  { k = key($1); if (k in rank) print rank[k], $1 }
AWK
) | sort -n -s -k1,1 | cut -d" " -f2 >"$order"

cc "$@" -Wl,--symbol-ordering-file="$order" -Wl,--no-warn-symbol-ordering

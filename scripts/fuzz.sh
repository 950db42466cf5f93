#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ (cargo-fuzz, nightly) and runs each for a short fixed time
# from its committed seed corpus: a crash fails the run and names the input that caused it.
# The short run is part of `make test`; README.md ("Fuzzing") says how to run longer.
#
#   FUZZ_SECONDS  time per target (default 10)
#   FUZZ_TARGETS  which targets (default: all of fuzz/Cargo.toml's)
#   FUZZ_BUILD_ONLY=1  build them and stop (make test builds them beside the cluster suites)
#
# Built without a sanitizer: the codec and the config decoder are safe Rust (the crate denies
# `unsafe_code` outside its allocator and socket code, which no target reaches), so what the
# fuzzer looks for is a panic, which needs none.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export PYLON_CACHE=${PYLON_CACHE:-$HOME/.cache/pylon}
CARGO_FUZZ_VERSION=0.13.1
root="$PYLON_CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION"
seconds=${FUZZ_SECONDS:-10}
start=$SECONDS

command -v rustup >/dev/null && rustup toolchain list | grep -q '^nightly' ||
  { echo "fuzz: the nightly toolchain is required (rustup toolchain install nightly)" >&2; exit 1; }
if [ ! -x "$root/bin/cargo-fuzz" ]; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into $root (once per version)"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$root" --quiet
fi
export PATH="$root/bin:$PATH"

mkdir -p "$repo/target"
cd "$repo/fuzz"
targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}
# A target directory of its own, outside the repository like the Go tool caches: its nightly
# artifacts do not mix with stable's (another toolchain and flags), and the dependencies built
# once (3m41s cold on 2 cores) serve every later clone; cargo rebuilds what changed.
fuzz=(cargo +nightly fuzz)
opts=(--sanitizer none --target-dir "${FUZZ_TARGET_DIR:-$PYLON_CACHE/fuzz-target}")
"${fuzz[@]}" build "${opts[@]}" >/dev/null 2>"$repo/target/fuzz-build.log" ||
  { cat "$repo/target/fuzz-build.log" >&2; exit 1; }
echo "fuzz: built in $((SECONDS - start))s"
[ "${FUZZ_BUILD_ONLY:-0}" = 1 ] && exit 0

failed=()
for t in $targets; do
  # Runs from a scratch copy of the corpus: what the fuzzer finds in a short run is not
  # committed by accident (fuzz/corpus holds the seeds only).
  work="$repo/target/fuzz-corpus/$t"
  rm -rf "$work" && mkdir -p "$work" "$repo/fuzz/artifacts/$t"
  cp -r "$repo/fuzz/corpus/$t/." "$work/"
  t0=$SECONDS
  if "${fuzz[@]}" run "${opts[@]}" "$t" "$work" -- -max_total_time="$seconds" \
    >"$repo/target/fuzz-$t.log" 2>&1; then
    echo "fuzz: $t: no crash in ${seconds}s ($(grep -oE 'Done [0-9]+ runs' "$repo/target/fuzz-$t.log" | tail -1 | cut -d' ' -f2) runs)"
  else
    failed+=("$t")
    echo "fuzz: $t: CRASH after $((SECONDS - t0))s; log: target/fuzz-$t.log" >&2
    grep -E 'panicked at|^thread|Test unit written to' "$repo/target/fuzz-$t.log" | head -5 >&2 || true
  fi
done
echo "fuzz: done in $((SECONDS - start))s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]}; the inputs are in fuzz/artifacts/<target>/ (README.md, \"Fuzzing\", says how to reproduce and minimise them)" >&2
  exit 1
fi

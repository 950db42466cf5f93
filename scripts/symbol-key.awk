# key(name): a symbol's name without its build-specific parts, the form dataplane/hot-code.txt
# lists them in (scripts/link-hot-first.sh): LLVM's ".llvm.N" suffix (thin LTO), the legacy
# mangling's hash, and v0 mangling's crate disambiguators. Shared by link-hot-first.sh,
# hot-code.sh and release-check.sh, so that all three match names the same way.
function key(s) {
  sub(/\.llvm\.[0-9]+$/, "", s)
  sub(/17h[0-9a-f]+E$/, "E", s)
  gsub(/Cs[0-9A-Za-z]+_/, "Cs_", s)
  return s
}

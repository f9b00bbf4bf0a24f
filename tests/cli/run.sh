#!/usr/bin/env bash
# CLI tests: exit codes, where help and errors go, and what the messages name. Each case runs
# the binary and compares; the first mismatch is printed with the command that caused it.
set -u
bin=$1
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect CODE STREAM PATTERN -- ARGS...: exit code, then a regex that STREAM (out|err) must match.
expect() {
  local code=$1 stream=$2 pattern=$3
  shift 4
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [ "$got" -ne "$code" ] || ! grep -Eq -- "$pattern" "$tmp/$stream"; then
    echo "FAIL: brigade $* -> exit $got (want $code), $stream should match /$pattern/"
    sed 's/^/  out: /' "$tmp/out" | head -5
    sed 's/^/  err: /' "$tmp/err" | head -5
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
}

expect 0 out '^usage: brigade' -- --help
expect 0 out '^usage: brigade' -- -h
expect 0 out '^brigade [0-9]+\.[0-9]+\.[0-9]+ \(openmp=' -- --version
expect 2 err '^usage: brigade' --
expect 2 err "unknown command 'frobnicate'" -- frobnicate
expect 2 err "unknown option '--frob'" -- --frob
expect 0 out '^usage: brigade info' -- help info
expect 0 out '^usage: brigade bench' -- help bench
expect 0 out '^usage: brigade bench' -- bench --help
expect 2 err "unknown command 'nope'" -- help nope
expect 0 out 'Number of logical cores: [0-9]+' -- info
expect 0 out 'Number of physical cores: [0-9]+' -- info
expect 0 out 'threads +usable' -- info
expect 0 out '"physical_total":[0-9]+' -- info --json
expect 2 err "unknown option '--yaml'" -- info --yaml
expect 2 err "unknown suite 'gpu'" -- bench --suite gpu
expect 2 err "--workers '0': number too small" -- bench --workers 0
expect 2 err "--workers 'x': expected a non-negative whole number" -- bench --workers x
expect 2 err "--workers '-3'" -- bench --workers -3
expect 2 err "--repeat '99999999999999999999999': number too large" -- bench --repeat 99999999999999999999999
expect 2 err "option '--format' needs a value" -- bench --format
expect 2 err "unknown format 'xml'" -- bench --format xml
expect 2 err "unknown size 'huge'" -- bench --size huge
BG_THREADS=lots expect 2 err "BG_THREADS='lots'" -- bench
expect 0 out '^section,backend,schedule' -- bench --size quick --repeat 1 --format csv --workers 2
expect 0 out '"schema":1' -- bench --size quick --repeat 1 --format json --workers 2
expect 0 out 'threads/auto speedup' -- bench --size quick --repeat 1 --workers 2

# An affinity mask narrows what brigade uses (the lecture's os.cpu_count() would still say all).
if command -v taskset >/dev/null; then
  taskset -c 0 "$bin" info --json | grep -Eq '"logical_usable":1,"physical_usable":1,.*"default_workers":1' \
    && pass=$((pass + 1)) || { echo "FAIL: taskset -c 0 brigade info --json ignores the affinity mask"; fail=$((fail + 1)); }
fi

# The JSON must parse, when python3 is there to parse it.
if command -v python3 >/dev/null; then
  "$bin" info --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["cpu"]["default_workers"] >= 1' \
    && pass=$((pass + 1)) || { echo "FAIL: info --json does not parse"; fail=$((fail + 1)); }
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

# SPDX-License-Identifier: MIT
# What the CLI test scripts share; sourced after they set bin, tmp, pass and fail.

# expect CODE STREAM PATTERN -- ARGS...: exit code, then a regex that STREAM (out|err) must match.
# A script that sets the array `launch` (mpirun and its flags) runs brigade under it.
launch=()
expect() {
  local code=$1 stream=$2 pattern=$3
  shift 4
  "${launch[@]}" "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
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

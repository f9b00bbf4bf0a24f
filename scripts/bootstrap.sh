#!/usr/bin/env bash
# Installs the Debian packages brigade needs to build and test, and only those that are
# missing, so a second run is silent and instant. Root uses apt-get directly, others sudo; with
# neither, it prints the command to run and fails.
set -eu

packages=(
  build-essential cmake ninja-build pkg-config  # the build
  libhwloc-dev                                  # topology
  libcmocka-dev                                 # unit tests
  libopenblas-dev                               # the blas knn backend
  clang libomp-dev libclang-rt-dev              # OpenMP for clang, sanitizer runtimes (TSan leg)
  python3                                       # the CLI tests parse JSON output with it
  python3-numpy                                 # ... and check brigade knn against NumPy
  clang-format                                  # make format-check
  gnuplot-nox                                   # brigade bench --plot
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "bootstrap: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  run=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  run=(sudo)
else
  echo "bootstrap: these Debian packages are missing: ${missing[*]}" >&2
  echo "bootstrap: run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${run[@]}" apt-get update -qq >&2
"${run[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

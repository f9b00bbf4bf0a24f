#!/usr/bin/env bash
# Installs the Debian packages brigade needs to build and test, and only those that are
# missing, so a second run is silent and instant. Root uses apt-get directly, others sudo; with
# neither, it prints the command to run and fails.
#
# --peers also installs the Python frameworks `brigade bench --peers python` compares with:
# Debian's NumPy, joblib, psutil, PyTorch (CPU) and faiss, and mpire (not in Debian) from the
# Python package registry into .venv-peers, a virtual environment that sees Debian's packages.
# --slurm also installs Slurm and munge, for `make test-slurm` (a single-node Slurm on this
# machine runs `brigade map` as a job array).
set -eu
peers=0 slurm=0
for arg in "$@"; do
  case "$arg" in
  --peers) peers=1 ;;
  --slurm) slurm=1 ;;
  *)
    echo "usage: scripts/bootstrap.sh [--peers] [--slurm]" >&2
    exit 2
    ;;
  esac
done

packages=(
  build-essential cmake ninja-build pkg-config  # the build
  libhwloc-dev                                  # topology
  libudev-dev                                   # ... whose .pc names -ludev for static links
  libcmocka-dev                                 # unit tests
  libxxhash-dev                                 # the memo cache: keys and checksums
  libopenblas-dev                               # the blas knn backend
  clang libomp-dev libclang-rt-dev              # OpenMP for clang, sanitizer runtimes (TSan leg)
  python3                                       # the CLI tests parse JSON output with it
  python3-numpy                                 # ... and check brigade knn against NumPy
  python3-venv python3-dev python3-pytest       # the Python package (python/) and its tests
  python3-cffi python3-numba                    # ... which map cffi and numba functions
  clang-format                                  # make format-check
  gnuplot-nox                                   # brigade bench --plot
  openmpi-bin libopenmpi-dev                    # the mpi backend and its tests (mpirun)
)
if [ "$slurm" -eq 1 ]; then
  packages+=(slurm-wlm munge)
fi
if [ "$peers" -eq 1 ]; then
  packages+=(python3-venv python3-pip python3-joblib python3-psutil python3-torch python3-faiss)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# The peers' virtual environment: Debian's python3 with its packages, plus mpire.
peers_venv() {
  local root venv
  root=$(cd "$(dirname "$0")/.." && pwd)
  venv="$root/.venv-peers"
  if [ ! -x "$venv/bin/python" ]; then
    echo "bootstrap: creating $venv" >&2
    /usr/bin/python3 -m venv --system-site-packages "$venv"
  fi
  if ! "$venv/bin/python" -c 'import mpire' 2>/dev/null; then
    echo "bootstrap: installing mpire into $venv" >&2
    "$venv/bin/pip" install -q mpire >&2
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  [ "$peers" -eq 1 ] && peers_venv
  exit 0
fi

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
[ "$peers" -eq 1 ] && peers_venv
exit 0

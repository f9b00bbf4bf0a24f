#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds, here, what scripts/gpu-check.sh runs, for a GPU machine that has the NVIDIA driver but
# not brigade's build dependencies (hwloc, OpenBLAS, cmocka, Open MPI: a lent GPU machine has
# CUDA and no package registry). The CLI, the knn and GPU tests and the task plug-in go into one
# archive with every shared library they load except the C library's own, so they run there
# whatever that machine's distribution is (its C library must be as new as this one's). cuBLAS
# is not packed (600 MB): gpu-check.sh finds the GPU machine's own.
#
#   scripts/gpu-bundle.sh [ARCH]     # CUDA architecture, default 90 (H100, H200)
#   # then, on the GPU machine, from the repository root:
#   tar -xJf gpu-bundle.tar.xz -C /tmp && scripts/gpu-check.sh --prebuilt /tmp/gpu-bundle
#
# BG_GPU_BUNDLE_BUILD (default build-gpu) is the build folder.
set -eu

arch=${1:-90}
case $arch in
-h | --help)
  sed -n '3,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
  ;;
*[!0-9]* | '')
  echo "gpu-bundle: '$arch' is not a CUDA architecture (a number such as 90)" >&2
  exit 2
  ;;
esac
if [ ! -f CMakeLists.txt ] || [ ! -d src/gpu ]; then
  echo "gpu-bundle: run it from the repository root (scripts/gpu-bundle.sh)" >&2
  exit 2
fi
build=${BG_GPU_BUNDLE_BUILD:-build-gpu}
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DBRIGADE_WERROR=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$arch" >/dev/null
tests=(test_gpu_knn test_gpu_plan test_knn test_knn_stream test_knn_bf16 test_knn_bits)
cmake --build "$build" --target brigade_cli mytask "${tests[@]}"
if "$build/brigade" --version | grep -q 'cuda=off'; then
  echo "gpu-bundle: this build has no CUDA (nvcc or cuBLAS not found at configure): nothing to" \
    "check on a GPU" >&2
  exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
b="$stage/gpu-bundle"
mkdir -p "$b/bin" "$b/tests" "$b/lib"
cp "$build/brigade" "$b/bin/"
cp "$build/libmytask.so" "$b/lib/"
for t in "${tests[@]}"; do cp "$build/tests/$t" "$b/tests/"; done
# Every library the programs load, by the name they ask for, but the C library's, which must be
# the GPU machine's own (it matches its kernel and dynamic loader).
for f in "$b"/bin/* "$b"/tests/* "$b"/lib/libmytask.so; do
  ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }'
done | sort -u | while read -r name path; do
  case $name in
  libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | ld-linux*) ;;
  *) cp -L "$path" "$b/lib/$name" ;;
  esac
done
"$build/brigade" --version >"$b/VERSION"
tar -cJf gpu-bundle.tar.xz.tmp -C "$stage" gpu-bundle
mv gpu-bundle.tar.xz.tmp gpu-bundle.tar.xz
echo "gpu-bundle.tar.xz: $(du -h gpu-bundle.tar.xz | cut -f1), $(ls "$b/lib" | wc -l) libraries," \
  "built for sm_$arch: $(cat "$b/VERSION")"

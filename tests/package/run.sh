#!/usr/bin/env bash
# Installs the build into a temporary prefix and builds examples/consumer against it twice:
# with CMake's find_package(brigade) and with pkg-config, as another project would.
set -eu
build=$1 src=$2 cc=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$src/examples/consumer" -B "$tmp/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build "$tmp/b" >/dev/null
export LD_LIBRARY_PATH="$tmp/prefix/lib:$tmp/prefix/lib64:${LD_LIBRARY_PATH:-}"
"$tmp/b/squares" 1000 | grep -q '^sum of squares below 1000: 332833500$'
pc=$(find "$tmp/prefix" -name brigade.pc -printf '%h')
PKG_CONFIG_PATH="$pc" "$cc" -o "$tmp/squares_pc" "$src/examples/consumer/squares.c" \
  $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs brigade)
"$tmp/squares_pc" 10 | grep -q '^sum of squares below 10: 285$'
# The installed brigade runs the installed peer scripts, never the build's source tree.
[ -f "$tmp/prefix/share/brigade/peers/catalogue.py" ]
"$tmp/prefix/bin/brigade" bench --workload prime-fixed --n 10 --repeat 1 --peers python \
  --python /bin/echo | grep -qF "cannot read: '$tmp/prefix/bin/../share/brigade/peers/catalogue.py"
echo "2 passed, 0 failed"

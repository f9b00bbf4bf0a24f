#!/usr/bin/env bash
# Installs the build into a temporary prefix and builds programs against it as another project
# would: examples/consumer with CMake's find_package (brigade::brigade and
# brigade::brigade_static) and with pkg-config (brigade, brigade --static, brigade-static), and
# the README's first C example exactly as printed there.
set -eu
build=$1 src=$2 cc=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
ok() { passed=$((passed + 1)); }
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
prefix=$tmp/prefix
libdir=$(dirname "$(find "$prefix" -name 'libbrigade.so' | head -1)")
pc=$(find "$prefix" -name brigade.pc -printf '%h')
export PKG_CONFIG_PATH="$pc"

# 1. CMake: the shared target needs none of brigade's own dependencies; the static one links
# libbrigade.a, so the program does not need libbrigade.so at run time.
grep -Eq 'MPI|CUDA|OpenMP|OPENBLAS|HWLOC' "$libdir/cmake/brigade/brigadeTargets.cmake" || ok
cmake -S "$src/examples/consumer" -B "$tmp/b" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build "$tmp/b" >/dev/null
# CMake puts the library's folder in the build tree's rpath: no LD_LIBRARY_PATH needed.
"$tmp/b/squares" 1000 | grep -q '^sum of squares below 1000: 332833500$' && ok
"$tmp/b/squares_static" 1000 | grep -q '^sum of squares below 1000: 332833500$' && ok
! ldd "$tmp/b/squares_static" | grep -q libbrigade && ok

# 2. pkg-config, shared, with the rpath README shows for a prefix outside the loader's path.
"$cc" -o "$tmp/squares_pc" "$src/examples/consumer/squares.c" $(pkg-config --cflags --libs brigade) \
  -Wl,-rpath,"$(pkg-config --variable=libdir brigade)"
env -u LD_LIBRARY_PATH "$tmp/squares_pc" 10 | grep -q '^sum of squares below 10: 285$' && ok

# 3. pkg-config --static names every library a static link needs (hwloc's -ludev included).
"$cc" -o "$tmp/squares_pcs" "$src/examples/consumer/squares.c" \
  $(pkg-config --cflags --static --libs brigade) -Wl,-rpath,"$libdir"
"$tmp/squares_pcs" 10 | grep -q '^sum of squares below 10: 285$' && ok
"$cc" -o "$tmp/squares_a" "$src/examples/consumer/squares.c" $(pkg-config --cflags --libs brigade-static)
! ldd "$tmp/squares_a" | grep -q libbrigade && "$tmp/squares_a" 10 | grep -q ' 285$' && ok

# 3b. A static link of a program that searches (bg_knn pulls the GPU code in a CUDA build):
# a C compiler, no C++ runtime.
cat >"$tmp/knn.c" <<'C'
#include <stdio.h>
#include <brigade.h>
int main(void) {
  float db[6] = {1, 0, 0, 1, 1, 1}, q[2] = {0, 2};
  int64_t idx[1];
  bg_pool_t *pool;
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.db = db, d.nb_txt = 3, d.queries = q, d.nb_new = 1, d.dim = 2, d.k = 1, d.idx = idx;
  if (bg_pool_create(NULL, &pool) != 0 || bg_knn(pool, &d, NULL) != 0)
    return 1;
  bg_pool_destroy(pool);
  printf("best %lld\n", (long long)idx[0]);
  return 0;
}
C
"$cc" -std=c11 -o "$tmp/knn_a" "$tmp/knn.c" $(pkg-config --cflags --libs brigade-static)
[ "$("$tmp/knn_a")" = "best 1" ] && ok

# 4. README's first C example compiles as printed and prints what its comment says.
awk '/^```c$/ {inside = 1; next} /^```$/ && inside {exit} inside' "$src/README.md" >"$tmp/first.c"
grep -q 'bg_map_simple' "$tmp/first.c"
"$cc" -std=c11 -Wall -Wextra -Werror -o "$tmp/first" "$tmp/first.c" \
  $(pkg-config --cflags --libs brigade) -Wl,-rpath,"$libdir"
[ "$("$tmp/first")" = "0 998001" ] && ok

# 5. The installed brigade runs the installed peer scripts, never the build's source tree.
[ -f "$prefix/share/brigade/peers/catalogue.py" ]
"$prefix/bin/brigade" bench --workload prime-fixed --n 10 --repeat 1 --peers python \
  --python /bin/echo | grep -qF "cannot read: '$prefix/bin/../share/brigade/peers/catalogue.py" && ok
echo "$passed passed, 0 failed"
[ "$passed" -eq 10 ]

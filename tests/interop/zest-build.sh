#!/usr/bin/env bash
# tests/interop/zest-build.sh — build the real zest, fs-zest's counterpart
# (issue 21), from its sources next to the repository (<repo>/../shared/peers/zest,
# or $ZESTFS_ZEST_SRC) into <repo>/build-zest-peer (or $ZESTFS_ZEST_BUILD),
# niced, once (again only when the source tarball is newer than the binary).
# Its build.sh installs ziglang from PyPI into a venv there, so this runs from
# tests/interop/setup.sh, before the tests (they run without the network).
# No sources: says so and exits 0 (fs-zest then skips, naming the reason).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
src=${ZESTFS_ZEST_SRC:-$root/../shared/peers/zest}
out=${ZESTFS_ZEST_BUILD:-$root/build-zest-peer}
tarball=$(ls "$src"/zest-*-src.tar.gz 2>/dev/null | head -n 1 || true)
if [ ! -f "$src/build.sh" ] || [ -z "$tarball" ]; then
    echo "zest-build: zest sources not found ($src): fs-zest will skip"
    exit 0
fi
exe=$out/src/zig-out/bin/zest
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ -x "$exe" ] && [ "$exe" -nt "$tarball" ]; then
    echo "zest-build: $exe up to date"
    exit 0
fi
echo "zest-build: building zest from $src into $out (about a minute)"
nice -n 10 bash "$src/build.sh" "$out"

#!/usr/bin/env bash
# tests/interop/zest-build.sh — build the real zest, fs-zest's counterpart
# (issue 21), from its sources next to the repository (<repo>/../shared/peers/zest,
# or $ZESTFS_ZEST_SRC) into <repo>/build-zest-peer (or $ZESTFS_ZEST_BUILD),
# niced, once (again only when the source tarball is newer than the binary).
# Its build.sh installs ziglang from PyPI into a venv there, so this runs from
# tests/interop/setup.sh, before the tests (they run without the network).
# A second build, <repo>/build-zest-hub ($ZESTFS_ZEST_HUB_BUILD), is zest with
# two edits so that `zest pull` runs against zestfs-origin on loopback: its
# hard-coded https://huggingface.co becomes http://127.0.0.1:PORT
# ($ZESTFS_ZEST_HUB_PORT, default 29421; written to hub-port there), and its
# CAS path /reconstructions/ becomes /v1/reconstructions/ (the Xet API's).
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
else
    echo "zest-build: building zest from $src into $out (about a minute)"
    nice -n 10 bash "$src/build.sh" "$out"
fi

hub=${ZESTFS_ZEST_HUB_BUILD:-$root/build-zest-hub}
port=${ZESTFS_ZEST_HUB_PORT:-29421}
hexe=$hub/src/zig-out/bin/zest
if [ -x "$hexe" ] && [ "$hexe" -nt "$exe" ] && [ "$(cat "$hub/hub-port" 2>/dev/null)" = "$port" ]; then
    echo "zest-build: $hexe up to date"
    exit 0
fi
echo "zest-build: building zest with its Hub at http://127.0.0.1:$port into $hub"
rm -rf "$hub"
mkdir -p "$hub"
cp -r "$out/zig-xet" "$out/zig-lz4" "$hub/"
(cd "$out" && tar --exclude=./src/zig-out --exclude=./src/.zig-cache -cf - ./src) | tar -xf - -C "$hub"
grep -rl 'https://huggingface.co' "$hub/src/src" "$hub/zig-xet/src" |
    xargs sed -i "s#https://huggingface.co#http://127.0.0.1:$port#g"
sed -i 's#"{s}/reconstructions/{s}"#"{s}/v1/reconstructions/{s}"#' "$hub/zig-xet/src/cas_client.zig"
(cd "$hub/src" && nice -n 10 "$out/venv/bin/python" -m ziglang build -Doptimize=ReleaseSafe)
echo "$port" > "$hub/hub-port"

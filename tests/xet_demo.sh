#!/usr/bin/env bash
# The Xet tools and the origin on a small local example (README): installs
# the build dependencies (Debian 12), builds ./build, runs the `zestfs xet`
# tools on a few MB of fp16-like data, then the whole origin flow
# (origin/demo.sh): an example model is ingested into zestfs-origin, served on
# loopback and read back over the Hub API and Xet.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=tests/lib-deps.sh
. tests/lib-deps.sh
build=${ZESTFS_BUILD_DIR:-build}
if [ "${ZESTFS_DEMO_NO_INSTALL:-0}" != 1 ]; then  # the test: no apt-get, no build
    zestfs_install_deps build
    if [ -f "$build/meson-private/coredata.dat" ]; then
        meson setup --reconfigure "$build" >/dev/null
    else
        meson setup "$build" >/dev/null
    fi
    ninja -C "$build" >/dev/null
fi
zestfs=$build/fs/zestfs
ex_dir=${ZESTFS_DEMO_DIR:-example}

mkdir -p "$ex_dir"
ex=$ex_dir/model.bin
if [ ! -s "$ex" ]; then
    # 3 MiB of normal(0, 0.02) values as IEEE half floats, like a weight tensor.
    python3 - "$ex" <<'PY'
import random, struct, sys
random.seed(42)
n = 3 * 1024 * 1024 // 2
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack(f"<{n}e", *(random.gauss(0.0, 0.02) for _ in range(n))))
PY
fi

run() { echo "\$ $*"; "$@"; echo; }
echo "example file: $ex ($(stat -c %s "$ex") bytes)"
echo
run "$zestfs" xet hash "$ex"
echo "\$ $zestfs xet chunks $ex | tail -n 6"
"$zestfs" xet chunks "$ex" | tail -n 6
echo
run "$zestfs" xet xorb-encode --scheme auto "$ex" "$ex_dir/model.xorb"
echo "\$ $zestfs xet xorb-decode $ex_dir/model.xorb $ex_dir/model.decoded | sed -n '1,3p;\$p'"
"$zestfs" xet xorb-decode "$ex_dir/model.xorb" "$ex_dir/model.decoded" | sed -n '1,3p;$p'
echo
ls -l "$ex" "$ex_dir/model.xorb"
run cmp "$ex" "$ex_dir/model.decoded"
echo "round trip OK: the decoded file is identical to $ex"

echo
echo "== zestfs-origin: a local Hub + CAS + CDN serving an example model"
bash origin/demo.sh "$build"

#!/usr/bin/env bash
# The test command (README): on Debian 12, installs what is missing (Debian
# packages, the pinned PyPI/npm clients of tests/interop), configures and
# builds ./build, runs every test, and prints "N passed, N failed[, N skipped]".
# Exits non-zero on any failure.  Safe to run again.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=tests/lib-deps.sh
. tests/lib-deps.sh

zestfs_install_deps all

if ! bash tests/interop/setup.sh; then
    if [ "${CI:-}" = true ]; then
        echo "run.sh: tests/interop/setup.sh failed" >&2
        exit 1
    fi
    echo "run.sh: warning: interop clients not installed; interop tests will be skipped" >&2
fi

build=${ZESTFS_BUILD_DIR:-build}
if [ -f "$build/meson-private/coredata.dat" ]; then
    meson setup --reconfigure "$build"
else
    meson setup "$build"
fi
ninja -C "$build"

log="$build/meson-logs/testlog.json"
rm -f "$log"
set +e
meson test -C "$build" --print-errorlogs "$@"
rc=$?
set -e

summary=$(python3 - "$log" <<'PY'
import json, sys
passed = failed = skipped = 0
try:
    lines = open(sys.argv[1]).read().splitlines()
except OSError:
    lines = []
for line in lines:
    if not line.strip():
        continue
    r = json.loads(line).get("result", "")
    if r in ("OK", "EXPECTEDFAIL"):
        passed += 1
    elif r == "SKIP":
        skipped += 1
    else:  # FAIL, TIMEOUT, UNEXPECTEDPASS, ERROR
        failed += 1
s = f"{passed} passed, {failed} failed"
if skipped:
    s += f", {skipped} skipped"
print(s)
PY
)
if [ "$rc" -ne 0 ] && [ "${summary#*, 0 failed}" != "$summary" ]; then
    # meson failed without a failing test (e.g. it could not rebuild)
    summary=${summary/, 0 failed/, 1 failed}
fi
echo
echo "$summary"
exit "$rc"

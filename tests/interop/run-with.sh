#!/bin/sh
# run-with.sh INTERPRETER SCRIPT ARGS...
# Runs an interop test with the pinned interpreter from tests/interop/setup.sh
# (the venv's python, or node_modules' tsx); exits 77 (meson: SKIP) when that
# interpreter is not installed.
interp=$1
shift
if [ ! -x "$interp" ]; then
    echo "SKIP: $interp not found (run tests/interop/setup.sh)"
    exit 77
fi
if [ "${interp##*/}" = tsx ] && ! command -v node >/dev/null 2>&1; then
    echo "SKIP: node not found"
    exit 77
fi
exec "$interp" "$@"

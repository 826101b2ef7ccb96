#!/bin/sh
# cli_version.sh ZESTFS VERSION — `zestfs --version`, `zestfs version` and
# `zestfs version --json` name the project version and the libraries it runs with.
set -u
for form in --version version -V; do
    out=$("$1" $form) || { echo "FAIL: zestfs $form exited $?"; exit 1; }
    echo "$out" | head -1 | grep -qx "zestfs $2" || { echo "FAIL: $form: first line: $out"; exit 1; }
    for lib in libfuse libcurl libuv liblz4 libcjson libmicrohttpd BLAKE3 features; do
        echo "$out" | grep -q "$lib" || { echo "FAIL: $form: no $lib"; exit 1; }
    done
done
"$1" version --json | python3 -c '
import json, sys
o = json.load(sys.stdin)
assert o["version"] == sys.argv[1], o
for k in ("libfuse", "libcurl", "libuv", "liblz4", "libcjson", "libmicrohttpd", "blake3", "tls"):
    assert o[k] and o[k][0].isdigit() or k == "tls", (k, o)
assert "p2p" in o["features"] and "xet" in o["features"], o
print("version ok:", o["version"], o["libfuse"], o["libcurl"])
' "$2" || { echo "FAIL: version --json"; exit 1; }
echo "ok"

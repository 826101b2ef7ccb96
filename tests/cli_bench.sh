#!/bin/sh
# cli_bench.sh ZESTFS — `zestfs xet bench` runs and prints every figure with
# its baseline (a smoke test: it asserts the table, not the speeds).
set -u
out=$("$1" xet bench --size 64 --runs 1) || { echo "FAIL: bench exited $?"; exit 1; }
echo "$out"
for want in "BLAKE3 chunk hash" "b3sum --num-threads 1" "chunker" "raw liblz4, same blocks" \
            "xorb decode + verify"; do
    echo "$out" | grep -q "$want" || { echo "FAIL: no '$want' line"; exit 1; }
done
exit 0

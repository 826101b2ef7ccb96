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
# --json: one object, every row with its figure, the same rows as the table
json=$("$1" xet bench --size 64 --runs 1 --json) || { echo "FAIL: bench --json exited $?"; exit 1; }
echo "$json" | python3 -c '
import json, sys
o = json.load(sys.stdin)
rows = {r["what"].split(" (")[0]: r for r in o["results"]}
assert o["size_mib"] == 64 and o["runs"] == 1, o
for want in ("BLAKE3 chunk hash", "chunker", "LZ4 record decode", "xorb decode + verify"):
    assert want in rows, (want, list(rows))
assert all(r["gb_per_s"] > 0 for r in o["results"]), o
assert rows["BLAKE3 chunk hash"]["baseline"] == "b3sum --num-threads 1"
print("json ok:", len(o["results"]), "rows")
' || { echo "FAIL: bench --json output"; exit 1; }
exit 0

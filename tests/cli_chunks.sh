#!/bin/sh
# cli_chunks.sh ZESTFS GEN_INPUT VECTOR_DIR — `zestfs xet chunks` prints exactly
# the lines of every chunks-*.txt vector, and `zestfs xet hash` its file hash.
set -u
zestfs=$1 gen=$2 vec=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
for f in "$vec"/chunks-*.txt; do
    name=$(basename "$f" .txt); name=${name#chunks-}
    "$gen" "$name" "$tmp/in" || { echo "FAIL $name: cannot generate"; fail=1; continue; }
    grep -v '^#' "$f" > "$tmp/want"
    "$zestfs" xet chunks "$tmp/in" > "$tmp/got"
    if ! cmp -s "$tmp/got" "$tmp/want"; then
        echo "FAIL $name: zestfs xet chunks differs:"; diff "$tmp/want" "$tmp/got" | head -5; fail=1
    fi
    want_id=$(sed -n 's/^file_hash //p' "$tmp/want")
    got_id=$("$zestfs" xet hash "$tmp/in")
    [ "$got_id" = "$want_id" ] || { echo "FAIL $name: hash $got_id, expected $want_id"; fail=1; }
    echo "ok $name"
done
exit $fail

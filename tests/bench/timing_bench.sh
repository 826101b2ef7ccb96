#!/usr/bin/env bash
# tests/bench/timing_bench.sh [BUILD] [PART...] — the timings the tests used
# to assert (issue 23: tests keep only generous correctness bounds, like "the
# deadline ended it at all"; how fast is a figure, printed here beside its
# baseline).  Run by hand, as root (the fs parts mount); not part of meson test.
#
# PARTs (default all): net (~10 s), dht (~10 s), pull (~40 s), netfaults (~70 s).
# Each runs the test that prints the "figure:" lines and shows them with the
# baseline they are judged against: the configured deadline or timeout, or the
# bound the test asserted before the bounds moved here (the budget).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-build}
shift || true
parts=${*:-net dht pull netfaults}
case $build in /*) ;; *) build=$root/$build ;; esac

# show NAME OUTPUT: every "figure:" line (or the named line) beside its baseline
show() {
    printf '%s\n' "$2" | awk -v part="$1" '
        /figure: retry deadline 1000 ms/   { b = "deadline 1000 ms (old bound <= 1300 ms)" }
        /figure: retry deadline 700 ms/    { b = "deadline 700 ms (old bound < 1200 ms)" }
        /figure: 300 ms timeout/           { b = "timeout 300 ms (old bound < 1500 ms)" }
        /endless lookup: ended after/      { b = "10 query timeouts of 300 ms = 3000 ms (old bound < 6000 ms)" }
        /figure: the pull.s CPU time/      { b = "budget 3 s of CPU (the old bound)" }
        /figure: every 2nd xorb body/      { b = "stall timeout 2 s per stalled body" }
        /figure: every xorb body stalled/  { b = "2 read deadlines = 40 s (old bound < 50 s)" }
        /figure: every request failing/    { b = "retry deadline (old bound < 90 s)" }
        b != "" { sub(/^.*figure: /, ""); printf "%-9s %-70s | baseline: %s\n", part, $0, b; b = "" }'
}

for p in $parts; do
    case $p in
    net) out=$("$build/tests/net/test_net" 2>&1) ;;
    dht) out=$("$build/tests/net/test_dht" 2>&1) ;;
    pull) out=$(python3 "$root/tests/fs/test_pull.py" "$build/fs/zestfs" "$build/origin/zestfs-origin" 2>&1) ;;
    netfaults) out=$(python3 "$root/tests/fs/test_net_faults.py" "$build/fs/zestfs" \
        "$build/origin/zestfs-origin" 2>&1) ;;
    *) echo "unknown part $p (net dht pull netfaults)" >&2; exit 2 ;;
    esac
    rc=$?
    show "$p" "$out"
    [ "$rc" = 0 ] || echo "$p: the test itself failed (exit $rc); its figures may be meaningless"
done

#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] [TARGET...] — build the libFuzzer targets
# (clang, ASan + UBSan) in build-fuzz and run each for SECONDS (default 60),
# one after the other.  Prints the executions of every target (libFuzzer's
# final stats) and fails if any target crashed, leaked, timed out or broke
# an invariant; the input that did it is kept in build-fuzz/fuzz-crashes/.
# Add such an input to tests/fuzz/regress/<target>/ once fixed: the replay
# tests (meson test --suite fuzz) run it in every build.
#
#   bash tests/fuzz/run.sh 30            # CI (tests/run.sh)
#   bash tests/fuzz/run.sh 3600 recon    # a long run of one target
#   ZESTFS_FUZZ_JOBS=2 bash tests/fuzz/run.sh 86400   # long runs, 2 processes each
#
# New inputs found go to build-fuzz/fuzz-corpus/<target>/ (kept between runs,
# so long runs build on each other); the committed seeds are only read.
# Environment: ZESTFS_FUZZ_BUILD (build dir, default build-fuzz), CC
# (default clang), ZESTFS_FUZZ_JOBS (libFuzzer -jobs/-workers, default 1),
# ZESTFS_FUZZ_SEED (libFuzzer -seed; with CI=true the default is 1).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
secs=${1:-60}
shift || true
all="recon xorb shard http hub cache repo bencode peer disc tensors httpreq udptracker httpd peernode origin"
targets=${*:-$all}
build=${ZESTFS_FUZZ_BUILD:-build-fuzz}
jobs=${ZESTFS_FUZZ_JOBS:-1}

if ! command -v "${CC:-clang}" >/dev/null 2>&1; then
    echo "fuzz: ${CC:-clang} not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
    exit 1
fi
if [ ! -f "$build/meson-private/coredata.dat" ]; then
    CC=${CC:-clang} meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined \
        -Db_lundef=false >/dev/null
fi
ninja -C "$build" $(for t in $targets; do echo "tests/fuzz/fuzz_$t"; done) >/dev/null

work="$root/$build/fuzz-corpus"
crashes="$root/$build/fuzz-crashes"
logs="$root/$build/fuzz-logs"
mkdir -p "$work" "$crashes" "$logs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

failed=0
summary=""
for t in $targets; do
    mkdir -p "$work/$t"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/zestfs-fuzz-$t.XXXXXX")
    log="$logs/$t.log"
    rm -f "$logs/$t".*.log "$log"
    args=(-max_total_time="$secs" -print_final_stats=1 -timeout=25 -rss_limit_mb=2048
          -artifact_prefix="$crashes/$t-" -max_len=262144)
    if [ "$jobs" -gt 1 ]; then
        args+=(-jobs="$jobs" -workers="$jobs")
    fi
    # CI walks the same mutation sequence every time (a fixed seed), so a
    # green CI stays green; long runs by hand explore with random seeds.
    if [ -n "${ZESTFS_FUZZ_SEED:-}" ]; then
        args+=(-seed="$ZESTFS_FUZZ_SEED")
    elif [ "${CI:-}" = true ]; then
        args+=(-seed=1)
    fi
    set +e
    (cd "$logs" && TMPDIR=$tmp "$root/$build/tests/fuzz/fuzz_$t" "${args[@]}" \
        "$work/$t" "$root/tests/fuzz/corpus/$t" "$root/tests/fuzz/regress/$t") >"$log" 2>&1
    rc=$?
    set -e
    rm -rf "$tmp"
    # with -jobs the workers log to fuzz-<n>.log in $logs
    execs=$(shopt -s nullglob; cat "$log" "$logs"/fuzz-*.log |
        awk '/^stat::number_of_executed_units/ {s += $NF} END {print s + 0}')
    rate=$((execs / (secs > 0 ? secs : 1)))
    ncorp=$(find "$work/$t" -type f | wc -l)
    rm -f "$logs"/fuzz-*.log
    if [ "$rc" -ne 0 ]; then
        failed=$((failed + 1))
        echo "fuzz: $t FAILED (exit $rc); log: $log" >&2
        grep -E "ERROR|SUMMARY|runtime error|invariant failed|Test unit written" "$log" | head -20 >&2
        line=$(printf '%-8s %12s execs  %8s/s  corpus %5s  FAILED' "$t" "$execs" "$rate" "$ncorp")
    else
        line=$(printf '%-8s %12s execs  %8s/s  corpus %5s  ok' "$t" "$execs" "$rate" "$ncorp")
    fi
    echo "$line"
    summary="$summary$line"$'\n'
done
echo
echo "fuzz: ${secs}s per target"
printf '%s' "$summary"
n=$(echo $targets | wc -w)
echo "fuzz: $((n - failed)) passed, $failed failed"
if [ "$failed" -ne 0 ]; then
    echo "fuzz: crashing inputs in $crashes (add them to tests/fuzz/regress/<target>/)" >&2
    exit 1
fi

#!/usr/bin/env bash
# The test command (README): on Debian 12, installs what is missing (Debian
# packages, the pinned PyPI/npm clients of tests/interop), configures and
# builds ./build, runs every test, and prints "N passed, N failed[, N skipped]".
# With CI=true or ZESTFS_SANITIZE=1 it then builds build-asan (ASan + UBSan)
# and runs the whole suite there too, and runs every fuzz target briefly
# (tests/fuzz/run.sh, ZESTFS_FUZZ_SECONDS each, default 30); the last line
# sums all of it, with one line per part above it.
# Every skip is listed with its reason; with CI=true a skip whose reason is
# not in tests/skip-reasons.txt (what CI cannot provide) counts as a failure.
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

sanitize=0
if [ "${CI:-}" = true ] || [ "${ZESTFS_SANITIZE:-0}" = 1 ]; then
    sanitize=1
fi

# run_suite BUILD [meson setup options...]: configure, build, meson test;
# sets suite_rc, suite_counts ("passed failed skipped") and suite_skips (one
# line per skip: "BUILD: NAME: reason", "(not allowed in CI)" where it fails).
run_suite() {
    local build=$1
    shift
    if [ -f "$build/meson-private/coredata.dat" ]; then
        meson setup --reconfigure "$build" "$@"
    else
        meson setup "$build" "$@"
    fi
    local log="$build/meson-logs/testlog.json"
    rm -f "$log"
    set +e
    ninja -C "$build" && meson test -C "$build" --print-errorlogs "${test_args[@]}"
    suite_rc=$?
    set -e
    local out
    out=$(python3 - "$log" tests/skip-reasons.txt "$build" "${CI:-}" <<'PY'
import json, re, sys
log, reasons_file, build, ci = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "true"
reasons = [l.strip().lower() for l in open(reasons_file)
           if l.strip() and not l.lstrip().startswith("#")]
passed = failed = skipped = 0
skips = []
try:
    lines = open(log).read().splitlines()
except OSError:
    lines = []
for line in lines:
    if not line.strip():
        continue
    t = json.loads(line)
    r = t.get("result", "")
    if r in ("OK", "EXPECTEDFAIL"):
        passed += 1
    elif r == "SKIP":
        out = (t.get("stdout") or "") + (t.get("stderr") or "")
        said = [l.strip() for l in out.splitlines() if re.search(r"\bskip", l, re.I)]
        why = said[-1] if said else (out.strip().splitlines() or ["no reason printed"])[-1].strip()
        allowed = any(any(a in l.lower() for a in reasons) for l in said)
        name = t.get("name", "?").split(" / ")[-1]
        if ci and not allowed:
            failed += 1
            skips.append(f"{build}: {name}: {why[:160]} (not a reason CI may skip for: FAILED)")
        else:
            skipped += 1
            skips.append(f"{build}: {name}: {why[:160]}" + ("" if allowed else " (not in tests/skip-reasons.txt)"))
    else:  # FAIL, TIMEOUT, UNEXPECTEDPASS, ERROR
        failed += 1
print(passed, failed, skipped)
print("\n".join(skips))
PY
)
    suite_counts=$(echo "$out" | head -n 1)
    suite_skips=$(echo "$out" | tail -n +2)
    if [ -n "$suite_skips" ]; then
        all_skips="$all_skips$suite_skips"$'\n'
    fi
    if [ "$(echo "$suite_counts" | cut -d' ' -f2)" != 0 ]; then
        suite_rc=1 # an unexplained skip under CI=true fails the run
    fi
    if [ "$suite_rc" -ne 0 ] && [ "$(echo "$suite_counts" | cut -d' ' -f2)" = 0 ]; then
        # meson failed without a failing test (e.g. it could not build)
        suite_counts="$(echo "$suite_counts" | cut -d' ' -f1) 1 $(echo "$suite_counts" | cut -d' ' -f3)"
    fi
}

fmt() { # "p f s" -> "p passed, f failed[, s skipped]"
    set -- $1
    local s="$1 passed, $2 failed"
    [ "$3" = 0 ] || s="$s, $3 skipped"
    echo "$s"
}

test_args=("$@")
total_p=0 total_f=0 total_s=0 rc=0 lines="" all_skips=""
add() { # NAME "p f s" RC
    set -- "$1" $2 "$3"
    total_p=$((total_p + $2)) total_f=$((total_f + $3)) total_s=$((total_s + $4))
    [ "$5" -eq 0 ] || rc=1
    lines="$lines$(printf '%-10s %s' "$1:" "$(fmt "$2 $3 $4")")"$'\n'
}

build=${ZESTFS_BUILD_DIR:-build}
run_suite "$build"
add "$build" "$suite_counts" "$suite_rc"

if [ "$sanitize" = 1 ]; then
    # The whole suite again under ASan + UBSan; any report fails the test
    # that triggered it (the FUSE daemon included: it inherits these).
    asan=${ZESTFS_ASAN_BUILD_DIR:-build-asan}
    export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:detect_leaks=1:abort_on_error=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
    run_suite "$asan" -Db_sanitize=address,undefined -Db_lundef=false
    add "$asan" "$suite_counts" "$suite_rc"
    unset ASAN_OPTIONS UBSAN_OPTIONS

    # Every fuzz target for a short while (clang, build-fuzz).
    set +e
    fuzz_out=$(bash tests/fuzz/run.sh "${ZESTFS_FUZZ_SECONDS:-30}" 2>&1)
    fuzz_rc=$?
    set -e
    echo "$fuzz_out"
    fc=$(echo "$fuzz_out" | sed -n 's/^fuzz: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2 0/p')
    [ -n "$fc" ] || fc="0 1 0"
    add fuzz "$fc" "$fuzz_rc"
fi

summary=$(fmt "$total_p $total_f $total_s")
echo
if [ -n "$all_skips" ]; then
    echo "skipped (reasons; allowed in CI: tests/skip-reasons.txt):"
    printf '%s' "$all_skips" | sed 's/^/  /'
fi
if [ "$sanitize" = 1 ]; then
    printf '%s' "$lines"
fi
echo "$summary"
exit "$rc"

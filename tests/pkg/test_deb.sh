#!/usr/bin/env bash
# test_deb.sh SRCDIR BUILDDIR ZESTFS — builds the .deb with packaging/build-deb.sh and
# inspects it: file list, control fields and Depends, conffiles, md5sums,
# maintainer scripts (mode, sh -n, no user unit started or enabled), lintian
# (no errors or warnings), the packaged binaries run, the packaged man pages
# render without warnings and document every option the binaries print,
# and systemd-analyze verify passes on the packaged units.
set -uo pipefail
src=$1
bdir=$2
zbuilt=$3
fails=0
skipped="" # parts that could not run here: the test then exits 77 (SKIP) naming them
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
for t in dpkg-deb dpkg-shlibdeps meson ninja; do
    command -v $t >/dev/null || { echo "skip: no $t"; exit 77; }
done
tmp=$(mktemp -d /tmp/zestfs-pkg-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# reuse a build dir across runs (incremental); it lives in meson's build dir
export ZESTFS_DEB_BUILDDIR=$bdir/debbuild
deb=$("$src/packaging/build-deb.sh" "$tmp/out" | tail -n 1) || { echo "FAIL: build-deb.sh"; exit 1; }
[ -f "$deb" ] || { echo "FAIL: no .deb"; exit 1; }
ok "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"

# --- file list --------------------------------------------------------------
dpkg-deb -c "$deb" | awk '{print $NF}' | grep -v '/$' | sed 's|^\./|/|' | sort >"$tmp/files"
cat >"$tmp/want" <<'W'
/etc/zestfs/config
/usr/bin/zestfs
/usr/bin/zestfs-origin
/usr/lib/systemd/system/zestfs-seed.service
/usr/lib/systemd/user/zestfs.service
/usr/share/doc/zestfs/changelog.gz
/usr/share/doc/zestfs/config.example
/usr/share/doc/zestfs/copyright
/usr/share/lintian/overrides/zestfs
/usr/share/man/man1/zestfs-origin.1.gz
/usr/share/man/man1/zestfs.1.gz
W
if diff -u "$tmp/want" "$tmp/files"; then ok "file list"; else fail "file list differs"; fi
dpkg-deb -c "$deb" | awk '$2 != "root/root" {print}' | grep . && fail "files not owned by root"
dpkg-deb -c "$deb" | grep ' \./usr/bin/zestfs$' | grep -q '^-rwxr-xr-x' || fail "zestfs not 0755"

# --- control ----------------------------------------------------------------
version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$src/meson.build" | head -n 1)
[ "$(dpkg-deb -f "$deb" Package)" = zestfs ] || fail "Package"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "Version != $version"
[ "$(dpkg-deb -f "$deb" Architecture)" = "$(dpkg --print-architecture)" ] || fail "Architecture"
deps=$(dpkg-deb -f "$deb" Depends)
for d in 'libc6 (>=' 'libfuse3-3' 'libcurl4' 'libuv1' 'liblz4-1' 'libcjson1' 'libssl3' \
         'libmicrohttpd12' 'fuse3'; do
    case "$deps" in *"$d"*) ;; *) fail "Depends lacks $d: $deps" ;; esac
done
for f in Maintainer Description Section Priority Installed-Size; do
    [ -n "$(dpkg-deb -f "$deb" $f)" ] || fail "no $f"
done
ok "control: $deps"

# --- control members ----------------------------------------------------------
dpkg-deb -e "$deb" "$tmp/ctl"
[ "$(cat "$tmp/ctl/conffiles")" = /etc/zestfs/config ] || fail "conffiles"
for s in postinst prerm postrm; do
    f=$tmp/ctl/$s
    [ -f "$f" ] || { fail "no $s"; continue; }
    [ "$(stat -c %a "$f")" = 755 ] || fail "$s mode $(stat -c %a "$f")"
    [ "$(head -n 1 "$f")" = "#!/bin/sh" ] || fail "$s shebang"
    sh -n "$f" || fail "$s: sh -n"
    if command -v dash >/dev/null; then dash -n "$f" || fail "$s: dash -n"; fi
    grep -q '^set -e' "$f" || fail "$s: no set -e"
    # never start or enable anything on install, and never touch user units
    grep -v '^[[:space:]]*#' "$f" | grep -nE 'systemctl.*(start|enable)|--user|--global' \
        && fail "$s starts/enables units"
done
grep -q 'daemon-reload' "$tmp/ctl/postinst" || fail "postinst does not daemon-reload"
grep -q 'stop zestfs-seed' "$tmp/ctl/prerm" || fail "prerm does not stop zestfs-seed"
ok "maintainer scripts"

# --- payload: md5sums, binaries run ------------------------------------------
dpkg-deb -x "$deb" "$tmp/root"
(cd "$tmp/root" && md5sum --quiet -c "$tmp/ctl/md5sums") || fail "md5sums"
grep -q 'etc/' "$tmp/ctl/md5sums" && fail "md5sums lists a conffile"
zf=$tmp/root/usr/bin/zestfs
"$zf" --help >"$tmp/zhelp" || fail "zestfs --help"
"$zf" /nonexistent --help >>"$tmp/zhelp" || fail "zestfs MOUNTPOINT --help"
if "$zf" --help | grep -q 'zestfs pull'; then
    "$zf" pull --help >>"$tmp/zhelp" || fail "zestfs pull --help"
fi
"$tmp/root/usr/bin/zestfs-origin" --help 2>"$tmp/ohelp" || fail "zestfs-origin --help"
head -c 100000 /dev/urandom >"$tmp/f.bin"
h1=$("$zf" xet hash "$tmp/f.bin") && h2=$("$zbuilt" xet hash "$tmp/f.bin") \
    && [ "$h1" = "$h2" ] && [ ${#h1} = 64 ] || fail "packaged zestfs xet hash ($h1 vs $h2)"
ok "binaries run: xet hash $h1"

# --- lintian -------------------------------------------------------------------
if command -v lintian >/dev/null; then
    lintian --pedantic -I "$deb" 2>&1 | grep -v 'running with root privileges' | tee "$tmp/lintian"
    if grep -qE '^[EW]:' "$tmp/lintian"; then fail "lintian errors or warnings"; else ok "lintian"; fi
else
    skipped="$skipped lintian not installed (no lintian check);"
fi

# --- man pages ------------------------------------------------------------------
for m in zestfs zestfs-origin; do
    page=$tmp/root/usr/share/man/man1/$m.1.gz
    LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" >"$tmp/$m.txt" 2>"$tmp/$m.err" \
        || fail "man -l $m"
    [ -s "$tmp/$m.err" ] && { cat "$tmp/$m.err"; fail "man warnings for $m"; }
    grep -q '^NAME' "$tmp/$m.txt" && grep -q '^SYNOPSIS' "$tmp/$m.txt" || fail "$m sections"
done
# every long option the binaries' help prints is in the page (render joins
# hyphenated words back, so compare against the unhyphenated text)
check_opts() {
    local help=$1 txt=$2 o n=0
    for o in $(grep -oE -- '--[a-z][a-z0-9-]+' "$help" | sort -u); do
        grep -qF -- "$o" "$txt" || fail "option $o missing from $(basename "$txt")"
        n=$((n + 1))
    done
    echo "  $n options of $(basename "$help") found in $(basename "$txt")"
    [ $n -gt 0 ] || fail "no options in $help"
}
LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$tmp/root/usr/share/man/man1/zestfs.1.gz" >"$tmp/zw.txt" 2>/dev/null
LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$tmp/root/usr/share/man/man1/zestfs-origin.1.gz" >"$tmp/ow.txt" 2>/dev/null
sed -i 's/‐/-/g' "$tmp/zw.txt" "$tmp/ow.txt"
check_opts "$tmp/zhelp" "$tmp/zw.txt"
"$zf" xet bench --bogus 2>"$tmp/bhelp" >/dev/null
check_opts "$tmp/bhelp" "$tmp/zw.txt"
for c in hash chunks xorb-encode xorb-decode shard-dump bench; do
    grep -q "xet $c" "$tmp/zw.txt" || fail "zestfs(1) lacks xet $c"
done
check_opts "$tmp/ohelp" "$tmp/ow.txt"
for c in ingest serve commit ls; do
    grep -q "zestfs-origin $c" "$tmp/ow.txt" || fail "zestfs-origin(1) lacks $c"
done
ok "man pages"

# --- systemd units ----------------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
    mkdir -p "$tmp/units" "$tmp/xdg" && chmod 700 "$tmp/xdg"
    for u in system/zestfs-seed.service user/zestfs.service; do
        sed "s|/usr/bin/zestfs|$tmp/root/usr/bin/zestfs|g" "$tmp/root/usr/lib/systemd/$u" \
            >"$tmp/units/$(basename $u)"
    done
    export MANPATH=$tmp/root/usr/share/man
    (cd "$tmp/units" && systemd-analyze verify ./zestfs-seed.service) \
        && ok "systemd-analyze verify zestfs-seed.service" || fail "verify zestfs-seed.service"
    (cd "$tmp/units" && XDG_RUNTIME_DIR=$tmp/xdg systemd-analyze --user verify ./zestfs.service) \
        && ok "systemd-analyze --user verify zestfs.service" || fail "verify zestfs.service"
    grep -q '^Type=simple' "$tmp/units/zestfs.service" && grep -q 'ExecStart=.* -f ' \
        "$tmp/units/zestfs.service" && grep -q '^ExecStop=.*fusermount3 -u' \
        "$tmp/units/zestfs.service" || fail "zestfs.service: Type=simple, -f, fusermount3 -u"
    for k in DynamicUser=yes ProtectSystem=strict StateDirectory=zestfs-seed NoNewPrivileges=yes; do
        grep -q "^$k" "$tmp/units/zestfs-seed.service" || fail "zestfs-seed.service lacks $k"
    done
    systemd-analyze security --offline=yes "$tmp/units/zestfs-seed.service" 2>/dev/null \
        | grep 'Overall exposure' || true
else
    skipped="$skipped systemd-analyze not installed (units not verified);"
fi

echo "$fails failure(s)"
[ "$fails" = 0 ] || exit 1
if [ -n "$skipped" ]; then
    echo "skip:$skipped"
    exit 77
fi

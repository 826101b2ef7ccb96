#!/bin/sh
# build-deb.sh — a Debian package of zestfs built straight from the tree:
#   meson setup --prefix=/usr (Debian's hardening flags from dpkg-buildflags),
#   ninja (only the two binaries), meson install --destdir --strip,
#   then DEBIAN/ (control with Depends from dpkg-shlibdeps, conffiles,
#   md5sums, maintainer scripts) and dpkg-deb --build.
#
#   packaging/build-deb.sh [OUTDIR]        (default: the current directory)
#
# Environment: ZESTFS_DEB_BUILDDIR (default: a temporary directory, removed
# afterwards), DEBFULLNAME / DEBEMAIL (the Maintainer field).
# Prints the path of the .deb on its last line.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-.}" && cd "${1:-.}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/zestfs-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
build=${ZESTFS_DEB_BUILDDIR:-$tmp/build}
root=$tmp/root
pkg=zestfs
maint="${DEBFULLNAME:-zestfs developers} <${DEBEMAIL:-zestfs@example.org}>"

version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$src/meson.build" | head -n 1)
arch=$(dpkg --print-architecture)
[ -n "$version" ] || { echo "build-deb: no version in meson.build" >&2; exit 1; }

# --- build and install ------------------------------------------------------
export DEB_BUILD_MAINT_OPTIONS="hardening=+all"
export CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
export LDFLAGS="$(dpkg-buildflags --get LDFLAGS)"
if [ ! -f "$build/meson-private/coredata.dat" ]; then
    meson setup "$build" "$src" --prefix=/usr --sysconfdir=/etc --buildtype=plain \
        --wrap-mode=nodownload >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log" >&2; exit 1; }
fi
ninja -C "$build" fs/zestfs origin/zestfs-origin >"$tmp/ninja.log" 2>&1 \
    || { cat "$tmp/ninja.log" >&2; exit 1; }
DESTDIR="$root" meson install -C "$build" --no-rebuild --quiet >/dev/null
strip --remove-section=.comment --remove-section=.note --strip-unneeded \
    "$root/usr/bin/zestfs" "$root/usr/bin/zestfs-origin"
# a config example is a doc, not an executable
rm -f "$root/usr/share/doc/$pkg/config.example"
gzip -9n "$root"/usr/share/man/man1/*.1

# --- docs: copyright (DEP-5), changelog ---------------------------------------
doc=$root/usr/share/doc/$pkg
mkdir -p "$doc"
cp "$src/packaging/debian/copyright" "$doc/copyright"
cp "$src/packaging/config.example" "$doc/config.example"
date=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git -C "$src" log -1 --format=%ct 2>/dev/null || date +%s)}")
sed -e "s/@VERSION@/$version/" -e "s/@MAINT@/$maint/" -e "s/@DATE@/$date/" \
    "$src/packaging/debian/changelog.in" | gzip -9n >"$doc/changelog.gz"

mkdir -p "$root/usr/share/lintian/overrides"
install -m 0644 "$src/packaging/debian/lintian-overrides" "$root/usr/share/lintian/overrides/$pkg"

# --- control ------------------------------------------------------------------
mkdir -p "$root/DEBIAN" "$tmp/shlibs/debian"
# dpkg-shlibdeps reads debian/control from its working directory
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$pkg" "$pkg" >"$tmp/shlibs/debian/control"
(cd "$tmp/shlibs" && dpkg-shlibdeps -O "$root/usr/bin/zestfs" "$root/usr/bin/zestfs-origin" \
    2>"$tmp/shlibdeps.log") >"$tmp/substvars" || { cat "$tmp/shlibdeps.log" >&2; exit 1; }
shlibs=$(sed -n 's/^shlibs:Depends=//p' "$tmp/substvars")
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@MAINT@/$maint/" \
    -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" \
    "$src/packaging/debian/control.in" >"$root/DEBIAN/control"
for f in postinst prerm postrm; do
    install -m 0755 "$src/packaging/debian/$f" "$root/DEBIAN/$f"
done
install -m 0644 "$src/packaging/debian/conffiles" "$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -print \
    | sed 's|^\./||' | LC_ALL=C sort | xargs md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

deb="$out/${pkg}_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"

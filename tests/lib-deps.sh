# tests/lib-deps.sh — sourced by tests/run.sh and tests/demo.sh.
# zestfs_install_deps [build|all]: installs the Debian 12 packages zestfs needs
# (build: compiler, libraries; all: also what the tests use), calling
# `apt-get update` once and `apt-get install` only when something is missing.

ZESTFS_BUILD_DEPS="meson ninja-build pkg-config gcc libfuse3-dev fuse3
  libcurl4-openssl-dev liblz4-dev libcjson-dev libuv1-dev librust-blake3-dev
  libmicrohttpd-dev libssl-dev"
ZESTFS_TEST_DEPS="b3sum python3-venv curl nginx openssl python3-libtorrent
  dpkg-dev lintian systemd man-db python3-yaml clang libclang-rt-14-dev opentracker
  nghttp2-server iproute2"

zestfs_pkg_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

zestfs_install_deps() {
    local want=$ZESTFS_BUILD_DEPS
    if [ "${1:-all}" = all ]; then
        want="$want $ZESTFS_TEST_DEPS"
        # Node.js: keep one that is already there (e.g. from NodeSource, which
        # conflicts with Debian's npm); otherwise Debian's nodejs + npm.
        if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
            want="$want nodejs npm"
        fi
    fi
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "deps: not a Debian system; install by hand: $want" >&2
        return 0
    fi
    local missing="" p
    for p in $want; do
        zestfs_pkg_installed "$p" || missing="$missing $p"
    done
    if [ -z "$missing" ]; then
        echo "deps: all Debian packages present"
        return 0
    fi
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            echo "deps: missing:$missing (not root and no sudo)" >&2
            return 1
        fi
    fi
    echo "deps: installing:$missing"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    # shellcheck disable=SC2086
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing </dev/null
}

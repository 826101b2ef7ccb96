#!/usr/bin/env bash
# tests/netguard.sh CMD [ARGS...] — the network guard every meson test runs
# under (tests/meson.build: the default test setup's exe_wrapper).
#
# Tests may reach loopback (127.0.0.0/8, ::1) and network namespaces they make,
# nothing else (issue 23).  As root, the test runs in a network namespace of
# its own with only `lo` up, and a mount namespace where /etc/resolv.conf names
# an unroutable resolver (192.0.2.53, TEST-NET-1) and nsswitch resolves hosts
# by files and DNS only.  Every attempt to reach any other address (a connect,
# a datagram, a DNS query for a public name) then fails at once with
# ENETUNREACH and is counted by the kernel (Ip: OutNoRoutes in /proc/net/snmp,
# Ip6OutNoRoutes in /proc/net/snmp6, per namespace).  When the test ends, a
# count above zero FAILS it (exit 1, whatever its own status was), naming the
# count.  Namespaces the test makes itself count apart and are not looked at.
#
# Without root (or where the kernel refuses namespaces) the test runs as is and
# a line says so; tests/fs/fsutil.py's own checks (an explicit loopback
# --endpoint, no public DHT routers, the daemon's sockets) still hold.
# ZESTFS_NETGUARD=0 turns the guard off (debugging only).
set -u

counters() {
    local v4 v6
    v4=$(awk '/^Ip: [0-9]/ { for (i = 2; i <= NF; i++) if (h[i] == "OutNoRoutes") print $i }
              /^Ip: [A-Za-z]/ { for (i = 2; i <= NF; i++) h[i] = $i }' /proc/net/snmp)
    v6=$(awk '$1 == "Ip6OutNoRoutes" { print $2 }' /proc/net/snmp6 2>/dev/null)
    echo "${v4:-0} ${v6:-0}"
}

if [ "${ZESTFS_NETGUARD_INSIDE:-}" = 1 ]; then
    unset ZESTFS_NETGUARD_INSIDE
    if ! ip link set lo up 2>/dev/null; then
        python3 -c '
import fcntl, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ifr = struct.pack("16sH14x", b"lo", 0)
flags = struct.unpack("16sH14x", fcntl.ioctl(s, 0x8913, ifr))[1]  # SIOCGIFFLAGS
fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 1))  # SIOCSIFFLAGS IFF_UP
' || { echo "netguard: cannot bring lo up" >&2; exit 1; }
    fi
    d=$(mktemp -d /tmp/zestfs-netguard.XXXXXX)
    echo "nameserver 192.0.2.53" >"$d/resolv.conf"
    mount --bind "$d/resolv.conf" /etc/resolv.conf 2>/dev/null || true
    if [ -f /etc/nsswitch.conf ]; then
        sed 's/^hosts:.*/hosts: files dns/' /etc/nsswitch.conf >"$d/nsswitch.conf"
        mount --bind "$d/nsswitch.conf" /etc/nsswitch.conf 2>/dev/null || true
    fi
    before=$(counters)
    "$@"
    rc=$?
    after=$(counters)
    rm -rf "$d"
    read -r b4 b6 <<<"$before"
    read -r a4 a6 <<<"$after"
    n4=$((a4 - b4)) n6=$((a6 - b6))
    if [ "$n4" -ne 0 ] || [ "$n6" -ne 0 ]; then
        echo "netguard: FAIL: the test tried to reach addresses off loopback" \
            "($n4 IPv4, $n6 IPv6 attempts refused: Ip OutNoRoutes / Ip6OutNoRoutes)" >&2
        exit 1
    fi
    exit "$rc"
fi

if [ "${ZESTFS_NETGUARD:-1}" = 0 ]; then
    exec "$@"
fi
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1 &&
    unshare -n -m --propagation private true 2>/dev/null; then
    ZESTFS_NETGUARD_INSIDE=1 exec unshare -n -m --propagation private "$0" "$@"
fi
echo "netguard: no network namespace here (not root, or refused): the test runs unguarded" >&2
exec "$@"

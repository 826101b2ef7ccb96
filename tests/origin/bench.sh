#!/usr/bin/env bash
# bench.sh [ZESTFS_ORIGIN] [SIZE_MIB] [ROUNDS]
#
# Throughput of zestfs-origin serving one Xet file's xorb ranges (exactly the
# signed ranges of its v2 reconstruction) to curl, against Debian nginx
# (sendfile on) serving the same xorb files as static files, same ranges,
# same curl commands:
#   - 1 stream: the ranges one after another;
#   - 8 parallel ranged GETs (xargs -P 8 over the ranges, each split in 8).
# Loopback only.  Not part of the test suite.  Prints a side-by-side table.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exe=${1:-$here/../../build-origin/origin/zestfs-origin}
exe=$(readlink -f "$exe")
size_mib=${2:-1024}
rounds=${3:-3}
command -v nginx >/dev/null || { echo "bench: nginx not installed (apt-get install nginx-light)"; exit 77; }
command -v curl >/dev/null || { echo "bench: curl missing"; exit 77; }

tmp=$(mktemp -d /tmp/zo-bench.XXXXXX)
chmod 755 "$tmp"
origin_pid= nginx_pid=
cleanup() {
    [ -n "$origin_pid" ] && kill "$origin_pid" 2>/dev/null || true
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

echo "bench: generating a ${size_mib} MiB file and ingesting it"
mkdir -p "$tmp/src"
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$tmp/src/model.safetensors"
t0=$(date +%s.%N)
"$exe" ingest "$tmp/data" org/bench --scheme none -q "$tmp/src" >/dev/null
t1=$(date +%s.%N)
echo "bench: ingest took $(python3 -c "print(f'{$t1-$t0:.1f}')") s"
rm -f "$tmp/src/model.safetensors"
chmod -R a+rX "$tmp/data"

"$exe" serve "$tmp/data" --listen 127.0.0.1:0 --port-file "$tmp/port" -q &
origin_pid=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
oport=$(cat "$tmp/port")
ourl=http://127.0.0.1:$oport

nport=$(free_port)
mkdir -p "$tmp/nginx/logs"
cat > "$tmp/nginx/nginx.conf" <<EOF
user root;
worker_processes 2;
daemon off;
error_log $tmp/nginx/logs/error.log warn;
pid $tmp/nginx/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    default_type application/octet-stream;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    server {
        listen 127.0.0.1:$nport;
        location /xorbs/default/ { alias $tmp/data/xorbs/; }
    }
}
EOF
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
nginx_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$nport/" && break; sleep 0.05; done

# the signed ranges of the whole-file v2 reconstruction: "url start end" lines
fh=$(curl -sI "$ourl/org/bench/resolve/main/model.safetensors" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-xet-hash"{print $2}')
tok=$(curl -s "$ourl/api/models/org/bench/xet-read-token/main" | python3 -c 'import json,sys;print(json.load(sys.stdin)["accessToken"])')
curl -s -H "Authorization: Bearer $tok" "$ourl/v2/reconstructions/$fh" | python3 -c '
import json, sys
j = json.load(sys.stdin)
for xh, es in j["xorbs"].items():
    for e in es:
        for r in e["ranges"]:
            print(e["url"], r["bytes"]["start"], r["bytes"]["end"])' > "$tmp/ranges"
total=$(awk '{s += $3 - $2 + 1} END {print s}' "$tmp/ranges")
nr=$(wc -l < "$tmp/ranges")
# 8-way split of every range for the parallel run
awk '{n = $3 - $2 + 1; p = int((n + 7) / 8); for (s = $2; s <= $3; s += p) { e = s + p - 1; if (e > $3) e = $3; print $1, s, e } }' "$tmp/ranges" > "$tmp/ranges8"

# curl config: one URL + range per request, all in one curl process (keep-
# alive), sequential or --parallel --parallel-max N.
mkcfg() { # mkcfg BASE RANGESFILE > cfg
    local base=$1 file=$2 first=1
    while read -r url s e; do
        [ "$base" != origin ] && url="$base/xorbs/default/$(basename "${url%%\?*}")"
        [ $first = 1 ] || echo next
        first=0
        printf 'url = "%s"\nrange = "%s-%s"\noutput = "/dev/null"\n' "$url" "$s" "$e"
    done < "$file"
}

# run_set BASEURL FILE PARALLEL -> seconds
run_set() {
    local base=$1 file=$2 par=$3
    local t0 t1 cfg=$tmp/cfg.$RANDOM
    mkcfg "$base" "$file" > "$cfg"
    t0=$(date +%s.%N)
    if [ "$par" = 1 ]; then
        curl -sS --fail -K "$cfg"
    else
        curl -sS --no-progress-meter --fail --parallel --parallel-immediate --parallel-max "$par" -K "$cfg"
    fi
    t1=$(date +%s.%N)
    rm -f "$cfg"
    python3 -c "print(f'{$t1-$t0:.4f}')"
}

best() { # best of N rounds, in MiB/s
    local base=$1 file=$2 par=$3 b=0 t mbs
    for _ in $(seq "$rounds"); do
        t=$(run_set "$base" "$file" "$par")
        mbs=$(python3 -c "print(f'{$total/1048576/$t:.0f}')")
        [ "$mbs" -gt "$b" ] && b=$mbs
    done
    echo "$b"
}

# correctness: one range from both servers must be identical
read -r u s e < "$tmp/ranges"
a=$(curl -s -r "$s-$((s + 999999))" "$u" | sha256sum)
b=$(curl -s -r "$s-$((s + 999999))" "http://127.0.0.1:$nport/xorbs/default/$(basename "${u%%\?*}")" | sha256sum)
[ "$a" = "$b" ] || { echo "bench: origin and nginx bytes differ"; exit 1; }

curl -s -X POST "$ourl/_origin/stats/reset" >/dev/null
o1=$(best origin "$tmp/ranges" 1)
n1=$(best "http://127.0.0.1:$nport" "$tmp/ranges" 1)
o8=$(best origin "$tmp/ranges8" 8)
n8=$(best "http://127.0.0.1:$nport" "$tmp/ranges8" 8)
egress=$(curl -s "$ourl/_origin/stats" | python3 -c 'import json,sys;print(json.load(sys.stdin)["xorb_bytes_total"])')

echo
echo "zestfs-origin vs nginx: ${size_mib} MiB Xet file, $nr xorb ranges ($total bytes), best of $rounds, loopback, $(nproc) cores"
printf '%-34s %12s %12s %8s\n' "" "origin MiB/s" "nginx MiB/s" "ratio"
printf '%-34s %12s %12s %8s\n' "1 stream (ranges in sequence)" "$o1" "$n1" "$(python3 -c "print(f'{$o1/$n1:.2f}')")"
printf '%-34s %12s %12s %8s\n' "8 parallel ranged GETs" "$o8" "$n8" "$(python3 -c "print(f'{$o8/$n8:.2f}')")"
echo "origin xorb egress counted: $egress bytes (expected $((total * rounds * 2)))"

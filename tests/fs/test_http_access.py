#!/usr/bin/env python3
"""test_http_access.py ZESTFS [ZESTFS_ORIGIN] — HTTP access and /metrics of
the daemon (`zestfs --http`, `--metrics`, `--http-token`), against
zestfs-origin on loopback.

The generated model of fsutil (plus a 48 MB big.bin) and a small dataset are
ingested into an origin; `zestfs -f --http 127.0.0.1:0 --metrics 127.0.0.1:0
--http-token T` mounts them, and the bound ports are read from the log
("zestfs: http on 127.0.0.1:PORT").  Checks, with curl and urllib:
  - the daemon's RSS stays bounded while a slow reader (small receive
    buffer, 1 KiB at a time) holds a GET of big.bin open for a few seconds;
  - cold full GETs of every file are byte-exact through the daemon, with
    Content-Length, Accept-Ranges, ETag (the blob name) and X-Repo-Commit;
  - HEAD: the same headers, no body; a revision given as the commit;
  - ranges: first byte, last byte, middle, suffix, open-ended, across the
    8 MiB windows, multi-range (whole file), beyond the end (416 with
    Content-Range bytes */size);
  - /xet/{id} (full and ranged), datasets/ repos, 404s (unknown file, repo,
    Xet id, path shape), 405 for other methods;
  - 16 ranged requests at once, byte-exact;
  - /metrics on both listeners: every line valid exposition format, the
    histograms cumulative with +Inf = count, counters grew after reads;
  - the token: missing or wrong -> 401;
  - local surfaces (issue 19): a Host header that does not name the
    listener (DNS rebinding) -> 421 on both listeners; localhost:PORT and
    --http-host names pass; --http-token is not in /proc/PID/cmdline; a repo
    not presented is added on demand for a request with the token; a client
    that dribbles its headers or its body is dropped (within 30 s) while
    others are served; the 65th connection from one address is refused
    while another address is served; without --http-token no repo is added
    on demand (404, nothing appears in the mount); --http-token-file and
    $ZESTFS_HTTP_TOKEN set the token;
  - with the origin gone: a range never fetched answers 502/503 with a text
    body, and a GET whose first piece is stored but the rest is not is cut
    short (never complete-looking short data).
Exit 0 pass, 1 fail, 77 skip."""
import concurrent.futures, hashlib, json, os, random, re, shutil, socket, subprocess, sys, time
import http.client, urllib.error, urllib.request

import fsutil
from fsutil import MiB, Origin, ingest, make_model, mount, rss, unmount

TOKEN = "s3cret-http-token"



class Client:
    def __init__(self, base, token=TOKEN):
        self.base, self.token = base, token

    def req(self, path, method="GET", headers=None, token=True):
        h = dict(headers or {})
        if token and self.token:
            h["Authorization"] = "Bearer " + self.token
        rq = urllib.request.Request(self.base + path, method=method, headers=h)
        try:
            with urllib.request.urlopen(rq, timeout=120) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()


def curl(args, timeout=120):
    r = subprocess.run(["curl", "-s", "-S", "-H", "Authorization: Bearer " + TOKEN, *args],
                       capture_output=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? '
                    r'(-?[0-9.eE+-]+|\+Inf|-Inf|NaN)( -?[0-9]+)?$')


def parse_metrics(text):
    """{(name, labels): value}, or raises ValueError on an invalid line."""
    out, types = {}, {}
    if not text.endswith("\n"):
        raise ValueError("no final newline")
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] == "TYPE":
                if parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
                    raise ValueError("bad TYPE: " + line)
                types[parts[2]] = parts[3]
            elif len(parts) < 3 or parts[1] != "HELP":
                raise ValueError("bad comment: " + line)
            continue
        if not SAMPLE.match(line):
            raise ValueError("bad sample: " + line)
        name_labels, value = line.rsplit(" ", 1)
        out[name_labels] = float(value)
    return out, types


def hist_ok(m, name, label=""):
    """buckets cumulative, +Inf == _count"""
    pre = name + "_bucket{" + (label + "," if label else "")
    vals = [(k, v) for k, v in m.items() if k.startswith(pre)]
    if not vals:
        return False
    seq = [v for _, v in vals]
    inf = [v for k, v in vals if 'le="+Inf"' in k]
    cnt = m.get(name + "_count" + ("{" + label + "}" if label else ""))
    return seq == sorted(seq) and inf and inf[0] == cnt


def main():
    run = fsutil.start("zestfs-http-")
    if run is None:
        return 77
    if not shutil.which("curl"):
        print("skip: no curl")
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    src, data, store, mnt = (os.path.join(tmp, n) for n in ("src", "data", "store", "mnt"))
    os.mkdir(mnt)
    files = make_model(src)
    big = random.Random(11).randbytes(48 * MiB)
    open(os.path.join(src, "big.bin"), "wb").write(big)
    files["big.bin"] = big
    partial = random.Random(12).randbytes(20 * MiB)  # only its head is ever read before the end
    open(os.path.join(src, "partial.bin"), "wb").write(partial)
    commit = ingest(origin_exe, data, "org/tiny", src)
    dsrc = os.path.join(tmp, "dsrc")
    os.makedirs(os.path.join(dsrc, "data"))
    dfiles = {"README.md": b"# a dataset\n", "data/train.parquet": random.Random(3).randbytes(3_000_000)}
    for p, b in dfiles.items():
        open(os.path.join(dsrc, p), "wb").write(b)
    ingest(origin_exe, data, "datasets/org/ds", dsrc)
    osrc = os.path.join(tmp, "osrc")
    os.mkdir(osrc)
    other = {"config.json": b'{"other": true}\n', "w.bin": random.Random(5).randbytes(200_000)}
    for p, b in other.items():
        open(os.path.join(osrc, p), "wb").write(b)
    ingest(origin_exe, data, "org/other", osrc)
    ingest(origin_exe, data, "org/other2", osrc)
    origin = Origin(origin_exe, data, tmp)
    proc = None
    # ASan's quarantine keeps what is freed resident (256 MiB by default): off
    # for this daemon, so its RSS is asserted under the sanitizers too
    asan = os.environ.get("ASAN_OPTIONS", "")
    menv = dict(os.environ, ASAN_OPTIONS=(asan + ":" if asan else "") +
                "quarantine_size_mb=0:thread_local_quarantine_size_kb=0")
    try:
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/tiny", "--repo",
                                   "datasets/org/ds", "--store", store, "--http", "127.0.0.1:0",
                                   "--metrics", "127.0.0.1:0", "--http-token", TOKEN,
                                   "--http-host", "models.internal"], log, env=menv)
        if not check(os.path.ismount(mnt), "mounted with --http and --metrics"):
            raise RuntimeError("no mount")
        log.flush()
        text = open(log.name).read()
        hp = re.search(r"zestfs: http on 127\.0\.0\.1:(\d+)", text)
        mp = re.search(r"zestfs: metrics on 127\.0\.0\.1:(\d+)", text)
        if not check(hp and mp, "the bound ports are printed"):
            raise RuntimeError("no port")
        port = int(hp.group(1))
        base = f"http://127.0.0.1:{port}"
        c = Client(base)
        mc = Client(f"http://127.0.0.1:{mp.group(1)}")
        tree = json.load(open(os.path.join(mnt, "models--org--tiny", "trees", commit + ".json")))
        xet = {p: tree["files"][p]["xet_hash"] for p in files if "xet_hash" in tree["files"][p]}

        st0, _, body = mc.req("/metrics")
        m0, _ = parse_metrics(body.decode())

        # the token
        st, _, _ = c.req("/org/tiny/resolve/main/config.json", token=False)
        check(st == 401, f"no token: 401 ({st})")
        st, _, _ = c.req("/org/tiny/resolve/main/config.json", headers={"Authorization": "Bearer nope"},
                         token=False)
        check(st == 401, f"wrong token: 401 ({st})")
        st, _, _ = mc.req("/metrics", token=False)
        check(st == 401, f"metrics listener, no token: 401 ({st})")

        surfaces(check, proc, port, int(mp.group(1)), other)

        # memory: a slow reader of big.bin (cold) must not make the daemon hold the file
        r0 = rss(proc.pid)[0]
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /org/tiny/resolve/main/big.bin HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port +
                  b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
        got, peak = b"", r0
        t0 = time.time()
        while time.time() - t0 < 4:
            got += s.recv(1024)
            peak = max(peak, rss(proc.pid)[0])
            time.sleep(0.05)
        hdr, _, first = got.partition(b"\r\n\r\n")
        s.close()
        check(hdr.startswith(b"HTTP/1.1 200") and first and big.startswith(first),
              f"slow reader: 200 and the first {len(first)} bytes exact")
        print(f"RSS before {r0 >> 20} MiB, peak while streaming to a slow reader {peak >> 20} MiB "
              f"(file {len(big) >> 20} MiB)")
        check(peak - r0 < len(big) // 2, f"RSS grew by {(peak - r0) >> 20} MiB < half the file")

        # cold full GETs of every file, byte-exact, with the Hub's headers
        for p, b in sorted(files.items()):
            st, h, body = c.req("/org/tiny/resolve/main/" + p)
            ok = st == 200 and body == b
            check(ok, f"GET {p}: 200 byte-exact ({st}, {len(body)} of {len(b)} bytes)")
            check(h.get("Content-Length") == str(len(b)) and h.get("Accept-Ranges") == "bytes" and
                  h.get("X-Repo-Commit") == commit and
                  h.get("ETag") in ('"%s"' % hashlib.sha256(b).hexdigest(), '"%s"' % fsutil.git_sha1(b)),
                  f"GET {p}: Content-Length, Accept-Ranges, X-Repo-Commit, ETag {h.get('ETag')}")
        rc, out, err = curl([base + "/org/tiny/resolve/main/model.safetensors"])
        check(rc == 0 and out == files["model.safetensors"], f"curl: model.safetensors byte-exact {err}")
        rc, out, err = curl(["-o", "/dev/null", "-w", "%{http_code}", base + f"/org/tiny/resolve/{commit}/sub/dir/notes.txt"])
        check(out == b"200", f"curl: revision given as the commit ({out})")
        for p, b in dfiles.items():
            st, h, body = c.req("/datasets/org/ds/resolve/main/" + p)
            check(st == 200 and body == b, f"dataset: GET {p} byte-exact ({st})")

        # HEAD
        st, h, body = c.req("/org/tiny/resolve/main/model.safetensors", method="HEAD")
        n = len(files["model.safetensors"])
        check(st == 200 and body == b"" and h.get("Content-Length") == str(n) and
              h.get("X-Repo-Commit") == commit and h.get("ETag"), f"HEAD: headers, no body ({st})")
        rc, out, err = curl(["-I", base + "/org/tiny/resolve/main/weights.bin"])
        hl = out.decode(errors="replace").lower()
        check(rc == 0 and "200" in hl.splitlines()[0] and "content-length: 1000000" in hl and
              "accept-ranges: bytes" in hl and "etag:" in hl, "curl -I: status and headers")

        # ranges (curl -r and urllib Range)
        b = files["model.safetensors"]
        n = len(b)
        W = 8 * MiB
        cases = [("0-0", 0, 1), (f"{n - 1}-{n - 1}", n - 1, n), ("1000-1999", 1000, 2000),
                 ("-500", n - 500, n), (f"{n - 100}-", n - 100, n), (f"{W - 10}-{W + 10}", W - 10, W + 11),
                 (f"{W - 1}-{3 * W + 5}", W - 1, 3 * W + 6), (f"{n - 10}-{n + 1000}", n - 10, n),
                 (f"-{n + 5}", 0, n)]
        for spec, a, e in cases:
            st, h, body = c.req("/org/tiny/resolve/main/model.safetensors", headers={"Range": "bytes=" + spec})
            check(st == 206 and body == b[a:e] and h.get("Content-Range") == f"bytes {a}-{e - 1}/{n}" and
                  h.get("Content-Length") == str(e - a), f"Range {spec}: 206, Content-Range, bytes ({st})")
            rc, out, err = curl(["-r", spec, base + "/org/tiny/resolve/main/model.safetensors"])
            check(rc == 0 and out == b[a:e], f"curl -r {spec}: bytes")
        st, h, body = c.req("/org/tiny/resolve/main/model.safetensors", headers={"Range": f"bytes={n}-"})
        check(st == 416 and h.get("Content-Range") == f"bytes */{n}", f"Range past the end: 416 ({st} {h.get('Content-Range')})")
        st, h, body = c.req("/org/tiny/resolve/main/empty.bin", headers={"Range": "bytes=0-"})
        check(st == 416 and h.get("Content-Range") == "bytes */0", f"Range on an empty file: 416 ({st})")
        st, h, body = c.req("/org/tiny/resolve/main/model.safetensors", headers={"Range": "bytes=0-1,5-9"})
        check(st == 200 and body == b, f"multi-range: the whole file, 200 ({st})")
        st, h, body = c.req("/org/tiny/resolve/main/config.json", headers={"Range": "bytes=2-5"})
        check(st == 206 and body == files["config.json"][2:6], f"range of a non-Xet file ({st})")

        # /xet/{id}
        for p in ("weights.bin", "extra.safetensors"):
            st, h, body = c.req("/xet/" + xet[p])
            check(st == 200 and body == files[p], f"/xet/ id of {p}: byte-exact ({st})")
        st, h, body = c.req("/xet/" + xet["extra.safetensors"], headers={"Range": "bytes=9000000-9000999"})
        check(st == 206 and body == files["extra.safetensors"][9000000:9001000], f"/xet/ with Range ({st})")
        st, h, body = c.req("/xet/" + xet["weights.bin"].upper(), method="HEAD")
        check(st == 200 and h.get("Content-Length") == "1000000", f"/xet/ HEAD, upper-case id ({st})")

        # 404s, 405
        for path, what in [("/org/tiny/resolve/main/nope.bin", "unknown file"),
                           ("/org/tiny/resolve/main/sub", "a directory"),
                           ("/org/nosuch/resolve/main/config.json", "unknown repo"),
                           ("/org/tiny/resolve/nosuchrev/config.json", "unknown revision"),
                           ("/xet/" + "ab" * 32, "unknown Xet id"), ("/xet/zz", "bad Xet id"),
                           ("/org/tiny/blob/main/config.json", "not a resolve path"),
                           ("/org/tiny/resolve/main/../x", "a path with ..")]:
            st, h, body = c.req(path)
            check(st == 404 and body, f"404 for {what} ({st}, {h.get('X-Error-Code')})")
        st, h, _ = c.req("/org/tiny/resolve/main/config.json", method="DELETE")
        check(st == 405, f"DELETE: 405 ({st})")

        # 16 ranged requests at once
        rng = random.Random(5)
        reqs = []
        for i in range(16):
            p = rng.choice(["model.safetensors", "extra.safetensors", "big.bin"])
            a = rng.randrange(len(files[p]))
            e = min(len(files[p]), a + rng.randrange(1, 6 * MiB))
            reqs.append((p, a, e))

        def one(x):
            p, a, e = x
            return c.req("/org/tiny/resolve/main/" + p, headers={"Range": f"bytes={a}-{e - 1}"})

        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            res = list(ex.map(one, reqs))
        bad = [f"{p}@{a}" for (p, a, e), (st, h, body) in zip(reqs, res)
               if st != 206 or body != files[p][a:e]]
        check(not bad, f"16 concurrent ranged requests byte-exact {bad[:3]}")

        st, h, body = c.req("/org/tiny/resolve/main/partial.bin", headers={"Range": "bytes=0-999"})
        check(st == 206 and body == partial[:1000], f"partial.bin: its head ({st})")

        snap = os.path.join(mnt, "models--org--tiny", "snapshots", commit)
        check(open(os.path.join(snap, "vocab.txt"), "rb").read() == files["vocab.txt"],
              "a FUSE read of vocab.txt (counted in /metrics)")

        # /metrics on both listeners
        for cl, what in ((c, "http listener"), (mc, "metrics listener")):
            st, h, body = cl.req("/metrics")
            try:
                m, types = parse_metrics(body.decode())
                valid = True
            except ValueError as e:
                valid, m, types = False, {}, {}
                print(e)
            check(st == 200 and valid and h.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
                  f"/metrics on the {what}: 200, text format 0.0.4, every line valid ({st})")
        check(types.get("zestfs_read_duration_seconds") == "histogram" and
              hist_ok(m, "zestfs_read_duration_seconds") and
              hist_ok(m, "zestfs_fetch_duration_seconds", 'source="cdn"') and
              'zestfs_read_duration_seconds_bucket{le="0.0001"}' in m and
              'zestfs_read_duration_seconds_bucket{le="10"}' in m,
              "histograms: buckets in seconds, cumulative, +Inf = count")
        for k in ("zestfs_reads_total", 'zestfs_bytes_total{source="cdn"}', "zestfs_store_puts_total",
                  "zestfs_store_used_bytes", "zestfs_http_requests_total", "zestfs_http_sent_bytes_total",
                  "zestfs_read_duration_seconds_count", 'zestfs_fetch_duration_seconds_count{source="cdn"}',
                  "zestfs_http_reads_total", 'zestfs_store_lookups_total{result="miss"}'):
            check(m.get(k, 0) > m0.get(k, 0), f"{k} grew after reads ({m0.get(k)} -> {m.get(k)})")
        for k in ('zestfs_bytes_total{source="store"}', 'zestfs_bytes_total{source="peer"}',
                  "zestfs_store_capacity_bytes", "zestfs_store_evictions_total",
                  "zestfs_store_corrupt_segments_total", "zestfs_verify_failures_total",
                  "zestfs_peer_bans_total", "zestfs_fetches_in_flight",
                  'zestfs_reads_by_outcome_total{outcome="store"}',
                  'zestfs_reads_by_outcome_total{outcome="waited"}',
                  'zestfs_store_lookups_total{result="hit"}', "zestfs_peers_connected",
                  "zestfs_peer_swarms", 'zestfs_peer_data_bytes_total{direction="up"}',
                  'zestfs_peer_data_bytes_total{direction="down"}'):
            check(k in m, f"{k} exported")
        st, _, _ = mc.req("/org/tiny/resolve/main/config.json")
        check(st == 404, f"the metrics listener serves /metrics only ({st})")

        # the origin gone: no bytes -> 502/503; first piece stored, rest not -> cut short
        origin.stop()
        origin = None
        st, h, body = c.req("/org/tiny/resolve/main/extra.safetensors", headers={"Range": "bytes=0-999"})
        check(st == 206, f"stored range still served with the origin gone ({st})")
        st, h, body = c.req("/datasets/org/ds/resolve/main/data/train.parquet")
        check(st == 200 and body == dfiles["data/train.parquet"], f"stored file served ({st})")
        st, h, body = c.req("/org/tiny/resolve/main/partial.bin", headers={"Range": f"bytes={15 * MiB}-"})
        check(st in (502, 503) and body.strip() and h.get("Content-Type", "").startswith("text/plain"),
              f"bytes that cannot be had: {st} with a text body {body[:80]!r}")
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /org/tiny/resolve/main/partial.bin HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port +
                  b"Connection: close\r\n"
                  b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
        s.settimeout(120)
        got = b""
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            got += d
        s.close()
        hdr, _, body = got.partition(b"\r\n\r\n")
        check(hdr.startswith(b"HTTP/1.1 200") and b"Content-Length: %d" % len(partial) in hdr and
              0 < len(body) < len(partial) and partial.startswith(body),
              f"read error mid-body: 200 then the connection is cut ({len(body)} of {len(partial)} bytes)")

        # unmounting with a connection open mid-body ends the daemon cleanly
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /org/tiny/resolve/main/big.bin HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port +
                  b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
        s.recv(1024)
        rc = unmount(proc, mnt)
        s.close()
        check(rc == 0, f"unmount with an HTTP connection open mid-body: exit 0 ({rc})")
        proc = None
        origin = Origin(origin_exe, data, tmp)
        no_token(check, zestfs, origin, store, mnt, log, other)
    finally:
        if origin:
            origin.stop()
        if proc and proc.poll() is None:
            unmount(proc, mnt)
    return run.finish(proc, mnt, None)


def raw(port, req, src="127.0.0.1", timeout=30):
    """Send req on a new connection from src; the whole answer (until EOF)."""
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.sendall(req)
    got = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    return got


def get(path, host, token=TOKEN, close=True):
    h = b"GET %s HTTP/1.1\r\nHost: %s\r\n" % (path.encode(), host.encode())
    if token:
        h += b"Authorization: Bearer %s\r\n" % token.encode()
    if close:
        h += b"Connection: close\r\n"
    return h + b"\r\n"


def status_of(ans):
    m = re.match(rb"HTTP/1\.[01] (\d+)", ans)
    return int(m.group(1)) if m else None


def dropped_within(port, first, step, limit=30):
    """Send `first`, then one byte of `step` every 0.5 s: seconds until
    the server closes the connection, or None if it held on past limit."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(first)
    t0 = time.time()
    i = 0
    try:
        while time.time() - t0 < limit:
            s.sendall(step[i % len(step):i % len(step) + 1])
            i += 1
            s.settimeout(0.5)
            try:
                if s.recv(4096) == b"":
                    return time.time() - t0
            except socket.timeout:
                pass
    except (BrokenPipeError, ConnectionResetError):
        return time.time() - t0
    finally:
        s.close()
    return None


def surfaces(check, proc, port, mport, other):
    """Host checks, argv, on-demand repos with the token, slow clients,
    per-address limits (issue 19, item 5)."""
    path = "/org/tiny/resolve/main/config.json"
    for host, what in [("evil.example:%d" % port, "a foreign name with the port"),
                       ("evil.example", "a foreign name"),
                       ("127.0.0.1:%d" % (port + 1 if port < 65535 else port - 1), "another port"),
                       ("127.0.0.2:%d" % port, "another address"),
                       ("127.0.0.1:%d:1" % port, "malformed"),
                       ("", "empty")]:
        ans = raw(port, get(path, host))
        check(status_of(ans) == 421 and b"MisdirectedRequest" in ans and b"--http-host" in ans,
              f"Host {host!r} ({what}): 421 with a clear error ({ans[:12]!r})")
    ans = raw(port, b"GET %s HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n" % (path.encode(), TOKEN.encode()))
    check(status_of(ans) == 421, f"no Host header: 421 ({ans[:12]!r})")
    ans = raw(port, get(path, "evil.example:%d" % port, token=None))
    check(status_of(ans) == 421, f"foreign Host, no token: 421 before 401 ({ans[:12]!r})")
    ans = raw(mport, get("/metrics", "rebind.example:%d" % mport))
    check(status_of(ans) == 421, f"metrics listener, foreign Host: 421 ({ans[:12]!r})")
    for host in ("127.0.0.1:%d" % port, "localhost:%d" % port, "LOCALHOST:%d" % port,
                 "models.internal", "models.internal:8080", "Models.Internal"):
        ans = raw(port, get(path, host))
        check(status_of(ans) == 200, f"Host {host!r}: 200 ({ans[:12]!r})")
    cmd = open(f"/proc/{proc.pid}/cmdline", "rb").read()
    check(TOKEN.encode() not in cmd and b"--http-token" in cmd,
          "--http-token is blanked in /proc/PID/cmdline")

    # a repo that is not presented: added on demand for a request with the token
    ans = raw(port, get("/org/other/resolve/main/w.bin", "127.0.0.1:%d" % port))
    hdr, _, body = ans.partition(b"\r\n\r\n")
    check(status_of(ans) == 200 and body == other["w.bin"],
          f"with the token a repo not presented is resolved and served ({ans[:12]!r}, {len(body)})")

    # slowloris: headers dribbled, a body dribbled; others still served
    t = dropped_within(port, b"GET " + path.encode(), b" HTTP/1.1\r\nX-Slow: " + b"a" * 64)
    check(t is not None and t < 30, f"a client dribbling its headers is dropped ({t})")
    t = dropped_within(port, get(path, "127.0.0.1:%d" % port, close=False)[:-2] +
                       b"Content-Length: 1000000\r\n\r\n", b"x")
    check(t is not None and t < 30, f"a client dribbling its body is dropped ({t})")
    ans = raw(port, get(path, "127.0.0.1:%d" % port))
    check(status_of(ans) == 200, "others are served meanwhile")

    # per-address limit: 64 connections from 127.0.0.1 held open
    held = []
    try:
        for _ in range(64):
            s = socket.create_connection(("127.0.0.1", port))
            held.append(s)
        time.sleep(0.5)
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(5)
        try:
            s.sendall(get(path, "127.0.0.1:%d" % port))
            extra = s.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            extra = b""
        except socket.timeout:
            extra = None
        s.close()
        check(extra == b"", f"the 65th connection from one address is refused ({extra!r:.40})")
        ans = raw(port, get(path, "127.0.0.1:%d" % port), src="127.0.0.2")
        check(status_of(ans) == 200, f"another address is served meanwhile ({ans[:12]!r})")
    finally:
        for s in held:
            s.close()
    time.sleep(0.5)
    ans = raw(port, get(path, "127.0.0.1:%d" % port))
    check(status_of(ans) == 200, f"served again once they closed ({ans[:12]!r})")


def no_token(check, zestfs, origin, store, mnt, log, other):
    """Without --http-token no repo is added on demand; the token from a
    file or $ZESTFS_HTTP_TOKEN works."""
    base = ["--endpoint", origin.url, "--repo", "org/tiny", "--store", store, "--http", "127.0.0.1:0"]

    def port_of():
        log.flush()
        return int(re.findall(r"zestfs: http on 127\.0\.0\.1:(\d+)", open(log.name).read())[-1])

    proc = mount(zestfs, mnt, base, log)
    try:
        port = port_of()
        ans = raw(port, get("/org/other2/resolve/main/w.bin", "127.0.0.1:%d" % port, token=None))
        check(status_of(ans) == 404 and b"RepoNotFound" in ans and b"--http-token" in ans,
              f"no --http-token: a repo not presented is not resolved (404) ({ans[:12]!r})")
        check("models--org--other2" not in os.listdir(mnt),
              "... and does not appear in the mount")
        ans = raw(port, get("/org/tiny/resolve/main/config.json", "127.0.0.1:%d" % port, token=None))
        check(status_of(ans) == 200, f"no --http-token: presented repos are served ({ans[:12]!r})")
    finally:
        check(unmount(proc, mnt) == 0, "unmounted (no token)")
    tf = os.path.join(os.path.dirname(store), "http-token")
    with open(tf, "w") as f:
        f.write("from-a-file-tok\n")
    os.chmod(tf, 0o600)
    for extra, env, tok in ((["--http-token-file", tf], None, "from-a-file-tok"),
                            ([], "from-the-env-tok", "from-the-env-tok")):
        old = os.environ.get("ZESTFS_HTTP_TOKEN")
        if env:
            os.environ["ZESTFS_HTTP_TOKEN"] = env
        try:
            proc = mount(zestfs, mnt, base + extra, log)
        finally:
            if env:
                os.environ.pop("ZESTFS_HTTP_TOKEN")
        try:
            port = port_of()
            a1 = raw(port, get("/org/tiny/resolve/main/config.json", "127.0.0.1:%d" % port, token=None))
            a2 = raw(port, get("/org/tiny/resolve/main/config.json", "127.0.0.1:%d" % port, token=tok))
            what = "--http-token-file" if extra else "$ZESTFS_HTTP_TOKEN"
            check(status_of(a1) == 401 and status_of(a2) == 200,
                  f"{what}: 401 without, 200 with ({a1[:12]!r} {a2[:12]!r})")
        finally:
            check(unmount(proc, mnt) == 0, "unmounted")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""zestfs-origin fault knobs, each observed: latency, every-Nth 5xx,
truncated bodies, flipped bits, per-connection and total bandwidth caps,
token and URL expiry; set by flag and through /_origin/knobs; counters.

usage: test_faults.py [path/to/zestfs-origin]
"""
import http.client
import os
import shutil
import tempfile
import threading
import time

from origin_util import Checker, Origin, find_exe, ingest, main_wrapper, rand_bytes


def signed(o, tok, fh):
    st, h, j = o.json("GET", f"/v2/reconstructions/{fh}", {"Authorization": "Bearer " + tok})
    xh, entries = next(iter(j["xorbs"].items()))
    r = entries[0]["ranges"][0]["bytes"]
    return xh, entries[0]["url"], r["start"], r["end"]


def fetch_raw(o, url, rng):
    """GET that tolerates a truncated body: -> (status, bytes received)."""
    c = http.client.HTTPConnection("127.0.0.1", o.port, timeout=30)
    path = url.split(str(o.port), 1)[1]
    c.request("GET", path, headers={"Range": rng})
    r = c.getresponse()
    try:
        data = r.read()
    except http.client.IncompleteRead as e:
        data = e.partial
    c.close()
    return r.status, data, int(r.getheader("Content-Length", "-1"))


def main():
    exe = find_exe()
    c = Checker("origin-faults")
    tmp = tempfile.mkdtemp(prefix="zo-faults-")
    try:
        data = os.path.join(tmp, "data")
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        blob = rand_bytes(31, 3_000_000)
        open(os.path.join(src, "model.safetensors"), "wb").write(blob)
        open(os.path.join(src, "config.json"), "wb").write(b'{"a": 1}')
        ingest(exe, data, "org/f", src, "--scheme", "none")
        xorb_file = None
        with Origin(exe, data) as o:
            st, h, b = o.req("HEAD", "/org/f/resolve/main/model.safetensors")
            fh = h["x-xet-hash"]
            tok = o.token("org/f")["accessToken"]
            xh, url, s, e = signed(o, tok, fh)
            xorb_file = open(os.path.join(data, "xorbs", xh), "rb").read()
            rng = f"bytes={s}-{e}"
            want = xorb_file[s:e + 1]

            st, h, k = o.json("GET", "/_origin/knobs")
            off = {"latency_ms": 0, "conn_bps": 0, "total_bps": 0, "fail_every": 0, "truncate_every": 0,
                   "flip_every": 0, "refuse_xorbs": 0, "stall_every": 0, "stall_ms": 60000,
                   "token_ttl": 0, "url_ttl": 0}  # the real Hub's knobs: test_hubreal.py
            c.eq({x: v for x, v in k.items() if x in off}, off, "all knobs off by default")
            st, d, _ = fetch_raw(o, url, rng)
            c.eq((st, d == want), (206, True), "clean fetch")

            # latency
            # (a latency far above any scheduling delay, so that "off again"
            # needs no tight bound: < 5 s, where the knob would take 10)
            o.knobs(latency_ms=10000)
            t0 = time.time()
            o.req("GET", "/api/models/org/f")
            c.ok(time.time() - t0 >= 9.9, "latency_ms delays answers")
            o.knobs(latency_ms=0)
            t0 = time.time()
            o.req("GET", "/api/models/org/f")
            c.ok(time.time() - t0 < 5, "latency off again")

            # every Nth request fails
            o.knobs(fail_every=3)
            sts = [o.req("GET", "/api/models/org/f")[0] for _ in range(6)]
            c.eq(sts, [200, 200, 503, 200, 200, 503], "fail_every=3 -> every third request 503")
            o.knobs(fail_every=0)

            # truncated bodies
            o.knobs(truncate_every=2)
            st1, d1, cl1 = fetch_raw(o, url, rng)
            st2, d2, cl2 = fetch_raw(o, url, rng)
            c.eq(d1, want, "truncate_every=2: first body complete")
            c.ok(cl2 == len(want) and len(d2) < cl2, f"truncate_every=2: second body cut ({len(d2)} of {cl2})")
            c.ok(d2 == want[:len(d2)], "truncated body is a prefix")
            st3, d3, cl3 = fetch_raw(o, "http://127.0.0.1:%d/org/f/resolve/main/config.json" % o.port, "bytes=0-7")
            st4, d4, cl4 = fetch_raw(o, "http://127.0.0.1:%d/org/f/resolve/main/config.json" % o.port, "bytes=0-7")
            c.ok(len(d3) < 8 or len(d4) < 8, "truncation also applies to regular files")
            o.knobs(truncate_every=0)

            # a stalled xorb body: half of it, silence for stall_ms, then closed
            o.knobs(stall_every=1, stall_ms=1500)
            t0 = time.time()
            st, d, cl = fetch_raw(o, url, rng)
            dt = time.time() - t0
            c.ok(cl == len(want) and 0 < len(d) < cl and d == want[:len(d)] and dt >= 1.4,
                 f"stall_every=1: a prefix ({len(d)} of {cl}), then {dt:.1f} s of silence and a close")
            o.knobs(stall_every=0)

            # flipped bits in xorb bytes
            o.knobs(flip_every=1)
            st, d, _ = fetch_raw(o, url, rng)
            diff = [i for i in range(len(want)) if d[i] != want[i]]
            c.ok(len(d) == len(want) and len(diff) == 1 and bin(d[diff[0]] ^ want[diff[0]]).count("1") == 1,
                 "flip_every=1: exactly one bit flipped")
            st, d, _ = fetch_raw(o, "http://127.0.0.1:%d/org/f/resolve/main/config.json" % o.port, "bytes=0-7")
            c.eq(d, b'{"a": 1}', "flip only affects xorb bytes")
            o.knobs(flip_every=0)
            c.ok(o.stats()["faults"] >= 4, "fault counter")

            # per-connection bandwidth cap: ~1.5 MB at 1 MB/s
            o.knobs(conn_bps=1_000_000)
            t0 = time.time()
            st, d, _ = fetch_raw(o, url, rng)
            dt = time.time() - t0
            c.ok(d == want and dt >= 0.8 * len(want) / 1e6, f"conn_bps: {len(want)} bytes took {dt:.2f}s")
            o.knobs(conn_bps=0)

            # total bandwidth cap shared by parallel connections
            o.knobs(total_bps=2_000_000)
            res = []

            def one():
                res.append(fetch_raw(o, url, rng)[1] == want)

            th = [threading.Thread(target=one) for _ in range(3)]
            t0 = time.time()
            for t in th:
                t.start()
            for t in th:
                t.join()
            dt = time.time() - t0
            c.ok(all(res) and len(res) == 3 and dt >= 0.8 * 3 * len(want) / 2e6,
                 f"total_bps: 3 parallel bodies took {dt:.2f}s")
            o.knobs(total_bps=0)

            # expiry of tokens and signed URLs
            o.knobs(token_ttl=1, url_ttl=1)
            t1 = o.token("org/f")
            c.ok(t1["exp"] <= time.time() + 2, "token_ttl shortens exp")
            _, url1, s1, e1 = signed(o, t1["accessToken"], fh)
            st, d, _ = fetch_raw(o, url1, f"bytes={s1}-{e1}")
            c.eq(st, 206, "fresh URL works")
            time.sleep(2.2)
            st, h, j = o.json("GET", f"/v2/reconstructions/{fh}", {"Authorization": "Bearer " + t1["accessToken"]})
            c.eq(st, 401, "expired token -> 401")
            st, d, _ = fetch_raw(o, url1, f"bytes={s1}-{e1}")
            c.eq(st, 403, "expired URL -> 403")
            o.knobs(token_ttl=0, url_ttl=0)

        # knobs by flag
        with Origin(exe, data, ["--fail-every", "2", "--latency-ms", "100"]) as o:
            t0 = time.time()
            sts = [o.req("GET", "/api/models/org/f")[0] for _ in range(4)]
            c.eq(sts, [200, 503, 200, 503], "--fail-every flag")
            c.ok(time.time() - t0 >= 0.39, "--latency-ms flag")
            st, h, k = o.json("GET", "/_origin/knobs")
            c.eq((k["fail_every"], k["latency_ms"]), (2, 100), "knobs reflect flags")
            c.eq(o.req("GET", "/_origin/stats")[0], 200, "control endpoint exempt from faults")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c.done()


if __name__ == "__main__":
    main_wrapper(main)

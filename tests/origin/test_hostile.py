#!/usr/bin/env python3
"""zestfs-origin against hostile clients (issue #19): every request is
authorized from its headers before a byte of its body is read, and each
route caps its body (413 at once past it).  Raw sockets on loopback, so the
test sends the headers alone and looks for the answer before any body; the
origin's RSS (/proc/PID/status) shows nothing was buffered.

usage: test_hostile.py [path/to/zestfs-origin]
"""
import os
import shutil
import socket
import tempfile
import time

from origin_util import Checker, Origin, find_exe, ingest, main_wrapper, make_model_dir

MiB = 1 << 20
XORB = "ab" * 32


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def head_only(o, method, path, headers, timeout=30):
    """Send a request's headers (no body) and read the answer's status line.
    -> (status or None when the connection closed without one, seconds)"""
    s = socket.create_connection(("127.0.0.1", o.port), timeout=timeout)
    t0 = time.monotonic()
    try:
        h = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{o.port}\r\n"
        h += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        s.sendall(h.encode())
        buf = b""
        while b"\r\n" not in buf:
            try:
                d = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                d = b""
            if not d:
                break
            buf += d
        line = buf.split(b"\r\n", 1)[0].split()
        st = int(line[1]) if len(line) >= 2 and line[0].startswith(b"HTTP/1.") else None
        return st, time.monotonic() - t0, s
    except Exception:
        s.close()
        raise


def push_body(s, total, block=MiB, timeout=5):
    """Try to push `total` body bytes after a refusal; -> bytes the socket took.
    A server that does not read stops taking them once the buffers are full."""
    s.settimeout(timeout)
    sent, z = 0, bytes(block)
    try:
        while sent < total:
            sent += s.send(z[: min(block, total - sent)])
    except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
        pass
    return sent


def main():
    exe = find_exe()
    c = Checker("origin-hostile")
    tmp = tempfile.mkdtemp(prefix="zo-hostile-")
    try:
        data = os.path.join(tmp, "data")
        src = os.path.join(tmp, "src")
        make_model_dir(src, big=100_000)
        ingest(exe, data, "org/tiny", src)
        with Origin(exe, data, ["--token", "hf_good"]) as o:
            good = {"Authorization": "Bearer hf_good"}
            wtok = o.token(write=True, hub_token="hf_good")["accessToken"]
            rtok = o.token(write=False)["accessToken"]
            pid = o.p.pid
            # warm the server up, then take its resident size
            for _ in range(3):
                o.req("GET", "/api/models/org/tiny")
            rss0 = rss_kib(pid)

            # ---- an unauthenticated 80 MiB upload: 401 from the headers alone ----
            big = 80 * MiB
            refused = [
                (f"/v1/xorbs/default/{XORB}", {}, 401, "xorb upload without a token"),
                (f"/v1/xorbs/default/{XORB}", {"Authorization": "Bearer zo1_00_" + "0" * 64}, 401,
                 "xorb upload with a forged token"),
                (f"/v1/xorbs/default/{XORB}", {"Authorization": "Bearer " + rtok}, 403,
                 "xorb upload with a read token"),
                ("/v1/shards", {}, 401, "v1 shard upload without a token"),
                ("/v2/shards", {"Authorization": "Bearer " + rtok}, 403, "v2 shard upload, read token"),
                ("/api/models/org/tiny/commit/main", {}, 401, "commit without a Hub token"),
                ("/api/models/org/tiny/commit/main", {"Authorization": "Bearer hf_bad"}, 401,
                 "commit with a wrong Hub token"),
                ("/api/models/org/tiny/paths-info/main", {"Authorization": "Bearer hf_bad"}, 401,
                 "paths-info with a wrong Hub token"),
                ("/api/repos/create", {}, 401, "repo create without a Hub token"),
            ]
            for path, hdr, want, what in refused:
                h = {"Content-Length": str(big), "Content-Type": "application/octet-stream", **hdr}
                st, secs, s = head_only(o, "POST", path, h)
                c.eq(st, want, what + ": answered before the body")
                c.ok(secs < 30, f"{what}: answered in {secs:.2f} s")
                took = push_body(s, big)
                s.close()
                c.ok(took < 32 * MiB, f"{what}: body not consumed ({took / MiB:.1f} MiB taken)")
            rss1 = rss_kib(pid)
            print(f"# RSS before {rss0} KiB, after {len(refused)} refused 80 MiB uploads {rss1} KiB",
                  flush=True)
            c.ok(rss1 - rss0 < 8 * 1024, f"RSS grew by {rss1 - rss0} KiB (< 8 MiB)")

            # ---- per-route caps: 413 from Content-Length, before the body ----
            for method, path, hdr, n, what in [
                ("POST", f"/v1/xorbs/default/{XORB}", {"Authorization": "Bearer " + wtok}, 66 * MiB,
                 "xorb over 65 MiB"),
                ("POST", "/v1/shards", {"Authorization": "Bearer " + wtok}, 81 * MiB, "shard over 80 MiB"),
                ("POST", "/api/models/org/tiny/commit/main", good, 65 * MiB, "commit over 64 MiB"),
                ("POST", "/api/models/org/tiny/paths-info/main", good, 9 * MiB, "paths-info over 8 MiB"),
                ("POST", "/api/models/org/tiny/preupload/main", good, 9 * MiB, "preupload over 8 MiB"),
                ("POST", "/api/repos/create", good, 65 * 1024, "repo create over 64 KiB"),
                ("POST", "/_origin/knobs", {}, 65 * 1024, "knobs over 64 KiB"),
                ("GET", "/api/models/org/tiny", {}, 10, "a GET with a body"),
                ("POST", "/api/models/org/tiny", good, 10, "a POST to a bodiless route"),
                ("POST", "/org/tiny/resolve/main/config.json", {}, 1, "a POST to resolve"),
            ]:
                st, secs, s = head_only(o, method, path, {"Content-Length": str(n), **hdr})
                c.eq(st, 413, what + ": 413 before the body")
                took = push_body(s, n)
                s.close()
                c.ok(n < 32 * MiB or took < 32 * MiB, f"{what}: body not consumed")
            st, secs, s = head_only(o, "POST", "/api/repos/create", {"Content-Length": "x1", **good})
            s.close()
            c.ok(st in (400, 413), f"a malformed Content-Length refused ({st})")
            rss2 = rss_kib(pid)
            print(f"# RSS after the over-cap uploads {rss2} KiB", flush=True)
            c.ok(rss2 - rss0 < 8 * 1024, f"RSS grew by {rss2 - rss0} KiB (< 8 MiB)")

            # ---- a chunked body past its cap: the connection is closed ----
            s = socket.create_connection(("127.0.0.1", o.port), timeout=30)
            s.sendall(f"POST /_origin/knobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n".encode())
            chunk = b"%x\r\n" % 4096 + b" " * 4096 + b"\r\n"
            took = push_body(s, 64 * len(chunk), block=len(chunk))
            try:
                s.sendall(b"2\r\n{}\r\n0\r\n\r\n")
                ans = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError, socket.timeout, OSError):
                ans = b""
            s.close()
            c.ok(not ans.startswith(b"HTTP/1.1 200"), f"chunked body over the cap refused ({ans[:30]!r})")

            # ---- within the caps everything still works ----
            st, _, j = o.json("POST", "/_origin/knobs", {"Content-Type": "application/json"}, "{}")
            c.eq(st, 200, "small knobs body accepted")
            st, _, j = o.json("POST", f"/v1/xorbs/default/{XORB}", {"Authorization": "Bearer " + wtok},
                              b"\x00" * 100)
            c.eq(st, 400, "authorized xorb upload reaches validation (400 malformed)")
            st, _, j = o.json("POST", "/api/models/org/tiny/paths-info/main",
                              {**good, "Content-Type": "application/json"}, '{"paths": ["config.json"]}')
            c.eq((st, [e.get("path") for e in (j or [])]), (200, ["config.json"]), "paths-info works")
            st, _, j = o.json("POST", "/api/repos/create", {**good, "Content-Type": "application/json"},
                              '{"name": "new", "organization": "org", "type": "model"}')
            c.eq(st, 200, "repo create works")
            # chunked within the cap
            s = socket.create_connection(("127.0.0.1", o.port), timeout=30)
            body = b'{"latency_ms": 0}'
            s.sendall(f"POST /_origin/knobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n".encode() + b"%x\r\n" % len(body) + body +
                      b"\r\n0\r\n\r\n")
            ans = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                ans += d
            s.close()
            c.ok(ans.startswith(b"HTTP/1.1 200"), "chunked body within the cap accepted")
            # the server is still up and lean
            st, _, _ = o.req("GET", "/api/models/org/tiny")
            c.eq(st, 200, "origin still serving")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c.done()


if __name__ == "__main__":
    main_wrapper(main)

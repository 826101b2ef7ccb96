#!/usr/bin/env python3
"""test_http_claims.py ZESTFS [ZESTFS_ORIGIN] — what README.md says of the
HTTP access server (`zestfs --http`) beyond test_http_access.py, against
zestfs-origin on loopback:
  * `X-Error-Code` on 404s: EntryNotFound (no such file in the revision, a
    path that is not /{repo}/resolve/...), RepoNotFound (a repo the Hub does
    not have), RevisionNotFound (a presented repo, a revision the Hub does not
    have);
  * `spaces/` repos: presented with --repo spaces/org/app, through the mount
    (spaces--org--app/snapshots/<commit>/...) and over HTTP
    (/spaces/org/app/resolve/main/...), byte-exact; a space not presented is
    resolved over HTTP too;
  * repos not presented are resolved on the Hub: GET of a file of org/later
    (no --repo for it) answers 200, byte-exact, with X-Repo-Commit = its head,
    and the repo is presented in the mount afterwards; a revision given as a
    commit of it works the same;
  * each connection holds at most 4 MiB: 12 connections GET a 32 MiB file
    and stop reading after the headers (4 KiB receive buffers); while they
    are held the daemon's RSS grows by less than 12 x 8 MiB + 128 MiB (the
    4 MiB held, as much again for allocator and sanitizer overhead, far
    below the 12 x 32 MiB that buffering each response whole would take);
    one of them then reads on to the end, byte-exact.
Exit 0 pass, 1 fail, 77 skip (no /dev/fuse, no origin)."""
import hashlib, os, random, re, socket, sys, time
import urllib.error, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import MiB, Origin, ingest, mount, rss, unmount  # noqa: E402


def get(base, path, headers=None):
    rq = urllib.request.Request(base + path, headers=headers or {})
    try:
        with urllib.request.urlopen(rq, timeout=120) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def stalled_get(port, path):
    """A GET whose client reads the headers, then nothing: (socket, bytes of body read)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(60)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(1024)
        if not d:
            raise RuntimeError("connection closed before the headers")
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("not 200: " + head[:80].decode(errors="replace"))
    return s, body


def main():
    run = fsutil.start("zestfs-httpc-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    data, store, mnt = (os.path.join(tmp, n) for n in ("data", "store", "mnt"))
    os.mkdir(mnt)
    rng = random.Random(23)

    def src(name, files):
        d = os.path.join(tmp, "src-" + name)
        for p, b in files.items():
            os.makedirs(os.path.dirname(os.path.join(d, p)), exist_ok=True)
            open(os.path.join(d, p), "wb").write(b)
        return d

    tiny = {"config.json": b'{"model_type": "tiny"}', "big.bin": rng.randbytes(32 * MiB)}
    tiny_c = ingest(origin_exe, data, "org/tiny", src("tiny", tiny))
    app = {"app.py": b"print('hello from a space')\n", "assets/weights.bin": rng.randbytes(3 * MiB)}
    app_c = ingest(origin_exe, data, "spaces/org/app", src("app", app))
    app2 = {"README.md": b"# another space\n"}
    ingest(origin_exe, data, "spaces/org/app2", src("app2", app2))
    later = {"config.json": b'{"model_type": "later"}', "w.bin": rng.randbytes(2 * MiB)}
    later_c1 = ingest(origin_exe, data, "org/later", src("later", later))
    later["config.json"] = b'{"model_type": "later", "v": 2}'
    later_c2 = ingest(origin_exe, data, "org/later", src("later", later))
    origin = Origin(origin_exe, data, tmp)
    proc, socks = None, []
    try:
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--store", store, "--no-p2p", "--no-dht",
                                   "--repo", "org/tiny", "--repo", "spaces/org/app",
                                   "--http", "127.0.0.1:0"], log)
        if not check(os.path.ismount(mnt), "mounted with --http"):
            raise RuntimeError("no mount")
        log.flush()
        hp = re.search(r"zestfs: http on 127\.0\.0\.1:(\d+)", open(log.name).read())
        if not check(hp, "the HTTP port is printed"):
            raise RuntimeError("no port")
        port = int(hp.group(1))
        base = f"http://127.0.0.1:{port}"

        # ---- X-Error-Code
        for path, code in [("/org/tiny/resolve/main/nope.bin", "EntryNotFound"),
                           (f"/org/tiny/resolve/{tiny_c}/nope.bin", "EntryNotFound"),
                           ("/org/tiny/tree/main/config.json", "EntryNotFound"),
                           ("/org/nosuch/resolve/main/config.json", "RepoNotFound"),
                           ("/datasets/org/nosuch/resolve/main/x", "RepoNotFound"),
                           ("/spaces/org/nosuch/resolve/main/app.py", "RepoNotFound"),
                           ("/org/tiny/resolve/nosuchrev/config.json", "RevisionNotFound"),
                           ("/spaces/org/app/resolve/v9/app.py", "RevisionNotFound")]:
            st, h, body = get(base, path)
            check(st == 404 and h.get("X-Error-Code") == code and body,
                  f"{path}: 404, X-Error-Code {h.get('X-Error-Code')} (want {code})")

        # ---- spaces/
        sdir = os.path.join(mnt, "spaces--org--app")
        check(os.listdir(os.path.join(sdir, "snapshots")) == [app_c], "spaces--org--app presents its commit")
        for p, b in app.items():
            got = open(os.path.join(sdir, "snapshots", app_c, p), "rb").read()
            check(got == b, f"spaces/org/app {p} through the mount, byte-exact")
            st, h, body = get(base, f"/spaces/org/app/resolve/main/{p}")
            check(st == 200 and body == b and h.get("X-Repo-Commit") == app_c,
                  f"GET /spaces/org/app/resolve/main/{p}: byte-exact, X-Repo-Commit ({st})")
        st, h, body = get(base, "/spaces/org/app2/resolve/main/README.md")
        check(st == 200 and body == app2["README.md"], f"a space not presented, over HTTP ({st})")
        check(os.path.isdir(os.path.join(mnt, "spaces--org--app2", "snapshots")), "... and presented in the mount after")

        # ---- repos not presented are resolved on the Hub
        check("models--org--later" not in os.listdir(mnt), "org/later is not presented before")
        st, h, body = get(base, "/org/later/resolve/main/config.json")
        check(st == 200 and body == later["config.json"] and h.get("X-Repo-Commit") == later_c2,
              f"GET of a repo not presented: 200, byte-exact, X-Repo-Commit = head ({st}, {h.get('X-Repo-Commit')})")
        st, h, body = get(base, "/org/later/resolve/main/w.bin", {"Range": "bytes=1000-1999"})
        check(st == 206 and body == later["w.bin"][1000:2000], f"a range of its Xet file ({st})")
        st, h, body = get(base, f"/org/later/resolve/{later_c1}/config.json")
        check(st == 200 and body == b'{"model_type": "later"}' and h.get("X-Repo-Commit") == later_c1,
              f"at an older commit of it ({st})")
        ldir = os.path.join(mnt, "models--org--later")
        check(open(os.path.join(ldir, "refs", "main")).read() == later_c2
              and sorted(os.listdir(os.path.join(ldir, "snapshots"))) == sorted([later_c1, later_c2]),
              "the mount presents org/later afterwards: refs/main = head, both commits")

        # ---- at most 4 MiB per connection
        st, h, body = get(base, "/org/tiny/resolve/main/big.bin", {"Range": "bytes=0-0"})
        check(st == 206, "big.bin answers")
        time.sleep(1)
        base_rss = rss(proc.pid)[0]
        n = 12
        heads = []
        for _ in range(n):
            s, b0 = stalled_get(port, "/org/tiny/resolve/main/big.bin")
            socks.append(s)
            heads.append(b0)
        peak = 0
        for _ in range(30):  # 3 s held: the daemon fills what it may hold
            peak = max(peak, rss(proc.pid)[0])
            time.sleep(0.1)
        grow = peak - base_rss
        limit = n * 8 * MiB + 128 * MiB  # 4 MiB held, as much again and more for the allocator (ASan quarantine)
        print(f"RSS {base_rss >> 20} MiB before, {peak >> 20} MiB peak with {n} stalled connections")
        check(grow < limit, f"{n} stalled GETs of a 32 MiB file: RSS grew {grow >> 20} MiB < {limit >> 20} MiB "
              f"(whole responses would be {n * 32} MiB)")
        s = socks[0]
        h = hashlib.sha256(heads[0])
        got = len(heads[0])
        while got < len(tiny["big.bin"]):
            d = s.recv(1 << 20)
            if not d:
                break
            h.update(d)
            got += len(d)
        check(got == len(tiny["big.bin"]) and h.hexdigest() == hashlib.sha256(tiny["big.bin"]).hexdigest(),
              f"a stalled connection then read to the end: byte-exact ({got} bytes)")
        for s in socks:
            s.close()
        socks = []
        rc = unmount(proc, mnt)
        check(rc == 0, f"unmounted (exit {rc})")
        proc = None
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    finally:
        for s in socks:
            s.close()
        rc = run.finish(proc, mnt, origin)
    return rc


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""test_proxy_api.py ZESTFS [ZESTFS_ORIGIN] — proxy-xet's API on `--http`
(issue 21 item 3): /health, /download/{owner}/{repo}/{path},
/download-hash/{xet hash}[?repo=], and per-request Hub tokens.

Tenants: zestfs-origin runs with `--token TOKA --token TOKB` and
`--gated org/secret=TOKA`: org/secret is private (ingest --private) and
gated with only TOKA on its access list, so TOKB is a valid Hub token that
cannot read it (the origin has no per-token access to private repos; its
gated access list stands in, see origin/README.md).  The mount holds TOKA as
its Hub token, presents org/pub and org/secret and serves --http with its
own --http-token SRV.  Checks:
  - /health without any token: 200 JSON, status "ok", the version
    `zestfs --version` prints, store used/cap, the presented repos; a
    Host that does not name the listener: 421;
  - tenant A (TOKA): /download of a private file byte-exact, with Range
    (206, Content-Range) and HEAD (Content-Length, no body);
    /download-hash of it byte-exact;
  - tenant B (TOKB), after A read the file (so its bytes are stored):
    /download and /download-hash of A's file refused (401/403/404) with no
    byte of the file; ?repo=org/secret refused too; B reads org/pub;
  - a bad token (not known to the origin): 401; no token while
    --http-token is set: 401; the --http-token reads everything;
  - /download-hash of a hash no presented repo names: 404 with an
    X-Error-Message naming ?repo=; with ?repo=org/late (a public repo not
    presented) byte-exact for B, and org/late is then presented.
Exit 0 pass, 1 fail, 77 skip."""
import json, os, random, re, subprocess, sys
import urllib.error, urllib.request

import fsutil
from fsutil import Origin, ingest, mount, unmount

TOKA, TOKB, SRV = "hf_tenant_a_token", "hf_tenant_b_token", "srv-http-token"


def req(base, path, token=None, method="GET", headers=None):
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    rq = urllib.request.Request(base + path, method=method, headers=h)
    try:
        with urllib.request.urlopen(rq, timeout=120) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def main():
    run = fsutil.start("zestfs-proxyapi-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    data, store, mnt = (os.path.join(tmp, n) for n in ("data", "store", "mnt"))
    os.mkdir(mnt)
    rng = random.Random(21)
    files, commits = {}, {}
    for repo, extra in {"org/pub": [], "org/secret": ["--private"], "org/late": [], "org/late2": []}.items():
        src = os.path.join(tmp, "src-" + repo.split("/")[1])
        os.makedirs(src)
        files[repo] = {"w.bin": rng.randbytes(3_000_000), "config.json": json.dumps({"r": repo}).encode()}
        for p, b in files[repo].items():
            open(os.path.join(src, p), "wb").write(b)
        commits[repo] = ingest(origin_exe, data, repo, src, *extra)
    origin = Origin(origin_exe, data, tmp, "--token", TOKA, "--token", TOKB,
                         "--gated", "org/secret=" + TOKA)
    os.environ["HF_HOME"] = os.path.join(tmp, "hf-home")
    os.environ.pop("HF_TOKEN", None)
    os.environ.pop("HF_TOKEN_PATH", None)
    proc = None
    try:
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--token", TOKA, "--repo", "org/pub",
                                   "--repo", "org/secret", "--store", store, "--no-p2p",
                                   "--http", "127.0.0.1:0", "--http-token", SRV], log)
        if not check(os.path.ismount(mnt), "mounted with --http"):
            raise RuntimeError("no mount")
        log.flush()
        hp = re.search(r"zestfs: http on 127\.0\.0\.1:(\d+)", open(log.name).read())
        if not check(hp, "the bound port is printed"):
            raise RuntimeError("no port")
        port = int(hp.group(1))
        base = f"http://127.0.0.1:{port}"

        def xet_of(repo, path):
            tree = json.load(open(os.path.join(mnt, "models--" + repo.replace("/", "--"), "trees",
                                               commits[repo] + ".json")))
            return tree["files"][path].get("xet_hash")

        # ---- /health ----
        st, hd, body = req(base, "/health")
        h = json.loads(body) if st == 200 else {}
        ver = subprocess.run([zestfs, "--version"], capture_output=True, text=True).stdout.split()
        check(st == 200 and hd.get("Content-Type", "").startswith("application/json"),
              f"/health without a token: 200 JSON ({st})")
        check(h.get("status") == "ok", f"/health status ok ({h.get('status')})")
        check(len(ver) >= 2 and h.get("version") == ver[1],
              f"/health version is zestfs --version's ({h.get('version')} vs {ver[:2]})")
        s = h.get("store", {})
        check(isinstance(s.get("used"), int) and isinstance(s.get("cap"), int) and s["cap"] > 0,
              f"/health store used/cap ({s})")
        check(set(h.get("repos", [])) == {"models/org/pub", "models/org/secret"},
              f"/health lists the presented repos ({h.get('repos')})")
        st, _, _ = req(base, "/health", headers={"Host": "evil.example:%d" % port})
        check(st == 421, f"/health with a foreign Host: 421 ({st})")

        sec = files["org/secret"]["w.bin"]
        sec_hash = xet_of("org/secret", "w.bin")
        check(sec_hash and len(sec_hash) == 64, "the private file is in Xet")

        # ---- tenant A ----
        st, hd, body = req(base, "/download/org/secret/w.bin", TOKA)
        check(st == 200 and body == sec, f"A: /download of the private file byte-exact ({st}, {len(body)})")
        check(hd.get("Accept-Ranges") == "bytes" and hd.get("X-Repo-Commit") == commits["org/secret"],
              "A: /download carries Accept-Ranges and X-Repo-Commit")
        st, hd, body = req(base, "/download/org/secret/w.bin", TOKA, headers={"Range": "bytes=1000-2999999"})
        check(st == 206 and body == sec[1000:] and
              hd.get("Content-Range") == f"bytes 1000-2999999/{len(sec)}", f"A: ranged /download 206 exact ({st})")
        st, hd, body = req(base, "/download/org/secret/w.bin", TOKA, headers={"Range": "bytes=-17"})
        check(st == 206 and body == sec[-17:], f"A: suffix range exact ({st})")
        st, hd, body = req(base, "/download/org/secret/w.bin", TOKA, method="HEAD")
        check(st == 200 and body == b"" and hd.get("Content-Length") == str(len(sec)),
              f"A: HEAD /download: Content-Length, no body ({st}, {hd.get('Content-Length')})")
        st, hd, body = req(base, "/download/org/secret/w.bin", TOKA, headers={"Range": "bytes=9999999-"})
        check(st == 416, f"A: range beyond the end: 416 ({st})")
        st, hd, body = req(base, "/download/org/secret/nope.bin", TOKA)
        check(st == 404 and hd.get("X-Error-Code") == "EntryNotFound", f"A: missing file 404 EntryNotFound ({st})")
        st, hd, body = req(base, "/download-hash/" + sec_hash, TOKA)
        check(st == 200 and body == sec, f"A: /download-hash byte-exact ({st}, {len(body)})")
        st, hd, body = req(base, "/download-hash/" + sec_hash, TOKA, headers={"Range": "bytes=5-9"})
        check(st == 206 and body == sec[5:10], f"A: ranged /download-hash ({st})")
        st, _, body = req(base, "/download/org/secret/config.json", TOKA)
        check(st == 200 and body == files["org/secret"]["config.json"], f"A: small file ({st})")

        # ---- tenant B: the bytes are stored now, still refused ----
        for path, what in (("/download/org/secret/w.bin", "by path"),
                           ("/download/org/secret/config.json", "a small file by path"),
                           ("/download-hash/" + sec_hash, "by hash"),
                           ("/download-hash/" + sec_hash + "?repo=org/secret", "by hash with ?repo="),
                           ("/download-hash/" + sec_hash + "?repo=org%2Fsecret", "by hash, ?repo= escaped")):
            for _ in range(2):  # the second from the verdict cache
                st, hd, body = req(base, path, TOKB)
                check(st in (401, 403, 404) and sec[:64] not in body and len(body) < 1000,
                      f"B: A's private file {what}: refused ({st}), no bytes")
            st, _, body = req(base, path, TOKB, method="HEAD")
            check(st in (401, 403, 404), f"B: HEAD {what}: refused ({st})")
        st, hd, _ = req(base, "/download/org/secret/w.bin", TOKB)
        check(st == 403 and hd.get("X-Error-Code") == "GatedRepo" and hd.get("X-Error-Message"),
              f"B: by path the refusal is 403 GatedRepo with X-Error-Message ({st}, {hd.get('X-Error-Code')})")
        st, _, body = req(base, "/download/org/secret/w.bin", TOKA)
        check(st == 200 and body == sec, f"A still reads its file after B was refused ({st})")
        pub = files["org/pub"]["w.bin"]
        st, _, body = req(base, "/download/org/pub/w.bin", TOKB)
        check(st == 200 and body == pub, f"B: a public file byte-exact ({st})")
        st, _, body = req(base, "/download-hash/" + xet_of("org/pub", "w.bin"), TOKB)
        check(st == 200 and body == pub, f"B: a public file by hash byte-exact ({st})")

        # ---- bad tokens, no token, the server's own token ----
        for tok in ("hf_not_a_known_token", TOKA + "x"):
            st, hd, body = req(base, "/download/org/pub/w.bin", tok)
            check(st == 401 and len(body) < 1000, f"bad token on /download: 401 ({st})")
            st, hd, body = req(base, "/download-hash/" + sec_hash, tok)
            check(st in (401, 404) and sec[:64] not in body, f"bad token on /download-hash: refused ({st})")
        st, _, _ = req(base, "/download/org/pub/w.bin")
        check(st == 401, f"no token while --http-token is set: 401 ({st})")
        st, _, body = req(base, "/download/org/secret/w.bin", SRV)
        check(st == 200 and body == sec, f"--http-token reads everything ({st})")
        st, _, _ = req(base, "/org/secret/resolve/main/w.bin", TOKA, method="HEAD")
        check(st == 401, f"a Hub token is not the --http-token on resolve: 401 ({st})")

        # ---- a hash no presented repo names ----
        late = files["org/late"]["w.bin"]
        def origin_hash(repo):
            rq = urllib.request.Request(origin.url + f"/api/models/{repo}/tree/main",
                                        headers={"Authorization": "Bearer " + TOKA})
            with urllib.request.urlopen(rq, timeout=30) as r:
                tree = json.load(r)
            return next((e.get("xetHash") for e in tree if e.get("path") == "w.bin"), None)

        late_hash = origin_hash("org/late")
        check(late_hash and len(late_hash) == 64, "org/late's file hash from the origin's tree")
        st, hd, body = req(base, "/download-hash/" + late_hash, TOKB)
        check(st == 404 and "repo=" in hd.get("X-Error-Message", ""),
              f"unknown hash without ?repo=: 404 naming ?repo= ({st}, {hd.get('X-Error-Message')})")
        st, hd, body = req(base, "/download-hash/" + late_hash + "?repo=org/late", TOKB)
        check(st == 200 and body == late, f"?repo=org/late: byte-exact ({st}, {len(body)})")
        st, _, body = req(base, "/health")
        check(st == 200 and "models/org/late" in json.loads(body).get("repos", []),
              "org/late is presented afterwards")
        st, _, body = req(base, "/download-hash/" + "0" * 64 + "?repo=org/late", TOKB)
        check(st == 404, f"a hash org/late does not name: 404 ({st})")
        st, _, body = req(base, "/download-hash/xyz", TOKB)
        check(st == 404, f"not a hash: 404 ({st})")
        unmount(proc, mnt)
        proc = None

        # ---- without --http-token: no Bearer is an anonymous Hub caller ----
        mnt = os.path.join(tmp, "mnt2")
        os.mkdir(mnt)
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--token", TOKA, "--repo", "org/pub",
                                   "--repo", "org/secret", "--store", store, "--no-p2p",
                                   "--http", "127.0.0.1:0"], log)
        log.flush()
        hp = re.findall(r"zestfs: http on 127\.0\.0\.1:(\d+)", open(log.name).read())
        base = f"http://127.0.0.1:{hp[-1]}"
        st, _, body = req(base, "/download/org/pub/w.bin")
        check(st == 200 and body == pub, f"open server, no Bearer: a public file ({st})")
        st, _, body = req(base, "/download/org/secret/w.bin")
        check(st in (401, 403, 404) and sec[:64] not in body,
              f"open server, no Bearer: the private file refused ({st})")
        st, _, body = req(base, "/download-hash/" + sec_hash)
        check(st == 404 and sec[:64] not in body, f"open server, no Bearer: by hash 404 ({st})")
        st, _, body = req(base, "/download/org/secret/w.bin", TOKB)
        check(st == 403, f"open server: B still refused ({st})")
        st, _, body = req(base, "/download/org/secret/w.bin", TOKA)
        check(st == 200 and body == sec, f"open server: A reads its file ({st})")
        st, _, body = req(base, "/download-hash/" + origin_hash("org/late2") + "?repo=org/late2", TOKB)
        check(st == 404, f"open server: no repo added on demand by ?repo= ({st})")
        st, _, body = req(base, "/download/org/late2/w.bin", TOKB)
        check(st == 404, f"open server: no repo added on demand by /download ({st})")
    except Exception as e:
        check(False, f"exception: {e!r}")
    finally:
        if proc:
            unmount(proc, mnt)
    return run.finish(None, mnt, origin)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Regenerate tests/fuzz/corpus/origin/ from real requests: starts the real
zestfs-origin on the store fuzz_origin.c builds (same files, same fixed
secret, Hub token hf_fuzz), sends the requests the origin's test suites and
the Hub/Xet clients send (repo info, tree, paths-info as form and JSON,
resolve with Range and the Xet file-info Accept, read/write tokens, v1/v2
reconstructions, signed xorb GETs, HEADs, chunk queries, uploads of a real
xorb and of a broken one, shard, preupload, create, commit, bridge, control,
pipelined and chunked requests) through http.client, and stores the exact
bytes each connection sent, one file per connection.  Tokens and signed
URLs are made with the fixed secret and expire in 2100, so the seeds stay
valid for the harness.

usage: make_origin_seeds.py path/to/zestfs-origin
"""
import hashlib
import hmac
import http.client
import json
import os
import shutil
import sys
import tempfile
import urllib.parse

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "origin"))
from origin_util import Origin, ingest  # noqa: E402

SECRET = b"\x5a" * 32
EXP = 4102444800  # 2100-01-01


def fill(n, seed):
    """the bytes of fuzz_origin.c's fill()"""
    x = 2463534242 ^ seed
    out = bytearray(n)
    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x >> 24
    return bytes(out)


def cas_token(scope, commit):
    payload = f"{scope}|model|org/tiny|{commit}|{EXP}".encode()
    mac = hmac.new(SECRET, payload, hashlib.sha256).hexdigest()
    return "zo1_" + payload.hex() + "_" + mac


def signed(url):
    u = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(u.query))
    xh = u.path.rsplit("/", 1)[1]
    rng = q["X-Xet-Signed-Range"]
    sig = hmac.new(SECRET, f"{xh}\n{rng}\n{EXP}".encode(), hashlib.sha256).hexdigest()
    return (f"{u.path}?X-Xet-Signed-Range={urllib.parse.quote(rng, safe='-')}"
            f"&Expires={EXP}&Signature={sig}")


class Rec(http.client.HTTPConnection):
    """An HTTPConnection that keeps every byte it sends."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.sent = b""

    def send(self, data):
        if hasattr(data, "read"):
            data = data.read()
        if isinstance(data, str):
            data = data.encode()
        self.sent += bytes(data)
        super().send(data)


def main():
    exe = os.path.abspath(sys.argv[1])
    out = os.path.join(here, "corpus", "origin")
    tmp = tempfile.mkdtemp(prefix="zo-seeds-")
    seeds = []
    try:
        data = os.path.join(tmp, "data")
        src, psrc = os.path.join(tmp, "src"), os.path.join(tmp, "psrc")
        os.makedirs(data)
        os.makedirs(src)
        os.makedirs(psrc)
        with open(os.path.join(data, "secret"), "wb") as f:
            f.write(SECRET)
        for p, b in {"config.json": b'{"model_type": "fuzz", "hidden": 8}\n',
                     "README.md": b"# fuzz\n", "model.safetensors": fill(300000, 1)}.items():
            with open(os.path.join(src, p), "wb") as f:
                f.write(b)
        with open(os.path.join(psrc, "secret.bin"), "wb") as f:
            f.write(fill(50000, 2))
        commit = ingest(exe, data, "org/tiny", src, "--scheme", "none")
        ingest(exe, data, "org/private", psrc, "--private", "--scheme", "none")
        with Origin(exe, data, ["--token", "hf_fuzz"]) as o:
            def req(name, method, path, headers=None, body=None, more=()):
                c = Rec("127.0.0.1", o.port, timeout=30)
                h = {"User-Agent": "huggingface_hub/0.26; python/3.11", "Accept": "*/*",
                     "Accept-Encoding": "gzip, deflate", **(headers or {})}
                c.request(method, path, body=body, headers=h)
                r = c.getresponse()
                b = r.read()
                for m in more:  # further requests on the same connection
                    c.request(*m)
                    c.getresponse().read()
                c.close()
                assert r.status < 500, (name, r.status, b[:200])
                print(f"{name}: {r.status}")
                seeds.append((name, c.sent))
                return r.status, r, b

            good = {"Authorization": "Bearer hf_fuzz"}
            rtok, wtok = cas_token("read", commit), cas_token("write", commit)
            req("repo-info", "GET", "/api/models/org/tiny")
            req("repo-info-rev", "GET", f"/api/models/org/tiny/revision/{commit}?blobs=true")
            req("tree", "GET", "/api/models/org/tiny/tree/main?recursive=true&expand=true")
            req("tree-cursor", "GET", "/api/models/org/tiny/tree/main/sub?limit=1&cursor=abc")
            req("refs", "GET", "/api/models/org/tiny/refs")
            req("paths-info-form", "POST", "/api/models/org/tiny/paths-info/main",
                {"Content-Type": "application/x-www-form-urlencoded"},
                "paths=config.json&paths=model.safetensors&expand=true")
            req("paths-info-json", "POST", "/api/models/org/tiny/paths-info/main",
                {"Content-Type": "application/json"}, json.dumps({"paths": ["README.md"], "expand": True}))
            req("resolve-head", "HEAD", "/org/tiny/resolve/main/config.json")
            _, r, _ = req("resolve-xet-head", "HEAD", "/org/tiny/resolve/main/model.safetensors")
            fh = r.getheader("X-Xet-Hash")
            req("resolve-range", "GET", "/org/tiny/resolve/main/model.safetensors", {"Range": "bytes=100-4195"})
            req("resolve-fileinfo", "GET", "/org/tiny/resolve/main/model.safetensors",
                {"Accept": "application/vnd.xet-fileinfo+json"})
            req("private-anon", "GET", "/api/models/org/private")
            req("private-token", "GET", "/api/models/org/private/tree/main", good)
            req("private-resolve", "GET", "/org/private/resolve/main/secret.bin", {**good, "Range": "bytes=0-9"})
            req("read-token", "GET", "/api/models/org/tiny/xet-read-token/main")
            req("write-token", "GET", "/api/models/org/tiny/xet-write-token/main", good)
            _, _, b = req("recon-v2", "GET", f"/v2/reconstructions/{fh}", {"Authorization": "Bearer " + rtok})
            rec = json.loads(b)
            req("recon-v1-range", "GET", f"/v1/reconstructions/{fh}",
                {"Authorization": "Bearer " + rtok, "Range": "bytes=1000-70000"})
            xh, entries = next(iter(rec["xorbs"].items()))
            url = signed(entries[0]["url"])
            bs = entries[0]["ranges"][0]["bytes"]
            _, _, xbody = req("xorb-get", "GET", url, {"Range": f"bytes={bs['start']}-{bs['end']}"})
            req("xorb-get-bad-sig", "GET", url[:-4] + "0000")
            req("file-head", "HEAD", f"/v1/files/{fh}", {"Authorization": "Bearer " + rtok})
            req("xorb-head", "HEAD", f"/v1/xorbs/default/{xh}", {"Authorization": "Bearer " + rtok})
            req("chunks", "GET", f"/v1/chunks/default-merkledb/{xh}", {"Authorization": "Bearer " + rtok})
            small = xbody[:4096] if len(xbody) > 4096 else xbody
            req("xorb-post", "POST", f"/v1/xorbs/default/{xh}", {"Authorization": "Bearer " + wtok}, small)
            bad = bytearray(small)
            bad[-1] ^= 1
            req("xorb-post-mismatch", "POST", f"/v1/xorbs/default/{'cd' * 32}",
                {"Authorization": "Bearer " + wtok}, bytes(bad))
            req("xorb-post-anon", "POST", f"/v1/xorbs/default/{xh}", {}, small)
            req("shard-v1", "POST", "/v1/shards", {"Authorization": "Bearer " + wtok}, b"\x00" * 300)
            req("shard-v2-read", "POST", "/v2/shards", {"Authorization": "Bearer " + rtok}, b"\x00" * 300)
            req("preupload", "POST", "/api/models/org/tiny/preupload/main",
                {**good, "Content-Type": "application/json"},
                json.dumps({"files": [{"path": "a.txt", "size": 5, "sample": "aGVsbG8="},
                                      {"path": "w.bin", "size": 9000000, "sample": ""}]}))
            req("create", "POST", "/api/repos/create", {**good, "Content-Type": "application/json"},
                json.dumps({"name": "new", "organization": "org", "type": "model", "private": False}))
            nd = "\n".join(json.dumps(x) for x in [
                {"key": "header", "value": {"summary": "fuzz", "description": ""}},
                {"key": "file", "value": {"content": "aGVsbG8=", "path": "hello.txt", "encoding": "base64"}},
                {"key": "deletedFile", "value": {"path": "README.md"}}]) + "\n"
            req("commit", "POST", "/api/models/org/tiny/commit/main",
                {**good, "Content-Type": "application/x-ndjson"}, nd)
            req("commit-anon", "POST", "/api/models/org/tiny/commit/main",
                {"Content-Type": "application/x-ndjson"}, nd)
            req("bridge", "GET", f"/_bridge/model/org/tiny/{commit}/model.safetensors", {"Range": "bytes=0-99"})
            req("control", "GET", "/_origin/stats", more=[("GET", "/_origin/knobs")])
            req("control-post", "POST", "/_origin/knobs", {"Content-Type": "application/json"}, "{}")
            req("pipelined", "GET", "/api/models/org/tiny", more=[
                ("GET", "/api/models/org/tiny/refs"), ("HEAD", "/org/tiny/resolve/main/README.md")])
            req("chunked", "POST", "/api/models/org/tiny/paths-info/main",
                {"Content-Type": "application/json"},  # an iterable body: http.client chunks it
                iter([b'{"paths": ', b'["config.json"]}']))
            req("over-cap", "POST", "/api/repos/create", {**good, "Content-Length": "70000"})
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        for i, (name, b) in enumerate(seeds):
            with open(os.path.join(out, f"{i:02d}-{name}"), "wb") as f:
                f.write(b)
        print(f"{len(seeds)} seeds in {out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The HF-written vector xorb + upload shard (tests/vectors, written by
@huggingface/hub) uploaded through the CAS upload API, then:
  - every reconstruction case of tests/vectors/reconstruction.json (v1 and
    v2, full and ranged) answered with exactly the expected JSON (URLs are
    compared by their signed range; host, expiry and signature differ);
  - the files committed with `zestfs-origin commit` and read back byte-exact
    through resolve (the bridge decodes LZ4 and BG4 chunks);
  - the upload API's refusals: bad xorb hash, undecodable xorb, shard naming
    a missing xorb or a wrong file hash, no/read-only token; dedup query.

usage: test_vectors.py [path/to/zestfs-origin]
"""
import copy
import hashlib
import json
import os
import shutil
import struct
import subprocess
import tempfile
import urllib.parse

from origin_util import Checker, Origin, find_exe, main_wrapper, repo_root

XORB = "028b671524f068a6be7db3e369083a69916cb373667836a8e9f1a2ceaf0e4a6b"


def strip_urls(j):
    """Replace each URL by its signed range (what the URL authorises)."""
    j = copy.deepcopy(j)
    for key in ("xorbs", "fetch_info"):
        for entries in j.get(key, {}).values():
            for e in entries:
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(e["url"]).query)
                e["url"] = q["X-Xet-Signed-Range"][0]
    return j


def main():
    exe = find_exe()
    vec = os.path.join(repo_root(), "tests", "vectors")
    c = Checker("origin-vectors")
    cases = json.load(open(os.path.join(vec, "reconstruction.json")))["cases"]
    up = json.load(open(os.path.join(vec, "upload.json")))
    xorb = open(os.path.join(vec, f"xorb-{XORB}.bin"), "rb").read()
    shard = open(os.path.join(vec, "shard-upload-0.bin"), "rb").read()
    tmp = tempfile.mkdtemp(prefix="zo-vec-")
    try:
        data = os.path.join(tmp, "data")
        # a repo must exist to get a write token for it
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        open(os.path.join(src, "README.md"), "w").write("vectors\n")
        subprocess.run([exe, "ingest", data, "org/vectors", "-q", src], check=True, timeout=60,
                       capture_output=True)
        with Origin(exe, data) as o:
            wt = o.token("org/vectors", write=True)["accessToken"]
            rt = o.token("org/vectors")["accessToken"]
            W = {"Authorization": "Bearer " + wt}

            # refusals before anything is stored
            st, h, j = o.json("POST", "/v1/shards", W, shard)
            c.eq(st, 400, "shard naming a missing xorb -> 400")
            st, h, j = o.json("POST", f"/v1/xorbs/default/{XORB}", {}, xorb)
            c.eq(st, 401, "xorb upload without token -> 401")
            st, h, j = o.json("POST", f"/v1/xorbs/default/{XORB}", {"Authorization": "Bearer " + rt}, xorb)
            c.eq(st, 403, "xorb upload with a read token -> 403")
            wrong = "1" * 64
            st, h, j = o.json("POST", f"/v1/xorbs/default/{wrong}", W, xorb)
            c.eq(st, 400, "xorb under the wrong hash -> 400")
            bad = bytearray(xorb)
            bad[20] ^= 1  # inside the first chunk's payload
            st, h, j = o.json("POST", f"/v1/xorbs/default/{XORB}", W, bytes(bad))
            c.eq(st, 400, "xorb with a corrupted payload -> 400")
            st, h, j = o.json("POST", f"/v1/xorbs/default/{XORB}", W, xorb[:-5])
            c.eq(st, 400, "truncated xorb -> 400")
            st, h, b = o.req("HEAD", f"/v1/xorbs/default/{XORB}", {"Authorization": "Bearer " + rt})
            c.eq(st, 404, "HEAD xorb before upload -> 404")

            # the real upload sequence
            st, h, j = o.json("POST", f"/v1/xorbs/default/{XORB}", W, xorb)
            c.eq((st, j), (200, {"was_inserted": True}), "xorb upload")
            st, h, j = o.json("POST", f"/v1/xorbs/default/{XORB}", W, xorb)
            c.eq((st, j), (200, {"was_inserted": False}), "xorb re-upload")
            st, h, b = o.req("HEAD", f"/v1/xorbs/default/{XORB}", {"Authorization": "Bearer " + rt})
            c.eq((st, h.get("content-length")), (200, str(len(xorb))), "HEAD xorb")
            badshard = bytearray(shard)
            badshard[48] ^= 0xFF  # first file hash
            st, h, j = o.json("POST", "/v1/shards", W, bytes(badshard))
            c.eq(st, 400, "shard with a wrong file hash -> 400")
            st, h, j = o.json("POST", "/v1/shards", W, shard)
            c.eq((st, j), (200, {"result": 1}), "shard upload v1")
            st, h, b = o.req("POST", "/v2/shards", W, shard)
            lines = [json.loads(x) for x in b.decode().splitlines() if x.strip()]
            c.eq((st, lines[-1]), (200, {"type": "result", "result": 0}), "shard upload v2 (NDJSON), existing")
            # dedup query
            first_chunk = up["requests"][0].rsplit("/", 1)[1]
            st, h, b = o.req("GET", f"/v1/chunks/default/{first_chunk}", {"Authorization": "Bearer " + rt})
            c.eq(st, 200, "dedup query for a stored chunk")
            c.ok(b[:14] == b"HFRepoMetaData" and struct.unpack_from("<Q", b, 40)[0] == 200,
                 "dedup answer is a shard with a footer")
            foot = b[-200:]
            c.eq(struct.unpack_from("<Q", foot, 192)[0], len(b) - 200, "dedup shard footer_offset")
            c.ok(struct.unpack_from("<Q", foot, 64)[0] > 0, "dedup shard chunk lookup entries")
            st, h, b = o.req("GET", "/v1/chunks/default/" + "2" * 64, {"Authorization": "Bearer " + rt})
            c.eq(st, 404, "dedup query for an unknown chunk -> 404")

            # reconstructions: exactly the vectors' JSON
            for case in cases:
                hd = {"Authorization": "Bearer " + rt}
                if case["request_range_header"]:
                    hd["Range"] = case["request_range_header"]
                for ver in (2, 1):
                    st, h, j = o.json("GET", f"/v{ver}/reconstructions/{case['file_hash']}", hd)
                    what = f"{case['file']} {case['request_range_header']} v{ver}"
                    if not c.eq(st, 200, what + " status"):
                        continue
                    c.eq(strip_urls(j), strip_urls(case[f"v{ver}"]), what + " JSON")
                    # and each URL serves its signed range
                    key = "xorbs" if ver == 2 else "fetch_info"
                    for xh, entries in j[key].items():
                        for e in entries:
                            r = e["ranges"][0]["bytes"] if ver == 2 else e["url_range"]
                            st2, _, body = o.req("GET", e["url"], {"Range": f"bytes={r['start']}-{r['end']}"})
                            c.eq((st2, body), (206, xorb[r["start"]:r["end"] + 1]), what + " signed bytes")

            # commit the uploaded files and read them back through resolve
            specs = []
            for f in up["files"]:
                specs.append(f"{f['path']}={f['xet_file_hash']}:{f['size']}:{f['sha256']}")
            r = subprocess.run([exe, "commit", data, "org/vectors", "--message", "vectors"] + specs,
                               capture_output=True, text=True, timeout=60)
            c.eq(r.returncode, 0, "commit of uploaded files: " + r.stderr)
            r2 = subprocess.run([exe, "commit", data, "org/vectors", "x.bin=" + "3" * 64],
                                capture_output=True, text=True, timeout=60)
            c.ok(r2.returncode != 0, "commit of an unknown file hash refused")
            for f in up["files"]:
                want = open(os.path.join(vec, "input-" + f["path"]), "rb").read()
                st, h, b = o.req("HEAD", f"/org/vectors/resolve/main/{f['path']}")
                c.eq((st, h.get("x-xet-hash"), h.get("x-linked-etag")),
                     (302, f["xet_file_hash"], '"%s"' % f["sha256"]), f["path"] + " resolve headers")
                st, h, b = o.req("GET", h.get("location", "/"))
                c.eq((st, hashlib.sha256(b).hexdigest()), (200, f["sha256"]), f["path"] + " bytes via bridge")
                c.eq(b, want, f["path"] + " equals the vector input")
            st, h, tree = o.json("GET", "/api/models/org/vectors/tree/main")
            c.eq(sorted(e["path"] for e in tree), sorted(["README.md"] + [f["path"] for f in up["files"]]),
                 "commit added the files to the tree")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c.done()


if __name__ == "__main__":
    main_wrapper(main)

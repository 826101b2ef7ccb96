#!/usr/bin/env python3
"""make_seeds.py — (re)writes tests/fuzz/corpus/<target>/ from tests/vectors
and hand-made malformed inputs.  The corpora are committed; run this only to
regenerate them (it removes the files it writes first, nothing else)."""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VEC = os.path.join(HERE, "..", "vectors")
OUT = os.path.join(HERE, "corpus")
SHA = "0123456789abcdef0123456789abcdef01234567"
H64 = "3d96c786f6a5ccca39cd64ff8fde9c92885e35ddc22d372aafabc92a5ff3584d"


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def recon():
    cases = json.load(open(os.path.join(VEC, "reconstruction.json")))["cases"]
    for i, c in enumerate(cases[:8]):
        put("recon", f"v2-{i}", json.dumps(c["v2"]))
        put("recon", f"v1-{i}", json.dumps(c["v1"]))
    v2 = json.dumps(cases[1]["v2"])
    put("recon", "bad-truncated", v2[: len(v2) // 2])
    put("recon", "bad-empty-object", "{}")
    put("recon", "bad-negative", v2.replace('"start": 0', '"start": -1', 1))
    put("recon", "bad-huge", v2.replace('"unpacked_length": 22353', '"unpacked_length": 1e300'))
    put("recon", "bad-no-descriptor", json.dumps(dict(cases[1]["v2"], xorbs={})))
    put("recon", "bad-end-before-start", v2.replace('"end": 1', '"end": 0', 1))


def records(buf):
    """(offset, length) of each record of a xorb, up to the footer."""
    off, out = 0, []
    while off + 8 <= len(buf) and buf[off] == 0:
        clen = int.from_bytes(buf[off + 1:off + 4], "little")
        out.append((off, 8 + clen))
        off += 8 + clen
    return out


def xorb():
    name = [f for f in os.listdir(VEC) if f.startswith("xorb-")][0]
    buf = open(os.path.join(VEC, name), "rb").read()
    recs = records(buf)
    put("xorb", "rec-0", buf[: recs[0][0] + recs[0][1]])
    o, l = recs[1]
    put("xorb", "rec-1", buf[o:o + l])
    o2, l2 = recs[2]
    put("xorb", "rec-1-2", buf[o:o2 + l2])
    last = recs[-1][0]
    put("xorb", "last-and-footer", buf[last:last + recs[-1][1]] + buf[recs[-1][0] + recs[-1][1]:][:512])
    put("xorb", "bad-truncated", buf[o:o + l // 2])
    put("xorb", "bad-scheme", bytes([0, 4, 0, 0, 9, 4, 0, 0]) + b"abcd")
    put("xorb", "bad-version", bytes([1, 4, 0, 0, 0, 4, 0, 0]) + b"abcd")
    put("xorb", "none-small", bytes([0, 4, 0, 0, 0, 4, 0, 0]) + b"abcd")
    put("xorb", "bad-ulen-mismatch", bytes([0, 4, 0, 0, 0, 5, 0, 0]) + b"abcd")
    put("xorb", "lz4-bad", bytes([0, 4, 0, 0, 1, 64, 0, 0]) + b"\xff\xff\xff\xff")


def shard():
    buf = open(os.path.join(VEC, "shard-upload-0.bin"), "rb").read()
    put("shard", "upload-0", buf)
    put("shard", "bad-truncated", buf[: len(buf) - 100])
    put("shard", "bad-header-only", buf[:48])
    b = bytearray(buf)
    b[60] ^= 0xFF
    put("shard", "bad-flipped", bytes(b))


def http():
    def inp(status_idx, s, e, hdrs):
        return bytes([status_idx]) + struct.pack("<II", s, e) + hdrs.encode("latin-1")
    put("http", "range-ok", inp(1, 0, 99, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-99/1000\r\nContent-Length: 100\r\n\r\n"))
    put("http", "range-star", inp(1, 5, 9, "HTTP/2 206\r\ncontent-range: bytes 5-9/*\r\n\r\n"))
    put("http", "range-wrong", inp(1, 0, 99, "HTTP/1.1 206\r\nContent-Range: bytes 0-98/1000\r\n\r\n"))
    put("http", "range-garbage", inp(1, 0, 99, "HTTP/1.1 206\r\nContent-Range: bytes -1-99/\r\n\r\n"))
    put("http", "retry-after", inp(4, 0, 0, "HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\n\r\n"))
    put("http", "retry-after-date", inp(5, 0, 0, "HTTP/1.1 503\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n"))
    put("http", "redirect", inp(2, 0, 0, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 302 Found\r\nLocation: /api/models/a/b/tree/main?cursor=x\r\n\r\n"))
    put("http", "folding", inp(0, 0, 0, "HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\n\tmore\r\nnocolon\r\n:empty-name\r\nX-B:   spaced   \r\n\r\n"))
    put("http", "many", inp(0, 0, 0, "HTTP/1.1 200 OK\r\n" + "".join(f"X-{i}: {i}\r\n" for i in range(300))))


def resp(hdrs, body):
    return hdrs + "\r\n\r\n" + body


def hub():
    put("hub", "revision", b"\x00" + resp("Content-Type: application/json", json.dumps({"id": "org/name", "sha": SHA, "lastModified": "2024-05-01T12:00:00.000Z"})).encode())
    put("hub", "revision-bad-sha", b"\x00" + resp("", json.dumps({"sha": SHA[:39] + "g"})).encode())
    put("hub", "revision-bad-date", b"\x00" + resp("", json.dumps({"sha": SHA.upper(), "lastModified": "99999-99-99T99:99:99"})).encode())
    tree = [{"type": "file", "oid": SHA, "size": 12, "path": "config.json"},
            {"type": "directory", "oid": SHA, "size": 0, "path": "sub"},
            {"type": "file", "oid": SHA, "size": 1 << 40, "path": "sub/model.safetensors",
             "lfs": {"oid": H64, "size": 1 << 40, "pointerSize": 134}, "xetHash": H64}]
    put("hub", "tree-last", b"\x01" + resp("", json.dumps(tree)).encode())
    put("hub", "tree-link", b"\x01" + resp('Link: </api/models/org/name/tree/main?recursive=true&cursor=abc>; rel="next"', json.dumps(tree)).encode())
    put("hub", "tree-link-abs", b"\x01" + resp('Link: <https://other.example/x>; rel=next, <a>; rel="prev"', "[]").encode())
    put("hub", "tree-bad-size", b"\x01" + resp("", json.dumps([{"type": "file", "path": "a", "size": -1}])).encode())
    put("hub", "tree-bad-lfs", b"\x01" + resp("", json.dumps([{"type": "file", "path": "a", "lfs": {"oid": "xyz"}}])).encode())
    put("hub", "resolve-200", b"\x02" + resp(f'X-Repo-Commit: {SHA}\r\nX-Linked-Etag: "{H64}"\r\nX-Linked-Size: 1099511627776\r\nX-Xet-Hash: {H64}\r\nContent-Length: 0', "").encode())
    put("hub", "resolve-302", bytes([2 | (1 << 3)]) + resp(f'X-Repo-Commit: {SHA}\r\nETag: W/"{SHA}"\r\nLocation: https://cdn.example/x\r\nContent-Length: 5', "").encode())
    put("hub", "resolve-404", bytes([2 | (2 << 3)]) + resp(f"X-Error-Code: EntryNotFound\r\nX-Repo-Commit: {SHA}", "").encode())
    put("hub", "resolve-401-gated", bytes([2 | (3 << 3)]) + resp("X-Error-Code: GatedRepo\r\nETag: \"", "").encode())
    put("hub", "token", b"\x03" + resp("", json.dumps({"accessToken": "xet_abc", "exp": 1900000000, "casUrl": "https://cas.example/"})).encode())
    put("hub", "token-crlf", b"\x03" + resp("", json.dumps({"accessToken": "a\r\nX-Evil: 1", "exp": 1, "casUrl": "https://cas.example"})).encode())
    put("hub", "token-bad-url", b"\x03" + resp("", json.dumps({"accessToken": "a", "exp": 1e300, "casUrl": "file:///etc"})).encode())
    for i, n in enumerate(["org/name", "../x", "a/../../b", "/abs", "a//b", "a\x01b", "x" * 300, "a/./b", "ok/path.txt"]):
        put("hub", f"name-{i}", b"\x04" + n.encode())


def repo():
    r = {"format": 1, "type": "model", "id": "org/name", "refs": {"main": SHA, "refs/pr/1": SHA},
         "commits": {SHA: {"date": 1714564800, "files": [
             {"path": "config.json", "size": 12, "oid": SHA},
             {"path": "sub/model.safetensors", "size": 1 << 40, "oid": SHA, "lfs_sha256": H64,
              "xet_hash": H64}]}}}
    put("repo", "model", b"\x00" + json.dumps(r).encode())
    bad = json.loads(json.dumps(r))
    bad["commits"][SHA]["files"][0]["path"] = "../../etc/passwd"
    put("repo", "bad-dotdot", b"\x00" + json.dumps(bad).encode())
    bad["commits"][SHA]["files"][0]["path"] = "a"
    bad["commits"][SHA]["date"] = 1e300
    put("repo", "huge-date", b"\x00" + json.dumps(bad).encode())
    d = dict(r, type="dataset", id="ds")
    put("repo", "dataset", b"\x00" + json.dumps(d).encode())
    for i, n in enumerate(["models--org--name", "datasets--a", "spaces--a--b--c", "models--a/b",
                           "org/name", "a/../b", "refs/pr/1", "a" * 97, "models----x"]):
        put("repo", f"name-{i}", b"\x01" + n.encode())


def bencode():
    put("bencode", "ext-handshake", b"d1:md6:ut_xeti1e7:zfs_xeti2ee1:pi6881e1:v10:zestfs 0.1e")
    put("bencode", "list", b"l4:spami42ei-7eli0eedee")
    put("bencode", "nested", b"d1:ad1:bd1:cleeee")
    put("bencode", "bad-leading-zero", b"i03e")
    put("bencode", "bad-neg-zero", b"i-0e")
    put("bencode", "bad-order", b"d1:bi1e1:ai2ee")
    put("bencode", "bad-dup", b"d1:ai1e1:ai2ee")
    put("bencode", "bad-len", b"99999999999999999999:x")
    put("bencode", "bad-int-overflow", b"i9223372036854775808e")
    put("bencode", "deep", b"l" * 40 + b"e" * 40)
    put("bencode", "trailing", b"i1eXYZ")


def peer():
    be = lambda *v: b"".join(struct.pack(">I", x) for x in v)
    xh = bytes(range(32))
    put("peer", "zfs-have", b"\x00" + b"\x01" + xh + be(2) + be(0, 4, 10, 12))
    put("peer", "zfs-request", b"\x00" + b"\x02" + be(7) + xh + be(0, 16))
    put("peer", "zfs-data", b"\x00" + b"\x03" + be(7, 0) + bytes([0, 4, 0, 0, 0, 4, 0, 0]) + b"abcd")
    put("peer", "zfs-mreq", b"\x00" + b"\x04" + be(7) + xh)
    put("peer", "zfs-manifest", b"\x00" + b"\x05" + be(7, 2) + xh + be(100) + xh + be(200))
    put("peer", "zfs-refuse", b"\x00" + b"\x06" + be(7, 1))
    put("peer", "zfs-cancel", b"\x00" + b"\x07" + be(7))
    put("peer", "zfs-have-bad", b"\x00" + b"\x01" + xh + be(0xffffffff))
    put("peer", "ut-request", b"\x01" + b"\x01" + be(3) + xh + be(0, 4))
    put("peer", "ut-response", b"\x01" + b"\x02" + be(3, 0, 4) + b"abcd")
    put("peer", "ut-response-bad-len", b"\x01" + b"\x02" + be(3, 0, 400) + b"abcd")
    put("peer", "ut-not-found", b"\x01" + b"\x03" + be(3) + xh)
    put("peer", "ut-error", b"\x01" + b"\x04" + be(3, 2) + b"nope")
    put("peer", "handshake", b"\x02" + b"\x13BitTorrent protocol" + bytes([0, 0, 0, 0, 0, 0x10, 0, 0]) + bytes(20) + b"-ZF0001-abcdefghijkl")
    put("peer", "handshake-bad", b"\x02" + b"\x13BitTorrent protocoX" + bytes(48))
    put("peer", "ext-handshake", b"\x03" + b"d1:md6:ut_xeti1e7:zfs_xeti2ee1:pi6881ee")
    put("peer", "ext-handshake-bad-id", b"\x03" + b"d1:md6:ut_xeti256eee")
    put("peer", "records", b"\x04\x01" + bytes([0, 4, 0, 0, 0, 4, 0, 0]) + b"abcd")
    put("peer", "records-two", b"\x04\x01" + bytes([0, 4, 0, 0, 0, 4, 0, 0]) + b"abcd" + bytes([0, 2, 0, 0, 0, 2, 0, 0]) + b"ef")


def disc():
    def bs(b):
        return str(len(b)).encode() + b":" + b
    peer4 = bytes([127, 0, 0, 1, 0x1a, 0xe1])
    peer6 = bytes(15) + b"\x01" + b"\x1a\xe1"
    put("disc", "announce", b"\x00" + b"d8:completei3e10:incompletei1e8:intervali1800e12:min intervali900e5:peers" + bs(peer4 * 2) + b"6:peers6" + bs(peer6) + b"e")
    put("disc", "announce-failure", b"\x00" + b"d14:failure reason" + bs(b"Requested download is not authorized") + b"e")
    put("disc", "announce-dict-peers", b"\x00" + b"d8:intervali60e5:peersld2:ip9:127.0.0.14:porti6881eeee")
    put("disc", "announce-bad-peers", b"\x00" + b"d8:intervali60e5:peers5:abcdee")
    ih = b"a" + bytes(19)
    put("disc", "scrape", b"\x01" + b"d5:filesd" + bs(ih) + b"d8:completei5e10:downloadedi7e10:incompletei2eeee")
    nid = b"N" * 20
    put("disc", "krpc-ping", b"\x02" + b"d1:ad2:id" + bs(nid) + b"e1:q4:ping1:t2:aa1:y1:qe")
    put("disc", "krpc-get-peers-r", b"\x02" + b"d1:rd2:id" + bs(nid) + b"5:nodes" + bs(nid + peer4) + b"5:token8:abcdefgh6:valuesl" + bs(peer4) + b"ee1:t2:aa1:y1:re")
    put("disc", "krpc-error", b"\x02" + b"d1:eli201e12:Generic Errore1:t2:aa1:y1:ee")
    put("disc", "pex", b"\x03" + b"d5:added" + bs(peer4) + b"7:added.f1:\x016:added6" + bs(peer6) + b"7:dropped" + bs(peer4) + b"e")
    put("disc", "pex-bad-flags", b"\x03" + b"d5:added" + bs(peer4) + b"7:added.f2:\x01\x02e")
    put("disc", "compact4", b"\x04" + peer4 * 3)
    put("disc", "compact6", b"\x44" + peer6 * 2)
    for nm, q in (("ping", b"d1:ad2:id" + bs(nid) + b"e1:q4:ping1:t2:aa1:y1:qe"),
                  ("find-node", b"d1:ad2:id" + bs(nid) + b"6:target" + bs(b"T" * 20) + b"e1:q9:find_node1:t2:ab1:y1:qe"),
                  ("get-peers", b"d1:ad2:id" + bs(nid) + b"9:info_hash" + bs(ih) + b"e1:q9:get_peers1:t2:ac1:y1:qe"),
                  ("announce", b"d1:ad2:id" + bs(nid) + b"9:info_hash" + bs(ih) + b"4:porti6881e5:token8:abcdefghe1:q13:announce_peer1:t2:ad1:y1:qe")):
        put("disc", "dht-" + nm, b"\x05" + q)


def cache():
    seg_fixed, entry = 72, 36

    def seg(lens, data_fill=b"z"):
        n = len(lens)
        hl = seg_fixed + entry * n + 32
        hdr = bytearray(hl)
        for i, l in enumerate(lens):
            struct.pack_into("<I", hdr, seg_fixed + entry * i, l)
        return bytes(hdr) + data_fill * sum(lens)
    # flags 1|2|8: the harness completes header fields, hashes and checksum
    put("cache", "seg-valid-3", bytes([0x0B, 2, 0]) + seg([10, 20, 30]))
    put("cache", "seg-valid-1-start3", bytes([0x0B, 0, 3]) + seg([100]))
    put("cache", "seg-bad-hashes", bytes([0x09, 1, 0]) + seg([5, 6]))
    put("cache", "seg-bad-checksum", bytes([0x0A, 1, 0]) + seg([5, 6]))
    put("cache", "seg-zero-len", bytes([0x0B, 1, 0]) + seg([0, 6]))
    put("cache", "seg-short-data", bytes([0x0B, 1, 0]) + seg([5, 6])[:-3])
    put("cache", "seg-raw", bytes([0x00, 0, 0]) + b"ZESTSEG1" + bytes(200))
    put("cache", "seg-tiny", bytes([0x08, 7, 1]) + b"ZESTSEG1")
    key = b"repo/model/org/name"
    body = b'{"format":1}'
    meta = b"ZESTMET1" + struct.pack("<IIQ", 1, len(key), len(body)) + key + body + bytes(32)
    put("cache", "meta-valid", bytes([0x0D, 0, 0]) + meta)
    put("cache", "meta-bad-checksum", bytes([0x04, 0, 0]) + meta)
    put("cache", "meta-bad-len", bytes([0x05, 0, 0]) + meta[:16] + struct.pack("<Q", 1 << 40) + meta[24:])
    put("cache", "meta-short", bytes([0x05, 0, 0]) + meta[:30])


def tensors():
    def st(header, fsize_extra=0):
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        body = struct.pack("<Q", len(h)) + h
        data_len = sum(v["data_offsets"][1] - v["data_offsets"][0] for k, v in header.items() if k != "__metadata__")
        return struct.pack("<Q", len(body) + data_len + fsize_extra) + body
    put("tensors", "st-two", st({"__metadata__": {"format": "pt"},
                                 "a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]},
                                 "b": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 24]}}))
    put("tensors", "st-empty", st({}))
    put("tensors", "st-overlap", st({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]},
                                     "b": {"dtype": "U8", "shape": [8], "data_offsets": [4, 12]}}))
    put("tensors", "st-past-end", st({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 1 << 40]}}))
    put("tensors", "st-huge-len", struct.pack("<Q", 1 << 20) + struct.pack("<Q", 1 << 62) + b"{}")
    put("tensors", "st-short", struct.pack("<Q", 4096) + struct.pack("<Q", 100) + b'{"a":')

    def gstr(x):
        return struct.pack("<Q", len(x)) + x
    kv = gstr(b"general.alignment") + struct.pack("<I", 4) + struct.pack("<I", 32)
    tinfo = gstr(b"tok_embd.weight") + struct.pack("<I", 2) + struct.pack("<QQ", 8, 4) + struct.pack("<I", 0) + struct.pack("<Q", 0)
    tinfo += gstr(b"out.weight") + struct.pack("<I", 1) + struct.pack("<Q", 16) + struct.pack("<I", 1) + struct.pack("<Q", 128)
    g = b"GGUF" + struct.pack("<I", 3) + struct.pack("<QQ", 2, 1) + kv + tinfo
    put("tensors", "gguf-two", struct.pack("<Q", len(g) + 4096) + g)
    put("tensors", "gguf-truncated", struct.pack("<Q", 1 << 20) + g[:len(g) // 2])
    put("tensors", "gguf-many", struct.pack("<Q", 1 << 20) + b"GGUF" + struct.pack("<I", 3) + struct.pack("<QQ", 1 << 60, 1 << 60))
    put("tensors", "gguf-v2", struct.pack("<Q", 1 << 20) + b"GGUF" + struct.pack("<I", 2) + g[8:])


def httpreq():
    def rng(v, size):
        return bytes([0]) + struct.pack("<Q", size) + v.encode()
    for i, v in enumerate(["bytes=0-99", "bytes=100-", "bytes=-500", "bytes=5-1", "bytes=0-0,5-9",
                           "bytes=18446744073709551615-", "bytes=-0", "Bytes = 3 - 7", "items=1-2",
                           "bytes=99999999999999999999999-"]):
        put("httpreq", f"range-{i}", rng(v, 1000))
    for i, u in enumerate(["/org/name/resolve/main/model.safetensors",
                           "/datasets/org/ds/resolve/v1.0/data/train.parquet",
                           "/spaces/org/app/resolve/" + SHA + "/app.py",
                           "/gpt2/resolve/main/config.json",
                           "/org/name/resolve/main/../../etc/passwd",
                           "/org/name/resolve/main/%2e%2e/x",
                           "/org/name/resolve/main/a%00b",
                           "/org/name/resolve/refs%2Fpr%2F1/x.bin",
                           "/org%2Fname/resolve/main/x",
                           "/org/name/resolve/main/%zz"]):
        put("httpreq", f"url-{i}", bytes([1]) + u.encode())


def udptracker():
    def dg(b, fix=1):
        return struct.pack("<HB", len(b), fix) + b
    conn = struct.pack(">IIQ", 0, 0, 0x1122334455667788)
    ann = struct.pack(">IIIII", 1, 0, 1800, 3, 7) + bytes([127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0x1a, 0xe2])
    scr = struct.pack(">II", 2, 0) + struct.pack(">III", 5, 1, 9) + struct.pack(">III", 0, 0, 0)
    put("udptracker", "announce-ok", bytes([0]) + dg(conn) + dg(ann))
    put("udptracker", "announce-error", bytes([0]) + dg(conn) + dg(struct.pack(">II", 3, 0) + b"banned"))
    put("udptracker", "announce-odd-peers", bytes([0]) + dg(conn) + dg(ann + b"xyz"))
    put("udptracker", "announce-short", bytes([0]) + dg(conn) + dg(ann[:12]))
    put("udptracker", "connect-short", bytes([0]) + dg(conn[:12]))
    put("udptracker", "wrong-txid", bytes([0]) + dg(conn, 0) + dg(conn))
    put("udptracker", "scrape-ok", bytes([1]) + dg(conn) + dg(scr))
    put("udptracker", "scrape-short", bytes([1]) + dg(conn) + dg(scr[:14]))
    put("udptracker", "many-peers", bytes([0]) + dg(conn) + dg(struct.pack(">IIIII", 1, 0, 60, 0, 0) + bytes(6 * 300)))


def peernode():
    """Hand-made streams for fuzz_peernode (hand-*); the real-* seeds are a
    recorded exchange between two nodes: ZESTFS_PEERNODE_SEEDS=DIR
    build/tests/fuzz/replay_peernode ANYFILE writes them."""
    be = lambda *v: b"".join(struct.pack(">I", x) for x in v)
    fr = lambda p: struct.pack(">I", len(p)) + p
    ex = lambda eid, p: fr(bytes([20, eid]) + p)
    hs = b"\x13BitTorrent protocol" + bytes([0, 0, 0, 0, 0, 0x10, 0, 0]) + b"zestfs-fuzz-swarm-01" + b"-HM0001-abcdefghijkl"
    eh = ex(0, b"d1:md6:ut_pexi5e6:ut_xeti1e7:zfs_xeti3ee1:pi6881e8:zfs_capsi3ee")
    xh = bytes(range(32))
    flood = ex(2, b"\x01" + xh + be(4096) + be(0, 8192) * 4096)
    reqs = b"".join(ex(2, b"\x02" + be(i) + xh + be(0, 16)) for i in range(1, 40))
    put("peernode", "hand-have-flood", b"\x00\x40" + hs + eh + flood * 4)
    put("peernode", "hand-requests", b"\x00\x10" + hs + eh + reqs + ex(2, b"\x07" + be(3)) + fr(b""))
    put("peernode", "hand-oversize", b"\x00\x00" + hs + eh + struct.pack(">IBBB", 100 << 20, 20, 2, 3) + be(1))
    put("peernode", "hand-pex-ut", b"\x00\x03" + hs + eh + ex(3, b"d5:added6:\x7f\x00\x00\x01\x1a\xe1e")
        + ex(1, b"\x01" + be(9) + xh + be(0, 4)) + ex(2, b"\x04" + be(5) + xh)
        + ex(2, b"\x08" + xh + be(1) + be(0, 4)) + fr(bytes([5]) + bytes(8)))
    put("peernode", "hand-dialled-truncated", b"\x07\x02" + hs + eh + struct.pack(">IBBB", 5000, 20, 2, 5) + be(1))


if __name__ == "__main__":
    for fn in (recon, xorb, shard, http, hub, repo, bencode, peer, cache, disc, tensors, httpreq, udptracker,
               peernode):
        d = os.path.join(OUT, fn.__name__)
        if os.path.isdir(d):
            for f in os.listdir(d):
                if fn is not peernode or f.startswith("hand-"):
                    os.remove(os.path.join(d, f))
        fn()
    sys.exit(0)

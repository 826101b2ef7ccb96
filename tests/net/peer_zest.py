"""zest v0.3 ut_xet (spec/p2p.md §2.2) against a scripted fake zest peer, with
the exact bytes of that section, both directions:

1. a fake zest *client* asks our node (`test_peer serve`): handshake with the
   per-xorb info_hash SHA1("zest-xet-v1:" || xorb), zest's extension
   handshake, unchoke, interested, a 45-byte CHUNK_REQUEST → a 13+N
   CHUNK_RESPONSE with the records; a range we do not hold → a 37-byte
   CHUNK_NOT_FOUND echoing the hash;
2. a fake zest *server* answers our node (`test_peer fetch … manifest`):
   it checks the 45-byte request, answers with a whole cached entry
   (chunk_offset 0, more chunks than asked) → the node verifies and returns
   exactly the asked chunks; a NOT_FOUND → -ENOENT without a ban; a
   corrupted response → ban.

usage: peer_zest.py TEST_PEER"""
import hashlib
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_util import (PSTR, Server, Xorb, check, closed_by_peer, done, ext, finish, frame,
                       handshake, in_thread, listener, recv_exact, recv_ext, run_fetch)
import socket

ZEST_RESERVED = b"\0\0\0\0\0\x10\0\0"
ZEST_EXT_HS = b"d1:md6:ut_xeti1ee1:pi6881e1:v8:zest/0.3e"
ZEST_PID = b"-ZE0200-" + b"z" * 12


def zest_client(tool, X):
    srv = Server(tool)
    try:
        zih = hashlib.sha1(b"zest-xet-v1:" + X.hash).digest()
        check(zih == srv.zih, "zest info_hash = SHA1('zest-xet-v1:' || raw xorb hash)")
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
        s.sendall(handshake(zih, ZEST_PID, ZEST_RESERVED))
        hs = recv_exact(s, 68)
        check(hs[:20] == PSTR and hs[25] & 0x10 and hs[28:48] == zih,
              "node answers the per-xorb handshake (BEP 10 bit, info_hash echoed)")
        s.sendall(ext(0, ZEST_EXT_HS) + frame(1) + frame(2))  # ext hs, unchoke, interested
        eid, p = recv_ext(s)
        check(eid == 0 and b"6:ut_xeti1e" in p, "node's first message: extension handshake, ut_xet = 1")
        # CHUNK_REQUEST: 01 | req u32 | xorb[32] | start u32 | end u32 = 45 B
        req = b"\x01" + struct.pack(">I", 7) + X.hash + struct.pack(">II", 2, 5)
        check(len(req) == 45, "request is 45 bytes")
        s.sendall(ext(1, req))
        eid, p = recv_ext(s)
        recs = X.records(2, 5)
        want = b"\x02" + struct.pack(">III", 7, 2, len(recs)) + recs
        check(eid == 1, "response on zest's ut_xet id 1")
        check(len(p) == 13 + len(recs) and p == want,
              "CHUNK_RESPONSE = 02 | req 7 | chunk_offset 2 | data_len | records of chunks 2..4")
        # not held: 03 | req | hash echo = 37 B
        s.sendall(ext(1, b"\x01" + struct.pack(">I", 8) + X.hash + struct.pack(">II", 500, 501)))
        eid, p = recv_ext(s)
        check(p == b"\x03" + struct.pack(">I", 8) + X.hash and len(p) == 37,
              "CHUNK_NOT_FOUND: 37 bytes, request id, hash echoed")
        other = bytes(32)
        s.sendall(ext(1, b"\x01" + struct.pack(">I", 9) + other + struct.pack(">II", 0, 1)))
        eid, p = recv_ext(s)
        check(p == b"\x03" + struct.pack(">I", 9) + other, "unknown xorb: CHUNK_NOT_FOUND")
        s.close()
    finally:
        st = srv.stop()
    check(st.get("served") == 1 and st.get("bans") == 0, "node served one request, banned nobody %r" % st)


def zest_server(ls, X, mode, seen):
    s, _ = ls.accept()
    s.settimeout(20)
    hs = recv_exact(s, 68)
    seen["hs"] = hs
    s.sendall(handshake(hs[28:48], ZEST_PID, ZEST_RESERVED))
    s.sendall(ext(0, ZEST_EXT_HS) + frame(1) + frame(2))
    while True:
        eid, p = recv_ext(s)
        if eid == 0:
            continue
        seen["req"] = p
        rid = p[1:5]
        if mode == "notfound":
            s.sendall(ext(1, b"\x03" + rid + p[5:37]))
            return closed_by_peer(s, 3) is False  # stays connected
        recs = bytearray(X.records(0, 9))  # a whole cached entry from chunk 0
        if mode == "corrupt":  # a byte of chunk 4 (inside the asked range)
            recs[sum(8 + X.lens[k] for k in range(4)) + 8 + 10] ^= 1
        s.sendall(ext(1, b"\x02" + rid + struct.pack(">II", 0, len(recs)) + bytes(recs)))
        if mode == "corrupt":
            return closed_by_peer(s)
        return True


def fetch_from_zest(tool, X, mode):
    ls, port = listener()
    seen = {}
    t, res = in_thread(zest_server, ls, X, mode, seen)
    zih = hashlib.sha1(b"zest-xet-v1:" + X.hash).digest()
    r = finish(run_fetch(tool, port, zih.hex(), 3, 7, "manifest"))
    t.join(30)
    ls.close()
    return r, res, seen, zih


def main():
    tool = sys.argv[1]
    X = Xorb(tool)
    zest_client(tool, X)

    r, res, seen, zih = fetch_from_zest(tool, X, "ok")
    check(seen.get("hs", b"")[28:48] == zih, "node dials with the per-xorb info_hash")
    q = seen.get("req", b"")
    check(q == b"\x01" + q[1:5] + X.hash + struct.pack(">II", 3, 7),
          "node's CHUNK_REQUEST: 45 bytes, xorb hash, range [3,7)")
    check(r.get("err") == 0 and r.get("ok") == 1,
          "fetch from zest: chunks 3..6 cut from an entry at chunk_offset 0, exact %r" % r)
    r, res, seen, zih = fetch_from_zest(tool, X, "notfound")
    check(r.get("err") == -2 and r.get("bans") == 0, "zest NOT_FOUND: -ENOENT, no ban %r" % r)
    r, res, seen, zih = fetch_from_zest(tool, X, "corrupt")
    check(r.get("err") == -2 and r.get("bans") == 1 and r.get("verify_failures") == 1,
          "zest peer with a corrupted chunk: -ENOENT, banned %r" % r)
    done()


if __name__ == "__main__":
    main()

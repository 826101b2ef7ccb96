"""Lying peers: a scripted raw-socket peer speaking BT + BEP 10 + zfs_xet serves
the test xorb to `test_peer fetch` — once honestly (which also checks the
exact zfs_xet bytes our node sends: MREQ 37 B, REQUEST 45 B), then with one lie
per run.  Each lie must be detected: the node disconnects and bans the peer
(re-adding its address gives -EPERM), and the fetch fails with -ENOENT so
the caller would go to the CDN.

usage: peer_liar.py TEST_PEER"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_util import (Xorb, check, closed_by_peer, done, ext, finish, handshake, in_thread,
                       listener, recv_exact, recv_ext, run_fetch, PSTR)

ENOENT, EPERM = 2, 1
NODE_ZFS = 2   # the node's zfs_xet id (what we send on)
OUR_ZFS = 3    # ours (what the node must send on)


def liar(ls, X, lie, seen):
    s, _ = ls.accept()
    s.settimeout(20)
    hs = recv_exact(s, 68)
    seen["hs"] = hs
    ih = hs[28:48]
    s.sendall(handshake(ih, b"-LI0001-" + b"L" * 12))
    if lie == "badbencode":
        s.sendall(ext(0, b"d1:md7:zfs_xeti3ee"))  # the outer dict is never closed
        return closed_by_peer(s)
    if lie == "badpex":  # offers ut_pex, then sends one that is not a bencoded dict
        s.sendall(ext(0, b"d1:md6:ut_pexi5e7:zfs_xeti%dee1:v4:liare" % OUR_ZFS))
        s.sendall(ext(3, b"d5:added6:abce"))  # "added" not a multiple of 6
        return closed_by_peer(s)
    s.sendall(ext(0, b"d1:md7:zfs_xeti%dee1:v4:liare" % OUR_ZFS))
    n = len(X.lens)
    s.sendall(ext(NODE_ZFS, b"\x01" + X.hash + struct.pack(">III", 1, 0, n)))
    while True:
        eid, p = recv_ext(s)
        if eid == 0:
            seen["ext"] = p
            continue
        if eid != OUR_ZFS:
            seen.setdefault("bad_ids", []).append(eid)
            continue
        if p[0] == 4:  # MREQ
            seen["mreq"] = p
            req = p[1:5]
            lens = list(X.lens)
            if lie == "manifest":
                lens[5] += 1
            body = b"".join(X.hashes[k] + struct.pack(">I", lens[k]) for k in range(n))
            s.sendall(ext(NODE_ZFS, b"\x05" + req + struct.pack(">I", n) + body))
            if lie == "manifest":
                return closed_by_peer(s)
        elif p[0] == 2:  # REQUEST
            seen.setdefault("req", []).append(p)
            req = p[1:5]
            start, end = struct.unpack(">II", p[37:45])
            recs = bytearray(X.records(start, end))
            if lie == "flip":
                recs[len(recs) // 2] ^= 0x04
            if lie == "truncrec":
                recs = recs[:-100]
            msg = ext(NODE_ZFS, b"\x03" + req + struct.pack(">I", start) + bytes(recs))
            if lie == "truncframe":
                s.sendall(msg[:len(msg) // 2])
                s.close()
                return True
            if lie == "oversize":
                s.sendall(struct.pack(">IBB", 100 << 20, 20, NODE_ZFS) + b"\x03" + req)
                return closed_by_peer(s)
            if lie == "garbage":
                s.sendall(ext(NODE_ZFS, b"\x99" + os.urandom(40)))
                return closed_by_peer(s)
            s.sendall(msg)
            if lie != "honest":
                return closed_by_peer(s)
        elif p[0] == 7:
            continue
        if lie == "honest" and "req" in seen:
            return True


def run(tool, X, lie, manifest):
    ls, port = listener()
    seen = {}
    t, res = in_thread(liar, ls, X, lie, seen)
    ih = b"zestfs-test-swarm-01"
    proc = run_fetch(tool, port, ih.hex(), 0, 10, *(["manifest"] if manifest else []))
    r = finish(proc)
    t.join(30)
    ls.close()
    return r, res, seen


def main():
    tool = sys.argv[1]
    X = Xorb(tool)

    r, res, seen = run(tool, X, "honest", manifest=False)
    check(r.get("err") == 0 and r.get("ok") == 1, "honest peer: fetch ok, bytes exact %r" % r)
    check(r.get("bans") == 0, "honest peer: not banned")
    hs = seen.get("hs", b"")
    check(hs[:20] == PSTR and hs[25] & 0x10 and hs[48:56] == b"-ZF0100-",
          "node handshake: protocol, BEP 10 bit, peer id -ZF0100-")
    check(seen.get("ext", b"").startswith(b"d1:md6:ut_pexi3e6:ut_xeti1e7:zfs_xeti2ee")
          and b"8:zfs_capsi3e" in seen.get("ext", b""),
          "node extension handshake m = {ut_pex: 3, ut_xet: 1, zfs_xet: 2}, zfs_caps 3 (PENDING, MPART): %r"
          % seen.get("ext"))
    m = seen.get("mreq", b"")
    check(len(m) == 37 and m[0] == 4 and m[5:37] == X.hash, "MREQ: 37 bytes, xorb hash")
    q = (seen.get("req") or [b""])[0]
    check(len(q) == 45 and q[0] == 2 and q[5:37] == X.hash and q[37:45] == struct.pack(">II", 0, 10),
          "REQUEST: 45 bytes, xorb hash, chunks [0,10)")
    check("bad_ids" not in seen, "node used our advertised id only")

    for lie, manifest, vf in [("flip", True, 1), ("manifest", False, 1), ("truncrec", True, 1),
                              ("truncframe", True, 0), ("oversize", True, 0),
                              ("garbage", True, 0), ("badbencode", True, 0),
                              ("badpex", True, 0)]:
        r, res, seen = run(tool, X, lie, manifest)
        check(r.get("err") == -ENOENT and r.get("ok") == 0,
              "%s: fetch fails with -ENOENT (caller uses the CDN) %r" % (lie, r))
        check(r.get("bans") == 1, "%s: liar banned" % lie)
        check(r.get("readd") == -EPERM, "%s: its address is refused afterwards" % lie)
        if vf:
            check(r.get("verify_failures") == vf, "%s: counted as a verification failure" % lie)
        check(res.get("v") is True, "%s: node closed the connection %r" % (lie, res))
    done()


if __name__ == "__main__":
    main()

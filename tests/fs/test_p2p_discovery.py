#!/usr/bin/env python3
"""test_p2p_discovery.py ZESTFS [ZESTFS_ORIGIN] — mounts find each other
without --peer (issue #5 §4), on loopback:

  * DHT: three python3-libtorrent DHT nodes are the bootstrap routers.
    Mount A (--dht-bootstrap them) reads the repo from the origin and
    announces its swarm; mount B, with the same bootstrap nodes and no
    --peer, finds A by get_peers and reads every file from A byte-exact
    while the origin refuses xorb bytes.  B's routing table holds the
    libtorrent nodes, and B's DHT state is saved in its store on unmount.
  * PEX: mount C knows only B (--peer, --no-dht); B's ut_pex names A, C
    dials A: C ends up connected to both, its status counts PEX messages
    and the peer it dialled from them.
  * Not public: mount G reads a gated repo (the origin's repo info says
    "gated": "manual"; G has a token), so it joins no swarm and serves
    nothing (H, peered with G and opted in itself, gets every byte from the
    CDN); G2, same store and token with --seed-private org/disc-gated,
    serves H2 everything while the origin refuses xorbs.
  * Two empty peered nodes E, F `zestfs pull` at once (origin capped at
    8 MB/s): origin xorb egress at most 1.75x the Xet bytes (CDN only: 2x;
    mostly 1.0x here, up to 1.6x seen).
  * A repo added after startup joins its swarm: mount D starts with no
    --repo (--peer A); the first lookup of models--org--disc resolves it
    through the Hub API, and its files are then read from A (the origin
    still refusing xorbs), which A serves only to peers of that swarm.
Needs Debian's /usr/bin/python3 (python3-libtorrent).  Exit 0 pass, 1 fail,
77 skip."""
import os, random, re, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import Origin, knobs, mount, unmount  # noqa: E402
from test_p2p import find_num, src_bytes, status, wait_log  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "net"))
from peer_util import free_port, lt_dht_session  # noqa: E402


def settled_bytes(zestfs, store, want, secs=15):
    """(peer, CDN) bytes of a node's status once they add up to `want`: a read
    can be answered from a fetched run before that fetch is counted."""
    deadline = time.monotonic() + secs
    while True:
        st = status(zestfs, store)
        peer, cdn = src_bytes(st)
        if peer + cdn >= want or time.monotonic() > deadline:
            return st, peer, cdn
        time.sleep(0.2)

try:
    import libtorrent as lt
except ImportError:
    lt = None


def main():
    if lt is None:
        print("skip: python3-libtorrent missing (run with Debian's /usr/bin/python3)")
        return 77
    run = fsutil.start("zestfs-disc-")
    if run is None:
        return 77
    zestfs, check, tmp = run.zestfs, run.check, run.tmp
    src, data = os.path.join(tmp, "src"), os.path.join(tmp, "data")
    os.makedirs(src)
    rng = random.Random(9)
    files = {"model.safetensors": fsutil.safetensors_like(rng, 12_000_000),
             "weights.bin": rng.randbytes(2_000_000), "config.json": b'{"disc": true}'}
    for p, b in files.items():
        open(os.path.join(src, p), "wb").write(b)
    commit = fsutil.ingest(run.origin_exe, data, "org/disc", src)
    gcommit = fsutil.ingest(run.origin_exe, data, "org/disc-gated", src, "--gated")
    xet_bytes = sum(len(b) for p, b in files.items() if p != "config.json")
    origin = Origin(run.origin_exe, data, tmp)

    ports = [free_port() for _ in range(3)]
    sess = [lt_dht_session(lt, ports[i], [p for p in ports if p != ports[i]]) for i in range(3)]
    stop = threading.Event()

    def pump():  # libtorrent queues alerts; drain them
        while not stop.is_set():
            for s in sess:
                s.pop_alerts()
            time.sleep(0.2)
    threading.Thread(target=pump, daemon=True).start()
    boot = []
    for p in ports:
        boot += ["--dht-bootstrap", f"127.0.0.1:{p}"]
    procs = []

    def node(name, args, env=None):
        mnt, store, logp = (os.path.join(tmp, name + x) for x in ("-mnt", "-store", ".log"))
        os.mkdir(mnt)
        old = dict(os.environ)
        os.environ.update(env or {})
        try:
            p = mount(zestfs, mnt, ["--endpoint", origin.url, "--store", store, "--token", "",
                                    "--listen", "127.0.0.1:0", *args], open(logp, "w"))
        finally:
            os.environ.clear()
            os.environ.update(old)
        procs.append((p, mnt))
        check(os.path.ismount(mnt), f"{name}: mounted")
        m = wait_log(logp, r"peers on 127\.0\.0\.1:(\d+)", 10)
        snap = os.path.join(mnt, "models--org--disc", "snapshots", commit)
        return p, mnt, store, logp, snap, int(m.group(1)) if m else 0

    def read_files(snap):
        return all(open(os.path.join(snap, p), "rb").read() == b for p, b in files.items())

    try:
        time.sleep(2)  # the libtorrent nodes find each other
        # ---- A: from the origin, announced on the DHT ----
        pa, ma, sa, la, snapa, porta = node("a", ["--repo", "org/disc", *boot])
        check(read_files(snapa), "A: every file byte-exact from the origin")
        m = wait_log(la, r"DHT on UDP port (\d+) \((\d+) bootstrap nodes\)", 10)
        check(m is not None and int(m.group(2)) == 3, "A: DHT on, 3 bootstrap nodes")
        ok = False
        for _ in range(100):
            sta = status(zestfs, sa)
            d = (sta.get("peers") or {}).get("dht") or {}
            if d.get("announces", 0) >= 1:
                ok = True
                break
            time.sleep(0.2)
        check(ok, f"A: announced its swarm on the DHT ({d})")

        # ---- B: finds A on the DHT, reads everything from it ----
        knobs(origin, refuse_xorbs=1)
        origin.reset()
        pb, mb, sb, lb, snapb, portb = node("b", ["--repo", "org/disc", *boot],
                                            {"ZESTFS_DHT_LOOKUP_MS": "1000",
                                             "ZESTFS_PEX_INTERVAL_MS": "500"})
        check(wait_log(lb, r"peers: [1-9]\d* connected", 40) is not None,
              "B: connected to a peer it found on the DHT (no --peer)")
        time.sleep(0.5)
        check(read_files(snapb), "B: every file byte-exact, the origin refusing xorbs")
        stb, peer, cdn = settled_bytes(zestfs, sb, xet_bytes)
        d = (stb.get("peers") or {}).get("dht") or {}
        check(peer >= xet_bytes and cdn == 0, f"B: peer bytes {peer} >= {xet_bytes}, CDN {cdn}")
        check(d.get("peers_found", 0) >= 1 and d.get("nodes", 0) >= 3,
              f"B: DHT lookups found the peer; routing table of {d.get('nodes')} nodes ({d})")
        check(origin.stats().get("xorb_bytes_total", -1) == 0, "origin sent B no xorb bytes")

        # ---- C: knows only B; PEX introduces A ----
        pc, mc, sc, lc, snapc, _ = node("c", ["--repo", "org/disc", "--no-dht", "--peer",
                                              f"127.0.0.1:{portb}"],
                                        {"ZESTFS_PEX_INTERVAL_MS": "500"})
        ok = False
        for _ in range(150):
            stc = status(zestfs, sc)
            pc_ = stc.get("peers") or {}
            if pc_.get("connected", 0) >= 2 and pc_.get("pex_in", 0) >= 1:
                ok = True
                break
            time.sleep(0.2)
        pa_ = status(zestfs, sa).get("peers") or {}
        check(ok, f"C: connected to B and A, which it knows only through PEX "
                  f"({pc_.get('connected')} peers, {pc_.get('pex_in')} PEX messages in)")
        dialled = pc_.get("pex_dialled", 0) + pa_.get("pex_dialled", 0)
        check(dialled >= 1, f"A-C: the connection was dialled from a ut_pex message "
                            f"(C dialled {pc_.get('pex_dialled')}, A {pa_.get('pex_dialled')})")
        check(read_files(snapc), "C: every file byte-exact from its peers")
        check(origin.stats().get("xorb_bytes_total", -1) == 0, "origin sent C no xorb bytes")
        unmount(pc, mc)

        # ---- D: the repo is added after startup, and joins its swarm ----
        pd, md, sd, ld, snapd, _ = node("d", ["--no-dht", "--peer", f"127.0.0.1:{porta}"])
        check(os.path.isdir(snapd), "D: models--org--disc resolved on first lookup")
        ok = False
        for _ in range(100):
            std = status(zestfs, sd)
            if ((std.get("peers") or {}).get("swarms") or 0) >= 1 and \
                    ((std.get("peers") or {}).get("connected") or 0) >= 1:
                ok = True
                break
            time.sleep(0.2)
        check(ok, f"D: joined the repo's swarm and is connected ({std.get('peers')})")
        time.sleep(0.5)
        check(read_files(snapd), "D: every file byte-exact from A, the origin refusing xorbs")
        _, peer, cdn = settled_bytes(zestfs, sd, xet_bytes)
        check(peer >= xet_bytes and cdn == 0, f"D: peer bytes {peer}, CDN bytes {cdn}")
        unmount(pd, md)

        # ---- E and F, empty and peered, pull at once: one CDN copy between them ----
        knobs(origin, refuse_xorbs=0, total_bps=8_000_000)
        pe, me, se, le, snape, porte = node("e", ["--repo", "org/disc", "--no-dht"])
        pf, mf, sf, lf, snapf, _ = node("f", ["--repo", "org/disc", "--no-dht", "--peer",
                                              f"127.0.0.1:{porte}"])
        check(wait_log(lf, r"peers: [1-9]\d* connected", 30) is not None, "F: connected to E")
        origin.reset()
        pulls = [subprocess.Popen([zestfs, "pull", "org/disc", "--store", st, "-q"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                 for st in (se, sf)]
        rcs = [p.wait(120) for p in pulls]
        check(rcs == [0, 0], f"E and F: zestfs pull at once exits 0 ({rcs})")
        egress = origin.stats().get("xorb_bytes_total", -1)
        ste, stf = status(zestfs, se), status(zestfs, sf)
        # Mostly 1.0x; a window both nodes start within the same tick, or whose
        # manifest is not complete when asked, is fetched twice (seen up to 1.6x).
        check(egress <= 1.75 * xet_bytes,
              f"origin xorb egress {egress} <= 1.75 x the {xet_bytes} Xet bytes (CDN only: 2 x); "
              f"E cdn/peers {src_bytes(ste)[::-1]}, F {src_bytes(stf)[::-1]}, parked "
              f"{find_num(ste, 'fetches_parked')} + {find_num(stf, 'fetches_parked')}")
        knobs(origin, total_bps=0, refuse_xorbs=1)
        check(read_files(snape) and read_files(snapf), "E and F: every file byte-exact after the pull")
        unmount(pe, me)
        unmount(pf, mf)

        # ---- G: a gated repo is not public: not served, token or not; G2: opted in, served ----
        knobs(origin, refuse_xorbs=0)
        gs = ("models--org--disc-gated", "snapshots", gcommit)
        optin = ["--seed-private", "org/disc-gated"]  # H, H2: join the swarm and ask G
        pg, mg, sg, lg, snapg, portg = node("g", ["--repo", "org/disc-gated", "--no-dht",
                                                  "--token", "hf_private_token"])
        check(read_files(os.path.join(mg, *gs)), "G (token): every file byte-exact from the origin")
        ph, mh, sh, lh, snaph, _ = node("h", ["--repo", "org/disc-gated", "--no-dht", *optin,
                                              "--peer", f"127.0.0.1:{portg}"])
        time.sleep(1.5)
        check(read_files(os.path.join(mh, *gs)), "H: every file byte-exact")
        sth, stg = status(zestfs, sh), status(zestfs, sg)
        check(src_bytes(sth)[0] == 0 and src_bytes(sth)[1] >= xet_bytes,
              f"H: nothing from G, whose repo is gated (peers {src_bytes(sth)[0]}, "
              f"CDN {src_bytes(sth)[1]})")
        check(((stg.get("peers") or {}).get("data_up") or 0) == 0 and
              ((stg.get("peers") or {}).get("connected") or 0) == 0,
              f"G: serves no swarm: no peer connected, nothing sent ({stg.get('peers')})")
        unmount(ph, mh)
        unmount(pg, mg)
        pg, mg, sg, lg, snapg, portg = node("g2", ["--repo", "org/disc-gated", "--no-dht",
                                                   "--store", sg, "--token", "hf_private_token",
                                                   *optin])
        knobs(origin, refuse_xorbs=1)
        ph, mh, sh2, lh, snaph, _ = node("h2", ["--repo", "org/disc-gated", "--no-dht", *optin,
                                                "--peer", f"127.0.0.1:{portg}"])
        check(wait_log(lh, r"peers: [1-9]\d* connected", 30) is not None,
              "H2: connected to G2 (--seed-private org/disc-gated)")
        time.sleep(0.5)
        check(read_files(os.path.join(mh, *gs)),
              "H2: every file byte-exact from G2, the origin refusing xorbs")
        _, peer, cdn = settled_bytes(zestfs, sh2, xet_bytes)
        check(peer >= xet_bytes and cdn == 0, f"H2: peer bytes {peer}, CDN bytes {cdn}")
        unmount(ph, mh)
        unmount(pg, mg)

        unmount(pb, mb)
        check(os.path.getsize(os.path.join(sb, "dht.state")) > 0
              if os.path.exists(os.path.join(sb, "dht.state")) else False,
              "B: DHT state saved in its store (dht.state)")
        knobs(origin, refuse_xorbs=0)
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    finally:
        stop.set()
        for p, mnt in procs:
            if p.poll() is None:
                unmount(p, mnt)
        origin.stop()
        out = ""
        for n in ["a", "b", "c", "d", "e", "f", "g", "h", "g2", "h2"]:
            lp = os.path.join(tmp, n + ".log")
            if os.path.exists(lp):
                t = open(lp, errors="replace").read()
                out += t
                if run.fails:
                    print(f"---- {n}.log ----\n" + t[-3000:])
        check("runtime error:" not in out and "Sanitizer" not in out,
              "no sanitizer report in the zestfs logs")
    return run.finish(None, os.path.join(tmp, "a-mnt"), None)


if __name__ == "__main__":
    sys.exit(main())

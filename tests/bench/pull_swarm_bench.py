#!/usr/bin/env python3
"""pull_swarm_bench.py — N standalone `zestfs pull` nodes fetch one model at
once from an origin capped at --origin-mbs MB/s (zestfs-origin --total-bps),
once CDN-only (--no-p2p) and once as a swarm (issue 21 item 2): every node
names the others with --peer and stays with --seed until all are done.

  python3 tests/bench/pull_swarm_bench.py [--build DIR] [--nodes 8] [--size-mib 48]
                                          [--origin-mbs 100] [--rounds 1]

No root, no mount: everything on loopback (127.0.0.1), each node its own
store and peer port, --no-dht.  The model (--size-mib of safetensors-like
random bytes in a few files, plus config.json) is generated and ingested
into a temporary directory, removed at the end.  Per run:

  origin / model  xorb bytes the origin served (/_origin/stats
                  xorb_bytes_total) over the model's Xet bytes; goal with
                  peers: <= 1.25 (CDN-only is N)
  time            from the common start until every node's pull is done
                  (its "seeding" line, or its exit with --no-p2p)
  peers / CDN     the sum of the nodes' summary lines (from peers, CDN)

Every pull must exit 0 (SIGTERM ends the seeding ones: exit 0 too); the
stores are not read back (fs-pull-seed does that).  Exit 0 when every run
completed, 1 otherwise.  8 nodes, 48 MiB on 2 cores: about a minute."""
import argparse, os, random, re, shutil, signal, socket, subprocess, sys, tempfile, time
import json, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fs"))
import fsutil  # noqa: E402  (safetensors_like, ingest, Origin)

MiB = 1 << 20
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def summary(text, what):
    m = re.findall(what + r" ([0-9.]+) (B|KiB|MiB|GiB)", text)
    return float(m[-1][0]) * UNITS[m[-1][1]] if m else 0.0


def run_once(zestfs, origin, tmp, n, p2p, tag):
    ports = free_ports(n)
    origin_reset(origin)
    procs, errs = [], []
    env = fsutil.guard_env(dict(os.environ, HF_TOKEN=""))
    t0 = time.time()
    for i in range(n):
        args = [zestfs, "pull", "org/bench", *(["-v"] if os.environ.get("BENCH_V") else []), "--store", os.path.join(tmp, f"{tag}-s{i}"),
                "--endpoint", origin.url]
        if p2p:
            args += ["--listen", f"127.0.0.1:{ports[i]}", "--no-dht", "--seed"]
            for k in range(n):
                if k != i:
                    args += ["--peer", f"127.0.0.1:{ports[k]}"]
        else:
            args += ["--no-p2p"]
        e = open(os.path.join(tmp, f"{tag}-{i}.err"), "w+")
        errs.append(e)
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=e, env=env))
    done = [None] * n
    deadline = time.time() + 300
    while None in done and time.time() < deadline:
        for i in range(n):
            if done[i] is not None:
                continue
            errs[i].seek(0)
            text = errs[i].read()
            if procs[i].poll() is not None or "zestfs pull: seeding" in text or ", failed" in text:
                done[i] = time.time() - t0
        time.sleep(0.05)
    elapsed = max(d for d in done if d is not None) if any(d is not None for d in done) else 0
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    ok = True
    peer = cdn = 0.0
    for i, p in enumerate(procs):
        try:
            rc = p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        errs[i].seek(0)
        text = errs[i].read()
        if rc != 0 or ", done" not in text or fsutil.sanitizer_report(text):
            ok = False
            print(f"  node {i}: exit {rc}: {text.strip()[-400:]}")
        peer += summary(text, "from peers")
        cdn += summary(text, "CDN")
        errs[i].close()
    st = origin.stats()
    for i in range(n):
        shutil.rmtree(os.path.join(tmp, f"{tag}-s{i}"), ignore_errors=True)
    return ok, st["xorb_bytes_total"], elapsed, peer, cdn


def origin_reset(origin):
    req = urllib.request.Request(origin.url + "/_origin/stats/reset", data=b"", method="POST")
    urllib.request.urlopen(req, timeout=10).read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--size-mib", type=int, default=48)
    ap.add_argument("--origin-mbs", type=float, default=100)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the nodes' logs (printed path)")
    a = ap.parse_args()
    zestfs = os.path.abspath(os.path.join(a.build, "fs", "zestfs"))
    origin_exe = os.path.abspath(os.path.join(a.build, "origin", "zestfs-origin"))
    if not os.path.exists(zestfs) or not os.path.exists(origin_exe):
        print(f"skip: no zestfs / zestfs-origin under {a.build}")
        return 77
    tmp = tempfile.mkdtemp(prefix="zestfs-pull-swarm-")
    origin = None
    try:
        src, data = os.path.join(tmp, "src"), os.path.join(tmp, "data")
        os.makedirs(src)
        rng = random.Random(21)
        nfiles = 4
        model = 0
        for k in range(nfiles):
            b = fsutil.safetensors_like(rng, a.size_mib * MiB // nfiles)
            open(os.path.join(src, f"model-{k:05d}-of-{nfiles:05d}.safetensors"), "wb").write(b)
            model += len(b)
        open(os.path.join(src, "config.json"), "w").write(json.dumps({"model_type": "bench"}))
        fsutil.ingest(origin_exe, data, "org/bench", src)
        origin = fsutil.Origin(origin_exe, data, tmp, "--total-bps", str(int(a.origin_mbs * 1e6)))
        rows, allok = [], True
        for r in range(a.rounds):
            for p2p in (False, True):
                name = f"{a.nodes} nodes, " + ("--peer among them, --seed" if p2p else "--no-p2p")
                ok, egress, secs, peer, cdn = run_once(zestfs, origin, tmp, a.nodes, p2p,
                                                       f"r{r}{'p' if p2p else 'c'}")
                allok &= ok
                rows.append((name, egress, secs, peer, cdn, ok))
                print(f"  {name}: origin {egress / model:.2f}x the model, {secs:.1f} s", flush=True)
        print(f"\nmodel: {model / MiB:.1f} MiB of Xet files ({nfiles} files); origin capped at "
              f"{a.origin_mbs:g} MB/s; {os.cpu_count()} CPUs\n")
        print("| run | origin bytes / model | time to all done | from peers (sum) | from CDN (sum) | all exit 0 |")
        print("|---|---|---|---|---|---|")
        for name, egress, secs, peer, cdn, ok in rows:
            print(f"| {name} | {egress / model:.2f}x | {secs:.1f} s | {peer / MiB:.0f} MiB | "
                  f"{cdn / MiB:.0f} MiB | {'yes' if ok else 'NO'} |")
        p2p_rows = [r for r in rows if "--peer" in r[0]]
        worst = max(r[1] for r in p2p_rows) / model
        print(f"\ngoal with peers: origin <= 1.25x the model: {'met' if worst <= 1.25 else 'missed'} "
              f"(worst {worst:.2f}x)")
        return 0 if allok else 1
    finally:
        if origin:
            origin.stop()
        if a.keep:
            shutil.rmtree(os.path.join(tmp, "data"), ignore_errors=True)
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

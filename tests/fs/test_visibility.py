#!/usr/bin/env python3
"""test_visibility.py ZESTFS [ZESTFS_ORIGIN] — what is seeded is decided by the
Hub's repo info asked without a token, kept with the repo in the store, never by
whether a token was used (issue 18 item 1, issue 19 item 4).  On loopback, the
origin with --token (private repos answer anonymous callers 401):

  - node A, logged in, reads a public, a private (ingest --private) and a gated
    (ingest --gated: repo info "gated": "manual") repo byte-exact; its status
    says public/private/gated, only the public one seeded; /metrics says so too;
  - with the CDN refused (knob refuse_xorbs), node B, logged in, reads the public
    repo byte-exact with every Xet byte from A; B opts in to the private and
    gated swarms (--seed-private) and asks A: A answers nothing of them, B's
    reads of them fail (read deadline) and B's peer bytes do not grow;
  - the verdict follows the Hub when the repo is resolved again: org/pub made
    private on the origin, `zestfs pull` through A re-checks it, A stops
    serving it (node B2, opted in, is refused: its read fails); made public
    again and pulled, A serves it to B2 again, byte-exact;
  - A's store served by `zestfs seed` with no token: its log names the private
    and gated repos as not served, node C (CDN refused, opted in to all) reads
    the public repo byte-exact from the seed and nothing of the others;
  - the verdict is persisted: an offline remount of A's store (no Hub) shows
    the same verdicts with their check time.
Exit 0 pass, 1 fail, 77 skip."""
import json, os, random, re, subprocess, sys, threading, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import Origin, knobs, mount, unmount  # noqa: E402
from test_p2p import src_bytes, status, wait_log  # noqa: E402

TOKEN = "hf_visibility_test_token"


def repo_info(origin, repo, token=None):
    req = urllib.request.Request(f"{origin.url}/api/models/{repo}",
                                 headers={"Authorization": "Bearer " + token} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, None


def try_read(path, timeout):
    """'ok' with the bytes, 'error' (errno) or 'hung' when nothing came within timeout."""
    out = {}

    def rd():
        try:
            out["b"] = open(path, "rb").read()
        except OSError as e:
            out["e"] = e.errno
    t = threading.Thread(target=rd, daemon=True)
    t.start()
    t.join(timeout)
    if "b" in out:
        return "ok", out["b"]
    return ("error", out["e"]) if "e" in out else ("hung", None)


def peer_cdn(zestfs, store, want):
    """(peer, CDN) bytes of a mount once its peer bytes reach `want` (the
    counters are updated as the fetched runs are stored, just after the read
    returned), or as they are after 15 s."""
    end = time.time() + 15
    while True:
        peer, cdn = src_bytes(status(zestfs, store))
        if peer >= want or time.time() > end:
            return peer, cdn
        time.sleep(0.2)


def repos_by_id(st):
    return {r.get("id"): r for r in st.get("repos") or []}


def main():
    run = fsutil.start("zestfs-vis-")
    if run is None:
        return 77
    zestfs, check, tmp = run.zestfs, run.check, run.tmp
    data = os.path.join(tmp, "data")
    rng = random.Random(18)
    repos = {"org/pub": [], "org/priv": ["--private"], "org/gated": ["--gated"]}
    files, commits, srcs = {}, {}, {}
    for repo, extra in repos.items():  # distinct bytes: no xorb is shared between them
        src = srcs[repo] = os.path.join(tmp, "src-" + repo.split("/")[1])
        os.makedirs(src)
        files[repo] = {"model.safetensors": fsutil.safetensors_like(rng, 6_000_000),
                       "weights.bin": rng.randbytes(1_500_000),
                       "config.json": json.dumps({"repo": repo}).encode()}
        for p, b in files[repo].items():
            open(os.path.join(src, p), "wb").write(b)
        commits[repo] = fsutil.ingest(run.origin_exe, data, repo, src, *extra)
    xet_bytes = {r: sum(len(b) for p, b in f.items() if p != "config.json") for r, f in files.items()}
    origin = Origin(run.origin_exe, data, tmp, "--token", TOKEN)
    # nothing of the test's own environment leaks in: no token file, no HF_TOKEN
    os.environ["HF_HOME"] = os.path.join(tmp, "hf-home")
    os.environ.pop("HF_TOKEN", None)
    os.environ.pop("HF_TOKEN_PATH", None)
    procs, seed = [], None

    def snap(mnt, repo):
        return os.path.join(mnt, "models--" + repo.replace("/", "--"), "snapshots", commits[repo])

    def node(name, *extra, store=None, env=None):
        mnt, logp = (os.path.join(tmp, name + x) for x in ("-mnt", ".log"))
        store = store or os.path.join(tmp, name + "-store")
        os.makedirs(mnt, exist_ok=True)
        old = dict(os.environ)
        os.environ.update(env or {})
        try:
            p = mount(zestfs, mnt, ["--endpoint", origin.url, "--store", store, *extra],
                      open(logp, "a"))
        finally:
            os.environ.clear()
            os.environ.update(old)
        procs.append((p, mnt))
        check(os.path.ismount(mnt), f"node {name} mounted")
        m = wait_log(logp, r"peers on 127\.0\.0\.1:(\d+)", 10) if "--offline" not in extra else None
        return p, mnt, store, logp, int(m.group(1)) if m else 0

    def reads_ok(mnt, repo):
        return all(open(os.path.join(snap(mnt, repo), p), "rb").read() == b
                   for p, b in files[repo].items())

    all_repos = [a for r in repos for a in ("--repo", r)]
    optin = ["--seed-private", "org/priv", "--seed-private", "org/gated"]
    short_deadline = {"ZESTFS_READ_DEADLINE": "8"}
    try:
        # ---- the origin answers repo info as the Hub does ----
        st, info = repo_info(origin, "org/pub")
        check(st == 200 and info.get("private") is False and info.get("gated") is False,
              f"origin: public repo info private=false gated=false ({st})")
        st, info = repo_info(origin, "org/gated")
        check(st == 200 and info.get("gated") == "manual" and info.get("private") is False,
              f"origin: gated repo info gated=\"manual\" ({st}, {info and info.get('gated')})")
        st, _ = repo_info(origin, "org/priv")
        check(st == 401, f"origin: private repo info anonymously: 401 ({st})")
        st, info = repo_info(origin, "org/priv", TOKEN)
        check(st == 200 and info.get("private") is True, f"origin: private repo with the token ({st})")

        # ---- A: logged in, reads all three ----
        pa, ma, sa, la, porta = node("a", "--token", TOKEN, "--listen", "127.0.0.1:0", *all_repos,
                                     "--metrics", "127.0.0.1:0")
        for r in repos:
            check(reads_ok(ma, r), f"A: {r} byte-exact from the origin")
        rs = repos_by_id(status(zestfs, sa))
        for r, want in (("org/pub", "public"), ("org/priv", "private"), ("org/gated", "gated")):
            got = rs.get(r) or {}
            check(got.get("visibility") == want and got.get("visibility_checked", 0) > 0,
                  f"A: status says {r} is {want} ({got.get('visibility')}, checked "
                  f"{got.get('visibility_checked')})")
            check(got.get("seeded") is (want == "public"),
                  f"A: {r} {'seeded' if want == 'public' else 'not seeded'} ({got.get('seeded')})")
        text = subprocess.run([zestfs, "status", "--store", sa], capture_output=True, text=True,
                              timeout=60).stdout
        check(re.search(r"org/pub .*public, seeded", text) is not None and
              re.search(r"org/priv .*private, not seeded", text) is not None and
              re.search(r"org/gated .*gated, not seeded", text) is not None,
              "A: `zestfs status` prints each repo's verdict")
        mm = wait_log(la, r"metrics on 127\.0\.0\.1:(\d+)", 5)
        body = urllib.request.urlopen(f"http://127.0.0.1:{mm.group(1)}/metrics",
                                      timeout=30).read().decode() if mm else ""
        check(all(f'zestfs_repo_seeded{{type="model",repo="{r}",visibility="{v}"}} {n}' in body
                  for r, v, n in (("org/pub", "public", 1), ("org/priv", "private", 0),
                                  ("org/gated", "gated", 0))),
              "A: /metrics has each repo's verdict and whether it is seeded")
        la_text = open(la, errors="replace").read()
        check("models/org/priv: private on the Hub: not shared with peers" in la_text and
              "models/org/gated: gated on the Hub: not shared with peers" in la_text,
              "A: its log says the private and gated repos are not shared")

        # ---- B: logged in, the CDN refused: the public repo all from A, nothing else ----
        knobs(origin, refuse_xorbs=1)
        origin.reset()
        pb, mb, sb, lb, _ = node("b", "--token", TOKEN, "--listen", "127.0.0.1:0", *all_repos,
                                 *optin, "--peer", f"127.0.0.1:{porta}", env=short_deadline)
        check(wait_log(lb, r"peers: [1-9]\d* connected", 30) is not None, "B: connected to A")
        time.sleep(0.5)  # A's HAVEs follow the handshake
        check(reads_ok(mb, "org/pub"), "B: org/pub byte-exact with the CDN refused")
        peer, cdn = peer_cdn(zestfs, sb, xet_bytes["org/pub"])
        check(peer >= xet_bytes["org/pub"] and cdn == 0,
              f"B: org/pub all from A: peer bytes {peer} >= {xet_bytes['org/pub']}, CDN {cdn}")
        for r in ("org/priv", "org/gated"):
            res, b = try_read(os.path.join(snap(mb, r), "model.safetensors"), 60)
            check(res == "error", f"B: reading {r} fails: A serves nothing of it ({res})")
        peer2, cdn2 = src_bytes(status(zestfs, sb))
        check(peer2 == peer and cdn2 == 0,
              f"B: no peer bytes for the private and gated repos ({peer2 - peer})")
        sta = status(zestfs, sa)
        up = (sta.get("peers") or {}).get("data_up", -1)
        check(up == peer, f"A sent exactly the public repo's bytes ({up} == {peer})")
        check(origin.stats().get("xorb_bytes_total", -1) == 0, "origin sent B no xorb bytes")
        unmount(pb, mb)
        knobs(origin, refuse_xorbs=0)

        # ---- re-resolved: org/pub turns private on the Hub, then public again ----
        def repull(private):
            fsutil.ingest(run.origin_exe, data, "org/pub", srcs["org/pub"],
                          *(["--private"] if private else []))
            r = subprocess.run([zestfs, "pull", "-q", "--store", sa, "org/pub"], capture_output=True,
                               text=True, timeout=120)
            got = repos_by_id(status(zestfs, sa)).get("org/pub") or {}
            want = "private" if private else "public"
            check(r.returncode == 0 and got.get("visibility") == want and
                  got.get("seeded") is (not private),
                  f"A: after a pull, org/pub is {want} and {'not ' if private else ''}seeded "
                  f"({r.returncode}, {got.get('visibility')}, {got.get('seeded')})")
        repull(True)
        check(wait_log(la, r"models/org/pub is private now: no longer shared", 5) is not None,
              "A: its log says org/pub is no longer shared")
        knobs(origin, refuse_xorbs=1)
        pb, mb, sb2, lb, _ = node("b2", "--token", TOKEN, "--listen", "127.0.0.1:0", "--repo",
                                  "org/pub", "--seed-private", "org/pub", "--peer",
                                  f"127.0.0.1:{porta}", env=short_deadline)
        time.sleep(1.5)
        res, _ = try_read(os.path.join(snap(mb, "org/pub"), "weights.bin"), 60)
        check(res == "error", f"B2: org/pub, private now, is not served by A ({res})")
        check(src_bytes(status(zestfs, sb2))[0] == 0, "B2: no peer bytes while org/pub is private")
        repull(False)
        time.sleep(1.5)  # A announces it again
        check(reads_ok(mb, "org/pub"), "B2: org/pub byte-exact from A once public again")
        peer, cdn = peer_cdn(zestfs, sb2, xet_bytes["org/pub"])
        check(peer >= xet_bytes["org/pub"] and cdn == 0, f"B2: peer bytes {peer}, CDN {cdn}")
        unmount(pb, mb)
        knobs(origin, refuse_xorbs=0)

        # ---- `zestfs seed` on A's store, no token ----
        unmount(pa, ma)
        seedlog = os.path.join(tmp, "seed.log")
        seed = subprocess.Popen([zestfs, "seed", "--store", sa, "--listen", "127.0.0.1:0",
                                 "--no-dht"], stdout=open(seedlog, "w"), stderr=subprocess.STDOUT)
        m = wait_log(seedlog, r"peers on 127\.0\.0\.1:(\d+)", 20)
        check(m is not None, "seed (no token) printed its port")
        check(wait_log(seedlog, r"3 repos from .*, 1 served", 20) is not None and
              wait_log(seedlog, r"models/org/priv: private: not served", 1) is not None and
              wait_log(seedlog, r"models/org/gated: gated: not served", 1) is not None,
              "seed: serves the public repo only, says so for the others")
        knobs(origin, refuse_xorbs=1)
        origin.reset()
        pc, mc, sc, lc, _ = node("c", "--token", TOKEN, "--listen", "127.0.0.1:0", *all_repos,
                                 *optin, "--peer", f"127.0.0.1:{m.group(1) if m else 1}",
                                 env=short_deadline)
        check(wait_log(lc, r"peers: [1-9]\d* connected", 30) is not None, "C: connected to the seed")
        time.sleep(0.5)
        check(reads_ok(mc, "org/pub"), "C: org/pub byte-exact from the seed, CDN refused")
        peer, cdn = peer_cdn(zestfs, sc, xet_bytes["org/pub"])
        check(peer >= xet_bytes["org/pub"] and cdn == 0, f"C: peer bytes {peer}, CDN bytes {cdn}")
        for r in ("org/priv", "org/gated"):
            res, _ = try_read(os.path.join(snap(mc, r), "weights.bin"), 60)
            check(res == "error", f"C: reading {r} fails: the seed serves nothing of it ({res})")
        peer2, _ = src_bytes(status(zestfs, sc))
        check(peer2 == peer, f"C: no peer bytes for the private and gated repos ({peer2 - peer})")
        unmount(pc, mc)
        knobs(origin, refuse_xorbs=0)
        seed.terminate()
        check(seed.wait(30) == 0, "seed exits 0 on SIGTERM")
        m = wait_log(seedlog, r"served (\d+) chunk bytes", 5)
        check(m is not None and int(m.group(1)) == peer,
              f"seed served exactly the public repo's bytes ({m.group(1) if m else None})")

        # ---- the verdicts persist: an offline remount of A's store ----
        pa, ma, sa, la, _ = node("a", "--offline", store=sa)
        rs = repos_by_id(status(zestfs, sa))
        for r, want in (("org/pub", "public"), ("org/priv", "private"), ("org/gated", "gated")):
            got = rs.get(r) or {}
            check(got.get("visibility") == want and got.get("visibility_checked", 0) > 0,
                  f"A offline: {r} still {want} from the store ({got.get('visibility')})")
        unmount(pa, ma)
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    finally:
        for p, mnt in procs:
            if p.poll() is None:
                unmount(p, mnt)
        if seed and seed.poll() is None:
            seed.kill()
            seed.wait()
        for n in ("a", "b", "b2", "c", "seed"):
            lp = os.path.join(tmp, n + ".log")
            if os.path.exists(lp):
                out = open(lp, errors="replace").read()
                check("runtime error:" not in out and "Sanitizer" not in out,
                      f"no sanitizer report in {n}'s log")
                if run.fails:
                    print(f"---- {n} log ----\n" + out[-3000:])
    return run.finish(None, os.path.join(tmp, "none"), origin)


if __name__ == "__main__":
    sys.exit(main())

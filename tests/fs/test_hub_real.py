#!/usr/bin/env python3
"""test_hub_real.py ZESTFS [ZESTFS_ORIGIN] — zestfs against the real Hub's
less happy answers (spec/hub-real.md, issue 18 items 2–4), played by
zestfs-origin's knobs (origin/README.md "The real Hub"):

  gated, no access    the repo is listed (names, sizes, snapshot), opening a
                      Xet file and a regular file fails with EACCES within a
                      second, the log names the repo, says gated and gives the
                      page where access is asked for; the mount's --http
                      resolve answers 403 GatedRepo
  gated, access       with a token on the access list: byte-exact, also when
                      the tree redacts every xetHash (HEAD resolve fallback);
                      huggingface_hub itself sees gated "manual", raises
                      GatedRepoError (401 anonymous, 403 logged in) and
                      downloads with the access token
  renamed             an old name (307 to the canonical one) mounted with
                      --repo and on demand (a one-segment legacy name):
                      byte-exact; hf_hub_download of the old name through the
                      mount (HF_HUB_CACHE = mount) downloads nothing; a
                      node mounting the new name reads everything from a
                      node that mounted the old one (one swarm), CDN refused
  429                 the tree answers 429 + RateLimit t= for 10 s: the mount
                      waits, the repo appears afterwards, byte-exact; a read
                      while every API call answers 429 fails and the log says
                      the Hub rate-limited us
  bad token           401 "Invalid credentials in Authorization header": the
                      log says the Hub token is invalid or expired
  tree 504            one tree page answers 504: retried, listed, byte-exact

Exit 0 pass, 1 fail, 77 skip (no /dev/fuse, no origin; without the Python
clients only the hf_hub_download check is left out, and never when CI=true)."""
import errno, json, os, re, subprocess, sys, textwrap, time, urllib.error, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import MiB, Origin, ingest, knobs, mount, sha, unmount  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
ACCESS = "hf_access_token_for_gated"
BAD = "hf_revoked_token"


def pick_python():
    p = os.path.join(ROOT, "tests", "interop", ".venv", "bin", "python")
    for c in (p, os.environ.get("ZESTFS_TEST_PYTHON", "")):
        if c and os.path.exists(c):
            r = subprocess.run([c, "-c", "import huggingface_hub"], capture_output=True, timeout=60)
            if r.returncode == 0:
                return c
    return None


def make_src(d):
    import random
    rng = random.Random(18)
    files = {
        "model.safetensors": fsutil.safetensors_like(rng, 6 * MiB),
        "extra.bin": rng.randbytes(2 * MiB + 12345),
        "config.json": json.dumps({"model_type": "tiny", "hidden": 8}).encode(),
        "sub/notes.txt": b"a regular git file\n",
    }
    for p, b in files.items():
        os.makedirs(os.path.dirname(os.path.join(d, p)), exist_ok=True)
        with open(os.path.join(d, p), "wb") as f:
            f.write(b)
    return files


def get_knobs(origin):
    with urllib.request.urlopen(origin.url + "/_origin/knobs", timeout=10) as r:
        return json.load(r)


def main():
    run = fsutil.start("zestfs-hubreal-")
    if run is None:
        return 77
    py = pick_python()
    if not py and os.environ.get("CI") == "true":
        print("FAIL CI=true and tests/interop/.venv (huggingface_hub) is missing")
        return 1
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    # no token from the environment or a token file: each mount says which
    for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        os.environ.pop(k, None)
    os.environ["HF_HOME"] = os.path.join(tmp, "hf-home")
    os.environ["HF_TOKEN_PATH"] = os.path.join(tmp, "hf-home", "token")
    src, data, mnt = (os.path.join(tmp, n) for n in ("src", "data", "mnt"))
    os.mkdir(src)
    os.mkdir(mnt)
    files = make_src(src)
    commits = {r: ingest(origin_exe, data, r, src) for r in ("org/gated", "new-org/renamed", "org/plain")}
    origin = Origin(origin_exe, data, tmp)
    knobs(origin, gated={"org/gated": [ACCESS]},
          aliases={"old-org/old-name": "new-org/renamed", "legacy": "new-org/renamed"})
    proc = None
    nstore = [0]

    def fresh_mount(*args):
        nstore[0] += 1
        log.seek(0, 2)
        start = log.tell()
        store = os.path.join(tmp, f"store{nstore[0]}")
        p = mount(zestfs, mnt, ["--endpoint", origin.url, "--store", store, "--no-p2p", *args], log)
        return p, start

    def log_since(start):
        log.flush()
        with open(log.name) as f:
            f.seek(start)
            return f.read()

    def byte_exact(folder, commit, what):
        snap = os.path.join(mnt, folder, "snapshots", commit)
        bad = [p for p, b in files.items() if not os.path.exists(os.path.join(snap, p))
               or sha(open(os.path.join(snap, p), "rb").read()) != sha(b)]
        return check(not bad, f"{what}: every file byte-exact {bad}")

    def stop(p, what):
        rc = unmount(p, mnt)
        check(rc == 0, f"{what}: unmounted (exit {rc})")

    try:
        # ---- gated, no access ----
        proc, at = fresh_mount("--repo", "org/gated", "--http", "127.0.0.1:0")
        if not check(os.path.ismount(mnt), "gated without access: mounted (the tree is not refused)"):
            raise RuntimeError("no mount: " + log_since(at)[-2000:])
        snap = os.path.join(mnt, "models--org--gated", "snapshots", commits["org/gated"])
        names = sorted(os.path.relpath(os.path.join(dp, f), snap) for dp, _, fs in os.walk(snap) for f in fs)
        check(names == sorted(files), f"gated: listed {names}")
        check(all(os.stat(os.path.join(snap, p)).st_size == len(b) for p, b in files.items()),
              "gated: sizes listed")
        for p in ("model.safetensors", "config.json"):
            t0 = time.monotonic()
            try:
                open(os.path.join(snap, p), "rb").read(1)
                e = 0
            except OSError as x:
                e = x.errno
            dt = time.monotonic() - t0
            check(e == errno.EACCES and dt < 1.0, f"gated: open {p} -> {errno.errorcode.get(e, e)} in {dt:.2f} s")
        out = log_since(at)
        line = [ln for ln in out.splitlines() if "is gated" in ln]
        check(line and "org/gated" in line[0] and f"{origin.url}/org/gated" in line[0],
              f"gated: the log names the repo, says gated and the access page {line[:1]}")
        hp = re.search(r"zestfs: http on 127\.0\.0\.1:(\d+)", out)
        if check(hp, "gated: --http listening"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{hp.group(1)}/org/gated/resolve/main/config.json",
                                       timeout=10)
                st, code = 200, None
            except urllib.error.HTTPError as x:
                st, code = x.code, x.headers.get("X-Error-Code")
            check((st, code) == (403, "GatedRepo"), f"gated: --http resolve answers {st} {code}")
        stop(proc, "gated without access")
        proc = None

        # ---- gated, with access; then with the tree redacted for everyone ----
        for redact in (0, 1):
            knobs(origin, gated_redact_all=redact)
            what = "gated with access" + (", tree redacted" if redact else "")
            origin.reset()
            proc, at = fresh_mount("--repo", "org/gated", "--token", ACCESS)
            if check(os.path.ismount(mnt), f"{what}: mounted"):
                byte_exact("models--org--gated", commits["org/gated"], what)
                # read as Xet files (tokens + reconstructions), not as whole downloads
                st = origin.stats()
                check(st["xet_tokens"] > 0 and st["xorb_bytes_total"] > 0,
                      f"{what}: read over Xet ({st['xet_tokens']} tokens, {st['xorb_bytes_total']} xorb bytes)")
            stop(proc, what)
            proc = None
        knobs(origin, gated_redact_all=0)

        # ---- the real client reads the origin's gated answers as the Hub's ----
        if py:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
            env.update(HF_ENDPOINT=origin.url, HF_HOME=os.path.join(tmp, "hf-client"),
                       HF_HUB_CACHE=os.path.join(tmp, "hf-client", "hub"), HF_HUB_DISABLE_TELEMETRY="1")
            code = textwrap.dedent(f'''
                import json
                from huggingface_hub import hf_hub_download, model_info
                from huggingface_hub.errors import GatedRepoError
                out = {{"gated": model_info("org/gated").gated}}
                for who in (None, "{BAD}x"):
                    try:
                        hf_hub_download("org/gated", "config.json", token=who or False)
                        out[str(who)] = "downloaded"
                    except GatedRepoError as e:
                        out[str(who)] = "GatedRepoError " + str(e.response.status_code)
                p = hf_hub_download("org/gated", "model.safetensors", token="{ACCESS}")
                out["access"] = open(p, "rb").read(64).hex()
                print(json.dumps(out))''')
            r = subprocess.run([py, "-c", code], capture_output=True, text=True, env=env, timeout=240)
            res = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"err": r.stderr[-1500:]}
            check(res.get("gated") == "manual" and res.get("None") == "GatedRepoError 401"
                  and res.get(BAD + "x") == "GatedRepoError 403"
                  and res.get("access") == files["model.safetensors"][:64].hex(),
                  f"huggingface_hub: gated manual, GatedRepoError 401/403, downloads with access {res}")

        # ---- renamed: --repo with the old name ----
        canon = commits["new-org/renamed"]
        proc, at = fresh_mount("--repo", "old-org/old-name")
        if check(os.path.ismount(mnt), "renamed --repo: mounted"):
            check(os.path.isdir(os.path.join(mnt, "models--old-org--old-name")),
                  "renamed: presented under the old name")
            byte_exact("models--old-org--old-name", canon, "renamed --repo")
            if py:
                origin.reset()
                env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
                env.update(HF_ENDPOINT=origin.url, HF_HUB_CACHE=mnt, HF_HOME=os.path.join(tmp, "hf-home"),
                           HF_XET_CACHE=os.path.join(tmp, "xet-cache"), HF_HUB_DISABLE_TELEMETRY="1",
                           HF_HUB_DISABLE_PROGRESS_BARS="1")
                code = textwrap.dedent("""
                    import json
                    from huggingface_hub import hf_hub_download
                    print(json.dumps(hf_hub_download("old-org/old-name", "model.safetensors")))""")
                r = subprocess.run([py, "-c", code], capture_output=True, text=True, env=env, timeout=240)
                st = origin.stats()
                ok = r.returncode == 0
                path = json.loads(r.stdout.strip().splitlines()[-1]) if ok else ""
                want = os.path.join(mnt, "models--old-org--old-name", "snapshots", canon, "model.safetensors")
                check(ok and os.path.realpath(path) == os.path.realpath(want),
                      f"hf_hub_download of the old name: a path in the mount {path or r.stderr[-1500:]}")
                check(st["xorb_bytes_total"] == 0 and st["bytes_total"] < 64 << 10,
                      f"hf_hub_download of the old name downloads nothing ({st['bytes_total']} bytes)")
        stop(proc, "renamed --repo")
        proc = None

        # ---- renamed: a one-segment legacy name on demand ----
        proc, at = fresh_mount()
        if check(os.path.ismount(mnt), "renamed on demand: mounted"):
            byte_exact("models--legacy", canon, "renamed on demand (legacy)")
            byte_exact("models--old-org--old-name", canon, "renamed on demand (old-org/old-name)")
        stop(proc, "renamed on demand")
        proc = None

        # ---- renamed: old-name and new-name users share one swarm ----
        def node(name, repo, *extra):
            m, st, lp = (os.path.join(tmp, name + x) for x in ("-mnt", "-store", ".log"))
            os.mkdir(m)
            lg = open(lp, "w")
            p = mount(zestfs, m, ["--endpoint", origin.url, "--repo", repo, "--store", st, "--token", "",
                                  "--listen", "127.0.0.1:0", *extra], lg)
            nodes.append((p, m, lg))
            port = None
            for _ in range(100):
                g = re.search(r"peers on 127\.0\.0\.1:(\d+)", open(lp).read())
                if g:
                    port = int(g.group(1))
                    break
                time.sleep(0.1)
            return m, lp, port

        nodes = []
        try:
            ma, la, porta = node("a", "old-org/old-name")
            check(os.path.ismount(ma) and porta, "swarm: node A (old name) mounted, listening")
            snapa = os.path.join(ma, "models--old-org--old-name", "snapshots", canon)
            check(all(open(os.path.join(snapa, p), "rb").read() == b for p, b in files.items()),
                  "swarm: A read the old name from the origin")
            knobs(origin, refuse_xorbs=1)
            origin.reset()
            mb, lb, _ = node("b", "new-org/renamed", "--peer", f"127.0.0.1:{porta}")
            for _ in range(600):
                if re.search(r"peers: [1-9]\d* connected", open(lb).read()):
                    break
                time.sleep(0.1)
            check(re.search(r"peers: [1-9]\d* connected", open(lb).read()), "swarm: B connected to A")
            time.sleep(0.5)  # A's HAVEs follow the handshake
            snapb = os.path.join(mb, "models--new-org--renamed", "snapshots", canon)
            try:
                ok = all(open(os.path.join(snapb, p), "rb").read() == b for p, b in files.items())
            except OSError as x:
                ok = check(False, f"swarm: B's read: {x!r}")
            st = origin.stats()
            check(ok and st["xorb_bytes_total"] == 0,
                  f"swarm: B (new name) read byte-exact from A with the CDN refused "
                  f"(origin xorb bytes {st['xorb_bytes_total']})")
        finally:
            knobs(origin, refuse_xorbs=0)
            for p, m, lg in nodes:
                unmount(p, m)
                lg.close()

        # ---- 429 on the tree for 10 s ----
        knobs(origin, rate_limit_tree_s=10)
        t0 = time.monotonic()
        proc, at = fresh_mount("--repo", "org/plain")
        for _ in range(600):  # the mount appears once the Hub lets us list
            if os.path.ismount(mnt) or proc.poll() is not None:
                break
            time.sleep(0.1)
        dt = time.monotonic() - t0
        if check(os.path.ismount(mnt), f"429 for 10 s on the tree: mounted after {dt:.1f} s"):
            check(dt >= 8, f"429: the mount waited the rate limit out ({dt:.1f} s)")
            byte_exact("models--org--plain", commits["org/plain"], "429 for 10 s")
        stop(proc, "429")
        proc = None
        knobs(origin, rate_limit_tree_s=0)

        # ---- a read while the Hub rate-limits every API call: fails, the log says why ----
        knobs(origin, token_ttl=31)  # the Xet token the mount holds is stale after 1 s
        proc, at = fresh_mount("--repo", "org/plain")
        if check(os.path.ismount(mnt), "read under 429: mounted"):
            time.sleep(2)
            knobs(origin, rate_limit_s=600, token_ttl=0)
            t0 = time.monotonic()
            try:
                open(os.path.join(mnt, "models--org--plain", "snapshots", commits["org/plain"],
                                  "extra.bin"), "rb").read()
                e = 0
            except OSError as x:
                e = x.errno
            dt = time.monotonic() - t0
            knobs(origin, rate_limit_s=0)
            check(e != 0 and dt < 120, f"read under 429: fails ({errno.errorcode.get(e, e)}) in {dt:.1f} s")
            check("rate-limited us" in log_since(at), "read under 429: the log says the Hub rate-limited us")
        stop(proc, "read under 429")
        proc = None

        # ---- a tree page answering 504 once ----
        knobs(origin, tree_fail_next=1, tree_fail_status=504)
        proc, at = fresh_mount("--repo", "org/plain")
        if check(os.path.ismount(mnt), "tree 504 once: mounted"):
            check(get_knobs(origin)["tree_fail_next"] == 0, "tree 504 once: the failing page was asked for")
            byte_exact("models--org--plain", commits["org/plain"], "tree 504 once, retried")
        stop(proc, "tree 504")
        proc = None

        # ---- a bad token: said so, and not remembered as absent ----
        knobs(origin, revoked_tokens=[BAD])
        proc, at = fresh_mount("--token", BAD)
        if check(os.path.ismount(mnt), "bad token: mounted"):
            folder = os.path.join(mnt, "models--org--plain")
            check(not os.path.exists(folder), "bad token: the repo is not presented")
            out = log_since(at)
            n = out.count("the Hub token is invalid or expired")
            check(n == 1, f"bad token: the log says so, once ({n}) {out[-400:]!r}")
            check("not found" not in out, "bad token: not reported as not found")
            os.path.exists(os.path.join(mnt, "models--org--other"))  # a second failing lookup
            check(log_since(at).count("invalid or expired") == 1, "bad token: said once only")
            knobs(origin, revoked_tokens=[])  # the token works again
            t0 = time.monotonic()
            while not os.path.isdir(folder) and time.monotonic() - t0 < 40:
                time.sleep(1)
            dt = time.monotonic() - t0
            check(os.path.isdir(folder) and dt < 30,
                  f"bad token: the repo appears {dt:.0f} s after the token works (not remembered as absent)")
        stop(proc, "bad token")
        proc = None
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    finally:
        rc = run.finish(proc, mnt, origin)
    return rc


if __name__ == "__main__":
    sys.exit(main())

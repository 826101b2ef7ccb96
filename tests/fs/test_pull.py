#!/usr/bin/env python3
"""test_pull.py ZESTFS [ZESTFS_ORIGIN] — filling the store ahead of reads.

Against zestfs-origin on loopback with a generated model (fsutil.make_model,
plus a GGUF file built here):
  * `zestfs pull` with no mount running (standalone: it opens the store
    itself) with --include: exactly the matching files' bytes come from the
    origin; a mount afterwards with --offline serves them byte-exact and an
    unpulled file fails with EIO; progress goes to stderr as plain lines;
  * `zestfs pull` through a running mount (its control socket): the rest of
    the repo is fetched once, then every read of the mount fetches nothing;
    a second pull fetches nothing; a selection over the store cap is refused
    with ENOSPC before fetching; an unknown repo fails;
  * prefetch at open: holding a .safetensors / .gguf blob open after reading
    only its header fetches no more than its header window (tensors come as
    a reader shows it wants them: test_prefetch.py); read in order it is
    fetched once, then read again with nothing fetched; opening and closing
    at once fetches little more than the header window.
Exit 0 pass, 1 fail, 77 skip."""
import os, random, shutil, struct, subprocess, sys, time

import fsutil
from fsutil import MiB, Origin, ingest, make_model, mount, read_all, sha, unmount


def gguf(rng, ntensors=6, tensor_bytes=2 * MiB):
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b
    h = b"GGUF" + struct.pack("<IQQ", 3, ntensors, 2)
    h += s("general.name") + struct.pack("<I", 8) + s("tiny")
    h += s("general.alignment") + struct.pack("<II", 4, 32)
    for i in range(ntensors):
        h += s(f"blk.{i}.weight") + struct.pack("<IQQIQ", 2, tensor_bytes // 8, 2, 0, i * tensor_bytes)
    h += b"\0" * (-len(h) % 32)
    return h + rng.randbytes(ntensors * tensor_bytes)


def pull(zestfs, *args, env=None):
    """`zestfs pull ARGS`: loopback addresses only (fsutil.guard_args); a
    sanitizer report on its stderr fails the test (fsutil.problem)."""
    fsutil.guard_args(args, "zestfs pull")
    if env and env.get("HF_ENDPOINT"):
        fsutil.guard_args(["--endpoint", env["HF_ENDPOINT"]], "zestfs pull (HF_ENDPOINT)")
    r = subprocess.run([zestfs, "pull", *args], capture_output=True, text=True, timeout=300,
                       env=env)
    line = fsutil.sanitizer_report(r.stderr)
    if line:
        print(r.stderr[-6000:])
        fsutil.problem(f"sanitizer report from zestfs pull {' '.join(args)}: {line.strip()}")
    return r


def cached_bytes(store):
    """(bytes in the page cache, bytes) of the store's segment files (fincore)."""
    files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(store, "xorbs")) for f in fs]
    if not files:
        return 0, 0
    r = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "-o", "RES,SIZE", *files],
                       capture_output=True, text=True)
    res = size = 0
    for line in r.stdout.split("\n"):
        f = line.split()
        if len(f) == 2:
            res, size = res + int(f[0]), size + int(f[1])
    return res, size


def direct_io_ok(d):
    p = os.path.join(d, "tmp", "direct-probe")
    try:
        os.close(os.open(p, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600))
        os.unlink(p)
        return shutil.which("fincore") is not None
    except OSError:
        return False


def xorb_bytes(origin):
    return origin.stats()["xorb_bytes_total"]


def main():
    run = fsutil.start("zestfs-pull-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    src, data, store, mnt = (os.path.join(tmp, n) for n in ("src", "data", "store", "mnt"))
    os.mkdir(mnt)
    files = make_model(src)
    rng = random.Random(7)
    files["tiny.gguf"] = gguf(rng)
    open(os.path.join(src, "tiny.gguf"), "wb").write(files["tiny.gguf"])
    commit = ingest(origin_exe, data, "org/tiny", src)
    origin = Origin(origin_exe, data, tmp)
    proc = None
    skipped = []  # parts that could not run here: exit 77 naming them
    env = dict(os.environ, HF_TOKEN="", HF_ENDPOINT=origin.url)
    try:
        # ---- standalone pull with --include
        origin.reset()
        r = pull(zestfs, "--store", store, "--endpoint", origin.url, "--include", "*.json",
                 "--include", "weights.bin", "org/tiny@main", env=env)
        check(r.returncode == 0, f"standalone pull --include exits 0 ({r.stderr.strip()[-300:]})")
        check("pull:" in r.stderr and "done" in r.stderr, "plain progress lines when not a TTY")
        want = len(files["weights.bin"])
        got = xorb_bytes(origin)
        print(f"standalone pull: {got} xorb bytes for {want} bytes of Xet content selected")
        check(want <= got <= want * 1.05 + 65536, "standalone pull fetched the selected Xet files once")
        proc = mount(zestfs, mnt, ["--offline", "--store", store], log)
        if not check(os.path.ismount(mnt), "offline mount after the pull"):
            raise RuntimeError("no mount")
        snap = os.path.join(mnt, "models--org--tiny", "snapshots", commit)
        for p in ("config.json", "tokenizer.json", "weights.bin"):
            check(open(os.path.join(snap, p), "rb").read() == files[p], f"offline: pulled {p} byte-exact")
        try:
            with open(os.path.join(snap, "model.safetensors"), "rb") as f:
                f.seek(20 * MiB)
                f.read(4096)
            check(False, "offline: an unpulled file fails")
        except OSError as e:
            check(e.errno == 5, f"offline: an unpulled file fails with EIO ({e})")
        check(unmount(proc, mnt) == 0, "unmounted")
        proc = None

        # ---- pull through a running mount (a small cap to test the refusal later)
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--store", store], log)
        if not check(os.path.ismount(mnt), "mounted"):
            raise RuntimeError("no mount")
        check(os.path.exists(os.path.join(store, "ctl.sock")), "control socket in the store")
        check(oct(os.stat(os.path.join(store, "ctl.sock")).st_mode & 0o777) == "0o600",
              "control socket is owner-only")
        origin.reset()
        r = pull(zestfs, "--store", store, "org/tiny", env=env)
        check(r.returncode == 0, f"pull through the mount exits 0 ({r.stderr.strip()[-300:]})")
        check("8/" not in r.stderr or "files" in r.stderr, "progress reports files")
        last = [ln for ln in r.stderr.splitlines() if ln.endswith(", done")][-1:]
        check(bool(last) and ", from peers 0 B, CDN " in last[0] and ", CDN 0 B," not in last[0],
              f"through the mount, the summary line counts the bytes from peers and from the CDN ({last})")
        rest = sum(len(b) for p, b in files.items() if p not in ("weights.bin",) and len(b) > 0 and
                   (p.endswith(".safetensors") or p.endswith(".gguf")))
        got = xorb_bytes(origin)
        print(f"pull through the mount: {got} xorb bytes for {rest} bytes of remaining Xet content")
        check(rest <= got <= rest * 1.05 + 256 * 1024, "the rest of the repo fetched once")
        res, size = cached_bytes(store)
        print(f"store segments in the page cache after the pull: {res} of {size} bytes")
        if direct_io_ok(store):  # runs only a pull waits for are written around the page cache
            check(size > 0 and res < size * 0.5, f"a pull leaves most of what it stored out of the page cache ({res} of {size})")
        else:
            skipped.append("no O_DIRECT on the store's filesystem (or no fincore): the page-cache check not run")
        origin.reset()
        snap = os.path.join(mnt, "models--org--tiny", "snapshots", commit)
        for p, b in files.items():
            check(read_all(os.path.join(snap, p)) == sha(b), f"after pull: {p} byte-exact")
        st = origin.stats()
        check(st["xorb_bytes_total"] == 0, f"reads after the pull fetched nothing ({st['xorb_bytes_total']})")
        r = pull(zestfs, "--store", store, "org/tiny@main", env=env)
        check(r.returncode == 0 and origin.stats()["xorb_bytes_total"] == 0,
              "a second pull fetches nothing")
        r = pull(zestfs, "--store", store, "org/absent", env=env)
        check(r.returncode != 0, f"pull of an absent repo fails ({r.stderr.strip()[-200:]})")
        check(unmount(proc, mnt) == 0, "unmounted")
        proc = None

        # ---- cap refusal: a fresh store capped below the model
        store2 = os.path.join(tmp, "store2")
        origin.reset()
        r = pull(zestfs, "--store", store2, "--store-size", "30M", "--endpoint", origin.url,
                 "org/tiny", env=env)
        check(r.returncode != 0 and "No space" in r.stderr,
              f"a pull larger than the store cap is refused with ENOSPC ({r.stderr.strip()[-200:]})")
        check(xorb_bytes(origin) == 0, "the refused pull fetched nothing")

        # ---- an outage longer than a window's retry budget: the pull tries the
        # failed windows again with backoff and finishes once the origin is back
        fast = dict(env, ZESTFS_CELL_DEADLINE_MS="1500", ZESTFS_FILL_RETRY_MS="500")
        store4 = os.path.join(tmp, "store4")
        fsutil.knobs(origin, refuse_xorbs=1)
        errf = open(os.path.join(tmp, "pull4.err"), "w+")
        fsutil.watch_log(errf)
        p = subprocess.Popen([zestfs, "pull", "--store", store4, "--endpoint", origin.url,
                              "org/tiny"], env=fast, stderr=errf)
        time.sleep(6)  # every window has failed its own attempts by now, some twice
        origin.reset()  # first: a range fetched between the two would go uncounted
        fsutil.knobs(origin, refuse_xorbs=0)
        deadline = time.time() + 120
        while True:  # wait4, not poll(): its rusage is the pull's CPU time
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                p.kill()
            time.sleep(0.1)
        p.returncode = os.waitstatus_to_exitcode(status)
        errf.seek(0)
        err = errf.read()
        check("tries it again" in err, "the failed windows are tried again")
        check(p.returncode == 0, f"the pull finishes after the outage ({err.strip()[-300:]})")
        cpu = ru.ru_utime + ru.ru_stime
        # the figure only: its bound lives in tests/bench/pull_outage_bench.py
        print(f"figure: the pull's CPU time, a 6 s outage waited out and the repo fetched: {cpu:.2f} s")
        want = sum(len(b) for n, b in files.items() if n.endswith((".bin", ".safetensors", ".gguf")))
        check(want <= xorb_bytes(origin) <= want * 1.05 + 256 * 1024,
              f"after the outage the files came once ({xorb_bytes(origin)} for {want})")
        r = pull(zestfs, "--store", store4, "--endpoint", origin.url, "--offline", "org/tiny",
                 env=env)
        check(r.returncode == 0, f"an offline pull finds every byte stored ({r.stderr.strip()[-200:]})")
        # an outage that does not end: the pull gives up, with the error
        fsutil.knobs(origin, refuse_xorbs=1)
        t0 = time.time()
        r = pull(zestfs, "--store", os.path.join(tmp, "store5"), "--endpoint", origin.url,
                 "--include", "weights.bin", "org/tiny", env=dict(fast, ZESTFS_FILL_RETRY_MS="100"))
        fsutil.knobs(origin, refuse_xorbs=0)
        check(r.returncode != 0, f"a pull against a lasting outage fails "
              f"after {time.time() - t0:.1f} s ({r.stderr.strip()[-200:]})")

        # ---- prefetch at open
        store3 = os.path.join(tmp, "store3")
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/tiny", "--store", store3], log)
        if not check(os.path.ismount(mnt), "mounted for prefetch"):
            raise RuntimeError("no mount")
        snap = os.path.join(mnt, "models--org--tiny", "snapshots", commit)
        for name in ("model.safetensors", "tiny.gguf"):
            size = len(files[name])
            origin.reset()
            with open(os.path.join(snap, name), "rb") as f:
                head = f.read(4096)
                time.sleep(1.5)  # what it would fetch unasked, it would have started by now
                got = xorb_bytes(origin)
                print(f"prefetch at open: {name}: {got} xorb bytes fetched for {size} after reading 4 KiB")
                check(got <= 10 * MiB, f"prefetch at open: {name}: no more than its header window "
                      "while open (the tensors come as the reader shows it wants them)")
                check(head == files[name][:4096], f"prefetch at open: {name} header byte-exact")
            origin.reset()
            check(read_all(os.path.join(snap, name)) == sha(files[name]), f"{name} byte-exact read in order")
            got = xorb_bytes(origin)
            check(got <= size * 1.1, f"{name}: read in order, fetched once ({got} xorb bytes for {size})")
            origin.reset()
            check(read_all(os.path.join(snap, name)) == sha(files[name]), f"{name} byte-exact again")
            check(xorb_bytes(origin) == 0, f"{name}: reads after that fetched nothing")
        # open and close at once: the grace period keeps the rest unfetched
        origin.reset()
        with open(os.path.join(snap, "extra.safetensors"), "rb") as f:
            f.read(4096)
        time.sleep(1.5)
        got = xorb_bytes(origin)
        print(f"open+close of extra.safetensors: {got} xorb bytes")
        check(got <= 10 * MiB, "open and close at once fetches no more than the header window")
        check(unmount(proc, mnt) == 0, "unmounted")
        proc = None
    finally:
        rc = run.finish(proc, mnt, origin)
    if rc == 0 and skipped:
        print("skip: " + "; ".join(skipped))
        return 77
    return rc


if __name__ == "__main__":
    sys.exit(main())

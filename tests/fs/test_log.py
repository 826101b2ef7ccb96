#!/usr/bin/env python3
"""test_log.py ZESTFS [ZESTFS_ORIGIN] — the mount's log lines: the default
level shows no debug lines, -v shows each fetch and each read that waits,
-q drops info lines, stderr that is the journal (JOURNAL_STREAM naming it)
gets syslog "<N>" priorities; the Hub token and the HTTP access token
appear in no line, and `--token VALUE` is blanked from /proc/PID/cmdline;
the HF token file is used when 0600, used with a warning when readable by
others, refused when writable by others.
Exit 0 pass, 1 fail, 77 skip."""
import os, re, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import Origin, ingest, make_model, mount, read_all, sha, unmount  # noqa: E402

TOKEN = "hf_SeCrEtToKeN0123456789abcdef"
HTTP_TOKEN = "http-SeCrEt-42-access"


def main():
    run = fsutil.start("zestfs-log-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp = run.zestfs, run.origin_exe, run.check, run.tmp
    src, data, mnt = (os.path.join(tmp, n) for n in ("src", "data", "mnt"))
    os.mkdir(mnt)
    files = make_model(src)
    commit = ingest(origin_exe, data, "org/tiny", src)
    origin = Origin(origin_exe, data, tmp)
    proc = None
    snap = os.path.join(mnt, "models--org--tiny", "snapshots", commit)

    def session(name, extra, env=None, journal=False):
        nonlocal proc
        path = os.path.join(tmp, name + ".log")
        log = open(path, "w+")
        if journal:
            st = os.fstat(log.fileno())
            env = dict(env or os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        args = ["--endpoint", origin.url, "--repo", "org/tiny", "--store", os.path.join(tmp, "store-" + name),
                "--http", "127.0.0.1:0", "--http-token", HTTP_TOKEN, *extra]
        proc = subprocess.Popen([zestfs, "-f", *args, mnt], stdout=log, stderr=subprocess.STDOUT,
                                env=env or os.environ)
        for _ in range(600):
            if os.path.ismount(mnt) or proc.poll() is not None:
                break
            time.sleep(0.05)
        check(os.path.ismount(mnt), f"{name}: mounted")
        cmdline = open(f"/proc/{proc.pid}/cmdline", "rb").read()
        ok = read_all(os.path.join(snap, "model.safetensors")) == sha(files["model.safetensors"])
        check(ok, f"{name}: model.safetensors byte-exact")
        check(unmount(proc, mnt) == 0, f"{name}: unmounted")
        proc = None
        log.close()
        return open(path, errors="replace").read(), cmdline

    try:
        env = dict(os.environ, HF_TOKEN=TOKEN)
        out, _ = session("default", [], env)
        check("zestfs: peers on" in out, "default: info lines shown")
        check("fetched xorb" not in out and "waits for a fetch" not in out, "default: no debug lines")
        out, _ = session("verbose", ["-v"], env)
        check(re.search(r"fetched xorb [0-9a-f]{16} chunks \[\d+, \d+\) from the CDN: \d+ bytes", out),
              "-v: each fetch is logged")
        check("waits for a fetch" in out, "-v: reads that wait are logged")
        check(TOKEN not in out and HTTP_TOKEN not in out, "-v: neither token in any line")
        out, _ = session("quiet", ["-q"], env)
        check("zestfs: peers on" not in out and "fetched xorb" not in out, "-q: no info or debug lines")
        out, cmdline = session("journal", ["--log-level", "debug", "--token", TOKEN], journal=True)
        lines = [ln for ln in out.splitlines() if ln.strip()]
        zl = [ln for ln in lines if "zestfs:" in ln and not ln.startswith("fuse:")]
        check(zl and all(re.match(r"<[3-7]>zestfs: ", ln) for ln in zl),
              f"JOURNAL_STREAM: every log line has a syslog priority ({zl[:2]})")
        check(any(ln.startswith("<7>") for ln in zl) and any(ln.startswith("<6>") for ln in zl),
              "JOURNAL_STREAM: debug lines are <7>, info lines <6>")
        check(TOKEN.encode() not in cmdline and b"--token" in cmdline,
              "--token VALUE is blanked in /proc/PID/cmdline")
        check(TOKEN not in out and HTTP_TOKEN not in out, "journal, --token: neither token in any line")
        # the HF token file: 0600 used quietly, readable by others used with a
        # warning, writable by others refused
        tf = os.path.join(tmp, "token")
        for mode, want in ((0o600, None), (0o644, "is readable by other users"), (0o666, "not used")):
            with open(tf, "w") as f:
                f.write(TOKEN + "\n")
            os.chmod(tf, mode)
            env2 = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
            env2["HF_TOKEN_PATH"] = tf
            p = subprocess.Popen([zestfs, "-f", "--offline", "--store", os.path.join(tmp, "store-tf"), mnt],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env2, text=True)
            for _ in range(600):
                if os.path.ismount(mnt) or p.poll() is not None:
                    break
                time.sleep(0.05)
            subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL)
            out = p.communicate(timeout=60)[0]
            lines = [ln for ln in out.splitlines() if "token file" in ln]
            if want is None:
                check(not lines, f"token file mode {mode:o}: used, no complaint ({lines})")
            else:
                check(any(want in ln and tf in ln for ln in lines), f"token file mode {mode:o}: '{want}' ({lines})")
            check(TOKEN not in out, f"token file mode {mode:o}: the token is not printed")
        r = subprocess.run([zestfs, "--log-level", "loud", mnt], capture_output=True, text=True, timeout=30)
        check(r.returncode == 2 and "--log-level" in r.stderr, "a bad --log-level is refused")
    finally:
        rc = run.finish(proc, mnt, origin)
    return rc


if __name__ == "__main__":
    sys.exit(main())

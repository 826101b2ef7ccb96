"""zestfs — mount the Hugging Face cache lazily from Python.

The wheel bundles the zestfs and zestfs-origin binaries (zestfs/_bin/);
this module runs them:

    import zestfs
    zestfs.mount()                       # ~/.cache/huggingface/hub (or $HF_HUB_CACHE)
    zestfs.mount("/models", endpoint="http://127.0.0.1:8080", repo=["org/a", "org/b@v1"])
    zestfs.pull("org/name", revision="main", include="*.safetensors")
    zestfs.unmount("/models")

Keyword options are zestfs' long options with "_" for "-": True gives a
flag, False/None leaves it out, a list repeats it.  Options also come from
/etc/zestfs/config and ~/.config/zestfs/config (see zestfs(1)).

With ZESTFS=1 in the environment, importing this module mounts the HF cache
(once: nothing happens if a zestfs mount is already there).
"""
import fcntl
import os
import subprocess
import tempfile
import time
import warnings

__version__ = "@VERSION@"
__all__ = ["mount", "unmount", "pull", "status", "mounts", "is_mounted", "binary",
           "hf_cache_dir", "ZestfsError"]

_HERE = os.path.dirname(os.path.abspath(__file__))


class ZestfsError(RuntimeError):
    """A zestfs command failed; .returncode and .stderr tell how."""

    def __init__(self, msg, returncode=None, stderr=""):
        super().__init__(msg + (": " + stderr.strip() if stderr and stderr.strip() else ""))
        self.returncode = returncode
        self.stderr = stderr


def binary(name="zestfs"):
    """Path of a bundled binary (zestfs or zestfs-origin)."""
    p = os.path.join(_HERE, "_bin", name)
    if not os.access(p, os.X_OK):
        raise ZestfsError(f"bundled {name} not found at {p}")
    return p


def hf_cache_dir():
    """The directory huggingface_hub uses as its hub cache."""
    e = os.environ
    if e.get("HF_HUB_CACHE"):
        return os.path.expanduser(e["HF_HUB_CACHE"])
    if e.get("HUGGINGFACE_HUB_CACHE"):
        return os.path.expanduser(e["HUGGINGFACE_HUB_CACHE"])
    if e.get("HF_HOME"):
        return os.path.join(os.path.expanduser(e["HF_HOME"]), "hub")
    xdg = e.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "huggingface", "hub")


def _unescape(s):
    # /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = "", 0
    while i < len(s):
        if s[i] == "\\" and len(s[i + 1:i + 4]) == 3 and s[i + 1:i + 4].isdigit():
            out += chr(int(s[i + 1:i + 4], 8))
            i += 4
        else:
            out += s[i]
            i += 1
    return out


def mounts():
    """Mount points of the zestfs file systems this process can see."""
    found = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fstype = right.split(" ", 1)[0]
                if fstype == "fuse.zestfs":
                    found.append(_unescape(left.split(" ")[4]))
    except OSError:
        pass
    return found


def is_mounted(path):
    """True if a zestfs mount sits at path."""
    return os.path.realpath(path) in [os.path.realpath(m) for m in mounts()]


def _args(opts):
    out = []
    for k, v in opts.items():
        name = "--" + k.replace("_", "-")
        if v is True:
            out.append(name)
        elif v is False or v is None:
            continue
        elif isinstance(v, (list, tuple)):
            out += [f"{name}={x}" for x in v]
        else:
            out.append(f"{name}={v}")
    return out


def _run(args, timeout=None, capture=True):
    with tempfile.TemporaryFile(mode="w+") as err:
        try:
            r = subprocess.run([binary()] + args, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE if capture else None, stderr=err,
                               text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ZestfsError(f"zestfs {args[0] if args else ''}: timed out")
        err.seek(0)
        return r.returncode, r.stdout or "", err.read()


def mount(path=None, wait=60.0, **opts):
    """Mount zestfs at path (default: the HF hub cache) and return the path
    once the mount is there.  Idempotent: an existing zestfs mount at path is
    left as it is.  The daemon runs in the background until unmount()."""
    path = os.path.abspath(os.path.expanduser(path or hf_cache_dir()))
    os.makedirs(path, exist_ok=True)
    lock_path = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".zestfs-lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes mounting at once: one mounts
        if is_mounted(path):
            return path
        # without -f, zestfs returns once the mount is in place; the daemon's
        # stdio goes to /dev/null, so the pipes here close when it returns
        rc, _, err = _run(_args(opts) + [path], timeout=wait)
        if rc != 0:
            raise ZestfsError(f"zestfs mount {path} failed (exit {rc})", rc, err)
        deadline = time.monotonic() + wait
        while not is_mounted(path):
            if time.monotonic() > deadline:
                raise ZestfsError(f"zestfs mount {path}: no mount after {wait} s")
            time.sleep(0.05)
    return path


def unmount(path=None, wait=30.0):
    """Unmount the zestfs mount at path (default: the HF hub cache); the
    daemon exits.  Does nothing if no zestfs mount is there."""
    path = os.path.abspath(os.path.expanduser(path or hf_cache_dir()))
    if not is_mounted(path):
        return
    r = subprocess.run(["fusermount3", "-u", path], capture_output=True, text=True)
    if r.returncode != 0 and os.geteuid() == 0:
        r = subprocess.run(["umount", path], capture_output=True, text=True)
    if r.returncode != 0:
        raise ZestfsError(f"unmount {path} failed", r.returncode, r.stderr)
    deadline = time.monotonic() + wait
    while is_mounted(path) and time.monotonic() < deadline:
        time.sleep(0.05)


def _has_command(cmd):
    rc, out, err = _run(["--help"], timeout=30)
    return f"zestfs {cmd}" in out + err


def pull(repo, revision=None, include=None, quiet=True, **opts):
    """Fetch repo (org/name, datasets/org/name, ...) at revision into the
    store: through a running mount's control socket, else directly.  include:
    a glob or a list of globs.  Raises ZestfsError on failure."""
    if not _has_command("pull"):
        raise ZestfsError("this zestfs has no pull command")
    spec = repo + ("@" + revision if revision else "")
    if isinstance(include, str):
        include = [include]
    args = ["pull"] + _args(dict(opts, include=include, quiet=quiet)) + [spec]
    rc, out, err = _run(args, capture=True)
    if rc != 0:
        raise ZestfsError(f"zestfs pull {spec} failed (exit {rc})", rc, err)
    return out


def status(path=None, as_json=False, **opts):
    """What `zestfs status [MOUNTPOINT]` prints, as text; with as_json=True
    the same as a dict (`zestfs status --json`: repos, store, reads, bytes by
    source, peers, slowest reads)."""
    if not _has_command("status"):
        raise ZestfsError("this zestfs has no status command yet (mounts: %s)" % mounts())
    args = ["status"] + (["--json"] if as_json else []) + _args(opts) + ([path] if path else [])
    rc, out, err = _run(args, timeout=60)
    if rc != 0:
        raise ZestfsError(f"zestfs status failed (exit {rc})", rc, err)
    if as_json:
        import json as _json
        return _json.loads(out)
    return out


def _auto():
    if os.environ.get("ZESTFS", "").lower() not in ("1", "true", "yes", "on"):
        return
    try:
        mount()
    except (ZestfsError, OSError) as e:
        warnings.warn(f"ZESTFS=1: could not mount the HF cache: {e}", RuntimeWarning, stacklevel=2)


_auto()

#!/usr/bin/env python3
"""test_overlay_sec.py ZESTFS [ZESTFS_ORIGIN [NO_OPENAT2]] — the writable overlay never
follows a symlink on the daemon's behalf (issue 19, item 5): with
--allow-other other users write below the mount and the daemon may be root.

The attacker swaps an entry the kernel has already looked up for a symlink
to a root-owned mode-600 file outside the mount (in the directory under the
mount, reached through a descriptor opened before mounting — what a race
through the mount itself could also leave), then asks the kernel to open,
chmod, chown, truncate or touch it, or to create a file in a directory
swapped the same way.  Every one of these reaches the daemon by inode,
whose path now runs through the link: the outside files must keep their
mode, owner, size and content, nothing is created outside, and their bytes
never come back through the mount.  Symlinks that HF clients make in
snapshots (../../blobs/<etag>) keep working: readlink, lstat, listing,
reads through them, unlink.
With NO_OPENAT2 (tests/fs/no_openat2.c) and root, a second round runs the
daemon with openat2 answering ENOSYS: the per-component O_NOFOLLOW walk.
Exit 0 pass, 1 fail, 77 skip."""
import os, stat, subprocess, sys, time

import fsutil
from fsutil import unmount

SECRET = b"TOPSECRET-root-only\n"


def attempt(fn):
    """Run fn; its result, or the OSError it raised."""
    try:
        return fn()
    except OSError as e:
        return e


def main():
    run = fsutil.start("zestfs-ovl-")
    if run is None:
        return 77
    no_openat2 = sys.argv[3] if len(sys.argv) > 3 else None
    rounds = [("openat2", [run.zestfs])]
    if no_openat2 and os.geteuid() == 0:
        rounds.append(("no openat2 (seccomp: ENOSYS)", [no_openat2, run.zestfs]))
    elif no_openat2:
        print("note: the round without openat2 needs root (no_new_privs keeps fusermount3 "
              "from mounting)")
    proc = mnt = None
    for label, cmd in rounds:
        print(f"---- {label}")
        proc, mnt = one_round(run, cmd, label.split()[0])
        if proc is not None:
            break
    return run.finish(proc, mnt, None)


def one_round(run, cmd, tag):
    """Mount with cmd (the zestfs binary, maybe behind a wrapper) and try
    every attack; (None, mnt) once unmounted, else the live process."""
    check, tmp, log = run.check, os.path.join(run.tmp, tag.replace(" ", "-")), run.log
    os.mkdir(tmp)
    mnt, store, out = (os.path.join(tmp, n) for n in ("mnt", "store", "out"))
    os.mkdir(mnt)
    os.mkdir(out)
    os.chmod(out, 0o700)
    files = {}
    for n in ("secret", "h", "k"):
        p = os.path.join(out, n)
        with open(p, "wb") as f:
            f.write(SECRET)
        os.chmod(p, 0o600)
        files[n] = p
    before = {n: os.stat(p) for n, p in files.items()}
    uid = before["secret"].st_uid
    under = os.open(mnt, os.O_PATH | os.O_DIRECTORY)  # the directory under the mount
    proc = None
    other = ["--allow-other"] if os.geteuid() == 0 else []  # non-root: needs user_allow_other
    try:
        proc = subprocess.Popen([*cmd, "-f", "--offline", *other, "--store", store, mnt],
                                stdout=log, stderr=subprocess.STDOUT)
        for _ in range(600):
            if os.path.ismount(mnt) or proc.poll() is not None:
                break
            time.sleep(0.05)
        if not check(os.path.ismount(mnt), f"mounted ({' '.join(other)})"):
            raise RuntimeError("no mount")

        # ---- HF snapshot symlinks keep working
        repo = os.path.join(mnt, "models--org--m")
        os.makedirs(os.path.join(repo, "blobs"))
        os.makedirs(os.path.join(repo, "snapshots", "c0"))
        with open(os.path.join(repo, "blobs", "abc"), "wb") as f:
            f.write(b"blob bytes\n")
        link = os.path.join(repo, "snapshots", "c0", "model.bin")
        os.symlink("../../blobs/abc", link)
        check(os.readlink(link) == "../../blobs/abc", "readlink of a snapshot symlink")
        check(stat.S_ISLNK(os.lstat(link).st_mode), "lstat: it is a symlink")
        check(os.listdir(os.path.dirname(link)) == ["model.bin"], "listed")
        check(open(link, "rb").read() == b"blob bytes\n", "read through it: the blob")
        os.makedirs(os.path.join(repo, "snapshots", "c1", "sub"))
        deep = os.path.join(repo, "snapshots", "c1", "sub", "w.bin")
        os.symlink("../../../blobs/abc", deep)
        check(open(deep, "rb").read() == b"blob bytes\n", "read through a nested snapshot symlink")
        os.unlink(deep)
        check(not os.path.lexists(deep), "unlink of a snapshot symlink")

        def swap_file(name, target):
            """mnt/name is a regular file the kernel has looked up; under the
            mount it becomes a symlink to target."""
            with open(os.path.join(mnt, name), "wb") as f:
                f.write(b"harmless\n")
            os.stat(os.path.join(mnt, name))
            os.unlink(name, dir_fd=under)
            os.symlink(target, name, dir_fd=under)

        def swap_dir(name, target, child=None):
            """mnt/name (a directory; with child, mnt/name/child too) is
            looked up; under the mount it becomes a symlink to target."""
            os.mkdir(os.path.join(mnt, name))
            if child:
                with open(os.path.join(mnt, name, child), "wb") as f:
                    f.write(b"harmless\n")
                os.stat(os.path.join(mnt, name, child))
            os.stat(os.path.join(mnt, name))
            os.rename(name, name + ".old", src_dir_fd=under, dst_dir_fd=under)
            os.symlink(target, name, dir_fd=under)

        # ---- the last component swapped: open, chmod, chown, truncate, utime
        def read_it(p):
            with open(p, "rb") as f:
                return f.read()

        swap_file("f1", files["secret"])
        r = attempt(lambda: read_it(os.path.join(mnt, "f1")))
        check(r != SECRET and not (isinstance(r, bytes) and b"TOPSECRET" in r),
              f"open of a file swapped for a symlink: not the target's bytes ({r!r:.60})")
        for i, (what, fn) in enumerate([
                ("chmod", lambda p: os.chmod(p, 0o666)),
                ("chown", lambda p: os.chown(p, 4242, 4242)),
                ("truncate", lambda p: os.truncate(p, 0)),
                ("utime", lambda p: os.utime(p, (1, 1)))]):
            name = f"g{i}"
            swap_file(name, files["secret"])
            r = attempt(lambda: fn(os.path.join(mnt, name)))
            st = os.stat(files["secret"])
            check(stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == uid and st.st_size == len(SECRET) and
                  st.st_mtime == before["secret"].st_mtime,
                  f"{what} of a file swapped for a symlink: the target is untouched ({r!r:.60}; "
                  f"mode {stat.S_IMODE(st.st_mode):o}, uid {st.st_uid}, size {st.st_size})")

        # ---- a parent directory swapped: open, chmod, chown, truncate of d/h
        for i, (what, fn) in enumerate([
                ("open", lambda p: read_it(p)),
                ("chmod", lambda p: os.chmod(p, 0o666)),
                ("chown", lambda p: os.chown(p, 4242, 4242)),
                ("truncate", lambda p: os.truncate(p, 0))]):
            name = f"d{i}"
            swap_dir(name, out, "h")
            r = attempt(lambda: fn(os.path.join(mnt, name, "h")))
            st = os.stat(files["h"])
            check(stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == uid and st.st_size == len(SECRET) and
                  not (isinstance(r, bytes) and b"TOPSECRET" in r),
                  f"{what} below a directory swapped for a symlink: the outside file is untouched "
                  f"and unread ({r!r:.60})")

        # ---- create, mkdir, symlink, rename into a swapped directory
        swap_dir("e", out)
        for what, fn, made in [
                ("create", lambda: open(os.path.join(mnt, "e", "new"), "wb").close(), "new"),
                ("mkdir", lambda: os.mkdir(os.path.join(mnt, "e", "newdir")), "newdir"),
                ("symlink", lambda: os.symlink("x", os.path.join(mnt, "e", "newlink")), "newlink"),
                ("rename", lambda: os.rename(os.path.join(repo, "blobs", "abc"),
                                             os.path.join(mnt, "e", "moved")), "moved")]:
            r = attempt(fn)
            check(not os.path.lexists(os.path.join(out, made)),
                  f"{what} into a directory swapped for a symlink: nothing made outside ({r!r:.60})")
        st = os.stat(files["k"])
        check(st.st_size == len(SECRET) and stat.S_IMODE(st.st_mode) == 0o600, "outside files intact")
        check(sorted(os.listdir(out)) == ["h", "k", "secret"], f"nothing new outside ({os.listdir(out)})")

        # ---- the mount still works
        p = os.path.join(mnt, "plain.txt")
        with open(p, "wb") as f:
            f.write(b"plain\n")
        os.chmod(p, 0o640)
        check(stat.S_IMODE(os.stat(p).st_mode) == 0o640 and open(p, "rb").read() == b"plain\n",
              "a plain file: written, chmod, read")
        check(open(link, "rb").read() == b"blob bytes\n", "the snapshot symlink still reads")
        check(unmount(proc, mnt) == 0, "unmounted, exit 0")
        proc = None
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    finally:
        os.close(under)
    return proc, mnt


if __name__ == "__main__":
    sys.exit(main())

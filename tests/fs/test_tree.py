#!/usr/bin/env python3
"""test_tree.py ZESTFS — the virtual tree and the writable overlay of a mount.

Mounts zestfs over a directory that already holds real entries, presenting a
repo described by a JSON model (--repo-json), and checks what HF clients rely
on (spec/hf-cache.md §4.1, §4.2): refs content, snapshot symlinks listed by
readdir, blob sizes and stable inodes without any content fetch, trees JSON,
positive .no_exist answers, .locks dirs; real entries stay visible and win;
clients can create lock files (flock + fchmod), temp blobs renamed into
blobs/, symlinks and ref updates; SIGTERM (with files still open) and
fusermount3 -u unmount.  The daemon reaches loopback only (fsutil.mount: a
dead loopback --endpoint, no swarm, no DHT), exits 0 and logs no sanitizer report.
Exit 0 pass, 1 fail, 77 skip (no /dev/fuse)."""
import fcntl, json, os, signal, subprocess, sys, tempfile
import fsutil

def main():
    zestfs = os.path.abspath(sys.argv[1])
    if not os.path.exists("/dev/fuse"):
        print("skip: no /dev/fuse"); return 77
    fails = []
    def check(cond, what):
        if not cond:
            fails.append(what); print("FAIL", what)
    tmp = tempfile.mkdtemp(prefix="zestfs-tree-")
    mnt = os.path.join(tmp, "hub"); os.mkdir(mnt)
    store = os.path.join(tmp, "store")
    # a real repo already in the cache, and a real file at the root
    real_repo = os.path.join(mnt, "models--real--one", "refs"); os.makedirs(real_repo)
    open(os.path.join(real_repo, "main"), "w").write("f" * 40)
    open(os.path.join(mnt, "CACHEDIR.TAG"), "w").write("Signature: 8a477f597d28d172789f06886806bc55\n")
    c1, c2 = "a" * 40, "b" * 40
    sha = "03655bf1" + "0" * 56
    model = {"format": 1, "type": "model", "id": "org/tiny",
             "refs": {"main": c1, "refs/pr/1": c2},
             "commits": {
                 c1: {"date": 1767225600, "files": [
                     {"path": "config.json", "size": 27, "oid": "b6ded5f3" + "1" * 32},
                     {"path": "model.safetensors", "size": 1 << 30, "oid": "c" * 40,
                      "lfs_sha256": sha, "xet_hash": "d" * 64},
                     {"path": "sub/dir/notes.txt", "size": 5, "oid": "ce013625" + "2" * 32}]},
                 c2: {"date": 1767225700, "files": [
                     {"path": "config.json", "size": 27, "oid": "b6ded5f3" + "1" * 32}]}}}
    mj = os.path.join(tmp, "repo.json"); json.dump(model, open(mj, "w"))
    log = open(os.path.join(tmp, "zestfs.log"), "w+")
    margs = ["--endpoint", fsutil.DEAD_ENDPOINT, "--no-p2p", "--store", store, "--repo-json", mj]
    proc = fsutil.mount(zestfs, mnt, margs, log)
    try:
        check(os.path.ismount(mnt), "mounted")
        mounts = open("/proc/mounts").read()
        check(any(l.split()[1] == mnt and l.split()[0] == "zestfs" and l.split()[2] == "fuse.zestfs"
                  for l in mounts.splitlines()), "fsname and type are zestfs")
        root = sorted(os.listdir(mnt))
        check(root == sorted([".locks", "CACHEDIR.TAG", "models--org--tiny", "models--real--one"]),
              f"root listing {root}")
        R = os.path.join(mnt, "models--org--tiny")
        check(open(os.path.join(R, "refs/main")).read() == c1, "refs/main content, no newline")
        check(open(os.path.join(R, "refs/refs/pr/1")).read() == c2, "nested PR ref")
        check(sorted(os.listdir(os.path.join(R, "snapshots"))) == [c1, c2], "snapshots listing")
        snap = os.path.join(R, "snapshots", c1)
        check(sorted(os.listdir(snap)) == ["config.json", "model.safetensors", "sub"], "snapshot listing")
        check(os.readlink(os.path.join(snap, "model.safetensors")) == "../../blobs/" + sha,
              "top-level symlink target")
        check(os.readlink(os.path.join(snap, "sub/dir/notes.txt")) == "../../../../blobs/ce013625" + "2" * 32,
              "nested symlink target")
        st = os.stat(os.path.join(snap, "model.safetensors"))
        check(st.st_size == 1 << 30, f"blob size through symlink {st.st_size}")
        st2 = os.stat(os.path.join(R, "blobs", sha))
        check(st.st_ino == st2.st_ino and st2.st_mtime == 1767225600, "stable inode and mtime")
        check(sorted(os.listdir(os.path.join(R, "blobs"))) ==
              sorted([sha, "b6ded5f3" + "1" * 32, "ce013625" + "2" * 32]), "blobs listing")
        tree = json.load(open(os.path.join(R, "trees", c1 + ".json")))
        check(tree["format_version"] == 1 and tree["files"]["model.safetensors"]["lfs_sha256"] == sha
              and tree["files"]["model.safetensors"]["xet_hash"] == "d" * 64, "trees json")
        ne = os.path.join(R, ".no_exist", c1)
        check(os.path.isfile(os.path.join(ne, "generation_config.json")), ".no_exist positive")
        check(not os.path.exists(os.path.join(ne, "config.json")), ".no_exist negative for present file")
        check(os.path.isdir(os.path.join(mnt, ".locks", "models--org--tiny")), ".locks dir")
        check(open(os.path.join(mnt, "models--real--one/refs/main")).read() == "f" * 40, "real entry visible")
        # client writes, as huggingface_hub does them
        lockdir = os.path.join(mnt, ".locks", "models--org--tiny")
        lf = os.path.join(lockdir, sha + ".lock")
        fd = os.open(lf, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        os.fchmod(fd, 0o664)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        check(os.fstat(fd).st_nlink >= 1, "lock file nlink")
        os.unlink(lf); fcntl.flock(fd, fcntl.LOCK_UN); os.close(fd)
        tmpblob = os.path.join(R, "blobs", "e" * 64 + ".1234abcd.incomplete")
        with open(tmpblob, "wb") as f:
            f.write(b"hello world")
        os.chmod(tmpblob, 0o644)
        os.replace(tmpblob, os.path.join(R, "blobs", "e" * 64))
        newsnap = os.path.join(R, "snapshots", c1, "new.bin")
        os.symlink("../../blobs/" + "e" * 64, newsnap)
        check(open(newsnap, "rb").read() == b"hello world", "client blob through client symlink")
        check(os.path.exists(os.path.join(tmp, "hub")) and
              "new.bin" in os.listdir(os.path.join(R, "snapshots", c1)), "merged listing shows client file")
        reftmp = os.path.join(R, "refs", "main.deadbeef.tmp")
        open(reftmp, "w").write(c2)
        os.replace(reftmp, os.path.join(R, "refs", "main"))
        check(open(os.path.join(R, "refs/main")).read() == c2, "a ref renamed over reads the new value")
        try:
            open(os.path.join(R, "blobs", sha), "r+b"); check(False, "virtual blob writable")
        except OSError as e:
            check(e.errno == 30, f"write open of virtual blob errno {e.errno}")
        # unmount by SIGTERM while files and directories are open: their
        # RELEASEs never come, and the daemon still exits clean (no leak
        # report under the sanitizers)
        held = [os.open(os.path.join(R, "blobs", sha), os.O_RDONLY),
                os.open(os.path.join(R, "refs/refs/pr/1"), os.O_RDONLY),
                os.open(os.path.join(mnt, "CACHEDIR.TAG"), os.O_RDONLY),
                os.open(snap, os.O_RDONLY | os.O_DIRECTORY),
                os.open(R, os.O_RDONLY | os.O_DIRECTORY)]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        check(not os.path.ismount(mnt), "SIGTERM unmounts")
        check(proc.returncode == 0, f"exit status {proc.returncode} with {len(held)} files open")
        for fd in held:
            try:
                os.close(fd)
            except OSError:  # ENOTCONN: its flush found no daemon
                pass
        # the client's writes landed in the real directory
        check(open(os.path.join(mnt, "models--org--tiny/blobs", "e" * 64), "rb").read() == b"hello world",
              "writes persisted on disk")
        check(not os.path.exists(os.path.join(mnt, "models--org--tiny/refs/main")),
              "the ref renamed over went into the model, not the real directory (fs/ops.c)")
        # fusermount3 -u
        proc = fsutil.mount(zestfs, mnt, margs, log)
        check(os.path.ismount(mnt), "mounted again")
        rc = fsutil.unmount(proc, mnt)
        check(rc == 0 and not os.path.ismount(mnt), "fusermount3 -u ends the daemon")
    finally:
        if proc.poll() is None:
            proc.kill(); proc.wait()
        subprocess.run(["fusermount3", "-uz", mnt], stderr=subprocess.DEVNULL)
    for what in fsutil.problems():  # sanitizer reports in the log, exit statuses, sockets
        check(False, what)
    if fails:
        log.seek(0); print("---- zestfs log ----\n" + log.read()[-6000:])
    log.close()
    print(f"{len(fails)} failures")
    return 1 if fails else 0

if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""build_wheel.py ZESTFS ZESTFS_ORIGIN OUTDIR — writes the zestfs wheel
(PEP 427) with Python's zipfile: the package from python/zestfs, the two
binaries under zestfs/_bin/ (mode 0755), console scripts, and
dist-info METADATA, WHEEL, entry_points.txt, top_level.txt and RECORD
(sha256 of every file).  A platform wheel: py3-none-linux_<machine>.
Entries are sorted and dated $SOURCE_DATE_EPOCH (default 1980-01-01), so the
same inputs give the same bytes.  Prints the wheel's path."""
import base64, hashlib, os, platform, re, shutil, subprocess, sys, tempfile, time, zipfile

here = os.path.dirname(os.path.abspath(__file__))


def version():
    text = open(os.path.join(here, "..", "meson.build")).read()
    return re.search(r"version\s*:\s*'([^']+)'", text).group(1)


def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    zestfs, origin, outdir = sys.argv[1:]
    ver = version()
    machine = platform.machine()
    tag = f"py3-none-linux_{machine}"
    dist = f"zestfs-{ver}.dist-info"
    files = []  # (arcname, bytes, mode)
    for name in sorted(os.listdir(os.path.join(here, "zestfs"))):
        if name.endswith(".py"):
            data = open(os.path.join(here, "zestfs", name), "rb").read()
            data = data.replace(b"@VERSION@", ver.encode())
            files.append((f"zestfs/{name}", data, 0o644))
    with tempfile.TemporaryDirectory() as tmp:
        for src, name in ((zestfs, "zestfs"), (origin, "zestfs-origin")):
            dst = os.path.join(tmp, name)
            shutil.copyfile(src, dst)
            if shutil.which("strip"):
                subprocess.run(["strip", "--strip-unneeded", dst], check=True)
            files.append((f"zestfs/_bin/{name}", open(dst, "rb").read(), 0o755))
    readme = open(os.path.join(here, "README.md")).read()
    metadata = (f"Metadata-Version: 2.1\nName: zestfs\nVersion: {ver}\n"
                "Summary: Lazy FUSE mount of the Hugging Face cache with Xet content (bundled binaries)\n"
                "License: Apache-2.0\nRequires-Python: >=3.8\n"
                "Requires-External: fuse3\nRequires-External: libfuse3-3\nRequires-External: libcurl4\n"
                "Requires-External: libuv1\nRequires-External: liblz4-1\nRequires-External: libcjson1\n"
                "Requires-External: libssl3\nRequires-External: libmicrohttpd12\n"
                "Classifier: Operating System :: POSIX :: Linux\n"
                "Classifier: Programming Language :: C\n"
                "Classifier: License :: OSI Approved :: Apache Software License\n"
                "Description-Content-Type: text/markdown\n\n" + readme)
    wheel = (f"Wheel-Version: 1.0\nGenerator: zestfs build_wheel.py\nRoot-Is-Purelib: false\n"
             f"Tag: {tag}\n")
    entry = "[console_scripts]\nzestfs = zestfs._cli:zestfs\nzestfs-origin = zestfs._cli:origin\n"
    files += [(f"{dist}/METADATA", metadata.encode(), 0o644),
              (f"{dist}/WHEEL", wheel.encode(), 0o644),
              (f"{dist}/entry_points.txt", entry.encode(), 0o644),
              (f"{dist}/top_level.txt", b"zestfs\n", 0o644)]
    record = "".join(f"{n},{record_hash(d)},{len(d)}\n" for n, d, _ in files) + f"{dist}/RECORD,,\n"
    files.append((f"{dist}/RECORD", record.encode(), 0o644))
    os.makedirs(outdir, exist_ok=True)
    out = os.path.join(outdir, f"zestfs-{ver}-{tag}.whl")
    epoch = max(int(os.environ.get("SOURCE_DATE_EPOCH", "315532800")), 315532800)
    date = time.gmtime(epoch)[:6]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data, mode in files:  # RECORD last, dist-info after the package
            zi = zipfile.ZipInfo(name, date)
            zi.external_attr = (0o100000 | mode) << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
    print(out)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""zestfs xet hash  vs  hf_xet.hash_files (xet-core's own Python bindings).

Usage: test_hf_xet_hash.py ZESTFS

Builds a few hundred inputs of many sizes and shapes in a temporary
directory (random bytes, text, fp16/bf16/fp32 tensor-like data, zeros and
other constant or low-entropy data, sizes at and around the chunker's
limits, a few MB), adds the files of tests/vectors and real binaries from
/usr/bin and /usr/lib, hashes them all with ONE `zestfs xet hash` call and
ONE `hf_xet.hash_files` call, and compares the file ids (and hf_xet's file
sizes).

Exit 0: all equal; 1: a difference (each one is printed); 77: skip (hf_xet
or numpy not installed: run tests/interop/setup.sh).
Environment: ZESTFS_INTEROP_SEED (default 20260101) changes the inputs.
"""
import os
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version

try:
    import numpy as np
    import hf_xet
except ImportError as e:  # the venv is missing or incomplete
    print(f"SKIP: {e} (run tests/interop/setup.sh)")
    sys.exit(77)

KIB = 1024
MIB = 1024 * 1024
CHUNK_MIN, CHUNK_TARGET, CHUNK_MAX = 8192, 65536, 131072


def make_inputs(rng, d):
    """Yield (name, bytes) for the generated inputs."""
    def rand(n):
        return rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()

    # Sizes at and around every chunker landmark, random content.
    edges = set()
    for base in (0, 1, 2, 63, 64, 65, CHUNK_MIN - 64, CHUNK_MIN, 16384, 32768,
                 CHUNK_TARGET, CHUNK_MAX, 2 * CHUNK_MAX, 1 * MIB):
        for delta in (-2, -1, 0, 1, 2):
            if base + delta >= 0:
                edges.add(base + delta)
    for s in sorted(edges):
        yield f"rand_edge_{s}", rand(s)
    # Multiples of the chunk sizes.
    for unit in (CHUNK_MIN, CHUNK_TARGET, CHUNK_MAX):
        for k in (1, 2, 3, 5, 8, 13):
            yield f"rand_mult_{unit}x{k}", rand(unit * k)
    # Zeros and constants (every chunk cut at MAX, identical chunks).
    for s in (0, 1, 8191, 8192, 8193, 65536, 131071, 131072, 131073, 131072 * 3,
              131072 * 3 + 17, 204800, 1000000, 3 * MIB):
        yield f"zeros_{s}", bytes(s)
    for b, s in ((0x3B, 1000000), (0xFF, 300000), (0x61, 131073), (0x00, 8 * MIB // 3)):
        yield f"const{b:02x}_{s}", bytes([b]) * s
    # Random bytes of log-uniform random size, 1 B .. 4 MiB.
    for i in range(90):
        n = int(np.exp(rng.uniform(0, np.log(4 * MIB))))
        yield f"rand_{i}_{n}", rand(n)
    # Text: the vector generator's lines, and random words.
    words = [w.encode() for w in (
        "the of and to in is for that with tensor model weight layer attention "
        "embedding token config json safetensors float bias norm head hidden "
        "vocab gradient optimizer learning rate batch epoch loss").split()]
    for i in range(45):
        n = int(np.exp(rng.uniform(np.log(10), np.log(2 * MIB))))
        if i % 3 == 0:
            out, j = [], 0
            total = 0
            while total < n:
                line = b"line %d: the quick brown fox jumps over the lazy dog %d\n" % (j, j * 7 % 1000)
                out.append(line)
                total += len(line)
                j += 1
            yield f"text_lines_{i}_{n}", b"".join(out)[:n]
        else:
            idx = rng.integers(0, len(words), size=n // 4 + 1)
            seps = rng.choice([b" ", b" ", b" ", b"\n", b", "], size=len(idx))
            yield f"text_words_{i}_{n}", b"".join(w + s for w, s in zip((words[k] for k in idx), seps))[:n]
    # Tensor-like data: normal * 0.02 as fp16, bf16 (truncated fp32), fp32.
    for i in range(35):
        n = int(np.exp(rng.uniform(np.log(16), np.log(3 * MIB)))) // 2
        x = rng.standard_normal(n).astype(np.float32) * np.float32(0.02)
        yield f"fp16_{i}_{2 * n}", x.astype(np.float16).tobytes()
        bf = (x.view(np.uint32) >> 16).astype(np.uint16)
        yield f"bf16_{i}_{2 * n}", bf.tobytes()
        if i % 3 == 0:
            yield f"fp32_{i}_{4 * n}", x.tobytes()
    # A safetensors-shaped file: JSON header then fp16 data.
    for i in range(5):
        n = int(rng.integers(1000, 600000))
        hdr = b'{"w":{"dtype":"F16","shape":[%d],"data_offsets":[0,%d]}}' % (n, 2 * n)
        hdr += b" " * (-len(hdr) % 8)
        data = (rng.standard_normal(n) * 0.02).astype(np.float16).tobytes()
        yield f"safetensors_like_{i}", len(hdr).to_bytes(8, "little") + hdr + data
    # Low-entropy / repetitive data.
    for i in range(20):
        n = int(rng.integers(1, 2 * MIB))
        alphabet = int(rng.integers(2, 5))
        yield f"lowent_{i}_{n}", rng.integers(0, alphabet, size=n, dtype=np.uint8).tobytes()
    for i in range(10):
        period = int(rng.integers(1, 70000))
        block = rand(period)
        n = int(rng.integers(period, 3 * MIB))
        yield f"periodic_{i}_{period}_{n}", (block * (n // period + 1))[:n]
    # Sparse: zeros with random islands (like partly-filled tensors).
    for i in range(10):
        n = int(rng.integers(CHUNK_MAX, 2 * MIB))
        a = np.zeros(n, dtype=np.uint8)
        for _ in range(int(rng.integers(1, 20))):
            at = int(rng.integers(0, n))
            ln = int(rng.integers(1, 20000))
            a[at:at + ln] = rng.integers(0, 256, size=len(a[at:at + ln]), dtype=np.uint8)
        yield f"sparse_{i}_{n}", a.tobytes()
    # A few MB.
    for i, n in enumerate((3 * MIB, 5 * MIB + 12345, 8 * MIB)):
        yield f"rand_big_{i}_{n}", rand(n)
    yield "fp16_big", (rng.standard_normal(3 * MIB) * 0.02).astype(np.float16).tobytes()


def real_binaries(rng, count=60, max_size=12 * MIB):
    """Regular files from /usr/bin and /usr/lib (not symlinks), chosen at random."""
    found = []
    for top in ("/usr/bin", "/usr/lib"):
        for root, dirs, files in os.walk(top):
            dirs.sort()
            for f in sorted(files):
                p = os.path.join(root, f)
                try:
                    if os.path.islink(p) or not os.path.isfile(p):
                        continue
                    st = os.stat(p)
                except OSError:
                    continue
                if st.st_size <= max_size and os.access(p, os.R_OK) and "  " not in p \
                        and "\n" not in p:
                    found.append(p)
            if len(found) > 20000:
                break
    if not found:
        return []
    # Prefer a spread of sizes: half the largest few, half uniform.
    found.sort(key=lambda p: os.path.getsize(p))
    big = found[-200:]
    pick = set(rng.choice(len(found), size=min(count // 2, len(found)), replace=False).tolist())
    out = [found[i] for i in sorted(pick)]
    out += [big[i] for i in sorted(set(rng.choice(len(big), size=min(count // 2, len(big)),
                                                   replace=False).tolist()))]
    return list(dict.fromkeys(out))


def zestfs_hash(zestfs, paths):
    r = subprocess.run([zestfs, "xet", "hash", *paths], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL: zestfs xet hash exited {r.returncode}: {r.stderr.strip()}")
        sys.exit(1)
    out = {}
    for line in r.stdout.splitlines():
        h, sep, p = line.partition("  ")
        if not sep and len(paths) == 1:
            h, p = line.strip(), paths[0]
        out[p] = h
    return out


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    zestfs = os.path.abspath(sys.argv[1])
    seed = int(os.environ.get("ZESTFS_INTEROP_SEED", "20260101"))
    rng = np.random.default_rng(seed)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="zestfs-hfxet-") as d:
        paths, kinds = [], {}
        for i, (name, data) in enumerate(make_inputs(rng, d)):
            p = os.path.join(d, f"{i:03d}_{name}")
            with open(p, "wb") as f:
                f.write(data)
            paths.append(p)
            kinds[p] = name
        ngen = len(paths)
        vec = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vectors")
        vecs = sorted(os.path.join(vec, f) for f in os.listdir(vec)) if os.path.isdir(vec) else []
        vecs = [os.path.normpath(p) for p in vecs if os.path.isfile(p)]
        bins = vecs + real_binaries(rng)
        paths += bins
        total = sum(os.path.getsize(p) for p in paths)
        t1 = time.monotonic()

        ours = zestfs_hash(zestfs, paths)
        t2 = time.monotonic()
        infos = hf_xet.hash_files(paths)
        t3 = time.monotonic()

        if len(infos) != len(paths):
            print(f"FAIL: hf_xet.hash_files returned {len(infos)} results for {len(paths)} files")
            return 1
        bad = []
        for p, info in zip(paths, infos):
            size = os.path.getsize(p)
            theirs = info.hash
            mine = ours.get(p)
            if mine != theirs or info.file_size != size:
                bad.append((p, size, mine, theirs, info.file_size))
        print(f"seed {seed}: {len(paths)} inputs ({ngen} generated, {len(vecs)} from tests/vectors, {len(bins) - len(vecs)} real binaries), "
              f"{total / MIB:.1f} MiB; generate {t1 - t0:.1f}s, zestfs {t2 - t1:.2f}s, "
              f"hf_xet {t3 - t2:.2f}s (hf_xet {version('hf_xet')})")
        if bad:
            print(f"FAIL: {len(bad)} of {len(paths)} file ids differ:")
            for p, size, mine, theirs, hsize in bad[:30]:
                print(f"  {kinds.get(p, p)} ({size} bytes): zestfs {mine}  hf_xet {theirs}"
                      + (f" (hf_xet size {hsize})" if hsize != size else ""))
            # Show where the first difference starts, to help debugging.
            p = bad[0][0]
            r = subprocess.run([zestfs, "xet", "chunks", p], capture_output=True, text=True)
            print(f"  zestfs xet chunks {kinds.get(p, p)} (first lines):")
            for line in r.stdout.splitlines()[:8]:
                print("    " + line)
            return 1
        print(f"PASS: all {len(paths)} file ids equal")
        return 0


if __name__ == "__main__":
    sys.exit(main())

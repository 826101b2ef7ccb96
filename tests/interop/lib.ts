// Helpers shared by the @huggingface/hub interop tests (run with tsx).
//
// Deterministic inputs, a zestfs runner, a minimal xorb record walker and a
// minimal shard reader written from ../../../shared/spec/xet.md §3/§4 (kept
// here, not taken from zestfs, so the tests do not trust the code they test).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";

export const PASS = 0;
export const FAIL = 1;
export const SKIP = 77;

// ---- running zestfs ---------------------------------------------------------

export function zestfs(bin: string, args: string[]): string {
	try {
		return execFileSync(bin, args, { encoding: "utf8", maxBuffer: 256 << 20, stdio: ["ignore", "pipe", "pipe"] });
	} catch (e) {
		const err = e as { status?: number; stderr?: string; stdout?: string };
		throw new Error(
			`zestfs ${args.join(" ")} exited ${err.status}: ${(err.stderr ?? "").trim()} ${(err.stdout ?? "").trim()}`,
		);
	}
}

export interface ChunkLine {
	index: number;
	offset: number;
	length: number;
	scheme?: number;
	hash: string;
}

/** Parse `chunk ...` lines and `key value` lines (xorb_hash, file_hash, ...). */
export function parseChunkListing(out: string, withScheme: boolean): { chunks: ChunkLine[]; keys: Record<string, string> } {
	const chunks: ChunkLine[] = [];
	const keys: Record<string, string> = {};
	for (const line of out.split("\n")) {
		const f = line.trim().split(/\s+/);
		if (f[0] === "chunk") {
			if (withScheme && f.length === 6) {
				chunks.push({ index: +f[1], offset: +f[2], length: +f[3], scheme: +f[4], hash: f[5] });
			} else if (!withScheme && f.length === 5) {
				chunks.push({ index: +f[1], offset: +f[2], length: +f[3], hash: f[4] });
			} else {
				throw new Error(`unexpected line: ${line}`);
			}
		} else if (f.length === 2) {
			keys[f[0]] = f[1];
		}
	}
	return { chunks, keys };
}

// ---- deterministic inputs ------------------------------------------------------

/** splitmix64 bytes, exactly the vectors' generator (xet-vectors/README.md). */
export function splitmix64Bytes(seed: bigint, n: number): Uint8Array {
	const out = new Uint8Array(n + 8);
	const view = new DataView(out.buffer);
	const M = (1n << 64n) - 1n;
	let state = seed & M;
	for (let i = 0; i < n; i += 8) {
		state = (state + 0x9e3779b97f4a7c15n) & M;
		let z = state;
		z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
		z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
		z ^= z >> 31n;
		view.setBigUint64(i, z, true);
	}
	return out.subarray(0, n);
}

/** Small fast seeded PRNG (mulberry32) for bulk data. */
export class Prng {
	private s: number;
	constructor(seed: number) {
		this.s = seed >>> 0;
	}
	u32(): number {
		let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return (t ^ (t >>> 14)) >>> 0;
	}
	float(): number {
		return this.u32() / 4294967296;
	}
	int(lo: number, hi: number): number {
		return lo + Math.floor(this.float() * (hi - lo));
	}
	bytes(n: number): Uint8Array {
		const out = new Uint8Array(Math.ceil(n / 4) * 4);
		const v = new Uint32Array(out.buffer);
		for (let i = 0; i < v.length; i++) v[i] = this.u32();
		return out.subarray(0, n);
	}
	normal(): number {
		const u = 1 - this.float();
		return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.float());
	}
}

export function textBytes(n: number): Uint8Array {
	const parts: string[] = [];
	let len = 0;
	for (let i = 0; len < n; i++) {
		const line = `line ${i}: the quick brown fox jumps over the lazy dog ${(i * 7) % 1000}\n`;
		parts.push(line);
		len += line.length;
	}
	return new TextEncoder().encode(parts.join("")).subarray(0, n);
}

export function float32Bytes(n: number): Uint8Array {
	const f = new Float32Array(Math.ceil(n / 4));
	for (let i = 0; i < f.length; i++) f[i] = i / 1024;
	return new Uint8Array(f.buffer).subarray(0, n);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function f16Bits(x: number): number {
	f32[0] = x;
	const b = u32[0];
	const sign = (b >>> 16) & 0x8000;
	const exp = ((b >>> 23) & 0xff) - 127 + 15;
	const mant = b & 0x7fffff;
	if (exp <= 0) {
		if (exp < -10) return sign;
		const m = (mant | 0x800000) >>> (1 - exp);
		return sign | ((m + 0x1000) >>> 13);
	}
	if (exp >= 31) return sign | 0x7c00;
	return sign | ((exp << 10) + ((mant + 0x1000) >>> 13));
}

/** Tensor-like data: normal * 0.02 as fp16 or bf16, little-endian. */
export function tensorBytes(rng: Prng, n: number, dtype: "fp16" | "bf16"): Uint8Array {
	const v = new Uint16Array(Math.ceil(n / 2));
	for (let i = 0; i < v.length; i++) {
		const x = rng.normal() * 0.02;
		if (dtype === "fp16") {
			v[i] = f16Bits(x);
		} else {
			f32[0] = x;
			v[i] = u32[0] >>> 16;
		}
	}
	return new Uint8Array(v.buffer).subarray(0, n);
}

export function concat(parts: Uint8Array[]): Uint8Array {
	const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
	let o = 0;
	for (const p of parts) {
		out.set(p, o);
		o += p.length;
	}
	return out;
}

export function sha256Hex(data: Uint8Array): string {
	return createHash("sha256").update(data).digest("hex");
}

/** First index where a and b differ, or -1 when equal. */
export function firstDiff(a: Uint8Array, b: Uint8Array): number {
	const n = Math.min(a.length, b.length);
	for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
	return a.length === b.length ? -1 : n;
}

/** The inputs both directions are exercised on. */
export function makeInputs(seed: number): Array<{ name: string; data: Uint8Array }> {
	const rng = new Prng(seed);
	return [
		{ name: "empty", data: new Uint8Array(0) },
		{ name: "one_byte", data: new Uint8Array([0x61]) },
		{ name: "small_100", data: rng.bytes(100) },
		{ name: "rand_8191", data: rng.bytes(8191) },
		{ name: "rand_200k", data: rng.bytes(200_000) },
		{ name: "text_300k", data: textBytes(300_000) },
		{ name: "float32_500k", data: float32Bytes(500_000) },
		{ name: "zeros_300k", data: new Uint8Array(300_000) },
		{ name: "fp16_1m", data: tensorBytes(rng, (1 << 20) + 6, "fp16") },
		{ name: "bf16_2m", data: tensorBytes(rng, 2_000_002, "bf16") },
		// splitmix64 seed 0, 3 MiB: the vectors' rand_3m, where the JS chunker cuts differently
		// from xet-core (spec/xet.md §1.6).
		{ name: "rand_3m_seed0", data: splitmix64Bytes(0n, 3 * 1024 * 1024) },
		{
			name: "mixed_1m",
			data: concat([rng.bytes(300_001), textBytes(400_000), new Uint8Array(150_000), tensorBytes(rng, 200_000, "fp16")]),
		},
	];
}

// ---- xorb records (spec/xet.md §3.1) --------------------------------------------

export interface Record_ {
	offset: number; // of the 8-byte header
	end: number; // one past the payload
	scheme: number;
	clen: number;
	ulen: number;
}

/** Walk `n` chunk records from the start of a serialized xorb. */
export function walkRecords(xorb: Uint8Array, n: number): Record_[] {
	const recs: Record_[] = [];
	let o = 0;
	for (let i = 0; i < n; i++) {
		if (o + 8 > xorb.length) throw new Error(`xorb ends inside the header of record ${i}`);
		if (xorb[o] !== 0) throw new Error(`record ${i}: version ${xorb[o]}`);
		const clen = xorb[o + 1] | (xorb[o + 2] << 8) | (xorb[o + 3] << 16);
		const ulen = xorb[o + 5] | (xorb[o + 6] << 8) | (xorb[o + 7] << 16);
		const end = o + 8 + clen;
		if (end > xorb.length) throw new Error(`record ${i} runs past the xorb's end`);
		recs.push({ offset: o, end, scheme: xorb[o + 4], clen, ulen });
		o = end;
	}
	return recs;
}

// ---- shards (spec/xet.md §4) --------------------------------------------------

/** Xet hash string of 32 raw bytes: each 8-byte group as a LE u64, 16 hex digits. */
export function hashString(b: Uint8Array): string {
	let s = "";
	for (let g = 0; g < 4; g++) {
		for (let i = 7; i >= 0; i--) s += b[g * 8 + i].toString(16).padStart(2, "0");
	}
	return s;
}

export interface ShardTerm {
	xorb: string;
	unpacked: number;
	start: number;
	end: number;
}
export interface ShardFile {
	hash: string;
	flags: number;
	terms: ShardTerm[];
}
export interface ShardXorb {
	hash: string;
	unpacked: number;
	onDisk: number;
	chunks: Array<{ hash: string; offset: number; length: number }>;
}

/** Read the file-info and xorb-info sections of a shard (header 48 bytes). */
export function parseShard(buf: Uint8Array): { files: ShardFile[]; xorbs: ShardXorb[] } {
	const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
	const isBookend = (o: number) => buf.subarray(o, o + 32).every((x) => x === 0xff);
	let o = 48;
	const files: ShardFile[] = [];
	while (!isBookend(o)) {
		const hash = hashString(buf.subarray(o, o + 32));
		const flags = v.getUint32(o + 32, true);
		const n = v.getUint32(o + 36, true);
		o += 48;
		const terms: ShardTerm[] = [];
		for (let i = 0; i < n; i++, o += 48) {
			terms.push({
				xorb: hashString(buf.subarray(o, o + 32)),
				unpacked: v.getUint32(o + 36, true),
				start: v.getUint32(o + 40, true),
				end: v.getUint32(o + 44, true),
			});
		}
		if (flags & 0x80000000) o += 48 * n; // verification entries
		if (flags & 0x40000000) o += 48; // metadata extension (SHA-256)
		files.push({ hash, flags, terms });
	}
	o += 48;
	const xorbs: ShardXorb[] = [];
	while (!isBookend(o)) {
		const hash = hashString(buf.subarray(o, o + 32));
		const n = v.getUint32(o + 36, true);
		const unpacked = v.getUint32(o + 40, true);
		const onDisk = v.getUint32(o + 44, true);
		o += 48;
		const chunks = [];
		for (let i = 0; i < n; i++, o += 48) {
			chunks.push({
				hash: hashString(buf.subarray(o, o + 32)),
				offset: v.getUint32(o + 32, true),
				length: v.getUint32(o + 36, true),
			});
		}
		xorbs.push({ hash, unpacked, onDisk, chunks });
	}
	return { files, xorbs };
}

// ---- reporting ----------------------------------------------------------------

export class Report {
	failures: string[] = [];
	checks = 0;
	check(ok: boolean, what: string): boolean {
		this.checks++;
		if (!ok) {
			this.failures.push(what);
			console.log(`FAIL: ${what}`);
		}
		return ok;
	}
	finish(summary: string): never {
		if (this.failures.length) {
			console.log(`FAIL: ${this.failures.length} of ${this.checks} checks failed (${summary})`);
			process.exit(FAIL);
		}
		console.log(`PASS: ${this.checks} checks (${summary})`);
		process.exit(PASS);
	}
}

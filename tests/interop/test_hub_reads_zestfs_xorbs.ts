// Xorbs written by zestfs decode byte-exact in @huggingface/hub's reader.
//
// Usage: tsx test_hub_reads_zestfs_xorbs.ts ZESTFS
//
// For each input and each --scheme (none, lz4, bg4, auto), `zestfs xet
// xorb-encode` writes the whole file as one xorb.  The hub's own downloader
// (XetBlob, from the package's shipped TypeScript sources) then reads the file
// through a fake fetch that plays Hub token endpoint + CAS + CDN:
//   GET  hub.test/xet-read-token         -> { accessToken, casUrl, exp }
//   GET  cas.test/v2/reconstructions/ID  -> v2 JSON built here from the chunk
//        list (`zestfs xet chunks`) and the records of the xorb, for the
//        Range the client sent: one term over the chunks the range needs
//   GET  cdn.test/xorbs/HASH?X-Xet-Signed-Range=bytes=A-B -> those bytes
//        (206), or 403 when the Range header is not the signed one.
// The whole file is read serially and with parallel downloads, then a few
// slices; every result must equal the input byte for byte.
//
// Exit 0 pass, 1 fail (what differed is printed), 77 skip.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { firstDiff, makeInputs, parseChunkListing, Prng, Report, walkRecords, zestfs } from "./lib.ts";

let XetBlob: typeof import("./node_modules/@huggingface/hub/src/utils/XetBlob.ts").XetBlob;
try {
	({ XetBlob } = await import("./node_modules/@huggingface/hub/src/utils/XetBlob.ts"));
} catch (e) {
	console.log(`SKIP: @huggingface/hub sources not found (run tests/interop/setup.sh): ${e}`);
	process.exit(77);
}

if (process.argv.length !== 3) {
	console.log("usage: tsx test_hub_reads_zestfs_xorbs.ts ZESTFS");
	process.exit(2);
}
const bin = resolve(process.argv[2]);
const seed = Number(process.env.ZESTFS_INTEROP_SEED ?? "20260101");

interface Stored {
	xorbHash: string;
	xorb: Uint8Array;
	chunkOff: number[]; // uncompressed offset of each chunk, plus the file size at the end
	recOff: number[]; // byte offset of each record in the xorb, plus the end of the last one
}
const files = new Map<string, Stored>(); // file id -> what the fake CAS serves
const stats = { tokens: 0, reconstructions: 0, xorbGets: 0, rejected: 0 };

/** v2 reconstruction for file bytes [s, e] (inclusive), spec/xet.md §5.3. */
function reconstruction(st: Stored, s: number, e: number) {
	const n = st.chunkOff.length - 1;
	let i = 0;
	while (i + 1 < n && st.chunkOff[i + 1] <= s) i++;
	let j = i;
	while (j + 1 < n && st.chunkOff[j + 1] <= e) j++;
	const bytes = { start: st.recOff[i], end: st.recOff[j + 1] - 1 };
	const url = `https://cdn.test/xorbs/${st.xorbHash}?X-Xet-Signed-Range=${encodeURIComponent(
		`bytes=${bytes.start}-${bytes.end}`,
	)}`;
	return {
		offset_into_first_range: s - st.chunkOff[i],
		terms: [
			{
				hash: st.xorbHash,
				unpacked_length: st.chunkOff[j + 1] - st.chunkOff[i],
				range: { start: i, end: j + 1 },
			},
		],
		xorbs: { [st.xorbHash]: [{ url, ranges: [{ chunks: { start: i, end: j + 1 }, bytes }] }] },
	};
}

const fakeFetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
	const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
	const headers = new Headers(init?.headers);
	const range = headers.get("range");
	if (url.host === "hub.test" && url.pathname === "/xet-read-token") {
		stats.tokens++;
		return Response.json({ accessToken: "xet_read", casUrl: "https://cas.test", exp: Math.floor(Date.now() / 1000) + 3600 });
	}
	if (url.host === "cas.test" && url.pathname.startsWith("/v2/reconstructions/")) {
		stats.reconstructions++;
		if (headers.get("authorization") !== "Bearer xet_read") return new Response("no token", { status: 401 });
		const st = files.get(url.pathname.split("/").pop()!);
		if (!st) return new Response("not found", { status: 404 });
		const size = st.chunkOff[st.chunkOff.length - 1];
		let s = 0;
		let e = size - 1;
		if (range) {
			const m = /^bytes=(\d+)-(\d+)$/.exec(range);
			if (!m) return new Response(`bad range ${range}`, { status: 400 });
			s = +m[1];
			e = Math.min(+m[2], size - 1);
			if (s > e) return new Response("unsatisfiable", { status: 416 });
		}
		return Response.json(reconstruction(st, s, e));
	}
	if (url.host === "cdn.test" && url.pathname.startsWith("/xorbs/")) {
		stats.xorbGets++;
		const signed = url.searchParams.get("X-Xet-Signed-Range");
		if (!range || range !== signed) {
			stats.rejected++;
			return new Response(`Range ${range} is not the signed ${signed}`, { status: 403 });
		}
		const hash = url.pathname.split("/").pop()!;
		const st = [...files.values()].find((f) => f.xorbHash === hash);
		if (!st) return new Response("no such xorb", { status: 404 });
		const m = /^bytes=(\d+)-(\d+)$/.exec(range)!;
		const a = +m[1];
		const b = Math.min(+m[2], st.xorb.length - 1);
		const body = st.xorb.slice(a, b + 1);
		return new Response(body, {
			status: 206,
			headers: {
				"content-length": String(body.length),
				"content-range": `bytes ${a}-${b}/${st.xorb.length}`,
				"content-type": "application/octet-stream",
			},
		});
	}
	return new Response(`unexpected request ${url.href}`, { status: 500 });
};

function blobFor(id: string, size: number, parallel: boolean) {
	return new XetBlob({
		fetch: fakeFetch as typeof fetch,
		hash: id,
		size,
		refreshUrl: "https://hub.test/xet-read-token",
		accessToken: "hf_interop",
		parallelDownloads: parallel,
	});
}

const report = new Report();
const dir = mkdtempSync(join(tmpdir(), "zestfs-hubread-"));
const t0 = Date.now();
let nXorbs = 0;
let nReads = 0;
let nBytes = 0;
const schemesSeen = new Set<number>();
try {
	const rng = new Prng(seed ^ 0x5eed);
	for (const { name, data } of makeInputs(seed)) {
		const inPath = join(dir, name);
		writeFileSync(inPath, data);
		const listing = parseChunkListing(zestfs(bin, ["xet", "chunks", inPath]), false);
		const id = listing.keys.file_hash;
		for (const scheme of ["none", "lz4", "bg4", "auto"]) {
			const what = `${name} (${data.length} bytes) --scheme ${scheme}`;
			const xorbPath = join(dir, `${name}.${scheme}.xorb`);
			const enc = parseChunkListing(zestfs(bin, ["xet", "xorb-encode", "--scheme", scheme, inPath, xorbPath]), false);
			nXorbs++;
			const xorb = new Uint8Array(readFileSync(xorbPath));
			report.check(enc.keys.file_hash === id, `${what}: xorb-encode file_hash ${enc.keys.file_hash} != chunks' ${id}`);
			report.check(
				enc.keys.xorb_hash === listing.keys.xorb_hash,
				`${what}: xorb-encode xorb_hash ${enc.keys.xorb_hash} != chunks' ${listing.keys.xorb_hash}`,
			);
			let recs;
			try {
				recs = walkRecords(xorb, listing.chunks.length);
			} catch (e) {
				report.check(false, `${what}: ${e}`);
				continue;
			}
			recs.forEach((r) => schemesSeen.add(r.scheme));
			const wantScheme = { none: 0, lz4: 1, bg4: 2 }[scheme as "none" | "lz4" | "bg4"];
			if (wantScheme !== undefined) {
				report.check(
					recs.every((r) => r.scheme === wantScheme),
					`${what}: record schemes ${recs.map((r) => r.scheme).join(",")}`,
				);
			}
			if (listing.chunks.length === 0) {
				report.check(xorb.length === 0, `${what}: empty file gave a ${xorb.length}-byte xorb`);
				continue;
			}
			const st: Stored = {
				xorbHash: enc.keys.xorb_hash,
				xorb,
				chunkOff: [...listing.chunks.map((c) => c.offset), data.length],
				recOff: [...recs.map((r) => r.offset), recs[recs.length - 1].end],
			};
			files.set(id, st);

			// Whole file: one term covering every chunk of the xorb.
			for (const parallel of [false, true]) {
				const got = new Uint8Array(await blobFor(id, data.length, parallel).arrayBuffer());
				nReads++;
				nBytes += got.length;
				const d = firstDiff(got, data);
				report.check(
					d < 0,
					`${what}: XetBlob (parallel ${parallel}) read ${got.length} bytes, first difference at byte ${d}`,
				);
			}
			// Slices: a single byte, chunk-straddling ranges, the tail.
			const slices: Array<[number, number]> = [
				[0, 1],
				[data.length - 1, data.length],
				[Math.max(0, data.length - 10), data.length],
			];
			for (let k = 0; k < 3; k++) {
				const a = rng.int(0, data.length);
				slices.push([a, Math.min(data.length, a + rng.int(1, 300_000))]);
			}
			for (const [a, b] of slices) {
				const got = new Uint8Array(await blobFor(id, data.length, false).slice(a, b).arrayBuffer());
				nReads++;
				nBytes += got.length;
				const d = firstDiff(got, data.subarray(a, b));
				report.check(d < 0, `${what}: XetBlob slice [${a}, ${b}) got ${got.length} bytes, first difference at ${d}`);
			}
			files.delete(id);
		}
	}
	report.check(stats.xorbGets > 0 && stats.rejected === 0, `CDN requests ${stats.xorbGets}, rejected ${stats.rejected}`);
	report.check(schemesSeen.has(0) && schemesSeen.has(1) && schemesSeen.has(2), `schemes exercised: ${[...schemesSeen]}`);
} catch (e) {
	report.check(false, `unexpected error: ${(e as Error).stack ?? e}`);
} finally {
	rmSync(dir, { recursive: true, force: true });
}
report.finish(
	`${nXorbs} zestfs xorbs, ${nReads} XetBlob reads, ${(nBytes / 1048576).toFixed(1)} MiB compared, ` +
		`${stats.reconstructions} reconstructions, ${stats.xorbGets} CDN GETs, ${((Date.now() - t0) / 1000).toFixed(1)}s`,
);

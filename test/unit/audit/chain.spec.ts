import { canonicalJson, ChainVerifier, GENESIS, hashOf, link } from "../../../services/audit/chain";

const KEY = "unit-key";

function chain(n: number, from = 1, prev = GENESIS) {
	const out = [];
	for (let seq = from; seq < from + n; seq++) {
		const record = link(
			KEY,
			{ id: `r${seq}`, action: "x", nested: { b: 1, a: [seq] } },
			seq,
			prev
		);
		out.push(record);
		prev = record.hash;
	}
	return out;
}

function verify(records: object[], anchor: { seq: number; prev: string } | null = null, key = KEY) {
	const v = new ChainVerifier(key, anchor);
	for (const r of records) {
		const broken = v.feed({ seq: (r as { seq: number }).seq, entry: r });
		if (broken) return broken;
	}
	return { ok: true, count: v.count };
}

describe("audit chain", () => {
	it("writes JSON with sorted keys at every level, without undefined fields", () => {
		expect(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: null }, u: undefined })).toBe(
			'{"a":{"c":null,"d":[2,{"y":2,"z":1}]},"b":1}'
		);
		expect(canonicalJson("x")).toBe('"x"');
	});

	it("hashes with the key, over everything but the hash itself, whatever the key order", () => {
		const a = hashOf(KEY, { x: 1, y: 2 });
		expect(a).toMatch(/^[0-9a-f]{64}$/);
		expect(hashOf(KEY, { y: 2, x: 1, hash: "ignored" })).toBe(a);
		expect(hashOf("other-key", { x: 1, y: 2 })).not.toBe(a);
	});

	it("links each record to the one before, starting from GENESIS", () => {
		const records = chain(3);
		expect(records[0].prev).toBe(GENESIS);
		expect(records[1].prev).toBe(records[0].hash);
		expect(records[2].seq).toBe(3);
		expect(verify(records)).toEqual({ ok: true, count: 3 });
	});

	it("finds an edited field, an edited hash, a removed record, a reordering and a wrong key", () => {
		const records = chain(5);
		const edited = records.map(r => ({ ...r }));
		edited[2] = { ...edited[2], action: "y" };
		expect(verify(edited)).toEqual({
			seq: 3,
			id: "r3",
			reason: expect.stringMatching(/^hash does not match/)
		});
		const rehashed = records.map(r => ({ ...r }));
		rehashed[2] = { ...rehashed[2], action: "y" };
		rehashed[2].hash = hashOf("forger-key", rehashed[2]);
		expect(verify(rehashed)).toMatchObject({ seq: 3, reason: expect.stringMatching(/^hash/) });
		expect(verify([...records.slice(0, 2), ...records.slice(3)])).toMatchObject({
			seq: 4,
			reason: "seq 3 is missing (the next stored record is seq 4)"
		});
		const swapped = [records[0], { ...records[2], seq: 2 }, { ...records[1], seq: 3 }];
		expect(verify(swapped)).toMatchObject({ seq: 2, reason: expect.stringMatching(/^prev/) });
		expect(verify(records, null, "wrong")).toMatchObject({
			seq: 1,
			reason: expect.stringMatching(/^hash/)
		});
	});

	it("starts at the anchor after a trim, skipping what is still being trimmed", () => {
		const records = chain(6);
		const anchor = { seq: 4, prev: records[2].hash };
		expect(verify(records.slice(3), anchor)).toEqual({ ok: true, count: 3 });
		// A trim in progress: records below the anchor are still there.
		expect(verify(records, anchor)).toEqual({ ok: true, count: 3 });
		expect(verify(records.slice(4), anchor)).toMatchObject({
			seq: 5,
			reason: "the chain should start at seq 4, the log starts at 5"
		});
		expect(verify(records.slice(3), { seq: 4, prev: GENESIS })).toMatchObject({
			seq: 4,
			reason: "prev does not match the anchor left by the last trim"
		});
	});

	it("reports a record stored at another seq than it says", () => {
		const records = chain(2);
		const v = new ChainVerifier(KEY);
		expect(v.feed({ seq: 1, entry: records[0] })).toBeNull();
		expect(v.feed({ seq: 2, entry: { ...records[1], seq: 7 } })).toMatchObject({
			reason: "the record says seq 7, it is stored at 2"
		});
		expect(new ChainVerifier(KEY).feed({ seq: 1, entry: "text" })).toMatchObject({
			reason: "not a record"
		});
	});
});

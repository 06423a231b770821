import { InvalidInputError } from "../../../services/shared/errors";
import {
	matches,
	parseCursor,
	parseTime,
	readPage,
	toJsonLines,
	type LogReader
} from "../../../services/audit/query";
import { systemFields, type AuditRecord } from "../../../services/audit/record";
import type { LogEntry } from "../../../services/shared/store";

const T0 = Date.parse("2025-01-01T00:00:00Z");

/** Records 1..n, one minute apart; odd ones by alice in t1, even ones denied by bob in t2. */
function log(n: number, firstSeq = 1): LogEntry<AuditRecord>[] {
	return Array.from({ length: n }, (_, i) => {
		const seq = firstSeq + i;
		const odd = seq % 2 === 1;
		const fields = systemFields({
			actor: odd ? "alice" : "bob",
			action: odd ? "scheduler.create" : "registry.deleteResource",
			target: `o${seq}`,
			tenant: odd ? "t1" : "t2",
			now: T0 + seq * 60_000
		});
		const record = {
			...fields,
			outcome: odd ? { status: 201, succeeded: true } : { status: 403, succeeded: false },
			seq,
			prev: "",
			hash: ""
		} as AuditRecord;
		return { seq, at: T0 + seq * 60_000, entry: record };
	});
}

function reader(entries: LogEntry<AuditRecord>[]): LogReader & { calls: number } {
	const read = (async (afterSeq: number, limit: number) => {
		read.calls++;
		return entries.filter(e => e.seq > afterSeq).slice(0, limit);
	}) as LogReader & { calls: number };
	read.calls = 0;
	return read;
}

describe("audit query", () => {
	it("parses times as ms or ISO, cursors as seqs, and refuses anything else with 422", () => {
		expect(parseTime("1700000000000", "since")).toBe(1700000000000);
		expect(parseTime(5, "since")).toBe(5);
		expect(parseTime("2025-01-01T00:00:00Z", "since")).toBe(T0);
		expect(parseTime(undefined, "since")).toBeUndefined();
		expect(() => parseTime("yesterday", "since")).toThrow(InvalidInputError);
		expect(parseCursor("42")).toBe(42);
		expect(parseCursor(undefined)).toBeUndefined();
		try {
			parseCursor("-1");
			throw new Error("no error");
		} catch (err) {
			expect(err).toBeInstanceOf(InvalidInputError);
			expect(err).toMatchObject({
				code: 422,
				type: "INVALID_INPUT",
				data: { field: "cursor" }
			});
		}
	});

	it("matches by time, tenant, actor, target, outcome and action (exact or prefix)", () => {
		const [r1, r2] = log(2).map(e => e.entry);
		expect(matches(r1, { actor: "alice", tenant: "t1", target: "o1" })).toBe(true);
		expect(matches(r1, { tenant: "t2" })).toBe(false);
		expect(matches(r2, { outcome: "denied" })).toBe(true);
		expect(matches(r1, { outcome: "succeeded" })).toBe(true);
		expect(matches(r1, { outcome: "failed" })).toBe(false);
		expect(matches(r1, { action: "scheduler.create" })).toBe(true);
		expect(matches(r1, { action: "scheduler." })).toBe(true);
		expect(matches(r2, { action: "registry.*" })).toBe(true);
		expect(matches(r2, { action: "registry" })).toBe(false);
		expect(matches(r1, { since: T0 + 60_000, until: T0 + 60_001 })).toBe(true);
		expect(matches(r1, { until: T0 + 60_000 })).toBe(false);
	});

	it("pages newest first and oldest first with cursors, each record once", async () => {
		const entries = log(25);
		const bounds = { oldest: 1, newest: 25 };
		const collect = async (order: "asc" | "desc") => {
			const seqs: number[] = [];
			let cursor: number | undefined;
			for (;;) {
				const page = await readPage(
					reader(entries),
					{},
					{ limit: 7, cursor, order, ...bounds }
				);
				seqs.push(...page.items.map(r => r.seq));
				if (page.nextCursor === null) return seqs;
				cursor = Number(page.nextCursor);
			}
		};
		expect(await collect("desc")).toEqual(Array.from({ length: 25 }, (_, i) => 25 - i));
		expect(await collect("asc")).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
	});

	it("filters inside pages and stops at the kept log's start after a trim", async () => {
		const entries = log(12, 9);
		const page = await readPage(
			reader(entries),
			{ tenant: "t1" },
			{ limit: 100, order: "desc", oldest: 9, newest: 20 }
		);
		expect(page.items.map(r => r.seq)).toEqual([19, 17, 15, 13, 11, 9]);
		expect(page.nextCursor).toBeNull();
	});

	it("stops after the scan limit with a cursor, so a rare filter cannot read the whole log", async () => {
		const entries = log(50);
		const read = reader(entries);
		const page = await readPage(
			read,
			{ actor: "nobody" },
			{ limit: 10, order: "desc", oldest: 1, newest: 50, scanLimit: 20 }
		);
		expect(page.items).toEqual([]);
		expect(page.nextCursor).toBe("31");
	});

	it("stops a descending read well below `since`, and an ascending one well past `until`", async () => {
		const entries = log(30);
		const read = reader(entries);
		const since = T0 + 25 * 60_000;
		const page = await readPage(
			read,
			{ since },
			{ limit: 100, order: "desc", oldest: 1, newest: 30 }
		);
		expect(page.items.map(r => r.seq)).toEqual([30, 29, 28, 27, 26, 25]);
		expect(page.nextCursor).toBeNull();
		const until = T0 + 3 * 60_000;
		const asc = await readPage(
			read,
			{ until },
			{ limit: 100, order: "asc", oldest: 1, newest: 30 }
		);
		expect(asc.items.map(r => r.seq)).toEqual([1, 2]);
		expect(asc.nextCursor).toBeNull();
	});

	it("writes one JSON object per line", () => {
		const records = log(2).map(e => e.entry);
		const text = toJsonLines(records);
		expect(text.split("\n")).toHaveLength(3);
		expect(JSON.parse(text.split("\n")[1]).seq).toBe(2);
		expect(toJsonLines([])).toBe("");
	});
});

import fs from "fs";
import os from "os";
import path from "path";
import {
	formatLease,
	leaseAt,
	orphanTimes,
	parseLease,
	parseUptime,
	readLease,
	stopAtFrom,
	SUPERVISOR_POLL_MS,
	uptimeCs,
	writeLease
} from "../../../../node-agent/runner/supervisor";

describe("orphanTimes", () => {
	it("stops an orphan before the down window ends: SIGTERM, then SIGKILL a grace later", () => {
		// 6 s window (the defaults): a 1.5 s margin, SIGKILL at 4.5 s, SIGTERM 1 s before.
		expect(orphanTimes(6000)).toEqual({ termAfter: 3500, killAfter: 4500 });
		// 1.5 s (reports every 0.5 s): margin a quarter of it.
		expect(orphanTimes(1500)).toEqual({ termAfter: 750, killAfter: 1125 });
	});

	it("follows a stopAfter shorter than the window, and ignores a longer one", () => {
		expect(orphanTimes(6000, 1000)).toEqual({ termAfter: 500, killAfter: 750 });
		expect(orphanTimes(6000, 60_000)).toEqual(orphanTimes(6000));
		expect(orphanTimes(6000, 0)).toEqual({ termAfter: 0, killAfter: 0 });
	});

	it("always leaves room for the supervisor's polling before the window ends", () => {
		for (const window of [300, 1000, 1500, 2000, 6000, 30_000, 600_000]) {
			const { termAfter, killAfter } = orphanTimes(window);
			expect(termAfter).toBeLessThanOrEqual(killAfter);
			expect(killAfter + SUPERVISOR_POLL_MS).toBeLessThan(window);
		}
	});
});

describe("leases", () => {
	const agent = { pid: 4242, startTime: 987654 };

	it("counts deadlines on the uptime clock, in centiseconds, from the report", () => {
		expect(leaseAt(agent, 100_000, { termAfter: 3500, killAfter: 4500 })).toEqual({
			agent,
			termAt: 100_350,
			killAt: 100_450,
			stopAt: 0
		});
		expect(
			leaseAt(agent, 100_000, { termAfter: 3500, killAfter: 4500 }, stopAtFrom(100_000, 3001))
		).toMatchObject({ stopAt: 100_301 });
	});

	it("is one line the shell reads, and parses back", () => {
		const lease = { agent, termAt: 5, killAt: 7, stopAt: 9 };
		expect(formatLease(lease)).toBe("4242 987654 5 7 9\n");
		expect(parseLease(formatLease(lease))).toEqual(lease);
		// An earlier agent's lease, without a disconnect lease: none.
		expect(parseLease("4242 987654 5 7\n")).toEqual({ ...lease, stopAt: 0 });
		for (const bad of ["", "4242 987654 5\n", "4242 987654 5 7", "a b c d\n", "1 2 3 4 x\n"])
			expect(parseLease(bad)).toBeNull();
	});

	it("reads /proc/uptime as the shell does", () => {
		expect(parseUptime("12345.67 98765.43\n")).toBe(1234567);
		expect(parseUptime("0.05 0.01\n")).toBe(5);
		expect(parseUptime("12345 1\n")).toBeNull();
		const now = uptimeCs();
		expect(Number.isInteger(now)).toBe(true);
		expect(now).toBeGreaterThan(0);
	});

	it("is written whole, readable by the workload user's group only when there is one", () => {
		const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-lease-"));
		try {
			const file = path.join(dir, "w.0");
			writeLease(file, { agent, termAt: 1, killAt: 2, stopAt: 0 }, null);
			expect(fs.statSync(file).mode & 0o777).toBe(0o600);
			expect(readLease(file)).toEqual({ agent, termAt: 1, killAt: 2, stopAt: 0 });
			const gid = fs.statSync(dir).gid;
			writeLease(file, { agent, termAt: 3, killAt: 4, stopAt: 0 }, gid);
			expect(fs.statSync(file).mode & 0o777).toBe(0o640);
			expect(readLease(file)?.killAt).toBe(4);
			expect(fs.readdirSync(dir)).toEqual(["w.0"]);
			expect(readLease(path.join(dir, "missing"))).toBeNull();
		} finally {
			fs.rmSync(dir, { recursive: true, force: true });
		}
	});
});

import type { Principal } from "../../../services/shared/principal";
import {
	announcement,
	CallSigner,
	CLOCK_SKEW_MS,
	PROOF_TTL_MS
} from "../../../services/shared/signed-principal";

describe("CallSigner", () => {
	const user: Principal = { sub: "ann", tenant: "t1", roles: ["admin"], exp: 2_000_000_000 };
	let now = 1_000_000;
	const signer = new CallSigner(Buffer.from("cluster-key"), () => now);
	beforeEach(() => (now = 1_000_000));

	it("accepts its own proof for the same sender, action and user", () => {
		const proof = signer.sign("gateway", "scheduler.list", user);
		expect(signer.check(proof, "gateway", "scheduler.list", user)).toBeNull();
		const system = signer.sign("control", "nodes.list", undefined);
		expect(signer.check(system, "control", "nodes.list", undefined)).toBeNull();
	});

	it("refuses a missing proof", () => {
		expect(signer.check(undefined, "x", "scheduler.list", user)).toBe("unsigned");
		expect(signer.check("", "x", "scheduler.list", undefined)).toBe("unsigned");
	});

	it("refuses a proof moved to another sender, action or user, also once it was checked", () => {
		const proof = signer.sign("gateway", "scheduler.list", user);
		expect(signer.check(proof, "gateway", "scheduler.list", user)).toBeNull();
		expect(signer.check(proof, "agent-1", "scheduler.list", user)).toBe("tampered");
		expect(signer.check(proof, "gateway", "config.set", user)).toBe("tampered");
		expect(signer.check(proof, "gateway", "scheduler.list", { ...user, tenant: "t2" })).toBe(
			"tampered"
		);
		expect(
			signer.check(proof, "gateway", "scheduler.list", {
				...user,
				roles: ["admin", "viewer"]
			})
		).toBe("tampered");
		// The control plane's proof (no user) does not carry a user added to it.
		const system = signer.sign("control", "scheduler.list", undefined);
		expect(signer.check(system, "control", "scheduler.list", user)).toBe("tampered");
	});

	it("refuses a proof of another key, a changed expiry, and garbage", () => {
		const other = new CallSigner(Buffer.from("guess"), () => now);
		const proof = other.sign("gateway", "scheduler.list", user);
		expect(signer.check(proof, "gateway", "scheduler.list", user)).toBe("tampered");
		const mine = signer.sign("gateway", "scheduler.list", user);
		const [until, mac] = mine.split(".");
		expect(signer.check(`${Number(until) + 1}.${mac}`, "gateway", "scheduler.list", user)).toBe(
			"tampered"
		);
		for (const garbage of ["x", ".", "abc.def", `${until}.`])
			expect(signer.check(garbage, "gateway", "scheduler.list", user)).toBe("tampered");
		for (const notAProof of [42, { until }])
			expect(signer.check(notAProof, "gateway", "scheduler.list", user)).toBe("unsigned");
		expect(signer.check(mine, "gateway", "scheduler.list", { sub: 1 })).toBe("tampered");
	});

	it("refuses an expired proof, within the clock skew still accepted", () => {
		const proof = signer.sign("g", "a.b", user);
		now += PROOF_TTL_MS + CLOCK_SKEW_MS - 1;
		expect(signer.check(proof, "g", "a.b", user)).toBeNull();
		now += 2;
		expect(signer.check(proof, "g", "a.b", user)).toBe("expired");
	});

	it("reuses a proof while more than half of its time is left, then signs a new one", () => {
		const first = signer.sign("g", "c.d", user);
		now += PROOF_TTL_MS / 2 - 1;
		expect(signer.sign("g", "c.d", user)).toBe(first);
		now += 2;
		const second = signer.sign("g", "c.d", user);
		expect(second).not.toBe(first);
		expect(signer.check(second, "g", "c.d", user)).toBeNull();
	});
});

describe("announcement", () => {
	it("covers an INFO's instance, sequence and services, and a DISCONNECT's instance", () => {
		const info = { instanceID: "i1", seq: 3, services: [{ name: "scheduler" }] };
		expect(announcement("INFO", info)).toBe('$INFO\ni1\n3\n[{"name":"scheduler"}]');
		expect(announcement("INFO", { ...info, services: [] })).not.toBe(
			announcement("INFO", info)
		);
		expect(announcement("DISCONNECT", { instanceID: "i1" })).toBe("$DISCONNECT\ni1");
		expect(announcement("HEARTBEAT", info)).toBeNull();
	});
});

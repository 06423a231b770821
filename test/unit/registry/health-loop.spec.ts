import { register } from "../../../services/registry/checkers";
import { CheckResult, HealthChecker } from "../../../services/registry/checkers/base";
import { HealthState, initialHealth } from "../../../services/registry/health";
import { HealthLoop, HealthLoopOptions } from "../../../services/registry/health-loop";
import { ownerOf } from "../../../services/registry/sharding";
import type { Target } from "../../../services/registry/targets";
import { EVENTS } from "../../../services/shared/events";

/** What the next checks of the "unit_loop" type answer, and the endpoints checked. */
let answer: () => Promise<CheckResult> = async () => ({ ok: true, latencyMs: 1 });
const checked: string[] = [];
class ScriptedChecker extends HealthChecker {
	check(t: { endpoint: string }): Promise<CheckResult> {
		checked.push(t.endpoint);
		return answer();
	}
}
register("unit_loop", ScriptedChecker);

function target(key: string, more: Partial<Target> = {}): Target {
	return {
		key,
		kind: "resource",
		ref: `id-${key}`,
		name: `name-${key}`,
		owner: { owner: "cluster" },
		check: { type: "unit_loop", endpoint: `unit://${key}`, config: {}, timeoutMs: 100 },
		interval: 1000,
		thresholds: { healthyThreshold: 1, unhealthyThreshold: 1 },
		...more
	};
}

function setup(targets: Target[], instances = ["me"], maxChecks?: number) {
	const stored = new Map<string, HealthState>();
	const events: Array<[string, Record<string, unknown>]> = [];
	const warnings: unknown[][] = [];
	const opts: HealthLoopOptions = {
		catalog: {
			targets: async () => targets,
			health: async key => stored.get(key) ?? initialHealth(),
			putHealth: async (key, state) => {
				stored.set(key, state);
			}
		},
		nodeID: "me",
		instances: () => instances,
		broadcast: (event, payload) => events.push([event, payload]),
		logger: { info: () => undefined, warn: (...args: unknown[]) => warnings.push(args) },
		maxChecks
	};
	return { loop: new HealthLoop(opts), stored, events, warnings };
}

/** Lets checks that answer at once run to their end. */
const settle = () => new Promise(resolve => setTimeout(resolve, 10));

beforeEach(() => {
	checked.length = 0;
	answer = async () => ({ ok: true, latencyMs: 1 });
});
afterEach(() => jest.restoreAllMocks());

describe("HealthLoop", () => {
	it("stores each result and announces a change of status, once", async () => {
		const { loop, stored, events } = setup([target("a")]);
		const now = jest.spyOn(Date, "now").mockReturnValue(10_000);
		await loop.tick();
		await settle();
		expect(stored.get("a")).toMatchObject({ status: "healthy", successes: 1 });
		expect(events).toEqual([
			[
				EVENTS.resourceHealthChanged,
				{
					id: "id-a",
					name: "name-a",
					owner: "cluster",
					health: { status: "healthy", checkedAt: 10_000, latencyMs: 1 }
				}
			]
		]);
		now.mockReturnValue(11_000);
		await loop.tick();
		await settle();
		expect(stored.get("a")).toMatchObject({ status: "healthy", successes: 2 });
		expect(events).toHaveLength(1);
	});

	it("announces a tenant's service endpoint with its owner and URL masked, and stores no secret in errors", async () => {
		const endpoint = "http://u:s3cret@svc:1/";
		answer = async () => ({ ok: false, latencyMs: 2, error: "refused by http://u:s3cret@svc" });
		const t = target("service:model:x", {
			kind: "service",
			ref: "acme/model",
			name: "model",
			owner: { owner: "tenant", tenant: "acme" },
			check: { type: "unit_loop", endpoint, config: {}, timeoutMs: 100 }
		});
		const { loop, stored, events } = setup([t]);
		await loop.tick();
		await settle();
		expect(stored.get(t.key)?.error).toBe("refused by http://u:***@svc");
		expect(events).toEqual([
			[
				EVENTS.serviceHealthChanged,
				{
					name: "model",
					endpoint: "http://u:***@svc:1/",
					owner: "tenant",
					tenant: "acme",
					health: expect.objectContaining({
						status: "unhealthy",
						error: "refused by http://u:***@svc"
					})
				}
			]
		]);
	});

	it("checks a target again only once its interval has passed", async () => {
		const { loop } = setup([target("a", { interval: 1000 })]);
		const now = jest.spyOn(Date, "now").mockReturnValue(50_000);
		await loop.tick();
		await settle();
		now.mockReturnValue(50_999);
		await loop.tick();
		await settle();
		expect(checked).toEqual(["unit://a"]);
		now.mockReturnValue(51_000);
		await loop.tick();
		await settle();
		expect(checked).toEqual(["unit://a", "unit://a"]);
	});

	it("never runs two checks of one target at once", async () => {
		let release!: () => void;
		answer = () =>
			new Promise(resolve => {
				release = () => resolve({ ok: true, latencyMs: 1 });
			});
		const { loop } = setup([target("a", { interval: 0 })]);
		await loop.tick();
		await loop.tick();
		expect(checked).toEqual(["unit://a"]);
		release();
		await settle();
		await loop.tick();
		expect(checked).toEqual(["unit://a", "unit://a"]);
		release();
		await loop.stop();
	});

	it("checks only the targets this instance owns among the live ones", async () => {
		const instances = ["me", "other", "third"];
		const targets = Array.from({ length: 30 }, (_, i) => target(`t${i}`));
		const { loop } = setup(targets, instances);
		await loop.tick();
		await settle();
		const mine = targets.filter(t => ownerOf(t.key, instances) === "me");
		expect(mine.length).toBeGreaterThan(0);
		expect(mine.length).toBeLessThan(targets.length);
		expect(checked.sort()).toEqual(mine.map(t => t.check.endpoint).sort());
	});

	it("logs a check that failed to run, and checks the target again later", async () => {
		const { loop, warnings } = setup([target("a", { interval: 0 })]);
		answer = async () => {
			throw new Error("checker broke");
		};
		await loop.tick();
		await settle();
		expect(warnings).toEqual([
			["Health check of resource 'name-a' failed:", expect.any(Error)]
		]);
		answer = async () => ({ ok: true, latencyMs: 1 });
		await loop.tick();
		await settle();
		expect(checked).toEqual(["unit://a", "unit://a"]);
	});

	it("stop waits for the checks in flight and starts no new one", async () => {
		let release!: () => void;
		answer = () =>
			new Promise(resolve => {
				release = () => resolve({ ok: true, latencyMs: 1 });
			});
		const { loop, stored } = setup([target("a", { interval: 0 })]);
		await loop.tick();
		let stopped = false;
		const stopping = loop.stop().then(() => {
			stopped = true;
		});
		await settle();
		expect(stopped).toBe(false);
		release();
		await stopping;
		expect(stored.get("a")?.status).toBe("healthy");
		await loop.tick();
		expect(checked).toEqual(["unit://a"]);
	});

	it("runs at most maxChecks at once; the others wait for a later tick, longest-waiting first", async () => {
		let release!: () => void;
		const hold = new Promise<void>(resolve => (release = resolve));
		answer = async () => {
			await hold;
			return { ok: true, latencyMs: 1 };
		};
		const targets = ["a", "b", "c", "d", "e"].map(k => target(k, { interval: 0 }));
		const { loop } = setup(targets, ["me"], 2);
		await loop.tick();
		expect(checked).toEqual(["unit://a", "unit://b"]);
		// Both still run: no room for more.
		await loop.tick();
		expect(checked).toHaveLength(2);
		release();
		await settle();
		answer = async () => ({ ok: true, latencyMs: 1 });
		await loop.tick();
		// c, d and e never ran: they go before a and b, which just did.
		expect(checked.slice(2)).toEqual(["unit://c", "unit://d"]);
		await settle();
		await loop.tick();
		expect(checked.slice(4)).toEqual(["unit://e", "unit://a"]);
		await loop.stop();
	});
});

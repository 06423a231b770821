import { EventEmitter } from "events";
import {
	alertAudience,
	audienceOf,
	EventStream,
	mayReceive,
	ownedAudience,
	principalOf
} from "../../../services/gateway/events";
import type { Principal } from "../../../services/shared/principal";

const exp = Date.now() / 1000 + 600;
const principals: Record<string, Principal> = {
	admin: { sub: "root", tenant: "ops", roles: ["admin"], exp },
	acme: { sub: "ann", tenant: "acme", roles: ["operator"], exp },
	globex: { sub: "gus", tenant: "globex", roles: ["viewer"], exp }
};

describe("who receives an event", () => {
	it("health events of the cluster's objects go to all, a tenant's to that tenant", () => {
		expect(ownedAudience({ id: "r1", owner: "cluster" })).toBeUndefined();
		// Sent before owners existed: the cluster's.
		expect(ownedAudience({ id: "r1" })).toBeUndefined();
		expect(ownedAudience(null)).toBeUndefined();
		expect(ownedAudience({ id: "r1", owner: "tenant", tenant: "acme" })).toBe("acme");
		// A tenant's object that names no tenant: admins only.
		expect(ownedAudience({ id: "r1", owner: "tenant" })).toBeNull();
		expect(audienceOf("resource.health.changed", { owner: "tenant", tenant: "acme" })).toBe(
			"acme"
		);
		expect(audienceOf("service.health.changed", { owner: "tenant", tenant: "acme" })).toBe(
			"acme"
		);
	});

	it("alerts as GET /alerts shows them: by the rule's owner and the series' tenant", () => {
		// A cluster rule on a node series: everyone.
		expect(alertAudience({ owner: "cluster", labels: { node: "n1" } })).toBeUndefined();
		// A cluster rule's alert about acme's workload: acme (and admins) only.
		expect(alertAudience({ owner: "cluster", labels: { tenant: "acme" } })).toBe("acme");
		// Saved before owners existed.
		expect(alertAudience({ labels: { tenant: "acme" } })).toBe("acme");
		// A tenant's rule: that tenant, whatever the series.
		expect(alertAudience({ owner: "tenant", tenant: "acme", labels: { tenant: "acme" } })).toBe(
			"acme"
		);
		expect(alertAudience({ owner: "tenant", tenant: "acme", labels: {} })).toBe("acme");
		// What the monitor never sends: admins only.
		expect(
			alertAudience({ owner: "tenant", tenant: "acme", labels: { tenant: "b" } })
		).toBeNull();
		expect(alertAudience({ owner: "tenant", labels: {} })).toBeNull();
		expect(audienceOf("alert.firing", { owner: "tenant", tenant: "acme" })).toBe("acme");
		expect(audienceOf("alert.resolved", { owner: "tenant", tenant: "acme" })).toBe("acme");
	});

	it("node events go to all; an event the stream does not know to admins or its tenant", () => {
		for (const e of ["node.up", "node.down", "node.updated", "node.allocated"])
			expect(audienceOf(e, { id: "n1", tenant: "acme" })).toBeUndefined();
		expect(audienceOf("something.new", { tenant: "acme" })).toBe("acme");
		expect(audienceOf("something.new", {})).toBeNull();
	});

	it("mayReceive: everyone, admins only, or admins and the tenant", () => {
		expect(mayReceive(principals.globex, undefined)).toBe(true);
		expect(mayReceive(principals.globex, null)).toBe(false);
		expect(mayReceive(principals.admin, null)).toBe(true);
		expect(mayReceive(principals.acme, "acme")).toBe(true);
		expect(mayReceive(principals.globex, "acme")).toBe(false);
		expect(mayReceive(principals.admin, "acme")).toBe(true);
	});
});

describe("principalOf: who opens a stream", () => {
	const ann: Principal = { sub: "ann", tenant: "acme", roles: ["viewer"], exp: 2e9 };
	const verifier = { verifyHeader: async (h: string | undefined) => ({ ...ann, sub: h! }) };
	const tickets = { redeem: async (t: string) => ({ ...ann, sub: `ticket ${t}` }) };
	const who = (req: object) => principalOf({ headers: {}, ...req } as any, verifier, tickets);
	const refusal = (req: object) =>
		who(req).then(
			() => null,
			(e: { code: number; type: string }) => ({ code: e.code, type: e.type })
		);

	it("takes the Authorization header, else a ticket", async () => {
		expect((await who({ headers: { authorization: "Bearer x" } })).sub).toBe("Bearer x");
		expect((await who({ query: { ticket: "t1" } })).sub).toBe("ticket t1");
	});

	it("refuses a token in the URL, even with a ticket beside it, and says to use a ticket", async () => {
		expect(await refusal({ query: { token: "jwt" } })).toEqual({
			code: 401,
			type: "TOKEN_IN_URL"
		});
		expect(await refusal({ query: { token: "jwt", ticket: "t1" } })).toMatchObject({
			type: "TOKEN_IN_URL"
		});
		await expect(who({ query: { token: "jwt" } })).rejects.toMatchObject({
			data: { reason: expect.stringMatching(/POST \/api\/v1\/events\/ticket/) }
		});
	});

	it("answers NO_TOKEN without either, INVALID_TICKET for several tickets", async () => {
		expect(await refusal({})).toEqual({ code: 401, type: "NO_TOKEN" });
		expect(await refusal({ query: { ticket: "" } })).toMatchObject({ type: "NO_TOKEN" });
		expect(await refusal({ query: { ticket: ["a", "b"] } })).toMatchObject({
			type: "INVALID_TICKET"
		});
	});
});

describe("EventStream filtering", () => {
	class FakeRes extends EventEmitter {
		chunks: string[] = [];
		writableLength = 0;
		writableEnded = false;
		destroyed = false;
		writeHead() {
			return this;
		}
		write(chunk: string) {
			this.chunks.push(chunk);
			return true;
		}
		end() {
			this.writableEnded = true;
			this.emit("close");
		}
		/** `event:id` of what arrived, hello left out. */
		get seen(): string[] {
			return this.chunks
				.join("")
				.split("\n\n")
				.map(block => {
					const name = /^event: (.+)$/m.exec(block)?.[1];
					const data = /^data: (.+)$/m.exec(block)?.[1];
					if (!name || !data || name === "hello") return null;
					const d = JSON.parse(data);
					return `${name}:${d.id ?? d.name ?? d.workloadId}`;
				})
				.filter((e): e is string => e !== null)
				.sort();
		}
	}
	const verifier = {
		verify: async (token: string) => principals[token],
		verifyHeader: async (header: string | undefined) => principals[header!.slice(7)]
	};
	const tickets = { redeem: async (ticket: string) => principals[ticket] };
	const socket = { setNoDelay() {}, setKeepAlive() {} };
	let stream: EventStream;
	afterEach(() => stream.close());

	async function connect(token: string) {
		const res = new FakeRes();
		await stream.handle(
			{ headers: {}, query: { ticket: token }, socket } as any,
			res as any,
			err => {
				throw err;
			}
		);
		return res;
	}

	it("ends every stream with a shutdown event when the gateway stops", async () => {
		stream = new EventStream({ verifier, tickets });
		const admin = await connect("admin");
		stream.close();
		expect(admin.writableEnded).toBe(true);
		expect(admin.chunks.join("")).toMatch(
			/event: shutdown\ndata: \{"reason":"The gateway is stopping\."\}\n\n$/
		);
		expect(stream.size).toBe(0);
	});

	it("gives each client only the events it may see", async () => {
		stream = new EventStream({
			verifier,
			tickets,
			lookupTenant: async id => (id.startsWith("a") ? "acme" : "globex")
		});
		const admin = await connect("admin");
		const acme = await connect("acme");
		const globex = await connect("globex");
		const health = { status: "unhealthy", checkedAt: 1, latencyMs: 1 };
		stream.publish("node.up", { id: "n1" });
		stream.publish("resource.health.changed", { id: "shared", owner: "cluster", health });
		stream.publish("resource.health.changed", { id: "legacy", health });
		stream.publish("resource.health.changed", {
			id: "acme-db",
			owner: "tenant",
			tenant: "acme",
			health
		});
		stream.publish("service.health.changed", {
			name: "globex-api",
			owner: "tenant",
			tenant: "globex",
			health
		});
		stream.publish("alert.firing", {
			id: "node-down",
			owner: "cluster",
			labels: { node: "n1" }
		});
		stream.publish("alert.firing", {
			id: "pending-acme",
			owner: "cluster",
			labels: { tenant: "acme", workload: "a1" }
		});
		stream.publish("alert.resolved", {
			id: "globex-own",
			owner: "tenant",
			tenant: "globex",
			labels: { node: "n1", tenant: "globex" }
		});
		stream.publish("workload.replica.state", { workloadId: "a1", replica: 0 });
		await new Promise(r => setTimeout(r, 20));
		const everyone = [
			"alert.firing:node-down",
			"node.up:n1",
			"resource.health.changed:legacy",
			"resource.health.changed:shared"
		];
		expect(acme.seen).toEqual(
			[
				...everyone,
				"alert.firing:pending-acme",
				"resource.health.changed:acme-db",
				"workload.replica.state:a1"
			].sort()
		);
		expect(globex.seen).toEqual(
			[...everyone, "alert.resolved:globex-own", "service.health.changed:globex-api"].sort()
		);
		expect(admin.seen).toHaveLength(9);
	});
});

describe("EventStream and failed authentications", () => {
	const ann: Principal = { sub: "ann", tenant: "acme", roles: ["viewer"], exp: 2e9 };
	const refused = (type: string) => Object.assign(new Error(type), { type, code: 401 });
	const verifier = {
		verifyHeader: async (header: string | undefined) => {
			if (header === "Bearer good") return ann;
			throw refused("INVALID_TOKEN");
		}
	};
	const tickets = {
		redeem: async (): Promise<Principal> => {
			throw refused("INVALID_TICKET");
		}
	};
	const limited = new Error("429");

	async function open(stream: EventStream, req: object): Promise<unknown> {
		let answer: unknown = "open";
		const res = Object.assign(new EventEmitter(), {
			writeHead: () => undefined,
			write: () => true,
			end: () => undefined,
			writableEnded: false,
			destroyed: false
		});
		await stream.handle({ headers: {}, socket: {}, ...req } as any, res as any, err => {
			answer = err;
		});
		return answer;
	}

	it("counts a bad token or ticket, not a missing one, and refuses a blocked address first", async () => {
		const failed = jest.fn(async () => null as Error | null);
		let blocked: Error | null = null;
		const stream = new EventStream({
			verifier,
			tickets,
			failures: { blocked: () => blocked, failed }
		});
		try {
			expect(await open(stream, { headers: { authorization: "Bearer bad" } })).toMatchObject({
				type: "INVALID_TOKEN"
			});
			expect(await open(stream, { query: { ticket: "guess" } })).toMatchObject({
				type: "INVALID_TICKET"
			});
			expect(await open(stream, {})).toMatchObject({ type: "NO_TOKEN" });
			expect(failed).toHaveBeenCalledTimes(2);
			// Past the limit: the count's refusal is the answer.
			failed.mockResolvedValueOnce(limited);
			expect(await open(stream, { headers: { authorization: "Bearer bad" } })).toBe(limited);
			// A blocked address is refused before its token is looked at, a good one too.
			blocked = limited;
			expect(await open(stream, { headers: { authorization: "Bearer good" } })).toBe(limited);
			expect(failed).toHaveBeenCalledTimes(3);
		} finally {
			stream.close();
		}
	});
});

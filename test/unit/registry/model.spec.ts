import {
	normalizeHealthCheck,
	normalizeResource,
	normalizeService
} from "../../../services/registry/model";

describe("model", () => {
	it("fills health check defaults and refuses a timeout longer than the interval", () => {
		expect(normalizeHealthCheck()).toEqual({
			interval: 10_000,
			timeout: 2_000,
			healthyThreshold: 1,
			unhealthyThreshold: 2
		});
		expect(() => normalizeHealthCheck({ interval: "1s", timeout: "2s" })).toThrow(/timeout/);
		expect(() => normalizeHealthCheck({ interval: "100ms" })).toThrow(/at least 500ms/);
	});

	it("refuses a health check interval over a day and a timeout over 5 minutes", () => {
		// setTimeout fires at once for a delay of 2^31 ms or more: 1e30 s would be a busy loop.
		expect(() => normalizeHealthCheck({ interval: 1e30 })).toThrow(/longer than 1 day/);
		expect(() => normalizeHealthCheck({ interval: "2d" })).toThrow(/longer than 1 day/);
		expect(() => normalizeHealthCheck({ interval: "1h", timeout: "10m" })).toThrow(
			/healthCheck.timeout '10m' is longer than 5m/
		);
		expect(normalizeHealthCheck({ interval: "1d", timeout: "5m" })).toMatchObject({
			interval: 86_400_000,
			timeout: 300_000
		});
	});

	it("bounds what a service says it needs, and takes 0", () => {
		const service = (resources: object) =>
			normalizeService(
				{ name: "s", type: "http", endpoints: ["http://127.0.0.1:1"], resources },
				1
			);
		expect(service({ cpu: 0, memory: 0, storage: "1Ti" }).resources).toEqual({
			cpu: 0,
			memory: 0,
			storage: 1024 ** 4
		});
		expect(() => service({ memory: 1e30 })).toThrow(/resources.memory must be from 0B to 64Ti/);
		expect(() => service({ storage: "2048Ti" })).toThrow(/resources.storage/);
	});

	it("checks endpoints by type", () => {
		expect(() =>
			normalizeResource({ name: "pg", type: "postgres", endpoint: "http://x" }, "id", 0)
		).toThrow(/postgres/);
		expect(() =>
			normalizeResource({ name: "t", type: "tcp", endpoint: "nohost" }, "id", 0)
		).toThrow(/host:port/);
		expect(
			normalizeResource({ name: "t", type: "tcp", endpoint: "127.0.0.1:22" }, "id", 0)
				.endpoint
		).toBe("127.0.0.1:22");
	});

	it("normalizes a service with sizes, a default health path, and no self-dependency", () => {
		const s = normalizeService(
			{
				name: "isa_model",
				type: "http",
				endpoints: ["http://127.0.0.1:8081"],
				resources: { gpu: 2, memory: "16Gi", storage: "100Gi" }
			},
			5
		);
		expect(s).toMatchObject({
			healthCheck: { path: "/health" },
			resources: { gpu: 2, memory: 16 * 1024 ** 3, storage: 100 * 1024 ** 3 }
		});
		expect(() =>
			normalizeService({ name: "a", type: "http", endpoints: ["ftp://x"] }, 0)
		).toThrow(/http/);
		expect(() =>
			normalizeService({ name: "a", type: "http", endpoints: [], dependencies: ["a"] }, 0)
		).toThrow(/itself/);
	});
});

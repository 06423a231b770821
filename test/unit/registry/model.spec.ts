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

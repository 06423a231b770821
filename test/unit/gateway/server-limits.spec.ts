import http from "http";
import { applyServerLimits, checkingInterval } from "../../../services/gateway/server-limits";

describe("server limits", () => {
	it("sets the deadlines and header size on a server before it listens", () => {
		const server = http.createServer();
		applyServerLimits(server, {
			headersTimeout: 10_000,
			requestTimeout: 30_000,
			keepAliveTimeout: 5000,
			maxHeaderSize: 16 * 1024
		});
		expect(server).toMatchObject({
			headersTimeout: 10_000,
			requestTimeout: 30_000,
			keepAliveTimeout: 5000,
			maxHeaderSize: 16 * 1024,
			connectionsCheckingInterval: 1000
		});
	});

	it("checks deadlines at a quarter of the header deadline, from 50 ms to 1 s", () => {
		expect(checkingInterval(10_000)).toBe(1000);
		expect(checkingInterval(2000)).toBe(500);
		expect(checkingInterval(100)).toBe(50);
	});
});

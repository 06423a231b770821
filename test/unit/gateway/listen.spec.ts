import http from "http";
import type { AddressInfo } from "net";
import { listen } from "../../../services/gateway/listen";
import { ListenError } from "../../../services/shared/errors";

describe("listen", () => {
	it("resolves once listening, and rejects a port in use with a ListenError", async () => {
		const first = http.createServer();
		await listen(first, 0, "127.0.0.1");
		const port = (first.address() as AddressInfo).port;
		const second = http.createServer();
		const own = second.listenerCount("listening");
		const err = await listen(second, port, "127.0.0.1").catch(e => e);
		expect(err).toBeInstanceOf(ListenError);
		expect(err).toMatchObject({
			type: "PORT_IN_USE",
			data: { host: "127.0.0.1", port, code: "EADDRINUSE" }
		});
		expect(second.listenerCount("listening")).toBe(own);
		first.close();
	});
});

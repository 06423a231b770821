import { inspect } from "util";
import { EXIT, exitCodeOf, exitLine } from "../../../bin/exit-codes";
import { connectReason, transporterAddress } from "../../../bin/transporter-wait";
import {
	InvalidInputError,
	ListenError,
	NodeIdTakenError,
	TransporterUnreachableError
} from "../../../services/shared/errors";

describe("exit codes", () => {
	it("names the cause: 2 bad config, 3 NODEID taken, 4 listen, 5 transporter, else 1", () => {
		expect(exitCodeOf(new InvalidInputError("PORT='x' is not a number."))).toBe(EXIT.badConfig);
		expect(
			exitCodeOf(new NodeIdTakenError("n1", { hostname: "h", pid: 1, startedAt: 0 }))
		).toBe(EXIT.nodeIdTaken);
		expect(exitCodeOf(new ListenError("127.0.0.1", 3000, "EADDRINUSE"))).toBe(
			EXIT.listenFailed
		);
		expect(exitCodeOf(new TransporterUnreachableError("nats://h:4222", "x", "30s"))).toBe(
			EXIT.transporterUnreachable
		);
		expect(exitCodeOf(new Error("boom"))).toBe(EXIT.failed);
		expect(EXIT).toEqual({
			stopped: 0,
			failed: 1,
			badConfig: 2,
			nodeIdTaken: 3,
			listenFailed: 4,
			transporterUnreachable: 5
		});
	});

	it("says what and how to fix in one line, and logs as one line", () => {
		const busy = new ListenError("127.0.0.1", 3000, "EADDRINUSE");
		expect(exitLine(busy)).toBe(
			"IsA Cloud: port 3000 on 127.0.0.1 is in use (EADDRINUSE); stop what holds it or set PORT."
		);
		expect(busy).toMatchObject({
			type: "PORT_IN_USE",
			data: { host: "127.0.0.1", port: 3000 }
		});
		expect(inspect(busy)).toBe(`ListenError: ${busy.message}`);
		expect(new ListenError("0.0.0.0", 80, "EACCES").message).toMatch(
			/may not be bound by this user \(EACCES\); use a port above 1023/
		);
		expect(
			new TransporterUnreachableError("nats://h:4222", "connection refused", "30s").message
		).toBe(
			"cannot reach the transporter nats://h:4222 (connection refused, waited 30s); start " +
				"it, fix TRANSPORTER, or wait longer with ISA_TRANSPORTER_TIMEOUT."
		);
	});
});

describe("transporter address", () => {
	it("takes the first server, its default port, and leaves the credentials out", () => {
		expect(transporterAddress("nats://user:secret@10.0.0.1:4223,nats://b:4222")).toEqual({
			url: "nats://10.0.0.1:4223",
			host: "10.0.0.1",
			port: 4223
		});
		expect(transporterAddress("redis://cache")).toMatchObject({ port: 6379 });
		expect(transporterAddress("NATS")).toBeNull();
	});

	it("puts a socket error in words", () => {
		expect(connectReason("ECONNREFUSED")).toBe("connection refused");
		expect(connectReason("ENOTFOUND")).toBe("host not found");
		expect(connectReason("EPIPE")).toBe("cannot connect (EPIPE)");
		expect(connectReason(undefined)).toBe("no connection");
	});
});

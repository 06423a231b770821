import { clientAddress, parseTrustProxy } from "../../../services/shared/trust-proxy";

describe("trust-proxy", () => {
	it("ignores X-Forwarded-For unless told; `true` takes its left-most address", () => {
		expect(clientAddress("10.0.0.1", "1.2.3.4, 10.0.0.2", false)).toBe("10.0.0.1");
		expect(clientAddress("10.0.0.1", "1.2.3.4, 10.0.0.2", true)).toBe("1.2.3.4");
		expect(clientAddress("10.0.0.1", undefined, true)).toBe("10.0.0.1");
		expect(clientAddress("::ffff:10.0.0.1", undefined, false)).toBe("10.0.0.1");
		expect(clientAddress(undefined, "1.2.3.4", false)).toBeNull();
	});

	it("parses false, true and lists of addresses and CIDRs; refuses anything else", () => {
		expect(parseTrustProxy(undefined)).toBe(false);
		expect(parseTrustProxy("")).toBe(false);
		expect(parseTrustProxy("no")).toBe(false);
		expect(parseTrustProxy("TRUE")).toBe(true);
		expect(parseTrustProxy("10.0.0.0/8, 192.168.1.7,::1")).toMatchObject({
			list: ["10.0.0.0/8", "192.168.1.7", "::1"]
		});
		expect(() => parseTrustProxy("10.0.0.0/33")).toThrow(/10.0.0.0\/33 is not an IP/);
		expect(() => parseTrustProxy("proxy.local")).toThrow(
			expect.objectContaining({ type: "INVALID_INPUT" })
		);
	});

	it("with a list, reads X-Forwarded-For from the right while the hop is a listed proxy", () => {
		const trust = parseTrustProxy("10.0.0.0/8");
		// Through one trusted proxy: the address it saw.
		expect(clientAddress("10.0.0.5", "203.0.113.9", trust)).toBe("203.0.113.9");
		// A client that writes its own header: what the proxy appended wins, not the forgery.
		expect(clientAddress("10.0.0.5", "1.1.1.1, 203.0.113.9", trust)).toBe("203.0.113.9");
		// Two trusted proxies in a row.
		expect(clientAddress("10.0.0.5", "203.0.113.9, 10.1.1.1", trust)).toBe("203.0.113.9");
		// A peer that is not listed: its header counts for nothing.
		expect(clientAddress("198.51.100.2", "1.1.1.1", trust)).toBe("198.51.100.2");
		// Only trusted hops: the left-most one is as far as can be known.
		expect(clientAddress("10.0.0.5", "10.2.2.2", trust)).toBe("10.2.2.2");
		// Garbage in the header is not an address to trust further.
		expect(clientAddress("10.0.0.5", "x, junk", trust)).toBe("junk");
	});
});

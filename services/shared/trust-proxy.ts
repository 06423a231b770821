/**
 * Which client a request comes from, when proxies may stand in between (ISA_TRUST_PROXY).
 *
 * - `false` (the default): the socket's peer, whatever `X-Forwarded-For` says; a client can
 *   write that header itself, so it counts for nothing.
 * - `true`: any peer is a trusted proxy and the left-most address of `X-Forwarded-For` is the
 *   client (as before lists existed; only for a gateway that nothing but its proxy can reach).
 * - a list of addresses and CIDRs (`10.0.0.0/8,192.168.1.7`): `X-Forwarded-For` is read from
 *   the right only while the hop that added an entry is listed: the first address added by an
 *   unlisted hop is the client. A client that writes its own header only adds entries to the
 *   left of what the trusted proxies appended, so it cannot pick its address.
 */
import net from "net";
import { InvalidInputError } from "./errors";

export type TrustProxy = boolean | { list: string[]; matcher: net.BlockList };

/** `::ffff:10.0.0.1` (an IPv4 peer of a dual-stack socket) → `10.0.0.1`. */
function plain(address: string): string {
	const trimmed = address.trim();
	return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(trimmed) ? trimmed.slice(7) : trimmed;
}

function addRule(list: net.BlockList, rule: string): boolean {
	const [address, bits, ...rest] = rule.split("/");
	const family = net.isIP(address);
	if (!family || rest.length) return false;
	const type = family === 4 ? "ipv4" : "ipv6";
	if (bits === undefined) {
		list.addAddress(address, type);
		return true;
	}
	const prefix = Number(bits);
	if (!/^\d+$/.test(bits) || prefix > (family === 4 ? 32 : 128)) return false;
	list.addSubnet(address, prefix, type);
	return true;
}

/** ISA_TRUST_PROXY: unset/false/no/0, true/yes/1, or comma-separated addresses and CIDRs. */
export function parseTrustProxy(raw: string | undefined): TrustProxy {
	const text = raw?.trim() ?? "";
	if (text === "" || /^(0|false|no)$/i.test(text)) return false;
	if (/^(1|true|yes)$/i.test(text)) return true;
	const list = text
		.split(",")
		.map(s => s.trim())
		.filter(Boolean);
	const matcher = new net.BlockList();
	const bad = list.filter(rule => !addRule(matcher, plain(rule)));
	if (bad.length)
		throw new InvalidInputError(
			`ISA_TRUST_PROXY: ${bad.join(", ")} is not an IP address or CIDR (example: 10.0.0.0/8,192.168.1.7), nor true or false.`,
			{ name: "ISA_TRUST_PROXY", invalid: bad }
		);
	return { list, matcher };
}

function trusted(trust: TrustProxy, address: string): boolean {
	if (typeof trust === "boolean") return trust;
	const family = net.isIP(address);
	return family !== 0 && trust.matcher.check(address, family === 4 ? "ipv4" : "ipv6");
}

/** The header's entries, left to right, as one list (several headers join with commas). */
function forwardedList(forwardedFor: string | string[] | undefined): string[] {
	const text = Array.isArray(forwardedFor) ? forwardedFor.join(",") : (forwardedFor ?? "");
	return text.split(",").map(plain).filter(Boolean);
}

/** The client's address under `trust` (see the module's comment); null without a peer. */
export function clientAddress(
	remoteAddress: string | undefined,
	forwardedFor: string | string[] | undefined,
	trust: TrustProxy
): string | null {
	const peer = remoteAddress ? plain(remoteAddress) : null;
	if (trust === false || peer === null) return peer;
	const hops = forwardedList(forwardedFor);
	if (trust === true) return hops[0] ?? peer;
	let client = peer;
	while (trusted(trust, client) && hops.length) client = hops.pop()!;
	return client;
}

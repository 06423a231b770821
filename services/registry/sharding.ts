/**
 * Which registry instance checks which target: rendezvous (highest random weight) hashing over
 * the live instances. Each target has exactly one owner; when an instance joins or leaves, only
 * the targets it gains or loses move. Pure.
 */
import crypto from "crypto";

function weight(instance: string, target: string): number {
	return crypto.createHash("sha1").update(`${instance}\u0000${target}`).digest().readUInt32BE(0);
}

export function ownerOf(target: string, instances: string[]): string | null {
	let best: string | null = null;
	let bestWeight = -1;
	for (const instance of instances) {
		const w = weight(instance, target);
		if (w > bestWeight || (w === bestWeight && best !== null && instance < best)) {
			best = instance;
			bestWeight = w;
		}
	}
	return best;
}

/**
 * The scorer of each strategy a request can name, made once: a placement looks its scorer up
 * with one property read. It is apart from index.ts because pickGpus needs it, and index.ts
 * imports the resources filter, which calls pickGpus.
 */
import type { Strategy } from "../placement";
import { Binpack } from "./binpack";
import type { Scorer } from "./scorer";
import { Spread } from "./spread";

const BY_STRATEGY: Record<Strategy, Scorer> = { binpack: new Binpack(), spread: new Spread() };

export function scorerOf(strategy: Strategy): Scorer {
	return BY_STRATEGY[strategy];
}

/**
 * One process's watch over the store's identity (identity.ts): it reads the identity when the
 * store opens and every `interval` after, initialises a brand-new cluster's, and while the
 * store is not the one remembered it refuses every write through `guardedStore` with
 * StoreIdentityMismatchError (503). Reads go on: they show the store as it is, and the
 * scheduler asks `verify()` (a fresh read of the identity, after its own reads) before it tells
 * any agent what to run, so that a list read from an emptied store never stops a replica.
 *
 * `adopt` is the operator's way out: it writes the adopted identity, in one transaction with
 * what the caller re-registers, so that no scheduler can see the new identity without them.
 */
import crypto from "crypto";
import { StoreIdentityMismatchError } from "../errors";
import {
	adoptedIdentity,
	type ClusterIdentity,
	IDENTITY_COLLECTION,
	IDENTITY_ID,
	type IdentityVerdict,
	judgeIdentity,
	mismatchMessage,
	newIdentity,
	parseIdentity
} from "./identity";
import type { IdentityMemory } from "./identity-memory";
import type { DocWrite, Store, VersionCheck } from "./store";

export type Mismatch = Extract<IdentityVerdict, { state: "mismatch" }> & { message: string };

export interface IdentityGuardOptions {
	/** ms between two checks; 0: only when asked. */
	interval?: number;
	logger?: { info(msg: string): void; error(msg: string): void };
	clock?: () => number;
	newId?: () => string;
}

export class IdentityGuard {
	/** null until the first check has decided. */
	private verdict: { state: "ok"; identity: ClusterIdentity } | Mismatch | null = null;
	private inFlight: Promise<void> | null = null;
	private timer: NodeJS.Timeout | null = null;
	private readonly listeners = new Set<() => void>();
	private readonly clock: () => number;
	private readonly newId: () => string;

	constructor(
		private readonly store: Store,
		private readonly memory: IdentityMemory,
		private readonly opts: IdentityGuardOptions = {}
	) {
		this.clock = opts.clock ?? Date.now;
		this.newId = opts.newId ?? (() => crypto.randomUUID());
	}

	/** Whether the store is the cluster's (false also before the first check decided). */
	get usable(): boolean {
		return this.verdict?.state === "ok";
	}

	/** The store's identity when it is usable. */
	get identity(): ClusterIdentity | null {
		return this.verdict?.state === "ok" ? this.verdict.identity : null;
	}

	/** Why the store is not used, or null. */
	get mismatch(): Mismatch | null {
		return this.verdict?.state === "mismatch" ? this.verdict : null;
	}

	/** Checks now and every `interval` ms (unref'ed) until stop(). */
	start(): void {
		this.stop();
		void this.check().catch(() => undefined);
		const interval = this.opts.interval ?? 0;
		if (interval > 0) {
			this.timer = setInterval(() => void this.check().catch(() => undefined), interval);
			this.timer.unref();
		}
	}

	stop(): void {
		if (this.timer) clearInterval(this.timer);
		this.timer = null;
	}

	/** Told after every change of `usable`. */
	onChange(listener: () => void): () => void {
		this.listeners.add(listener);
		return () => this.listeners.delete(listener);
	}

	/** Reads the identity and decides; concurrent callers share one read. Rejects when the store cannot be read. */
	check(): Promise<void> {
		if (!this.inFlight)
			this.inFlight = this.decide().finally(() => {
				this.inFlight = null;
			});
		return this.inFlight;
	}

	/** A fresh check: whether the store is the cluster's now (false when it cannot be read). */
	async verify(): Promise<boolean> {
		try {
			await this.check();
		} catch {
			return false;
		}
		return this.usable;
	}

	/** Resolves when writes may go on; else rejects with StoreIdentityMismatchError. */
	async assertWritable(): Promise<void> {
		if (this.usable) return;
		// Not decided yet, or perhaps adopted by another process since the last check.
		await this.check();
		const m = this.mismatch;
		if (m)
			throw new StoreIdentityMismatchError(m.message, {
				problem: m.problem,
				expected: m.expected,
				found: m.found
			});
	}

	/**
	 * Adopts the store: writes an identity with a larger epoch (adoptedIdentity, from what this
	 * process remembers, then `others`: the agents') in one transaction with `writes` (checked
	 * by `checks`), and remembers it. Resolves to the identity written; false when a check
	 * failed (nothing written).
	 */
	async adopt(
		checks: VersionCheck[],
		writes: DocWrite[],
		others: Array<ClusterIdentity | null> = []
	): Promise<ClusterIdentity | false> {
		const doc = await this.store.get(IDENTITY_COLLECTION, IDENTITY_ID);
		const stored = parseIdentity(doc?.value);
		const next = adoptedIdentity(
			[this.memory.load(), ...others, stored],
			this.newId(),
			this.clock()
		);
		const ok = await this.store.transact(
			[
				...checks,
				{ collection: IDENTITY_COLLECTION, id: IDENTITY_ID, version: doc?.version ?? 0 }
			],
			[...writes, { collection: IDENTITY_COLLECTION, id: IDENTITY_ID, value: next }]
		);
		if (!ok) return false;
		this.accept(next);
		return next;
	}

	private async decide(): Promise<void> {
		for (let attempt = 0; ; attempt++) {
			const doc = await this.store.get(IDENTITY_COLLECTION, IDENTITY_ID);
			const verdict = judgeIdentity(parseIdentity(doc?.value), this.memory.load());
			if (verdict.state === "ok") return this.accept(verdict.identity);
			if (verdict.state === "mismatch")
				return this.refuse({ ...verdict, message: mismatchMessage(verdict) });
			// A brand-new cluster. Written only if still absent (an unreadable document is
			// replaced at its version): of two processes initialising at once, one wins and the
			// other reads the winner's on its next try.
			const identity = newIdentity(this.newId(), this.clock());
			const written = await this.store.cas(
				IDENTITY_COLLECTION,
				IDENTITY_ID,
				identity,
				doc?.version ?? 0
			);
			if (written !== null) {
				this.opts.logger?.info(
					`New cluster: store identity ${identity.clusterId} (epoch 1) written.`
				);
				return this.accept(identity);
			}
			if (attempt >= 2) throw new Error("The store's identity keeps changing.");
		}
	}

	private accept(identity: ClusterIdentity): void {
		const was = this.verdict;
		const remembered = this.memory.load();
		if (remembered?.clusterId !== identity.clusterId || remembered.epoch !== identity.epoch)
			this.memory.save(identity);
		this.verdict = { state: "ok", identity };
		if (was?.state !== "ok") {
			if (was)
				this.opts.logger?.info(`The store is the cluster's again (${describe(identity)}).`);
			this.changed();
		}
	}

	private refuse(m: Mismatch): void {
		const was = this.verdict;
		this.verdict = m;
		if (was?.state !== "mismatch" || was.problem !== m.problem) {
			this.opts.logger?.error(m.message);
			this.changed();
		}
	}

	private changed(): void {
		for (const listener of this.listeners) listener();
	}
}

function describe(id: ClusterIdentity): string {
	return `cluster ${id.clusterId} epoch ${id.epoch}`;
}

const WRITES = new Set<keyof Store>([
	"put",
	"cas",
	"delete",
	"transact",
	"append",
	"appendAt",
	"trimLog"
]);

/** `store`, with every write refused while `guard` does not trust it. */
export function guardedStore(store: Store, guard: IdentityGuard): Store {
	return new Proxy(store, {
		get(target, prop, receiver) {
			const value = Reflect.get(target, prop, receiver);
			if (typeof value !== "function") return value;
			if (!WRITES.has(prop as keyof Store)) return value.bind(target);
			return async (...args: unknown[]) => {
				await guard.assertWritable();
				return (value as (...a: unknown[]) => unknown).apply(target, args);
			};
		}
	});
}

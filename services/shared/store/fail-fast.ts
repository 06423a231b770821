/**
 * A store that fails fast when its server goes silent. Every call is bounded by `timeout`
 * (ISA_STORE_TIMEOUT), a transaction or a group append by SIZE_ALLOWANCE more per item, since a
 * scheduler's group commit of tens of thousands of writes takes seconds to send; a call without an answer (timed out, or the connection is down:
 * StoreUnavailableError without `data.reply`, redis-errors.ts) opens the circuit (circuit.ts).
 * While it is open every call is refused at once with StoreUnavailableError, and so are the
 * calls still waiting when it opened, so that a request making several store calls waits for
 * one timeout at most, not one per call. A ping every `probeInterval` closes it as soon as the
 * store answers again.
 *
 * The refusals stay retryable for the client (503 with Retry-After: its retry after a while is
 * what can help); the broker does not repeat them at once, since STORE_UNAVAILABLE is one of the
 * dependency refusals of services/shared/retry.ts. A store that answers "no" (a refused write, a
 * conflict) keeps the circuit closed: it is reachable.
 */
import { StoreUnavailableError } from "../errors";
import { formatDuration } from "../duration";
import { Circuit } from "./circuit";
import type { Store } from "./store";
import { overlay } from "./overlay";

export interface FailFastOptions {
	/** ms a call may wait for its answer. */
	timeout: number;
	/** ms between two probes while the circuit is open. */
	probeInterval: number;
	/** Consecutive calls without an answer that open the circuit. */
	threshold: number;
	/** Told when the circuit opens (with why) and when it closes again. */
	onChange?: (open: boolean, reason: string) => void;
}

/** ms more a call may wait per document or entry it carries (30,000 writes: 3 s more). */
export const SIZE_ALLOWANCE = 0.1;

/** The items a call carries, for its timeout: a transaction's checks and writes, a group append. */
function size(name: (typeof CALLS)[number], args: unknown[]): number {
	if (name === "transact") return (args[0] as unknown[]).length + (args[1] as unknown[]).length;
	if (name === "appendAt") return (args[2] as unknown[]).length;
	if (name === "versions") return (args[1] as unknown[]).length;
	return 0;
}

/** The methods that reach the backend; `kind` and `close` pass through. */
const CALLS = [
	"get",
	"versions",
	"listVersions",
	"list",
	"put",
	"cas",
	"delete",
	"transact",
	"append",
	"readLog",
	"appendAt",
	"trimLog",
	"ping"
] as const;

/** Whether `err` says the store did not answer (rather than answering no). */
function unanswered(err: unknown): err is StoreUnavailableError {
	return (
		err instanceof StoreUnavailableError &&
		(err.data as { reply?: string } | undefined)?.reply === undefined
	);
}

function refusal(reason: string): StoreUnavailableError {
	return new StoreUnavailableError(reason, { circuit: "open" });
}

export function failFastStore(store: Store, opts: FailFastOptions): Store {
	const circuit = new Circuit(opts.threshold);
	/** Rejecters of the calls waiting for an answer, failed at once when the circuit opens. */
	const waiting = new Set<(err: Error) => void>();
	let probeTimer: NodeJS.Timeout | null = null;
	let closed = false;

	const opened = () => {
		opts.onChange?.(true, circuit.reason);
		for (const reject of [...waiting]) reject(refusal(circuit.reason));
		scheduleProbe();
	};
	const scheduleProbe = () => {
		if (closed || probeTimer) return;
		probeTimer = setTimeout(() => {
			probeTimer = null;
			if (!circuit.startProbe()) return;
			bounded(() => store.ping(), opts.timeout).then(
				() => circuit.answered() && opts.onChange?.(false, ""),
				(err: unknown) => {
					circuit.unanswered(unanswered(err) ? err.message : String(err));
					scheduleProbe();
				}
			);
		}, opts.probeInterval);
		probeTimer.unref();
	};

	/** `call()`, rejected with StoreUnavailableError when no answer came within `ms`. */
	const bounded = <R>(call: () => Promise<R>, ms: number): Promise<R> =>
		new Promise<R>((resolve, reject) => {
			let settled = false;
			const settle = (fn: () => void) => {
				if (settled) return;
				settled = true;
				clearTimeout(timer);
				waiting.delete(fail);
				fn();
			};
			const fail = (err: Error) => settle(() => reject(err));
			// The timeout decides after the loop's next poll: an answer that arrived while the
			// process itself was stalled is read first, and is not taken for silence.
			const timer = setTimeout(
				() =>
					setImmediate(() =>
						fail(
							new StoreUnavailableError(
								`it did not answer within ${formatDuration(ms)}`
							)
						)
					),
				ms
			);
			timer.unref();
			waiting.add(fail);
			let answer: Promise<R>;
			try {
				answer = call();
			} catch (err) {
				answer = Promise.reject(err);
			}
			answer.then(
				value => settle(() => resolve(value)),
				(err: Error) => settle(() => reject(err))
			);
		});

	const guarded =
		<A extends unknown[], R>(name: (typeof CALLS)[number], fn: (...args: A) => Promise<R>) =>
		async (...args: A): Promise<R> => {
			if (!circuit.admits) throw refusal(circuit.reason);
			try {
				const ms = opts.timeout + Math.ceil(size(name, args) * SIZE_ALLOWANCE);
				const value = await bounded(() => fn(...args), ms);
				if (circuit.answered()) opts.onChange?.(false, "");
				return value;
			} catch (err) {
				if (!unanswered(err)) {
					if (circuit.answered()) opts.onChange?.(false, "");
					throw err;
				}
				if ((err.data as { circuit?: string }).circuit === "open") throw err;
				const message = (err.data as { reason: string }).reason;
				if (circuit.unanswered(message)) {
					opened();
					throw refusal(message);
				}
				throw circuit.admits ? err : refusal(message);
			}
		};

	const overrides: Partial<Store> = {
		async close() {
			closed = true;
			if (probeTimer) clearTimeout(probeTimer);
			probeTimer = null;
			await store.close();
		}
	};
	for (const name of CALLS)
		(overrides as Record<string, unknown>)[name] = guarded(
			name,
			(store[name] as (...args: unknown[]) => Promise<unknown>).bind(store)
		);
	return overlay(store, overrides);
}

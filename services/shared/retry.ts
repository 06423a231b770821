/**
 * Retries only where a repeat is safe. Moleculer's own Retry middleware repeats every call whose
 * error is `retryable`, a create that timed out (and may have run) as well as moleculer-web's
 * `rest` action, whose second run finds the request's URL already cut to the route's rest and
 * answers a bare 404. This one repeats a call only when its action declares that running it
 * twice does no harm (`idempotent` on the action schema):
 *
 * - `true`: a read, or a change that is the same when made twice (PUT config/key, DELETE);
 * - `"with-key"`: a change that is the same only with the caller's idempotency key
 *   (`ctx.meta.idempotencyKey`, the Idempotency-Key header): `scheduler.create`;
 * - `false` or absent: never repeated. moleculer-web's `rest` declares nothing, so neither the
 *   gateway's HTTP handler nor anything it does on the way is ever run twice for one request.
 *
 * Which errors (`worthRetrying`), how often and how long between tries stay the broker's
 * `retryPolicy` (moleculer.config.ts: `check`, `retries`, exponential `delay` to `maxDelay`); a
 * caller's `retries` call option sets how many tries, not whether.
 */
import type {
	ActionHandler,
	ActionSchema,
	CallingOptions,
	Context,
	Errors,
	GenericObject,
	Middleware,
	RetryPolicyOptions,
	ServiceBroker
} from "moleculer";

/** Whether an action may run twice for one call (see the module's comment). */
export type Idempotency = boolean | "with-key";

declare module "moleculer" {
	interface ActionSchema {
		/** Whether a failed call of this action may be repeated (services/shared/retry.ts). */
		idempotent?: Idempotency;
	}
}

/** What decides one retry: plain data, so that the decision is a pure function. */
export interface RetryInput {
	idempotent: Idempotency | undefined;
	/** The call carries an idempotency key. */
	hasKey: boolean;
	/** The retry policy's `check` said the error may pass (in practice: `err.retryable`). */
	retryable: boolean;
	/** Retries already made for this call. */
	attempts: number;
	/** Retries allowed for this call. */
	maxAttempts: number;
}

/**
 * 503 types that a working service answers about a dependency that every node shares: /ready's,
 * the store is down, refuses writes or is not the cluster's, the audit log is down, a node the
 * call needs is down, no endpoint of a registered
 * service is healthy, no node offers an action it calls. Repeating the call at once, here or on
 * another node, meets the same dependency: the client is told (with Retry-After) instead, and
 * the broker's circuit breaker does not count them against the callee (moleculer.config.ts).
 */
export const DEPENDENCY_REFUSALS: ReadonlySet<string> = new Set([
	"NOT_READY",
	"STORE_IDENTITY_MISMATCH",
	"STORE_UNAVAILABLE",
	"STORE_REFUSED",
	"AUDIT_UNAVAILABLE",
	"NODE_DOWN",
	"SERVICE_UNAVAILABLE",
	"SERVICE_NOT_AVAILABLE"
]);

/**
 * The retry policy's `check`: a fault that may pass (`retryable`: a timeout, a node that left)
 * and is not a dependency's refusal.
 */
export function worthRetrying(err: unknown): boolean {
	const e = err as { retryable?: unknown; type?: unknown } | null;
	return (
		e?.retryable === true && !(typeof e.type === "string" && DEPENDENCY_REFUSALS.has(e.type))
	);
}

/** Whether running the action again for the same call does no harm. */
export function safeToRepeat(idempotent: Idempotency | undefined, hasKey: boolean): boolean {
	return idempotent === true || (idempotent === "with-key" && hasKey);
}

/** Whether the failed call is tried once more. */
export function shouldRetry(input: RetryInput): boolean {
	return (
		input.retryable &&
		input.attempts < input.maxAttempts &&
		safeToRepeat(input.idempotent, input.hasKey)
	);
}

/** Milliseconds before the `attempt`-th retry (1 = the first): exponential, capped. */
export function retryDelay(
	attempt: number,
	policy: Pick<RetryPolicyOptions, "delay" | "maxDelay" | "factor">
): number {
	const delay = policy.delay ?? 100;
	return Math.min(delay * Math.pow(policy.factor ?? 2, attempt - 1), policy.maxDelay ?? delay);
}

type RetryContext = Context<GenericObject, { idempotencyKey?: string }> & {
	_retryAttempts?: number;
};

/**
 * `handler` wrapped so that a failed call is made again when `shouldRetry` says so, after
 * `retryDelay`, with the same context (request ID, meta, level).
 */
function retrying(broker: ServiceBroker, handler: ActionHandler, action: ActionSchema) {
	const policy: RetryPolicyOptions = {
		...broker.options.retryPolicy,
		...(action.retryPolicy ?? {})
	};
	if (!policy.enabled) return handler;
	const check = policy.check ?? ((err: Error) => !!(err as { retryable?: boolean }).retryable);
	return (ctx: RetryContext): Promise<unknown> =>
		Promise.resolve(handler(ctx)).catch((err: Error) => {
			// A callee's own wrapper of a remote call: the caller's node decides.
			if (ctx.nodeID !== broker.nodeID && ctx.endpoint?.local) throw err;
			const attempts = ctx._retryAttempts ?? 0;
			const retry = shouldRetry({
				idempotent: action.idempotent,
				hasKey: typeof ctx.meta?.idempotencyKey === "string",
				retryable: !!check(err as Errors.MoleculerRetryableError),
				attempts,
				maxAttempts:
					typeof ctx.options.retries === "number"
						? ctx.options.retries
						: (policy.retries ?? 0)
			});
			if (!retry) throw err;
			const attempt = attempts + 1;
			const delay = retryDelay(attempt, policy);
			broker.logger.warn(
				`Retry to call '${action.name}' action after ${delay} ms (${err.message})...`,
				{ requestID: ctx.requestID, attempts: attempt }
			);
			return new Promise(resolve => setTimeout(resolve, delay)).then(() => {
				const next = ctx.copy() as RetryContext;
				next._retryAttempts = attempt;
				// Moleculer's calling option for "this context" (not in its types).
				const opts = { ctx: next } as CallingOptions;
				if (action.visibility === "private")
					return ctx.service!.actions[action.rawName as string](ctx.params, opts);
				return broker.call(action.name as string, ctx.params, opts);
			});
		});
}

/**
 * The middleware, in Moleculer's "Retry" place (moleculer.config.ts). As Moleculer's, it wraps
 * local and remote actions and runs on the caller's node only: a callee that received a remote
 * call hands its error back, and the caller decides.
 */
export function SafeRetry(): Middleware {
	// Moleculer calls a middleware's hooks with the broker as `this`.
	function wrap(this: ServiceBroker, handler: ActionHandler, action: ActionSchema) {
		return retrying(this, handler, action);
	}
	return { localAction: wrap, remoteAction: wrap };
}

/**
 * The broker configuration of every IsA Cloud node. Defaults live here once; environment
 * variables (services/shared/env.ts, the README's table) override them.
 */
import type { BrokerOptions, Errors, Middleware } from "moleculer";
import { IsaEnv, loadEnv } from "./services/shared/env";
import { CapacityStrategy } from "./strategies/capacity";
import { IsaPrometheusReporter } from "./reporters/prometheus";
import { replCommands } from "./repl/commands";
import { createValidator } from "./services/shared/validator";
import { RediscoverOnReconnect } from "./services/shared/transport";
import { DEPENDENCY_REFUSALS, SafeRetry, worthRetrying } from "./services/shared/retry";

/**
 * Moleculer's internal middlewares in its own order. "Metrics" (per-action request counters and
 * latency histograms) is left out unless ISA_REQUEST_METRICS=true: it hashes label sets on every
 * call, ~3.7 µs each, which took a third of the gateway's throughput in benchmark/ (the rest of
 * Moleculer's metrics — process, event loop, transporter, registry — stay on and are served on
 * /metrics either way). Moleculer's "Retry" is replaced by SafeRetry (services/shared/retry.ts),
 * in the same place: it repeats only the calls of actions that declare themselves idempotent.
 */
export function internalMiddlewares(env: IsaEnv): Array<string | Middleware> {
	return [
		"ActionHook",
		"Validator",
		"Bulkhead",
		"Cacher",
		"ContextTracker",
		"CircuitBreaker",
		"Timeout",
		SafeRetry(),
		"Fallback",
		"ErrorHandler",
		"Tracing",
		...(env.requestMetrics ? ["Metrics"] : []),
		"Debounce",
		"Throttle"
	];
}

export function createBrokerConfig(env: IsaEnv = loadEnv()): BrokerOptions {
	return {
		namespace: env.namespace,
		nodeID: env.nodeID,
		transporter: env.transporter ?? undefined,

		logger: {
			type: "Console",
			options: { level: env.logLevel, formatter: "short", colors: process.stdout.isTTY }
		},

		// Moleculer waits forever by default; a call to a hung node must fail (and be retried when
		// its action is idempotent, services/shared/retry.ts).
		requestTimeout: env.requestTimeout,
		retryPolicy: {
			enabled: true,
			retries: 3,
			delay: 100,
			maxDelay: 1000,
			factor: 2,
			check: worthRetrying
		},
		circuitBreaker: {
			enabled: true,
			threshold: 0.5,
			minRequestCount: 20,
			windowTime: 60,
			halfOpenTime: 10 * 1000,
			// Client mistakes (4xx) say nothing about the callee's health, nor does a healthy
			// callee's word that a dependency is not usable (/ready's 503, the store is down or
			// read-only, no endpoint is healthy): an open breaker would answer those with
			// "not available" instead of the reason.
			check: (err: Errors.MoleculerError | Error) =>
				((err as Errors.MoleculerError)?.code ?? 500) >= 500 &&
				!DEPENDENCY_REFUSALS.has((err as Errors.MoleculerError)?.type)
		},
		// Moleculer's defaults notice a dead node after 30 s; the inventory is faster still
		// (3 missed reports), and these settle the registry soon after.
		heartbeatInterval: 2,
		heartbeatTimeout: 6,
		// Calls go to the replica on the node with the most free CPU and memory (from the agents'
		// reports), round-robin while reports are missing; a local replica is always preferred.
		registry: {
			strategy: CapacityStrategy,
			preferLocal: true
		},

		// fastest-validator, with an enum error that lists the allowed values.
		validator: createValidator(),
		internalMiddlewares: false,
		middlewares: [...internalMiddlewares(env), RediscoverOnReconnect()],
		metrics: {
			enabled: true,
			reporter: [new IsaPrometheusReporter({ port: env.metricsPort, host: env.host }) as any]
		},
		tracing: { enabled: false },

		replCommands
	};
}

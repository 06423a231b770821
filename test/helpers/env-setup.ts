/**
 * Jest's setup for every spec: the gateways that specs start, in-process or as processes
 * (startNode hands its environment on), get rate limits far above what any spec sends. Specs
 * send requests as fast as one process can, as one tenant and from 127.0.0.1, past the default
 * 50 reads/s and 20 failed tokens a minute, and test something else. The limits themselves are
 * tested with their own values (test/integration/rate-limits.spec.ts sets them explicitly, and
 * the unit tests of services/gateway/rate-limits.ts and env.ts).
 */
for (const name of ["ISA_RATE_READS", "ISA_RATE_WRITES", "ISA_RATE_AUTH_FAILURES"])
	process.env[name] ??= "1000000";

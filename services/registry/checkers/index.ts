/**
 * The health checkers by resource kind, pluggable the way Moleculer's strategies are
 * (src/strategies/index.js): `register` adds or replaces the checker of a kind, `resolve` finds
 * one case-insensitively, and `runCheck` runs the one a target names. Each built-in kind has its
 * module beside this one (postgres.ts checks PostgreSQL, and so on); what they share is base.ts.
 */
import { Errors } from "moleculer";
import type { CheckResult, CheckTarget, HealthChecker } from "./base";
import { DuckDbChecker } from "./duckdb";
import { FilesystemChecker } from "./filesystem";
import { HttpChecker } from "./http";
import { NatsChecker } from "./nats";
import { Neo4jChecker } from "./neo4j";
import { ObjectStoreChecker } from "./object-store";
import { PostgresChecker } from "./postgres";
import { RedisChecker } from "./redis";
import { TcpChecker } from "./tcp";
import { VectorDbChecker } from "./vector-db";

/** A checker: constructed once per check, so it may keep per-check state in fields. */
export type CheckerClass = new () => HealthChecker;

const checkers = new Map<string, CheckerClass>([
	["postgres", PostgresChecker],
	["redis", RedisChecker],
	["nats", NatsChecker],
	["http", HttpChecker],
	["tcp", TcpChecker],
	["neo4j", Neo4jChecker],
	["vector_db", VectorDbChecker],
	["object_store", ObjectStoreChecker],
	["duckdb", DuckDbChecker],
	["filesystem", FilesystemChecker]
]);

/** Adds the checker of a type, or replaces the one of that name (case-insensitive). */
export function register(type: string, cls: CheckerClass): void {
	checkers.set(type.toLowerCase(), cls);
}

/** The checker registered for `type` (case-insensitive); throws for an unknown type. */
export function resolve(type: string): CheckerClass {
	const cls = checkers.get(type.toLowerCase());
	if (!cls) {
		throw new Errors.BrokerOptionsError(`Invalid health checker type '${type}'.`, { type });
	}
	return cls;
}

/** Checks a target with the checker of its type; an unknown type is a failed check too. */
export async function runCheck(target: CheckTarget): Promise<CheckResult> {
	const Checker = checkers.get(target.type.toLowerCase());
	if (!Checker) {
		return { ok: false, latencyMs: 0, error: `no health checker for type '${target.type}'` };
	}
	return new Checker().check(target);
}

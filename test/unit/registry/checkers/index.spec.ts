import { Errors } from "moleculer";
import {
	CheckResult,
	CheckTarget,
	HealthChecker
} from "../../../../services/registry/checkers/base";
import { register, resolve, runCheck } from "../../../../services/registry/checkers";
import { DuckDbChecker } from "../../../../services/registry/checkers/duckdb";
import { FilesystemChecker } from "../../../../services/registry/checkers/filesystem";
import { HttpChecker } from "../../../../services/registry/checkers/http";
import { NatsChecker } from "../../../../services/registry/checkers/nats";
import { Neo4jChecker } from "../../../../services/registry/checkers/neo4j";
import { ObjectStoreChecker } from "../../../../services/registry/checkers/object-store";
import { PostgresChecker } from "../../../../services/registry/checkers/postgres";
import { RedisChecker } from "../../../../services/registry/checkers/redis";
import { TcpChecker } from "../../../../services/registry/checkers/tcp";
import { VectorDbChecker } from "../../../../services/registry/checkers/vector-db";
import { RESOURCE_TYPES } from "../../../../services/registry/model";

const target = (type: string): CheckTarget => ({
	type,
	endpoint: "anything",
	config: {},
	timeoutMs: 100
});

describe("the checker index", () => {
	it.each([
		["postgres", PostgresChecker],
		["neo4j", Neo4jChecker],
		["redis", RedisChecker],
		["nats", NatsChecker],
		["http", HttpChecker],
		["tcp", TcpChecker],
		["duckdb", DuckDbChecker],
		["filesystem", FilesystemChecker],
		["object_store", ObjectStoreChecker],
		["vector_db", VectorDbChecker]
	])("resolves %s to its own module's checker", (type, cls) => {
		expect(resolve(type)).toBe(cls);
		expect(resolve(type.toUpperCase())).toBe(cls);
	});

	it("has a checker for every resource type the API accepts", () => {
		for (const type of RESOURCE_TYPES) expect(() => resolve(type)).not.toThrow();
	});

	it("throws BrokerOptionsError with the type for an unknown one", () => {
		let thrown: unknown;
		try {
			resolve("mongo");
		} catch (err) {
			thrown = err;
		}
		expect(thrown).toBeInstanceOf(Errors.BrokerOptionsError);
		expect(thrown).toMatchObject({
			message: "Invalid health checker type 'mongo'.",
			data: { type: "mongo" }
		});
	});

	it("registers a new type, and runCheck constructs it once per check", async () => {
		const seen: CheckTarget[] = [];
		let instances = 0;
		class Counting extends HealthChecker {
			constructor() {
				super();
				instances++;
			}
			async check(t: CheckTarget): Promise<CheckResult> {
				seen.push(t);
				return { ok: true, latencyMs: 1 };
			}
		}
		register("Unit_Counting", Counting);
		expect(resolve("unit_counting")).toBe(Counting);
		await runCheck(target("UNIT_COUNTING"));
		await runCheck(target("unit_counting"));
		expect(instances).toBe(2);
		expect(seen.map(t => t.type)).toEqual(["UNIT_COUNTING", "unit_counting"]);
	});

	it("replaces the checker of a registered type", async () => {
		class Up extends HealthChecker {
			async check(): Promise<CheckResult> {
				return { ok: true, latencyMs: 0 };
			}
		}
		class Down extends HealthChecker {
			async check(): Promise<CheckResult> {
				return { ok: false, latencyMs: 0, error: "down" };
			}
		}
		register("unit_swap", Up);
		register("UNIT_SWAP", Down);
		expect(resolve("unit_swap")).toBe(Down);
		expect(await runCheck(target("unit_swap"))).toEqual({
			ok: false,
			latencyMs: 0,
			error: "down"
		});
	});

	it("reports an unknown type as a failed check, without throwing", async () => {
		expect(await runCheck(target("mongo"))).toEqual({
			ok: false,
			latencyMs: 0,
			error: "no health checker for type 'mongo'"
		});
	});
});

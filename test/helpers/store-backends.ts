/**
 * The store backends a test runs against: each gives a test an empty place to keep data (a new
 * SQLite file, a new Redis key prefix) and opens as many stores on it as the test wants, to play
 * several processes.
 */
import fs from "fs";
import os from "os";
import path from "path";
import { RedisStore } from "../../services/shared/store/redis";
import { SqliteStore } from "../../services/shared/store/sqlite";
import type { Store } from "../../services/shared/store/store";
import { startRedis, TestServer } from "./servers";

export interface Backend {
	name: string;
	start(): Promise<void>;
	stop(): Promise<void>;
	/** An empty place to keep data; each call of the returned function opens one more store on it. */
	fresh(): () => Store;
}

export function sqliteBackend(): Backend {
	let dir = "";
	let n = 0;
	return {
		name: "sqlite",
		async start() {
			dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-store-"));
		},
		async stop() {
			fs.rmSync(dir, { recursive: true, force: true });
		},
		fresh() {
			// A directory that does not exist yet: the store must create it.
			const file = path.join(dir, `db${++n}`, "store.db");
			return () => new SqliteStore(file);
		}
	};
}

export function redisBackend(): Backend {
	let server: TestServer;
	let n = 0;
	return {
		name: "redis",
		async start() {
			server = await startRedis();
		},
		stop: () => server.stop(),
		fresh() {
			const prefix = `t${++n}`;
			return () => new RedisStore(server.url, { prefix });
		}
	};
}

/**
 * ConfigMixin against the real config service, brokers in one process over Moleculer's in-memory
 * transporter: a config node and watcher nodes whose service follows two keys.
 */
import fs from "fs";
import os from "os";
import path from "path";
import { ServiceBroker } from "moleculer";
import ConfigMixin from "../../../mixins/config.mixin";
import ConfigService, { ConfigRecord } from "../../../services/config.service";
import { COLLECTIONS } from "../../../services/shared/collections";
import { EVENTS } from "../../../services/shared/events";
import { openStore } from "../../../services/shared/store";
import { eventually } from "../../helpers/cluster";
import { withSettings } from "../../helpers/services";

const DEFAULTS = { interval: 100, mode: "fast" };

interface Watcher {
	broker: ServiceBroker;
	settings: typeof DEFAULTS;
	/** What the service's own started() saw. */
	atStart: typeof DEFAULTS;
	/** Every configChanged(name, value, old) call. */
	changes: [string, unknown, unknown][];
}

describe("ConfigMixin", () => {
	/** Each test gets its own store, namespace and brokers, so no test sees another's keys. */
	let run = 0;
	let dir: string;
	let store: string;
	let namespace: string;
	let brokers: ServiceBroker[];
	let config: ServiceBroker;
	const storePrefix = "mixin-test";

	function node(nodeID: string): ServiceBroker {
		const broker = new ServiceBroker({
			nodeID,
			namespace,
			transporter: "Fake",
			logger: false,
			heartbeatInterval: 1,
			heartbeatTimeout: 3
		});
		brokers.push(broker);
		return broker;
	}

	async function startConfig(nodeID: string): Promise<ServiceBroker> {
		const broker = node(nodeID);
		broker.createService(withSettings(ConfigService, { store, storePrefix }));
		await broker.start();
		return broker;
	}

	async function startWatcher(nodeID: string): Promise<Watcher> {
		const broker = node(nodeID);
		const w = { broker, changes: [] } as unknown as Watcher;
		const svc = broker.createService({
			name: "watcher",
			mixins: [
				ConfigMixin(
					{ interval: "watch.interval", mode: "watch.mode" },
					{ waitTimeout: 300, resyncInterval: 0 }
				)
			],
			settings: { ...DEFAULTS },
			methods: {
				configChanged(name: string, value: unknown, old: unknown) {
					w.changes.push([name, value, old]);
				}
			},
			started() {
				w.atStart = { ...this.settings } as typeof DEFAULTS;
			}
		});
		w.settings = svc.settings as typeof DEFAULTS;
		await broker.start();
		return w;
	}

	const set = (key: string, value: unknown) =>
		config.call<ConfigRecord, { key: string; value: unknown }>("config.set", { key, value });

	/** Sets `watch.<name>` and waits until the watcher's setting holds the value. */
	async function setAndWait<K extends keyof typeof DEFAULTS>(
		w: Watcher,
		name: K,
		value: (typeof DEFAULTS)[K]
	) {
		await set(`watch.${name}`, value);
		await eventually(async () => w.settings[name] === value, 2000, `${name} ${value}`);
	}

	/** A config node with `watch.mode` set to "slow" and `watch.interval` not set. */
	beforeEach(async () => {
		run++;
		dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-config-mixin-"));
		store = path.join(dir, "isa.db");
		namespace = `config-mixin-${process.pid}-${run}`;
		brokers = [];
		config = await startConfig("config-1");
		await set("watch.mode", "slow");
	});

	afterEach(async () => {
		await Promise.all(brokers.map(b => b.stop()));
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("applies a value set before start ahead of the service's own started(), keeps the defaults of unset keys", async () => {
		const w = await startWatcher("watcher-1");
		expect(w.atStart).toEqual({ interval: 100, mode: "slow" });
		expect(w.settings).toEqual({ interval: 100, mode: "slow" });
		// Values already set when the service starts do not call configChanged.
		expect(w.changes).toEqual([]);
	});

	it("applies a change live and calls configChanged with the new and the old value", async () => {
		const w = await startWatcher("watcher-1");
		await set("watch.interval", 250);
		await eventually(async () => w.settings.interval === 250, 2000, "interval 250");
		expect(w.changes).toEqual([["interval", 250, 100]]);
	});

	it("goes back to the default when the key is deleted", async () => {
		const w = await startWatcher("watcher-1");
		await setAndWait(w, "interval", 250);

		await config.call("config.remove", { key: "watch.interval" });
		await eventually(async () => w.settings.interval === 100, 2000, "interval back to 100");
		expect(w.changes).toEqual([
			["interval", 250, 100],
			["interval", 100, 250]
		]);
	});

	it("follows a key deleted and set again (versions keep growing)", async () => {
		const w = await startWatcher("watcher-1");
		// Version 1 sets the key, version 2 deletes it.
		await setAndWait(w, "interval", 250);
		await config.call("config.remove", { key: "watch.interval" });
		await eventually(async () => w.settings.interval === 100, 2000, "interval back to 100");

		const { version } = await set("watch.interval", 300);
		expect(version).toBe(3);
		await eventually(async () => w.settings.interval === 300, 2000, "interval 300");
	});

	it("ignores an event older than what it applied", async () => {
		const w = await startWatcher("watcher-1");
		const { version } = await set("watch.mode", "slower");
		await eventually(async () => w.settings.mode === "slower", 2000, "mode slower");
		// An event with an older version than the one applied, as a slow config node could
		// deliver after a newer write.
		await config.broadcast(EVENTS.configChanged, {
			key: "watch.mode",
			value: "stale",
			version: version - 1,
			deleted: false
		});
		await set("watch.mode", "slowest");
		await eventually(async () => w.settings.mode === "slowest", 2000, "mode slowest");
		expect(w.changes.map(c => c[1])).not.toContain("stale");
	});

	it("refuses a value of another kind than the default and keeps the setting", async () => {
		const w = await startWatcher("watcher-1");
		await setAndWait(w, "interval", 300);

		await set("watch.interval", "soon");
		// Events are handled in order, so once the watcher applied this later change of the
		// other key, it has also handled (and refused) "soon".
		await set("watch.mode", "fast");
		await eventually(async () => w.settings.mode === "fast", 2000, "mode fast");
		expect(w.settings.interval).toBe(300);
	});

	it("keeps the defaults without a config service, and reads the keys when one appears", async () => {
		const w = await startWatcher("watcher-1");
		await setAndWait(w, "interval", 300);
		await setAndWait(w, "mode", "fast");

		await config.stop();
		// Written to the store directly while no config service runs, so no event announces it:
		// the watchers can only learn of it by reading the keys when a config service appears.
		const direct = openStore(store, { prefix: storePrefix });
		const doc = await direct.get<Record<string, unknown>>(COLLECTIONS.config, "watch.interval");
		await direct.put(COLLECTIONS.config, "watch.interval", { ...doc!.value, value: 500 });
		await direct.close();

		const late = await startWatcher("watcher-2");
		expect(late.settings).toEqual(DEFAULTS);

		config = await startConfig("config-2");
		await eventually(
			async () => late.settings.interval === 500 && w.settings.interval === 500,
			3000,
			"both watchers at interval 500"
		);
		expect(late.settings.mode).toBe("fast");
		expect(late.changes).toEqual([["interval", 500, 100]]);
		expect(w.changes.at(-1)).toEqual(["interval", 500, 300]);
	});
});

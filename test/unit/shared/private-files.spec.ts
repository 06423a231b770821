import fs from "fs";
import os from "os";
import path from "path";
import { loadOrCreateSecret } from "../../../services/gateway/secret";
import {
	ensurePrivateDir,
	ensurePrivateFile,
	isPrivateDirMode,
	loadOrCreateSecretFile,
	writeSecretFile
} from "../../../services/shared/private-files";
import { SqliteStore } from "../../../services/shared/store";

const mode = (p: string) => fs.statSync(p).mode & 0o777;

describe("private files", () => {
	let base: string;
	let warnings: string[];
	const warn = (message: string) => warnings.push(message);

	beforeEach(() => {
		base = fs.mkdtempSync(path.join(os.tmpdir(), "isa-private-"));
		warnings = [];
	});
	afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

	it.each([
		["0700", true],
		["0710", true],
		["0750", false],
		["0701", false],
		["0755", false],
		["0770", false]
	])("a data directory of mode %s is private: %s", (m, ok) => {
		expect(isPrivateDirMode(parseInt(m, 8))).toBe(ok);
	});

	it("creates the data directory 0700, its missing parents with the usual mode", () => {
		const dir = path.join(base, "var", "isa");
		ensurePrivateDir(dir, warn);
		expect(mode(dir)).toBe(0o700);
		expect(mode(path.dirname(dir)) & 0o005).toBe(0o005);
		expect(warnings).toEqual([]);
	});

	it("tightens a looser data directory and a looser secret, saying so", () => {
		const dir = path.join(base, "data");
		fs.mkdirSync(dir, { mode: 0o755 });
		fs.chmodSync(dir, 0o755);
		fs.writeFileSync(path.join(dir, "jwt-secret"), "s3cret\n", { mode: 0o644 });
		fs.chmodSync(path.join(dir, "jwt-secret"), 0o644);
		expect(loadOrCreateSecret(dir, warn)).toEqual({ secret: "s3cret", created: false });
		expect(mode(dir)).toBe(0o700);
		expect(mode(path.join(dir, "jwt-secret"))).toBe(0o600);
		expect(warnings).toEqual([
			`${dir} was mode 0755; set to 0700 (owner only).`,
			`${path.join(dir, "jwt-secret")} was mode 0644; set to 0600 (owner only).`
		]);
	});

	it("makes a secret 0600 once and keeps it", () => {
		const dir = path.join(base, "data");
		const first = loadOrCreateSecretFile(dir, "audit-key", () => Buffer.from("k1"), warn);
		expect(first).toEqual({ value: Buffer.from("k1"), created: true });
		expect(mode(path.join(dir, "audit-key"))).toBe(0o600);
		expect(mode(dir)).toBe(0o700);
		expect(loadOrCreateSecretFile(dir, "audit-key", () => "k2")).toEqual({
			value: Buffer.from("k1"),
			created: false
		});
		expect(writeSecretFile(dir, "audit-key", "k3")).toBe(false);
		expect(fs.readFileSync(path.join(dir, "audit-key"), "utf8")).toBe("k1");
		expect(warnings).toEqual([]);
	});

	it("leaves a missing file missing", () => {
		ensurePrivateFile(path.join(base, "none"), warn);
		expect(fs.existsSync(path.join(base, "none"))).toBe(false);
	});

	it("keeps the embedded store's file 0600, tightening an existing one", async () => {
		const fresh = path.join(base, "fresh", "isa.db");
		const store = new SqliteStore(fresh, { warn });
		await store.close();
		expect(mode(fresh)).toBe(0o600);
		expect(mode(path.dirname(fresh))).toBe(0o700);

		const old = path.join(base, "old.db");
		fs.writeFileSync(old, "");
		fs.chmodSync(old, 0o644);
		const again = new SqliteStore(`sqlite://${old}`, { warn });
		await again.close();
		expect(mode(old)).toBe(0o600);
		expect(warnings).toEqual([`${old} was mode 0644; set to 0600 (owner only).`]);
	});
});

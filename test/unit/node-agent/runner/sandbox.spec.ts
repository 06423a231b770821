import fs from "fs";
import os from "os";
import path from "path";
import {
	blockedAncestor,
	clearSandboxes,
	passwdEntry,
	pathSegment,
	prepareSandbox,
	removeSandbox,
	resolveWorkloadUser,
	sandboxDir,
	sandboxRoot,
	UserLookup,
	WorkloadUser
} from "../../../../node-agent/runner/sandbox";
import { ERR_INVALID, InvalidInputError } from "../../../../services/shared/errors";

const PASSWD = [
	"root:x:0:0:root:/root:/bin/bash",
	"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
	"isa-work:x:990:985::/home/isa-work:/bin/sh",
	"# a comment",
	"broken:x:notanumber:1::/:/bin/sh",
	""
].join("\n");

function lookup(uid: number): UserLookup {
	return { uid, find: name => passwdEntry(PASSWD, name) };
}

describe("passwdEntry", () => {
	it("finds a user's uid and gid by name", () => {
		expect(passwdEntry(PASSWD, "isa-work")).toEqual({ name: "isa-work", uid: 990, gid: 985 });
	});

	it.each(["ghost", "broken", "", "isa"])("knows no user %j", name => {
		expect(passwdEntry(PASSWD, name)).toBeNull();
	});
});

describe("resolveWorkloadUser", () => {
	it("as root: nobody when unset", () => {
		expect(resolveWorkloadUser(null, lookup(0))).toEqual({
			name: "nobody",
			uid: 65534,
			gid: 65534
		});
	});

	it("as root: the named user, or uid[:gid]", () => {
		expect(resolveWorkloadUser(" isa-work ", lookup(0))).toEqual({
			name: "isa-work",
			uid: 990,
			gid: 985
		});
		expect(resolveWorkloadUser("1234:5678", lookup(0))).toEqual({
			name: "1234:5678",
			uid: 1234,
			gid: 5678
		});
		expect(resolveWorkloadUser("1234", lookup(0))).toMatchObject({ uid: 1234, gid: 1234 });
	});

	it("as root: an unknown user stops the agent with the reason", () => {
		const err = (() => {
			try {
				return resolveWorkloadUser("ghost", lookup(0));
			} catch (e) {
				return e;
			}
		})();
		expect(err).toBeInstanceOf(InvalidInputError);
		expect(err).toMatchObject({
			code: 422,
			type: ERR_INVALID,
			data: { name: "ISA_WORKLOAD_USER", value: "ghost" }
		});
		expect((err as Error).message).toContain("ISA_WORKLOAD_USER='ghost' is not a user");
		expect(() => resolveWorkloadUser("12:ab", lookup(0))).toThrow(/'12:ab' is not a user/);
	});

	it("as root with no nobody on the machine: says so", () => {
		const bare: UserLookup = { uid: 0, find: () => null };
		expect(() => resolveWorkloadUser(null, bare)).toThrow(/'nobody' is not a user/);
	});

	it("not root: the agent's own user (null), unset or naming that user", () => {
		expect(resolveWorkloadUser(null, lookup(990))).toBeNull();
		expect(resolveWorkloadUser("isa-work", lookup(990))).toBeNull();
		expect(resolveWorkloadUser("990", lookup(990))).toBeNull();
	});

	it("not root: a setting naming someone else is refused, not silently ignored", () => {
		expect(() => resolveWorkloadUser("nobody", lookup(990))).toThrow(
			expect.objectContaining({
				type: ERR_INVALID,
				data: { name: "ISA_WORKLOAD_USER", value: "nobody", uid: 990 },
				message: expect.stringContaining("needs the agent to run as root")
			})
		);
		expect(() => resolveWorkloadUser("ghost", lookup(990))).toThrow(
			/needs the agent to run as root/
		);
	});
});

describe("sandbox paths", () => {
	it("one directory per node, workload and replica under the data directory", () => {
		const root = sandboxRoot("/var/lib/isa", "gpu-1");
		expect(root).toBe("/var/lib/isa/workloads/gpu-1");
		expect(sandboxDir(root, "3f1c-9a", 2)).toBe("/var/lib/isa/workloads/gpu-1/3f1c-9a/2");
	});

	it.each([
		["..", "%2E%2E"],
		[".", "%2E"],
		["", "%00"],
		["a/../../b", "a%2F..%2F..%2Fb"],
		["node 1", "node%201"],
		["%2E", "%252E"]
	])("%j is the single segment %j", (name, segment) => {
		expect(pathSegment(name)).toBe(segment);
		expect(path.join("/d", pathSegment(name))).toBe(`/d/${segment}`);
	});
});

describe("prepareSandbox and removeSandbox", () => {
	let dataDir: string;
	beforeEach(() => {
		dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-sandbox-"));
	});
	afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

	const mode = (p: string) => fs.statSync(p).mode & 0o777;

	it("makes an empty 0700 directory, wiping an earlier one", () => {
		const dir = sandboxDir(sandboxRoot(dataDir, "n1"), "w1", 0);
		fs.mkdirSync(dir, { recursive: true });
		fs.writeFileSync(path.join(dir, "old"), "x");
		prepareSandbox(dataDir, dir, null);
		expect(fs.readdirSync(dir)).toEqual([]);
		expect(mode(dir)).toBe(0o700);
		expect(mode(path.dirname(dir))).toBe(0o700);
	});

	const asRoot = process.getuid?.() === 0 ? it : it.skip;
	asRoot("as root: owned by the workload user, the path to it passable by its group only", () => {
		const user: WorkloadUser = { name: "nobody", uid: 65534, gid: 65534 };
		const dir = sandboxDir(sandboxRoot(dataDir, "n1"), "w1", 0);
		prepareSandbox(dataDir, dir, user);
		expect(fs.statSync(dir)).toMatchObject({ uid: 65534, gid: 65534 });
		expect(mode(dir)).toBe(0o700);
		for (let d = path.dirname(dir); d.length >= dataDir.length; d = path.dirname(d)) {
			expect([d, fs.statSync(d).uid, fs.statSync(d).gid, mode(d)]).toEqual([
				d,
				0,
				65534,
				0o710
			]);
		}
	});

	it("removes a replica's directory, and the workload's once it is empty", () => {
		const root = sandboxRoot(dataDir, "n1");
		const [a, b] = [0, 1].map(r => sandboxDir(root, "w1", r));
		prepareSandbox(dataDir, a, null);
		prepareSandbox(dataDir, b, null);
		removeSandbox(a);
		expect(fs.readdirSync(path.join(root, "w1"))).toEqual(["1"]);
		removeSandbox(b);
		expect(fs.readdirSync(root)).toEqual([]);
		removeSandbox(b);
	});

	it("clears what a killed agent left of this node only", () => {
		const mine = sandboxDir(sandboxRoot(dataDir, "n1"), "w1", 0);
		const theirs = sandboxDir(sandboxRoot(dataDir, "n2"), "w1", 0);
		prepareSandbox(dataDir, mine, null);
		prepareSandbox(dataDir, theirs, null);
		clearSandboxes(sandboxRoot(dataDir, "n1"));
		expect(fs.existsSync(mine)).toBe(false);
		expect(fs.existsSync(theirs)).toBe(true);
	});

	it("keeps the directories of adopted replicas, with what they wrote", () => {
		const root = sandboxRoot(dataDir, "n3");
		const adopted = sandboxDir(root, "w1", 1);
		const left = [sandboxDir(root, "w1", 0), sandboxDir(root, "w2", 0)];
		for (const dir of [adopted, ...left]) prepareSandbox(dataDir, dir, null);
		fs.writeFileSync(path.join(adopted, "checkpoint"), "x");
		clearSandboxes(root, [adopted]);
		expect(fs.readFileSync(path.join(adopted, "checkpoint"), "utf8")).toBe("x");
		for (const dir of left) expect(fs.existsSync(dir)).toBe(false);
		expect(fs.readdirSync(root)).toEqual(["w1"]);
	});
});

describe("blockedAncestor", () => {
	const nobody: WorkloadUser = { name: "nobody", uid: 65534, gid: 65534 };
	const tree: Record<string, { uid: number; gid: number; mode: number }> = {
		"/": { uid: 0, gid: 0, mode: 0o755 },
		"/root": { uid: 0, gid: 0, mode: 0o700 },
		"/root/isa": { uid: 0, gid: 0, mode: 0o755 },
		"/var": { uid: 0, gid: 0, mode: 0o755 },
		"/var/lib": { uid: 0, gid: 0, mode: 0o751 },
		"/srv": { uid: 0, gid: 65534, mode: 0o710 },
		"/home": { uid: 65534, gid: 0, mode: 0o700 }
	};
	const stat = (p: string) => tree[p];

	it.each([
		["/var/lib/isa", null],
		["/srv/isa", null],
		["/home/isa", null],
		["/root/isa/data", "/root"]
	])("%s: blocked at %s", (dataDir, blocked) => {
		expect(blockedAncestor(dataDir, nobody, stat)).toBe(blocked);
	});
});

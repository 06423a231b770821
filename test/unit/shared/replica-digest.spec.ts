import { replicaDigest } from "../../../services/shared/replica-digest";

const ref = (workloadId: string, replica: number, fence: number) => ({
	workloadId,
	replica,
	fence
});

describe("replicaDigest", () => {
	it("is the same in whatever order the replicas come", () => {
		const list = [ref("a", 0, 1), ref("a", 1, 3), ref("b", 0, 2)];
		expect(replicaDigest(list)).toBe(replicaDigest([...list].reverse()));
		expect(replicaDigest(list)).toMatch(/^3-[0-9a-f]+-[0-9a-f]+$/);
	});

	it("changes with a replica's fence, a missing replica and an extra one", () => {
		const base = replicaDigest([ref("a", 0, 1), ref("b", 0, 1)]);
		expect(replicaDigest([ref("a", 0, 2), ref("b", 0, 1)])).not.toBe(base);
		expect(replicaDigest([ref("a", 0, 1)])).not.toBe(base);
		expect(replicaDigest([ref("a", 0, 1), ref("b", 0, 1), ref("b", 1, 1)])).not.toBe(base);
		// Same count, another replica: the sums differ.
		expect(replicaDigest([ref("a", 0, 1), ref("c", 0, 1)])).not.toBe(base);
	});

	it("leaves out the workloads it is told to skip", () => {
		expect(replicaDigest([ref("a", 0, 1), ref("b", 0, 5)], new Set(["b"]))).toBe(
			replicaDigest([ref("a", 0, 1)])
		);
		expect(replicaDigest([])).toBe("0-0-0");
	});
});

import { type PlacedReplica, placedView } from "../../../services/nodes/placed";
import type { Principal } from "../../../services/shared/principal";

const user = (tenant: string, role: Principal["roles"][number]): Principal => ({
	sub: "u",
	tenant,
	roles: [role],
	exp: 0
});

const replica = (id: string, tenant: string, index = 0): PlacedReplica => ({
	id,
	name: `${id}-name`,
	tenant,
	replica: index,
	state: "running",
	gpus: [index],
	resources: { cpu: 1 }
});

describe("placedView", () => {
	const on = [
		replica("a1", "acme"),
		replica("a1", "acme", 1),
		replica("g1", "globex"),
		replica("g1", "globex", 1),
		replica("g2", "globex"),
		replica("i1", "initech")
	];

	it("shows a tenant's own replicas in full and only counts the other tenants'", () => {
		const view = placedView(on, user("acme", "viewer"));
		expect(view.workloads).toEqual([on[0], on[1]]);
		expect(view.otherTenants).toEqual({ workloads: 3, replicas: 4 });
		// Nothing of another tenant is named.
		const text = JSON.stringify(view);
		for (const secret of ["globex", "initech", "g1", "g2", "i1"])
			expect(text).not.toContain(secret);
	});

	it("shows an admin, and an internal call, everything with nothing counted aside", () => {
		for (const u of [user("ops", "admin"), undefined])
			expect(placedView(on, u)).toEqual({
				workloads: on,
				otherTenants: { workloads: 0, replicas: 0 }
			});
	});

	it("counts nothing on an empty node", () => {
		expect(placedView([], user("acme", "operator"))).toEqual({
			workloads: [],
			otherTenants: { workloads: 0, replicas: 0 }
		});
	});
});

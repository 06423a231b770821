import { ApplyPlan, applyReport } from "../../../services/registry/apply";

const step = (name: string, change: "created" | "updated" | "unchanged") => ({
	input: { name } as never,
	change
});

describe("applyReport", () => {
	const plan: ApplyPlan = {
		resources: [step("pg", "created"), step("minio", "unchanged")],
		services: [step("agent", "updated"), step("model", "created")]
	};

	it("names what changed, resources first, and says whether anything did", () => {
		expect(applyReport(plan, false)).toEqual({
			created: ["resource/pg", "service/model"],
			updated: ["service/agent"],
			unchanged: ["resource/minio"],
			dryRun: false,
			changed: true
		});
	});

	it("says when it was a dry run, and that nothing changed when all is unchanged", () => {
		const same: ApplyPlan = { resources: [step("pg", "unchanged")], services: [] };
		expect(applyReport(same, true)).toEqual({
			created: [],
			updated: [],
			unchanged: ["resource/pg"],
			dryRun: true,
			changed: false
		});
	});
});

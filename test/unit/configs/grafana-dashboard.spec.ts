/**
 * configs/grafana-dashboard.json stays valid JSON and asks only for metrics the monitor exports.
 */
import fs from "fs";
import path from "path";
import { GAUGES } from "../../../services/monitor/gauges";

const file = path.join(__dirname, "../../../configs/grafana-dashboard.json");

describe("the Grafana dashboard", () => {
	const text = fs.readFileSync(file, "utf8");
	const dashboard = JSON.parse(text);

	it("uses a Prometheus data source variable in every panel", () => {
		expect(dashboard.templating.list).toContainEqual(
			expect.objectContaining({ name: "datasource", type: "datasource", query: "prometheus" })
		);
		for (const panel of dashboard.panels.filter((p: { type: string }) => p.type !== "row"))
			expect(panel.datasource).toEqual({ type: "prometheus", uid: "${datasource}" });
	});

	it("names only isa_* metrics that the monitor registers", () => {
		const exported = new Set(Object.keys(GAUGES).map(name => name.replace(/\./g, "_")));
		const used = new Set(text.match(/isa_[a-z_]+/g));
		expect(used.size).toBeGreaterThan(10);
		for (const name of used) expect(exported).toContain(name);
	});
});

import { ofModel } from "../../../../services/scheduler/placement/gpu-model";
import { A100, gpus, H100 } from "./fixtures";

describe("ofModel", () => {
	const [a100, h100] = gpus("n", [A100, H100]);

	it("matches a part of the model name, whatever the case", () => {
		expect(ofModel(h100, "h100")).toBe(true);
		expect(ofModel(h100, "H100 80gb")).toBe(true);
		expect(ofModel(a100, "nvidia")).toBe(true);
		expect(ofModel(a100, "H100")).toBe(false);
	});
});

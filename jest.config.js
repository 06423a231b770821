/** @type {import('jest').Config} */
module.exports = {
	testEnvironment: "node",
	transform: { "^.+\\.ts$": "ts-jest" },
	testMatch: ["<rootDir>/test/**/*.spec.ts"],
	moduleFileExtensions: ["ts", "js", "json"],
	// Rate limits out of the way of specs about other things (see the file).
	setupFiles: ["<rootDir>/test/helpers/env-setup.ts"],
	testTimeout: 30000
};

import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
	{
		ignores: [
			"dist/",
			"node_modules/",
			"coverage/",
			"services/gateway/public/vendor/",
			// The dashboard's bundle, built from services/gateway/dashboard/.
			"services/gateway/public/app.js"
		]
	},
	js.configs.recommended,
	{
		files: ["**/*.js"],
		languageOptions: {
			sourceType: "commonjs",
			globals: { module: "writable", require: "readonly" }
		}
	},
	...tseslint.configs.recommended,
	{
		languageOptions: { ecmaVersion: 2022, sourceType: "module" },
		rules: {
			"@typescript-eslint/no-unused-vars": [
				"error",
				{ argsIgnorePattern: "^_", varsIgnorePattern: "^_", ignoreRestSiblings: true }
			],
			"@typescript-eslint/no-explicit-any": "off",
			"no-console": "off"
		}
	},
	{
		// The dashboard runs in the browser, where Node's globals are undefined. (Its tsconfig has
		// Node's types for the server modules it takes types from, so tsc would not say so.)
		files: ["services/gateway/dashboard/**/*.ts"],
		rules: {
			"no-restricted-globals": [
				"error",
				"process",
				"Buffer",
				"global",
				"require",
				"module",
				"__dirname",
				"__filename"
			]
		}
	}
);

/**
 * Quantities as people read them, the same on the server, in the REPL and on the dashboard.
 * No imports, so that the dashboard's bundle can take it as it is.
 */
/** "16Gi"-style text for people: the largest binary unit that keeps one decimal. */
export function formatSize(bytes: number): string {
	const units = ["B", "Ki", "Mi", "Gi", "Ti"];
	let value = bytes;
	let unit = 0;
	while (value >= 1024 && unit < units.length - 1) {
		value /= 1024;
		unit++;
	}
	const whole = value >= 10 || unit === 0 || Number.isInteger(value);
	return `${whole ? Math.round(value) : value.toFixed(1)}${units[unit]}`;
}

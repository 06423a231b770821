/** Numbers and sizes as the page prints them. Pure: no DOM, unit-tested under Node. */
import { formatSize } from "../../shared/format";
import type { ResourceRequest } from "../../shared/types";

/** `part` in percent of `whole`, held to 0–100; 0 when there is no whole. */
export function percent(part: number, whole: number): number {
	return whole > 0 ? Math.max(0, Math.min(100, (part / whole) * 100)) : 0;
}

export function formatPercent(value: number | null): string {
	return value === null || Number.isNaN(value) ? "–" : `${Math.round(value)}%`;
}

/** Cores with at most one decimal: "96", "0.5". */
export function formatCores(cores: number): string {
	return String(Math.round(cores * 10) / 10);
}

/** How long ago `ms` (since the epoch) was, in the largest unit: "12 s", "3 min", "2 h". */
export function formatAgo(ms: number, now: number): string {
	const s = Math.max(0, Math.round((now - ms) / 1000));
	if (s < 60) return `${s} s`;
	if (s < 3600) return `${Math.round(s / 60)} min`;
	if (s < 86400) return `${Math.round(s / 3600)} h`;
	return `${Math.round(s / 86400)} d`;
}

/** What one replica asks for: "16 CPU · 128Gi · 4 GPU"; only the parts it asks for. */
export function describeRequest(r: ResourceRequest): string {
	const parts: string[] = [];
	if (r.cpu) parts.push(`${formatCores(r.cpu)} CPU`);
	if (r.memory) parts.push(formatSize(r.memory));
	if (r.gpu) parts.push(`${r.gpu} GPU`);
	if (r.gpuMemory) parts.push(`${formatSize(r.gpuMemory)} GPU mem`);
	return parts.join(" · ");
}

/** Names in the order people expect: "gpu-2" before "gpu-10". */
export function naturalCompare(a: string, b: string): number {
	return a.localeCompare(b, undefined, { numeric: true, sensitivity: "base" });
}

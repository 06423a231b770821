import fs from "fs";
import { formatSize } from "../../shared/format";
import { parseSize } from "../../shared/units";
import { CheckTarget, localPath, ProbeChecker, Scope } from "./base";

/**
 * A directory (a path or `file:///path`) that exists, is writable and has at least
 * config.minFreeBytes (bytes or "10Gi") free for unprivileged users.
 */
export class FilesystemChecker extends ProbeChecker {
	protected async probe(target: CheckTarget, scope: Scope): Promise<void> {
		const dir = localPath(target.endpoint, "file");
		const minFree = parseSize(
			(target.config.minFreeBytes as number | string | undefined) ?? 0,
			"minFreeBytes"
		);
		scope.step = `stat ${dir}`;
		const stat = await fs.promises.stat(dir).catch((err: NodeJS.ErrnoException) => {
			throw err.code === "ENOENT" ? new Error(`${dir} does not exist`) : err;
		});
		if (!stat.isDirectory()) throw new Error(`${dir} is not a directory`);
		scope.step = `access ${dir}`;
		await fs.promises.access(dir, fs.constants.W_OK).catch((err: NodeJS.ErrnoException) => {
			throw new Error(`${dir} is not writable (${err.code ?? err.message})`);
		});
		scope.step = `statfs ${dir}`;
		const space = await fs.promises.statfs(dir);
		const free = space.bavail * space.bsize;
		if (free < minFree) {
			throw new Error(
				`${dir} has ${formatSize(free)} free, less than minFreeBytes ${formatSize(minFree)}`
			);
		}
	}
}

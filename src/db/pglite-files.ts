import { chmodSync, mkdirSync, readdirSync } from "node:fs"
import { join } from "node:path"

// PGlite writes its files through an emulated file system that asks for mode
// 0666 (world-writable under a umask of 0). A database's files are its
// owner's alone, as PostgreSQL itself insists for its data directory.

/** Creates `data_dir` (and missing parents) readable by its owner only, or restricts it if it exists. */
export const owner_only_data_dir = (data_dir: string): void => {
  mkdirSync(data_dir, { recursive: true, mode: 0o700 })
  chmodSync(data_dir, 0o700)
}

/** Folders 0700 and files 0600 under `data_dir`, the folder itself included. */
export const restrict_to_owner = (data_dir: string): void => {
  chmodSync(data_dir, 0o700)
  for (const entry of readdirSync(data_dir, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name)
    if (entry.isDirectory()) chmodSync(path, 0o700)
    else if (entry.isFile()) chmodSync(path, 0o600)
  }
}

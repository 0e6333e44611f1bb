import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs'
import { dirname } from 'node:path'

// Data at rest is for the service's own user only: directories we create are 0700, files 0600.
// SQLite creates a database's -wal and -shm files with the permissions of the database file
// itself, so creating that file 0600 before SQLite opens it keeps all three private, whatever
// the process umask. Existing files are left as the operator set them (see filesReadableByOthers).

/** Creates an empty file readable and writable by its owner only; fails with EEXIST if it exists. */
export function createOwnerOnlyFile (path: string): void {
  closeSync(openSync(path, 'wx', 0o600))
  // The umask may have taken bits from 0600 (never added any): set exactly 0600.
  chmodSync(path, 0o600)
}

/**
 * Before SQLite opens a database file: its directory is created 0700 (with any missing parents)
 * and the file itself, if new, 0600. An existing file is opened as it is.
 */
export function prepareSqliteFile (location: string): void {
  mkdirSync(dirname(location), { recursive: true, mode: 0o700 })
  try {
    createOwnerOnlyFile(location)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }
}

/** A SQLite database and the files next to it that hold its data while it is open. */
export function sqliteFiles (location: string): string[] {
  return [location, `${location}-wal`, `${location}-shm`]
}

/** The paths among these that exist and that users other than the owner may read or write, with their modes. */
export function filesReadableByOthers (paths: string[]): Array<{ path: string, mode: string }> {
  const loose: Array<{ path: string, mode: string }> = []
  for (const path of paths) {
    let mode: number
    try {
      mode = statSync(path).mode & 0o777
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw error
    }
    if ((mode & 0o077) !== 0) loose.push({ path, mode: mode.toString(8).padStart(4, '0') })
  }
  return loose
}

/** A path as one shell word: quoted only when it needs to be. */
function shellWord (path: string): string {
  return /^[\w./+-]+$/.test(path) ? path : `'${path.replaceAll("'", "'\\''")}'`
}

/**
 * The start-up warning for data files other local users can read, naming each file, its mode and
 * the command that fixes them; undefined when all are owner-only.
 */
export function readableDataFilesWarning (paths: string[]): { files: Array<{ path: string, mode: string }>, message: string } | undefined {
  const files = filesReadableByOthers(paths)
  if (files.length === 0) return undefined
  const listed = files.map(({ path, mode }) => `${path} (mode ${mode})`).join(', ')
  return { files, message: `data files other users of this machine can read: ${listed}; restrict them with: chmod 600 ${files.map(({ path }) => shellWord(path)).join(' ')}` }
}

// Moving users over from the FastAPI app (SQLAlchemy model `users`: id, username, email,
// hashed_password with passlib bcrypt hashes). Ids are kept, so anything that refers to a user by
// id keeps working; hashes are kept, so nobody needs a password reset (the login route replaces
// each bcrypt hash with argon2id on that user's next successful login).
import { existsSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import SQLite from 'better-sqlite3'
import { sql, type Kysely } from 'kysely'
import pg from 'pg'
import { recordAuditEvent } from '../audit/audit.queries.js'
import type { Database, Db, NewUser, UserRow } from '../db/database.js'
import { emailProblem } from '../users/email-format.js'
import { normalizeEmail, normalizeUsername, USERNAME_MAX_LENGTH, usernameProblem } from '../users/identity.js'

/** One row of the FastAPI app's users table, as read: nothing about it is trusted yet. */
export interface FastapiUserRow {
  id: unknown
  username: unknown
  email: unknown
  hashed_password: unknown
}

export interface ImportedUser {
  id: number
  username: string
  email: string
}

export interface ImportProblem {
  reason: string
  /** What the operator can do about it. */
  fix: string
}

export interface ImportConflict {
  /** As found in the source (possibly not a valid id at all). */
  id: unknown
  username: unknown
  email: unknown
  problems: ImportProblem[]
}

export interface ImportReport {
  dryRun: boolean
  /** Rows read from the source. */
  total: number
  /** Written (or, in a dry run, that would be written). */
  imported: ImportedUser[]
  /** Already here: same id, same email (ignoring case). */
  skipped: ImportedUser[]
  /** Not imported, each with why and what to do. */
  conflicts: ImportConflict[]
}

/** A problem with --from itself (missing file, not the FastAPI layout): a message for the operator. */
export class ImportSourceError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ImportSourceError'
  }
}

const COLUMNS = ['id', 'username', 'email', 'hashed_password']
// What passlib's bcrypt writes ($2b$), and the older $2a$ / PHP's $2y$: cost, then 22+31 characters.
const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/
const POSTGRES_URL = /^postgres(?:ql)?(?:\+[a-z0-9]+)?:\/\//i
// Rows per INSERT: 9 columns each stays far below SQLite's and PostgreSQL's parameter limits.
const CHUNK = 100

/** A PostgreSQL URL with its password masked, safe to print. */
function maskUrl (url: string): string {
  try {
    const parsed = new URL(url.replace(/^[a-z0-9+]+:/i, 'postgres:'))
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    throw new ImportSourceError('--from: not a valid PostgreSQL URL')
  }
}

function missingColumns (present: string[]): string[] {
  return COLUMNS.filter((column) => !present.includes(column))
}

function notFastapiLayout (display: string, missing: string[]): ImportSourceError {
  return new ImportSourceError(`${display}: the users table has no ${missing.join(', ')} column; ` +
    `expected the FastAPI app's layout (${COLUMNS.join(', ')})`)
}

function readSqliteSource (path: string): FastapiUserRow[] {
  if (!existsSync(path)) throw new ImportSourceError(`--from: no such file: ${path}`)
  let source: SQLite.Database
  try {
    source = new SQLite(path, { readonly: true, fileMustExist: true })
  } catch (error) {
    throw new ImportSourceError(`--from: cannot open ${path} as SQLite: ${(error as Error).message}`)
  }
  try {
    const columns = source.prepare('SELECT name FROM pragma_table_info(?)').all('users') as Array<{ name: string }>
    if (columns.length === 0) throw new ImportSourceError(`${path}: no users table; is this the FastAPI app's database?`)
    const missing = missingColumns(columns.map((column) => column.name))
    if (missing.length > 0) throw notFastapiLayout(path, missing)
    return source.prepare('SELECT id, username, email, hashed_password FROM users ORDER BY id').all() as FastapiUserRow[]
  } catch (error) {
    if (error instanceof ImportSourceError) throw error
    throw new ImportSourceError(`--from: cannot read ${path}: ${(error as Error).message}`)
  } finally {
    source.close()
  }
}

async function readPostgresSource (url: string, display: string, timeoutMs: number): Promise<FastapiUserRow[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs })
  try {
    await client.connect()
  } catch (error) {
    throw new ImportSourceError(`--from: cannot connect to ${display}: ${(error as Error).message}`)
  }
  try {
    const columns = await client.query<{ column_name: string }>(
      "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'users'")
    if (columns.rows.length === 0) throw new ImportSourceError(`${display}: no users table; is this the FastAPI app's database?`)
    const missing = missingColumns(columns.rows.map((column) => column.column_name))
    if (missing.length > 0) throw notFastapiLayout(display, missing)
    const result = await client.query<FastapiUserRow>('SELECT id, username, email, hashed_password FROM users ORDER BY id')
    // A bigint id arrives as text; a whole number in range is still a valid id.
    return result.rows.map((row) => typeof row.id === 'string' && /^\d+$/.test(row.id) ? { ...row, id: Number(row.id) } : row)
  } finally {
    await client.end()
  }
}

/**
 * Reads the FastAPI app's users from a SQLite file (a path, or a sqlite:/// URL) or a PostgreSQL
 * URL. Opens the source read-only; returns the rows by id and a printable name for the source.
 */
export async function readFastapiUsers (from: string, options: { cwd?: string, timeoutMs?: number } = {}): Promise<{ display: string, rows: FastapiUserRow[] }> {
  const cwd = options.cwd ?? process.cwd()
  const trimmed = from.trim()
  if (trimmed === '') throw new ImportSourceError('--from: give a SQLite file path or a PostgreSQL URL')
  if (POSTGRES_URL.test(trimmed)) {
    const display = maskUrl(trimmed)
    return { display, rows: await readPostgresSource(trimmed.replace(/^[a-z0-9+]+:/i, 'postgres:'), display, options.timeoutMs ?? 5000) }
  }
  // SQLAlchemy's sqlite:///relative and sqlite:////absolute forms, or a plain path.
  let path = trimmed
  if (/^sqlite:/i.test(trimmed)) {
    if (!/^sqlite:\/\/\//i.test(trimmed)) throw new ImportSourceError('--from: a SQLite URL looks like sqlite:///relative.db or sqlite:////absolute.db')
    path = trimmed.slice('sqlite:///'.length).split('?')[0]
  }
  path = isAbsolute(path) ? path : resolve(cwd, path)
  return { display: path, rows: readSqliteSource(path) }
}

/** A source row after the checks that need no database. */
interface Candidate {
  row: FastapiUserRow
  id?: number
  username?: string
  usernameNormalized?: string
  email?: string
  emailNormalized?: string
  hash?: string
  problems: ImportProblem[]
}

const FIX_IN_SOURCE = 'Correct the row in the FastAPI database (or leave the account out), then run the import again; rows already imported are skipped.'

/** The checks signup would make, plus the ones only an import needs (id, hash). */
function examine (row: FastapiUserRow): Candidate {
  const candidate: Candidate = { row, problems: [] }
  const problem = (reason: string, fix = FIX_IN_SOURCE) => candidate.problems.push({ reason, fix })

  if (typeof row.id === 'number' && Number.isSafeInteger(row.id) && row.id > 0) candidate.id = row.id
  else problem(`id ${JSON.stringify(row.id)} is not a positive whole number`)

  if (typeof row.username === 'string') {
    candidate.username = row.username
    candidate.usernameNormalized = normalizeUsername(row.username)
    const issue = [...row.username].length > USERNAME_MAX_LENGTH
      ? `username: must be at most ${USERNAME_MAX_LENGTH} characters`
      : usernameProblem(row.username)
    if (issue) problem(`${issue} (signup's rule)`, 'Rename the user in the FastAPI database, then run the import again; rows already imported are skipped.')
  } else {
    problem('username is missing or not text')
  }

  if (typeof row.email === 'string') {
    candidate.email = row.email
    candidate.emailNormalized = normalizeEmail(row.email)
    const issue = emailProblem(row.email)
    if (issue) problem(`${issue} (signup's rule)`, 'Correct the address in the FastAPI database (or leave the account out), then run the import again; rows already imported are skipped.')
  } else {
    problem('email is missing or not text')
  }

  // Never printed: a hash is a secret too.
  if (typeof row.hashed_password === 'string' && BCRYPT_HASH.test(row.hashed_password)) {
    candidate.hash = row.hashed_password
  } else {
    problem('hashed_password is not a bcrypt hash ($2a$, $2b$ or $2y$), so the user could not log in with it',
      'Check the row in the FastAPI database: fix the hash there, or leave the account out and let the user sign up again.')
  }
  return candidate
}

type ExistingUser = Pick<UserRow, 'id' | 'username' | 'email' | 'username_normalized' | 'email_normalized'>
const EXISTING_COLUMNS = ['id', 'username', 'email', 'username_normalized', 'email_normalized'] as const

function chunks<T> (items: T[], size = CHUNK): T[][] {
  const result: T[][] = []
  for (let i = 0; i < items.length; i += size) result.push(items.slice(i, i + size))
  return result
}

/** Accounts here that share an id, normalised email or normalised username with a candidate. */
async function findExisting (db: Kysely<Database>, candidates: Candidate[]): Promise<ExistingUser[]> {
  const ids = [...new Set(candidates.flatMap((c) => c.id ?? []))]
  const emails = [...new Set(candidates.flatMap((c) => c.emailNormalized ?? []))]
  const usernames = [...new Set(candidates.flatMap((c) => c.usernameNormalized ?? []))]
  const found: ExistingUser[] = []
  for (const chunk of chunks(ids)) found.push(...await db.selectFrom('users').select(EXISTING_COLUMNS).where('id', 'in', chunk).execute())
  for (const chunk of chunks(emails)) found.push(...await db.selectFrom('users').select(EXISTING_COLUMNS).where('email_normalized', 'in', chunk).execute())
  for (const chunk of chunks(usernames)) found.push(...await db.selectFrom('users').select(EXISTING_COLUMNS).where('username_normalized', 'in', chunk).execute())
  return found
}

function describeExisting (user: ExistingUser): string {
  return `id ${user.id} (${JSON.stringify(user.username)}, ${JSON.stringify(user.email)})`
}

/** Source rows that would collide with each other here (same id, or equal once normalised). */
function flagSourceClashes (candidates: Candidate[]): void {
  const groups = (key: (c: Candidate) => string | number | undefined) => {
    const byKey = new Map<string | number, Candidate[]>()
    for (const candidate of candidates) {
      const value = key(candidate)
      if (value !== undefined) byKey.set(value, [...byKey.get(value) ?? [], candidate])
    }
    return [...byKey.values()].filter((group) => group.length > 1)
  }
  const others = (group: Candidate[], self: Candidate, field: 'email' | 'username') =>
    group.filter((c) => c !== self).map((c) => `id ${String(c.row.id)} (${JSON.stringify(c[field])})`).join(', ')

  for (const group of groups((c) => c.id)) {
    for (const candidate of group) {
      candidate.problems.push({ reason: `id ${candidate.id} appears ${group.length} times in the source`, fix: FIX_IN_SOURCE })
    }
  }
  // Both sides are held back: the FastAPI app treated them as two accounts, and which one should
  // own the address (or name) here is a decision for a person, not for the order of the rows.
  for (const group of groups((c) => c.emailNormalized)) {
    for (const candidate of group) {
      candidate.problems.push({
        reason: `email is the same as that of ${others(group, candidate, 'email')} once case is ignored; emails are unique ignoring case here`,
        fix: 'Decide which account keeps the address: change the other\'s email in the FastAPI database (or leave that account out), then run the import again; rows already imported are skipped.'
      })
    }
  }
  for (const group of groups((c) => c.usernameNormalized)) {
    for (const candidate of group) {
      candidate.problems.push({
        reason: `username is the same as that of ${others(group, candidate, 'username')} once case and Unicode compatibility forms (NFKC) are ignored; usernames are unique that way here`,
        fix: 'Rename one of them in the FastAPI database, then run the import again; rows already imported are skipped.'
      })
    }
  }
}

/** Compares candidates with the accounts already here: already imported, or clashing. */
function compareWithExisting (candidates: Candidate[], existing: ExistingUser[]): { fresh: Candidate[], skipped: Candidate[] } {
  const byId = new Map(existing.map((user) => [user.id, user]))
  const byEmail = new Map(existing.map((user) => [user.email_normalized, user]))
  const byUsername = new Map(existing.map((user) => [user.username_normalized, user]))
  const fresh: Candidate[] = []
  const skipped: Candidate[] = []
  for (const candidate of candidates) {
    const owner = candidate.id === undefined ? undefined : byId.get(candidate.id)
    if (owner !== undefined && owner.email_normalized === candidate.emailNormalized) {
      skipped.push(candidate)
      continue
    }
    fresh.push(candidate)
    if (owner !== undefined) {
      candidate.problems.push({
        reason: `id ${candidate.id} already belongs to a different account here, ${describeExisting(owner)}`,
        fix: 'Imported users keep their ids, so this one cannot come in: import into a database nobody has signed up to yet, or remove that account here if it is not needed. ' +
          'If it is this same user, imported before and with a changed email since, there is nothing to do.'
      })
    }
    const emailOwner = candidate.emailNormalized === undefined ? undefined : byEmail.get(candidate.emailNormalized)
    if (emailOwner !== undefined && emailOwner.id !== candidate.id) {
      candidate.problems.push({
        reason: `email already belongs to ${describeExisting(emailOwner)} here (emails are unique ignoring case)`,
        fix: 'If they are the same person, keep one account (delete the other here, or leave it out of the FastAPI database); otherwise change the address in the FastAPI database. Then run the import again.'
      })
    }
    const nameOwner = candidate.usernameNormalized === undefined ? undefined : byUsername.get(candidate.usernameNormalized)
    if (nameOwner !== undefined && nameOwner.id !== candidate.id) {
      candidate.problems.push({
        reason: `username is the same as that of ${describeExisting(nameOwner)} here once case and Unicode compatibility forms (NFKC) are ignored`,
        fix: 'Rename the user in the FastAPI database (or the account here), then run the import again.'
      })
    }
  }
  return { fresh, skipped }
}

async function hasUsersTable (db: Db): Promise<boolean> {
  const tables = await db.kysely.introspection.getTables()
  return tables.some((table) => table.name === 'users')
}

/**
 * Imports the FastAPI app's users into our users table, in one transaction: every valid row or
 * none. Keeps ids and bcrypt hashes; role 'user'; created_at/updated_at = now. A row whose id is
 * here already with the same email is skipped (so it is safe to run twice); a row that breaks
 * our rules or clashes is reported and left out, never silently dropped. With dryRun nothing is
 * written (a database without our schema counts as empty). Expects a migrated database otherwise.
 */
export async function importFastapiUsers (db: Db, rows: FastapiUserRow[], options: { dryRun?: boolean, now?: string } = {}): Promise<ImportReport> {
  const dryRun = options.dryRun ?? false
  const candidates = rows.map(examine)
  const targetExists = await hasUsersTable(db)
  if (!targetExists && !dryRun) throw new Error('the users table does not exist: migrate the database first')

  return db.kysely.transaction().execute(async (trx) => {
    // The checks below must still hold when the rows go in: keep signups and updates out until
    // commit (reads go on). SQLite has one writer at a time anyway; a write that got in between
    // our reads and our insert makes the transaction fail as a whole, never half-written.
    if (db.dialect === 'postgres' && !dryRun) await sql`LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE`.execute(trx)
    const existing = targetExists ? await findExisting(trx, candidates) : []
    const { fresh, skipped } = compareWithExisting(candidates, existing)
    flagSourceClashes(fresh)
    const accepted = fresh.filter((c) => c.problems.length === 0)
    const report: ImportReport = {
      dryRun,
      total: rows.length,
      imported: accepted.map(summary),
      skipped: skipped.map(summary),
      conflicts: fresh.filter((c) => c.problems.length > 0)
        .map((c) => ({ id: c.row.id, username: c.row.username, email: c.row.email, problems: c.problems }))
    }
    if (dryRun || accepted.length === 0) return report

    const now = options.now ?? new Date().toISOString()
    for (const chunk of chunks(accepted)) {
      await trx.insertInto('users').values(chunk.map((c): NewUser => ({
        id: c.id!,
        username: c.username!,
        username_normalized: c.usernameNormalized!,
        email: c.email!,
        email_normalized: c.emailNormalized!,
        hashed_password: c.hash!,
        role: 'user',
        created_at: now,
        updated_at: now
      }))).execute()
    }
    for (const c of accepted) {
      await recordAuditEvent(trx, undefined, { type: 'signup', outcome: 'success', userId: c.id, detail: { source: 'fastapi-import' } }, now)
    }
    if (db.dialect === 'postgres') {
      // Explicit ids do not advance the identity sequence; without this the next signup would get
      // id 1 and fail. GREATEST: never move it back, or the ids of deleted accounts (past the
      // imported ones) would be handed out again. setval is not undone by a rollback, which is
      // harmless: it only ever moves forward.
      await sql`SELECT setval(pg_get_serial_sequence('users', 'id'), GREATEST(
        (SELECT max(id) FROM users),
        COALESCE(pg_sequence_last_value(pg_get_serial_sequence('users', 'id')::regclass), 0)))`.execute(trx)
    }
    // SQLite needs nothing: with AUTOINCREMENT, inserting an explicit id raises sqlite_sequence to
    // it when larger (https://sqlite.org/autoinc.html), in this same transaction.
    return report
  })
}

function summary (candidate: Candidate): ImportedUser {
  return { id: candidate.id!, username: candidate.username!, email: candidate.email! }
}

/** "1-3, 7, 9-10": imported ids, short even for many users. */
export function idRanges (ids: number[]): string {
  const sorted = [...ids].sort((a, b) => a - b)
  const parts: string[] = []
  for (let i = 0; i < sorted.length; i++) {
    const start = sorted[i]
    while (i + 1 < sorted.length && sorted[i + 1] === sorted[i] + 1) i++
    parts.push(start === sorted[i] ? String(start) : `${start}-${sorted[i]}`)
  }
  return parts.join(', ')
}

/** The report as lines for a person: the counts, then one line per conflict with why and what to do. */
export function describeImportReport (report: ImportReport): string[] {
  const lines: string[] = []
  if (report.dryRun) lines.push('Dry run: nothing was written. The import would give:')
  const ids = (users: ImportedUser[]) => users.length > 0 ? `: ids ${idRanges(users.map((user) => user.id))}` : ''
  lines.push(`imported ${report.imported.length}${ids(report.imported)}`)
  lines.push(`skipped ${report.skipped.length} (already imported)${ids(report.skipped)}`)
  lines.push(`conflicts ${report.conflicts.length}${report.conflicts.length > 0 ? ' (not imported; each line says why and what to do):' : ''}`)
  for (const conflict of report.conflicts) {
    const reasons = conflict.problems.map((problem) => problem.reason).join('; ')
    const fixes = [...new Set(conflict.problems.map((problem) => problem.fix))].join(' ')
    lines.push(`  id ${String(conflict.id)}, username ${JSON.stringify(conflict.username)}, email ${JSON.stringify(conflict.email)}: ${reasons}. To do: ${fixes}`)
  }
  if (report.imported.length > 0) {
    lines.push('Imported users log in with their old passwords; each bcrypt hash becomes argon2id at that user\'s next login.')
  }
  return lines
}

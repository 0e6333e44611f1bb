import { createInterface } from 'node:readline'
import { existsSync, rmSync } from 'node:fs'
import { resolve } from 'node:path'
import { Writable } from 'node:stream'
import { parseArgs } from 'node:util'
import type { MigrationResultSet } from 'kysely'
import { recordAuditEvent } from './audit/audit.queries.js'
import { createPasswords } from './auth/passwords.js'
import { ConfigError, loadConfig, type Config } from './config.js'
import { classifyDbError, createDb, type Db } from './db/database.js'
import { createOwnerOnlyFile } from './db/file-modes.js'
import { isSchemaCurrent, LATEST_MIGRATION, migrateToLatest } from './db/migrate.js'
import { AppError } from './errors.js'
import { describeImportReport, importFastapiUsers, ImportSourceError, readFastapiUsers } from './import/fastapi.js'
import { countByStatus, listUndelivered, requeueDead } from './email/outbox.queries.js'
import { emailProblem } from './users/email-format.js'
import { normalizeEmail, normalizeUsername, passwordProblem, USERNAME_MAX_LENGTH, usernameProblem } from './users/identity.js'
import { findTaken, findUserByEmail, insertUser, setUserRole } from './users/users.queries.js'

// Admin commands over the same modules the server uses: `npm run cli -- <command> [options]`.
// Exit code 0 when the command did what was asked, 1 otherwise (with the reason on stderr).

/** A failure the operator can act on: printed as is, without a stack. */
class CliError extends Error {}

const out = (line: string) => process.stdout.write(line + '\n')
const err = (line: string) => process.stderr.write(line + '\n')

const USAGE = `Usage: npm run cli -- <command> [options]

Admin commands for the User Management API. They act on the database DATABASE_URL names
(default: users.db under DATA_DIR, ./data), read from the environment or a .env file, as the
server does.

Commands:
  migrate                                   Bring the database schema up to date
  create-admin --username U --email E       Create an admin account (password from stdin or a prompt)
  create-admin --promote --email E          Make an existing account an admin
  import-fastapi --from SOURCE [--dry-run]  Import the FastAPI app's users (keeps ids and password hashes)
  backup --to FILE                          Copy the SQLite database to FILE while the server runs
  outbox [retry]                            List emails waiting or given up on; retry requeues the dead ones

Run npm run cli -- <command> --help for a command's details.`

type Values = Record<string, string | boolean | undefined>

interface Command {
  usage: string
  options: Record<string, { type: 'string' | 'boolean' }>
  /** Words the command takes after its name (a sub-command); none when absent. */
  positionals?: string[]
  run: (values: Values, config: Config, positionals: string[]) => Promise<number>
}

const COMMANDS: Record<string, Command> = {
  migrate: {
    usage: `Usage: npm run cli -- migrate

Applies every migration the database has not had yet (the server also does this at start) and
prints which ran. Safe to run at any time, from several places at once.`,
    options: {},
    run: migrate
  },
  'create-admin': {
    usage: `Usage: npm run cli -- create-admin --username U --email E
       npm run cli -- create-admin --promote --email E [--username U]

Creates an account with the admin role, under the same rules as signup (username and email
unique ignoring case, the password policy). Migrates the database first.

The password is never taken from the command line (other users can read a process's arguments,
and shells keep them in their history):
  - in a terminal you are asked for it twice, without echo;
  - otherwise the first line of stdin is the password, e.g.
      printf '%s\\n' "$ADMIN_PASSWORD" | npm run cli -- create-admin --username root --email root@example.com

If an account with that email exists already, nothing is changed: emails are not verified,
so anyone could have signed up with it. Check the account, then make it an admin with
--promote (its password stays as it is).

Options:
  --username U   the new account's username
  --email E      the new account's email (with --promote: the existing account's email)
  --promote      make the existing account with this email an admin instead of creating one`,
    options: { username: { type: 'string' }, email: { type: 'string' }, promote: { type: 'boolean' } },
    run: createAdmin
  },
  'import-fastapi': {
    usage: `Usage: npm run cli -- import-fastapi --from SOURCE [--dry-run]

Copies the users of the FastAPI app (its users table: id, username, email, hashed_password) into
this database, in one transaction. Users keep their ids and their bcrypt password hashes, so they
log in with their old passwords (the hash becomes argon2id at their next login); role 'user'.

Safe to run again: a user whose id is here already with the same email is skipped. Rows that
break this app's rules (emails equal ignoring case, usernames equal ignoring case and Unicode
compatibility forms, an id held by another account, an invalid email or username, a hash that is
not bcrypt) are not imported: each is listed with the reason and what to do, and the command
exits 1. The rest are imported. Migrates the database first.

Options:
  --from SOURCE  the FastAPI database: a SQLite file (path or sqlite:/// URL) or a
                 postgres:// / postgresql:// URL; opened read-only
  --dry-run      print what would happen; write nothing (not even the schema)`,
    options: { from: { type: 'string' }, 'dry-run': { type: 'boolean' } },
    run: importFastapi
  },
  backup: {
    usage: `Usage: npm run cli -- backup --to FILE

Writes a consistent copy of the SQLite database to FILE (SQLite's online backup: the server may
keep running and writing), readable by its owner only (mode 0600). FILE must not exist yet.
To restore: stop the server, put the copy in place of the database file, delete the -wal and
-shm files next to it, start the server.

For PostgreSQL use pg_dump (see the README's Deploying section).

Options:
  --to FILE   where to write the copy`,
    options: { to: { type: 'string' } },
    run: backup
  },
  outbox: {
    usage: `Usage: npm run cli -- outbox [--limit N]
       npm run cli -- outbox retry

Emails wait in the outbox (a table of the database) until a server process sends them; failed
deliveries are retried with a growing delay, and after MAIL_MAX_ATTEMPTS a row is dead.

  outbox         lists the pending and dead rows, oldest first, with their last error
  outbox retry   puts every dead row back in the queue with a fresh count (fix the mail
                 server first); a running server sends them within MAIL_POLL_INTERVAL

Options:
  --limit N   rows to list (default 50)`,
    options: { limit: { type: 'string' } },
    positionals: ['retry'],
    run: outbox
  }
}

async function withDb<T> (config: Config, fn: (db: Db) => Promise<T>): Promise<T> {
  // A small pool: the CLI runs one thing at a time.
  const db = createDb(config.database, { timeoutMs: config.dbTimeoutMs, poolSize: 2 })
  try {
    return await fn(db)
  } finally {
    await db.close()
  }
}

function printMigrations (result: MigrationResultSet, quietWhenCurrent: boolean): void {
  const applied = (result.results ?? []).filter((migration) => migration.status === 'Success')
  for (const migration of applied) out(`Applied migration ${migration.migrationName}`)
  if (applied.length === 0 && !quietWhenCurrent) out(`Database schema already up to date (latest migration: ${LATEST_MIGRATION})`)
}

async function migrate (_values: Values, config: Config): Promise<number> {
  out(`Database: ${config.database.display}`)
  await withDb(config, async (db) => printMigrations(await migrateToLatest(db), false))
  return 0
}

/** The first line of stdin (a pipe or file), without its line ending; undefined when stdin is empty. */
function readFirstLine (): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
    let first: string | undefined
    lines.once('line', (line) => {
      first = line
      lines.close()
    })
    lines.once('close', () => {
      // The rest of stdin is not ours to wait for.
      process.stdin.destroy()
      resolve(first)
    })
    process.stdin.once('error', reject)
  })
}

/**
 * Asks each question on the terminal without echoing the answers: readline writes its echo to a
 * sink. One interface for all questions keeps the terminal in raw mode throughout, and it is open
 * before the first prompt shows, so nothing typed (or pasted) early is echoed by the terminal.
 */
function promptHidden (prompts: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sink = new Writable({ write: (_chunk, _encoding, done) => done() })
    const rl = createInterface({ input: process.stdin, output: sink, terminal: true })
    const answers: string[] = []
    let settle = (action: () => void) => {
      settle = () => {}
      rl.close()
      action()
    }
    rl.on('line', (line) => {
      process.stderr.write('\n')
      answers.push(line)
      if (answers.length === prompts.length) settle(() => resolve(answers))
      else process.stderr.write(prompts[answers.length])
    })
    rl.once('SIGINT', () => settle(() => reject(new CliError('\nCancelled; nothing was changed.'))))
    rl.once('close', () => settle(() => reject(new CliError('\nNo password entered; nothing was changed.'))))
    process.stderr.write(prompts[0])
  })
}

async function readNewPassword (): Promise<string> {
  if (!process.stdin.isTTY) {
    const line = await readFirstLine()
    if (line === undefined || line === '') {
      throw new CliError('No password on stdin: pipe it in as the first line (printf \'%s\\n\' "$PASSWORD" | npm run cli -- create-admin ...), or run the command in a terminal to be asked for it.')
    }
    return line
  }
  const [password, again] = await promptHidden(['Password for the new admin: ', 'Repeat the password: '])
  if (password !== again) throw new CliError('The two passwords differ; no account was created.')
  return password
}

function usernameIssue (username: string): string | undefined {
  // Signup's schema limit on the name as typed, then the rules on its NFKC form.
  if ([...username].length > USERNAME_MAX_LENGTH) return `username: must be at most ${USERNAME_MAX_LENGTH} characters`
  return usernameProblem(username)
}

async function createAdmin (values: Values, config: Config): Promise<number> {
  const username = values.username as string | undefined
  const email = values.email as string | undefined
  if (email === undefined) throw new CliError('create-admin: --email is required (see --help)')
  if (!values.promote && username === undefined) throw new CliError('create-admin: --username is required (see --help)')
  if (!values.promote) {
    const problem = usernameIssue(username!) ?? emailProblem(email)
    if (problem) throw new CliError(`${problem}. No account was created.`)
  }

  return withDb(config, async (db) => {
    out(`Database: ${config.database.display}`)
    printMigrations(await migrateToLatest(db), true)
    const emailNormalized = normalizeEmail(email)
    const existing = await findUserByEmail(db.kysely, emailNormalized)
    const now = new Date().toISOString()

    if (values.promote) {
      if (existing === undefined) throw new CliError(`No account has the email ${email}; nothing was changed. To create one, run create-admin without --promote.`)
      const name = `id ${existing.id} (${existing.username} <${existing.email}>)`
      if (username !== undefined && normalizeUsername(username) !== normalizeUsername(existing.username)) {
        throw new CliError(`The account with the email ${existing.email} is ${name}, not "${username}"; nothing was changed.`)
      }
      if (existing.role === 'admin') {
        out(`Account ${name} is already an admin; nothing was changed.`)
        return 0
      }
      await db.kysely.transaction().execute(async (trx) => {
        await setUserRole(trx, existing.id, 'admin', now)
        await recordAuditEvent(trx, undefined, { type: 'role_change', outcome: 'success', userId: existing.id, detail: { role: 'admin', source: 'cli' } }, now)
      })
      out(`Promoted account ${name} to admin. Its password was not changed.`)
      return 0
    }

    if (existing !== undefined) {
      throw new CliError(`An account with the email ${existing.email} already exists: id ${existing.id}, username ${existing.username}, role ${existing.role}. Nothing was changed. ` +
        'Emails are not verified here, so anyone could have registered it: check that it is the right account, then run ' +
        `npm run cli -- create-admin --promote --email ${existing.email} (its password stays as it is).`)
    }
    const usernameNormalized = normalizeUsername(username!)
    if ((await findTaken(db.kysely, { usernameNormalized })).username) {
      throw new CliError(`The username ${username} is taken by another account (usernames are unique ignoring case); choose another. No account was created.`)
    }

    const password = await readNewPassword()
    const problem = passwordProblem(password, { minLength: config.passwordMinLength, maxLength: config.passwordMaxLength }, { username: username!, email })
    if (problem) throw new CliError(`${problem}. No account was created.`)
    const passwords = await createPasswords(config.hashConcurrency, config.hashQueueLimit)
    const hashedPassword = await passwords.hash(password)
    const id = await db.kysely.transaction().execute(async (trx) => {
      const id = await insertUser(trx, {
        username: username!,
        username_normalized: usernameNormalized,
        email,
        email_normalized: emailNormalized,
        hashed_password: hashedPassword,
        role: 'admin',
        created_at: now,
        updated_at: now
      })
      await recordAuditEvent(trx, undefined, { type: 'signup', outcome: 'success', userId: id, detail: { role: 'admin', source: 'cli' } }, now)
      return id
    })
    out(`Created admin account id ${id} (${username} <${email}>).`)
    return 0
  })
}

async function importFastapi (values: Values, config: Config): Promise<number> {
  const from = values.from as string | undefined
  const dryRun = values['dry-run'] === true
  if (from === undefined) throw new CliError('import-fastapi: --from is required: a SQLite file path or a PostgreSQL URL (see --help)')
  // Read the whole source before touching our database: a bad --from changes nothing here.
  const source = await readFastapiUsers(from, { timeoutMs: config.dbTimeoutMs })
  out(`Source: ${source.display} (${source.rows.length} users)`)
  out(`Database: ${config.database.display}`)

  const { database } = config
  // A dry run must not even create the SQLite file: plan against an empty database instead.
  const target = dryRun && database.dialect === 'sqlite' && database.location !== ':memory:' && !existsSync(database.location)
    ? { ...config, database: { ...database, location: ':memory:' } }
    : config
  const report = await withDb(target, async (db) => {
    if (dryRun) {
      if (!await isSchemaCurrent(db)) out('The database is not migrated yet; the real import migrates it first.')
    } else {
      printMigrations(await migrateToLatest(db), true)
    }
    try {
      return await importFastapiUsers(db, source.rows, { dryRun })
    } catch (error) {
      // One transaction: whatever went wrong, it left nothing behind.
      throw new CliError(`The import failed and was rolled back; nothing was written. ${describeError(error)}`)
    }
  })
  for (const line of describeImportReport(report)) out(line)
  return report.conflicts.length > 0 ? 1 : 0
}

async function backup (values: Values, config: Config): Promise<number> {
  const to = values.to as string | undefined
  if (to === undefined) throw new CliError('backup: --to FILE is required (see --help)')
  const { database } = config
  if (database.dialect !== 'sqlite') throw new CliError('backup copies a SQLite database; for PostgreSQL use pg_dump "$DATABASE_URL" (see the README\'s Deploying section)')
  if (database.location === ':memory:') throw new CliError('backup: an in-memory database has nothing to copy')
  if (!existsSync(database.location)) throw new CliError(`backup: no database at ${database.location}`)
  const destination = resolve(to)
  const exists = () => new CliError(`backup: ${destination} exists already; choose a new file (nothing was written)`)
  if (existsSync(destination)) throw exists()
  return withDb(config, async (db) => {
    // The copy holds every email and password hash: owner-only (0600) from its first byte, as the database is.
    try {
      createOwnerOnlyFile(destination)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw exists()
      throw new CliError(`backup: cannot create ${destination}: ${(error as Error).message}`)
    }
    try {
      const { totalPages } = await db.sqlite!.backup(destination)
      out(`Copied ${database.display} to ${destination} (${totalPages} pages, mode 0600).`)
      return 0
    } catch (error) {
      rmSync(destination, { force: true })
      throw error
    }
  })
}

async function outbox (values: Values, config: Config, positionals: string[]): Promise<number> {
  const limit = values.limit === undefined ? 50 : Number(values.limit)
  if (!Number.isInteger(limit) || limit < 1 || limit > 10000) throw new CliError('outbox: --limit must be a whole number from 1 to 10000')
  return withDb(config, async (db) => {
    if (!await isSchemaCurrent(db)) throw new CliError('The database is not migrated yet: run npm run cli -- migrate (or start the server) first')
    if (positionals[0] === 'retry') {
      const requeued = await requeueDead(db.kysely, new Date().toISOString())
      out(requeued === 0 ? 'No dead emails; nothing to retry.' : `Requeued ${requeued} dead email${requeued === 1 ? '' : 's'}; a running server sends them within MAIL_POLL_INTERVAL (${config.mail.pollInterval} s).`)
      return 0
    }
    const counts = await countByStatus(db.kysely)
    out(`Outbox: ${counts.pending} pending, ${counts.dead} dead`)
    for (const row of await listUndelivered(db.kysely, limit)) {
      const when = row.status === 'dead' ? 'gave up' : `next attempt ${row.next_attempt_at}`
      out(`#${row.id} ${row.status} ${row.purpose} to ${row.recipient}, queued ${row.created_at}, ${row.attempts} attempt${row.attempts === 1 ? '' : 's'}, ${when}${row.last_error ? `; last error: ${row.last_error}` : ''}`)
    }
    if (counts.dead > 0) out('Fix the mail server (SMTP_URL), then run: npm run cli -- outbox retry')
    return 0
  })
}

function describeError (error: unknown): string {
  if (error instanceof CliError || error instanceof ConfigError || error instanceof ImportSourceError || error instanceof AppError) return error.message
  if (classifyDbError(error) === 'unavailable') return `Cannot reach the database (or it stayed locked): ${(error as Error).message || (error as { code?: string }).code}`
  return `Unexpected error: ${error instanceof Error ? error.stack : String(error)}`
}

/** Refuses a password on the command line before anything else runs, without echoing it. */
function refusePasswordArgument (args: string[]): void {
  if (args.some((arg) => /^--?p(ass(word)?)?(=|$)/i.test(arg))) {
    throw new CliError('create-admin does not accept a password on the command line: other users can read ' +
      'a process\'s arguments (ps, /proc) and shells keep them in their history. Pipe it in on stdin ' +
      '(printf \'%s\\n\' "$PASSWORD" | npm run cli -- create-admin ...) or run the command in a terminal to be asked for it. Nothing was changed.')
  }
}

async function main (argv: string[]): Promise<number> {
  const [name, ...args] = argv
  if (name === undefined) {
    err(USAGE)
    return 1
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    out(USAGE)
    return 0
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
  if (command === undefined) {
    err(`Unknown command "${name}".\n\n${USAGE}`)
    return 1
  }
  if (args.includes('--help') || args.includes('-h')) {
    out(command.usage)
    return 0
  }
  if (name === 'create-admin') refusePasswordArgument(args)
  let values: Values
  let positionals: string[] = []
  try {
    const parsed = parseArgs({ args, options: command.options, strict: true, allowPositionals: command.positionals !== undefined })
    values = parsed.values
    positionals = parsed.positionals
    if (positionals.length > 1 || positionals.some((word) => !command.positionals!.includes(word))) {
      throw Object.assign(new Error(`${name} takes ${command.positionals!.map((word) => `"${word}"`).join(' or ')} after its name, nothing else`), { code: 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL_SUB' })
    }
  } catch (error) {
    // Not the parser's message for a stray argument: it would echo it, and it may be a password.
    const detail = (error as { code?: string }).code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL'
      ? `${name} takes no positional arguments, only options`
      : (error as Error).message
    throw new CliError(`${detail}. Run npm run cli -- ${name} --help for its options.`)
  }
  const config = loadConfig(process.env)
  return command.run(values, config, positionals)
}

try {
  process.loadEnvFile()
} catch (error) {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (error) {
  err(describeError(error))
  process.exitCode = 1
}

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import SQLite from 'better-sqlite3'
import { runCli } from './cli-process.js'
import { authed, buildTestApp, createTestDatabase, DIALECTS, login, signup, type DialectName } from './helpers.js'

// The admin CLI as an operator runs it (`npm run cli -- ...` is `tsx src/cli.ts ...`): a real
// process with its environment, stdin and exit code, against a real database.

async function freshDatabase (t: TestContext, dialect: DialectName): Promise<string> {
  const database = await createTestDatabase(dialect)
  t.after(() => database.drop())
  return database.url
}

const ADMIN_PASSWORD = 'Admin-Passphrase-4721'

describe('admin CLI: usage', () => {
  it('prints the commands for --help (exit 0) and refuses an unknown command (exit 1)', async (t) => {
    const url = await freshDatabase(t, 'sqlite')
    const help = await runCli(url, ['--help'])
    assert.equal(help.code, 0)
    for (const command of ['migrate', 'create-admin', 'import-fastapi']) assert.ok(help.stdout.includes(command), command)
    const commandHelp = await runCli(url, ['create-admin', '--help'])
    assert.equal(commandHelp.code, 0)
    assert.match(commandHelp.stdout, /never taken from the command line/)
    const unknown = await runCli(url, ['frobnicate'])
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /Unknown command "frobnicate"/)
  })
})

for (const dialect of DIALECTS) {
  describe(`admin CLI (${dialect.name})`, { skip: dialect.skip }, () => {
    it('migrate applies the migrations once, then reports the schema up to date', async (t) => {
      const url = await freshDatabase(t, dialect.name)
      const first = await runCli(url, ['migrate'])
      assert.equal(first.code, 0, first.stderr)
      assert.match(first.stdout, /Applied migration 001-initial/)
      const second = await runCli(url, ['migrate'])
      assert.equal(second.code, 0, second.stderr)
      assert.match(second.stdout, /already up to date/)
      assert.doesNotMatch(second.stdout, /Applied migration/)
    })

    it('create-admin takes the password from stdin; the admin logs in and may read another user', async (t) => {
      const url = await freshDatabase(t, dialect.name)
      const created = await runCli(url, ['create-admin', '--username', 'root', '--email', 'root@example.com'], `${ADMIN_PASSWORD}\n`)
      assert.equal(created.code, 0, created.stderr)
      assert.match(created.stdout, /Created admin account id \d+/)
      assert.ok(!(created.stdout + created.stderr).includes(ADMIN_PASSWORD))

      const { app } = await buildTestApp(t, { dialect: dialect.name, databaseUrl: url })
      const other = await signup(app)
      const token = await login(app, 'root@example.com', ADMIN_PASSWORD)
      const read = await authed(app, token, { method: 'GET', url: `/users/${other.id}` })
      assert.equal(read.statusCode, 200, read.body)
      const row = await app.db.kysely.selectFrom('users').select(['role', 'hashed_password']).where('email_normalized', '=', 'root@example.com').executeTakeFirstOrThrow()
      assert.equal(row.role, 'admin')
      assert.match(row.hashed_password, /^\$argon2id\$/)
      const event = await app.db.kysely.selectFrom('audit_events').select(['type', 'detail']).where('type', '=', 'signup').executeTakeFirstOrThrow()
      assert.match(String(event.detail), /"source":"cli"/)
    })

    it('refuses a password on the command line, an empty stdin and a weak password, creating nothing', async (t) => {
      const url = await freshDatabase(t, dialect.name)
      const onArgv = await runCli(url, ['create-admin', '--username', 'root', '--email', 'root@example.com', '--password', 'Visible-Secret-991'])
      assert.equal(onArgv.code, 1)
      assert.match(onArgv.stderr, /does not accept a password on the command line/)
      assert.ok(!(onArgv.stdout + onArgv.stderr).includes('Visible-Secret-991'), 'the password is not echoed')

      const empty = await runCli(url, ['create-admin', '--username', 'root', '--email', 'root@example.com'], '')
      assert.equal(empty.code, 1)
      assert.match(empty.stderr, /No password on stdin/)

      const short = await runCli(url, ['create-admin', '--username', 'root', '--email', 'root@example.com'], 'short\n')
      assert.equal(short.code, 1)
      assert.match(short.stderr, /password: must be at least 8 characters/)

      const { app } = await buildTestApp(t, { dialect: dialect.name, databaseUrl: url })
      const users = await app.db.kysely.selectFrom('users').select('id').execute()
      assert.equal(users.length, 0)
    })

    it('refuses an email that is taken, pointing to --promote; --promote makes that account an admin and audits it', async (t) => {
      const url = await freshDatabase(t, dialect.name)
      const { app } = await buildTestApp(t, { dialect: dialect.name, databaseUrl: url })
      const user = await signup(app)

      const taken = await runCli(url, ['create-admin', '--username', 'someone', '--email', user.email.toUpperCase()], `${ADMIN_PASSWORD}\n`)
      assert.equal(taken.code, 1)
      assert.match(taken.stderr, /already exists/)
      assert.match(taken.stderr, /--promote/)

      const promoted = await runCli(url, ['create-admin', '--promote', '--email', user.email])
      assert.equal(promoted.code, 0, promoted.stderr)
      assert.match(promoted.stdout, /Promoted account id \d+/)
      const row = await app.db.kysely.selectFrom('users').select(['role', 'hashed_password']).where('id', '=', user.id).executeTakeFirstOrThrow()
      assert.equal(row.role, 'admin')
      assert.ok(!(promoted.stdout + promoted.stderr).includes(row.hashed_password))
      const events = await app.db.kysely.selectFrom('audit_events').select(['type', 'user_id', 'detail']).where('type', '=', 'role_change').execute()
      assert.equal(events.length, 1)
      assert.equal(events[0].user_id, user.id)
      assert.match(String(events[0].detail), /"role":"admin"/)

      const again = await runCli(url, ['create-admin', '--promote', '--email', user.email])
      assert.equal(again.code, 0)
      assert.match(again.stdout, /already an admin/)
      const unknown = await runCli(url, ['create-admin', '--promote', '--email', 'nobody@example.com'])
      assert.equal(unknown.code, 1)
      assert.match(unknown.stderr, /No account has the email/)
    })
  })
}

describe('admin CLI: backup', () => {
  it('copies the SQLite database while the app has it open; refuses to overwrite a file', async (t) => {
    const url = await freshDatabase(t, 'sqlite')
    const { app } = await buildTestApp(t, { dialect: 'sqlite', databaseUrl: url })
    const users = [await signup(app), await signup(app)]
    const dir = mkdtempSync(join(tmpdir(), 'uma-backup-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const copy = join(dir, 'copy.db')
    const result = await runCli(url, ['backup', '--to', copy])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /Copied .* to /)
    const backup = new SQLite(copy, { readonly: true })
    const emails = (backup.prepare('SELECT email FROM users ORDER BY id').all() as Array<{ email: string }>).map((row) => row.email)
    backup.close()
    assert.deepEqual(emails, users.map((user) => user.email))

    const again = await runCli(url, ['backup', '--to', copy])
    assert.equal(again.code, 1)
    assert.match(again.stderr, /exists already/)
  })

  it('points to pg_dump for PostgreSQL', { skip: DIALECTS[1].skip }, async (t) => {
    const url = await freshDatabase(t, 'postgres')
    const result = await runCli(url, ['backup', '--to', join(tmpdir(), 'never-written.db')])
    assert.equal(result.code, 1)
    assert.match(result.stderr, /pg_dump/)
  })
})

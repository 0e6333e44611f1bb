import assert from 'node:assert/strict'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import SQLite from 'better-sqlite3'
import pg from 'pg'
import { runCli } from './cli-process.js'
import { authed, buildTestApp, createTestDatabase, DIALECTS, json, signup, type DialectName } from './helpers.js'

// `import-fastapi`: the FastAPI app's users (../shared/fixtures/fastapi-legacy) come over with
// their ids and bcrypt hashes, log in with their old passwords and end up with argon2id hashes;
// a second run changes nothing; clashes are reported, never dropped silently.

const FIXTURES_DIR = process.env.FIXTURES_DIR ?? fileURLToPath(new URL('../../shared/fixtures', import.meta.url))
const LEGACY_DB = join(FIXTURES_DIR, 'fastapi-legacy', 'users.db')
const CREDENTIALS = join(FIXTURES_DIR, 'fastapi-legacy', 'credentials.json')
const FIXTURES_SKIP = existsSync(LEGACY_DB) && existsSync(CREDENTIALS) ? false : `legacy fixtures not found in ${FIXTURES_DIR} (set FIXTURES_DIR)`

interface Credential { id: number, username: string, email: string, password: string }
const credentials = (): Credential[] => (JSON.parse(readFileSync(CREDENTIALS, 'utf8')) as { users: Credential[] }).users

/** A copy of the fixture database (never the fixture itself), removed after the test. */
function fixtureCopy (t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'uma-import-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'fastapi.db')
  copyFileSync(LEGACY_DB, file)
  return file
}

async function target (t: TestContext, dialect: DialectName): Promise<string> {
  const database = await createTestDatabase(dialect)
  t.after(() => database.drop())
  return database.url
}

for (const dialect of DIALECTS) {
  describe(`import-fastapi into ${dialect.name}`, { skip: dialect.skip || FIXTURES_SKIP }, () => {
    it('keeps ids and hashes: every legacy user logs in with their password and gets argon2id; a second run imports nothing', async (t) => {
      const url = await target(t, dialect.name)
      const source = fixtureCopy(t)
      const users = credentials()
      const first = await runCli(url, ['import-fastapi', '--from', source])
      assert.equal(first.code, 0, first.stderr + first.stdout)
      assert.match(first.stdout, new RegExp(`imported ${users.length}: ids 1-${users.length}`))
      assert.match(first.stdout, /conflicts 0/)

      const { app } = await buildTestApp(t, { dialect: dialect.name, databaseUrl: url })
      for (const user of users) {
        const response = await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } })
        assert.equal(response.statusCode, 200, `${user.username}: ${response.body}`)
        const me = json(await authed(app, json(response).access_token, { method: 'GET', url: '/users/me' }))
        assert.deepEqual([me.id, me.username, me.email, me.role], [user.id, user.username, user.email, 'user'])
      }
      const rows = await app.db.kysely.selectFrom('users').select(['id', 'hashed_password']).orderBy('id').execute()
      assert.equal(rows.length, users.length)
      for (const row of rows) assert.match(row.hashed_password, /^\$argon2id\$/, `user ${row.id}`)

      // bcrypt used only the first 72 bytes; the upgraded hash is of the whole password typed.
      const long = users.find((user) => Buffer.byteLength(user.password) > 72)
      if (long) {
        const truncated = Buffer.from(long.password).subarray(0, 72).toString() + 'something else'
        const response = await app.inject({ method: 'POST', url: '/users/login', payload: { email: long.email, password: truncated } })
        assert.equal(response.statusCode, 401, 'after the upgrade every byte of the password counts')
      }

      const second = await runCli(url, ['import-fastapi', '--from', source])
      assert.equal(second.code, 0, second.stderr)
      assert.match(second.stdout, /imported 0/)
      assert.match(second.stdout, new RegExp(`skipped ${users.length} \\(already imported\\)`))
      assert.equal((await app.db.kysely.selectFrom('users').select('id').execute()).length, users.length)

      // The id sequence moved past the imported ids: a new signup does not collide.
      const newcomer = await signup(app)
      assert.ok(newcomer.id > users.length, `new id ${newcomer.id}`)
    })

    it('--dry-run reports what would happen and writes nothing', async (t) => {
      const url = await target(t, dialect.name)
      const dry = await runCli(url, ['import-fastapi', '--from', fixtureCopy(t), '--dry-run'])
      assert.equal(dry.code, 0, dry.stderr)
      assert.match(dry.stdout, /Dry run: nothing was written/)
      assert.match(dry.stdout, new RegExp(`imported ${credentials().length}`))
      if (dialect.name === 'sqlite') {
        assert.equal(existsSync(fileURLToPath(`file://${url.slice('sqlite:///'.length)}`)), false, 'not even the database file')
      } else {
        const client = new pg.Client({ connectionString: url })
        await client.connect()
        const tables = await client.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'users'")
        await client.end()
        assert.equal(tables.rows.length, 0, 'not even the schema')
      }
    })

    it('reports two accounts whose emails differ only in case, with what to do, and imports the rest (exit 1)', async (t) => {
      const url = await target(t, dialect.name)
      const source = fixtureCopy(t)
      const db = new SQLite(source)
      db.prepare("INSERT INTO users (id, username, email, hashed_password) SELECT 100, 'rohit_two', upper(email), hashed_password FROM users WHERE id = 1").run()
      db.close()
      const result = await runCli(url, ['import-fastapi', '--from', source])
      assert.equal(result.code, 1)
      const others = credentials().length - 1
      assert.match(result.stdout, new RegExp(`imported ${others}`))
      assert.match(result.stdout, /conflicts 2/)
      for (const id of [1, 100]) {
        const line = result.stdout.split('\n').find((text) => text.trim().startsWith(`id ${id},`))
        assert.ok(line, `conflict line for id ${id}:\n${result.stdout}`)
        assert.match(line, /once case is ignored/)
        assert.match(line, /To do: /)
      }
      const { app } = await buildTestApp(t, { dialect: dialect.name, databaseUrl: url })
      const ids = (await app.db.kysely.selectFrom('users').select('id').orderBy('id').execute()).map((row) => row.id)
      assert.deepEqual(ids, credentials().map((user) => user.id).filter((id) => id !== 1))
    })

    it('refuses a missing file or a database without a users table, writing nothing', async (t) => {
      const url = await target(t, dialect.name)
      const dir = mkdtempSync(join(tmpdir(), 'uma-import-'))
      t.after(() => rmSync(dir, { recursive: true, force: true }))
      const missing = await runCli(url, ['import-fastapi', '--from', join(dir, 'nope.db')])
      assert.equal(missing.code, 1)
      assert.match(missing.stderr, /no such file/)
      const other = join(dir, 'other.db')
      new SQLite(other).exec('CREATE TABLE accounts (id INTEGER PRIMARY KEY)').close()
      const wrong = await runCli(url, ['import-fastapi', '--from', other])
      assert.equal(wrong.code, 1)
      assert.match(wrong.stderr, /no users table/)
      const noFrom = await runCli(url, ['import-fastapi'])
      assert.equal(noFrom.code, 1)
      assert.match(noFrom.stderr, /--from is required/)
      const { app } = await buildTestApp(t, { dialect: dialect.name, databaseUrl: url })
      assert.equal((await app.db.kysely.selectFrom('users').select('id').execute()).length, 0)
    })
  })
}

describe('import-fastapi from a PostgreSQL source', { skip: DIALECTS[1].skip || FIXTURES_SKIP }, () => {
  it('reads the FastAPI layout from a postgres:// URL', async (t) => {
    const source = await createTestDatabase('postgres')
    t.after(() => source.drop())
    const client = new pg.Client({ connectionString: source.url })
    await client.connect()
    try {
      await client.query('CREATE TABLE users (id SERIAL PRIMARY KEY, username VARCHAR UNIQUE, email VARCHAR UNIQUE, hashed_password VARCHAR)')
      const legacy = new SQLite(LEGACY_DB, { readonly: true })
      const rows = legacy.prepare('SELECT id, username, email, hashed_password FROM users').all() as Array<{ id: number, username: string, email: string, hashed_password: string }>
      legacy.close()
      for (const row of rows) await client.query('INSERT INTO users (id, username, email, hashed_password) VALUES ($1, $2, $3, $4)', [row.id, row.username, row.email, row.hashed_password])
    } finally {
      await client.end()
    }
    const url = await target(t, 'sqlite')
    const result = await runCli(url, ['import-fastapi', '--from', source.url.replace(/^postgres:/, 'postgresql:')])
    assert.equal(result.code, 0, result.stderr + result.stdout)
    assert.match(result.stdout, new RegExp(`imported ${credentials().length}`))
    const { app } = await buildTestApp(t, { dialect: 'sqlite', databaseUrl: url })
    const bob = credentials().find((user) => user.username === 'bob_42') ?? credentials()[0]
    const response = await app.inject({ method: 'POST', url: '/users/login', payload: { email: bob.email, password: bob.password } })
    assert.equal(response.statusCode, 200, response.body)
  })
})

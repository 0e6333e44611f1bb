import assert from 'node:assert/strict'
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import SQLite from 'better-sqlite3'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { runCli } from './cli-process.js'
import { captureLogs, newUserData, signup } from './helpers.js'

// Data at rest is the service user's alone: the data directory 0700; the SQLite database, its
// -wal and -shm files, the generated JWT secret and `cli backup` copies 0600. The usual umask
// (022) would make them world-readable, so every test runs under it: a mode we did not set
// ourselves would show.
process.umask(0o022)

const mode = (path: string) => statSync(path).mode & 0o777

function scratch (t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'uma-modes-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Starts the app on the given environment (no JWT_SECRET: the secret file is generated), logs captured. */
async function start (t: TestContext, env: Record<string, string>) {
  const logs = captureLogs()
  const app = await buildApp(loadConfig({ RATE_LIMITS: 'off', ...env }), { logger: logs.logger })
  t.after(() => app.close())
  const permissionWarnings = () => logs.lines.filter((line) => line.level === 40 && /other users of this machine can read/.test(line.msg))
  return { app, permissionWarnings }
}

describe('data files on a fresh start', () => {
  it('creates the data directory 0700 and the database, its -wal and -shm and the JWT secret 0600', async (t) => {
    const dataDir = join(scratch(t), 'data')
    const { app, permissionWarnings } = await start(t, { DATA_DIR: dataDir })
    await signup(app)
    const database = join(dataDir, 'users.db')
    assert.equal(mode(dataDir), 0o700)
    for (const file of [database, `${database}-wal`, `${database}-shm`, join(dataDir, 'jwt-secret')]) {
      assert.ok(existsSync(file), `${file} exists (the app is running in WAL mode)`)
      assert.equal(mode(file), 0o600, file)
    }
    assert.deepEqual(permissionWarnings(), [])
  })

  it('creates every missing directory of a DATABASE_URL path 0700', async (t) => {
    const base = scratch(t)
    const database = join(base, 'var', 'lib', 'users.db')
    const { app } = await start(t, { DATA_DIR: join(base, 'data'), DATABASE_URL: `sqlite:///${database}` })
    await signup(app)
    assert.equal(mode(join(base, 'var')), 0o700)
    assert.equal(mode(join(base, 'var', 'lib')), 0o700)
    assert.equal(mode(database), 0o600)
    assert.equal(mode(`${database}-wal`), 0o600)
  })

  it('leaves an existing directory as it is', async (t) => {
    const dataDir = scratch(t)
    chmodSync(dataDir, 0o750)
    await start(t, { DATA_DIR: dataDir })
    assert.equal(mode(dataDir), 0o750)
    assert.equal(mode(join(dataDir, 'users.db')), 0o600)
  })
})

describe('data files readable by others at start', () => {
  it('warns, naming each file, its mode and the chmod that fixes it, and changes nothing', async (t) => {
    const dataDir = join(scratch(t), 'my data')
    const database = join(dataDir, 'users.db')
    const first = await start(t, { DATA_DIR: dataDir })
    const user = await signup(first.app, newUserData())
    await first.app.close()
    // As an older version (or a copy with cp) would have left them.
    chmodSync(database, 0o644)
    chmodSync(join(dataDir, 'jwt-secret'), 0o640)

    const { app, permissionWarnings } = await start(t, { DATA_DIR: dataDir })
    const [warning, ...more] = permissionWarnings()
    assert.equal(more.length, 0)
    const loose = [database, `${database}-wal`, `${database}-shm`, join(dataDir, 'jwt-secret')]
    assert.deepEqual(warning.files.map((file: { path: string }) => file.path), loose)
    assert.deepEqual(warning.files.map((file: { mode: string }) => file.mode), ['0644', '0644', '0644', '0640'])
    assert.ok(warning.msg.includes(`${database} (mode 0644)`), warning.msg)
    assert.ok(warning.msg.endsWith(`chmod 600 ${loose.map((path) => `'${path}'`).join(' ')}`), warning.msg)
    // Still serving, and the operator's modes are theirs to change.
    assert.equal((await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } })).statusCode, 200)
    assert.equal(mode(database), 0o644)
  })

  it('says nothing once the files are owner-only again', async (t) => {
    const dataDir = scratch(t)
    const database = join(dataDir, 'users.db')
    const first = await start(t, { DATA_DIR: dataDir })
    await first.app.close()
    chmodSync(database, 0o604)
    assert.equal((await start(t, { DATA_DIR: dataDir })).permissionWarnings().length, 1)
    // Closing the app checkpoints and removes -wal and -shm; the next start recreates them from the database's mode.
    chmodSync(database, 0o600)
    for (const companion of [`${database}-wal`, `${database}-shm`]) if (existsSync(companion)) chmodSync(companion, 0o600)
    assert.deepEqual((await start(t, { DATA_DIR: dataDir })).permissionWarnings(), [])
  })
})

describe('cli backup', () => {
  it('writes the copy 0600 while the app has the database open', async (t) => {
    const dir = scratch(t)
    const url = `sqlite:///${join(dir, 'users.db')}`
    await start(t, { DATA_DIR: dir, DATABASE_URL: url })
    const copy = join(dir, 'copy.db')
    const result = await runCli(url, ['backup', '--to', copy])
    assert.equal(result.code, 0, result.stderr)
    assert.equal(mode(copy), 0o600)
    const backup = new SQLite(copy, { readonly: true })
    t.after(() => backup.close())
    assert.ok((backup.prepare('SELECT count(*) AS n FROM kysely_migration').get() as { n: number }).n > 0, 'the copy holds the schema')
  })

  it('refuses a destination it cannot create, saying why, and creates nothing', async (t) => {
    const dir = scratch(t)
    const url = `sqlite:///${join(dir, 'users.db')}`
    await start(t, { DATA_DIR: dir, DATABASE_URL: url })
    const result = await runCli(url, ['backup', '--to', join(dir, 'missing-dir', 'copy.db')])
    assert.equal(result.code, 1)
    assert.match(result.stderr, /cannot create .*missing-dir\/copy\.db/)
    assert.equal(existsSync(join(dir, 'missing-dir')), false)
  })
})

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import SQLite from 'better-sqlite3'
import type { FastifyInstance } from 'fastify'
import { normalizeEmail, normalizeUsername } from '../src/users/identity.js'
import { authed, DIALECTS, json, login, useSuiteApp } from './helpers.js'

// Users written by the FastAPI app this project replaces: bcrypt ($2b$, cost 12) hashes in its
// SQLite file, plaintexts in credentials.json. See ../../shared/fixtures/README.md.
const FIXTURES_DIR = process.env.FIXTURES_DIR ?? fileURLToPath(new URL('../../shared/fixtures', import.meta.url))
const LEGACY_DIR = join(FIXTURES_DIR, 'fastapi-legacy')
const DB_FILE = join(LEGACY_DIR, 'users.db')
const CREDENTIALS_FILE = join(LEGACY_DIR, 'credentials.json')
const FIXTURES_SKIP = existsSync(DB_FILE) && existsSync(CREDENTIALS_FILE)
  ? false
  : `legacy fixtures not found in ${LEGACY_DIR} (set FIXTURES_DIR to the shared fixtures directory)`

interface LegacyUser { id: number, username: string, email: string, hashed_password: string, password: string }

/** The legacy rows joined with their plaintexts; the fixture file is opened read-only. */
function readLegacyUsers (): LegacyUser[] {
  const credentials = JSON.parse(readFileSync(CREDENTIALS_FILE, 'utf8')) as { users: Array<{ id: number, email: string, password: string }> }
  const db = new SQLite(DB_FILE, { readonly: true, fileMustExist: true })
  try {
    const rows = db.prepare('SELECT id, username, email, hashed_password FROM users ORDER BY id').all() as Array<Omit<LegacyUser, 'password'>>
    return rows.map((row) => {
      const credential = credentials.users.find((c) => c.id === row.id && c.email === row.email)
      if (!credential) throw new Error(`credentials.json has no password for legacy user ${row.id}`)
      return { ...row, password: credential.password }
    })
  } finally {
    db.close()
  }
}

const fixtureDigest = () => createHash('sha256').update(readFileSync(DB_FILE)).digest('hex')

/** Copies the legacy users into our users table as an import would; returns our ids by legacy id. */
async function importLegacyUsers (app: FastifyInstance, users: LegacyUser[]): Promise<Map<number, number>> {
  const now = new Date().toISOString()
  const ids = new Map<number, number>()
  for (const user of users) {
    const row = await app.db.kysely.insertInto('users').values({
      username: user.username,
      username_normalized: normalizeUsername(user.username),
      email: user.email,
      email_normalized: normalizeEmail(user.email),
      hashed_password: user.hashed_password,
      role: 'user',
      created_at: now,
      updated_at: now
    }).returning('id').executeTakeFirstOrThrow()
    ids.set(user.id, row.id)
  }
  return ids
}

describe('legacy fixtures', { skip: FIXTURES_SKIP }, () => {
  it('hold bcrypt hashes and the edge cases the tests rely on', () => {
    const users = readLegacyUsers()
    assert.ok(users.length >= 5)
    for (const user of users) assert.match(user.hashed_password, /^\$2[aby]\$/, user.email)
    assert.ok(users.some((u) => u.password.length === 4), 'a 4-character password')
    assert.ok(users.some((u) => Buffer.byteLength(u.password) === 80), 'an 80-byte password')
    assert.ok(users.some((u) => u.email !== u.email.toLowerCase()), 'a mixed-case email')
    assert.ok(users.some((u) => [...u.username + u.password].some((ch) => ch.codePointAt(0)! > 0x7F)), 'non-ASCII username or password')
  })
})

for (const dialect of DIALECTS) {
  describe(`legacy bcrypt accounts (${dialect.name})`, { skip: dialect.skip || FIXTURES_SKIP }, () => {
    const suite = useSuiteApp({ dialect: dialect.name })
    let legacy: LegacyUser[] = []
    let ids = new Map<number, number>()
    let digestBefore = ''
    const hashOf = async (legacyId: number) => (await suite().app.db.kysely.selectFrom('users').select('hashed_password')
      .where('id', '=', ids.get(legacyId)!).executeTakeFirstOrThrow()).hashed_password
    const find = (predicate: (user: LegacyUser) => boolean, what: string) => {
      const user = legacy.find(predicate)
      assert.ok(user, `no legacy user with ${what}`)
      return user
    }

    before(async () => {
      digestBefore = fixtureDigest()
      legacy = readLegacyUsers()
      ids = await importLegacyUsers(suite().app, legacy)
    })

    // First: it needs a user whose hash is still bcrypt.
    it('answers a wrong password for a bcrypt user with 401 and leaves the bcrypt hash untouched', async () => {
      const { app } = suite()
      const user = legacy[0]
      const before = await hashOf(user.id)
      assert.match(before, /^\$2[aby]\$/)
      const response = await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: `${user.password}-wrong` } })
      assert.equal(response.statusCode, 401)
      assert.deepEqual(json(response), { detail: 'Incorrect email or password' })
      assert.equal(await hashOf(user.id), before)
    })

    it('lets the 4-character-password user log in (legacy accounts predate the policy)', async () => {
      const { app } = suite()
      const user = find((u) => u.password.length === 4, 'a 4-character password')
      const token = await login(app, user.email, user.password)
      assert.equal((await authed(app, token, { method: 'GET', url: `/users/${ids.get(user.id)}` })).statusCode, 200)
      assert.match(await hashOf(user.id), /^\$argon2id\$/)
      await login(app, user.email, user.password)
    })

    it('lets the 80-byte-password user log in with the full password, before and after the upgrade', async () => {
      const { app } = suite()
      const user = find((u) => Buffer.byteLength(u.password) === 80, 'an 80-byte password')
      await login(app, user.email, user.password)
      assert.match(await hashOf(user.id), /^\$argon2id\$/)
      await login(app, user.email, user.password)
    })

    it('lets the mixed-case-email user log in with the email in any case', async () => {
      const { app } = suite()
      const user = find((u) => u.email !== u.email.toLowerCase(), 'a mixed-case email')
      await login(app, user.email.toLowerCase(), user.password)
      await login(app, user.email.toUpperCase(), user.password)
      await login(app, user.email, user.password)
    })

    it('lets every legacy user log in and read their own account; their hash is then argon2id and still works', async () => {
      const { app } = suite()
      for (const user of legacy) {
        const token = await login(app, user.email, user.password)
        const response = await authed(app, token, { method: 'GET', url: `/users/${ids.get(user.id)}` })
        assert.equal(response.statusCode, 200, user.email)
        assert.equal(json(response).username, user.username)
        assert.equal(json(response).email, user.email)
        const hash = await hashOf(user.id)
        assert.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, user.email)
        await login(app, user.email, user.password)
        assert.equal(await hashOf(user.id), hash, `${user.email}: a current argon2id hash is not rehashed`)
      }
      const wrong = await app.inject({ method: 'POST', url: '/users/login', payload: { email: legacy[0].email, password: `${legacy[0].password}-wrong` } })
      assert.equal(wrong.statusCode, 401)
    })

    it('left the fixture database unmodified', () => {
      assert.equal(fixtureDigest(), digestBefore)
    })
  })
}

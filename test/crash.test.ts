import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import SQLite from 'better-sqlite3'
import pg from 'pg'
import { createTestDatabase, DIALECTS, newUserData, type DialectName } from './helpers.js'
import { request, startServer, type ServerProcess } from './server-process.js'

// Crash consistency: SIGKILL the real server in the middle of a burst of signups, restart it,
// and check that every acknowledged signup survived and nothing half-written did.

const ROUNDS = 3
const CONCURRENCY = 12

interface StoredUser { id: number, username: string, email: string, hashed_password: string, signup_events: number }

async function readUsers (dialect: DialectName, url: string): Promise<StoredUser[]> {
  const query = `select u.id, u.username, u.email, u.hashed_password,
    (select count(*) from audit_events a where a.user_id = u.id and a.type = 'signup') as signup_events
    from users u order by u.id`
  if (dialect === 'sqlite') {
    const db = new SQLite(url.replace(/^sqlite:\/\//, ''), { readonly: true })
    try {
      return db.prepare(query).all() as StoredUser[]
    } finally {
      db.close()
    }
  }
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query(query)).rows.map((row) => ({ ...row, signup_events: Number(row.signup_events) }))
  } finally {
    await client.end()
  }
}

for (const dialect of DIALECTS) {
  describe(`crash consistency (${dialect.name})`, { skip: dialect.skip }, () => {
    it(`keeps every acknowledged signup and no half-written account across ${ROUNDS} SIGKILLs`, async (t: TestContext) => {
      const dataDir = mkdtempSync(join(tmpdir(), 'uma-crash-'))
      t.after(() => rmSync(dataDir, { recursive: true, force: true }))
      const database = await createTestDatabase(dialect.name)
      t.after(() => database.drop())
      const env = { DATABASE_URL: database.url, DATA_DIR: dataDir, RATE_LIMITS: 'off' }
      const start = () => startServer(t, env, { cwd: dataDir })

      const attempted = new Map<string, ReturnType<typeof newUserData>>()
      const acknowledged = new Map<string, number>()
      const verified = new Set<number>()
      const unexpected: string[] = []

      const burst = async (server: ServerProcess) => {
        let killed = false
        const clients = Array.from({ length: CONCURRENCY }, async () => {
          while (!killed) {
            const user = newUserData('crash')
            attempted.set(user.email, user)
            try {
              const response = await request(`${server.url}/users/signup`, { method: 'POST', body: user, timeoutMs: 5000 })
              if (response.status === 201) acknowledged.set(user.email, response.json().user_id)
              else unexpected.push(`${response.status} ${response.body}`)
            } catch {
              // The connection died with the process: outcome unknown, either way is fine.
            }
          }
        })
        await sleep(150 + Math.random() * 600)
        server.child.kill('SIGKILL')
        await server.exited
        killed = true
        await Promise.all(clients)
      }

      const verify = async (server: ServerProcess) => {
        const stored = await readUsers(dialect.name, database.url)
        const byEmail = new Map(stored.map((row) => [row.email, row]))
        for (const [email, id] of acknowledged) {
          assert.equal(byEmail.get(email)?.id, id, `acknowledged signup ${email} (id ${id}) is missing after the crash`)
        }
        const fresh = stored.filter((row) => !verified.has(row.id))
        for (const row of fresh) {
          const sent = attempted.get(row.email)
          assert.ok(sent, `an account nobody asked for: ${row.email}`)
          assert.equal(row.username, sent.username)
          assert.match(row.hashed_password, /^\$argon2id\$v=19\$/)
          assert.equal(row.signup_events, 1, `account ${row.id} has no signup audit event (half-written)`)
        }
        // Every stored account, acknowledged or not, logs in with the password it was created with.
        for (let i = 0; i < fresh.length; i += 4) {
          await Promise.all(fresh.slice(i, i + 4).map(async (row) => {
            const login = await request(`${server.url}/users/login`, { method: 'POST', body: { email: row.email, password: attempted.get(row.email)!.password } })
            assert.equal(login.status, 200, `account ${row.id} cannot log in: ${login.body}`)
            verified.add(row.id)
          }))
        }
        return { stored: stored.length, fresh: fresh.length }
      }

      let server = await start()
      for (let round = 1; round <= ROUNDS; round++) {
        const before = acknowledged.size
        await burst(server)
        server = await start()
        const { stored, fresh } = await verify(server)
        t.diagnostic(`round ${round}: ${acknowledged.size - before} acknowledged, ${fresh} new accounts stored (${stored} in all), ${attempted.size} attempted so far`)
      }
      assert.deepEqual(unexpected, [])
      assert.ok(acknowledged.size > 0, 'some signups were acknowledged before the kills')
      server.child.kill('SIGTERM')
      assert.equal((await server.exited).code, 0)
    })
  })
}

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import SQLite from 'better-sqlite3'
import type { FastifyInstance, InjectOptions } from 'fastify'
import { authed, buildTestApp, createTestDatabase, createUser, DIALECTS, json, newUserData } from './helpers.js'
import { createTcpProxy } from './server-process.js'

const postgres = DIALECTS.find((dialect) => dialect.name === 'postgres')!

/** Runs a request and says how long it took. */
async function timed (app: FastifyInstance, options: InjectOptions) {
  const started = Date.now()
  const response = await app.inject(options)
  return { response, ms: Date.now() - started }
}

/** The database-unavailable answer: 503, Retry-After, a plain detail and nothing internal. */
function assertUnavailable (response: Awaited<ReturnType<FastifyInstance['inject']>>, label: string) {
  assert.equal(response.statusCode, 503, `${label}: ${response.body}`)
  assert.ok(Number(response.headers['retry-after']) >= 1, `${label}: Retry-After`)
  assert.deepEqual(Object.keys(json(response)), ['detail'])
  assert.doesNotMatch(response.body, /ECONN|SQLITE|terminated|timeout exceeded|stack|at /i, label)
}

function metricValue (text: string, series: string): number {
  const line = text.split('\n').find((candidate) => candidate.startsWith(series + ' '))
  return Number(line?.split(' ').at(-1))
}

describe('PostgreSQL outage', { skip: postgres.skip }, () => {
  it('answers 503 with Retry-After within seconds while PostgreSQL is unreachable, and recovers by itself', async (t) => {
    const database = await createTestDatabase('postgres')
    const target = new URL(database.url)
    const proxy = await createTcpProxy(target.hostname, Number(target.port || 5432))
    const proxied = new URL(database.url)
    proxied.hostname = '127.0.0.1'
    proxied.port = String(proxy.port)
    const { app } = await buildTestApp(t, { dialect: 'postgres', databaseUrl: proxied.toString(), env: { DB_TIMEOUT_MS: '1000' } })
    t.after(async () => {
      await proxy.close()
      await database.drop()
    })

    const user = await createUser(app)
    const own = { method: 'GET', url: `/users/${user.id}` } as const
    assert.equal((await authed(app, user.token, own)).statusCode, 200)

    const outage = async (label: string, limitMs: number) => {
      // Every kind of request that needs the database: the token check, a login, a signup, a write.
      const checks: Array<[string, () => Promise<{ response: any, ms: number }>]> = [
        ['authenticated read', () => timed(app, { ...own, headers: { authorization: `Bearer ${user.token}` } })],
        ['login', () => timed(app, { method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } })],
        ['signup', () => timed(app, { method: 'POST', url: '/users/signup', payload: newUserData() })],
        ['update', () => timed(app, { method: 'PUT', url: `/users/${user.id}`, payload: { username: `renamed${Date.now()}` }, headers: { authorization: `Bearer ${user.token}` } })]
      ]
      const took: string[] = []
      for (const [name, run] of checks) {
        const { response, ms } = await run()
        assertUnavailable(response, `${label} ${name}`)
        assert.ok(ms < limitMs, `${label} ${name} took ${ms} ms`)
        took.push(`${name} ${ms} ms`)
      }
      t.diagnostic(`${label}: 503 after ${took.join(', ')}`)
      const ready = await timed(app, { method: 'GET', url: '/health/ready' })
      assert.equal(ready.response.statusCode, 503)
      assert.equal(json(ready.response).detail, 'Database unavailable')
      assert.ok(ready.ms < limitMs, `${label} readiness took ${ready.ms} ms`)
      assert.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200)
    }
    const recovered = async () => {
      assert.equal((await authed(app, user.token, own)).statusCode, 200)
      assert.equal((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200)
      assert.equal((await app.inject({ method: 'POST', url: '/users/signup', payload: newUserData() })).statusCode, 201)
    }

    // Down: open connections dropped, new ones refused.
    await proxy.refuse()
    await outage('refused', 2000)
    await proxy.up()
    await recovered()

    // Partitioned: connections accepted but never answered; the connect timeout (1 s) decides.
    await proxy.blackhole()
    await outage('blackholed', 2500)
    await proxy.up()
    await recovered()

    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    assert.ok(metricValue(metrics, 'db_errors_total{kind="unavailable"}') >= 10)
    assert.equal(metricValue(metrics, 'db_errors_total{kind="query"}'), 0)
  })
})

describe('SQLite locked', () => {
  it('answers 503 with Retry-After when another process holds the write lock past the busy timeout, and recovers', async (t) => {
    const { app, databaseUrl } = await buildTestApp(t, { dialect: 'sqlite', env: { DB_TIMEOUT_MS: '200' } })
    const user = await createUser(app)
    const locker = new SQLite(databaseUrl.replace(/^sqlite:\/\//, ''))
    t.after(() => locker.close())

    locker.exec('BEGIN EXCLUSIVE')
    const checks: Array<[string, InjectOptions]> = [
      ['signup', { method: 'POST', url: '/users/signup', payload: newUserData() }],
      ['login', { method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } }],
      ['update', { method: 'PUT', url: `/users/${user.id}`, payload: { username: 'renamed1' }, headers: { authorization: `Bearer ${user.token}` } }],
      ['delete', { method: 'DELETE', url: `/users/${user.id}`, headers: { authorization: `Bearer ${user.token}` } }]
    ]
    const took: string[] = []
    for (const [name, options] of checks) {
      const { response, ms } = await timed(app, options)
      assertUnavailable(response, name)
      assert.ok(ms < 1500, `${name} took ${ms} ms`)
      took.push(`${name} ${ms} ms`)
    }
    t.diagnostic(`locked: 503 after ${took.join(', ')}`)
    // WAL readers are not blocked by a writer: reads (and the token check) still work.
    assert.equal((await authed(app, user.token, { method: 'GET', url: `/users/${user.id}` })).statusCode, 200)
    locker.exec('ROLLBACK')

    assert.equal((await app.inject({ method: 'POST', url: '/users/signup', payload: newUserData() })).statusCode, 201)
    const renamed = await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { username: 'renamed2' } })
    assert.equal(renamed.statusCode, 200)
    assert.equal(json(renamed).username, 'renamed2')
    // The refused delete did not happen.
    assert.ok(await app.db.kysely.selectFrom('users').select('id').where('id', '=', user.id).executeTakeFirst())
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    assert.equal(metricValue(metrics, 'db_errors_total{kind="unavailable"}'), checks.length)
  })
})

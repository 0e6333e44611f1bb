import assert from 'node:assert/strict'
import { randomBytes, randomInt } from 'node:crypto'
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { describe, it, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { Redis } from 'ioredis'
import { lockoutKey } from '../src/auth/lockout.js'
import { normalizeEmail } from '../src/users/identity.js'
import { authed, buildTestApp, createClock, createTestDatabase, DIALECTS, json, REDIS_SKIP, signup, TEST_REDIS_URL } from './helpers.js'

// Limits shared through Redis (REDIS_URL): two app instances on one database and one Redis see
// the same lockout and per-IP counters. Redis down: logins go on (fail open) and enforcement
// comes back with Redis. Runs on the Redis database TEST_REDIS_URL names (CI: /15) and touches
// only its own keys (random emails and addresses; deleted afterwards), never FLUSHDB.

const LOCKOUT_PREFIX = 'uma:lockout:'
const IP_PREFIX = 'uma:ip:'
const LIMITED_ROUTES = ['POST/users/signup', 'POST/users/login', 'POST/users/refresh']

function attempt (app: FastifyInstance, email: string, password: string, remoteAddress: string): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/users/login', payload: { email, password }, remoteAddress })
}

async function signupFrom (app: FastifyInstance, remoteAddress: string) {
  const body = { username: `r${randomBytes(6).toString('hex')}`, email: randomEmail(), password: 'redis-Shared-secret-1' }
  const response = await app.inject({ method: 'POST', url: '/users/signup', payload: body, remoteAddress })
  assert.equal(response.statusCode, 201, response.body)
  return { id: json(response).user_id as number, ...body }
}

function randomEmail (): string {
  return `redis-${randomBytes(6).toString('hex')}@example.com`
}

function randomAddress (): string {
  return `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`
}

/**
 * A Redis client for the test's own checks, and a random client address for the test's requests;
 * the keys registered with it (and the address's per-IP counters) are deleted when the test ends.
 */
function testRedis (t: TestContext) {
  const redis = new Redis(TEST_REDIS_URL!, { maxRetriesPerRequest: 1 })
  const keys = new Set<string>()
  const ipKeyOf = (address: string, route = 'POST/users/login') => {
    for (const limited of LIMITED_ROUTES) keys.add(`${IP_PREFIX}${limited}-${address}`)
    return `${IP_PREFIX}${route}-${address}`
  }
  const address = randomAddress()
  ipKeyOf(address)
  t.after(async () => {
    await redis.del(...keys)
    await redis.quit()
  })
  return {
    redis,
    address,
    lockoutKeyOf: (email: string) => {
      const key = LOCKOUT_PREFIX + lockoutKey(normalizeEmail(email))
      keys.add(key)
      return key
    },
    ipKeyOf
  }
}

/** Polls until check() is true; fails after timeoutMs. For waiting on a reconnect, not on app time. */
async function eventually (what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`)
    await sleep(50)
  }
}

/** A TCP proxy between the app and Redis, which the test can stop and start again on the same port. */
function createProxy (target: { host: string, port: number }) {
  const sockets = new Set<Socket>()
  let server: Server | undefined
  const start = (port = 0) => new Promise<number>((resolve, reject) => {
    server = createServer((client) => {
      const upstream = connect(target.port, target.host)
      sockets.add(client)
      sockets.add(upstream)
      const close = () => {
        client.destroy()
        upstream.destroy()
        sockets.delete(client)
        sockets.delete(upstream)
      }
      client.on('error', close).on('close', close)
      upstream.on('error', close).on('close', close)
      client.pipe(upstream).pipe(client)
    })
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve((server!.address() as AddressInfo).port))
  })
  const stop = () => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy()
    sockets.clear()
    if (server === undefined || !server.listening) return resolve()
    server.close(() => resolve())
  })
  return { start, stop }
}

for (const dialect of DIALECTS) {
  describe(`two instances sharing Redis (${dialect.name})`, { skip: REDIS_SKIP || dialect.skip }, () => {
    async function twoInstances (t: TestContext, env: Record<string, string> = {}) {
      const clock = createClock(Date.now())
      const database = await createTestDatabase(dialect.name)
      const options = { dialect: dialect.name, databaseUrl: database.url, env: { REDIS_URL: TEST_REDIS_URL!, ...env }, overrides: { now: clock.now } }
      const { app: a } = await buildTestApp(t, options)
      const { app: b } = await buildTestApp(t, options)
      t.after(() => database.drop())
      return { a, b, clock }
    }

    it('locks the account on both when its failures are spread across them', async (t) => {
      const { a, b, clock } = await twoInstances(t)
      const { redis, lockoutKeyOf, address } = testRedis(t)
      const user = await signupFrom(a, address)
      const key = lockoutKeyOf(user.email)

      for (const [app, times] of [[a, 3], [b, 2]] as const) {
        for (let i = 0; i < times; i++) assert.equal((await attempt(app, user.email, 'not-the-password-1', address)).statusCode, 401)
      }
      for (const app of [a, b]) {
        const refused = await attempt(app, user.email, user.password, address)
        assert.equal(refused.statusCode, 429, refused.body)
        assert.equal(refused.headers['retry-after'], '60')
      }
      assert.equal(await redis.hget(key, 'failures'), '5', 'one record in Redis')
      assert.ok(!key.includes(user.email.split('@')[0]), 'Redis keys do not hold the address')

      // The lock ends for both; a success on B resets the record for A too.
      clock.advance(60_000)
      assert.equal((await attempt(b, user.email, user.password, address)).statusCode, 200)
      assert.equal(await redis.exists(key), 0)
      for (let i = 0; i < 4; i++) assert.equal((await attempt(i % 2 ? a : b, user.email, 'not-the-password-1', address)).statusCode, 401)
      assert.equal((await attempt(a, user.email, user.password, address)).statusCode, 200)
    })

    it('starts one 60 s lock when concurrent failures on both instances race past the check', async (t) => {
      const { a, b, clock } = await twoInstances(t)
      const { lockoutKeyOf, address } = testRedis(t)
      const user = await signupFrom(a, address)
      lockoutKeyOf(user.email)
      const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => attempt(i % 2 ? a : b, user.email, 'not-the-password-1', address)))
      for (const response of burst) assert.ok([401, 429].includes(response.statusCode), response.body)
      assert.equal(burst.filter((response) => response.statusCode === 401).length, 5, 'exactly 5 passwords checked across both instances')
      for (const app of [a, b]) assert.equal((await attempt(app, user.email, user.password, address)).headers['retry-after'], '60')
      clock.advance(60_000)
      assert.equal((await attempt(b, user.email, user.password, address)).statusCode, 200)
    })

    it('shares the per-IP limit', async (t) => {
      const { a, b } = await twoInstances(t, { LOGIN_IP_LIMIT: '3/5m' })
      const { redis, ipKeyOf, lockoutKeyOf, address } = testRedis(t)
      const ipKey = ipKeyOf(address)
      const from = (app: FastifyInstance, remoteAddress = address) => {
        const email = randomEmail()
        lockoutKeyOf(email)
        return attempt(app, email, 'x', remoteAddress)
      }
      assert.equal((await from(a)).statusCode, 401)
      assert.equal((await from(a)).statusCode, 401)
      assert.equal((await from(b)).statusCode, 401)
      for (const app of [b, a]) {
        const refused = await from(app)
        assert.equal(refused.statusCode, 429)
        assert.ok(Number(refused.headers['retry-after']) > 0)
      }
      assert.equal(await redis.get(ipKey), '5', 'one counter in Redis')
      const other = randomAddress()
      ipKeyOf(other)
      assert.equal((await from(b, other)).statusCode, 401, 'another address is not limited')
    })

    it('refuses on B a session revoked through A', async (t) => {
      const { a, b } = await twoInstances(t)
      const { address } = testRedis(t)
      const user = await signupFrom(a, address)
      const response = await attempt(a, user.email, user.password, address)
      assert.equal(response.statusCode, 200)
      const token = json(response).access_token
      assert.equal((await authed(b, token, { method: 'GET', url: '/users/me' })).statusCode, 200)
      assert.equal((await authed(a, token, { method: 'POST', url: '/users/logout' })).statusCode, 204)
      const refused = await authed(b, token, { method: 'GET', url: '/users/me' })
      assert.equal(refused.statusCode, 401)
      assert.equal(json(refused).detail, 'Could not validate credentials')
    })
  })
}

describe('Redis unavailable: fail open', () => {
  it('starts within a few seconds with Redis on a closed port, and logins work (no 429, no 500)', async (t) => {
    const started = Date.now()
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { REDIS_URL: 'redis://127.0.0.1:1', LOGIN_IP_LIMIT: '2/5m', SIGNUP_IP_LIMIT: '1/5m' } })
    assert.ok(Date.now() - started < 6000, `start took ${Date.now() - started} ms`)
    const user = await signup(app)
    assert.equal((await app.inject({ method: 'POST', url: '/users/signup', payload: { username: 'second', email: 'second@example.com', password: 'another-Secret-1' } })).statusCode, 201)
    for (let i = 0; i < 7; i++) assert.equal((await attempt(app, user.email, 'not-the-password-1', '127.0.0.1')).statusCode, 401)
    const ok = await attempt(app, user.email, user.password, '127.0.0.1')
    assert.equal(ok.statusCode, 200, ok.body)
    assert.ok(json(ok).access_token)
    assert.equal((await authed(app, json(ok).access_token, { method: 'GET', url: '/users/me' })).statusCode, 200)
  })
})

describe('Redis outage and recovery', { skip: REDIS_SKIP }, () => {
  it('lets logins through while Redis is unreachable and enforces the lockout again when it returns', async (t) => {
    const target = new URL(TEST_REDIS_URL!)
    const proxy = createProxy({ host: target.hostname, port: Number(target.port || 6379) })
    t.after(() => proxy.stop())
    const port = await proxy.start()
    const proxied = new URL(TEST_REDIS_URL!)
    proxied.hostname = '127.0.0.1'
    proxied.port = String(port)
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { REDIS_URL: proxied.toString() } })
    const { redis, lockoutKeyOf, address } = testRedis(t)
    const user = await signupFrom(app, address)
    lockoutKeyOf(user.email)
    const attemptFrom = (email: string, password: string) => attempt(app, email, password, address)

    // An address locked in Redis (as another instance would have left it).
    const locked = randomEmail()
    const lockedKey = lockoutKeyOf(locked)
    await redis.hset(lockedKey, { failures: 5, locks: 1, lockedUntil: Date.now() + 600_000 })
    await redis.pexpire(lockedKey, 600_000)
    assert.equal((await attemptFrom(locked, 'x')).statusCode, 429, 'enforced through the proxy')

    // Redis goes away: no 429 and no 500; the right password logs in, wrong ones get 401.
    await proxy.stop()
    await eventually('the lock is no longer enforced', async () => (await attemptFrom(locked, 'x')).statusCode === 401)
    for (let i = 0; i < 6; i++) assert.equal((await attemptFrom(user.email, 'not-the-password-1')).statusCode, 401)
    assert.equal((await attemptFrom(user.email, user.password)).statusCode, 200)

    // Redis returns: the existing lock and new failures count again.
    await proxy.start(port)
    await eventually('the lock is enforced again', async () => {
      const response = await attemptFrom(locked, 'x')
      assert.ok([401, 429].includes(response.statusCode), response.body)
      return response.statusCode === 429
    })
    for (let i = 0; i < 5; i++) assert.equal((await attemptFrom(user.email, 'not-the-password-1')).statusCode, 401)
    assert.equal((await attemptFrom(user.email, user.password)).statusCode, 429)
  })
})

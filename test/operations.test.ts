import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { loadConfig } from '../src/config.js'
import { LATEST_MIGRATION } from '../src/db/migrate.js'
import { authed, buildTestApp, captureLogs, createUser, DIALECTS, json, newUserData, signup } from './helpers.js'
import { connect, readUntilClose } from './server-process.js'

/** The value of one series in Prometheus text, or undefined. */
function metric (text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue
    const series = line.slice(0, line.lastIndexOf(' '))
    if (Object.entries(labels).every(([key, value]) => series.includes(`${key}="${value}"`))) {
      return Number(line.slice(line.lastIndexOf(' ') + 1))
    }
  }
  return undefined
}

for (const dialect of DIALECTS) {
  describe(`health checks (${dialect.name})`, { skip: dialect.skip }, () => {
    it('answers live and ready with 200 when the database is up and migrated', async (t) => {
      const { app } = await buildTestApp(t, { dialect: dialect.name })
      const live = await app.inject({ method: 'GET', url: '/health/live' })
      assert.equal(live.statusCode, 200)
      assert.deepEqual(json(live), { status: 'ok' })
      const ready = await app.inject({ method: 'GET', url: '/health/ready' })
      assert.equal(ready.statusCode, 200)
      assert.deepEqual(json(ready), { status: 'ok' })
    })

    it('reports 503 on /health/ready when a migration is missing', async (t) => {
      const { app } = await buildTestApp(t, { dialect: dialect.name })
      await app.db.kysely.deleteFrom('kysely_migration' as any).where('name', '=', LATEST_MIGRATION).execute()
      const ready = await app.inject({ method: 'GET', url: '/health/ready' })
      assert.equal(ready.statusCode, 503)
      assert.match(json(ready).detail, /schema is not current/)
      assert.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200)
    })
  })
}

describe('health checks during shutdown', () => {
  it('turns readiness to 503 (and closes connections) once shutdown begins, while still serving', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite' })
    app.beginShutdown()
    const ready = await app.inject({ method: 'GET', url: '/health/ready' })
    assert.equal(ready.statusCode, 503)
    assert.deepEqual(json(ready), { detail: 'Shutting down' })
    const live = await app.inject({ method: 'GET', url: '/health/live' })
    assert.equal(live.statusCode, 200)
    assert.equal(live.headers.connection, 'close')
    assert.equal((await app.inject({ method: 'POST', url: '/users/signup', payload: newUserData() })).statusCode, 201)
  })

  it('lists the health routes in the OpenAPI document under "operations"', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite' })
    const spec = json(await app.inject({ method: 'GET', url: '/openapi.json' }))
    assert.deepEqual(spec.paths['/health/ready'].get.tags, ['operations'])
    assert.equal(spec.paths['/health/ready'].get.operationId, 'readiness')
    assert.equal(spec.paths['/health/live'].get.operationId, 'liveness')
    assert.equal(spec.paths['/metrics'], undefined)
  })
})

describe('metrics', () => {
  it('counts requests by route pattern and status, logins, hashes and process metrics', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite' })
    const user = await createUser(app)
    await authed(app, user.token, { method: 'GET', url: `/users/${user.id}` })
    await authed(app, user.token, { method: 'GET', url: `/users/${user.id}` })
    await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: 'wrong-password-1' } })
    await app.inject({ method: 'GET', url: '/no/such/route' })

    const response = await app.inject({ method: 'GET', url: '/metrics' })
    assert.equal(response.statusCode, 200)
    assert.match(String(response.headers['content-type']), /^text\/plain; version=0\.0\.4/)
    const text = response.body
    assert.equal(metric(text, 'http_requests_total', { method: 'GET', route: '/users/:user_id', status_code: '200' }), 2)
    assert.equal(metric(text, 'http_requests_total', { route: '/users/signup', status_code: '201' }), 1)
    assert.equal(metric(text, 'http_requests_total', { route: 'unmatched', status_code: '404' }), 1)
    assert.ok(!text.includes(`/users/${user.id}"`), 'raw URLs never become labels')
    assert.equal(metric(text, 'http_request_duration_seconds_count', { route: '/users/login', status_code: '200' }), 1)
    assert.equal(metric(text, 'auth_login_attempts_total', { outcome: 'success' }), 1)
    assert.equal(metric(text, 'auth_login_attempts_total', { outcome: 'failure' }), 1)
    assert.equal(metric(text, 'auth_login_attempts_total', { outcome: 'locked' }), 0)
    assert.equal(metric(text, 'auth_lockouts_total'), 0)
    assert.equal(metric(text, 'password_hash_duration_seconds_count', { operation: 'hash' }), 1)
    assert.equal(metric(text, 'password_hash_duration_seconds_count', { operation: 'verify' }), 2)
    assert.equal(metric(text, 'db_errors_total', { kind: 'unavailable' }), 0)
    assert.ok(metric(text, 'process_cpu_user_seconds_total')! > 0)
    assert.ok(metric(text, 'nodejs_eventloop_lag_seconds') !== undefined)
  })

  it('counts lockouts and logins refused by the lockout', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { LOCKOUT_THRESHOLD: '2' } })
    const user = await signup(app)
    for (let i = 0; i < 3; i++) {
      await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: 'wrong-password-1' } })
    }
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
    assert.equal(metric(text, 'auth_lockouts_total'), 1)
    assert.equal(metric(text, 'auth_login_attempts_total', { outcome: 'failure' }), 2)
    assert.equal(metric(text, 'auth_login_attempts_total', { outcome: 'locked' }), 1)
  })

  it('keeps each app\'s metrics apart (one registry per app)', async (t) => {
    const first = await buildTestApp(t, { dialect: 'sqlite' })
    const second = await buildTestApp(t, { dialect: 'sqlite' })
    await first.app.inject({ method: 'GET', url: '/health/live' })
    const text = (await second.app.inject({ method: 'GET', url: '/metrics' })).body
    assert.equal(metric(text, 'http_requests_total', { route: '/health/live' }), undefined)
  })

  it('requires the bearer token when METRICS_TOKEN is set', async (t) => {
    const token = 'metrics-token-0123456789abcdef'
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { METRICS_TOKEN: token } })
    assert.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 401)
    assert.equal((await authed(app, 'wrong-token-0123456789abcdef', { method: 'GET', url: '/metrics' })).statusCode, 401)
    assert.equal((await authed(app, token, { method: 'GET', url: '/metrics' })).statusCode, 200)
  })

  it('has no /metrics route when METRICS=off', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { METRICS: 'off' } })
    assert.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 404)
  })
})

describe('request ids and logs', () => {
  it('keeps a sane X-Request-Id, replaces an unsafe one, and returns one on every response', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite' })
    const kept = await app.inject({ method: 'GET', url: '/health/live', headers: { 'x-request-id': 'trace-1:abc.DEF_2' } })
    assert.equal(kept.headers['x-request-id'], 'trace-1:abc.DEF_2')
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
    for (const unsafe of ['has space', 'x'.repeat(129), 'inject"quote', 'new\\nline']) {
      const replaced = await app.inject({ method: 'GET', url: '/health/live', headers: { 'x-request-id': unsafe } })
      assert.match(String(replaced.headers['x-request-id']), uuid, unsafe)
    }
    const missing = await app.inject({ method: 'GET', url: '/no/such/route' })
    assert.equal(missing.statusCode, 404)
    assert.match(String(missing.headers['x-request-id']), uuid)
    const invalid = await app.inject({ method: 'POST', url: '/users/signup', payload: { username: 'x' }, headers: { 'x-request-id': 'bad-signup-1' } })
    assert.equal(invalid.statusCode, 400)
    assert.equal(invalid.headers['x-request-id'], 'bad-signup-1')
  })

  it('writes JSON lines with the request id on every request line, and the audit event carries it', async (t) => {
    const logs = captureLogs()
    const { app } = await buildTestApp(t, { dialect: 'sqlite', overrides: { logger: logs.logger } })
    const body = newUserData()
    const response = await app.inject({ method: 'POST', url: '/users/signup', payload: body, headers: { 'x-request-id': 'signup-req-42' } })
    assert.equal(response.statusCode, 201)
    const mine = logs.lines.filter((line) => line.reqId === 'signup-req-42')
    assert.deepEqual(mine.map((line) => line.msg), ['user signed up', 'request completed'])
    for (const line of logs.lines) {
      if (line.req !== undefined || line.res !== undefined) assert.ok(line.reqId, `request line without reqId: ${JSON.stringify(line)}`)
    }
    const event = await app.db.kysely.selectFrom('audit_events').select('request_id').where('type', '=', 'signup').executeTakeFirstOrThrow()
    assert.equal(event.request_id, 'signup-req-42')
  })

  it('never logs passwords, tokens, hashes or Authorization headers, also in error logs', async (t) => {
    const logs = captureLogs()
    const { app } = await buildTestApp(t, { dialect: 'sqlite', overrides: { logger: logs.logger } })
    const user = await createUser(app)
    const login = json(await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } }))
    await authed(app, user.token, { method: 'GET', url: `/users/${user.id}?access_token=${user.token}&password=${user.password}` })
    await app.inject({ method: 'POST', url: '/users/refresh', payload: { refresh_token: login.refresh_token } })
    await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: 'wrong-password-1' } })
    const { hashed_password: hash } = await app.db.kysely.selectFrom('users').select('hashed_password').where('id', '=', user.id).executeTakeFirstOrThrow()

    // What error logs may carry: an error with secret fields, headers, a nested body.
    const error = Object.assign(new Error('boom'), { password: user.password, token: user.token, hashed_password: hash })
    app.log.error({ err: error, headers: { authorization: `Bearer ${user.token}`, cookie: `session=${user.token}` }, body: { password: user.password, refresh_token: login.refresh_token } }, 'failure')
    // Headers under req or res: their serializers keep none (no redaction path covers them).
    app.log.warn({
      req: { method: 'GET', url: '/users/1', headers: { authorization: `Bearer ${user.token}`, cookie: `session=${login.refresh_token}` } },
      res: { statusCode: 200, headers: { 'set-cookie': `session=${login.access_token}` } }
    }, 'with headers')

    const text = logs.text()
    assert.ok(logs.lines.length > 6)
    for (const secret of [user.password, user.token, login.access_token, login.refresh_token, hash]) {
      assert.ok(!text.includes(secret), `a secret leaked into the logs: ${secret.slice(0, 12)}...`)
    }
    const failure = logs.lines.find((line) => line.msg === 'failure')
    assert.equal(failure.err.password, '[redacted]')
    assert.equal(failure.err.token, '[redacted]')
    assert.equal(failure.headers.authorization, '[redacted]')
    assert.equal(failure.headers.cookie, '[redacted]')
    assert.equal(failure.body.refresh_token, '[redacted]')
    assert.ok(logs.lines.some((line) => String(line.req?.url).includes('access_token=[redacted]&password=[redacted]')))
    const withHeaders = logs.lines.find((line) => line.msg === 'with headers')
    assert.deepEqual([withHeaders.req.url, withHeaders.req.headers, withHeaders.res], ['/users/1', undefined, { statusCode: 200 }])
  })
})

describe('server timeouts', () => {
  async function listening (t: Parameters<typeof buildTestApp>[0]) {
    const { app } = await buildTestApp(t, {
      dialect: 'sqlite',
      env: { HEADERS_TIMEOUT: '1', REQUEST_TIMEOUT: '2', KEEP_ALIVE_TIMEOUT: '1', CONNECTION_TIMEOUT: '3' }
    })
    await app.listen({ host: '127.0.0.1', port: 0 })
    return (app.server.address() as AddressInfo).port
  }

  /** Writes one byte every `everyMs` until the peer closes the connection. */
  function dribble (socket: import('node:net').Socket, everyMs: number) {
    const timer = setInterval(() => {
      if (!socket.destroyed) socket.write('a')
    }, everyMs)
    socket.on('close', () => clearInterval(timer))
  }

  it('cuts off a client that sends one header byte at a time (slowloris) after HEADERS_TIMEOUT', async (t) => {
    const port = await listening(t)
    const socket = await connect(port)
    const started = Date.now()
    const closed = readUntilClose(socket)
    socket.write('GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Slow: ')
    dribble(socket, 300)
    const { data, closedAt } = await closed
    const elapsed = closedAt - started
    assert.ok(elapsed >= 900 && elapsed < 2500, `closed after ${elapsed} ms`)
    assert.match(data, /^HTTP\/1\.1 408/)
  })

  it('cuts off a client that sends its body one byte at a time after REQUEST_TIMEOUT', async (t) => {
    const port = await listening(t)
    const socket = await connect(port)
    const started = Date.now()
    const closed = readUntilClose(socket)
    socket.write('POST /users/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{')
    dribble(socket, 300)
    const { closedAt } = await closed
    const elapsed = closedAt - started
    assert.ok(elapsed >= 1900 && elapsed < 3500, `closed after ${elapsed} ms`)
  })

  it('closes an idle keep-alive connection after KEEP_ALIVE_TIMEOUT', async (t) => {
    const port = await listening(t)
    const socket = await connect(port)
    const closed = readUntilClose(socket)
    socket.write('GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n')
    await sleep(100)
    const answeredAt = Date.now()
    const { data, closedAt } = await closed
    assert.match(data, /^HTTP\/1\.1 200/)
    assert.match(data, /Keep-Alive: timeout=1/)
    assert.ok(closedAt - answeredAt < 2000, `closed after ${closedAt - answeredAt} ms`)
  })

  it('closes a connection that never sends anything', async (t) => {
    const port = await listening(t)
    const socket = await connect(port)
    const started = Date.now()
    const { closedAt } = await readUntilClose(socket)
    assert.ok(closedAt - started < 3500, `closed after ${closedAt - started} ms`)
  })

  it('refuses a headers timeout longer than the request timeout at start, naming the variable', () => {
    assert.throws(() => loadConfig({ HEADERS_TIMEOUT: '60', REQUEST_TIMEOUT: '30' }), /HEADERS_TIMEOUT/)
    assert.throws(() => loadConfig({ WORKERS: 'many' }), /WORKERS/)
    assert.throws(() => loadConfig({ DB_TIMEOUT_MS: '5' }), /DB_TIMEOUT_MS/)
    assert.throws(() => loadConfig({ DB_POOL_SIZE: '0' }), /DB_POOL_SIZE/)
    assert.equal(loadConfig({}).dbPoolSize, 10)
    assert.throws(() => loadConfig({ METRICS_TOKEN: 'short' }), /METRICS_TOKEN/)
    assert.throws(() => loadConfig({ SHUTDOWN_GRACE: '0' }), /SHUTDOWN_GRACE/)
    assert.equal(loadConfig({ SHUTDOWN_DELAY: '0' }).shutdownDelay, 0)
    assert.equal(loadConfig({}).shutdownGrace, 25)
    assert.equal(loadConfig({}).workers, 1)
    assert.ok(loadConfig({ WORKERS: 'auto' }).workers >= 1)
  })
})

const postgres = DIALECTS.find((dialect) => dialect.name === 'postgres')!
describe('DB_POOL_SIZE', { skip: postgres.skip }, () => {
  it('sizes the PostgreSQL pool: at most that many connections, however many requests wait', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'postgres', env: { DB_POOL_SIZE: '2' } })
    const user = await createUser(app)
    const pool = app.db.pool!
    const responses = await Promise.all(Array.from({ length: 12 }, () => authed(app, user.token, { method: 'GET', url: `/users/${user.id}` })))
    assert.deepEqual([...new Set(responses.map((response) => response.statusCode))], [200])
    assert.equal(pool.options.max, 2)
    assert.ok(pool.totalCount <= 2, `${pool.totalCount} connections`)
  })
})

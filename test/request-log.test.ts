import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { loadConfig } from '../src/config.js'
import { authed, buildTestApp, captureLogs, createUser, newUserData } from './helpers.js'

// REQUEST_LOG: "all" (one line per request as it completes, the default) or "errors"
// (only responses of 5xx and requests slower than SLOW_REQUEST_MS), for high request rates.

describe('REQUEST_LOG', () => {
  it('all (default): one line for each request as it completes, with method, URL, status and time', async (t) => {
    const logs = captureLogs()
    const { app } = await buildTestApp(t, { dialect: 'sqlite', overrides: { logger: logs.logger } })
    await app.inject({ method: 'GET', url: '/health/live', headers: { 'x-request-id': 'live-1' } })
    await app.inject({ method: 'GET', url: '/no/such/route', headers: { 'x-request-id': 'missing-1' } })
    const live = logs.lines.filter((line) => line.reqId === 'live-1')
    assert.deepEqual(live.map((line) => [line.msg, line.level]), [['request completed', 30]])
    assert.deepEqual([live[0].req.method, live[0].req.url, live[0].res.statusCode], ['GET', '/health/live', 200])
    assert.equal(typeof live[0].responseTime, 'number')
    const missing = logs.lines.filter((line) => line.reqId === 'missing-1')
    assert.deepEqual(missing.map((line) => [line.msg, line.res?.statusCode]), [['request completed', 404]])
  })

  it('errors: nothing for successful fast requests, a line for a 5xx and for a slow request, secrets still redacted', async (t) => {
    const logs = captureLogs()
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { REQUEST_LOG: 'errors', SLOW_REQUEST_MS: '100000' }, overrides: { logger: logs.logger } })
    const user = await createUser(app)
    await authed(app, user.token, { method: 'GET', url: `/users/${user.id}`, headers: { 'x-request-id': 'fast-1' } })
    await app.inject({ method: 'GET', url: '/no/such/route', headers: { 'x-request-id': 'missing-1' } })
    assert.deepEqual(logs.lines.filter((line) => ['fast-1', 'missing-1'].includes(line.reqId)), [], 'a 2xx or 4xx is not logged')
    assert.ok(!logs.lines.some((line) => line.msg === 'incoming request' || line.msg === 'request completed'))

    // A 5xx: the audit table is gone, so the signup cannot commit.
    app.db.sqlite!.exec('DROP TABLE audit_events')
    const failed = await app.inject({ method: 'POST', url: '/users/signup', payload: newUserData(), headers: { 'x-request-id': 'broken-1', authorization: `Bearer ${user.token}` } })
    assert.equal(failed.statusCode, 500)
    const line = logs.lines.find((entry) => entry.reqId === 'broken-1' && entry.msg === 'request failed')
    assert.ok(line, JSON.stringify(logs.lines.filter((entry) => entry.reqId === 'broken-1')))
    assert.equal(line.res.statusCode, 500)
    assert.equal(line.req.url, '/users/signup')
    assert.equal(typeof line.responseTime, 'number')
    assert.ok(!logs.text().includes(user.token), 'the token was redacted')
  })

  for (const mode of ['errors', 'all']) {
    it(`${mode}: a request slower than SLOW_REQUEST_MS gets one line, a warning`, async (t) => {
      const logs = captureLogs()
      const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { REQUEST_LOG: mode, SLOW_REQUEST_MS: '1' }, overrides: { logger: logs.logger } })
      const body = newUserData()
      // A signup hashes a password with argon2id: several milliseconds at least.
      const response = await app.inject({ method: 'POST', url: '/users/signup', payload: body, headers: { 'x-request-id': 'slow-1' } })
      assert.equal(response.statusCode, 201)
      const requestLines = logs.lines.filter((entry) => entry.reqId === 'slow-1' && entry.req !== undefined)
      assert.deepEqual(requestLines.map((entry) => [entry.msg, entry.level]), [['slow request', 40]])
      assert.ok(requestLines[0].responseTime >= 1)
      assert.ok(!logs.text().includes(body.password))
    })
  }

  it('refuses another value at start, naming the variable', () => {
    assert.throws(() => loadConfig({ REQUEST_LOG: 'some' }), /REQUEST_LOG must be all or errors/)
    assert.throws(() => loadConfig({ SLOW_REQUEST_MS: 'fast' }), /SLOW_REQUEST_MS/)
  })
})

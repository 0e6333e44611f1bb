import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import type { LightMyRequestResponse } from 'fastify'
import { buildTestApp, DIALECTS, json, newUserData, useSuiteApp } from './helpers.js'
import { startServer } from './server-process.js'

// CORS_ORIGINS through @fastify/cors, at the HTTP level (app.inject). What a real browser makes
// of these headers is tested in browser-cors.test.ts.

const APP = 'https://app.example.com'
const DEV = 'http://localhost:5173'

/** Every Access-Control-* header of a response. */
function corsHeaders (response: LightMyRequestResponse): Record<string, unknown> {
  return Object.fromEntries(Object.entries(response.headers).filter(([name]) => name.startsWith('access-control-')))
}

const list = (value: unknown) => String(value).split(',').map((item) => item.trim().toLowerCase())

function preflight (origin: string, url: string, method: string, requestHeaders?: string) {
  return {
    method: 'OPTIONS' as const,
    url,
    headers: {
      origin,
      'access-control-request-method': method,
      ...(requestHeaders === undefined ? {} : { 'access-control-request-headers': requestHeaders })
    }
  }
}

describe('CORS_ORIGINS unset (the default)', () => {
  it('does not register @fastify/cors: no CORS header, and a preflight is a 404', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite' })
    assert.equal(app.hasPlugin('@fastify/cors'), false)

    const pre = await app.inject(preflight(APP, '/users/signup', 'POST', 'content-type'))
    assert.equal(pre.statusCode, 404)
    assert.deepEqual(json(pre), { detail: 'Not Found' })
    assert.deepEqual(corsHeaders(pre), {})

    const signup = await app.inject({ method: 'POST', url: '/users/signup', headers: { origin: APP }, payload: newUserData() })
    assert.equal(signup.statusCode, 201)
    assert.deepEqual(corsHeaders(signup), {})
    assert.equal(signup.headers.vary, undefined)
  })
})

for (const dialect of DIALECTS) {
  describe(`CORS_ORIGINS set (${dialect.name})`, { skip: dialect.skip }, () => {
    const getApp = useSuiteApp({ dialect: dialect.name, env: { CORS_ORIGINS: `${APP}, ${DEV}`, CORS_MAX_AGE: '10m', LOCKOUT_THRESHOLD: '1' } })

    it('answers a preflight from a listed origin with that origin, the methods, the request headers and a max-age', async () => {
      const { app } = getApp()
      for (const origin of [APP, DEV]) {
        const response = await app.inject(preflight(origin, '/users/signup', 'POST', 'content-type'))
        assert.equal(response.statusCode, 204, origin)
        assert.equal(response.body, '')
        assert.equal(response.headers['access-control-allow-origin'], origin)
        assert.deepEqual(list(response.headers['access-control-allow-methods']), ['get', 'head', 'post', 'put', 'patch', 'delete'])
        assert.deepEqual(list(response.headers['access-control-allow-headers']), ['authorization', 'content-type', 'x-request-id'])
        assert.equal(response.headers['access-control-max-age'], '600')
        assert.equal(response.headers['access-control-allow-credentials'], undefined)
        assert.ok(list(response.headers.vary).includes('origin'), String(response.headers.vary))
        assert.ok(response.headers['x-request-id'], 'a preflight names its request id too')
      }
    })

    it('answers preflights for authenticated and parameterised routes before authentication', async () => {
      const { app } = getApp()
      for (const [url, method] of [['/users/me', 'GET'], ['/users/7', 'PUT'], ['/users/7', 'DELETE'], ['/users/me/sessions/3', 'DELETE'], ['/admin/audit-events', 'GET']]) {
        const response = await app.inject(preflight(APP, url, method, 'authorization'))
        assert.equal(response.statusCode, 204, `${method} ${url}`)
        assert.equal(response.headers['access-control-allow-origin'], APP)
        assert.equal(response.headers['www-authenticate'], undefined)
      }
    })

    it('never echoes an origin that is not on the list, and leaves its preflight unanswered', async () => {
      const { app } = getApp()
      const strangers = ['https://evil.example.com', 'https://app.example.com.evil.example', 'http://app.example.com', 'https://app.example.com:8443', 'http://localhost:5174', 'null', 'https://APP.example.com']
      for (const origin of strangers) {
        const pre = await app.inject(preflight(origin, '/users/login', 'POST', 'content-type'))
        assert.equal(pre.statusCode, 404, origin)
        assert.deepEqual(corsHeaders(pre), {}, origin)

        const actual = await app.inject({ method: 'GET', url: '/health/live', headers: { origin } })
        assert.equal(actual.statusCode, 200, origin)
        assert.deepEqual(corsHeaders(actual), {}, origin)
        assert.ok(list(actual.headers.vary).includes('origin'), 'caches must not reuse a listed origin\'s answer for this one')
      }
    })

    it('lets a listed origin read responses, Retry-After and X-Request-Id included, and never sends * or credentials', async () => {
      const { app } = getApp()
      const user = newUserData()
      const signup = await app.inject({ method: 'POST', url: '/users/signup', headers: { origin: APP }, payload: user })
      assert.equal(signup.statusCode, 201)
      assert.equal(signup.headers['access-control-allow-origin'], APP)
      assert.deepEqual(list(signup.headers['access-control-expose-headers']), ['retry-after', 'x-request-id'])
      assert.equal(signup.headers['access-control-allow-credentials'], undefined)
      const row = await app.db.kysely.selectFrom('users').select('username').where('id', '=', json(signup).user_id).executeTakeFirst()
      assert.equal(row?.username, user.username)

      const login = await app.inject({ method: 'POST', url: '/users/login', headers: { origin: DEV }, payload: { email: user.email, password: user.password } })
      assert.equal(login.statusCode, 200)
      assert.equal(login.headers['access-control-allow-origin'], DEV)
      const me = await app.inject({ method: 'GET', url: '/users/me', headers: { origin: DEV, authorization: `Bearer ${json(login).access_token}` } })
      assert.equal(me.statusCode, 200)
      assert.equal(json(me).email, user.email)
      assert.equal(me.headers['access-control-allow-origin'], DEV)
    })

    it('puts the CORS headers on error responses too: 401, 404 and a 429 with Retry-After', async () => {
      const { app } = getApp()
      const unauthenticated = await app.inject({ method: 'GET', url: '/users/me', headers: { origin: APP } })
      assert.equal(unauthenticated.statusCode, 401)
      assert.equal(unauthenticated.headers['access-control-allow-origin'], APP)

      const missing = await app.inject({ method: 'GET', url: '/no/such/route', headers: { origin: APP } })
      assert.equal(missing.statusCode, 404)
      assert.equal(missing.headers['access-control-allow-origin'], APP)

      // LOCKOUT_THRESHOLD=1 in this suite: the second wrong password for one email is refused.
      const { email } = newUserData()
      const first = await app.inject({ method: 'POST', url: '/users/login', headers: { origin: APP }, payload: { email, password: 'wrong-password-1' } })
      assert.equal(first.statusCode, 401)
      const locked = await app.inject({ method: 'POST', url: '/users/login', headers: { origin: APP }, payload: { email, password: 'wrong-password-2' } })
      assert.equal(locked.statusCode, 429)
      assert.ok(Number(locked.headers['retry-after']) > 0)
      assert.equal(locked.headers['access-control-allow-origin'], APP)
      assert.ok(list(locked.headers['access-control-expose-headers']).includes('retry-after'))
    })

    it('serves /health and the API documents to listed origins, but nothing of CORS on /metrics', async () => {
      const { app } = getApp()
      for (const url of ['/health/ready', '/openapi.json']) {
        const response = await app.inject({ method: 'GET', url, headers: { origin: APP } })
        assert.equal(response.statusCode, 200, url)
        assert.equal(response.headers['access-control-allow-origin'], APP, url)
      }
      for (const method of ['GET', 'HEAD'] as const) {
        const metrics = await app.inject({ method, url: '/metrics', headers: { origin: APP } })
        assert.equal(metrics.statusCode, 200)
        assert.deepEqual(corsHeaders(metrics), {}, method)
        assert.equal(metrics.headers.vary, undefined)
      }
      const pre = await app.inject(preflight(APP, '/metrics', 'GET'))
      assert.equal(pre.statusCode, 404)
      assert.deepEqual(corsHeaders(pre), {})
    })

    it('keeps OPTIONS out of the OpenAPI document', async () => {
      const { app } = getApp()
      const document = json(await app.inject({ method: 'GET', url: '/openapi.json' }))
      for (const [path, operations] of Object.entries(document.paths as Record<string, object>)) {
        assert.ok(!('options' in operations), path)
      }
      assert.ok(!('/metrics' in document.paths))
    })
  })
}

describe('CORS_ORIGINS at start', () => {
  it('stops the server with a message naming CORS_ORIGINS when an entry is a wildcard host', async (t) => {
    const cwd = mkdtempSync(join(tmpdir(), 'uma-cors-'))
    t.after(() => rmSync(cwd, { recursive: true, force: true }))
    const server = await startServer(t, { CORS_ORIGINS: 'https://app.example.com,https://*.example.com' }, { cwd, noWait: true })
    const { code } = await server.exited
    assert.equal(code, 1)
    assert.match(server.stderr(), /^Invalid configuration: CORS_ORIGINS .*"https:\/\/\*\.example\.com" is a wildcard/m)
    assert.ok(!server.logs().some((line) => typeof line.msg === 'string' && line.msg.startsWith('Server listening')))
  })
})

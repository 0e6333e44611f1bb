import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { FastifyInstance, InjectOptions } from 'fastify'
import { buildTestApp, createUser } from './helpers.js'

// Strict-Transport-Security follows PUBLIC_URL: clients that reach us over https:// are told to
// keep doing so; a plain-http service never sends it.

/** One request of each kind of response: success, auth error, not found, a framework 400, a static file, metrics. */
async function everyKindOfResponse (app: FastifyInstance) {
  const { id, token } = await createUser(app)
  const requests: InjectOptions[] = [
    { method: 'GET', url: '/health/live' },
    { method: 'GET', url: `/users/${id}`, headers: { authorization: `Bearer ${token}` } },
    { method: 'GET', url: '/users/me' },
    { method: 'GET', url: '/no/such/route' },
    { method: 'GET', url: '/users/%E0%A4%A' },
    { method: 'POST', url: '/users/login', payload: 'not json', headers: { 'content-type': 'application/json' } },
    { method: 'GET', url: '/docs/static/swagger-ui.css' },
    { method: 'GET', url: '/metrics' }
  ]
  const responses = []
  for (const request of requests) responses.push({ label: `${request.method} ${request.url}`, response: await app.inject(request) })
  assert.deepEqual(responses.map(({ response }) => response.statusCode), [200, 200, 401, 404, 400, 400, 200, 200])
  return responses
}

describe('Strict-Transport-Security', () => {
  it('is on every response, with a one-year max-age, when PUBLIC_URL is https://', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { PUBLIC_URL: 'https://accounts.example.com/api' } })
    for (const { label, response } of await everyKindOfResponse(app)) {
      assert.equal(response.headers['strict-transport-security'], 'max-age=31536000', label)
    }
  })

  it('takes its max-age from HSTS_MAX_AGE', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { PUBLIC_URL: 'https://accounts.example.com', HSTS_MAX_AGE: '1d' } })
    const response = await app.inject({ method: 'GET', url: '/health/live' })
    assert.equal(response.headers['strict-transport-security'], 'max-age=86400')
  })

  it('is never sent when PUBLIC_URL is plain http (the default included)', async (t) => {
    for (const env of [{}, { PUBLIC_URL: 'http://accounts.example.com' }] as Array<Record<string, string>>) {
      const { app } = await buildTestApp(t, { dialect: 'sqlite', env })
      for (const { label, response } of await everyKindOfResponse(app)) {
        assert.equal(response.headers['strict-transport-security'], undefined, `${JSON.stringify(env)} ${label}`)
      }
    }
  })
})

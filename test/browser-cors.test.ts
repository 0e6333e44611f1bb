import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it, type TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Page } from 'playwright-core'
import { BROWSER_SKIP, useSuiteBrowser } from './browser.js'
import { buildTestApp, DIALECTS, login, newUserData, signup, type DialectName } from './helpers.js'

// A single-page app served from a second local origin (another port) calls the API with fetch in
// a real Chromium. With its origin in CORS_ORIGINS the calls succeed; otherwise the browser
// refuses them, exactly as it would for a real app on another domain.

// The "browser app": one page whose script calls the API. Every call resolves to what the page's
// own code can see: status, body and the headers CORS lets it read, or the error fetch threw.
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Browser app</title></head><body>
<script>
async function call (api, path, init) {
  try {
    const response = await fetch(api + path, init)
    const text = await response.text()
    return {
      status: response.status,
      type: response.type,
      body: text === '' ? null : JSON.parse(text),
      requestId: response.headers.get('x-request-id'),
      retryAfter: response.headers.get('retry-after')
    }
  } catch (error) {
    return { error: error.name + ': ' + error.message }
  }
}
const json = (method, body, token) => ({
  method,
  headers: { 'content-type': 'application/json', ...(token ? { authorization: 'Bearer ' + token } : {}) },
  body: body === undefined ? undefined : JSON.stringify(body)
})
window.signUpLogInAndReadMe = async (api, user) => {
  const signup = await call(api, '/users/signup', json('POST', user))
  const login = await call(api, '/users/login', json('POST', { email: user.email, password: user.password }))
  const token = login.body && login.body.access_token
  const me = await call(api, '/users/me', { headers: token ? { authorization: 'Bearer ' + token } : {} })
  return { signup, login, me }
}
window.call = call
window.json = json
</script>
</body></html>`

/** Serves PAGE on its own port: the browser app's origin. */
async function servePage (): Promise<{ origin: string, close: () => Promise<void> }> {
  const server = http.createServer((request, response) => {
    if (request.url !== '/') {
      response.writeHead(404).end()
      return
    }
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) }
}

/** The API listening on its own port (a third origin), with the given CORS_ORIGINS. */
async function serveApi (t: TestContext, dialect: DialectName, env: Record<string, string>): Promise<{ app: FastifyInstance, url: string }> {
  const { app } = await buildTestApp(t, { dialect, env })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` }
}

/** Opens the browser app in a fresh context; its console messages (Chromium reports CORS refusals there) are collected. */
async function openPage (t: TestContext, getBrowser: () => import('playwright-core').Browser, origin: string): Promise<{ page: Page, console: string[] }> {
  const context = await getBrowser().newContext()
  t.after(() => context.close())
  const page = await context.newPage()
  const console: string[] = []
  page.on('console', (message) => console.push(message.text()))
  await page.goto(`${origin}/`)
  return { page, console }
}

const userByEmail = (app: FastifyInstance, email: string) =>
  app.db.kysely.selectFrom('users').select(['id', 'username']).where('email_normalized', '=', email.toLowerCase()).executeTakeFirst()

for (const dialect of DIALECTS) {
  describe(`a browser app on another origin (${dialect.name})`, { skip: BROWSER_SKIP || dialect.skip }, () => {
    const getBrowser = useSuiteBrowser()
    let page: { origin: string, close: () => Promise<void> }
    before(async () => { page = await servePage() })
    after(() => page.close())

    it('signs up, logs in and reads /users/me with fetch when its origin is in CORS_ORIGINS', async (t) => {
      const api = await serveApi(t, dialect.name, { CORS_ORIGINS: `https://elsewhere.example.com,${page.origin}`, LOCKOUT_THRESHOLD: '1' })
      const { page: tab } = await openPage(t, getBrowser, page.origin)
      const user = newUserData('browser')

      const result = await tab.evaluate(([url, body]) => (window as any).signUpLogInAndReadMe(url, body), [api.url, user] as const)
      assert.equal(result.signup.status, 201, JSON.stringify(result.signup))
      assert.equal(result.signup.type, 'cors', 'a cross-origin response the page was allowed to read')
      assert.equal(result.login.status, 200, JSON.stringify(result.login))
      assert.equal(result.login.body.token_type, 'bearer')
      assert.equal(result.me.status, 200, JSON.stringify(result.me))
      assert.equal(result.me.body.email, user.email)
      assert.equal(result.me.body.id, result.signup.body.user_id)
      for (const step of ['signup', 'login', 'me'] as const) assert.match(String(result[step].requestId), /^[0-9a-f-]{36}$/, `X-Request-Id is exposed (${step})`)
      const row = await userByEmail(api.app, user.email)
      assert.equal(row?.id, result.signup.body.user_id)

      // Errors are readable too, Retry-After included (LOCKOUT_THRESHOLD=1: the second wrong password is refused).
      const wrong = { email: user.email, password: 'not-the-password' }
      const refused = await tab.evaluate(async ([url, body]) => {
        const page = window as any
        return [await page.call(url, '/users/login', page.json('POST', body)), await page.call(url, '/users/login', page.json('POST', body))]
      }, [api.url, wrong] as const)
      assert.equal(refused[0].status, 401, JSON.stringify(refused[0]))
      assert.equal(refused[0].body.detail, 'Incorrect email or password')
      assert.equal(refused[1].status, 429, JSON.stringify(refused[1]))
      assert.ok(Number(refused[1].retryAfter) > 0, `Retry-After is exposed: ${JSON.stringify(refused[1])}`)
    })

    for (const [label, corsOrigins] of [['is not on the list', 'http://127.0.0.1:1'], ['is not listed because CORS_ORIGINS is unset', undefined]] as const) {
      it(`fails in the browser when its origin ${label}, and nothing reaches the database`, async (t) => {
        const api = await serveApi(t, dialect.name, corsOrigins === undefined ? {} : { CORS_ORIGINS: corsOrigins })
        const { page: tab, console } = await openPage(t, getBrowser, page.origin)
        const user = newUserData('browser')

        const result = await tab.evaluate(([url, body]) => (window as any).signUpLogInAndReadMe(url, body), [api.url, user] as const)
        for (const step of ['signup', 'login', 'me'] as const) {
          assert.deepEqual(result[step], { error: 'TypeError: Failed to fetch' }, step)
        }
        // The signup's preflight was refused, so the POST itself was never sent.
        assert.equal(await userByEmail(api.app, user.email), undefined)

        // Even a request that needs no preflight, with a valid token, stays unreadable: the server
        // answers, the browser withholds the answer from the page.
        const other = await signup(api.app)
        const token = await login(api.app, other.email, other.password)
        const simple = await tab.evaluate(([url, bearer]) => (window as any).call(url, '/health/live', {}).then(async (health: unknown) =>
          [health, await (window as any).call(url, '/users/me', { headers: { authorization: 'Bearer ' + bearer } })]), [api.url, token] as const)
        assert.deepEqual(simple, [{ error: 'TypeError: Failed to fetch' }, { error: 'TypeError: Failed to fetch' }])

        const blocked = console.filter((text) => text.includes('has been blocked by CORS policy'))
        assert.ok(blocked.length >= 4, `Chromium names CORS as the reason: ${JSON.stringify(console)}`)
        assert.ok(blocked.some((text) => text.includes(`from origin '${page.origin}'`)))
      })
    }
  })
}

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ADMIN_CONSOLE_CSP } from '../src/plugins/admin-console.js'
import { loadConfig } from '../src/config.js'
import { buildTestApp, createUser, json } from './helpers.js'

// How the server hands out the admin console: the page, its files and their headers. The page
// touches no database, so this runs on SQLite only; what the console does with the API is in
// admin-console-browser.test.ts, in a real browser, on both databases. From the sources (as
// here) the plugin bundles admin-console/ in memory for each page load: no dist/ involved.

function directives (csp: string): Map<string, string> {
  return new Map(csp.split(';').map((part) => part.trim()).filter(Boolean).map((part) => {
    const [name, ...values] = part.split(/\s+/)
    return [name, values.join(' ')]
  }))
}

describe('admin console page', () => {
  it('serves /admin as HTML with a strict Content-Security-Policy, no-store and no framing', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite' })
    const response = await app.inject({ method: 'GET', url: '/admin' })
    assert.equal(response.statusCode, 200)
    assert.equal(response.headers['content-type'], 'text/html; charset=utf-8')
    assert.equal(response.headers['cache-control'], 'no-store')
    assert.equal(response.headers['referrer-policy'], 'no-referrer')
    assert.equal(response.headers['x-frame-options'], 'DENY')
    assert.equal(response.headers['x-content-type-options'], 'nosniff')
    assert.equal(response.headers['cross-origin-opener-policy'], 'same-origin')

    const csp = directives(String(response.headers['content-security-policy']))
    assert.equal(csp.get('default-src'), "'none'")
    for (const fetched of ['script-src', 'style-src', 'connect-src', 'img-src']) assert.equal(csp.get(fetched), "'self'", fetched)
    assert.equal(csp.get('frame-ancestors'), "'none'")
    assert.equal(csp.get('form-action'), "'none'")
    assert.equal(csp.get('base-uri'), "'none'")
    assert.equal(csp.get('require-trusted-types-for'), "'script'")
    const everything = [...csp.values()].join(' ')
    assert.doesNotMatch(everything, /unsafe-inline|unsafe-eval|\*|https?:|data:/, 'no inline code, eval, wildcard or other origin anywhere')
    assert.equal(response.headers['content-security-policy'], ADMIN_CONSOLE_CSP)

    // No inline script or style in the page itself: only files from our own origin.
    assert.doesNotMatch(response.body, /<script(?![^>]*\ssrc=)[^>]*>/i)
    assert.doesNotMatch(response.body, /<style|\sstyle=/i)
    assert.doesNotMatch(response.body, /(?:src|href)="(?:https?:)?\/\//i, 'nothing from another origin')
    assert.match(response.body, /<script type="module" src="admin\/assets\/console\.js"><\/script>/)
    assert.match(response.body, /<link rel="stylesheet" href="admin\/assets\/console\.css">/)
  })

  it('puts APP_NAME into the page HTML-escaped', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { APP_NAME: 'Acme <script>alert(1)</script> & "Co"' } })
    const response = await app.inject({ method: 'GET', url: '/admin' })
    assert.match(response.body, /<title>Admin console – Acme &lt;script&gt;alert\(1\)&lt;\/script&gt; &amp; &quot;Co&quot;<\/title>/)
    assert.doesNotMatch(response.body, /<script>alert/)
  })

  it('serves the bundled script, stylesheet and icon with their types, and nothing else under /admin/assets', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite' })
    const script = await app.inject({ method: 'GET', url: '/admin/assets/console.js' })
    assert.equal(script.statusCode, 200)
    assert.equal(script.headers['content-type'], 'text/javascript; charset=utf-8')
    assert.equal(script.headers['x-content-type-options'], 'nosniff')
    assert.equal(script.headers['cross-origin-resource-policy'], 'same-origin')
    // The bundle carries Preact and our code, minified, and no reference to web storage.
    assert.ok(script.body.length > 20_000, `bundle of ${script.body.length} bytes`)
    assert.match(script.body, /\/users\/login\/mfa/)
    assert.doesNotMatch(script.body, /localStorage|sessionStorage|document\.cookie/)
    const styles = await app.inject({ method: 'GET', url: '/admin/assets/console.css' })
    assert.equal(styles.statusCode, 200)
    assert.equal(styles.headers['content-type'], 'text/css; charset=utf-8')
    assert.match(styles.body, /:focus-visible/)
    assert.doesNotMatch(styles.body, /@import|url\(\s*["']?(?:https?:)?\/\//, 'no stylesheet or font from elsewhere')
    const icon = await app.inject({ method: 'GET', url: '/admin/assets/favicon.svg' })
    assert.equal(icon.statusCode, 200)
    assert.equal(icon.headers['content-type'], 'image/svg+xml')

    for (const url of ['/admin/assets/index.html', '/admin/assets/build.mjs', '/admin/assets/..%2Fbuild.mjs', '/admin/assets/main.tsx']) {
      const response = await app.inject({ method: 'GET', url })
      assert.equal(response.statusCode, 404, url)
      assert.deepEqual(json(response), { detail: 'Not Found' })
    }
  })

  it('sends /admin/ to /admin, where the page\'s relative URLs resolve', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite' })
    const response = await app.inject({ method: 'GET', url: '/admin/' })
    assert.equal(response.statusCode, 308)
    assert.equal(new URL(String(response.headers.location), 'http://localhost/admin/').pathname, '/admin')
  })

  it('keeps the console out of the API document', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite' })
    const document = json(await app.inject({ method: 'GET', url: '/openapi.json' }))
    assert.deepEqual(Object.keys(document.paths).filter((path) => path === '/admin' || path.startsWith('/admin/assets')), [])
  })

  it('ADMIN_CONSOLE=false: /admin and its files are 404, the admin API still answers', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { ADMIN_CONSOLE: 'false' } })
    for (const url of ['/admin', '/admin/', '/admin/assets/console.js', '/admin/assets/console.css']) {
      const response = await app.inject({ method: 'GET', url })
      assert.equal(response.statusCode, 404, url)
      assert.deepEqual(json(response), { detail: 'Not Found' })
      assert.equal(response.headers['content-security-policy'], undefined)
    }
    const admin = await createUser(app, { admin: true })
    const audit = await app.inject({ method: 'GET', url: '/admin/audit-events', headers: { authorization: `Bearer ${admin.token}` } })
    assert.equal(audit.statusCode, 200)
  })
})

describe('ADMIN_CONSOLE', () => {
  it('is on by default and takes the usual true/false words', () => {
    assert.equal(loadConfig({}).adminConsole, true)
    assert.equal(loadConfig({ ADMIN_CONSOLE: 'false' }).adminConsole, false)
    assert.equal(loadConfig({ ADMIN_CONSOLE: 'off' }).adminConsole, false)
    assert.equal(loadConfig({ ADMIN_CONSOLE: 'true' }).adminConsole, true)
    assert.throws(() => loadConfig({ ADMIN_CONSOLE: 'maybe' }), /ADMIN_CONSOLE must be true or false, got "maybe"/)
  })
})

import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Page } from 'playwright-core'
import { BROWSER_SKIP, useSuiteBrowser } from './browser.js'
import { authed, createUser, json, login, newUserData, signup, useSuiteApp } from './helpers.js'
import { freePort, linkIn, mailTo, useMailServer, type MailServer } from './mail.js'

// The built-in account pages in a real browser (Debian's Chromium), opened from the links of
// real emails: reading a page never uses its token; the person's button press does. The pages'
// logic is the same whatever the database, so this suite runs on SQLite only (the API rules
// behind them run on both in account.test.ts).

const tokenRow = (app: FastifyInstance, userId: number, purpose: string) =>
  app.db.kysely.selectFrom('account_tokens').select(['used_at']).where('user_id', '=', userId).where('purpose', '=', purpose as never)
    .orderBy('id', 'desc').executeTakeFirstOrThrow()

/** Fails the test on any CSP violation or script error the page reports. */
function watchPage (page: Page): string[] {
  const problems: string[] = []
  page.on('console', (message) => {
    if (message.type() === 'error' && !/Failed to load resource: the server responded with a status of (400|404)/.test(message.text())) problems.push(message.text())
  })
  page.on('pageerror', (error) => problems.push(error.message))
  return problems
}

describe('account pages in a browser', { skip: BROWSER_SKIP }, () => {
  const mailServer = useMailServer()
  let port = 0
  let mail: MailServer
  before(async () => {
    port = await freePort()
    mail = mailServer()
  })
  const suite = useSuiteApp(() => ({
    dialect: 'sqlite',
    env: {
      SMTP_URL: mailServer().url,
      MAIL_FROM: 'no-reply@example.test',
      PUBLIC_URL: `http://localhost:${port}`,
      APP_NAME: 'Example Accounts',
      MAIL_POLL_INTERVAL: '1',
      MAIL_IP_LIMIT: '1000/5m'
    }
  }))
  before(async () => {
    await suite().app.listen({ host: '127.0.0.1', port })
  })
  const browser = useSuiteBrowser()
  const base = () => `http://localhost:${port}`

  it('serves the pages with a strict CSP, no referrer, no caching, on GET and HEAD', async () => {
    const { app } = suite()
    for (const path of ['/account/verify-email', '/account/reset-password', '/account/set-password']) {
      for (const method of ['GET', 'HEAD'] as const) {
        const response = await app.inject({ method, url: path })
        assert.equal(response.statusCode, 200)
        assert.equal(response.headers['content-type'], 'text/html; charset=utf-8')
        assert.match(String(response.headers['content-security-policy']), /^default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';.*frame-ancestors 'none'/)
        assert.equal(response.headers['referrer-policy'], 'no-referrer')
        assert.equal(response.headers['cache-control'], 'no-store')
      }
      const page = await app.inject({ method: 'GET', url: path })
      assert.ok(!/<script>|\sstyle=|\son[a-z]+=/i.test(page.body), 'nothing inline for the CSP to allow')
      assert.match(page.body, /<title>[^<]+ - Example Accounts<\/title>/)
    }
    assert.equal((await app.inject({ method: 'GET', url: '/account/assets/account.js' })).headers['content-type'], 'text/javascript; charset=utf-8')
    assert.equal((await app.inject({ method: 'GET', url: '/account/assets/..%2F..%2Fpackage.json' })).statusCode, 404)
    assert.equal((await app.inject({ method: 'GET', url: '/account/assets/layout.ts' })).statusCode, 404)
  })

  it('resets a password from the emailed link: opening the page uses nothing, a weak password is refused with the reason, then the new one logs in', async (t) => {
    const { app } = suite()
    const user = await signup(app, newUserData('page'))
    await app.inject({ method: 'POST', url: '/users/password-reset/request', payload: { email: user.email } })
    const { url } = linkIn(await mail.waitFor(mailTo(user.email, /Reset your/)))
    assert.ok(url.startsWith(`${base()}/account/reset-password#token=`))

    const context = await browser().newContext()
    t.after(() => context.close())
    const page = await context.newPage()
    const problems = watchPage(page)
    await page.goto(url)
    await page.getByLabel('New password').waitFor()
    // A mail scanner's GET (and the page's own load) leaves the link usable.
    await fetch(url.split('#')[0])
    assert.equal((await tokenRow(app, user.id, 'reset_password')).used_at, null)
    assert.ok(!page.url().includes('token='), 'the token leaves the address bar and history')

    await page.getByLabel('New password').fill('password')
    await page.getByLabel('Type it again').fill('password')
    await page.getByRole('button', { name: 'Change my password' }).click()
    const summary = page.getByRole('alert')
    await summary.getByText('Your new password is one of the most commonly used passwords').waitFor()
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'error-summary', 'focus moves to the error summary')
    assert.equal(await page.getByLabel('New password').getAttribute('aria-invalid'), 'true')
    assert.equal((await tokenRow(app, user.id, 'reset_password')).used_at, null, 'a refused password leaves the link usable')

    await page.getByLabel('Type it again').fill('a different one entirely')
    await page.getByLabel('New password').fill('a different one entire')
    await page.getByRole('button', { name: 'Change my password' }).click()
    await page.getByText('The two passwords do not match').first().waitFor()

    const newPassword = `page-${user.password}`
    await page.getByLabel('New password').fill(newPassword)
    await page.getByLabel('Type it again').fill(newPassword)
    await page.getByRole('button', { name: 'Change my password' }).click()
    await page.getByRole('heading', { name: 'Your password has been changed' }).waitFor()
    assert.ok((await tokenRow(app, user.id, 'reset_password')).used_at !== null)
    await login(app, user.email, newPassword)
    assert.deepEqual(problems, [])
  })

  it('sets an invited user\'s first password on the set-password page, in the invitation\'s words, and the password logs in', async (t) => {
    const { app } = suite()
    const admin = await createUser(app, { admin: true })
    const data = newUserData('invited')
    const created = await authed(app, admin.token, { method: 'POST', url: '/admin/users', payload: { username: data.username, email: data.email } })
    assert.equal(created.statusCode, 201, created.body)
    const { url } = linkIn(await mail.waitFor(mailTo(data.email, /invited/)))
    assert.ok(url.startsWith(`${base()}/account/set-password#token=`), url)

    const context = await browser().newContext()
    t.after(() => context.close())
    const page = await context.newPage()
    const problems = watchPage(page)
    await page.goto(url)
    await page.getByRole('heading', { name: 'Choose your password', level: 1 }).waitFor()
    assert.equal(await page.title(), 'Choose your password - Example Accounts')
    assert.equal(await page.getByRole('heading', { name: 'Reset your password' }).count(), 0, 'not the reset page')

    await page.getByLabel('Password', { exact: true }).fill('password')
    await page.getByLabel('Type it again').fill('password')
    await page.getByRole('button', { name: 'Set my password' }).click()
    await page.getByRole('alert').getByText('Your password is one of the most commonly used passwords').waitFor()
    assert.equal((await tokenRow(app, json(created).id, 'invite')).used_at, null, 'a refused password leaves the invitation usable')

    const password = `invited-${data.password}`
    await page.getByLabel('Password', { exact: true }).fill(password)
    await page.getByLabel('Type it again').fill(password)
    await page.getByRole('button', { name: 'Set my password' }).click()
    await page.getByRole('heading', { name: 'Your password is set' }).waitFor()
    assert.ok((await tokenRow(app, json(created).id, 'invite')).used_at !== null)
    await login(app, data.email, password)
    assert.deepEqual(problems, [])
  })

  it('verifies an email from the emailed link with the keyboard only, and a used link offers a new one', async (t) => {
    const { app } = suite()
    const data = newUserData('pageverify')
    const user = await signup(app, data)
    const { url } = linkIn(await mail.waitFor(mailTo(data.email, /Confirm your email/)))
    const context = await browser().newContext()
    t.after(() => context.close())
    const page = await context.newPage()
    const problems = watchPage(page)
    await page.goto(url)
    await page.getByRole('button', { name: 'Verify my email address' }).waitFor()
    assert.equal((await tokenRow(app, user.id, 'verify_email')).used_at, null, 'opening the page verifies nothing')

    // The page puts focus on what to do (the confirm section): one Tab reaches the button.
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'confirm')
    await page.keyboard.press('Tab')
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Verify my email address')
    await page.keyboard.press('Enter')
    await page.getByRole('heading', { name: 'Your email address is verified' }).waitFor()
    const token = await login(app, data.email, data.password)
    assert.equal(json(await app.inject({ method: 'GET', url: '/users/me', headers: { authorization: `Bearer ${token}` } })).email_verified, true)

    // The same link again (a fresh load: from the same path it would only be a fragment change).
    await page.goto('about:blank')
    await page.goto(url)
    await page.getByRole('button', { name: 'Verify my email address' }).click()
    await page.getByText('This link has expired or has already been used').waitFor()
    await page.getByLabel('Email address').fill(data.email)
    await page.getByRole('button', { name: 'Send me a new link' }).click()
    await page.getByRole('heading', { name: 'Check your email' }).waitFor()
    assert.match(await page.locator('#requested-text').textContent() ?? '', /If an account with this email needs verifying, we have sent it a link/)
    assert.deepEqual(problems, [])
  })

  it('asks for an address when opened without a token, and says so when the address is malformed', async (t) => {
    const context = await browser().newContext()
    t.after(() => context.close())
    const page = await context.newPage()
    const problems = watchPage(page)
    await page.goto(`${base()}/account/reset-password`)
    await page.getByLabel('Email address').fill('not an address')
    await page.getByRole('button', { name: 'Send me a link' }).click()
    await page.getByRole('alert').getByText('Enter an email address in the correct format').waitFor()
    const data = newUserData('pagerequest')
    await signup(suite().app, data)
    await page.getByLabel('Email address').fill(data.email)
    await page.getByRole('button', { name: 'Send me a link' }).click()
    await page.getByRole('heading', { name: 'Check your email' }).waitFor()
    assert.ok(await page.getByRole('alert').isHidden(), 'the error summary clears')
    const { url } = linkIn(await mail.waitFor(mailTo(data.email, /Reset your/)))
    assert.ok(url.startsWith(`${base()}/account/reset-password#token=`))
    assert.deepEqual(problems, [])
  })
})

import assert from 'node:assert/strict'
import { createHmac, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { revokeUserSessions } from '../src/auth/sessions.queries.js'
import { normalizeEmail, normalizeUsername } from '../src/users/identity.js'
import { insertUser } from '../src/users/users.queries.js'
import { BROWSER_SKIP, launchBrowser } from './browser.js'
import { buildTestApp, createUser, DIALECTS, json, newUserData, signup, useSuiteApp, type DialectName } from './helpers.js'

// The admin console in a real browser (Debian's Chromium through playwright-core) against the
// real server on a free port, on both databases: sign-in (and its refusal of a non-admin),
// search, filters and paging, a user's page and every action on it, checked afterwards with
// real API calls and in the database; the keyboard alone through the main flow; the page's
// strict CSP holding throughout (no violation, no request to another origin, nothing in web
// storage or cookies). Opened as http://localhost:PORT, like the passkey pages must be.

const VIEWPORT = { width: 1280, height: 900 }
const PASSWORD = `pw-${randomBytes(6).toString('hex')}-Console!`

interface ConsolePage {
  page: Page
  context: BrowserContext
  /** Requests to anywhere but our server. */
  foreign: string[]
  /** CSP violations, uncaught errors and console errors (other than failed loads the API answered with 4xx). */
  problems: string[]
}

/** A fresh browser context (no cookies, no storage) on the console, at `hash` when given. */
async function openConsole (browser: Browser, baseUrl: string, hash = ''): Promise<ConsolePage> {
  const context = await browser.newContext({ viewport: VIEWPORT })
  const page = await context.newPage()
  const foreign: string[] = []
  const problems: string[] = []
  page.on('request', (request) => {
    if (!request.url().startsWith(`${baseUrl}/`)) foreign.push(request.url())
  })
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`))
  page.on('console', (message) => {
    if (message.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(message.text())) problems.push(message.text())
  })
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`))
  })
  await page.goto(`${baseUrl}/admin${hash}`)
  await page.getByRole('heading', { name: 'Sign in to the admin console' }).waitFor()
  return { page, context, foreign, problems }
}

async function signIn (page: Page, email: string, password: string): Promise<void> {
  await page.getByLabel('Email address').fill(email)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
}

async function signInAsAdmin (page: Page, admin: { email: string, password: string }, landing = 'Users'): Promise<void> {
  await signIn(page, admin.email, admin.password)
  await page.getByTestId('signed-in-as').filter({ hasText: admin.email }).waitFor()
  await page.getByRole('heading', { name: landing, exact: true, level: 1 }).waitFor()
}

/** Waits until the element's text matches (the console answers asynchronously). */
async function waitForText (page: Page, selector: string, pattern: RegExp, timeout = 10_000): Promise<string> {
  const started = Date.now()
  let text = ''
  while (Date.now() - started < timeout) {
    text = (await page.locator(selector).first().textContent({ timeout }).catch(() => '')) ?? ''
    if (pattern.test(text)) return text
    await page.waitForTimeout(50)
  }
  throw new Error(`${selector}: expected text matching ${pattern}, last saw "${text}"`)
}

async function until<T> (check: () => Promise<T | undefined | false>, what: string, timeout = 10_000): Promise<T> {
  const started = Date.now()
  while (Date.now() - started < timeout) {
    const value = await check()
    if (value) return value
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** The usernames in the directory's table, top to bottom. */
async function listedUsernames (page: Page): Promise<string[]> {
  return page.locator('[data-testid=users-table] tbody tr td:first-child a').allTextContents()
}

async function searchFor (page: Page, text: string, expectedCount: RegExp): Promise<void> {
  await page.getByLabel('Search by email or username').fill(text)
  await page.getByRole('button', { name: 'Search', exact: true }).click()
  await waitForText(page, '[data-testid=result-count]', expectedCount)
}

/**
 * Users straight into the database (one password hash for all): a directory to page through.
 * Created oldest first, so the default order (newest first) is not the usernames' order.
 */
async function seedUsers (app: FastifyInstance, prefix: string, count: number): Promise<string[]> {
  const hashed = await app.passwords.hash(PASSWORD)
  const names: string[] = []
  for (let i = 0; i < count; i++) {
    const username = `${prefix}${String(i).padStart(3, '0')}`
    const email = `${username}@example.com`
    const now = new Date(Date.now() - (count - i) * 1000).toISOString()
    await insertUser(app.db.kysely, {
      username, username_normalized: normalizeUsername(username), email, email_normalized: normalizeEmail(email),
      hashed_password: hashed, role: 'user', created_at: now, updated_at: now, email_verified_at: null, pending_email: null
    })
    names.push(username)
  }
  return names
}

async function liveSessionCount (app: FastifyInstance, userId: number): Promise<number> {
  const rows = await app.db.kysely.selectFrom('sessions').select('id').where('user_id', '=', userId).where('revoked_at', 'is', null).execute()
  return rows.length
}

function apiGet (app: FastifyInstance, url: string, token: string) {
  return app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } })
}

function assertClean (console: ConsolePage): void {
  assert.deepEqual(console.foreign, [], 'no request left our origin')
  assert.deepEqual(console.problems, [], 'no CSP violation or script error')
}

async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return `http://localhost:${address.port}`
}

for (const dialect of DIALECTS) {
  describe(`admin console in a browser (${dialect.name})`, { skip: BROWSER_SKIP || dialect.skip }, () => {
    const suite = useSuiteApp({ dialect: dialect.name })
    let browser: Browser
    let baseUrl: string
    let admin: Awaited<ReturnType<typeof createUser>>
    const pages: BrowserContext[] = []
    let closeBrowser: () => Promise<void> | void = () => {}

    before(async () => {
      // One browser for the suite, closed in the suite's own after hook (not the before hook's).
      browser = await launchBrowser({ after: (close) => { closeBrowser = close } })
      baseUrl = await listen(suite().app)
      admin = await createUser(suite().app, { admin: true })
    })
    after(async () => {
      for (const context of pages) await context.close().catch(() => {})
      await closeBrowser()
    })

    async function open (hash?: string): Promise<ConsolePage> {
      const opened = await openConsole(browser, baseUrl, hash)
      pages.push(opened.context)
      return opened
    }

    it('signs an admin in to the directory; the tokens stay in memory: no web storage, no cookie', async () => {
      const consolePage = await open()
      const { page, context } = consolePage
      await signInAsAdmin(page, admin)
      await waitForText(page, '[data-testid=result-count]', /\d+ users?/)
      assert.ok((await listedUsernames(page)).includes(admin.username))
      const storage = await page.evaluate(() => ({ local: localStorage.length, session: sessionStorage.length, cookie: document.cookie }))
      assert.deepEqual(storage, { local: 0, session: 0, cookie: '' })
      assert.deepEqual(await context.cookies(), [])
      assertClean(consolePage)
    })

    it('shows the API\'s answer to a wrong password in an error summary that takes focus', async () => {
      const consolePage = await open()
      const { page } = consolePage
      await signIn(page, admin.email, 'not the password')
      await waitForText(page, '.error-summary', /Incorrect email or password/)
      await until(async () => await page.evaluate(() => document.activeElement?.className) === 'error-summary', 'focus on the error summary')
      assert.equal(await page.getByTestId('signed-in-as').count(), 0)
      assertClean(consolePage)
    })

    it('refuses a non-admin with a clear message and ends the session their password opened', async () => {
      const { app } = suite()
      const user = await signup(app)
      const consolePage = await open()
      const { page } = consolePage
      await signIn(page, user.email, user.password)
      const summary = await waitForText(page, '.error-summary', /not an administrator/)
      assert.match(summary, /You cannot use the admin console/)
      assert.match(summary, /Only administrators can use the admin console/)
      assert.equal(await page.getByTestId('signed-in-as').count(), 0)
      await page.getByRole('heading', { name: 'Sign in to the admin console' }).waitFor()
      // The sign-in made a session (the password was right); the console ended it at once.
      const sessions = await app.db.kysely.selectFrom('sessions').select(['revoked_at']).where('user_id', '=', user.id).execute()
      assert.equal(sessions.length, 1)
      assert.notEqual(sessions[0].revoked_at, null)
      assertClean(consolePage)
    })

    it('searches by prefix, filters by role, and pages through every match exactly once', async () => {
      const { app } = suite()
      const prefix = `pg${randomBytes(3).toString('hex')}`
      const names = await seedUsers(app, prefix, 30)
      const consolePage = await open()
      const { page } = consolePage
      await signInAsAdmin(page, admin)

      await page.getByLabel('Per page').selectOption('25')
      // Upper case on purpose: the search ignores case.
      await searchFor(page, prefix.toUpperCase(), /^30 users · showing 1–25/)
      await page.getByRole('button', { name: 'Username' }).click()
      await until(async () => (await listedUsernames(page))[0] === names[0], 'sorted by username')
      assert.equal(await page.locator('th[aria-sort=ascending]').textContent(), 'Username▲')
      const first = await listedUsernames(page)
      assert.deepEqual(first, names.slice(0, 25))

      await page.getByRole('button', { name: 'Next page ›' }).click()
      await waitForText(page, '[data-testid=result-count]', /showing 26–30/)
      const second = await listedUsernames(page)
      assert.deepEqual(second, names.slice(25))
      assert.equal(await page.getByRole('button', { name: 'Next page ›' }).count(), 0, 'no next page after the last')
      assert.match(await page.locator('.pagination__page').textContent() ?? '', /Page 2/)
      assert.equal(new Set([...first, ...second]).size, 30)

      // Back, by the console's button; and the browser's back button returns to where it was.
      await page.getByRole('button', { name: '‹ Previous page' }).click()
      await waitForText(page, '[data-testid=result-count]', /showing 1–25/)
      assert.deepEqual(await listedUsernames(page), first)
      await page.goBack()
      await waitForText(page, '[data-testid=result-count]', /showing 26–30/)
      assert.deepEqual(await listedUsernames(page), second)

      // One of them made an admin: the role filter finds just them.
      await app.db.kysely.updateTable('users').set({ role: 'admin' }).where('username', '=', names[7]).execute()
      await page.getByLabel('Role').selectOption('admin')
      await page.getByRole('button', { name: 'Search', exact: true }).click()
      await waitForText(page, '[data-testid=result-count]', /^1 user\b/)
      assert.deepEqual(await listedUsernames(page), [names[7]])

      // Nothing found: said plainly.
      await searchFor(page, `${prefix}zzz`, /^0 users/)
      await waitForText(page, '.results', /No users match/)
      await waitForText(page, '[data-testid=live-region]', /No users match/)
      assertClean(consolePage)
    })

    it('suspends a user with a reason: their access token stops at once and login is refused, until the suspension is lifted', async () => {
      const { app } = suite()
      const target = await createUser(app)
      assert.equal((await apiGet(app, '/users/me', target.token)).statusCode, 200)
      const consolePage = await open()
      const { page } = consolePage
      await signInAsAdmin(page, admin)
      await searchFor(page, target.email, /^1 user\b/)
      await page.getByRole('link', { name: target.username }).click()
      await page.getByRole('heading', { name: target.username, level: 1 }).waitFor()
      await waitForText(page, '[data-testid=profile]', /Active/)

      await page.getByLabel('Reason', { exact: true }).fill('Spam reports from several users')
      await page.getByRole('button', { name: 'Suspend account' }).click()
      await waitForText(page, '[data-testid=success-banner]', /is suspended and every session of theirs has ended/)
      await waitForText(page, '[data-testid=profile]', /Suspended until lifted.*Reason: Spam reports from several users/)

      // The real API: the token is dead, the password no longer opens a session.
      assert.equal((await apiGet(app, '/users/me', target.token)).statusCode, 401)
      const refused = await app.inject({ method: 'POST', url: '/users/login', payload: { email: target.email, password: target.password } })
      assert.equal(refused.statusCode, 403)
      assert.match(json(refused).detail, /suspended/i)
      assert.equal(await liveSessionCount(app, target.id), 0)
      // The activity list shows what was done, by whom, and why.
      await waitForText(page, '[data-testid=audit-table]', /Suspended.*Reason: Spam reports from several users\s*You/s)

      await page.getByRole('button', { name: 'Lift suspension' }).click()
      await waitForText(page, '[data-testid=success-banner]', /can sign in again/)
      await waitForText(page, '[data-testid=profile]', /Active/)
      const back = await app.inject({ method: 'POST', url: '/users/login', payload: { email: target.email, password: target.password } })
      assert.equal(back.statusCode, 200)
      assertClean(consolePage)
    })

    it('changes a role, sends a reset link, ends sessions and invites a user, each through the API', async () => {
      const { app } = suite()
      const target = await createUser(app)
      const consolePage = await open()
      const { page } = consolePage
      await signInAsAdmin(page, admin)
      await searchFor(page, target.email, /^1 user\b/)
      await page.getByRole('link', { name: target.username }).click()
      await page.getByRole('heading', { name: target.username, level: 1 }).waitFor()

      // Ending every session: confirmed first, then the target's token is refused.
      await waitForText(page, '#sessions-heading', /Sessions \(1\)/)
      await page.getByRole('button', { name: 'End all sessions' }).click()
      await page.getByRole('button', { name: 'Yes, end all sessions' }).click()
      await waitForText(page, '[data-testid=success-banner]', /sessions were ended/)
      await waitForText(page, '#sessions-heading', /Sessions \(0\)/)
      assert.equal((await apiGet(app, '/users/me', target.token)).statusCode, 401)

      // A reset link: an email queued to them, with no password in it.
      await page.getByLabel('Also end all their sessions now').check()
      await page.getByRole('button', { name: 'Send reset link' }).click()
      await waitForText(page, '[data-testid=success-banner]', new RegExp(`reset link was sent to ${target.email.replace('.', '\\.')}`))
      const resetMail = await app.db.kysely.selectFrom('email_outbox').select(['purpose', 'params']).where('user_id', '=', target.id).execute()
      assert.ok(resetMail.some((mail) => mail.purpose === 'reset_password'), JSON.stringify(resetMail))

      // The role: administrator now, and told so.
      await page.getByLabel('Administrator').check()
      await page.getByRole('button', { name: 'Change role' }).click()
      await waitForText(page, '[data-testid=success-banner]', /is now an administrator/)
      const row = await app.db.kysely.selectFrom('users').select('role').where('id', '=', target.id).executeTakeFirstOrThrow()
      assert.equal(row.role, 'admin')

      // An invitation.
      const invited = newUserData('invited')
      await page.getByRole('link', { name: 'Invite a user' }).first().click()
      await page.getByRole('heading', { name: 'Invite a user' }).waitFor()
      await page.getByLabel('Username').fill(invited.username)
      await page.getByLabel('Email address').fill(invited.email)
      await page.getByRole('button', { name: 'Send invitation' }).click()
      await waitForText(page, '[data-testid=success-banner]', new RegExp(`${invited.username} was created\\. An invitation`))
      await page.getByRole('heading', { name: invited.username, level: 1 }).waitFor()
      const created = await app.db.kysely.selectFrom('users').select(['id', 'role']).where('email_normalized', '=', invited.email.toLowerCase()).executeTakeFirstOrThrow()
      assert.equal(created.role, 'user')
      const inviteMail = await app.db.kysely.selectFrom('email_outbox').select(['purpose', 'recipient']).where('user_id', '=', created.id).execute()
      assert.equal(inviteMail.length, 1)
      assert.equal(inviteMail[0].recipient, invited.email)
      assertClean(consolePage)
    })

    it('tells an admin who is already signed in when their session ends under them, and asks them to sign in again', async () => {
      const { app } = suite()
      const other = await createUser(app, { admin: true })
      const consolePage = await open()
      const { page } = consolePage
      await signInAsAdmin(page, other)
      await revokeUserSessions(app.db.kysely, other.id, new Date().toISOString())
      await page.getByRole('button', { name: 'Search', exact: true }).click()
      await waitForText(page, '[data-testid=sign-in-notice]', /Your session has ended/)
      await page.getByRole('heading', { name: 'Sign in to the admin console' }).waitFor()
      assertClean(consolePage)
    })

    it('signs out: the session ends on the server and the sign-in form says so', async () => {
      const { app } = suite()
      const other = await createUser(app, { admin: true })
      const before = await liveSessionCount(app, other.id)
      const consolePage = await open()
      const { page } = consolePage
      await signInAsAdmin(page, other)
      assert.equal(await liveSessionCount(app, other.id), before + 1)
      await page.getByRole('button', { name: 'Sign out' }).click()
      await waitForText(page, '[data-testid=sign-in-notice]', /You have signed out/)
      assert.equal(await liveSessionCount(app, other.id), before)
      assertClean(consolePage)
    })

    it('a reload signs out: the page forgets the tokens and ends their session on the server', async () => {
      const { app } = suite()
      const other = await createUser(app, { admin: true })
      const before = await liveSessionCount(app, other.id)
      const consolePage = await open()
      const { page } = consolePage
      await signInAsAdmin(page, other)
      assert.equal(await liveSessionCount(app, other.id), before + 1)
      await page.reload()
      await page.getByRole('heading', { name: 'Sign in to the admin console' }).waitFor()
      await until(async () => await liveSessionCount(app, other.id) === before, 'the session to end after the reload')
      assertClean(consolePage)
    })

    it('works by keyboard alone: sign in, search, open a user and suspend them, with the focus always visible', async () => {
      const { app } = suite()
      const target = await createUser(app)
      const consolePage = await open()
      const { page } = consolePage

      /** Presses Tab until the focused element matches; returns what focus passed through. */
      async function tabTo (selector: string, max = 60): Promise<string[]> {
        const path: string[] = []
        for (let i = 0; i < max; i++) {
          await page.keyboard.press('Tab')
          const here = await page.evaluate((wanted) => {
            const element = document.activeElement as HTMLElement | null
            if (element === null) return { matches: false, name: '' }
            return { matches: element.matches(wanted), name: `${element.tagName.toLowerCase()}${element.id ? `#${element.id}` : ''}:${(element.textContent ?? '').trim().slice(0, 30)}` }
          }, selector)
          path.push(here.name)
          if (here.matches) return path
        }
        throw new Error(`${selector} was not reached by Tab; focus went through ${path.join(' > ')}`)
      }

      /** The focused element's focus indicator: the yellow ring (outline or background). */
      async function assertFocusVisible (): Promise<void> {
        const style = await page.evaluate(() => {
          const element = document.activeElement as HTMLElement
          const computed = getComputedStyle(element)
          return { outline: `${computed.outlineStyle} ${computed.outlineColor}`, background: computed.backgroundColor, visible: element.matches(':focus-visible') }
        })
        assert.ok(style.visible, 'keyboard focus is :focus-visible')
        const yellow = 'rgb(255, 221, 0)'
        assert.ok(style.outline === `solid ${yellow}` || style.background === yellow, `focus indicator: ${JSON.stringify(style)}`)
      }

      const toEmail = await tabTo('#email')
      assert.match(toEmail[0], /^a:Skip to main content/, 'the skip link comes first')
      await assertFocusVisible()
      await page.keyboard.type(admin.email)
      await page.keyboard.press('Tab')
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'password')
      await page.keyboard.type(admin.password)
      await page.keyboard.press('Tab')
      await assertFocusVisible()
      assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Sign in')
      await page.keyboard.press('Enter')
      await page.getByTestId('signed-in-as').waitFor()

      await tabTo('#q')
      await assertFocusVisible()
      await page.keyboard.type(target.email)
      await page.keyboard.press('Enter')
      await waitForText(page, '[data-testid=result-count]', /^1 user\b/)
      await waitForText(page, '[data-testid=live-region]', /1 user found/)

      await tabTo(`a[href="#/users/${target.id}"]`)
      await assertFocusVisible()
      await page.keyboard.press('Enter')
      await page.getByRole('heading', { name: target.username, level: 1 }).waitFor()
      await until(async () => await page.evaluate(() => document.activeElement?.tagName) === 'H1', 'the new screen\'s heading to take focus')

      await tabTo('#suspend-reason')
      await assertFocusVisible()
      await page.keyboard.type('Keyboard-only suspension')
      // The date-time field's parts (day, month, year, hour, minute) each take a Tab.
      const toButton = await tabTo('button[type=submit].button--warning', 10)
      assert.match(toButton.at(-1)!, /Suspend account/)
      await assertFocusVisible()
      await page.keyboard.press('Enter')
      await waitForText(page, '[data-testid=success-banner]', /is suspended/)
      await waitForText(page, '[data-testid=live-region]', /is suspended/)
      assert.equal((await apiGet(app, '/users/me', target.token)).statusCode, 401)
      assertClean(consolePage)
    })

    it('opens a user from a link after sign-in, and points a form\'s errors at their fields before any request', async () => {
      const { app } = suite()
      const target = await createUser(app)
      // A link to a user's screen (say, from a colleague): sign in, and that screen opens.
      const consolePage = await open(`#/users/${target.id}`)
      const { page } = consolePage
      await signInAsAdmin(page, admin, target.username)
      await waitForText(page, '[data-testid=profile]', new RegExp(`User ID${target.id}.*${target.email}`))
      await page.getByRole('button', { name: 'Suspend account' }).click()
      await waitForText(page, '.card .error-summary', /Enter the reason for the suspension/)
      assert.equal(await page.locator('#suspend-reason').getAttribute('aria-invalid'), 'true')
      assert.match(await page.locator('#suspend-reason').getAttribute('aria-describedby') ?? '', /suspend-reason-error/)
      await page.locator('.card .error-summary a').click()
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'suspend-reason')
      assert.equal((await apiGet(app, '/users/me', target.token)).statusCode, 200, 'nothing was sent')
      // A link to a user who is gone: the API's 404 (GET /admin/users/{id}) becomes a page that says so.
      await page.evaluate(() => { location.hash = '#/users/987654321' })
      await page.getByRole('heading', { name: 'User not found' }).waitFor()
      await waitForText(page, 'main', /There is no user with the id 987654321/)
      assertClean(consolePage)
    })
  })
}

// ---- Token refresh (a short-lived access token), and the second factor (issue 15) ------------

for (const dialect of DIALECTS) {
  describe(`admin console sessions in a browser (${dialect.name})`, { skip: BROWSER_SKIP || dialect.skip }, () => {
    it('refreshes an expired access token with the refresh token, without asking to sign in again', async (t) => {
      const { app } = await buildTestApp(t, { dialect: dialect.name as DialectName, env: { ACCESS_TOKEN_TTL: '2s' } })
      const baseUrl = await listen(app)
      const browser = await launchBrowser(t)
      const admin = await createUser(app, { admin: true })
      await signup(app)
      const consolePage = await openConsole(browser, baseUrl)
      const { page } = consolePage
      await signInAsAdmin(page, admin)
      // Two users before the search, one after: the count changes only once the search answered.
      await waitForText(page, '[data-testid=result-count]', /^2 users/)
      await page.waitForTimeout(2_500)
      await searchFor(page, admin.email, /^1 user\b/)
      const refreshes = await app.db.kysely.selectFrom('audit_events').select('id').where('type', '=', 'refresh').where('user_id', '=', admin.id).execute()
      assert.ok(refreshes.length >= 1, 'the console refreshed its token')
      assert.equal(await page.getByTestId('signed-in-as').count(), 1)
      const storage = await page.evaluate(() => localStorage.length + sessionStorage.length)
      assert.equal(storage, 0)
      assertClean(consolePage)
    })

    it('asks for an authenticator code, or a recovery code, when the login answers "MFA required" (issue 15)', async (t) => {
      const { app } = await buildTestApp(t, { dialect: dialect.name as DialectName })
      if (!app.hasRoute({ method: 'POST', url: '/users/login/mfa' })) {
        t.skip('POST /users/login/mfa does not exist on this branch yet (issue 15); this test runs once it does')
        return
      }
      const baseUrl = await listen(app)
      const browser = await launchBrowser(t)
      const admin = await createUser(app, { admin: true })
      // TOTP on, through the API as issue 15 specifies it.
      const enrolled = await app.inject({ method: 'POST', url: '/users/me/mfa/totp', headers: { authorization: `Bearer ${admin.token}` } })
      assert.equal(enrolled.statusCode, 200, enrolled.body)
      const secret = base32Decode(json(enrolled).secret)
      const step = Math.floor(Date.now() / 30_000)
      const confirmed = await app.inject({ method: 'POST', url: '/users/me/mfa/totp/confirm', headers: { authorization: `Bearer ${admin.token}` }, payload: { code: totp(secret, step) } })
      assert.equal(confirmed.statusCode, 200, confirmed.body)
      const recoveryCodes: string[] = json(confirmed).recovery_codes

      const consolePage = await openConsole(browser, baseUrl)
      const { page } = consolePage
      await signIn(page, admin.email, admin.password)
      await page.getByRole('heading', { name: 'Enter the code from your authenticator app' }).waitFor()
      await page.getByLabel('Verification code').fill('12345')
      await page.getByRole('button', { name: 'Continue' }).click()
      await waitForText(page, '.error-summary', /The code is 6 digits/)
      // A code from far outside the accepted window: the API's refusal, shown as it says it.
      await page.getByLabel('Verification code').fill(totp(secret, step + 20))
      await page.getByRole('button', { name: 'Continue' }).click()
      const refusal = await waitForText(page, '.error-summary', /code/i)
      assert.doesNotMatch(refusal, /6 digits/)
      assert.equal(await page.getByTestId('signed-in-as').count(), 0)
      // The confirming code's step is used up: the next step's code is within the accepted skew.
      await page.getByLabel('Verification code').fill(totp(secret, step + 1))
      await page.getByRole('button', { name: 'Continue' }).click()
      await page.getByTestId('signed-in-as').filter({ hasText: admin.email }).waitFor()

      await page.getByRole('button', { name: 'Sign out' }).click()
      await signIn(page, admin.email, admin.password)
      await page.getByRole('button', { name: 'Use a recovery code instead' }).click()
      await until(async () => await page.evaluate(() => document.activeElement?.id) === 'recovery-code', 'focus on the recovery code field')
      await page.getByLabel('Recovery code').fill(recoveryCodes[0])
      await page.getByRole('button', { name: 'Continue' }).click()
      await page.getByTestId('signed-in-as').filter({ hasText: admin.email }).waitFor()
      assertClean(consolePage)
    })
  })
}

/** RFC 4648 base32 (the TOTP secret's alphabet), padding and case ignored. */
function base32Decode (text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  let bits = ''
  for (const char of text.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(char).toString(2).padStart(5, '0')
  const bytes = []
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2))
  return Buffer.from(bytes)
}

/** RFC 6238 with RFC 4226's truncation: HMAC-SHA-1, 6 digits, 30-second steps. */
function totp (secret: Buffer, step: number): string {
  const counter = Buffer.alloc(8)
  counter.writeBigUInt64BE(BigInt(step))
  const digest = createHmac('sha1', secret).update(counter).digest()
  const offset = digest[digest.length - 1] & 0x0f
  return String((digest.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0')
}

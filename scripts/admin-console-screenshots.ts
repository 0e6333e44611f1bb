// npm run screenshots: regenerates docs/screenshots/*.png, the admin console's main screens and
// the account pages shown in the README, from the real console, pages and API: a throwaway server
// (SQLite in a temp dir) with made-up users, its emails sent to a local SMTP server (the tests'),
// driven through Debian's Chromium.
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { chromium } from 'playwright-core'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { normalizeEmail, normalizeUsername } from '../src/users/identity.js'
import { insertUser } from '../src/users/users.queries.js'
import { linkIn, mailTo, startMailServer } from '../test/mail.js'

const OUT = fileURLToPath(new URL('../docs/screenshots/', import.meta.url))
const CHROMIUM = '/usr/bin/chromium'
const PASSWORD = `Screenshot-${randomBytes(6).toString('hex')}`
const DAY = 86_400_000
const HOUR = 3_600_000
const MINUTE = 60_000

// The server's clock: pinned to moments in the past while the directory is seeded (so sign-ins
// and events spread over days, as in a real one), then the real time for the browser.
let pinned: number | undefined
const clock = () => pinned ?? Date.now()

const PEOPLE = [
  'Maria Gonzalez', 'Aiko Tanaka', 'Tomasz Nowak', 'Amara Okafor', 'Liam O\'Brien', 'Sofia Rossi', 'Noah Fischer',
  'Priya Raman', 'Jonas Lindqvist', 'Chloé Martin', 'Mateus Silva', 'Hannah Becker', 'Omar Haddad', 'Ingrid Larsen',
  'Kwame Mensah', 'Elena Petrova', 'Lucas Dubois', 'Yuki Sato', 'Fatima Zahra', 'Daniel Kim', 'Zoe Clarke',
  'Arjun Mehta', 'Ana Costa', 'Felix Wagner', 'Leila Karimi', 'Samuel Adeyemi', 'Nora Hansen', 'Diego Herrera',
  'Mei Chen', 'Oscar Nilsson', 'Isabel Moreno', 'Ravi Patel', 'Julia Novak', 'Ethan Wright', 'Sara Ahmed'
]

const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'
]

function handle (name: string): string {
  return name.normalize('NFD').replace(/[\u0300-\u036f']/g, '').toLowerCase().replace(/\s+/g, '.')
}

async function call (app: FastifyInstance, method: 'GET' | 'POST' | 'PUT', url: string, token: string | undefined, payload?: object, extra: { ua?: string, ip?: string } = {}) {
  const response = await app.inject({
    method,
    url,
    payload,
    remoteAddress: extra.ip,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(extra.ua ? { 'user-agent': extra.ua } : {}) }
  })
  if (response.statusCode >= 400 && !(url === '/users/login' && response.statusCode === 401)) throw new Error(`${method} ${url}: ${response.statusCode} ${response.body}`)
  return response.body === '' ? undefined : JSON.parse(response.body)
}

/** A directory that looks lived-in: signed up over four months, some verified, some signed in from a few devices. */
async function seed (app: FastifyInstance) {
  const hashed = await app.passwords.hash(PASSWORD)
  const now = Date.now()
  const ids = new Map<string, number>()
  const everyone = ['Dana Whitfield', ...PEOPLE]
  for (const [index, name] of everyone.entries()) {
    const username = handle(name)
    const email = index % 3 === 1 ? `${username}@acme.example` : `${username.split('.')[0]}@example.com`
    const created = new Date(now - (index === 0 ? 130 : (everyone.length - index) * 3.4 + 0.3) * DAY - index * 3_600_000).toISOString()
    const id = await insertUser(app.db.kysely, {
      username,
      username_normalized: normalizeUsername(username),
      email,
      email_normalized: normalizeEmail(email),
      hashed_password: hashed,
      role: index === 0 ? 'admin' : 'user',
      created_at: created,
      updated_at: created,
      email_verified_at: index % 4 === 3 ? null : created,
      pending_email: null
    })
    ids.set(username, id)
  }
  const emailOf = async (username: string) => (await app.db.kysely.selectFrom('users').select('email').where('username', '=', username).executeTakeFirstOrThrow()).email
  const login = async (username: string, agent: string, ip: string) =>
    (await call(app, 'POST', '/users/login', undefined, { email: await emailOf(username), password: PASSWORD }, { ua: agent, ip })).access_token as string

  // Each one's events in time order (the activity list is newest first by insertion).
  for (const [index, name] of PEOPLE.entries()) {
    if (index % 3 === 2 || index === 0) continue
    pinned = now - ((index * 37) % 190 + 1) * HOUR - index * 13 * MINUTE
    await login(handle(name), AGENTS[index % AGENTS.length], `198.51.100.${20 + index}`)
  }
  // The user the "a user" screenshot shows: two devices, a mistyped password, a reset link.
  pinned = now - 2 * DAY - 3 * HOUR
  await login('maria.gonzalez', AGENTS[1], '198.51.100.77')
  pinned = now - 5 * HOUR
  await call(app, 'POST', '/users/login', undefined, { email: await emailOf('maria.gonzalez'), password: 'not-her-password' }, { ua: AGENTS[0], ip: '198.51.100.20' })
  pinned = now - 5 * HOUR + 2 * MINUTE
  await login('maria.gonzalez', AGENTS[0], '198.51.100.20')

  pinned = now - 50 * MINUTE
  const admin = await login('dana.whitfield', AGENTS[2], '203.0.113.10')
  pinned = now - 44 * MINUTE
  await call(app, 'POST', `/admin/users/${ids.get('maria.gonzalez')}/password-reset`, admin, {}, { ua: AGENTS[2], ip: '203.0.113.10' })
  pinned = now - 40 * MINUTE
  await call(app, 'PUT', `/admin/users/${ids.get('ethan.wright')}/role`, admin, { role: 'admin', reason: 'Joins the support team' })
  await call(app, 'PUT', `/admin/users/${ids.get('aiko.tanaka')}/role`, admin, { role: 'admin' })
  pinned = now - 38 * MINUTE
  await call(app, 'POST', `/admin/users/${ids.get('isabel.moreno')}/suspend`, admin, { reason: 'Spam reports from several users' })
  await call(app, 'POST', `/admin/users/${ids.get('julia.novak')}/suspend`, admin, { reason: 'Chargeback under review', until: new Date(now + 14 * DAY).toISOString() })
  pinned = undefined
}

async function main () {
  const dataDir = mkdtempSync(join(tmpdir(), 'uma-screenshots-'))
  const stops: Array<() => Promise<void> | void> = []
  const mail = await startMailServer({ after: (stop) => { stops.push(stop) } })
  const config = loadConfig({
    SMTP_URL: mail.url,
    MAIL_FROM: 'Acme Accounts <accounts@example.com>',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    APP_NAME: 'Acme Accounts',
    JWT_SECRET: randomBytes(32).toString('base64url'),
    RATE_LIMITS: 'off',
    HOST: '127.0.0.1',
    PORT: '0'
  })
  const app = await buildApp(config, { now: clock })
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Dates in date fields as a British admin sees them (the field's format follows the locale).
    env: { ...process.env, LANG: 'en_GB.UTF-8', LANGUAGE: 'en_GB' },
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars', '--font-render-hinting=none', '--lang=en-GB']
  })
  try {
    await seed(app)
    await app.listen({ host: '127.0.0.1', port: 0 })
    const address = app.server.address()
    if (address === null || typeof address === 'string') throw new Error('no port')
    const base = `http://localhost:${address.port}`

    mkdirSync(OUT, { recursive: true })
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1, locale: 'en-GB', timezoneId: 'Europe/London' })
    const page = await context.newPage()
    await page.goto(`${base}/admin`)
    await page.getByRole('heading', { name: 'Sign in to the admin console' }).waitFor()
    await page.getByLabel('Email address').fill('dana@example.com')
    await page.screenshot({ path: join(OUT, 'admin-sign-in.png') })

    await page.getByLabel('Password').fill(PASSWORD)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.locator('[data-testid=users-table]').waitFor()
    await page.getByLabel('Per page').selectOption('25')
    await page.getByRole('button', { name: 'Search', exact: true }).click()
    await page.locator('[data-testid=result-count]').filter({ hasText: 'showing 1–25' }).waitFor()
    await page.mouse.move(0, 0)
    await page.setViewportSize({ width: 1280, height: 1180 })
    await page.screenshot({ path: join(OUT, 'admin-directory.png') })
    await page.setViewportSize({ width: 1280, height: 860 })

    await page.getByLabel('Search by email or username').fill('maria')
    await page.getByRole('button', { name: 'Search', exact: true }).click()
    await page.getByRole('link', { name: 'maria.gonzalez' }).click()
    await page.locator('[data-testid=audit-table]').waitFor()
    await page.locator('[data-testid=sessions-table]').waitFor()
    await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur())
    await page.screenshot({ path: join(OUT, 'admin-user.png'), fullPage: true })
    await context.close()

    // The reset-password page from an emailed link, after a refused password.
    const sofia = (await app.db.kysely.selectFrom('users').select('email').where('username', '=', 'sofia.rossi').executeTakeFirstOrThrow()).email
    await call(app, 'POST', '/users/password-reset/request', undefined, { email: sofia })
    const { token } = linkIn(await mail.waitFor(mailTo(sofia, /Reset your/)))
    const account = await browser.newContext({ viewport: { width: 900, height: 760 }, deviceScaleFactor: 1, locale: 'en-GB' })
    const resetPage = await account.newPage()
    await resetPage.goto(`${base}/account/reset-password#token=${token}`)
    await resetPage.getByLabel('New password').fill('password')
    await resetPage.getByLabel('Type it again').fill('password')
    await resetPage.getByRole('button', { name: 'Change my password' }).click()
    await resetPage.getByRole('alert').getByText('one of the most commonly used passwords').waitFor()
    await resetPage.screenshot({ path: join(OUT, 'account-reset-password-error.png') })

    // The page an invitation's link opens (an account an administrator created).
    const { access_token: admin } = await call(app, 'POST', '/users/login', undefined, { email: 'dana@example.com', password: PASSWORD })
    await call(app, 'POST', '/admin/users', admin, { username: 'lena.fischer', email: 'lena.fischer@example.com' })
    const invitation = linkIn(await mail.waitFor(mailTo('lena.fischer@example.com', /invited/)))
    const setPage = await account.newPage()
    await setPage.goto(`${base}/account/set-password#token=${invitation.token}`)
    await setPage.getByLabel('Password', { exact: true }).fill('correct horse battery')
    await setPage.screenshot({ path: join(OUT, 'account-set-password.png') })
    await account.close()
    console.log(`screenshots written to ${OUT}`)
  } finally {
    await browser.close()
    await app.close()
    for (const stop of stops) await stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

await main()

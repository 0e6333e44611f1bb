import assert from 'node:assert/strict'
import { before, describe, it, type TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { BrowserContext, CDPSession, Page } from 'playwright-core'
import { BROWSER_SKIP, useSuiteBrowser } from './browser.js'
import { authed, createUser, json, newUserData, signup, useSuiteApp } from './helpers.js'
import { freePort } from './mail.js'
import { SoftAuthenticator } from './webauthn-authenticator.js'

// Passkeys end to end in a real browser (Debian's Chromium) with the Chrome DevTools Protocol's
// virtual authenticator (ctap2, internal transport, resident keys, user verification): the
// built-in pages register a passkey, sign in with it without a username, and are refused when
// the device does not verify the user. The server runs with the quick start's configuration
// (no PUBLIC_URL: http://127.0.0.1:PORT, so the passkey origin is http://localhost:PORT) and the
// pages are opened at http://localhost:PORT, since Chromium refuses WebAuthn on 127.0.0.1.

const passkeyRows = (app: FastifyInstance, userId: number) =>
  app.db.kysely.selectFrom('passkeys').select(['id', 'name', 'counter', 'credential_id']).where('user_id', '=', userId).orderBy('id').execute()
const liveSessions = (app: FastifyInstance, userId: number) =>
  app.db.kysely.selectFrom('sessions').select(['id', 'aal', 'passkey_id']).where('user_id', '=', userId).where('revoked_at', 'is', null).execute()

/** Fails the test on any CSP violation or script error (the API's 4xx answers are expected). */
function watchPage (page: Page): string[] {
  const problems: string[] = []
  page.on('console', (message) => {
    if (message.type() === 'error' && !/Failed to load resource: the server responded with a status of 40[0134]/.test(message.text())) problems.push(message.text())
  })
  page.on('pageerror', (error) => problems.push(error.message))
  return problems
}

interface VirtualAuthenticator {
  cdp: CDPSession
  id: string
  credentials: () => Promise<Array<{ credentialId: string, isResidentCredential: boolean, signCount: number, userHandle?: string }>>
  setUserVerified: (verified: boolean) => Promise<void>
}

/** A platform authenticator in the page's browser, as a phone or laptop has: ctap2, internal, discoverable, with user verification. */
async function addVirtualAuthenticator (context: BrowserContext, page: Page): Promise<VirtualAuthenticator> {
  const cdp = await context.newCDPSession(page)
  await cdp.send('WebAuthn.enable', { enableUI: false })
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true }
  })
  return {
    cdp,
    id: authenticatorId,
    credentials: async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials,
    setUserVerified: async (isUserVerified) => { await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified }) }
  }
}

describe('passkeys in a browser', { skip: BROWSER_SKIP }, () => {
  let port = 0
  before(async () => {
    port = await freePort()
  })
  // PORT only: PUBLIC_URL, WEBAUTHN_* at their defaults, as after `npm ci && npm start`.
  const suite = useSuiteApp(() => ({ dialect: 'sqlite', env: { PORT: String(port), APP_NAME: 'Example Accounts' } }))
  before(async () => {
    await suite().app.listen({ host: '127.0.0.1', port })
  })
  const browser = useSuiteBrowser()
  const base = () => `http://localhost:${port}`

  async function openPage (t: TestContext, path: string) {
    const context = await browser().newContext()
    t.after(() => context.close())
    const page = await context.newPage()
    const problems = watchPage(page)
    const authenticator = await addVirtualAuthenticator(context, page)
    await page.goto(`${base()}${path}`)
    return { page, problems, authenticator }
  }

  async function signInWithPassword (page: Page, user: { email: string, password: string }) {
    await page.getByLabel('Email address').fill(user.email)
    await page.getByLabel('Password', { exact: true }).fill(user.password)
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  }

  it('registers a passkey, signs out, signs in with it without a username, the counter advancing; refused when the device does not verify the user', async (t) => {
    const { app } = suite()
    const user = await signup(app, newUserData('browser'))
    const { page, problems, authenticator } = await openPage(t, '/account/sign-in')
    assert.equal(await page.title(), 'Sign in - Example Accounts')

    // Email and password (no second factor yet), then the passkeys of the account.
    await signInWithPassword(page, user)
    await page.getByRole('heading', { level: 1, name: 'Your passkeys' }).waitFor()
    assert.ok(page.url().endsWith('/account/passkeys'))
    await page.getByText('You have no passkeys yet').waitFor()

    await page.getByLabel('Name (optional)').fill('Test laptop')
    await page.getByRole('button', { name: 'Add a passkey' }).click()
    await page.getByText('The passkey "Test laptop" was added').waitFor()
    // The first second factor: recovery codes, shown once, with the focus on them.
    await page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor()
    assert.equal(await page.locator('#recovery-code-list li').count(), 10)
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'recovery-codes')
    await page.getByRole('cell', { name: 'Test laptop this sign-in' }).waitFor()

    const [stored] = await passkeyRows(app, user.id)
    assert.equal(stored.name, 'Test laptop')
    const [credential] = await authenticator.credentials()
    assert.equal(credential.isResidentCredential, true, 'a discoverable credential')
    assert.equal(Buffer.from(credential.credentialId, 'base64').toString('base64url'), stored.credential_id)
    assert.equal(stored.counter, credential.signCount)

    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor()
    await page.getByText('You signed out.').waitFor()

    // A fresh load of the page (nothing remembered), then by keyboard, typing nothing: Tab to
    // the passkey button and press Enter.
    await page.goto(`${base()}/account/sign-in`)
    await page.getByRole('button', { name: 'Sign in with a passkey' }).waitFor()
    for (let i = 0; i < 10 && await page.evaluate(() => document.activeElement?.id) !== 'passkey-button'; i++) await page.keyboard.press('Tab')
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'passkey-button')
    await page.keyboard.press('Enter')
    await page.getByText('You signed in with your passkey.').waitFor()
    await page.getByText('this sign-in').waitFor()
    assert.equal(await page.getByLabel('Email address').inputValue(), '', 'no username typed')
    const afterFirst = (await passkeyRows(app, user.id))[0].counter
    const signCount = (await authenticator.credentials())[0].signCount
    assert.ok(afterFirst > stored.counter, `the counter advanced: ${stored.counter} -> ${afterFirst}`)
    assert.equal(afterFirst, signCount, 'the server stores the authenticator\'s counter')
    const sessions = await liveSessions(app, user.id)
    const passkeySession = sessions.find((session) => session.passkey_id === stored.id && session.aal === 'aal2')
    assert.ok(passkeySession, 'an aal2 session signed in by the passkey')

    // Again: the counter moves on.
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
    await page.getByText('You signed in with your passkey.').waitFor()
    const afterSecond = (await passkeyRows(app, user.id))[0].counter
    assert.ok(afterSecond > afterFirst)
    assert.equal(afterSecond, (await authenticator.credentials())[0].signCount)

    // The device cannot verify the user (no PIN, fingerprint or face): refused, no session.
    await page.getByRole('button', { name: 'Sign out' }).click()
    const before = (await liveSessions(app, user.id)).length
    await authenticator.setUserVerified(false)
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
    const summary = page.getByRole('alert')
    // Chromium itself refuses: the options require user verification, which this device cannot give.
    await summary.getByText('No passkey was used: the request was cancelled or timed out, or your device did not confirm it was you').waitFor()
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'error-summary')
    // A client that asks for less ("discouraged") gets an assertion without the UV flag: the server refuses it.
    const lowered = await page.evaluate(async () => {
      const { startAuthentication } = await import('/account/assets/webauthn/index.js' as string)
      const options = await (await fetch('/users/login/passkey/options', { method: 'POST' })).json()
      const response = await startAuthentication({ optionsJSON: { ...options, userVerification: 'discouraged' } })
      const result = await fetch('/users/login/passkey', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ response }) })
      return { status: result.status, body: await result.json(), uv: (new Uint8Array(Uint8Array.from(atob(response.response.authenticatorData.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0)))[32] & 0x04) !== 0 }
    })
    assert.equal(lowered.uv, false, 'the authenticator did not verify the user')
    assert.equal(lowered.status, 401)
    assert.equal(lowered.body.detail, 'Passkey not accepted: User verification required, but user could not be verified')
    assert.equal((await liveSessions(app, user.id)).length, before, 'no session')
    assert.equal((await passkeyRows(app, user.id))[0].counter, afterSecond)
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor()
    assert.deepEqual(problems, [])
  })

  it('offers the passkey at the password login\'s second step, refuses a second passkey on the same device, and signs out when the passkey in use is removed', async (t) => {
    const { app } = suite()
    const user = await signup(app, newUserData('browsermfa'))
    const { page, problems } = await openPage(t, '/account/passkeys')
    assert.equal(await page.title(), 'Your passkeys - Example Accounts')
    await page.getByText('Sign in to see and change your passkeys.').waitFor()
    await signInWithPassword(page, user)
    await page.getByRole('button', { name: 'Add a passkey' }).click()
    await page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor()

    // The device holds a passkey for the account already: the browser refuses a second one.
    await page.getByRole('button', { name: 'Add a passkey' }).click()
    await page.getByRole('alert').getByText('This device already holds a passkey for your account').waitFor()
    assert.equal((await passkeyRows(app, user.id)).length, 1)

    // A password login now asks for the second factor: the passkey meets it.
    await page.getByRole('button', { name: 'Sign out' }).click()
    await signInWithPassword(page, user)
    await page.getByRole('heading', { name: 'Confirm it is you' }).waitFor()
    assert.equal(await page.getByLabel('One of your recovery codes').isVisible(), true)
    await page.getByRole('button', { name: 'Use a passkey' }).click()
    await page.getByText('You signed in with your passkey.').waitFor()

    // Removing the passkey this sign-in used ends it.
    page.once('dialog', (dialog) => { void dialog.accept() })
    const [passkey] = await passkeyRows(app, user.id)
    await page.getByRole('button', { name: `Remove the passkey ${passkey.name}` }).click()
    await page.getByText(`You removed the passkey "${passkey.name}" that you signed in with, so you were signed out`).waitFor()
    assert.deepEqual(await passkeyRows(app, user.id), [])
    const login = await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } })
    assert.equal(login.statusCode, 200, 'the password alone signs in again')
    assert.equal(json(login).token_type, 'bearer')
    assert.deepEqual(problems, [])
  })

  it('shows a wrong password and a wrong second-step code beside their fields; a recovery code completes the sign-in', async (t) => {
    const { app } = suite()
    const user = await createUser(app)
    // A passkey added through the API (a software authenticator), for its recovery codes.
    const soft = new SoftAuthenticator({ rpId: 'localhost', origin: base() })
    const options = json(await authed(app, user.token, { method: 'POST', url: '/users/me/passkeys/options' }))
    const added = await authed(app, user.token, { method: 'POST', url: '/users/me/passkeys', payload: { response: soft.register(options).response } })
    assert.equal(added.statusCode, 201, added.body)
    const recoveryCodes: string[] = json(added).recovery_codes

    const { page, problems } = await openPage(t, '/account/sign-in')
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
    await page.getByRole('alert').getByText('Enter your email address, like name@example.com').waitFor()
    assert.equal(await page.getByLabel('Email address').getAttribute('aria-invalid'), 'true')
    await signInWithPassword(page, { email: user.email, password: 'not the password' })
    await page.getByRole('alert').getByText('Enter the email address and password of your account').first().waitFor()
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'error-summary')

    await signInWithPassword(page, user)
    const codeField = page.getByLabel('One of your recovery codes')
    await codeField.waitFor()
    await codeField.fill('aaaa-bbbb-cccc-dddd')
    await page.getByRole('button', { name: 'Continue' }).click()
    await page.getByRole('alert').getByText('The code is not right. Check it and try again').waitFor()
    assert.equal(await codeField.getAttribute('aria-invalid'), 'true')
    await codeField.fill(recoveryCodes[0].toUpperCase())
    await page.getByRole('button', { name: 'Continue' }).click()
    await page.getByText('You signed in.').waitFor()
    assert.equal(await page.locator('#passkey-rows tr').count(), 1)
    assert.deepEqual(problems, [])
  })

  it('on http://127.0.0.1 (where browsers refuse passkeys) points to the localhost address instead of offering the button', async (t) => {
    const context = await browser().newContext()
    t.after(() => context.close())
    const page = await context.newPage()
    const problems = watchPage(page)
    await page.goto(`http://127.0.0.1:${port}/account/sign-in`)
    await page.getByText('Passkeys work on this page at').first().waitFor()
    assert.equal(await page.getByRole('link', { name: `${base()}/account/sign-in` }).first().getAttribute('href'), `${base()}/account/sign-in`)
    assert.equal(await page.getByRole('button', { name: 'Sign in with a passkey' }).isVisible(), false)
    assert.equal(await page.getByRole('button', { name: 'Sign in', exact: true }).isVisible(), true, 'email and password still work here')
    assert.deepEqual(problems, [])
  })

  it('serves the pages with the strict CSP and the WebAuthn library from its own origin', async () => {
    const { app } = suite()
    for (const path of ['/account/sign-in', '/account/passkeys']) {
      const response = await app.inject({ method: 'GET', url: path })
      assert.equal(response.statusCode, 200)
      assert.match(String(response.headers['content-security-policy']), /^default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';/)
      assert.equal(response.headers['cache-control'], 'no-store')
      assert.ok(!/<script>|\sstyle=|\son[a-z]+=|https?:\/\/(?!localhost)/i.test(response.body.replace(/data-origins="[^"]*"/, '')), 'nothing inline, nothing from elsewhere')
      assert.match(response.body, /<noscript><p class="notice">Signing in here needs JavaScript/)
    }
    const library = await app.inject({ method: 'GET', url: '/account/assets/webauthn/index.js' })
    assert.equal(library.statusCode, 200)
    assert.equal(library.headers['content-type'], 'text/javascript; charset=utf-8')
    assert.match(library.body, /export \* from '\.\/methods\/startRegistration\.js'/)
    assert.equal((await app.inject({ method: 'GET', url: '/account/assets/webauthn/methods/startAuthentication.js' })).statusCode, 200)
    assert.equal((await app.inject({ method: 'GET', url: '/account/assets/webauthn/../../package.json' })).statusCode, 404)
    assert.equal((await app.inject({ method: 'GET', url: '/account/assets/webauthn/index.d.ts' })).statusCode, 404)
  })
})

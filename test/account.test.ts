import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { before, describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { authed, buildTestApp, captureLogs, createClock, createUser, DIALECTS, json, login, newUserData, signup, useSuiteApp, type DialectName } from './helpers.js'
import { linkIn, mailTo, startMailServer, useMailServer, type MailServer } from './mail.js'

// The account lifecycle by email, through HTTP, with a real SMTP server receiving what the
// outbox worker sends: verification, password reset, the EMAIL_VERIFICATION modes of an
// email change, the per-address limits, and what never reaches a log line.

const RESET_ACCEPTED = 'If an account exists for this email, we have sent a link to reset its password'
const PUBLIC_URL = 'https://accounts.example.test/base'

function mailEnv (mail: MailServer, extra: Record<string, string> = {}): Record<string, string> {
  return {
    SMTP_URL: mail.url,
    MAIL_FROM: 'Example Accounts <no-reply@example.test>',
    PUBLIC_URL,
    APP_NAME: 'Example Accounts',
    MAIL_POLL_INTERVAL: '1',
    MAIL_RETRY_DELAY: '1',
    MAIL_IP_LIMIT: '1000/5m',
    ...extra
  }
}

const post = (app: FastifyInstance, url: string, payload: unknown, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url, payload: payload as object, headers })

const outboxRows = (app: FastifyInstance, recipient: string) =>
  app.db.kysely.selectFrom('email_outbox').selectAll().where('recipient_normalized', '=', recipient.toLowerCase()).orderBy('id').execute()

const tokensOf = (app: FastifyInstance, userId: number) =>
  app.db.kysely.selectFrom('account_tokens').selectAll().where('user_id', '=', userId).orderBy('id').execute()

/** Waits until the outbox has no pending row (the worker sent everything queued so far). */
async function drained (app: FastifyInstance, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const pending = await app.db.kysely.selectFrom('email_outbox').select('id').where('status', '=', 'pending').execute()
    if (pending.length === 0) return
    if (Date.now() > deadline) throw new Error(`${pending.length} emails still pending after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

for (const dialect of DIALECTS) {
  describe(`account lifecycle by email (${dialect.name})`, { skip: dialect.skip }, () => {
    const mailServer = useMailServer()
    let mail: MailServer
    before(() => { mail = mailServer() })
    const clock = createClock(Date.now())
    const suite = useSuiteApp(() => ({ dialect: dialect.name, env: mailEnv(mailServer()), overrides: { now: clock.now } }))

    it('signup emails a verification link over SMTP that verifies the address once', async () => {
      const { app } = suite()
      const data = newUserData('verify')
      const user = await signup(app, data)
      const message = await mail.waitFor(mailTo(data.email, /Confirm your email address/))
      assert.equal(message.subject, 'Confirm your email address for Example Accounts')
      assert.match(String(message.from?.text), /no-reply@example\.test/)
      const { url, token } = linkIn(message)
      assert.ok(url.startsWith(`${PUBLIC_URL}/account/verify-email#token=`), url)
      assert.match(token, /^[A-Za-z0-9_-]{43}$/)
      assert.ok(String(message.html).includes(`href="${url}"`), 'the HTML part carries the same link')

      const token1 = await login(app, data.email, data.password)
      assert.equal(json(await authed(app, token1, { method: 'GET', url: `/users/${user.id}` })).email_verified, false)
      const confirmed = await post(app, '/users/verify-email/confirm', { token })
      assert.equal(confirmed.statusCode, 200, confirmed.body)
      assert.deepEqual(json(confirmed), { message: 'Email verified' })
      assert.equal(json(await authed(app, token1, { method: 'GET', url: '/users/me' })).email_verified, true)
      const again = await post(app, '/users/verify-email/confirm', { token })
      assert.equal(again.statusCode, 400)
      assert.deepEqual(json(again), { detail: 'Invalid or expired token' })
      // Only a hash of the token is stored, and the seed it came from is gone once sent.
      const rows = await tokensOf(app, user.id)
      assert.ok(rows.every((row) => row.token_hash !== token && !row.token_hash.includes(token)))
      const [sent] = await outboxRows(app, data.email)
      assert.equal(sent.status, 'sent')
      assert.equal(sent.link_seed, null)
      assert.ok(!sent.params.includes(token))
    })

    it('answers a reset request with the same 202 for an existing and an unknown email, and mails only the existing one', async () => {
      const { app } = suite()
      const user = await signup(app, newUserData('reset'))
      const unknown = `nobody-${Date.now()}@example.test`
      const known = await post(app, '/users/password-reset/request', { email: user.email.toUpperCase() })
      const missing = await post(app, '/users/password-reset/request', { email: unknown })
      for (const response of [known, missing]) {
        assert.equal(response.statusCode, 202)
        assert.deepEqual(json(response), { detail: RESET_ACCEPTED })
        assert.equal(response.headers['content-type'], known.headers['content-type'])
      }
      const message = await mail.waitFor(mailTo(user.email, /Reset your Example Accounts password/))
      assert.ok(linkIn(message).url.startsWith(`${PUBLIC_URL}/account/reset-password#token=`))
      assert.deepEqual(await outboxRows(app, unknown), [])
      // Both requests are audited; the unknown one names no account.
      const events = await app.db.kysely.selectFrom('audit_events').selectAll().where('type', '=', 'password_reset_requested').orderBy('id', 'desc').limit(2).execute()
      assert.deepEqual(events.map((event) => [event.user_id, JSON.parse(event.detail!).result]), [[null, 'no_account'], [user.id, 'sent']])
    })

    it('resets the password with the link: weak password refused with the reason (link still usable), then new hash, sessions revoked, email verified, notice sent', async () => {
      const { app } = suite()
      const user = await createUser(app)
      const refresh = json(await post(app, '/users/login', { email: user.email, password: user.password })).refresh_token
      await post(app, '/users/password-reset/request', { email: user.email })
      const { token } = linkIn(await mail.waitFor(mailTo(user.email, /Reset your/)))

      const weak = await post(app, '/users/password-reset/confirm', { token, new_password: 'password' })
      assert.equal(weak.statusCode, 400)
      assert.match(json(weak).detail, /most commonly used passwords/)
      const short = await post(app, '/users/password-reset/confirm', { token, new_password: 'short' })
      assert.equal(short.statusCode, 400)
      assert.match(json(short).detail, /at least 8 characters/)

      const newPassword = `new-${user.password}`
      const reset = await post(app, '/users/password-reset/confirm', { token, new_password: newPassword })
      assert.equal(reset.statusCode, 200, reset.body)
      assert.deepEqual(json(reset), { message: 'Password has been reset' }, 'no token pair: a reset does not log in')

      assert.equal((await authed(app, user.token, { method: 'GET', url: '/users/me' })).statusCode, 401, 'access tokens of earlier sessions stop at once')
      assert.equal((await post(app, '/users/refresh', { refresh_token: refresh })).statusCode, 401)
      assert.equal((await post(app, '/users/login', { email: user.email, password: user.password })).statusCode, 401, 'the old password no longer works')
      const fresh = await login(app, user.email, newPassword)
      assert.equal(json(await authed(app, fresh, { method: 'GET', url: '/users/me' })).email_verified, true, 'the link proved the address')
      assert.equal((await post(app, '/users/password-reset/confirm', { token, new_password: `x${newPassword}` })).statusCode, 400, 'single use')

      const notice = await mail.waitFor(mailTo(user.email, /password was changed/))
      assert.match(notice.text ?? '', /was changed on \d{4}-\d\d-\d\d \d\d:\d\d \(UTC\)/)
      assert.ok((notice.text ?? '').includes(`${PUBLIC_URL}/account/reset-password`))
      const [event] = await app.db.kysely.selectFrom('audit_events').selectAll().where('type', '=', 'password_reset').where('user_id', '=', user.id).execute()
      assert.equal(JSON.parse(event.detail!).sessions_revoked, 2)
    })

    it('lets exactly one of two concurrent confirms with the same token succeed', async () => {
      const { app } = suite()
      const user = await signup(app, newUserData('race'))
      await post(app, '/users/password-reset/request', { email: user.email })
      const { token } = linkIn(await mail.waitFor(mailTo(user.email, /Reset your/)))
      const results = await Promise.all([
        post(app, '/users/password-reset/confirm', { token, new_password: `first-${user.password}` }),
        post(app, '/users/password-reset/confirm', { token, new_password: `second-${user.password}` })
      ])
      assert.deepEqual(results.map((response) => response.statusCode).sort(), [200, 400])
      const winner = results.findIndex((response) => response.statusCode === 200)
      await login(app, user.email, `${winner === 0 ? 'first' : 'second'}-${user.password}`)
    })

    it('voids an older link when a newer one of the same purpose is sent, and keeps the first when the per-address limit drops a request', async () => {
      const { app } = suite()
      const user = await signup(app, newUserData('supersede'))
      await post(app, '/users/password-reset/request', { email: user.email })
      const first = linkIn(await mail.waitFor(mailTo(user.email, /Reset your/))).token
      // Within a minute: dropped silently, no token made or voided.
      const dropped = await post(app, '/users/password-reset/request', { email: user.email })
      assert.deepEqual([dropped.statusCode, json(dropped)], [202, { detail: RESET_ACCEPTED }])
      assert.equal((await tokensOf(app, user.id)).filter((row) => row.purpose === 'reset_password').length, 1)
      clock.advance(61_000)
      await post(app, '/users/password-reset/request', { email: user.email })
      await drained(app)
      const resets = mail.messages.filter(mailTo(user.email, /Reset your/))
      assert.equal(resets.length, 2)
      const second = linkIn(resets[1]).token
      assert.notEqual(second, first)
      assert.equal((await post(app, '/users/password-reset/confirm', { token: first, new_password: `a-${user.password}` })).statusCode, 400, 'superseded')
      assert.equal((await post(app, '/users/password-reset/confirm', { token: second, new_password: `b-${user.password}` })).statusCode, 200)
    })

    it('sends at most five link emails an hour to one address, whatever their purposes', async () => {
      const { app } = suite()
      const user = await signup(app, newUserData('hourly')) // the verification email is the first
      for (let i = 0; i < 6; i++) {
        clock.advance(61_000)
        const response = await post(app, i % 2 === 0 ? '/users/password-reset/request' : '/users/verify-email/request', { email: user.email })
        assert.equal(response.statusCode, 202)
      }
      assert.equal((await outboxRows(app, user.email)).length, 5)
      clock.advance(3600_000)
      await post(app, '/users/password-reset/request', { email: user.email })
      assert.equal((await outboxRows(app, user.email)).length, 6, 'an hour later there is room again')
    })

    it('voids outstanding reset links when the password is changed another way (PUT)', async () => {
      const { app } = suite()
      const user = await createUser(app)
      clock.advance(61_000)
      await post(app, '/users/password-reset/request', { email: user.email })
      const { token } = linkIn(await mail.waitFor(mailTo(user.email, /Reset your/)))
      const fresh = await login(app, user.email, user.password)
      const changed = await authed(app, fresh, { method: 'PUT', url: `/users/${user.id}`, payload: { password: `changed-${user.password}` } })
      assert.equal(changed.statusCode, 200, changed.body)
      assert.equal((await post(app, '/users/password-reset/confirm', { token, new_password: `other-${user.password}` })).statusCode, 400)
      await mail.waitFor(mailTo(user.email, /password was changed/))
    })

    it('builds links from PUBLIC_URL, never from the request\'s Host header', async () => {
      const { app } = suite()
      const user = await signup(app, newUserData('host'))
      clock.advance(61_000)
      await post(app, '/users/password-reset/request', { email: user.email }, { host: 'evil.example', 'x-forwarded-host': 'evil.example' })
      const message = await mail.waitFor(mailTo(user.email, /Reset your/))
      assert.ok(linkIn(message).url.startsWith(PUBLIC_URL))
      assert.ok(!(message.text ?? '').includes('evil.example'))
    })

    it('sends a signed-in user a verification link on request, and nothing once verified', async () => {
      const { app } = suite()
      const user = await createUser(app)
      clock.advance(61_000)
      const response = await authed(app, user.token, { method: 'POST', url: '/users/me/verify-email' })
      assert.equal(response.statusCode, 202, response.body)
      await drained(app)
      const links = mail.messages.filter(mailTo(user.email, /Confirm your email/))
      assert.equal(links.length, 2)
      assert.equal((await post(app, '/users/verify-email/confirm', { token: linkIn(links[0]).token })).statusCode, 400, 'the newer link superseded the signup one')
      assert.equal((await post(app, '/users/verify-email/confirm', { token: linkIn(links[1]).token })).statusCode, 200)
      clock.advance(61_000)
      assert.equal((await authed(app, user.token, { method: 'POST', url: '/users/me/verify-email' })).statusCode, 202)
      assert.equal((await post(app, '/users/verify-email/request', { email: user.email })).statusCode, 202)
      await drained(app)
      assert.equal(mail.messages.filter(mailTo(user.email, /Confirm your email/)).length, 2, 'a verified address gets no more links')
      assert.equal((await app.inject({ method: 'POST', url: '/users/me/verify-email' })).statusCode, 401)
    })

    it('refuses malformed bodies with a 400 that names the field', async () => {
      const { app } = suite()
      for (const [url, body, field] of [
        ['/users/password-reset/request', {}, 'email'],
        ['/users/password-reset/confirm', { token: 'x' }, 'new_password'],
        ['/users/password-reset/confirm', { token: 5, new_password: 'whatever-it-is' }, 'token'],
        ['/users/verify-email/confirm', { token: 'x'.repeat(500) }, 'token']
      ] as const) {
        const response = await post(app, url, body)
        assert.equal(response.statusCode, 400, `${url} ${response.body}`)
        assert.match(json(response).detail, new RegExp(field))
      }
      const unknown = await post(app, '/users/verify-email/confirm', { token: 'A'.repeat(43) })
      assert.deepEqual([unknown.statusCode, json(unknown)], [400, { detail: 'Invalid or expired token' }])
    })

    it('limits link requests per client address (MAIL_IP_LIMIT) with a 429 and Retry-After', async (t) => {
      const { app } = await buildTestApp(t, { dialect: dialect.name, env: mailEnv(mail, { MAIL_IP_LIMIT: '2/5m' }) })
      const codes = []
      for (const url of ['/users/password-reset/request', '/users/password-reset/request', '/users/password-reset/request']) {
        const response = await post(app, url, { email: 'someone@example.test' })
        codes.push(response.statusCode)
        if (response.statusCode === 429) assert.match(String(response.headers['retry-after']), /^\d+$/)
      }
      assert.deepEqual(codes, [202, 202, 429])
      assert.equal((await post(app, '/users/verify-email/request', { email: 'someone@example.test' })).statusCode, 202, 'each endpoint counts on its own')
    })

    it('refuses an expired link with the same 400', async () => {
      const { app } = suite()
      const user = await signup(app, newUserData('expired'))
      const { token } = linkIn(await mail.waitFor(mailTo(user.email, /Confirm your email/)))
      clock.advance(24 * 3600_000 + 1000)
      const response = await post(app, '/users/verify-email/confirm', { token })
      assert.deepEqual([response.statusCode, json(response)], [400, { detail: 'Invalid or expired token' }])
    })
  })

  describe(`EMAIL_VERIFICATION modes (${dialect.name})`, { skip: dialect.skip }, () => {
    const mailServer = useMailServer()
    let mail: MailServer
    before(() => { mail = mailServer() })
    const modeApp = async (t: Parameters<typeof buildTestApp>[0], mode: string) =>
      (await buildTestApp(t, { dialect: dialect.name as DialectName, env: mailEnv(mail, { EMAIL_VERIFICATION: mode }) })).app

    it('off: signup sends no verification and a PUT changes the email at once (the FastAPI app\'s behaviour)', async (t) => {
      const app = await modeApp(t, 'off')
      const user = await createUser(app)
      const newEmail = `moved-${user.email}`
      const response = await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { email: newEmail } })
      assert.equal(response.statusCode, 200, response.body)
      assert.equal(json(response).email, newEmail)
      assert.equal(json(response).email_verified, false)
      assert.equal(json(response).pending_email, undefined)
      await drained(app)
      const purposes = (await app.db.kysely.selectFrom('email_outbox').select('purpose').execute()).map((row) => row.purpose)
      assert.ok(!purposes.includes('verify_email') && !purposes.includes('change_email'), purposes.join())
      assert.equal((await post(app, '/users/verify-email/request', { email: newEmail })).statusCode, 202)
      assert.equal((await outboxRows(app, newEmail)).length, 0)
    })

    it('optional: a PUT changes the email at once, unverified; the new address gets a link, the old a notice, and old links die', async (t) => {
      const app = await modeApp(t, 'optional')
      const user = await createUser(app)
      const signupLink = linkIn(await mail.waitFor(mailTo(user.email, /Confirm your email/))).token
      const newEmail = `Optional-${user.email}`
      const response = await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { email: newEmail } })
      assert.equal(response.statusCode, 200, response.body)
      assert.deepEqual([json(response).email, json(response).email_verified], [newEmail, false])
      const notice = await mail.waitFor(mailTo(user.email, /email address of your Example Accounts account was changed/))
      assert.ok((notice.text ?? '').includes(`${newEmail[0]}***@example.com`), notice.text)
      assert.ok(!(notice.text ?? '').includes(newEmail), 'the notice masks the new address')
      const link = linkIn(await mail.waitFor(mailTo(newEmail, /Confirm your email/))).token
      assert.equal((await post(app, '/users/verify-email/confirm', { token: signupLink })).statusCode, 400, 'a link sent to the old address no longer works')
      assert.equal((await post(app, '/users/verify-email/confirm', { token: link })).statusCode, 200)
      assert.equal(json(await authed(app, user.token, { method: 'GET', url: '/users/me' })).email_verified, true)
      // Logging in works without verification in this mode.
      await login(app, newEmail, user.password)
    })

    it('required: login needs a verified email (after the password check), and a new email waits for its own confirmation', async (t) => {
      const app = await modeApp(t, 'required')
      const data = newUserData('required')
      const user = await signup(app, data)
      const wrong = await post(app, '/users/login', { email: data.email, password: 'not-the-password' })
      assert.equal(wrong.statusCode, 401, 'a wrong password learns nothing about the account\'s state')
      const refused = await post(app, '/users/login', { email: data.email, password: data.password })
      assert.deepEqual([refused.statusCode, json(refused)], [403, { detail: 'Email not verified' }])
      const { token } = linkIn(await mail.waitFor(mailTo(data.email, /Confirm your email/)))
      assert.equal((await post(app, '/users/verify-email/confirm', { token })).statusCode, 200)
      const access = await login(app, data.email, data.password)

      const newEmail = `req-${data.email}`
      const put = await authed(app, access, { method: 'PUT', url: `/users/${user.id}`, payload: { email: newEmail } })
      assert.equal(put.statusCode, 200, put.body)
      assert.deepEqual([json(put).email, json(put).pending_email, json(put).email_verified], [data.email, newEmail, true])
      assert.equal(json(await authed(app, access, { method: 'GET', url: '/users/me' })).pending_email, newEmail)
      const requested = await mail.waitFor(mailTo(data.email, /change of your Example Accounts email address was requested/))
      assert.ok((requested.text ?? '').includes('r***@example.com'))
      const change = linkIn(await mail.waitFor(mailTo(newEmail, /Confirm your new email address/))).token
      await login(app, data.email, data.password) // still the old address until confirmed

      const confirmed = await post(app, '/users/verify-email/confirm', { token: change })
      assert.equal(confirmed.statusCode, 200, confirmed.body)
      const me = json(await authed(app, access, { method: 'GET', url: '/users/me' }))
      assert.deepEqual([me.email, me.email_verified, me.pending_email], [newEmail, true, undefined])
      await login(app, newEmail, data.password)
      assert.equal((await post(app, '/users/login', { email: data.email, password: data.password })).statusCode, 401)
    })

    it('required: the confirmation fails with 400 when another account took the address in the meantime', async (t) => {
      const app = await modeApp(t, 'required')
      const data = newUserData('taken')
      const user = await signup(app, data)
      await post(app, '/users/verify-email/confirm', { token: linkIn(await mail.waitFor(mailTo(data.email, /Confirm your email/))).token })
      const access = await login(app, data.email, data.password)
      const wanted = `wanted-${data.email}`
      assert.equal((await authed(app, access, { method: 'PUT', url: `/users/${user.id}`, payload: { email: wanted } })).statusCode, 200)
      const change = linkIn(await mail.waitFor(mailTo(wanted, /Confirm your new email address/))).token
      await signup(app, { ...newUserData('thief'), email: wanted })
      const response = await post(app, '/users/verify-email/confirm', { token: change })
      assert.deepEqual([response.statusCode, json(response)], [400, { detail: 'Email already registered' }])
      const row = await app.db.kysely.selectFrom('users').select(['email', 'pending_email']).where('id', '=', user.id).executeTakeFirstOrThrow()
      assert.deepEqual(row, { email: data.email, pending_email: wanted })
    })

    it('required: putting the current address back cancels a pending change and its link', async (t) => {
      const app = await modeApp(t, 'required')
      const data = newUserData('cancel')
      const user = await signup(app, data)
      await post(app, '/users/verify-email/confirm', { token: linkIn(await mail.waitFor(mailTo(data.email, /Confirm your email/))).token })
      const access = await login(app, data.email, data.password)
      const wanted = `cancel-${data.email}`
      await authed(app, access, { method: 'PUT', url: `/users/${user.id}`, payload: { email: wanted } })
      const change = linkIn(await mail.waitFor(mailTo(wanted, /Confirm your new email address/))).token
      const back = await authed(app, access, { method: 'PUT', url: `/users/${user.id}`, payload: { email: data.email.toUpperCase() } })
      assert.equal(back.statusCode, 200)
      assert.equal(json(back).pending_email, undefined)
      assert.equal((await post(app, '/users/verify-email/confirm', { token: change })).statusCode, 400)
    })
  })

  describe(`email delivery (${dialect.name})`, { skip: dialect.skip }, () => {
    it('answers 202 while the SMTP server is down and delivers the email once it is back', async (t) => {
      const mail = await startMailServer(t, { listen: false })
      const { app } = await buildTestApp(t, { dialect: dialect.name, env: mailEnv(mail) })
      const user = await signup(app, newUserData('down'))
      const response = await post(app, '/users/password-reset/request', { email: user.email })
      assert.equal(response.statusCode, 202)
      // Attempts fail while nothing listens; the rows wait with a backoff.
      const deadline = Date.now() + 5000
      let rows = await outboxRows(app, user.email)
      while (!rows.every((row) => row.status === 'pending' && row.last_error !== null && row.lease_until === null)) {
        assert.ok(Date.now() < deadline, `the worker never failed on both: ${JSON.stringify(rows)}`)
        await new Promise((resolve) => setTimeout(resolve, 50))
        rows = await outboxRows(app, user.email)
      }
      assert.equal(rows.length, 2)
      assert.match(rows[0].last_error!, /ECONNREFUSED/)
      await mail.start()
      await mail.waitFor(mailTo(user.email, /Reset your/), 15_000)
      await mail.waitFor(mailTo(user.email, /Confirm your email/), 15_000)
      await drained(app)
      const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
      assert.match(metrics, /email_delivery_failures_total\{purpose="reset_password",final="false"\} [1-9]/)
      assert.match(metrics, /emails_sent_total\{purpose="reset_password"\} 1/)
    })

    it('marks an email dead after MAIL_MAX_ATTEMPTS failures and counts it in the metrics', async (t) => {
      const mail = await startMailServer(t)
      mail.refuse = true
      const { app } = await buildTestApp(t, { dialect: dialect.name, env: mailEnv(mail, { MAIL_MAX_ATTEMPTS: '2', EMAIL_VERIFICATION: 'off' }) })
      const user = await signup(app, newUserData('dead'))
      await post(app, '/users/password-reset/request', { email: user.email })
      const deadline = Date.now() + 15_000
      let row
      do {
        await new Promise((resolve) => setTimeout(resolve, 100))
        row = (await outboxRows(app, user.email))[0]
      } while (row.status !== 'dead' && Date.now() < deadline)
      assert.equal(row.status, 'dead')
      assert.equal(row.attempts, 2)
      assert.match(row.last_error ?? '', /451|Try again later/)
      const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
      assert.match(metrics, /email_outbox_rows\{status="dead"\} 1/)
      assert.match(metrics, /email_delivery_failures_total\{purpose="reset_password",final="true"\} 1/)
    })

    it('writes no token, password or link into any log line while SMTP is configured', async (t) => {
      const mail = await startMailServer(t)
      const logs = captureLogs()
      const { app } = await buildTestApp(t, { dialect: dialect.name, env: mailEnv(mail, { LOG_LEVEL: 'debug' }), overrides: { logger: logs.logger } })
      const data = newUserData('logs')
      const user = await signup(app, data)
      const verify = linkIn(await mail.waitFor(mailTo(data.email, /Confirm your email/))).token
      await post(app, '/users/verify-email/confirm', { token: verify })
      await post(app, '/users/password-reset/request', { email: data.email })
      const reset = linkIn(await mail.waitFor(mailTo(data.email, /Reset your/))).token
      const newPassword = `logged-${data.password}`
      await post(app, '/users/password-reset/confirm', { token: reset, new_password: 'password' })
      await post(app, '/users/password-reset/confirm', { token: reset, new_password: newPassword })
      await mail.waitFor(mailTo(data.email, /password was changed/))
      const text = logs.text()
      assert.ok(logs.lines.some((line) => line.msg === 'email sent'), 'deliveries are logged')
      for (const secret of [verify, reset, data.password, newPassword, '#token=']) {
        assert.ok(!text.includes(secret), `a log line carries ${secret}`)
      }
      assert.ok(user.id > 0)
    })

    it('takes templates from MAIL_TEMPLATES_DIR where it has them', async (t) => {
      const mail = await startMailServer(t)
      const dir = mkdtempSync(join(tmpdir(), 'uma-templates-'))
      t.after(() => rmSync(dir, { recursive: true, force: true }))
      writeFileSync(join(dir, 'reset_password.subject'), '{{app_name}}: new password for {{username}}\n')
      writeFileSync(join(dir, 'reset_password.txt'), 'Go to {{link}} within {{expires_in}} <b>now</b>\n')
      const { app } = await buildTestApp(t, { dialect: dialect.name, env: mailEnv(mail, { MAIL_TEMPLATES_DIR: dir, EMAIL_VERIFICATION: 'off' }) })
      const user = await signup(app, newUserData('tpl'))
      await post(app, '/users/password-reset/request', { email: user.email })
      const message = await mail.waitFor(mailTo(user.email))
      assert.equal(message.subject, `Example Accounts: new password for ${user.username}`)
      assert.match(message.text ?? '', /^Go to https:\/\/accounts\.example\.test\/base\/account\/reset-password#token=\S+ within 1 hour <b>now<\/b>\n?$/)
      assert.match(String(message.html), /Choose a new password/, 'the built-in HTML where the folder has none')
    })

    it('refuses to start with a MAIL_TEMPLATES_DIR that is not a folder or a template that does not parse', async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'uma-templates-'))
      t.after(() => rmSync(dir, { recursive: true, force: true }))
      await assert.rejects(buildTestApp(t, { dialect: 'sqlite', env: { MAIL_TEMPLATES_DIR: join(dir, 'missing') } }), /MAIL_TEMPLATES_DIR names no folder/)
      writeFileSync(join(dir, 'verify_email.txt'), 'Hello {{#username}}\n')
      await assert.rejects(buildTestApp(t, { dialect: 'sqlite', env: { MAIL_TEMPLATES_DIR: dir } }), /verify_email\.txt does not parse/)
    })
  })
}

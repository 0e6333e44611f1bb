import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it, type TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { lockoutKey } from '../src/auth/lockout.js'
import { loadTemplates } from '../src/email/templates.js'
import { hashRecoveryCode, normalizeRecoveryCode } from '../src/mfa/recovery-codes.js'
import { authed, buildTestApp, createClock, createTestDatabase, createUser, DIALECTS, json, login, REDIS_SKIP, TEST_REDIS_URL, type DialectName } from './helpers.js'
import {
  challenge, createMfaUser, decodeClaims, mfaLogin, passwordLogin, readQrSvg, startEnrollment, startOfStep, STEP_MS,
  stepOf, totpAt, totpOfStep
} from './mfa-support.js'

// TOTP, recovery codes and the login's second step over HTTP, on a real database. Codes are
// computed here from the secret the enrollment returned (test/mfa-support.ts: RFC 6238 written
// for the tests), at times the tests set through the app's clock.

// Ten seconds into a step, so "now" is never on a boundary unless a test puts it there.
const START = Date.parse('2026-03-02T09:00:10Z')

async function mfaApp (t: TestContext, dialect: DialectName, env: Record<string, string> = {}) {
  const clock = createClock(START)
  const { app, databaseUrl } = await buildTestApp(t, { dialect, env, overrides: { now: clock.now } })
  return { app, clock, databaseUrl }
}

const db = (app: FastifyInstance) => app.db.kysely
const sessionsOf = (app: FastifyInstance, userId: number) =>
  db(app).selectFrom('sessions').select(['id', 'aal', 'amr', 'revoked_at']).where('user_id', '=', userId).orderBy('created_at').execute()
const outbox = (app: FastifyInstance, userId: number) =>
  db(app).selectFrom('email_outbox').select(['purpose', 'recipient', 'params']).where('user_id', '=', userId).orderBy('id').execute()
const mfaStatus = async (app: FastifyInstance, token: string) => json(await authed(app, token, { method: 'GET', url: '/users/me/mfa' }))
const auditTypes = async (app: FastifyInstance, userId: number) =>
  (await db(app).selectFrom('audit_events').select(['type', 'outcome', 'actor_id']).where('user_id', '=', userId).orderBy('id').execute())

for (const dialect of DIALECTS) {
  describe(`TOTP enrollment (${dialect.name})`, { skip: dialect.skip }, () => {
    it('returns a 20-byte secret, its otpauth URL and a QR code of that URL; nothing is active yet', async (t) => {
      const { app } = await mfaApp(t, dialect.name)
      const user = await createUser(app)
      const { response, secret } = await startEnrollment(app, user.token)
      const body = json(response)
      assert.deepEqual(Object.keys(body).sort(), ['expires_at', 'otpauth_url', 'qr_svg', 'secret'])
      assert.equal(secret.length, 20)
      assert.match(body.secret, /^[A-Z2-7]{32}$/)
      const url = new URL(body.otpauth_url)
      assert.equal(url.protocol, 'otpauth:')
      assert.equal(url.host, 'totp')
      assert.equal(decodeURIComponent(url.pathname), `/User Management API:${user.email}`)
      assert.equal(url.searchParams.get('secret'), body.secret)
      assert.equal(url.searchParams.get('issuer'), 'User Management API')
      assert.match(body.qr_svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
      assert.equal(readQrSvg(body.qr_svg), body.otpauth_url, 'scanning the QR code gives the otpauth URL')
      assert.equal(body.expires_at, new Date(START + 10 * 60_000).toISOString())

      assert.deepEqual(await mfaStatus(app, user.token), { totp: false, recovery_codes_left: 0, passkeys: 0 })
      assert.equal((await passwordLogin(app, user)).statusCode, 200, 'a pending enrollment does not change the login')
    })

    it('keeps the secret encrypted at rest: the raw row holds no form of it', async (t) => {
      const { app } = await mfaApp(t, dialect.name)
      const user = await createUser(app)
      const { response, secret } = await startEnrollment(app, user.token)
      const row = await db(app).selectFrom('mfa_totp').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow()
      const raw = JSON.stringify(row)
      for (const form of [json(response).secret, secret.toString('hex'), secret.toString('base64'), secret.toString('base64url'), secret.toString('latin1')]) {
        assert.ok(!raw.includes(form), 'the stored row does not contain the secret')
      }
      // IV (12) + ciphertext (20) + GCM tag (16).
      assert.equal(Buffer.from(row.secret, 'base64url').length, 48)
      assert.match(row.key_id, /^[A-Za-z0-9_-]{12}$/)
      assert.equal(row.confirmed_at, null)
    })

    it('needs a recent login, as a password change does', async (t) => {
      const { app, clock } = await mfaApp(t, dialect.name)
      const user = await createUser(app)
      const pair = json(await passwordLogin(app, user))
      clock.advance(16 * 60_000)
      // A refreshed access token, but the login itself is older than REAUTH_WINDOW.
      const refreshed = json(await app.inject({ method: 'POST', url: '/users/refresh', payload: { refresh_token: pair.refresh_token } }))
      const stale = await authed(app, refreshed.access_token, { method: 'POST', url: '/users/me/mfa/totp' })
      assert.equal(stale.statusCode, 403, stale.body)
      assert.equal(json(stale).detail, 'Recent login required: log in again to set up two-factor authentication')
      assert.equal(await db(app).selectFrom('mfa_totp').select('user_id').where('user_id', '=', user.id).executeTakeFirst(), undefined)
    })

    it('confirms with a right code: 10 recovery codes once, this session at aal2, the others ended, a notice queued', async (t) => {
      const { app } = await mfaApp(t, dialect.name)
      const user = await createUser(app)
      const otherDevice = await login(app, user.email, user.password)
      const { secret } = await startEnrollment(app, user.token)

      const wrong = await authed(app, user.token, { method: 'POST', url: '/users/me/mfa/totp/confirm', payload: { code: totpOfStep(secret, stepOf(START) + 3) } })
      assert.equal(wrong.statusCode, 400, wrong.body)
      assert.deepEqual(json(wrong), { detail: 'Invalid code' })
      assert.equal((await mfaStatus(app, user.token)).totp, false)

      const confirmed = await authed(app, user.token, { method: 'POST', url: '/users/me/mfa/totp/confirm', payload: { code: totpAt(secret, START) } })
      assert.equal(confirmed.statusCode, 200, confirmed.body)
      const codes: string[] = json(confirmed).recovery_codes
      assert.equal(codes.length, 10)
      assert.equal(new Set(codes).size, 10)
      for (const code of codes) assert.match(code, /^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){3}$/)

      assert.deepEqual(await mfaStatus(app, user.token), { totp: true, recovery_codes_left: 10, passkeys: 0 })
      const sessions = await sessionsOf(app, user.id)
      const current = sessions.find((session) => session.id === decodeClaims(user.token).sid)!
      assert.equal(current.aal, 'aal2')
      assert.deepEqual(JSON.parse(current.amr).map((entry: { method: string }) => entry.method), ['pwd', 'totp'])
      assert.notEqual(sessions.find((session) => session.id === decodeClaims(otherDevice).sid)!.revoked_at, null, 'the other session ended')
      assert.equal((await authed(app, otherDevice, { method: 'GET', url: '/users/me' })).statusCode, 401)
      const user_ = await db(app).selectFrom('users').select('mfa_enabled').where('id', '=', user.id).executeTakeFirstOrThrow()
      assert.equal(user_.mfa_enabled, 1)
      assert.deepEqual((await outbox(app, user.id)).map((row) => row.purpose).filter((purpose) => purpose.startsWith('mfa_')), ['mfa_totp_enabled'])
      const stored = await db(app).selectFrom('mfa_recovery_codes').select('code_hash').where('user_id', '=', user.id).execute()
      assert.equal(stored.length, 10)
      assert.ok(!JSON.stringify(stored).includes(codes[0].replaceAll('-', '')), 'recovery codes are stored hashed')
      assert.ok(stored.some((row) => row.code_hash === hashRecoveryCode(user.id, normalizeRecoveryCode(codes[0])!)))

      const again = await authed(app, user.token, { method: 'POST', url: '/users/me/mfa/totp' })
      assert.equal(again.statusCode, 409, 'no second enrollment while TOTP is on')
    })

    it('refuses to confirm an enrollment older than 10 minutes', async (t) => {
      const { app, clock } = await mfaApp(t, dialect.name)
      const user = await createUser(app)
      const { secret } = await startEnrollment(app, user.token)
      clock.advance(10 * 60_000)
      const late = await authed(app, user.token, { method: 'POST', url: '/users/me/mfa/totp/confirm', payload: { code: totpAt(secret, clock.now()) } })
      assert.equal(late.statusCode, 400, late.body)
      assert.match(json(late).detail, /No TOTP enrollment in progress/)
      assert.equal((await mfaStatus(app, user.token)).totp, false)
    })

    it('does not accept the code that confirmed the enrollment again at login', async (t) => {
      const { app, clock } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      const replay = await mfaLogin(app, { mfa_token: await challenge(app, user), code: totpAt(user.secret, START) })
      assert.equal(replay.statusCode, 401, replay.body)
      assert.equal(json(replay).detail, 'Invalid code')
      clock.advance(STEP_MS)
      assert.equal((await mfaLogin(app, { mfa_token: await challenge(app, user), code: totpAt(user.secret, clock.now()) })).statusCode, 200)
    })
  })

  describe(`login with a second factor (${dialect.name})`, { skip: dialect.skip }, () => {
    it('answers the password step with 403 "MFA required", an mfa_token and the methods, and no session', async (t) => {
      const { app } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      const before = (await sessionsOf(app, user.id)).length
      const response = await passwordLogin(app, user)
      assert.equal(response.statusCode, 403, response.body)
      const body = json(response)
      assert.deepEqual(Object.keys(body), ['detail', 'mfa_token', 'methods'])
      assert.equal(body.detail, 'MFA required')
      assert.match(body.mfa_token, /^[A-Za-z0-9_-]{43}$/)
      assert.deepEqual(body.methods, ['totp', 'recovery_code'])
      assert.equal(body.access_token, undefined)
      assert.equal((await sessionsOf(app, user.id)).length, before, 'no session for the password alone')
      const stored = await db(app).selectFrom('mfa_challenges').select('token_hash').where('user_id', '=', user.id).execute()
      assert.ok(!JSON.stringify(stored).includes(body.mfa_token), 'the mfa_token is stored hashed')
    })

    it('still answers a wrong password with the plain 401, MFA or not', async (t) => {
      const { app } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      const response = await passwordLogin(app, { email: user.email, password: 'not-the-password-1' })
      assert.equal(response.statusCode, 401)
      assert.deepEqual(json(response), { detail: 'Incorrect email or password' })
    })

    it('completes with a code: a token pair at aal2 whose amr names both factors; refresh keeps the level', async (t) => {
      const { app, clock } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      clock.advance(STEP_MS)
      const passwordAt = clock.now()
      const mfaToken = await challenge(app, user)
      clock.advance(5_000)
      const response = await mfaLogin(app, { mfa_token: mfaToken, code: totpAt(user.secret, clock.now()) })
      assert.equal(response.statusCode, 200, response.body)
      const pair = json(response)
      assert.deepEqual(Object.keys(pair).sort(), ['access_token', 'expires_in', 'refresh_token', 'token_type'])
      const claims = decodeClaims(pair.access_token)
      assert.equal(claims.aal, 'aal2')
      assert.deepEqual(claims.amr, [{ method: 'pwd', timestamp: Math.floor(passwordAt / 1000) }, { method: 'totp', timestamp: Math.floor(clock.now() / 1000) }])
      const session = (await sessionsOf(app, user.id)).find((row) => row.id === claims.sid)!
      assert.equal(session.aal, 'aal2')
      assert.equal((await authed(app, pair.access_token, { method: 'GET', url: `/users/${user.id}` })).statusCode, 200)

      const refreshed = await app.inject({ method: 'POST', url: '/users/refresh', payload: { refresh_token: pair.refresh_token } })
      assert.equal(refreshed.statusCode, 200)
      assert.equal(decodeClaims(json(refreshed).access_token).aal, 'aal2')
      assert.deepEqual(decodeClaims(json(refreshed).access_token).amr, claims.amr)

      const reuse = await mfaLogin(app, { mfa_token: mfaToken, code: totpAt(user.secret, clock.now() + STEP_MS) })
      assert.equal(reuse.statusCode, 401, 'the mfa_token works once')
      assert.match(json(reuse).detail, /Invalid or expired mfa_token/)
    })

    it('lets the mfa_token expire after 5 minutes', async (t) => {
      const { app, clock } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      const mfaToken = await challenge(app, user)
      clock.advance(5 * 60_000)
      const late = await mfaLogin(app, { mfa_token: mfaToken, code: totpAt(user.secret, clock.now()) })
      assert.equal(late.statusCode, 401, late.body)
      assert.match(json(late).detail, /Invalid or expired mfa_token/)
    })

    it('accepts a code from one step either side of now, up to the boundary and not a millisecond beyond', async (t) => {
      const { app, clock } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      const attempt = async (code: string) => mfaLogin(app, { mfa_token: await challenge(app, user), code })
      const s = stepOf(START) + 10

      // A phone one step ahead: the code of step s works from the first millisecond of s - 1.
      clock.set(startOfStep(s - 1) - 1)
      assert.equal((await attempt(totpOfStep(user.secret, s))).statusCode, 401, 'two steps ahead: refused')
      clock.set(startOfStep(s - 1))
      assert.equal((await attempt(totpOfStep(user.secret, s))).statusCode, 200, 'one step ahead: accepted')

      // A code typed as the display changed: the code of step s + 3 works until the last millisecond of s + 4.
      clock.set(startOfStep(s + 5))
      assert.equal((await attempt(totpOfStep(user.secret, s + 3))).statusCode, 401, 'two steps old: refused')
      clock.set(startOfStep(s + 5) - 1)
      assert.equal((await attempt(totpOfStep(user.secret, s + 3))).statusCode, 200, 'one step old: accepted')

      // The current step's own code, at its first and last millisecond.
      clock.set(startOfStep(s + 8))
      assert.equal((await attempt(totpOfStep(user.secret, s + 8))).statusCode, 200)
      clock.set(startOfStep(s + 10) - 1)
      assert.equal((await attempt(totpOfStep(user.secret, s + 9))).statusCode, 200)
    })

    it('never accepts a code twice, nor an older one after a newer one, across logins', async (t) => {
      const { app, clock } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      clock.advance(3 * STEP_MS)
      const now = clock.now()
      const current = totpAt(user.secret, now)
      assert.equal((await mfaLogin(app, { mfa_token: await challenge(app, user), code: current })).statusCode, 200)
      const replay = await mfaLogin(app, { mfa_token: await challenge(app, user), code: current })
      assert.equal(replay.statusCode, 401, 'the same code again')
      const previous = await mfaLogin(app, { mfa_token: await challenge(app, user), code: totpAt(user.secret, now - STEP_MS) })
      assert.equal(previous.statusCode, 401, 'the previous step, still inside the skew window, after a newer one was used')
      const row = await db(app).selectFrom('mfa_totp').select('last_step').where('user_id', '=', user.id).executeTakeFirstOrThrow()
      assert.equal(Number(row.last_step), stepOf(now))
      assert.equal((await mfaLogin(app, { mfa_token: await challenge(app, user), code: totpAt(user.secret, now + STEP_MS) })).statusCode, 200, 'the next step still works')
    })

    it('gives one success to concurrent logins with the same code', async (t) => {
      const { app, clock } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      clock.advance(STEP_MS)
      const tokens = [await challenge(app, user), await challenge(app, user), await challenge(app, user), await challenge(app, user)]
      const code = totpAt(user.secret, clock.now())
      const answers = await Promise.all(tokens.map((mfaToken) => mfaLogin(app, { mfa_token: mfaToken, code })))
      assert.deepEqual(answers.map((answer) => answer.statusCode).sort(), [200, 401, 401, 401])
    })

    it('ends a challenge after 5 wrong codes; a new login starts a new one', async (t) => {
      const { app, clock } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      clock.advance(STEP_MS)
      const mfaToken = await challenge(app, user)
      const wrong = totpOfStep(user.secret, stepOf(clock.now()) + 5)
      for (let i = 1; i <= 4; i++) {
        const response = await mfaLogin(app, { mfa_token: mfaToken, code: wrong })
        assert.equal(response.statusCode, 401)
        assert.equal(json(response).detail, 'Invalid code')
        assert.match(String(response.headers['www-authenticate']), /^Bearer/)
      }
      const fifth = await mfaLogin(app, { mfa_token: mfaToken, code: wrong })
      assert.equal(json(fifth).detail, 'Too many wrong codes: log in again')
      const right = await mfaLogin(app, { mfa_token: mfaToken, code: totpAt(user.secret, clock.now()) })
      assert.equal(right.statusCode, 401, 'the ended challenge refuses even the right code')
      assert.match(json(right).detail, /Invalid or expired mfa_token/)
      assert.equal((await mfaLogin(app, { mfa_token: await challenge(app, user), code: totpAt(user.secret, clock.now()) })).statusCode, 200)
    })

    it('locks MFA for the account for 15 minutes after 10 wrong codes in a row, TOTP and recovery codes together', async (t) => {
      const { app, clock } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      clock.advance(STEP_MS)
      const wrongTotp = totpOfStep(user.secret, stepOf(clock.now()) + 7)
      let mfaToken = await challenge(app, user)
      for (let i = 0; i < 10; i++) {
        if (i === 4) mfaToken = await challenge(app, user)
        if (i === 8) mfaToken = await challenge(app, user)
        const payload = i % 2 ? { mfa_token: mfaToken, recovery_code: 'aaaa-bbbb-cccc-dddd' } : { mfa_token: mfaToken, code: wrongTotp }
        assert.equal((await mfaLogin(app, payload)).statusCode, 401, `wrong code ${i + 1}`)
      }
      const locked = await mfaLogin(app, { mfa_token: mfaToken, code: totpAt(user.secret, clock.now()) })
      assert.equal(locked.statusCode, 429, locked.body)
      assert.equal(locked.headers['retry-after'], '900')
      assert.match(json(locked).detail, /Too many wrong codes for this account/)
      // The lock covers the account's other code checks too.
      const removal = await authed(app, user.token, { method: 'DELETE', url: '/users/me/mfa/totp', payload: { code: totpAt(user.secret, clock.now()) } })
      assert.equal(removal.statusCode, 429)
      const events = await auditTypes(app, user.id)
      assert.equal(events.filter((event) => event.type === 'mfa_code' && event.outcome === 'failure').length, 10)
      assert.equal(events.filter((event) => event.type === 'mfa_lockout').length, 1)

      clock.advance(15 * 60_000)
      const after = await mfaLogin(app, { mfa_token: await challenge(app, user), code: totpAt(user.secret, clock.now()) })
      assert.equal(after.statusCode, 200, after.body)
      // The success cleared the count: nine more wrong codes do not lock.
      mfaToken = await challenge(app, user)
      for (let i = 0; i < 9; i++) {
        if (i % 4 === 0) mfaToken = await challenge(app, user)
        assert.equal((await mfaLogin(app, { mfa_token: mfaToken, code: wrongTotp })).statusCode, 401)
      }
      clock.advance(STEP_MS)
      assert.equal((await mfaLogin(app, { mfa_token: await challenge(app, user), code: totpAt(user.secret, clock.now()) })).statusCode, 200)
    })

    it('limits /users/login/mfa per address as logins are', async (t) => {
      const { app } = await mfaApp(t, dialect.name, { LOGIN_IP_LIMIT: '3/5m' })
      const attempts = []
      for (let i = 0; i < 4; i++) attempts.push(await mfaLogin(app, { mfa_token: 'x'.repeat(43), code: '123456' }, '10.9.8.7'))
      assert.deepEqual(attempts.map((attempt) => attempt.statusCode), [401, 401, 401, 429])
      assert.ok(Number(attempts[3].headers['retry-after']) > 0)
    })

    it('answers 400 for a body with both code and recovery_code, neither, or a malformed code', async (t) => {
      const { app } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      const mfaToken = await challenge(app, user)
      for (const [payload, detail] of [
        [{ mfa_token: mfaToken }, /either code or recovery_code/],
        [{ mfa_token: mfaToken, code: '123456', recovery_code: user.recoveryCodes[0] }, /either code or recovery_code/],
        [{ mfa_token: mfaToken, code: '12345' }, /^code: must be the 6 digits/],
        [{ mfa_token: mfaToken, recovery_code: 'short' }, /^recovery_code: must be one of your recovery codes/]
      ] as const) {
        const response = await mfaLogin(app, payload)
        assert.equal(response.statusCode, 400, response.body)
        assert.match(json(response).detail, detail)
      }
      assert.equal((await mfaLogin(app, { mfa_token: mfaToken, code: totpAt(user.secret, app.now() + STEP_MS) })).statusCode, 200, 'format errors did not count against the challenge')
    })
  })

  describe(`recovery codes (${dialect.name})`, { skip: dialect.skip }, () => {
    it('log in once each, typed in any case with spaces, at aal2; a notice says how many are left', async (t) => {
      const { app } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      const typed = ` ${user.recoveryCodes[3].toUpperCase().replaceAll('-', ' ')} `
      const response = await mfaLogin(app, { mfa_token: await challenge(app, user), recovery_code: typed })
      assert.equal(response.statusCode, 200, response.body)
      const claims = decodeClaims(json(response).access_token)
      assert.equal(claims.aal, 'aal2')
      assert.deepEqual(claims.amr.map((entry: { method: string }) => entry.method), ['pwd', 'recovery_code'])
      const again = await mfaLogin(app, { mfa_token: await challenge(app, user), recovery_code: user.recoveryCodes[3] })
      assert.equal(again.statusCode, 401)
      assert.equal(json(again).detail, 'Invalid recovery code')
      assert.equal((await mfaStatus(app, user.token)).recovery_codes_left, 9)
      const notice = (await outbox(app, user.id)).find((row) => row.purpose === 'mfa_recovery_code_used')
      assert.ok(notice)
      assert.equal(JSON.parse(notice.params).codes_left, 9)
    })

    it('gives exactly one success to concurrent uses of one code', async (t) => {
      const { app } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      const tokens = []
      for (let i = 0; i < 5; i++) tokens.push(await challenge(app, user))
      const answers = await Promise.all(tokens.map((mfaToken) => mfaLogin(app, { mfa_token: mfaToken, recovery_code: user.recoveryCodes[0] })))
      assert.deepEqual(answers.map((answer) => answer.statusCode).sort(), [200, 401, 401, 401, 401])
      const used = await db(app).selectFrom('mfa_recovery_codes').select('used_at').where('user_id', '=', user.id).where('used_at', 'is not', null).execute()
      assert.equal(used.length, 1)
    })

    it('are replaced as a set by POST /users/me/mfa/recovery-codes: the old ones stop working', async (t) => {
      const { app } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      const response = await authed(app, user.token, { method: 'POST', url: '/users/me/mfa/recovery-codes' })
      assert.equal(response.statusCode, 200, response.body)
      const fresh: string[] = json(response).recovery_codes
      assert.equal(fresh.length, 10)
      assert.ok(fresh.every((code) => !user.recoveryCodes.includes(code)))
      assert.equal((await mfaLogin(app, { mfa_token: await challenge(app, user), recovery_code: user.recoveryCodes[0] })).statusCode, 401)
      assert.equal((await mfaLogin(app, { mfa_token: await challenge(app, user), recovery_code: fresh[0] })).statusCode, 200)
      assert.ok((await outbox(app, user.id)).some((row) => row.purpose === 'mfa_recovery_codes_regenerated'))
    })

    it('cannot be made for an account without a second factor', async (t) => {
      const { app } = await mfaApp(t, dialect.name)
      const user = await createUser(app)
      const response = await authed(app, user.token, { method: 'POST', url: '/users/me/mfa/recovery-codes' })
      assert.equal(response.statusCode, 409, response.body)
      assert.equal(await db(app).selectFrom('mfa_recovery_codes').select('id').where('user_id', '=', user.id).executeTakeFirst(), undefined)
    })
  })

  describe(`two factors on one account (${dialect.name})`, { skip: dialect.skip }, () => {
    it('lets either the authenticator app or a recovery code complete a login, each recorded in its session', async (t) => {
      const { app, clock } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      clock.advance(STEP_MS)
      const byApp = json(await mfaLogin(app, { mfa_token: await challenge(app, user), code: totpAt(user.secret, clock.now()) }))
      const byCode = json(await mfaLogin(app, { mfa_token: await challenge(app, user), recovery_code: user.recoveryCodes[1] }))
      const methodsOf = async (token: string) => {
        const session = (await sessionsOf(app, user.id)).find((row) => row.id === decodeClaims(token).sid)!
        return { aal: session.aal, methods: JSON.parse(session.amr).map((entry: { method: string }) => entry.method) }
      }
      assert.deepEqual(await methodsOf(byApp.access_token), { aal: 'aal2', methods: ['pwd', 'totp'] })
      assert.deepEqual(await methodsOf(byCode.access_token), { aal: 'aal2', methods: ['pwd', 'recovery_code'] })
      // Using a recovery code leaves the app working, and the reverse.
      clock.advance(STEP_MS)
      assert.equal((await mfaLogin(app, { mfa_token: await challenge(app, user), code: totpAt(user.secret, clock.now()) })).statusCode, 200)
      assert.equal((await mfaLogin(app, { mfa_token: await challenge(app, user), recovery_code: user.recoveryCodes[2] })).statusCode, 200)
      assert.deepEqual(json(await passwordLogin(app, user)).methods, ['totp', 'recovery_code'])
    })

    it('lists only the app once every recovery code is used', async (t) => {
      const { app } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      await db(app).updateTable('mfa_recovery_codes').set({ used_at: new Date(START).toISOString() }).where('user_id', '=', user.id).execute()
      assert.deepEqual(json(await passwordLogin(app, user)).methods, ['totp'])
    })
  })

  describe(`turning TOTP off (${dialect.name})`, { skip: dialect.skip }, () => {
    it('needs a right code: removes secret and codes, lowers every session to aal1, sends a notice', async (t) => {
      const { app, clock } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      clock.advance(STEP_MS)
      const second = json(await mfaLogin(app, { mfa_token: await challenge(app, user), code: totpAt(user.secret, clock.now()) }))
      clock.advance(STEP_MS)

      const wrong = await authed(app, user.token, { method: 'DELETE', url: '/users/me/mfa/totp', payload: { code: totpAt(user.secret, clock.now() + 3 * STEP_MS) } })
      assert.equal(wrong.statusCode, 400)
      assert.equal((await mfaStatus(app, user.token)).totp, true)

      const removed = await authed(app, user.token, { method: 'DELETE', url: '/users/me/mfa/totp', payload: { code: totpAt(user.secret, clock.now()) } })
      assert.equal(removed.statusCode, 204, removed.body)
      assert.deepEqual(await mfaStatus(app, user.token), { totp: false, recovery_codes_left: 0, passkeys: 0 })
      assert.equal(await db(app).selectFrom('mfa_totp').select('user_id').where('user_id', '=', user.id).executeTakeFirst(), undefined)
      const live = (await sessionsOf(app, user.id)).filter((session) => session.revoked_at === null)
      assert.equal(live.length, 2)
      assert.ok(live.every((session) => session.aal === 'aal1'))
      // The other session's next token says so.
      const refreshed = await app.inject({ method: 'POST', url: '/users/refresh', payload: { refresh_token: second.refresh_token } })
      assert.equal(decodeClaims(json(refreshed).access_token).aal, 'aal1')
      assert.ok((await outbox(app, user.id)).some((row) => row.purpose === 'mfa_totp_disabled'))
      assert.equal((await passwordLogin(app, user)).statusCode, 200, 'the password alone logs in again')
    })

    it('accepts a recovery code instead of a TOTP code', async (t) => {
      const { app } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      const removed = await authed(app, user.token, { method: 'DELETE', url: '/users/me/mfa/totp', payload: { code: user.recoveryCodes[9] } })
      assert.equal(removed.statusCode, 204, removed.body)
      assert.equal((await mfaStatus(app, user.token)).totp, false)
    })

    it('refuses a stolen aal1 session even with a right code, and every other action that needs a second factor', async (t) => {
      const { app, clock } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      // A session at aal1 on an account with MFA: e.g. a password login that raced the
      // confirmation of TOTP in another tab (its session began after the others were ended).
      await db(app).updateTable('sessions').set({ aal: 'aal1' }).where('id', '=', decodeClaims(user.token).sid).execute()
      clock.advance(STEP_MS)
      const needsSecond = { detail: 'This action needs a second factor' }
      const removal = await authed(app, user.token, { method: 'DELETE', url: '/users/me/mfa/totp', payload: { code: totpAt(user.secret, clock.now()) } })
      assert.equal(removal.statusCode, 403, removal.body)
      assert.deepEqual(json(removal), needsSecond)
      assert.equal((await mfaStatus(app, user.token)).totp, true, 'TOTP stays on')
      const actions = [
        { method: 'POST', url: '/users/me/mfa/recovery-codes' },
        { method: 'PUT', url: `/users/${user.id}`, payload: { password: 'a-new-Password-123' } },
        { method: 'PUT', url: `/users/${user.id}`, payload: { email: `new-${user.email}` } },
        { method: 'DELETE', url: `/users/${user.id}` }
      ] as const
      for (const action of actions) {
        const response = await authed(app, user.token, action)
        assert.equal(response.statusCode, 403, `${action.method} ${action.url}: ${response.body}`)
        assert.deepEqual(json(response), needsSecond)
      }
      assert.ok(await db(app).selectFrom('users').select('id').where('id', '=', user.id).executeTakeFirst(), 'the account is still there')
      // A username change is not sensitive: allowed.
      assert.equal((await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { username: `renamed${user.id}` } })).statusCode, 200)
    })

    it('lets an aal2 session change the password and delete the account', async (t) => {
      const { app } = await mfaApp(t, dialect.name)
      const user = await createMfaUser(app)
      assert.equal((await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { password: 'a-new-Password-123' } })).statusCode, 200)
      assert.equal((await authed(app, user.token, { method: 'DELETE', url: `/users/${user.id}` })).statusCode, 204)
    })
  })

  describe(`admin reset of a user's second factors (${dialect.name})`, { skip: dialect.skip }, () => {
    it('removes factors and codes, ends every session, audits the admin and emails the user', async (t) => {
      const { app } = await mfaApp(t, dialect.name)
      const admin = await createUser(app, { admin: true })
      const user = await createMfaUser(app)
      const response = await authed(app, admin.token, { method: 'DELETE', url: `/admin/users/${user.id}/mfa` })
      assert.equal(response.statusCode, 204, response.body)
      assert.equal(await db(app).selectFrom('mfa_totp').select('user_id').where('user_id', '=', user.id).executeTakeFirst(), undefined)
      assert.equal(await db(app).selectFrom('mfa_recovery_codes').select('id').where('user_id', '=', user.id).executeTakeFirst(), undefined)
      assert.ok((await sessionsOf(app, user.id)).every((session) => session.revoked_at !== null))
      assert.equal((await authed(app, user.token, { method: 'GET', url: '/users/me' })).statusCode, 401)
      const event = (await auditTypes(app, user.id)).find((row) => row.type === 'mfa_reset')
      assert.equal(event?.actor_id, admin.id)
      assert.ok((await outbox(app, user.id)).some((row) => row.purpose === 'mfa_reset'))
      const relogin = await passwordLogin(app, user)
      assert.equal(relogin.statusCode, 200, 'the password alone logs in')
      assert.equal(decodeClaims(json(relogin).access_token).aal, 'aal1')
    })

    it('is for admins only, and answers 404 for an unknown user', async (t) => {
      const { app } = await mfaApp(t, dialect.name)
      const admin = await createUser(app, { admin: true })
      const user = await createMfaUser(app)
      const other = await createUser(app)
      const refused = await authed(app, other.token, { method: 'DELETE', url: `/admin/users/${user.id}/mfa` })
      assert.equal(refused.statusCode, 403)
      assert.equal((await mfaStatus(app, user.token)).totp, true)
      assert.equal((await authed(app, admin.token, { method: 'DELETE', url: '/admin/users/999999/mfa' })).statusCode, 404)
      assert.equal((await authed(app, admin.token, { method: 'DELETE', url: '/admin/users/1e3/mfa' })).statusCode, 400)
    })
  })

  describe(`accounts without a second factor (${dialect.name})`, { skip: dialect.skip }, () => {
    it('log in exactly as before: 200 with the token pair, aal1, amr pwd', async (t) => {
      const { app } = await mfaApp(t, dialect.name)
      const user = await createUser(app)
      const response = await passwordLogin(app, user)
      assert.equal(response.statusCode, 200)
      assert.deepEqual(Object.keys(json(response)).sort(), ['access_token', 'expires_in', 'refresh_token', 'token_type'])
      const claims = decodeClaims(json(response).access_token)
      assert.equal(claims.aal, 'aal1')
      assert.deepEqual(claims.amr, [{ method: 'pwd', timestamp: Math.floor(START / 1000) }])
      assert.equal((await authed(app, json(response).access_token, { method: 'PUT', url: `/users/${user.id}`, payload: { password: 'a-new-Password-123' } })).statusCode, 200)
    })
  })
}

for (const dialect of DIALECTS) {
  describe(`MFA lockout shared through Redis (${dialect.name})`, { skip: REDIS_SKIP || dialect.skip }, () => {
    it('locks MFA on both instances when the wrong codes are spread across them', async (t) => {
      const clock = createClock(START)
      const database = await createTestDatabase(dialect.name)
      t.after(() => database.drop())
      // Instances sharing a database share the MFA key too (as they share JWT_SECRET).
      const env = { REDIS_URL: TEST_REDIS_URL!, MFA_ENCRYPTION_KEY: randomBytes(32).toString('base64') }
      const options = { dialect: dialect.name, databaseUrl: database.url, env, overrides: { now: clock.now } }
      const { app: a } = await buildTestApp(t, options)
      const { app: b } = await buildTestApp(t, options)
      const user = await createMfaUser(a)
      // The record is keyed on the user id: clear what an earlier run on another database left.
      const redis = new Redis(TEST_REDIS_URL!, { maxRetriesPerRequest: 1 })
      const key = 'uma:mfa-lockout:' + lockoutKey(`mfa:user:${user.id}`)
      await redis.del(key)
      t.after(async () => {
        await redis.del(key)
        await redis.quit()
      })
      clock.advance(STEP_MS)
      const wrong = totpOfStep(user.secret, stepOf(clock.now()) + 9)
      for (let i = 0; i < 10; i++) {
        const app = i % 2 ? a : b
        const response = await mfaLogin(app, { mfa_token: await challenge(app, user), code: wrong })
        assert.equal(response.statusCode, 401, `wrong code ${i + 1}`)
      }
      assert.equal(await redis.hget(key, 'failures'), '10', 'one record for both instances')
      for (const app of [a, b]) {
        const locked = await mfaLogin(app, { mfa_token: await challenge(app, user), code: totpAt(user.secret, clock.now()) })
        assert.equal(locked.statusCode, 429, locked.body)
        assert.equal(locked.headers['retry-after'], '900')
      }
      clock.advance(15 * 60_000)
      assert.equal((await mfaLogin(b, { mfa_token: await challenge(b, user), code: totpAt(user.secret, clock.now()) })).statusCode, 200)
      assert.equal(await redis.exists(key), 0, 'the success cleared the shared record')
    })
  })
}

for (const dialect of DIALECTS) {
  describe(`the per-request session check stays one query (${dialect.name})`, { skip: dialect.skip }, () => {
    it('runs no query but the prepared session check for an authenticated GET, with MFA or without', async (t) => {
      // The outbox worker queries on its own: no polling during the test, and the notice that
      // turning TOTP on queued is sent before counting starts.
      const { app } = await mfaApp(t, dialect.name, { MAIL_POLL_INTERVAL: '1h' })
      const plain = await createUser(app)
      const withMfa = await createMfaUser(app)
      for (let i = 0; i < 200; i++) {
        const pending = await db(app).selectFrom('email_outbox').select('id').where('status', '=', 'pending').execute()
        if (pending.length === 0) break
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
      let queries = 0
      if (app.db.dialect === 'sqlite') {
        // Kysely prepares every statement it runs; the session check was prepared once, at start.
        for (const connection of new Set([app.db.sqlite!, app.db.sqliteReader!])) {
          const prepare = connection.prepare.bind(connection)
          connection.prepare = ((source: string) => { queries++; return prepare(source) }) as typeof connection.prepare
        }
      } else {
        const pool = app.db.pool!
        const query = pool.query.bind(pool)
        const connect = pool.connect.bind(pool)
        // pool.query takes a client itself (synchronously); any other client taken is Kysely's.
        let inPoolQuery = false
        pool.query = ((...args: Parameters<typeof query>) => {
          queries++
          inPoolQuery = true
          try {
            return query(...args)
          } finally {
            inPoolQuery = false
          }
        }) as typeof pool.query
        pool.connect = ((...args: Parameters<typeof connect>) => {
          if (!inPoolQuery) queries += 1000
          return connect(...args)
        }) as typeof pool.connect
      }
      for (const user of [plain, withMfa]) {
        const before = queries
        const response = await authed(app, user.token, { method: 'GET', url: `/users/${user.id}` })
        assert.equal(response.statusCode, 200)
        assert.equal(queries - before, app.db.dialect === 'sqlite' ? 0 : 1, 'one statement: the session check')
      }
    })
  })
}

describe('OpenAPI document', () => {
  it('describes every MFA route with an operationId, a summary, its body and its answers', async (t) => {
    const { app } = await mfaApp(t, 'sqlite')
    const spec = json(await app.inject({ method: 'GET', url: '/openapi.json' }))
    const routes: Array<[string, string, string, string[]]> = [
      ['/users/login/mfa', 'post', 'loginMfa', ['200', '400', '401', '429']],
      ['/users/me/mfa', 'get', 'getMyMfa', ['200', '401']],
      ['/users/me/mfa/totp', 'post', 'startTotpEnrollment', ['200', '401', '403', '409']],
      ['/users/me/mfa/totp/confirm', 'post', 'confirmTotp', ['200', '400', '401', '403', '409', '429']],
      ['/users/me/mfa/totp', 'delete', 'removeTotp', ['204', '400', '401', '403', '404', '429']],
      ['/users/me/mfa/recovery-codes', 'post', 'regenerateRecoveryCodes', ['200', '401', '403', '409']],
      ['/admin/users/{user_id}/mfa', 'delete', 'resetUserMfa', ['204', '400', '401', '403', '404']]
    ]
    for (const [path, method, operationId, statuses] of routes) {
      const operation = spec.paths[path]?.[method]
      assert.ok(operation, `${method} ${path} is documented`)
      assert.equal(operation.operationId, operationId)
      assert.ok(operation.summary.length > 10)
      assert.deepEqual(Object.keys(operation.responses).sort(), statuses)
    }
    const loginForbidden = spec.paths['/users/login'].post.responses['403'].content['application/json'].schema
    // The login's 403 also says when a suspension ends (issue 14).
    assert.deepEqual(Object.keys(loginForbidden.properties).sort(), ['detail', 'methods', 'mfa_token', 'until'])
    assert.ok(spec.paths['/users/login/mfa'].post.requestBody)
  })
})

describe('MFA notice emails', () => {
  it('render every template with its values and no secret', () => {
    const templates = loadTemplates(undefined)
    const view = { app_name: 'Example', username: 'rohit', at: '2026-03-02 09:00', reset_url: 'https://accounts.example.com/account/reset-password', codes_left: 7 }
    for (const purpose of ['mfa_totp_enabled', 'mfa_totp_disabled', 'mfa_reset', 'mfa_recovery_codes_regenerated', 'mfa_recovery_code_used']) {
      assert.ok(templates.purposes.includes(purpose), purpose)
      const email = templates.render(purpose, view)
      assert.match(email.subject, /Example/, purpose)
      for (const part of [email.text, email.html]) {
        assert.match(part, /rohit/, purpose)
        assert.match(part, /2026-03-02 09:00/, purpose)
        // Mustache escapes "/" in HTML as &#x2F;, which mail clients read back as "/".
        assert.match(part.replaceAll('&#x2F;', '/'), /https:\/\/accounts\.example\.com\/account\/reset-password/, purpose)
        assert.doesNotMatch(part, /\{\{/, `${purpose}: every value filled`)
      }
    }
    assert.match(templates.render('mfa_recovery_code_used', view).text, /you have 7 left/)
  })
})

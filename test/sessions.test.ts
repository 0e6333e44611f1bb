import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { hashRefreshToken } from '../src/auth/refresh-tokens.js'
import { authed, buildTestApp, createClock, createUser, DIALECTS, json, signup } from './helpers.js'

// Sessions: refresh-token rotation, reuse detection and its grace window, expiry, logout, the
// session list, and the fresh-login rule for password and email changes. Time moves through an
// injected clock, never through sleeps.

const SECOND = 1000
const MINUTE = 60 * SECOND
const DAY = 24 * 60 * MINUTE

interface TokenPair { access_token: string, token_type: string, expires_in: number, refresh_token: string }

async function loginPair (app: FastifyInstance, email: string, password: string, headers: Record<string, string> = {}, remoteAddress?: string): Promise<TokenPair> {
  const response = await app.inject({ method: 'POST', url: '/users/login', payload: { email, password }, headers, remoteAddress })
  assert.equal(response.statusCode, 200, response.body)
  return json(response)
}

function refresh (app: FastifyInstance, refreshToken: string): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/users/refresh', payload: { refresh_token: refreshToken } })
}

async function refreshPair (app: FastifyInstance, refreshToken: string): Promise<TokenPair> {
  const response = await refresh(app, refreshToken)
  assert.equal(response.statusCode, 200, response.body)
  return json(response)
}

function me (app: FastifyInstance, accessToken: string): Promise<LightMyRequestResponse> {
  return authed(app, accessToken, { method: 'GET', url: '/users/me' })
}

/** The session id (sid claim) an access token names. */
function sessionOf (accessToken: string): string {
  return JSON.parse(Buffer.from(accessToken.split('.')[1], 'base64url').toString()).sid
}

function findSession (app: FastifyInstance, id: string) {
  return app.db.kysely.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
}

function auditRows (app: FastifyInstance, type: string) {
  return app.db.kysely.selectFrom('audit_events').selectAll().where('type', '=', type).orderBy('id').execute()
}

for (const dialect of DIALECTS) {
  describe(`sessions (${dialect.name})`, { skip: dialect.skip }, () => {
    describe('login and rotation', () => {
      it('returns a refresh token with the access token and stores only its hash', async (t) => {
        const { app } = await buildTestApp(t, { dialect: dialect.name })
        const user = await signup(app)
        const pair = await loginPair(app, user.email, user.password)
        assert.equal(pair.token_type, 'bearer')
        assert.equal(pair.expires_in, 900)
        assert.match(pair.refresh_token, /^[A-Za-z0-9_-]{43}$/, '256 random bits, base64url')
        assert.equal((await me(app, pair.access_token)).statusCode, 200)

        const rows = await app.db.kysely.selectFrom('refresh_tokens').selectAll().where('session_id', '=', sessionOf(pair.access_token)).execute()
        assert.equal(rows.length, 1)
        assert.equal(rows[0].token_hash, hashRefreshToken(pair.refresh_token))
        assert.ok(!JSON.stringify(rows).includes(pair.refresh_token), 'the token itself is never stored')
      })

      it('rotates: a new access and refresh token; the old access token lives until it expires; the new refresh token works once', async (t) => {
        const clock = createClock()
        const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
        const user = await signup(app)
        const first = await loginPair(app, user.email, user.password)

        clock.advance(10 * MINUTE)
        const second = await refreshPair(app, first.refresh_token)
        assert.notEqual(second.refresh_token, first.refresh_token)
        assert.notEqual(second.access_token, first.access_token)
        assert.equal(second.token_type, 'bearer')
        assert.equal(second.expires_in, 900)
        assert.equal(sessionOf(second.access_token), sessionOf(first.access_token), 'same session')
        assert.equal((await me(app, first.access_token)).statusCode, 200, 'old access token still valid')
        assert.equal((await me(app, second.access_token)).statusCode, 200)

        // The first access token was issued 10 minutes earlier: it expires first.
        clock.advance(5 * MINUTE + SECOND)
        assert.equal((await me(app, first.access_token)).statusCode, 401)
        assert.equal((await me(app, second.access_token)).statusCode, 200)

        const third = await refreshPair(app, second.refresh_token)
        assert.equal((await me(app, third.access_token)).statusCode, 200)
        const session = await findSession(app, sessionOf(first.access_token))
        assert.equal(session.revoked_at, null)
        assert.equal(session.last_used_at, new Date(clock.now()).toISOString())
        assert.equal((await auditRows(app, 'refresh')).length, 2)
      })

      it('revokes the whole session when a used refresh token comes back after the grace window', async (t) => {
        const clock = createClock()
        const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
        const user = await signup(app)
        const other = await loginPair(app, user.email, user.password)
        const first = await loginPair(app, user.email, user.password)
        const second = await refreshPair(app, first.refresh_token)

        clock.advance(11 * SECOND)
        const reuse = await refresh(app, first.refresh_token)
        assert.equal(reuse.statusCode, 401)
        assert.match(json(reuse).detail, /already used.*Log in again/i)

        assert.equal((await me(app, second.access_token)).statusCode, 401, 'the newest access token of the session is dead')
        assert.equal((await me(app, first.access_token)).statusCode, 401)
        assert.equal((await refresh(app, second.refresh_token)).statusCode, 401, 'the newest refresh token too')
        assert.equal((await me(app, other.access_token)).statusCode, 200, 'other sessions are untouched')

        const sessionId = sessionOf(first.access_token)
        assert.equal((await findSession(app, sessionId)).revoked_at, new Date(clock.now()).toISOString())
        const [event, ...more] = await auditRows(app, 'refresh_reuse_detected')
        assert.equal(more.length, 0)
        assert.equal(event.outcome, 'failure')
        assert.equal(event.user_id, user.id)
        assert.deepEqual(JSON.parse(event.detail!), { session_id: sessionId })
      })

      it('hands a client that retries within the grace window the pair it was already issued, without revoking', async (t) => {
        const clock = createClock()
        const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
        const user = await signup(app)
        const first = await loginPair(app, user.email, user.password)
        const second = await refreshPair(app, first.refresh_token)

        clock.advance(5 * SECOND)
        const again = await refreshPair(app, first.refresh_token)
        assert.equal(again.refresh_token, second.refresh_token)
        assert.equal(again.access_token, second.access_token)
        assert.equal((await me(app, second.access_token)).statusCode, 200)
        assert.equal((await findSession(app, sessionOf(first.access_token))).revoked_at, null)
        assert.equal((await auditRows(app, 'refresh_reuse_detected')).length, 0)
        assert.equal((await auditRows(app, 'refresh')).length, 1, 'the retry is not a second rotation')

        // And the pair handed out twice still rotates normally.
        const third = await refreshPair(app, second.refresh_token)
        assert.equal((await me(app, third.access_token)).statusCode, 200)
      })

      it('gives five concurrent refreshes of one token the same pair and rotates once', async (t) => {
        const clock = createClock()
        const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
        const user = await signup(app)
        const first = await loginPair(app, user.email, user.password)

        const responses = await Promise.all(Array.from({ length: 5 }, () => refresh(app, first.refresh_token)))
        for (const response of responses) assert.equal(response.statusCode, 200, response.body)
        const pairs = responses.map((response) => json(response))
        for (const pair of pairs) {
          assert.equal(pair.refresh_token, pairs[0].refresh_token)
          assert.equal(pair.access_token, pairs[0].access_token)
        }
        const sessionId = sessionOf(first.access_token)
        const tokens = await app.db.kysely.selectFrom('refresh_tokens').selectAll().where('session_id', '=', sessionId).execute()
        assert.equal(tokens.length, 2, 'exactly one new refresh token was issued')
        assert.equal((await auditRows(app, 'refresh')).length, 1)
        assert.equal((await findSession(app, sessionId)).revoked_at, null)
        assert.equal((await refresh(app, pairs[0].refresh_token)).statusCode, 200)
      })

      it('gives concurrent refreshes arriving at different moments the pair the first one was issued', async (t) => {
        // A clock that moves a second on every read: the racing requests see different times.
        let current = Date.parse('2026-01-01T00:00:00Z')
        const now = () => (current += SECOND)
        const { app } = await buildTestApp(t, { dialect: dialect.name, env: { REFRESH_REUSE_GRACE: '1m' }, overrides: { now } })
        const user = await signup(app)
        const first = await loginPair(app, user.email, user.password)

        const responses = await Promise.all(Array.from({ length: 5 }, () => refresh(app, first.refresh_token)))
        for (const response of responses) assert.equal(response.statusCode, 200, response.body)
        const pairs = responses.map((response) => json(response))
        for (const pair of pairs) {
          assert.equal(pair.refresh_token, pairs[0].refresh_token)
          assert.equal(pair.access_token, pairs[0].access_token, 'the access token issued at rotation, not a new one')
        }
      })
    })

    describe('expiry', () => {
      it('refuses a refresh token not used for longer than the sliding 30 days', async (t) => {
        const clock = createClock()
        const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
        const user = await signup(app)
        const first = await loginPair(app, user.email, user.password)
        clock.advance(29 * DAY)
        const second = await refreshPair(app, first.refresh_token)
        clock.advance(31 * DAY)
        const expired = await refresh(app, second.refresh_token)
        assert.equal(expired.statusCode, 401)
        assert.equal(json(expired).detail, 'Invalid or expired refresh token')
        assert.equal((await me(app, second.access_token)).statusCode, 401)
      })

      it('ends a session 90 days after login however often it is refreshed', async (t) => {
        const clock = createClock()
        const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
        const user = await signup(app)
        let pair = await loginPair(app, user.email, user.password)
        for (let day = 20; day <= 80; day += 20) {
          clock.advance(20 * DAY)
          pair = await refreshPair(app, pair.refresh_token)
        }
        clock.advance(9 * DAY) // day 89
        pair = await refreshPair(app, pair.refresh_token)
        const session = await findSession(app, sessionOf(pair.access_token))
        assert.equal(session.expires_at, '2026-04-01T00:00:00.000Z', 'capped at login + 90 days')

        clock.advance(DAY + SECOND) // 90 days and a second after login
        assert.equal((await refresh(app, pair.refresh_token)).statusCode, 401)
        assert.equal((await me(app, pair.access_token)).statusCode, 401)
      })

      it('follows REFRESH_TOKEN_TTL and SESSION_MAX_AGE', async (t) => {
        const clock = createClock()
        const { app } = await buildTestApp(t, { dialect: dialect.name, env: { REFRESH_TOKEN_TTL: '1h', SESSION_MAX_AGE: '2h' }, overrides: { now: clock.now } })
        const user = await signup(app)
        const first = await loginPair(app, user.email, user.password)
        clock.advance(61 * MINUTE)
        assert.equal((await refresh(app, first.refresh_token)).statusCode, 401)

        let pair = await loginPair(app, user.email, user.password)
        for (const step of [40, 40, 39]) {
          clock.advance(step * MINUTE)
          pair = await refreshPair(app, pair.refresh_token)
        }
        clock.advance(2 * MINUTE) // 2 h 1 min after this login
        assert.equal((await refresh(app, pair.refresh_token)).statusCode, 401)
      })

      it('refuses an unknown refresh token and validates the body', async (t) => {
        const { app } = await buildTestApp(t, { dialect: dialect.name })
        const unknown = await refresh(app, 'A'.repeat(43))
        assert.equal(unknown.statusCode, 401)
        assert.equal(json(unknown).detail, 'Invalid or expired refresh token')
        assert.equal((await app.inject({ method: 'POST', url: '/users/refresh', payload: {} })).statusCode, 400)
        assert.equal((await app.inject({ method: 'POST', url: '/users/refresh', payload: { refresh_token: 42 } })).statusCode, 400)
      })
    })

    describe('logout', () => {
      it('ends the current session only: its access and refresh tokens stop working at once', async (t) => {
        const { app } = await buildTestApp(t, { dialect: dialect.name })
        const user = await signup(app)
        const current = await loginPair(app, user.email, user.password)
        const other = await loginPair(app, user.email, user.password)

        const response = await authed(app, current.access_token, { method: 'POST', url: '/users/logout', payload: {} })
        assert.equal(response.statusCode, 204)
        assert.equal(response.body, '')
        assert.equal((await me(app, current.access_token)).statusCode, 401)
        assert.equal((await refresh(app, current.refresh_token)).statusCode, 401)
        assert.equal((await me(app, other.access_token)).statusCode, 200)
        assert.equal((await refresh(app, other.refresh_token)).statusCode, 200)
        assert.notEqual((await findSession(app, sessionOf(current.access_token))).revoked_at, null)
        assert.equal((await findSession(app, sessionOf(other.access_token))).revoked_at, null)
      })

      it('ends every session of the user with {"all": true}, and no one else\'s', async (t) => {
        const { app } = await buildTestApp(t, { dialect: dialect.name })
        const user = await signup(app)
        const pairs = [
          await loginPair(app, user.email, user.password),
          await loginPair(app, user.email, user.password),
          await loginPair(app, user.email, user.password)
        ]
        const stranger = await createUser(app)

        const response = await authed(app, pairs[0].access_token, { method: 'POST', url: '/users/logout', payload: { all: true } })
        assert.equal(response.statusCode, 204)
        for (const pair of pairs) {
          assert.equal((await me(app, pair.access_token)).statusCode, 401)
          assert.equal((await refresh(app, pair.refresh_token)).statusCode, 401)
        }
        assert.equal((await me(app, stranger.token)).statusCode, 200)
        const live = await app.db.kysely.selectFrom('sessions').select('id').where('user_id', '=', user.id).where('revoked_at', 'is', null).execute()
        assert.equal(live.length, 0)
      })

      it('accepts a bare POST with no body', async (t) => {
        const { app } = await buildTestApp(t, { dialect: dialect.name })
        const user = await createUser(app)
        const response = await authed(app, user.token, { method: 'POST', url: '/users/logout' })
        assert.equal(response.statusCode, 204, response.body)
        assert.equal((await me(app, user.token)).statusCode, 401)
      })

      it('requires a valid token and rejects unknown fields', async (t) => {
        const { app } = await buildTestApp(t, { dialect: dialect.name })
        assert.equal((await app.inject({ method: 'POST', url: '/users/logout' })).statusCode, 401)
        const user = await createUser(app)
        const bad = await authed(app, user.token, { method: 'POST', url: '/users/logout', payload: { all: 'yes' } })
        assert.equal(bad.statusCode, 400)
        assert.equal((await me(app, user.token)).statusCode, 200, 'a rejected logout ends nothing')
        assert.equal((await authed(app, user.token, { method: 'POST', url: '/users/logout' })).statusCode, 204)
        assert.equal((await authed(app, user.token, { method: 'POST', url: '/users/logout' })).statusCode, 401, 'a logged-out token cannot log out again')
      })
    })

    describe('me and session list', () => {
      it('GET /users/me returns the caller without secrets', async (t) => {
        const { app } = await buildTestApp(t, { dialect: dialect.name })
        const user = await createUser(app)
        const response = await me(app, user.token)
        assert.equal(response.statusCode, 200)
        const body = json(response)
        assert.deepEqual(Object.keys(body).sort(), ['created_at', 'email', 'email_verified', 'id', 'role', 'updated_at', 'username'])
        assert.equal(body.id, user.id)
        assert.equal(body.email, user.email)
        assert.equal(body.username, user.username)
        assert.equal(body.role, 'user')
        assert.equal((await app.inject({ method: 'GET', url: '/users/me' })).statusCode, 401)
      })

      it('lists live sessions with the current flag, user agent and IP, and leaves out ended ones', async (t) => {
        const clock = createClock()
        const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
        const user = await signup(app)
        const stranger = await createUser(app)
        const laptop = await loginPair(app, user.email, user.password, { 'user-agent': 'Laptop/1.0' }, '192.0.2.10')
        clock.advance(MINUTE)
        const phone = await loginPair(app, user.email, user.password, { 'user-agent': 'Phone/2.0' }, '198.51.100.7')
        clock.advance(MINUTE)
        const ended = await loginPair(app, user.email, user.password, { 'user-agent': 'Old/0.1' }, '203.0.113.1')
        assert.equal((await authed(app, ended.access_token, { method: 'POST', url: '/users/logout' })).statusCode, 204)

        const response = await me(app, laptop.access_token).then(() => authed(app, laptop.access_token, { method: 'GET', url: '/users/me/sessions' }))
        assert.equal(response.statusCode, 200)
        const sessions = json(response)
        assert.equal(sessions.length, 2, 'the ended session and other users\' sessions are not listed')
        const [newest, oldest] = sessions
        assert.equal(newest.id, sessionOf(phone.access_token))
        assert.equal(newest.current, false)
        assert.equal(newest.user_agent, 'Phone/2.0')
        assert.equal(newest.ip, '198.51.100.7')
        assert.equal(oldest.id, sessionOf(laptop.access_token))
        assert.equal(oldest.current, true)
        assert.equal(oldest.user_agent, 'Laptop/1.0')
        assert.equal(oldest.ip, '192.0.2.10')
        assert.equal(oldest.created_at, '2026-01-01T00:00:00.000Z')
        assert.equal(oldest.authenticated_at, '2026-01-01T00:00:00.000Z')
        for (const session of sessions) {
          assert.deepEqual(Object.keys(session).sort(), ['authenticated_at', 'created_at', 'current', 'expires_at', 'id', 'ip', 'last_used_at', 'user_agent'])
        }
        assert.ok(!sessions.some((session: { id: string }) => session.id === sessionOf(stranger.token)))

        // A refresh moves last_used_at; the phone's list now marks the phone as current.
        clock.advance(MINUTE)
        const phone2 = await refreshPair(app, phone.refresh_token)
        const fromPhone = json(await authed(app, phone2.access_token, { method: 'GET', url: '/users/me/sessions' }))
        const phoneRow = fromPhone.find((session: { id: string }) => session.id === sessionOf(phone.access_token))
        assert.equal(phoneRow.current, true)
        assert.equal(phoneRow.last_used_at, new Date(clock.now()).toISOString())
        assert.equal(phoneRow.authenticated_at, '2026-01-01T00:01:00.000Z', 'a refresh is not a password check')
      })

      it('DELETE /users/me/sessions/:id ends one session; 404 for another user\'s or an unknown one', async (t) => {
        const { app } = await buildTestApp(t, { dialect: dialect.name })
        const user = await signup(app)
        const current = await loginPair(app, user.email, user.password)
        const other = await loginPair(app, user.email, user.password)
        const stranger = await createUser(app)
        const otherId = sessionOf(other.access_token)

        const revoke = (token: string, id: string) => authed(app, token, { method: 'DELETE', url: `/users/me/sessions/${id}` })
        const response = await revoke(current.access_token, otherId)
        assert.equal(response.statusCode, 204)
        assert.equal((await me(app, other.access_token)).statusCode, 401)
        assert.equal((await refresh(app, other.refresh_token)).statusCode, 401)
        assert.equal((await me(app, current.access_token)).statusCode, 200)
        assert.notEqual((await findSession(app, otherId)).revoked_at, null)

        const again = await revoke(current.access_token, otherId)
        assert.equal(again.statusCode, 404, 'already ended')
        assert.equal(json(again).detail, 'Session not found')

        const strangerSession = sessionOf(stranger.token)
        assert.equal((await revoke(current.access_token, strangerSession)).statusCode, 404)
        assert.equal((await me(app, stranger.token)).statusCode, 200, 'another user\'s session is untouched')
        assert.equal((await findSession(app, strangerSession)).revoked_at, null)

        assert.equal((await revoke(current.access_token, 'no-such-session')).statusCode, 404)
        assert.equal((await app.inject({ method: 'DELETE', url: `/users/me/sessions/${sessionOf(current.access_token)}` })).statusCode, 401)

        // Ending one's own current session works too.
        assert.equal((await revoke(current.access_token, sessionOf(current.access_token))).statusCode, 204)
        assert.equal((await me(app, current.access_token)).statusCode, 401)
      })
    })

    describe('fresh-login rule', () => {
      it('refuses a password or email change 16 minutes after login, allows a username change', async (t) => {
        const clock = createClock()
        // Long-lived access tokens here, so only the fresh-login rule can refuse.
        const { app } = await buildTestApp(t, { dialect: dialect.name, env: { ACCESS_TOKEN_TTL: '1h' }, overrides: { now: clock.now } })
        const user = await signup(app)
        const pair = await loginPair(app, user.email, user.password)
        clock.advance(16 * MINUTE)

        const put = (token: string, payload: object) => authed(app, token, { method: 'PUT', url: `/users/${user.id}`, payload })
        for (const payload of [{ password: 'a-new-Password-42' }, { email: `new-${user.email}` }, { username: `n${user.username}`, password: 'a-new-Password-42' }]) {
          const refused = await put(pair.access_token, payload)
          assert.equal(refused.statusCode, 403, JSON.stringify(payload))
          assert.match(json(refused).detail, /log in again/i)
        }
        const stored = await app.db.kysely.selectFrom('users').selectAll().where('id', '=', user.id).executeTakeFirstOrThrow()
        assert.equal(stored.email, user.email, 'nothing changed')
        assert.equal(stored.username, user.username)

        const renamed = await put(pair.access_token, { username: `r${user.username}` })
        assert.equal(renamed.statusCode, 200, renamed.body)
        assert.equal(json(renamed).username, `r${user.username}`)

        // Logging in again makes the change possible.
        const fresh = await loginPair(app, user.email, user.password)
        const changed = await put(fresh.access_token, { password: 'a-new-Password-42' })
        assert.equal(changed.statusCode, 200, changed.body)
        const emailChanged = await put(fresh.access_token, { email: `new-${user.email}` })
        assert.equal(emailChanged.statusCode, 200, emailChanged.body)
        assert.equal(json(emailChanged).email, `new-${user.email}`)
      })

      it('is not renewed by refreshing', async (t) => {
        const clock = createClock()
        const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
        const user = await signup(app)
        const first = await loginPair(app, user.email, user.password)
        clock.advance(14 * MINUTE)
        const refreshed = await refreshPair(app, first.refresh_token)
        clock.advance(2 * MINUTE)
        const refused = await authed(app, refreshed.access_token, { method: 'PUT', url: `/users/${user.id}`, payload: { password: 'a-new-Password-42' } })
        assert.equal(refused.statusCode, 403)
        assert.match(json(refused).detail, /log in again/i)

        const fresh = await loginPair(app, user.email, user.password)
        const changed = await authed(app, fresh.access_token, { method: 'PUT', url: `/users/${user.id}`, payload: { password: 'a-new-Password-42' } })
        assert.equal(changed.statusCode, 200, changed.body)
      })

      it('follows REAUTH_WINDOW', async (t) => {
        const clock = createClock()
        const { app } = await buildTestApp(t, { dialect: dialect.name, env: { REAUTH_WINDOW: '1m' }, overrides: { now: clock.now } })
        const user = await signup(app)
        const pair = await loginPair(app, user.email, user.password)
        clock.advance(MINUTE)
        const put = () => authed(app, pair.access_token, { method: 'PUT', url: `/users/${user.id}`, payload: { email: `x${user.email}` } })
        assert.equal((await put()).statusCode, 200, 'at the edge of the window')
        clock.advance(SECOND)
        assert.equal((await put()).statusCode, 403)
      })

      it('keeps the seed\'s flow: log in, then change the password; the new password logs in', async (t) => {
        const { app } = await buildTestApp(t, { dialect: dialect.name })
        const user = await signup(app)
        const other = await loginPair(app, user.email, user.password)
        const token = (await loginPair(app, user.email, user.password)).access_token
        const response = await authed(app, token, { method: 'PUT', url: `/users/${user.id}`, payload: { password: 'brand-New-secret-77' } })
        assert.equal(response.statusCode, 200, response.body)
        assert.equal((await me(app, token)).statusCode, 200, 'the changing session stays')
        assert.equal((await me(app, other.access_token)).statusCode, 401, 'other sessions end with a password change')
        assert.equal((await refresh(app, other.refresh_token)).statusCode, 401)
        const old = await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } })
        assert.equal(old.statusCode, 401)
        await loginPair(app, user.email, 'brand-New-secret-77')
      })
    })
  })
}

describe('expires_in', () => {
  it('is the full ACCESS_TOKEN_TTL for a fresh pair, even when the clock passes a second during the request', async (t) => {
    // Each reading of this clock is one second after the previous one, as if every step of the
    // request (lockout check, database commit, ...) ended in the next second.
    let current = Date.parse('2026-01-01T00:00:00.500Z')
    const now = () => (current += SECOND)
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { ACCESS_TOKEN_TTL: '2m' }, overrides: { now } })
    const user = await signup(app)
    const pair = await loginPair(app, user.email, user.password)
    assert.equal(pair.expires_in, 120)
    const rotated = await refreshPair(app, pair.refresh_token)
    assert.equal(rotated.expires_in, 120)
  })
})

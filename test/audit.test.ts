import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { hashRefreshToken } from '../src/auth/refresh-tokens.js'
import { authed, buildTestApp, createClock, createUser, DIALECTS, json, newUserData, signup } from './helpers.js'

// The audit log: one row per security event, with who (user, actor), where (IP, user agent) and
// which request; never a secret. And GET /admin/audit-events: admins only, newest first,
// filters, and a cursor that stays put while new events arrive.

const SECOND = 1000
const HOUR = 3600 * SECOND
const IP = '192.0.2.50'
const UA = 'AuditTest/1.0 (+https://example.com)'

function allEvents (app: FastifyInstance) {
  return app.db.kysely.selectFrom('audit_events').selectAll().orderBy('id').execute()
}

for (const dialect of DIALECTS) {
  describe(`audit log (${dialect.name})`, { skip: dialect.skip }, () => {
    it('writes one row per security event with type, outcome, user, actor, IP, user agent and request id, and no secret', async (t) => {
      const clock = createClock()
      const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
      const secrets: string[] = []
      let step = 0
      /** Sends a request with a known request id; returns the response and the audit rows it wrote. */
      const send = async (options: InjectOptions, token?: string): Promise<{ response: LightMyRequestResponse, rows: Awaited<ReturnType<typeof allEvents>> }> => {
        const requestId = `audit-step-${++step}`
        const headers = { ...options.headers, 'user-agent': UA, 'x-request-id': requestId, ...(token ? { authorization: `Bearer ${token}` } : {}) }
        const response = await app.inject({ ...options, headers, remoteAddress: IP })
        assert.equal(response.headers['x-request-id'], requestId)
        const rows = await app.db.kysely.selectFrom('audit_events').selectAll().where('request_id', '=', requestId).orderBy('id').execute()
        for (const row of rows) {
          assert.equal(row.ip, IP)
          assert.equal(row.user_agent, UA)
          assert.match(row.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'UTC')
        }
        return { response, rows }
      }
      const pick = (rows: Awaited<ReturnType<typeof allEvents>>) => rows.map(({ type, outcome, user_id: userId, actor_id: actorId }) => ({ type, outcome, userId, actorId }))
      const loginAs = async (email: string, password: string) => {
        const { response, rows } = await send({ method: 'POST', url: '/users/login', payload: { email, password } })
        assert.equal(response.statusCode, 200, response.body)
        secrets.push(json(response).access_token, json(response).refresh_token)
        return { pair: json(response), rows }
      }

      // signup
      const data = newUserData('audited')
      secrets.push(data.password)
      const signedUp = await send({ method: 'POST', url: '/users/signup', payload: data })
      assert.equal(signedUp.response.statusCode, 201)
      const userId: number = json(signedUp.response).user_id
      assert.deepEqual(pick(signedUp.rows), [{ type: 'signup', outcome: 'success', userId, actorId: userId }])

      // login success
      const first = await loginAs(data.email, data.password)
      assert.deepEqual(pick(first.rows), [{ type: 'login', outcome: 'success', userId, actorId: userId }])
      const sessionId = JSON.parse(first.rows[0].detail!).session_id
      assert.equal(typeof sessionId, 'string')

      // login failure: for an existing account (user id known) and an unknown email
      const wrong = 'wrong-Password-123'
      secrets.push(wrong)
      const failed = await send({ method: 'POST', url: '/users/login', payload: { email: data.email, password: wrong } })
      assert.equal(failed.response.statusCode, 401)
      assert.deepEqual(pick(failed.rows), [{ type: 'login', outcome: 'failure', userId, actorId: null }])
      const unknown = await send({ method: 'POST', url: '/users/login', payload: { email: 'ghost@example.com', password: wrong } })
      assert.deepEqual(pick(unknown.rows), [{ type: 'login', outcome: 'failure', userId: null, actorId: null }])

      // lockout: the failure that starts it writes both rows
      const victim = await signup(app)
      for (let i = 0; i < 4; i++) await send({ method: 'POST', url: '/users/login', payload: { email: victim.email, password: wrong } })
      const locking = await send({ method: 'POST', url: '/users/login', payload: { email: victim.email, password: wrong } })
      assert.equal(locking.response.statusCode, 401)
      assert.deepEqual(pick(locking.rows), [
        { type: 'login', outcome: 'failure', userId: victim.id, actorId: null },
        { type: 'lockout', outcome: 'success', userId: victim.id, actorId: null }
      ])
      assert.deepEqual(JSON.parse(locking.rows[1].detail!), { until: new Date(clock.now() + 60 * SECOND).toISOString() })

      // refresh
      const refreshed = await send({ method: 'POST', url: '/users/refresh', payload: { refresh_token: first.pair.refresh_token } })
      assert.equal(refreshed.response.statusCode, 200)
      secrets.push(json(refreshed.response).access_token, json(refreshed.response).refresh_token)
      assert.deepEqual(pick(refreshed.rows), [{ type: 'refresh', outcome: 'success', userId, actorId: userId }])
      assert.deepEqual(JSON.parse(refreshed.rows[0].detail!), { session_id: sessionId })

      // refresh reuse after the grace window
      clock.advance(11 * SECOND)
      const reused = await send({ method: 'POST', url: '/users/refresh', payload: { refresh_token: first.pair.refresh_token } })
      assert.equal(reused.response.statusCode, 401)
      assert.deepEqual(pick(reused.rows), [{ type: 'refresh_reuse_detected', outcome: 'failure', userId, actorId: null }])
      assert.deepEqual(JSON.parse(reused.rows[0].detail!), { session_id: sessionId })

      // logout (this session) and logout all
      const second = await loginAs(data.email, data.password)
      const loggedOut = await send({ method: 'POST', url: '/users/logout' }, second.pair.access_token)
      assert.equal(loggedOut.response.statusCode, 204)
      assert.deepEqual(pick(loggedOut.rows), [{ type: 'logout', outcome: 'success', userId, actorId: userId }])
      assert.deepEqual(JSON.parse(loggedOut.rows[0].detail!), { all: false })
      const third = await loginAs(data.email, data.password)
      const allOut = await send({ method: 'POST', url: '/users/logout', payload: { all: true } }, third.pair.access_token)
      assert.deepEqual(JSON.parse(allOut.rows[0].detail!), { all: true })

      // session revoked through DELETE /users/me/sessions/:id
      const keep = await loginAs(data.email, data.password)
      const drop = await loginAs(data.email, data.password)
      const dropId = JSON.parse(drop.rows[0].detail!).session_id
      const revoked = await send({ method: 'DELETE', url: `/users/me/sessions/${dropId}` }, keep.pair.access_token)
      assert.equal(revoked.response.statusCode, 204)
      assert.deepEqual(pick(revoked.rows), [{ type: 'session_revoked', outcome: 'success', userId, actorId: userId }])
      assert.deepEqual(JSON.parse(revoked.rows[0].detail!), { session_id: dropId })

      // password change (ends the other sessions) and email change
      const other = await loginAs(data.email, data.password)
      const newPassword = 'a-Brand-new-passphrase-7'
      secrets.push(newPassword)
      const changed = await send({ method: 'PUT', url: `/users/${userId}`, payload: { password: newPassword } }, keep.pair.access_token)
      assert.equal(changed.response.statusCode, 200, changed.response.body)
      assert.deepEqual(pick(changed.rows), [{ type: 'password_change', outcome: 'success', userId, actorId: userId }])
      assert.deepEqual(JSON.parse(changed.rows[0].detail!), { sessions_revoked: 1 })
      assert.equal((await authed(app, other.pair.access_token, { method: 'GET', url: '/users/me' })).statusCode, 401)
      const emailChanged = await send({ method: 'PUT', url: `/users/${userId}`, payload: { email: `new-${data.email}` } }, keep.pair.access_token)
      assert.equal(emailChanged.response.statusCode, 200, emailChanged.response.body)
      assert.deepEqual(pick(emailChanged.rows), [{ type: 'email_change', outcome: 'success', userId, actorId: userId }])
      const renamed = await send({ method: 'PUT', url: `/users/${userId}`, payload: { username: `renamed${userId}` } }, keep.pair.access_token)
      assert.equal(renamed.response.statusCode, 200)
      assert.deepEqual(renamed.rows, [], 'a username change is not a security event')

      // user deleted, by an admin: the actor differs from the user
      const admin = await createUser(app, { admin: true })
      secrets.push(admin.token, admin.password)
      const hashes = await app.db.kysely.selectFrom('users').select('hashed_password').execute()
      const tokenHashes = await app.db.kysely.selectFrom('refresh_tokens').select('token_hash').execute()
      const deleted = await send({ method: 'DELETE', url: `/users/${userId}` }, admin.token)
      assert.equal(deleted.response.statusCode, 204)
      assert.deepEqual(pick(deleted.rows), [{ type: 'user_deleted', outcome: 'success', userId, actorId: admin.id }])

      // Events outlive the account they name.
      const events = await allEvents(app)
      assert.ok(events.filter((event) => event.user_id === userId).length >= 15)
      const types = new Set(events.map((event) => event.type))
      for (const type of ['signup', 'login', 'lockout', 'refresh', 'refresh_reuse_detected', 'logout', 'session_revoked', 'password_change', 'email_change', 'user_deleted']) {
        assert.ok(types.has(type), type)
      }

      // No password, access token, refresh token or hash anywhere in any row.
      const dump = JSON.stringify(events)
      for (const secret of secrets) assert.ok(!dump.includes(secret), `a secret leaked into the audit log: ${secret.slice(0, 12)}...`)
      for (const { hashed_password: hash } of hashes) assert.ok(!dump.includes(hash.split('$').pop()!), 'a password hash leaked')
      for (const { token_hash: hash } of tokenHashes) assert.ok(!dump.includes(hash), 'a refresh token hash leaked')
      for (const token of secrets) assert.ok(!dump.includes(hashRefreshToken(token)))
    })

    it('lets only admins read the events: 401 without a token, 403 for a user', async (t) => {
      const { app } = await buildTestApp(t, { dialect: dialect.name })
      const user = await createUser(app)
      const admin = await createUser(app, { admin: true })
      const anonymous = await app.inject({ method: 'GET', url: '/admin/audit-events' })
      assert.equal(anonymous.statusCode, 401)
      const forbidden = await authed(app, user.token, { method: 'GET', url: '/admin/audit-events' })
      assert.equal(forbidden.statusCode, 403)
      assert.equal(json(forbidden).detail, 'Not enough permissions')
      assert.equal((await authed(app, user.token, { method: 'GET', url: `/admin/audit-events?user_id=${user.id}` })).statusCode, 403, 'not even their own')
      const allowed = await authed(app, admin.token, { method: 'GET', url: '/admin/audit-events' })
      assert.equal(allowed.statusCode, 200)
      assert.ok(json(allowed).events.length >= 4)
    })

    it('lists newest first and filters by user_id, type and since/until', async (t) => {
      const clock = createClock()
      // Access tokens that outlive the two hours the clock moves.
      const { app } = await buildTestApp(t, { dialect: dialect.name, env: { ACCESS_TOKEN_TTL: '1d' }, overrides: { now: clock.now } })
      const start = clock.now()
      const admin = await createUser(app, { admin: true })
      const alice = await createUser(app)
      clock.advance(HOUR)
      const bob = await createUser(app)
      clock.advance(HOUR)
      await app.inject({ method: 'POST', url: '/users/login', payload: { email: alice.email, password: 'not-her-password' } })

      const list = async (query: string) => {
        const response = await authed(app, admin.token, { method: 'GET', url: `/admin/audit-events?${query}` })
        assert.equal(response.statusCode, 200, response.body)
        return json(response).events as Array<{ id: number, type: string, outcome: string, user_id: number | null, created_at: string, detail: unknown }>
      }
      const everything = await list('limit=200')
      const ids = everything.map((event) => event.id)
      assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest first')
      assert.equal(everything.length, (await allEvents(app)).length)
      assert.equal(everything[0].type, 'login')
      assert.equal(everything[0].outcome, 'failure')
      assert.equal(typeof (everything.find((event) => event.type === 'login' && event.outcome === 'success')!.detail as { session_id: string }).session_id, 'string', 'detail comes back as an object')

      const alices = await list(`user_id=${alice.id}`)
      assert.deepEqual(alices.map((event) => [event.type, event.outcome]), [['login', 'failure'], ['login', 'success'], ['signup', 'success']])
      assert.ok(alices.every((event) => event.user_id === alice.id))

      const signups = await list('type=signup')
      assert.deepEqual(signups.map((event) => event.user_id), [bob.id, alice.id, admin.id])
      assert.deepEqual((await list(`type=signup&user_id=${bob.id}`)).map((event) => event.user_id), [bob.id])
      assert.deepEqual(await list('type=no_such_type'), [])

      const iso = (ms: number) => new Date(ms).toISOString()
      const window = await list(`since=${iso(start + HOUR)}&until=${iso(start + 2 * HOUR)}`)
      assert.deepEqual(window.map((event) => [event.type, event.user_id]), [['login', bob.id], ['signup', bob.id]], 'since is inclusive, until exclusive')
      assert.equal((await list(`since=${iso(start + 2 * HOUR)}`)).length, 1)
      assert.equal((await list(`until=${iso(start)}`)).length, 0)
      // Any offset is accepted and compared as the instant it names.
      assert.equal((await list(`since=${encodeURIComponent('2026-01-01T02:00:00+01:00')}&until=${encodeURIComponent('2026-01-01T03:00:00+01:00')}`)).length, 2)

      for (const bad of ['since=yesterday', 'until=2026-13-01T00:00:00Z', 'user_id=abc', 'limit=0', 'limit=201']) {
        const response = await authed(app, admin.token, { method: 'GET', url: `/admin/audit-events?${bad}` })
        assert.equal(response.statusCode, 400, bad)
      }
    })

    it('pages with a cursor that continues exactly where the last page ended while new events arrive', async (t) => {
      const { app } = await buildTestApp(t, { dialect: dialect.name })
      const admin = await createUser(app, { admin: true })
      const user = await createUser(app)
      for (let i = 0; i < 3; i++) await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: `wrong-${i}` } })
      const before = (await allEvents(app)).map((event) => event.id).reverse()
      assert.equal(before.length, 7)

      const page = async (query: string) => {
        const response = await authed(app, admin.token, { method: 'GET', url: `/admin/audit-events?${query}` })
        assert.equal(response.statusCode, 200, response.body)
        return json(response) as { events: Array<{ id: number }>, next_cursor: string | null }
      }
      const first = await page('limit=2')
      assert.deepEqual(first.events.map((event) => event.id), before.slice(0, 2))
      assert.equal(typeof first.next_cursor, 'string')

      // New events arrive between pages (these logins also write rows).
      await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } })
      await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: 'wrong-again' } })

      const seen = [...first.events.map((event) => event.id)]
      let cursor = first.next_cursor
      let pages = 1
      while (cursor !== null) {
        const next = await page(`limit=2&cursor=${encodeURIComponent(cursor)}`)
        seen.push(...next.events.map((event) => event.id))
        cursor = next.next_cursor
        assert.ok(++pages <= 10, 'pagination ends')
      }
      assert.deepEqual(seen, before, 'every event older than page 1, once each, in order: no duplicates, no gaps')

      // Filters and the cursor combine.
      const failures = await page(`type=login&user_id=${user.id}&limit=2`)
      const rest = await page(`type=login&user_id=${user.id}&limit=2&cursor=${failures.next_cursor}`)
      const loginIds = (await allEvents(app)).filter((event) => event.type === 'login' && event.user_id === user.id).map((event) => event.id).reverse()
      assert.deepEqual([...failures.events, ...rest.events].map((event) => event.id), loginIds.slice(0, 4))
    })

    it('refuses a cursor it did not issue with 400', async (t) => {
      const { app } = await buildTestApp(t, { dialect: dialect.name })
      const admin = await createUser(app, { admin: true })
      for (const cursor of ['abc', 'c', 'c-1', '12', 'c1.5', 'c1234567890123456', `c${'9'.repeat(64)}`, '']) {
        const response = await authed(app, admin.token, { method: 'GET', url: `/admin/audit-events?cursor=${encodeURIComponent(cursor)}` })
        assert.equal(response.statusCode, 400, `cursor "${cursor}": ${response.body}`)
        assert.match(json(response).detail, /cursor/)
      }
    })

    it('refuses an unknown (e.g. misspelt) filter with 400 instead of ignoring it', async (t) => {
      const { app } = await buildTestApp(t, { dialect: dialect.name })
      const admin = await createUser(app, { admin: true })
      const response = await authed(app, admin.token, { method: 'GET', url: `/admin/audit-events?userid=${admin.id}` })
      assert.equal(response.statusCode, 400, response.body)
      assert.match(json(response).detail, /userid/)
    })
  })
}

import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { FastifyInstance, InjectOptions } from 'fastify'
import { listUsers } from './admin-helpers.js'
import { authed, captureLogs, createClock, createUser, DIALECTS, json, login, newUserData, useSuiteApp } from './helpers.js'
import { linkIn, mailTo, useMailServer, type MailServer } from './mail.js'

// The admin API's actions through HTTP on both databases, with a real SMTP server: invitations
// and accounts created with a password, suspension (live tokens stop at once, login 403, refresh
// 401, an expired suspension no longer blocks), role changes, reset links, sessions, the guard
// rails (also racing), the audit event of every action, and the self-service export.

const PUBLIC_URL = 'https://accounts.example.test'
const HOUR = 3_600_000
const IP = '198.51.100.7'

function mailEnv (mail: MailServer): Record<string, string> {
  return {
    SMTP_URL: mail.url,
    MAIL_FROM: 'Example Accounts <no-reply@example.test>',
    PUBLIC_URL,
    APP_NAME: 'Example Accounts',
    MAIL_POLL_INTERVAL: '1',
    MAIL_RETRY_DELAY: '1',
    MAIL_IP_LIMIT: '1000/5m'
  }
}

let requestNumber = 0
/** An admin API call from a known address with a known request id; returns the response and that id. */
async function call (app: FastifyInstance, token: string, method: InjectOptions['method'], url: string, payload?: object) {
  const requestId = `admin-test-${++requestNumber}`
  const response = await authed(app, token, { method, url, payload, remoteAddress: IP, headers: { 'x-request-id': requestId } })
  return { response, body: response.body === '' ? undefined : json(response), requestId }
}

const eventsFor = (app: FastifyInstance, userId: number) =>
  app.db.kysely.selectFrom('audit_events').selectAll().where('user_id', '=', userId).orderBy('id').execute()

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
  describe(`admin actions (${dialect.name})`, { skip: dialect.skip }, () => {
    const mailServer = useMailServer()
    let mail: MailServer
    before(() => { mail = mailServer() })
    const clock = createClock(Date.now())
    const logs = captureLogs()
    const suite = useSuiteApp(() => ({ dialect: dialect.name, env: mailEnv(mailServer()), overrides: { now: clock.now, logger: logs.logger } }))

    it('invites a user: 201, an email whose link sets the password on the set-password page once, verifies the email and lets them in', async () => {
      const { app } = suite()
      const admin = await createUser(app, { admin: true })
      const data = newUserData('invited')
      const created = await call(app, admin.token, 'POST', '/admin/users', { username: data.username, email: data.email })
      assert.equal(created.response.statusCode, 201, created.response.body)
      const user = created.body
      assert.equal(created.response.headers.location, `/admin/users/${user.id}`)
      assert.deepEqual({ ...user, id: 0, created_at: '', updated_at: '' }, {
        id: 0, username: data.username, email: data.email, role: 'user', created_at: '', updated_at: '', email_verified: false,
        status: 'active', suspended_until: null, suspension_reason: null, last_login_at: null, sessions: 0
      })

      const message = await mail.waitFor(mailTo(data.email, /invited/))
      assert.equal(message.subject, 'You have been invited to Example Accounts')
      assert.match(message.text ?? '', /expires in 3 days/)
      const { url, token } = linkIn(message)
      assert.ok(url.startsWith(`${PUBLIC_URL}/account/set-password#token=`), url)
      // Nobody gets in before the invitation is used: the random password is known to no one.
      const early = await app.inject({ method: 'POST', url: '/users/login', payload: { email: data.email, password: data.password } })
      assert.equal(early.statusCode, 401)

      const accepted = await app.inject({ method: 'POST', url: '/users/password-reset/confirm', payload: { token, new_password: data.password } })
      assert.equal(accepted.statusCode, 200, accepted.body)
      assert.deepEqual(json(accepted), { message: 'Password has been set' })
      const row = await app.db.kysely.selectFrom('users').select(['email_verified_at']).where('id', '=', user.id).executeTakeFirstOrThrow()
      assert.notEqual(row.email_verified_at, null, 'the link proved the address')
      const again = await app.inject({ method: 'POST', url: '/users/password-reset/confirm', payload: { token, new_password: `${data.password}2` } })
      assert.equal(again.statusCode, 400, 'the link works once')
      const token2 = await login(app, data.email, data.password)
      assert.equal(json(await authed(app, token2, { method: 'GET', url: '/users/me' })).email_verified, true)

      const events = await eventsFor(app, user.id)
      assert.deepEqual(events.map((event) => [event.type, event.outcome, event.actor_id]), [
        ['user_created', 'success', admin.id], ['login', 'failure', null], ['invite_accepted', 'success', user.id], ['login', 'success', user.id]
      ])
      assert.equal(events[0].request_id, created.requestId)
      assert.equal(events[0].ip, IP)
      assert.deepEqual(JSON.parse(events[0].detail!), { role: 'user', invite: true })
      await drained(app)
      assert.equal(mail.messages.filter(mailTo(data.email, /password was changed/)).length, 0, 'no "password changed" notice for a first password')
    })

    it('an invitation expires after INVITE_TOKEN_TTL (72 hours)', async () => {
      const { app } = suite()
      const admin = await createUser(app, { admin: true })
      const data = newUserData('late')
      const created = await call(app, admin.token, 'POST', '/admin/users', { username: data.username, email: data.email, role: 'admin' })
      assert.equal(created.response.statusCode, 201)
      assert.equal(created.body.role, 'admin')
      const { token } = linkIn(await mail.waitFor(mailTo(data.email, /invited/)))
      const tokenRow = await app.db.kysely.selectFrom('account_tokens').selectAll().where('user_id', '=', created.body.id).executeTakeFirstOrThrow()
      assert.equal(Date.parse(tokenRow.expires_at) - Date.parse(tokenRow.created_at), 72 * HOUR)
      assert.equal(tokenRow.purpose, 'invite')
      clock.advance(72 * HOUR + 1000)
      try {
        const late = await app.inject({ method: 'POST', url: '/users/password-reset/confirm', payload: { token, new_password: data.password } })
        assert.equal(late.statusCode, 400)
        assert.deepEqual(json(late), { detail: 'Invalid or expired token' })
      } finally {
        clock.advance(-(72 * HOUR + 1000))
      }
    })

    it('creates a user with a password when invite is false, and never lets a password travel', async () => {
      const { app } = suite()
      const admin = await createUser(app, { admin: true })
      const data = newUserData('direct')
      const created = await call(app, admin.token, 'POST', '/admin/users', { ...data, invite: false })
      assert.equal(created.response.statusCode, 201, created.response.body)
      assert.ok(!created.response.body.includes(data.password))
      await login(app, data.email, data.password)
      // The address is not proven: it gets the usual verification link, and no invitation.
      await mail.waitFor(mailTo(data.email, /Confirm your email/))
      await drained(app)
      assert.equal(mail.messages.filter(mailTo(data.email, /invited/)).length, 0)
      for (const message of mail.messages) assert.ok(!(message.text ?? '').includes(data.password), 'never emailed')
      const outbox = await app.db.kysely.selectFrom('email_outbox').select(['params']).execute()
      assert.ok(outbox.every((row) => !row.params.includes(data.password)), 'never queued')
      assert.ok(!logs.text().includes(data.password), 'never logged')

      const refusals: Array<[object, number, RegExp]> = [
        [{ ...newUserData('both') }, 400, /^password: not allowed with an invitation/],
        [{ ...newUserData('none'), password: undefined, invite: false }, 400, /^password: is required when invite is false$/],
        [{ ...newUserData('weak'), password: 'password', invite: false }, 400, /^password:/],
        [{ ...newUserData('taken'), email: data.email.toUpperCase(), password: undefined }, 400, /^Email already registered$/],
        [{ ...newUserData('taken'), username: data.username, password: undefined }, 400, /^Username already registered$/],
        [{ ...newUserData('role'), password: undefined, role: 'root' }, 400, /role/]
      ]
      for (const [payload, status, detail] of refusals) {
        const refused = await call(app, admin.token, 'POST', '/admin/users', payload)
        assert.equal(refused.response.statusCode, status, JSON.stringify(payload))
        assert.match(refused.body.detail, detail)
      }
      const user = await createUser(app)
      const forbidden = await call(app, user.token, 'POST', '/admin/users', { username: 'x-forbidden', email: 'x-forbidden@example.com' })
      assert.equal(forbidden.response.statusCode, 403)
      assert.equal(await app.db.kysely.selectFrom('users').select('id').where('username', '=', 'x-forbidden').executeTakeFirst(), undefined)
    })

    it('suspending ends the account\'s sessions at once: its token is refused, refresh 401, login 403 with until, no reset email', async () => {
      const { app } = suite()
      const admin = await createUser(app, { admin: true })
      const user = await createUser(app)
      const pair = json(await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } }))
      assert.equal((await authed(app, user.token, { method: 'GET', url: '/users/me' })).statusCode, 200)
      const until = new Date(clock.now() + 24 * HOUR).toISOString()

      const suspended = await call(app, admin.token, 'POST', `/admin/users/${user.id}/suspend`, { reason: 'Spam reports', until })
      assert.equal(suspended.response.statusCode, 200, suspended.response.body)
      assert.deepEqual([suspended.body.status, suspended.body.suspension_reason, suspended.body.suspended_until, suspended.body.sessions], ['suspended', 'Spam reports', until, 0])
      // The very next request with the old token, and its refresh token, are refused.
      for (const token of [user.token, pair.access_token]) {
        assert.equal((await authed(app, token, { method: 'GET', url: `/users/${user.id}` })).statusCode, 401)
      }
      const refresh = await app.inject({ method: 'POST', url: '/users/refresh', payload: { refresh_token: pair.refresh_token } })
      assert.equal(refresh.statusCode, 401)
      const refused = await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } })
      assert.equal(refused.statusCode, 403)
      assert.deepEqual(json(refused), { detail: 'Account suspended', until })
      const wrong = await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: 'not-the-password-1' } })
      assert.equal(wrong.statusCode, 401, 'the state is told only to someone who knows the password')

      // A reset request gets the same answer as anyone's, and nothing is sent.
      const reset = await app.inject({ method: 'POST', url: '/users/password-reset/request', payload: { email: user.email } })
      assert.equal(reset.statusCode, 202)
      assert.deepEqual(json(reset), { detail: 'If an account exists for this email, we have sent a link to reset its password' })
      // The look-up runs after the answer: wait for it, then check that it sent nothing and why.
      await app.afterResponse.idle()
      const [requested] = (await eventsFor(app, user.id)).filter((row) => row.type === 'password_reset_requested')
      assert.deepEqual(JSON.parse(requested.detail!), { result: 'suspended' })
      const queued = await app.db.kysely.selectFrom('email_outbox').select('purpose').where('user_id', '=', user.id).where('purpose', '=', 'reset_password').execute()
      assert.equal(queued.length, 0)

      const [event] = (await eventsFor(app, user.id)).filter((row) => row.type === 'user_suspended')
      assert.deepEqual([event.actor_id, event.reason, event.ip, event.request_id], [admin.id, 'Spam reports', IP, suspended.requestId])
      assert.deepEqual(JSON.parse(event.detail!), { until, sessions_revoked: 2, links_voided: 0 })

      const lifted = await call(app, admin.token, 'POST', `/admin/users/${user.id}/unsuspend`)
      assert.equal(lifted.response.statusCode, 200)
      assert.deepEqual([lifted.body.status, lifted.body.suspension_reason, lifted.body.suspended_until], ['active', null, null])
      await login(app, user.email, user.password)
    })

    it('a suspension without an end says no until; one past its end no longer blocks, with no job run', async () => {
      const { app } = suite()
      const admin = await createUser(app, { admin: true })
      const user = await createUser(app)
      const indefinite = await call(app, admin.token, 'POST', `/admin/users/${user.id}/suspend`, { reason: 'Investigating' })
      assert.equal(indefinite.body.suspended_until, null)
      const refused = await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } })
      assert.deepEqual(json(refused), { detail: 'Account suspended' })

      await call(app, admin.token, 'POST', `/admin/users/${user.id}/suspend`, { reason: 'One hour', until: new Date(clock.now() + HOUR).toISOString() })
      assert.equal((await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } })).statusCode, 403)
      clock.advance(HOUR + 1000)
      try {
        await login(app, user.email, user.password)
        const adminToken = await login(app, admin.email, admin.password)
        const page = await listUsers(app, adminToken, { q: user.username })
        assert.deepEqual([page.users[0].status, page.users[0].suspended_until], ['active', null])
      } finally {
        clock.advance(-(HOUR + 1000))
      }
    })

    it('refuses a blank reason, a past until, an unknown user and a malformed id', async () => {
      const { app } = suite()
      const admin = await createUser(app, { admin: true })
      const user = await createUser(app)
      const cases: Array<[string, object, number]> = [
        [`/admin/users/${user.id}/suspend`, { reason: '   ' }, 400],
        [`/admin/users/${user.id}/suspend`, {}, 400],
        [`/admin/users/${user.id}/suspend`, { reason: 'x', until: new Date(clock.now() - 1000).toISOString() }, 400],
        [`/admin/users/${user.id}/suspend`, { reason: 'x', until: 'tomorrow' }, 400],
        ['/admin/users/999999/suspend', { reason: 'x' }, 404],
        ['/admin/users/1e3/suspend', { reason: 'x' }, 400],
        ['/admin/users/999999/unsuspend', {}, 404]
      ]
      for (const [url, payload, status] of cases) {
        const response = await call(app, admin.token, 'POST', url, payload)
        assert.equal(response.response.statusCode, status, `${url} ${JSON.stringify(payload)}: ${response.response.body}`)
      }
      assert.equal((await authed(app, user.token, { method: 'GET', url: '/users/me' })).statusCode, 200, 'nothing happened to the user')
    })

    it('a role change ends that user\'s sessions; the new role applies from their next login', async () => {
      const { app } = suite()
      const admin = await createUser(app, { admin: true })
      const user = await createUser(app)
      const promoted = await call(app, admin.token, 'PUT', `/admin/users/${user.id}/role`, { role: 'admin', reason: 'New moderator' })
      assert.equal(promoted.response.statusCode, 200)
      assert.equal(promoted.body.role, 'admin')
      assert.equal((await authed(app, user.token, { method: 'GET', url: '/users/me' })).statusCode, 401)
      const adminToken = await login(app, user.email, user.password)
      assert.equal((await authed(app, adminToken, { method: 'GET', url: '/admin/users' })).statusCode, 200)
      const same = await call(app, admin.token, 'PUT', `/admin/users/${user.id}/role`, { role: 'admin' })
      assert.equal(same.response.statusCode, 200)
      assert.equal((await authed(app, adminToken, { method: 'GET', url: '/users/me' })).statusCode, 200, 'no change, no sign-out')
      const demoted = await call(app, admin.token, 'PUT', `/admin/users/${user.id}/role`, { role: 'user' })
      assert.equal(demoted.body.role, 'user')
      const events = (await eventsFor(app, user.id)).filter((event) => event.type === 'role_change')
      assert.deepEqual(events.map((event) => [JSON.parse(event.detail!), event.reason, event.actor_id]), [
        [{ from: 'user', to: 'admin', sessions_revoked: 1 }, 'New moderator', admin.id],
        [{ from: 'admin', to: 'user', sessions_revoked: 1 }, null, admin.id]
      ])
      const userToken = await login(app, user.email, user.password)
      assert.equal((await authed(app, userToken, { method: 'GET', url: '/admin/users' })).statusCode, 403)
    })

    it('sends a reset link on an administrator\'s request (202), and with revoke_sessions ends the sessions now', async () => {
      const { app } = suite()
      const admin = await createUser(app, { admin: true })
      const user = await createUser(app)
      const kept = await call(app, admin.token, 'POST', `/admin/users/${user.id}/password-reset`)
      assert.equal(kept.response.statusCode, 202)
      assert.deepEqual(kept.body, { detail: 'Password reset link sent' })
      const first = linkIn(await mail.waitFor(mailTo(user.email, /Reset your Example Accounts password/)))
      assert.equal((await authed(app, user.token, { method: 'GET', url: '/users/me' })).statusCode, 200, 'sessions kept by default')

      const ended = await call(app, admin.token, 'POST', `/admin/users/${user.id}/password-reset`, { revoke_sessions: true })
      assert.equal(ended.response.statusCode, 202)
      assert.equal((await authed(app, user.token, { method: 'GET', url: '/users/me' })).statusCode, 401)
      await drained(app)
      const links = mail.messages.filter(mailTo(user.email, /Reset your/)).map(linkIn)
      assert.equal(links.length, 2, 'not held back by the per-address limit of visitors\' requests')
      const stale = await app.inject({ method: 'POST', url: '/users/password-reset/confirm', payload: { token: first.token, new_password: 'a-New-password-42' } })
      assert.equal(stale.statusCode, 400, 'the newer link supersedes the first')
      const fresh = await app.inject({ method: 'POST', url: '/users/password-reset/confirm', payload: { token: links[1].token, new_password: 'a-New-password-42' } })
      assert.equal(fresh.statusCode, 200)
      const events = (await eventsFor(app, user.id)).filter((event) => event.type === 'password_reset_link_sent')
      assert.deepEqual(events.map((event) => JSON.parse(event.detail!)), [{ revoke_sessions: false, sessions_revoked: 0 }, { revoke_sessions: true, sessions_revoked: 1 }])
      assert.equal((await call(app, admin.token, 'POST', '/admin/users/999999/password-reset')).response.statusCode, 404)
    })

    it('lists a user\'s live sessions and ends them all', async () => {
      const { app } = suite()
      const admin = await createUser(app, { admin: true })
      const user = await createUser(app)
      await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password }, headers: { 'user-agent': 'Phone/1.0' } })
      const listed = await call(app, admin.token, 'GET', `/admin/users/${user.id}/sessions`)
      assert.equal(listed.response.statusCode, 200)
      assert.equal(listed.body.length, 2)
      assert.ok(listed.body.some((session: Record<string, unknown>) => session.user_agent === 'Phone/1.0'))
      assert.ok(listed.body.every((session: Record<string, unknown>) => session.current === false))
      const ended = await call(app, admin.token, 'DELETE', `/admin/users/${user.id}/sessions`)
      assert.equal(ended.response.statusCode, 204)
      assert.equal((await authed(app, user.token, { method: 'GET', url: '/users/me' })).statusCode, 401)
      assert.deepEqual((await call(app, admin.token, 'GET', `/admin/users/${user.id}/sessions`)).body, [])
      const [event] = (await eventsFor(app, user.id)).filter((row) => row.type === 'sessions_revoked')
      assert.deepEqual([event.actor_id, JSON.parse(event.detail!)], [admin.id, { sessions_revoked: 2 }])
      assert.equal((await call(app, admin.token, 'GET', '/admin/users/999999/sessions')).response.statusCode, 404)
      assert.equal((await call(app, user.token, 'GET', `/admin/users/${admin.id}/sessions`)).response.statusCode, 401)
      const other = await createUser(app)
      assert.equal((await call(app, other.token, 'DELETE', `/admin/users/${admin.id}/sessions`)).response.statusCode, 403)
    })

    it('an administrator cannot suspend, demote or delete themselves (409, nothing changed)', async () => {
      const { app } = suite()
      const admin = await createUser(app, { admin: true })
      await createUser(app, { admin: true })
      const attempts = [
        await call(app, admin.token, 'POST', `/admin/users/${admin.id}/suspend`, { reason: 'oops' }),
        await call(app, admin.token, 'PUT', `/admin/users/${admin.id}/role`, { role: 'user' }),
        await call(app, admin.token, 'DELETE', `/users/${admin.id}`)
      ]
      assert.deepEqual(attempts.map(({ response }) => response.statusCode), [409, 409, 409])
      assert.deepEqual(attempts.map(({ body }) => body.detail), [
        'You cannot suspend your own account',
        'You cannot remove your own administrator role',
        'Administrators cannot delete their own account; another administrator can'
      ])
      const row = await app.db.kysely.selectFrom('users').select(['role', 'status']).where('id', '=', admin.id).executeTakeFirstOrThrow()
      assert.deepEqual(row, { role: 'admin', status: 'active' })
      assert.equal((await authed(app, admin.token, { method: 'GET', url: '/users/me' })).statusCode, 200)
      // A user who is not an administrator still deletes their own account.
      const user = await createUser(app)
      assert.equal((await authed(app, user.token, { method: 'DELETE', url: `/users/${user.id}` })).statusCode, 204)
    })

    it('an administrator with a second factor changes accounts only from a second-factor session', async () => {
      const { app } = suite()
      const admin = await createUser(app, { admin: true })
      const user = await createUser(app)
      // The admin turns a second factor on elsewhere: this password-only (aal1) session may still
      // read the directory, but no longer change anyone.
      await app.db.kysely.updateTable('users').set({ mfa_enabled: 1 }).where('id', '=', admin.id).execute()
      assert.equal((await call(app, admin.token, 'GET', '/admin/users')).response.statusCode, 200)
      const attempts = [
        await call(app, admin.token, 'POST', `/admin/users/${user.id}/suspend`, { reason: 'x' }),
        await call(app, admin.token, 'PUT', `/admin/users/${user.id}/role`, { role: 'admin' }),
        await call(app, admin.token, 'DELETE', `/admin/users/${user.id}/sessions`),
        await call(app, admin.token, 'POST', '/admin/users', { username: 'aal-check', email: 'aal-check@example.com' })
      ]
      assert.deepEqual(attempts.map(({ response }) => response.statusCode), [403, 403, 403, 403])
      assert.deepEqual([...new Set(attempts.map(({ body }) => body.detail))], ['This action needs a second factor'])
      assert.equal((await authed(app, user.token, { method: 'GET', url: '/users/me' })).statusCode, 200, 'nothing happened')
    })

    it('two administrators acting on each other at once never leave no active administrator', async (t) => {
      const { app } = suite()
      // Alone among administrators in this check: earlier tests' admins are made users here.
      const others = await app.db.kysely.selectFrom('users').select('id').where('role', '=', 'admin').execute()
      await app.db.kysely.updateTable('users').set({ role: 'user' }).where('role', '=', 'admin').execute()
      t.after(async () => {
        if (others.length > 0) await app.db.kysely.updateTable('users').set({ role: 'admin' }).where('id', 'in', others.map((row) => row.id)).execute()
      })
      const conflicts: string[] = []
      for (const action of ['demote', 'suspend', 'delete'] as const) {
        for (let round = 0; round < 3; round++) {
          const [a, b] = [await createUser(app, { admin: true }), await createUser(app, { admin: true })]
          const act = (actor: typeof a, target: typeof b) =>
            action === 'demote' ? call(app, actor.token, 'PUT', `/admin/users/${target.id}/role`, { role: 'user' })
              : action === 'suspend' ? call(app, actor.token, 'POST', `/admin/users/${target.id}/suspend`, { reason: 'race' })
                : call(app, actor.token, 'DELETE', `/users/${target.id}`)
          const results = await Promise.all([act(a, b), act(b, a)])
          const statuses = results.map(({ response }) => response.statusCode).sort()
          const ok = action === 'delete' ? 204 : 200
          assert.equal(statuses.filter((status) => status === ok).length, 1, `${action}: exactly one wins (${statuses})`)
          assert.ok(statuses.every((status) => [ok, 401, 409].includes(status)), `${action}: ${statuses}`)
          for (const { body } of results) if (body?.detail?.startsWith('Cannot')) conflicts.push(body.detail)
          const active = await app.db.kysely.selectFrom('users').select('id').where('role', '=', 'admin').where('status', '=', 'active').execute()
          assert.equal(active.length, 1, `${action}: one active administrator remains`)
          // Back to no administrator for the next round.
          await app.db.kysely.updateTable('users').set({ role: 'user', status: 'active' }).where('id', 'in', [a.id, b.id]).execute()
        }
      }
      // When both requests were authenticated before either committed, the second met the rule.
      for (const detail of conflicts) assert.match(detail, /^Cannot (suspend|remove the role of|delete) the last active administrator/)
      t.diagnostic(`last-administrator refusals: ${conflicts.length} of 9 races`)
    })

    it('records every administrator action; ?target_user_id= filters; a deleted account\'s events keep its name', async () => {
      const { app } = suite()
      const admin = await createUser(app, { admin: true })
      const user = await createUser(app)
      await call(app, admin.token, 'POST', `/admin/users/${user.id}/suspend`, { reason: 'Checking' })
      await call(app, admin.token, 'POST', `/admin/users/${user.id}/unsuspend`, { reason: 'All clear' })
      await call(app, admin.token, 'DELETE', `/admin/users/${user.id}/sessions`)
      const listed = await call(app, admin.token, 'GET', `/admin/audit-events?target_user_id=${user.id}`)
      assert.equal(listed.response.statusCode, 200)
      assert.deepEqual(listed.body.events.map((event: Record<string, unknown>) => event.type), ['sessions_revoked', 'user_unsuspended', 'user_suspended', 'login', 'signup'])
      const suspendEvent = listed.body.events[2]
      assert.deepEqual([suspendEvent.actor_id, suspendEvent.actor_username, suspendEvent.user_id, suspendEvent.target_username, suspendEvent.target_email, suspendEvent.reason],
        [admin.id, admin.username, user.id, user.username, user.email, 'Checking'])
      assert.equal(listed.body.events[1].reason, 'All clear')
      assert.deepEqual(listed.body.events[1].detail, { was_suspended: true })
      const mismatch = await call(app, admin.token, 'GET', `/admin/audit-events?target_user_id=${user.id}&user_id=${admin.id}`)
      assert.equal(mismatch.response.statusCode, 400)

      const deleted = await call(app, admin.token, 'DELETE', `/users/${user.id}`)
      assert.equal(deleted.response.statusCode, 204)
      const after = await call(app, admin.token, 'GET', `/admin/audit-events?target_user_id=${user.id}`)
      assert.deepEqual(after.body.events.map((event: Record<string, unknown>) => event.type), ['user_deleted', 'sessions_revoked', 'user_unsuspended', 'user_suspended', 'login', 'signup'])
      for (const event of after.body.events) assert.deepEqual([event.target_username, event.target_email], [user.username, user.email])
      const rows = await eventsFor(app, user.id)
      assert.ok(rows.every((row) => row.target_username === user.username && row.target_email === user.email), 'the snapshot is stored')
      for (const row of rows) assert.ok(!JSON.stringify(row).includes(user.password))
    })

    it('GET /users/me/export: everything about the caller as an attachment, without secrets', async () => {
      const { app } = suite()
      const user = await createUser(app)
      await app.inject({ method: 'POST', url: '/users/password-reset/request', payload: { email: user.email } })
      await app.afterResponse.idle()
      const exported = await authed(app, user.token, { method: 'GET', url: '/users/me/export' })
      assert.equal(exported.statusCode, 200)
      assert.match(String(exported.headers['content-disposition']), new RegExp(`^attachment; filename="account-${user.id}-\\d{4}-\\d\\d-\\d\\d\\.json"$`))
      assert.match(String(exported.headers['content-type']), /^application\/json/)
      assert.equal(exported.headers['cache-control'], 'no-store')
      const document = json(exported)
      assert.equal(document.format, 'user-management-api/export/v1')
      assert.deepEqual([document.account.id, document.account.username, document.account.email, document.account.status], [user.id, user.username, user.email, 'active'])
      assert.equal(document.account.password, 'set (the hash is not exported)')
      assert.equal(document.sessions.length, 1)
      assert.deepEqual(document.audit_events.map((event: Record<string, unknown>) => event.type), ['signup', 'login', 'password_reset_requested', 'data_export'])
      assert.ok(document.emails.some((email: Record<string, unknown>) => email.purpose === 'reset_password' && email.recipient === user.email))
      assert.ok(document.links.some((link: Record<string, unknown>) => link.purpose === 'reset_password'))
      const text = exported.body
      const secrets = await app.db.kysely.selectFrom('users').select('hashed_password').where('id', '=', user.id).executeTakeFirstOrThrow()
      const tokenHashes = await app.db.kysely.selectFrom('account_tokens').select('token_hash').where('user_id', '=', user.id).execute()
      const refreshHashes = await app.db.kysely.selectFrom('refresh_tokens').select('token_hash').execute()
      for (const secret of [secrets.hashed_password, user.password, user.token, ...tokenHashes.map((row) => row.token_hash), ...refreshHashes.map((row) => row.token_hash)]) {
        assert.ok(!text.includes(secret), 'no secret in the export')
      }
      assert.equal((await app.inject({ method: 'GET', url: '/users/me/export' })).statusCode, 401)
    })
  })
}

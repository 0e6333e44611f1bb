import { randomBytes } from 'node:crypto'
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { PASSWORD_LINKS, sendAccountLink } from '../account/account-links.js'
import { voidAccountTokens } from '../account/account-tokens.queries.js'
import { recordAuditEvent } from '../audit/audit.queries.js'
import { SessionPublic } from '../auth/sessions.routes.js'
import { listLiveSessions, revokeUserSessions } from '../auth/sessions.queries.js'
import { errors } from '../errors.js'
import { assertSecondFactor } from '../mfa/assurance.js'
import { normalizeEmail, normalizeUsername, passwordProblem, usernameProblem } from '../users/identity.js'
import { findTaken, insertUser, takenError } from '../users/users.queries.js'
import { digitsOnlyUserId } from '../users/users.routes.js'
import { errorResponses } from '../users/users.schemas.js'
import { isSuspended } from './account-status.js'
import { assertGuardRails, findAdminUser, findTarget, suspendUser, toAdminUser, unsuspendUser } from './admin.queries.js'
import { AdminPasswordReset, AdminUser, AdminUserCreate, AdminUserParams, ListUsersQuery, RoleChange, SuspendRequest, UnsuspendRequest, UsersPage } from './admin.schemas.js'
import { decodeCursor, encodeCursor, readDirectoryPage, type DirectoryFilter } from './directory.queries.js'

// The admin API: the user directory, accounts created by administrators (invitations),
// suspension, roles, reset links and sessions. Administrators only: no token 401, any other
// account 403, before the request is even validated; a change also needs a second-factor (aal2)
// session when the administrator has a second factor. Every change commits with its audit event.

const admin = { security: [{ bearerAuth: [] }], tags: ['admin'] }
const iso = (ms: number) => new Date(ms).toISOString()

async function requireAdmin (request: FastifyRequest): Promise<void> {
  if (request.user.role !== 'admin') throw errors.forbidden('Administrators only')
}

/** Changes need the session's second factor when the administrator has one (as the MFA reset does). */
async function requireSecondFactor (request: FastifyRequest): Promise<void> {
  assertSecondFactor(request.user)
}

const DATE_ONLY = /^(\d{4})-(\d\d)-(\d\d)$/
const DAY_MS = 86_400_000

/**
 * A created_from / created_to value as a moment (ms), or a 400. A date alone is a whole UTC day:
 * its start for `from`, the start of the next day (an exclusive bound) for `to`.
 */
function parseDateBound (name: string, text: string, bound: 'from' | 'to'): number {
  const invalid = () => errors.badRequest(`${name}: must be an ISO 8601 date or date-time naming a real moment`)
  const date = DATE_ONLY.exec(text) ?? /^(\d{4})-(\d\d)-(\d\d)T/.exec(text)
  if (!date) throw invalid()
  const [year, month, day] = date.slice(1, 4).map(Number)
  const start = Date.UTC(year, month - 1, day)
  if (new Date(start).getUTCDate() !== day || new Date(start).getUTCMonth() !== month - 1) throw invalid()
  if (DATE_ONLY.test(text)) return bound === 'from' ? start : start + DAY_MS
  const ms = Date.parse(text.replace(/([+-]\d\d)(\d\d)$/, '$1:$2'))
  if (Number.isNaN(ms)) throw invalid()
  // created_to is inclusive to the millisecond the API shows.
  return bound === 'from' ? ms : ms + 1
}

/** The directory's filter from the query string (a blank q is no search). */
function directoryFilter (query: ListUsersQuery): DirectoryFilter {
  const text = query.q?.trim()
  return {
    q: text ? { text, match: query.match ?? 'prefix' } : undefined,
    role: query.role,
    status: query.status,
    emailVerified: query.email_verified,
    createdFrom: query.created_from === undefined ? undefined : iso(parseDateBound('created_from', query.created_from, 'from')),
    createdBefore: query.created_to === undefined ? undefined : iso(parseDateBound('created_to', query.created_to, 'to'))
  }
}

const adminRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app
  const dialect = app.db.dialect
  const policy = { minLength: config.passwordMinLength, maxLength: config.passwordMaxLength }
  const onRequest = [app.authenticate, requireAdmin]
  const onChange = [app.authenticate, requireAdmin, requireSecondFactor]
  app.addHook('preValidation', digitsOnlyUserId)

  /** The account acted on, as the API shows it, read in the action's transaction. */
  const view = async (db: Parameters<typeof findAdminUser>[0], id: number, nowMs: number) => {
    const row = await findAdminUser(db, id, iso(nowMs))
    if (row === undefined) throw errors.userNotFound()
    return toAdminUser(row, nowMs)
  }
  const loadTarget = async (db: Parameters<typeof findTarget>[0], id: number) => {
    const target = await findTarget(db, id)
    if (target === undefined) throw errors.userNotFound()
    return target
  }

  app.get('/admin/users', {
    onRequest,
    schema: {
      ...admin,
      operationId: 'listUsers',
      summary: 'Search, filter and page through users (keyset pagination)',
      description: 'q matches the start of the email or username ignoring case (match=contains: anywhere in them); ' +
        'filters are AND-ed. Pages follow next_cursor; total counts the matching users exactly up to 10,000.',
      querystring: ListUsersQuery,
      response: { 200: UsersPage, ...errorResponses({ 400: 'Unknown parameter, invalid value or a cursor that does not continue this listing', 401: 'Missing or invalid token', 403: 'Administrators only' }) }
    }
  }, async (request) => {
    const { query } = request
    const shape = { filter: directoryFilter(query), sort: query.sort, order: query.order }
    const after = query.cursor === undefined ? undefined : decodeCursor(shape, query.cursor)
    const nowMs = app.now()
    const page = await readDirectoryPage(app.db.kysely, dialect, { ...shape, limit: query.limit, after }, iso(nowMs))
    return {
      users: page.rows.map((row) => toAdminUser(row, nowMs)),
      next_cursor: page.next === undefined ? null : encodeCursor(shape, page.next),
      total: page.total,
      total_exact: page.totalExact
    }
  })

  app.post('/admin/users', {
    onRequest: onChange,
    schema: {
      ...admin,
      operationId: 'createUser',
      summary: 'Create an account; by default the user gets an email to set their password (an invitation)',
      description: 'With invite (the default) the new user gets a single-use link to the set-password page (SET_PASSWORD_URL), valid ' +
        'for INVITE_TOKEN_TTL (72 hours by default); opening it and setting a password also verifies the email. ' +
        'With invite: false the request carries the password instead. A password is never emailed, logged or returned.',
      body: AdminUserCreate,
      response: { 201: AdminUser, ...errorResponses({ 400: 'Invalid data, username or email taken, or a password with (or without) an invitation', 401: 'Missing or invalid token', 403: 'Administrators only' }) }
    }
  }, async (request, reply) => {
    const { username, email, role = 'user', invite = true, password } = request.body
    if (invite && password !== undefined) throw errors.badRequest('password: not allowed with an invitation (the user chooses their own); send invite: false to set one')
    if (!invite && password === undefined) throw errors.badRequest('password: is required when invite is false')
    const problem = usernameProblem(username) ?? (password === undefined ? undefined : passwordProblem(password, policy, { username, email }))
    if (problem) throw errors.badRequest(problem)
    const usernameNormalized = normalizeUsername(username)
    const emailNormalized = normalizeEmail(email)
    const taken = await findTaken(app.db.kysely, { usernameNormalized, emailNormalized })
    if (taken.username || taken.email) throw takenError(taken)
    // An invited account's password is random and never known: until the invitation is used,
    // no password opens it (and its login costs the same time as any other).
    const hashedPassword = await app.passwords.hash(password ?? randomBytes(32).toString('base64url'))
    const nowMs = app.now()
    const now = iso(nowMs)
    const created = await app.db.kysely.transaction().execute(async (trx) => {
      const id = await insertUser(trx, {
        username,
        username_normalized: usernameNormalized,
        email,
        email_normalized: emailNormalized,
        hashed_password: hashedPassword,
        role,
        created_at: now,
        updated_at: now
      })
      await recordAuditEvent(trx, request, { type: 'user_created', outcome: 'success', userId: id, actorId: request.user.id, detail: { role, invite } }, now)
      const user = { id, username }
      if (invite) await sendAccountLink(app, trx, { purpose: 'invite', user, to: email, limited: false }, nowMs)
      else if (config.emailVerification !== 'off') await sendAccountLink(app, trx, { purpose: 'verify_email', user, to: email, limited: false }, nowMs)
      return view(trx, id, nowMs)
    })
    request.log.info({ userId: created.id, invite }, 'user created by an administrator')
    return reply.code(201).header('location', `/admin/users/${created.id}`).send(created)
  })

  app.get('/admin/users/:user_id', {
    onRequest,
    schema: {
      ...admin,
      operationId: 'getAdminUser',
      summary: 'One user as administrators see them (status, last login, live sessions)',
      params: AdminUserParams,
      response: { 200: AdminUser, ...errorResponses({ 400: 'Invalid user id', 401: 'Missing or invalid token', 403: 'Administrators only', 404: 'User not found' }) }
    }
  }, async (request) => view(app.db.kysely, request.params.user_id, app.now()))

  app.post('/admin/users/:user_id/suspend', {
    onRequest: onChange,
    schema: {
      ...admin,
      operationId: 'suspendUser',
      summary: 'Suspend an account: its sessions end at once and it cannot log in until unsuspended (or until `until`)',
      params: AdminUserParams,
      body: SuspendRequest,
      response: { 200: AdminUser, ...errorResponses({ 400: 'Invalid data (a blank reason, an until in the past)', 401: 'Missing or invalid token', 403: 'Administrators only, or this session needs a second factor', 404: 'User not found', 409: 'Your own account, or the last active administrator' }) }
    }
  }, async (request) => {
    const targetId = request.params.user_id
    const reason = request.body.reason.trim()
    if (reason === '') throw errors.badRequest('reason: must not be blank')
    const nowMs = app.now()
    const now = iso(nowMs)
    let until: string | null = null
    if (request.body.until !== undefined) {
      const ms = Date.parse(request.body.until)
      if (!(ms > nowMs)) throw errors.badRequest('until: must be in the future')
      until = iso(ms)
    }
    const user = await app.db.kysely.transaction().execute(async (trx) => {
      const target = await loadTarget(trx, targetId)
      await assertGuardRails(trx, dialect, 'suspend', request.user, target, nowMs)
      await suspendUser(trx, targetId, { until, reason }, now)
      const revoked = await revokeUserSessions(trx, targetId, now)
      // Links sent before must not set a new password on an account being locked out.
      const voided = await voidAccountTokens(trx, targetId, { purposes: PASSWORD_LINKS }, now)
      await recordAuditEvent(trx, request, { type: 'user_suspended', outcome: 'success', userId: targetId, actorId: request.user.id, reason, detail: { until, sessions_revoked: revoked, links_voided: voided } }, now)
      return view(trx, targetId, nowMs)
    })
    request.log.info({ userId: targetId }, 'user suspended')
    return user
  })

  app.post('/admin/users/:user_id/unsuspend', {
    onRequest: onChange,
    // The body is optional: a bare POST lifts the suspension.
    preValidation: async (request) => { request.body ??= {} },
    schema: {
      ...admin,
      operationId: 'unsuspendUser',
      summary: 'Lift a suspension (the user logs in again; ended sessions stay ended)',
      params: AdminUserParams,
      body: UnsuspendRequest,
      response: { 200: AdminUser, ...errorResponses({ 400: 'Invalid data', 401: 'Missing or invalid token', 403: 'Administrators only', 404: 'User not found' }) }
    }
  }, async (request) => {
    const targetId = request.params.user_id
    const reason = request.body?.reason?.trim() || null
    const nowMs = app.now()
    const now = iso(nowMs)
    return app.db.kysely.transaction().execute(async (trx) => {
      const target = await loadTarget(trx, targetId)
      await unsuspendUser(trx, targetId, now)
      await recordAuditEvent(trx, request, { type: 'user_unsuspended', outcome: 'success', userId: targetId, actorId: request.user.id, reason, detail: { was_suspended: isSuspended(target, nowMs) } }, now)
      return view(trx, targetId, nowMs)
    })
  })

  app.put('/admin/users/:user_id/role', {
    onRequest: onChange,
    schema: {
      ...admin,
      operationId: 'changeUserRole',
      summary: 'Make a user an administrator or not; ends that user\'s sessions (they log in again with the new role)',
      params: AdminUserParams,
      body: RoleChange,
      response: { 200: AdminUser, ...errorResponses({ 400: 'Invalid data', 401: 'Missing or invalid token', 403: 'Administrators only, or this session needs a second factor', 404: 'User not found', 409: 'Your own role, or the last active administrator' }) }
    }
  }, async (request) => {
    const targetId = request.params.user_id
    const { role } = request.body
    const reason = request.body.reason?.trim() || null
    const nowMs = app.now()
    const now = iso(nowMs)
    return app.db.kysely.transaction().execute(async (trx) => {
      const target = await loadTarget(trx, targetId)
      // The role it already has: nothing changes, nothing is recorded.
      if (target.role === role) return view(trx, targetId, nowMs)
      if (role !== 'admin') await assertGuardRails(trx, dialect, 'demote', request.user, target, nowMs)
      await trx.updateTable('users').set({ role, updated_at: now }).where('id', '=', targetId).execute()
      const revoked = await revokeUserSessions(trx, targetId, now)
      await recordAuditEvent(trx, request, { type: 'role_change', outcome: 'success', userId: targetId, actorId: request.user.id, reason, detail: { from: target.role, to: role, sessions_revoked: revoked } }, now)
      return view(trx, targetId, nowMs)
    })
  })

  app.post('/admin/users/:user_id/password-reset', {
    onRequest: onChange,
    preValidation: async (request) => { request.body ??= {} },
    schema: {
      ...admin,
      operationId: 'sendPasswordReset',
      summary: 'Email the user a link to set a new password; {"revoke_sessions": true} also ends their sessions now',
      params: AdminUserParams,
      body: AdminPasswordReset,
      response: {
        202: Type.Object({ detail: Type.String({ examples: ['Password reset link sent'] }) }, { title: 'Accepted' }),
        ...errorResponses({ 400: 'Invalid data', 401: 'Missing or invalid token', 403: 'Administrators only', 404: 'User not found' })
      }
    }
  }, async (request, reply) => {
    const targetId = request.params.user_id
    const revokeSessions = request.body?.revoke_sessions === true
    const nowMs = app.now()
    const now = iso(nowMs)
    await app.db.kysely.transaction().execute(async (trx) => {
      const target = await loadTarget(trx, targetId)
      // Not subject to the per-address limits of what visitors can ask for.
      await sendAccountLink(app, trx, { purpose: 'reset_password', user: target, to: target.email, limited: false }, nowMs)
      const revoked = revokeSessions ? await revokeUserSessions(trx, targetId, now) : 0
      await recordAuditEvent(trx, request, { type: 'password_reset_link_sent', outcome: 'success', userId: targetId, actorId: request.user.id, detail: { revoke_sessions: revokeSessions, sessions_revoked: revoked } }, now)
    })
    return reply.code(202).send({ detail: 'Password reset link sent' })
  })

  app.get('/admin/users/:user_id/sessions', {
    onRequest,
    schema: {
      ...admin,
      operationId: 'listUserSessions',
      summary: 'A user\'s live sessions (devices), newest first',
      params: AdminUserParams,
      response: { 200: Type.Array(SessionPublic), ...errorResponses({ 400: 'Invalid user id', 401: 'Missing or invalid token', 403: 'Administrators only', 404: 'User not found' }) }
    }
  }, async (request) => {
    const targetId = request.params.user_id
    await loadTarget(app.db.kysely, targetId)
    const rows = await listLiveSessions(app.db.kysely, targetId, iso(app.now()))
    return rows.map((row) => ({ ...row, current: row.id === request.user.session_id }))
  })

  app.delete('/admin/users/:user_id/sessions', {
    onRequest: onChange,
    schema: {
      ...admin,
      operationId: 'revokeUserSessions',
      summary: 'End every session of a user; their tokens stop working at once',
      params: AdminUserParams,
      response: { 204: { type: 'null', description: 'Sessions ended' }, ...errorResponses({ 400: 'Invalid user id', 401: 'Missing or invalid token', 403: 'Administrators only', 404: 'User not found' }) }
    }
  }, async (request, reply) => {
    const targetId = request.params.user_id
    const now = iso(app.now())
    await app.db.kysely.transaction().execute(async (trx) => {
      await loadTarget(trx, targetId)
      const revoked = await revokeUserSessions(trx, targetId, now)
      await recordAuditEvent(trx, request, { type: 'sessions_revoked', outcome: 'success', userId: targetId, actorId: request.user.id, detail: { sessions_revoked: revoked } }, now)
    })
    return reply.code(204).send()
  })
}

export default adminRoutes

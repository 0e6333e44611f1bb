import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { PASSWORD_LINKS, queuePasswordChangedNotice, sendAccountLink } from '../account/account-links.js'
import { voidAccountTokens } from '../account/account-tokens.queries.js'
import { planEmailChange, recordEmailChange } from '../account/email-change.js'
import { assertGuardRails, findTarget } from '../admin/admin.queries.js'
import { recordAuditEvent, snapshotAuditTarget } from '../audit/audit.queries.js'
import { revokeUserSessions, type AuthenticatedUser } from '../auth/sessions.queries.js'
import { AppError, errors } from '../errors.js'
import { normalizeEmail, normalizeUsername, passwordProblem, usernameProblem } from './identity.js'
import { deleteUser, findTaken, findUserById, insertUser, takenError, toPublicUser, updateUser, type UserChanges, type UserRecord } from './users.queries.js'
import { errorResponses, SignupResponse, UserCreate, UserIdParams, UserPublic, UserUpdate } from './users.schemas.js'

/** Self or admin; anyone else gets 403 whether or not the target exists (no existence oracle). */
export function assertCanActOn (user: AuthenticatedUser, targetId: number): void {
  if (user.id !== targetId && user.role !== 'admin') throw errors.forbidden()
}

/** The caller's own row is already loaded by authentication; only admins need a look-up. */
async function loadTarget (app: Parameters<FastifyPluginAsyncTypebox>[0], user: AuthenticatedUser, targetId: number): Promise<UserRecord> {
  assertCanActOn(user, targetId)
  if (user.id === targetId) return user
  const target = await findUserById(app.db.kysely, targetId)
  if (target === undefined) throw errors.userNotFound()
  return target
}

const authenticated = { security: [{ bearerAuth: [] }] }

/**
 * preValidation hook for routes with a user_id in the path. Path text is coerced to the integer
 * the schema asks for, and JavaScript's number parsing would also read "1e3", "0x10" or " 1" as
 * ids: only plain digits name a user.
 */
export function digitsOnlyUserId (request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void): void {
  const raw = (request.params as { user_id?: unknown }).user_id
  if (typeof raw === 'string' && !/^[0-9]+$/.test(raw)) return done(new AppError(400, 'user_id: must be a positive whole number written in digits'))
  done()
}

const usersRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const policy = { minLength: app.config.passwordMinLength, maxLength: app.config.passwordMaxLength }

  app.addHook('preValidation', digitsOnlyUserId)

  app.post('/users/signup', {
    config: { rateLimit: app.ipLimit(app.config.signupIpLimit) },
    schema: {
      tags: ['users'],
      operationId: 'signup',
      summary: 'Create an account',
      body: UserCreate,
      response: { 201: SignupResponse, ...errorResponses({ 400: 'Invalid data, or username or email already registered', 429: 'Too many signups from your address', 503: 'Too many signups in progress; retry shortly' }) }
    }
  }, async (request, reply) => {
    const { username, email, password } = request.body
    const problem = usernameProblem(username) ?? passwordProblem(password, policy, { username, email })
    if (problem) throw errors.badRequest(problem)
    const usernameNormalized = normalizeUsername(username)
    const emailNormalized = normalizeEmail(email)
    // Cheap check before the expensive hash; the unique constraints still decide any race.
    const taken = await findTaken(app.db.kysely, { usernameNormalized, emailNormalized })
    if (taken.username || taken.email) throw takenError(taken)
    const hashedPassword = await app.passwords.hash(password)
    const now = new Date(app.now()).toISOString()
    // The account, its signup event and its verification email commit together: a crash never
    // leaves one without the others.
    const userId = await app.db.kysely.transaction().execute(async (trx) => {
      const id = await insertUser(trx, {
        username,
        username_normalized: usernameNormalized,
        email,
        email_normalized: emailNormalized,
        hashed_password: hashedPassword,
        role: 'user',
        created_at: now,
        updated_at: now
      })
      await recordAuditEvent(trx, request, { type: 'signup', outcome: 'success', userId: id, actorId: id }, now)
      if (app.config.emailVerification !== 'off') {
        await sendAccountLink(app, trx, { purpose: 'verify_email', user: { id, username }, to: email, limited: true }, Date.parse(now))
      }
      return id
    })
    request.log.info({ userId }, 'user signed up')
    return reply.code(201).send({ message: 'User created successfully', user_id: userId })
  })

  app.get('/users/:user_id', {
    onRequest: app.authenticate,
    schema: {
      tags: ['users'],
      operationId: 'getUser',
      summary: 'Read an account (your own, or any as admin)',
      ...authenticated,
      params: UserIdParams,
      response: { 200: UserPublic, ...errorResponses({ 400: 'Invalid user id', 401: 'Missing or invalid token', 403: 'Not your account', 404: 'User not found (admins only)' }) }
    }
  }, async (request) => toPublicUser(await loadTarget(app, request.user, request.params.user_id)))

  app.put('/users/:user_id', {
    onRequest: app.authenticate,
    schema: {
      tags: ['users'],
      operationId: 'updateUser',
      summary: 'Change username, email or password',
      description: 'Changing the password signs out every other session of the account. Changing the ' +
        'password or email needs a password login within REAUTH_WINDOW (15 minutes by default).',
      ...authenticated,
      params: UserIdParams,
      body: UserUpdate,
      response: { 200: UserPublic, ...errorResponses({ 400: 'Invalid data, or username or email taken', 401: 'Missing or invalid token', 403: 'Not your account, or a recent login is required', 404: 'User not found (admins only)' }) }
    }
  }, async (request) => {
    const { user } = request
    const target = await loadTarget(app, user, request.params.user_id)
    const { username, email, password } = request.body
    if (username === undefined && email === undefined && password === undefined) {
      throw errors.badRequest('Provide at least one of username, email, password')
    }
    // Sensitive changes need a recent password check; a stolen access or refresh token alone
    // must not be enough to take the account over (refreshing does not renew it).
    if ((password !== undefined || email !== undefined) &&
        app.now() - Date.parse(user.authenticated_at) > app.config.reauthWindow * 1000) {
      throw errors.forbidden('Recent login required: log in again to change your password or email')
    }
    const emailPlan = planEmailChange(app.config.emailVerification, target, email)
    const changes: UserChanges = { ...emailPlan.changes }
    if (username !== undefined) {
      const problem = usernameProblem(username)
      if (problem) throw errors.badRequest(problem)
      changes.username = username
      changes.username_normalized = normalizeUsername(username)
    }
    if (password !== undefined) {
      const problem = passwordProblem(password, policy, { username: username ?? target.username, email: email ?? target.email })
      if (problem) throw errors.badRequest(problem)
    }
    const taken = await findTaken(app.db.kysely, { usernameNormalized: changes.username_normalized, emailNormalized: emailPlan.newNormalized }, target.id)
    if (taken.username || taken.email) throw takenError(taken)
    if (password !== undefined) changes.hashed_password = await app.passwords.hash(password)
    const nowMs = app.now()
    const now = new Date(nowMs).toISOString()
    changes.updated_at = now

    // The row, the revocation of the other sessions, voided links, notices and audit events
    // commit together or not at all.
    const updated = await app.db.kysely.transaction().execute(async (trx) => {
      const row = await updateUser(trx, target.id, changes)
      if (row === undefined) return row
      if (password !== undefined) {
        const revoked = await revokeUserSessions(trx, target.id, now, target.id === user.id ? user.session_id : undefined)
        await voidAccountTokens(trx, target.id, { purposes: PASSWORD_LINKS }, now)
        await queuePasswordChangedNotice(app, trx, target, now)
        await recordAuditEvent(trx, request, { type: 'password_change', outcome: 'success', userId: target.id, actorId: user.id, detail: { sessions_revoked: revoked } }, now)
      }
      await recordEmailChange(app, trx, request, emailPlan, target, user.id, nowMs)
      return row
    })
    if (updated === undefined) throw errors.userNotFound()
    request.log.info({ userId: target.id, fields: Object.keys(request.body) }, 'user updated')
    return toPublicUser(updated)
  })

  app.delete('/users/:user_id', {
    onRequest: app.authenticate,
    schema: {
      tags: ['users'],
      operationId: 'deleteUser',
      summary: 'Delete an account and end all its sessions',
      ...authenticated,
      params: UserIdParams,
      response: { 204: { type: 'null', description: 'Deleted' }, ...errorResponses({ 400: 'Invalid user id', 401: 'Missing or invalid token', 403: 'Not your account', 404: 'User not found (admins only)', 409: 'An administrator\'s own account, or the last active administrator' }) }
    }
  }, async (request, reply) => {
    const targetId = request.params.user_id
    assertCanActOn(request.user, targetId)
    const nowMs = app.now()
    const now = new Date(nowMs).toISOString()
    const deleted = await app.db.kysely.transaction().execute(async (trx) => {
      const target = await findTarget(trx, targetId)
      if (target === undefined) return false
      await assertGuardRails(trx, app.db.dialect, 'delete', request.user, target, nowMs)
      if (!await deleteUser(trx, targetId)) return false
      await recordAuditEvent(trx, request, { type: 'user_deleted', outcome: 'success', userId: targetId, actorId: request.user.id }, now)
      // The account's events outlive it and keep saying whose they were.
      await snapshotAuditTarget(trx, target)
      return true
    })
    if (!deleted) throw errors.userNotFound()
    request.log.info({ userId: targetId }, 'user deleted')
    return reply.code(204).send()
  })
}

export default usersRoutes

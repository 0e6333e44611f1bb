import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { recordAuditEvent } from '../audit/audit.queries.js'
import { revokeUserSessions } from '../auth/sessions.queries.js'
import { AppError, errors } from '../errors.js'
import { findUserById } from '../users/users.queries.js'
import { errorResponses, UserIdParams } from '../users/users.schemas.js'
import { assertSecondFactor } from './assurance.js'
import { clearCodeLockout } from './codes.js'
import { removeAllFactors } from './factors.js'
import { queueMfaNotice } from './notices.js'

// An administrator's reset of a user's second factors (the user lost their phone and their
// recovery codes). Lives with the rest of MFA; the admin check is the one every /admin route
// makes (role from the session check's row).

const mfaAdminRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.delete('/admin/users/:user_id/mfa', {
    onRequest: app.authenticate,
    // Only plain digits name a user ("1e3" and "0x10" would coerce to numbers).
    preValidation: async (request) => {
      const raw = (request.params as { user_id?: unknown }).user_id
      if (typeof raw === 'string' && !/^[0-9]+$/.test(raw)) throw new AppError(400, 'user_id: must be a positive whole number written in digits')
    },
    schema: {
      tags: ['admin'],
      operationId: 'resetUserMfa',
      summary: 'Remove a user\'s second factors (TOTP, passkeys) and recovery codes and end all their sessions (admins only)',
      description: 'The user logs in with their password alone afterwards and may set up a second factor again; ' +
        'a notice goes to their email. An admin whose own account has a second factor needs an aal2 session.',
      security: [{ bearerAuth: [] }],
      params: UserIdParams,
      response: { 204: { type: 'null', description: 'Reset (also when the user had no second factor)' }, ...errorResponses({ 400: 'Invalid user id', 401: 'Missing or invalid token', 403: 'Admins only, or this session needs a second factor', 404: 'User not found' }) }
    }
  }, async (request, reply) => {
    const admin = request.user
    if (admin.role !== 'admin') throw errors.forbidden()
    assertSecondFactor(admin)
    const targetId = request.params.user_id
    const now = new Date(app.now()).toISOString()
    const outcome = await app.db.kysely.transaction().execute(async (trx) => {
      const target = await findUserById(trx, targetId)
      if (target === undefined) return undefined
      const removed = await removeAllFactors(trx, targetId)
      const hadFactors = removed.totp || removed.recoveryCodes > 0 || removed.passkeys > 0
      // Nothing to take away, nothing to end: sessions and inbox stay as they are.
      const revoked = hadFactors ? await revokeUserSessions(trx, targetId, now) : 0
      if (hadFactors) await queueMfaNotice(app, trx, 'mfa_reset', target, now)
      await recordAuditEvent(trx, request, {
        type: 'mfa_reset', outcome: 'success', userId: targetId, actorId: admin.id,
        detail: { totp: removed.totp, recovery_codes: removed.recoveryCodes, passkeys: removed.passkeys, sessions_revoked: revoked }
      }, now)
      return { hadFactors }
    })
    if (outcome === undefined) throw errors.userNotFound()
    await clearCodeLockout(app, targetId)
    request.log.info({ userId: targetId, adminId: admin.id }, 'second factors reset by an admin')
    return reply.code(204).send()
  })
}

export default mfaAdminRoutes

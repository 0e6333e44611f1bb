import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { recordAuditEvent } from '../audit/audit.queries.js'
import { AppError } from '../errors.js'
import { toPublicUser } from '../users/users.queries.js'
import { errorResponses, UserPublic } from '../users/users.schemas.js'
import { listLiveSessions, revokeSession } from './sessions.queries.js'

export const SessionPublic = Type.Object({
  id: Type.String(),
  created_at: Type.String({ format: 'date-time' }),
  last_used_at: Type.String({ format: 'date-time', description: 'Last login or refresh' }),
  authenticated_at: Type.String({ format: 'date-time', description: 'Last password check' }),
  expires_at: Type.String({ format: 'date-time' }),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  current: Type.Boolean({ description: 'The session of the token making this request' })
}, { title: 'Session' })

const authenticated = { security: [{ bearerAuth: [] }] }

const sessionsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/users/me', {
    onRequest: app.authenticate,
    schema: {
      tags: ['users'],
      operationId: 'getMe',
      summary: 'Read the account of the token\'s owner',
      ...authenticated,
      response: { 200: UserPublic, ...errorResponses({ 401: 'Missing or invalid token' }) }
    }
  }, async (request) => toPublicUser(request.user))

  app.get('/users/me/sessions', {
    onRequest: app.authenticate,
    schema: {
      tags: ['auth'],
      operationId: 'listMySessions',
      summary: 'List your live sessions (devices), newest first',
      ...authenticated,
      response: { 200: Type.Array(SessionPublic), ...errorResponses({ 401: 'Missing or invalid token' }) }
    }
  }, async (request) => {
    const rows = await listLiveSessions(app.db.kysely, request.user.id, new Date(app.now()).toISOString())
    return rows.map((row) => ({ ...row, current: row.id === request.user.session_id }))
  })

  app.delete('/users/me/sessions/:session_id', {
    onRequest: app.authenticate,
    schema: {
      tags: ['auth'],
      operationId: 'revokeMySession',
      summary: 'End one of your sessions; its tokens stop working at once',
      ...authenticated,
      params: Type.Object({ session_id: Type.String({ minLength: 1, maxLength: 64 }) }),
      response: { 204: { type: 'null', description: 'Session ended' }, ...errorResponses({ 401: 'Missing or invalid token', 404: 'No such live session of yours' }) }
    }
  }, async (request, reply) => {
    const { user } = request
    const now = new Date(app.now()).toISOString()
    const revoked = await app.db.kysely.transaction().execute(async (trx) => {
      if (!await revokeSession(trx, user.id, request.params.session_id, now)) return false
      await recordAuditEvent(trx, request, { type: 'session_revoked', outcome: 'success', userId: user.id, actorId: user.id, detail: { session_id: request.params.session_id } }, now)
      return true
    })
    if (!revoked) throw new AppError(404, 'Session not found')
    return reply.code(204).send()
  })
}

export default sessionsRoutes

import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errors } from '../errors.js'
import { errorResponses } from '../users/users.schemas.js'
import { listAuditEvents } from './audit.queries.js'

const AuditEventPublic = Type.Object({
  id: Type.Integer(),
  created_at: Type.String({ format: 'date-time' }),
  type: Type.String({ examples: ['login'] }),
  outcome: Type.Union([Type.Literal('success'), Type.Literal('failure')]),
  user_id: Type.Union([Type.Integer(), Type.Null()], { description: 'The account the event is about (the target of an administrator\'s action)' }),
  target_username: Type.Union([Type.String(), Type.Null()], { description: 'That account\'s username: the current one, or for a deleted account the one it had when it was deleted' }),
  target_email: Type.Union([Type.String(), Type.Null()], { description: 'That account\'s email, likewise' }),
  actor_id: Type.Union([Type.Integer(), Type.Null()], { description: 'Who acted: the user themselves, an administrator, or null (a visitor)' }),
  actor_username: Type.Union([Type.String(), Type.Null()], { description: 'The actor\'s username while that account exists' }),
  ip: Type.Union([Type.String(), Type.Null()]),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  request_id: Type.Union([Type.String(), Type.Null()]),
  detail: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()], { description: 'What changed (never a secret)' }),
  reason: Type.Union([Type.String(), Type.Null()], { description: 'The reason an administrator gave' })
}, { title: 'AuditEvent' })

const AuditEventsPage = Type.Object({
  events: Type.Array(AuditEventPublic),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor for the next (older) page; null on the last page' })
}, { title: 'AuditEventsPage' })

const UserIdFilter = Type.Integer({ minimum: 1, maximum: 2147483647, description: 'Events about this account' })
const AuditQuery = Type.Object({
  target_user_id: Type.Optional(UserIdFilter),
  user_id: Type.Optional({ ...UserIdFilter, description: 'The same as target_user_id (its earlier name)' }),
  type: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  since: Type.Optional(Type.String({ format: 'date-time', description: 'Inclusive, ISO-8601' })),
  until: Type.Optional(Type.String({ format: 'date-time', description: 'Exclusive, ISO-8601' })),
  cursor: Type.Optional(Type.String({ maxLength: 64 })),
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 })
}, { additionalProperties: false })

const CURSOR = /^c(\d{1,15})$/

const auditRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/admin/audit-events', {
    onRequest: app.authenticate,
    schema: {
      tags: ['admin'],
      operationId: 'listAuditEvents',
      summary: 'Security events, newest first (admins only)',
      security: [{ bearerAuth: [] }],
      querystring: AuditQuery,
      response: { 200: AuditEventsPage, ...errorResponses({ 400: 'Invalid filter or cursor', 401: 'Missing or invalid token', 403: 'Admins only' }) }
    }
  }, async (request) => {
    if (request.user.role !== 'admin') throw errors.forbidden()
    const { target_user_id: targetUserId, user_id: userId, type, since, until, cursor, limit } = request.query
    if (targetUserId !== undefined && userId !== undefined && targetUserId !== userId) {
      throw errors.badRequest('target_user_id: differs from user_id (give one of them)')
    }
    let beforeId: number | undefined
    if (cursor !== undefined) {
      const match = CURSOR.exec(cursor)
      if (!match) throw errors.badRequest('cursor: is not a cursor returned by this endpoint')
      beforeId = Number(match[1])
    }
    const rows = await listAuditEvents(app.db.kysely, {
      userId: targetUserId ?? userId,
      type,
      since: since && new Date(since).toISOString(),
      until: until && new Date(until).toISOString(),
      beforeId,
      limit
    })
    return {
      events: rows.map((row) => ({ ...row, detail: row.detail === null ? null : JSON.parse(row.detail) })),
      next_cursor: rows.length === limit ? `c${rows[rows.length - 1].id}` : null
    }
  })
}

export default auditRoutes

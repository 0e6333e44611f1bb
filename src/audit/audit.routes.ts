import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errors } from '../errors.js'
import { errorResponses } from '../users/users.schemas.js'
import { listAuditEvents } from './audit.queries.js'

const AuditEventPublic = Type.Object({
  id: Type.Integer(),
  created_at: Type.String({ format: 'date-time' }),
  type: Type.String({ examples: ['login'] }),
  outcome: Type.Union([Type.Literal('success'), Type.Literal('failure')]),
  user_id: Type.Union([Type.Integer(), Type.Null()]),
  actor_id: Type.Union([Type.Integer(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  request_id: Type.Union([Type.String(), Type.Null()]),
  detail: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()])
}, { title: 'AuditEvent' })

const AuditEventsPage = Type.Object({
  events: Type.Array(AuditEventPublic),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor for the next (older) page; null on the last page' })
}, { title: 'AuditEventsPage' })

const AuditQuery = Type.Object({
  user_id: Type.Optional(Type.Integer({ minimum: 1, maximum: 2147483647 })),
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
    const { user_id: userId, type, since, until, cursor, limit } = request.query
    let beforeId: number | undefined
    if (cursor !== undefined) {
      const match = CURSOR.exec(cursor)
      if (!match) throw errors.badRequest('cursor: is not a cursor returned by this endpoint')
      beforeId = Number(match[1])
    }
    const rows = await listAuditEvents(app.db.kysely, {
      userId,
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

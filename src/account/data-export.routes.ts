import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Kysely } from 'kysely'
import { findAdminUser, toAdminUser } from '../admin/admin.queries.js'
import { AdminUser } from '../admin/admin.schemas.js'
import { recordAuditEvent } from '../audit/audit.queries.js'
import type { Database } from '../db/database.js'
import { errors } from '../errors.js'
import { errorResponses } from '../users/users.schemas.js'

// GET /users/me/export: everything the service holds about the caller, as one JSON file (the
// right of access and to data portability, GDPR articles 15 and 20). Secrets stay out: the
// password hash, refresh-token hashes, link-token hashes and the seeds of emailed links.

const Nullable = (description?: string) => Type.Union([Type.String(), Type.Null()], description === undefined ? {} : { description })

const DataExport = Type.Object({
  format: Type.Literal('user-management-api/export/v1'),
  exported_at: Type.String({ format: 'date-time' }),
  account: Type.Object({
    ...AdminUser.properties,
    pending_email: Type.Optional(Type.String()),
    password: Type.Literal('set (the hash is not exported)')
  }),
  sessions: Type.Array(Type.Object({
    id: Type.String(),
    created_at: Type.String(),
    authenticated_at: Type.String(),
    last_used_at: Type.String(),
    expires_at: Type.String(),
    revoked_at: Nullable(),
    user_agent: Nullable(),
    ip: Nullable()
  }), { description: 'Every session, ended ones too' }),
  audit_events: Type.Array(Type.Object({
    id: Type.Integer(),
    created_at: Type.String(),
    type: Type.String(),
    outcome: Type.String(),
    actor_id: Type.Union([Type.Integer(), Type.Null()]),
    ip: Nullable(),
    user_agent: Nullable(),
    request_id: Nullable(),
    detail: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
    reason: Nullable()
  }), { description: 'Security events about the account, oldest first' }),
  emails: Type.Array(Type.Object({
    purpose: Type.String(),
    recipient: Type.String(),
    status: Type.String(),
    created_at: Type.String(),
    sent_at: Nullable()
  }), { description: 'Emails sent (or queued) to the account' }),
  links: Type.Array(Type.Object({
    purpose: Type.String(),
    sent_to: Nullable(),
    created_at: Type.String(),
    expires_at: Type.String(),
    used_at: Nullable()
  }), { description: 'Single-use links (reset, verification, invitation) issued to the account; the tokens themselves are never stored' })
}, { title: 'DataExport' })

function readExport (db: Kysely<Database>, userId: number) {
  return Promise.all([
    db.selectFrom('sessions').select(['id', 'created_at', 'authenticated_at', 'last_used_at', 'expires_at', 'revoked_at', 'user_agent', 'ip'])
      .where('user_id', '=', userId).orderBy('created_at').orderBy('id').execute(),
    db.selectFrom('audit_events').select(['id', 'created_at', 'type', 'outcome', 'actor_id', 'ip', 'user_agent', 'request_id', 'detail', 'reason'])
      .where('user_id', '=', userId).orderBy('id').execute(),
    db.selectFrom('email_outbox').select(['purpose', 'recipient', 'status', 'created_at', 'sent_at'])
      .where('user_id', '=', userId).orderBy('id').execute(),
    db.selectFrom('account_tokens').select(['purpose', 'email_normalized as sent_to', 'created_at', 'expires_at', 'used_at'])
      .where('user_id', '=', userId).orderBy('id').execute()
  ])
}

const dataExportRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/users/me/export', {
    onRequest: app.authenticate,
    schema: {
      tags: ['account'],
      operationId: 'exportMyData',
      summary: 'Download everything held about you (profile, sessions, security events, emails) as a JSON file',
      security: [{ bearerAuth: [] }],
      response: { 200: DataExport, ...errorResponses({ 401: 'Missing or invalid token' }) }
    }
  }, async (request, reply) => {
    const { user } = request
    const nowMs = app.now()
    const now = new Date(nowMs).toISOString()
    const document = await app.db.kysely.transaction().execute(async (trx) => {
      // The export is itself an event about the account, and is in it.
      await recordAuditEvent(trx, request, { type: 'data_export', outcome: 'success', userId: user.id, actorId: user.id }, now)
      const account = await findAdminUser(trx, user.id, now)
      if (account === undefined) throw errors.invalidToken()
      const [sessions, events, emails, links] = await readExport(trx, user.id)
      return {
        format: 'user-management-api/export/v1' as const,
        exported_at: now,
        account: { ...toAdminUser(account, nowMs), password: 'set (the hash is not exported)' as const },
        sessions,
        audit_events: events.map((event) => ({ ...event, detail: event.detail === null ? null : JSON.parse(event.detail) as Record<string, unknown> })),
        emails,
        links
      }
    })
    request.log.info({ userId: user.id }, 'data exported')
    return reply
      .header('content-disposition', `attachment; filename="account-${user.id}-${now.slice(0, 10)}.json"`)
      .send(document)
  })
}

export default dataExportRoutes

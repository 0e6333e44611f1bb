import type { FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type { AuditOutcome, Database } from '../db/database.js'

export type AuditType =
  | 'signup' | 'login' | 'lockout' | 'refresh' | 'refresh_reuse_detected' | 'logout'
  | 'session_revoked' | 'password_change' | 'email_change' | 'role_change' | 'user_deleted'
  | 'password_reset_requested' | 'password_reset' | 'email_verification_requested' | 'email_verified'
  | 'email_change_requested'
  | 'mfa_challenge' | 'mfa_code' | 'mfa_lockout' | 'mfa_enrollment_started' | 'mfa_enabled' | 'mfa_disabled'
  | 'mfa_reset' | 'recovery_codes_regenerated' | 'passkey_added' | 'passkey_removed'

export interface AuditEvent {
  type: AuditType
  outcome: AuditOutcome
  userId?: number | null
  actorId?: number | null
  /** Small and free of secrets: never a password, token or hash. */
  detail?: Record<string, unknown>
}

/** Who and where, from the request: IP, user agent and request id. */
export function requestContext (request: FastifyRequest) {
  return {
    ip: request.ip,
    user_agent: request.headers['user-agent']?.slice(0, 512) ?? null,
    request_id: String(request.id)
  }
}

/** Appends one event; pass a transaction as db to write it with the change it records. */
export async function recordAuditEvent (db: Kysely<Database>, request: FastifyRequest | undefined, event: AuditEvent, now: string): Promise<void> {
  await db.insertInto('audit_events').values({
    created_at: now,
    type: event.type,
    outcome: event.outcome,
    user_id: event.userId ?? null,
    actor_id: event.actorId ?? null,
    ...(request ? requestContext(request) : { ip: null, user_agent: null, request_id: null }),
    detail: event.detail ? JSON.stringify(event.detail) : null
  }).execute()
}

export interface AuditFilter {
  userId?: number
  type?: string
  since?: string
  until?: string
  /** Return events with an id below this (keyset pagination, newest first). */
  beforeId?: number
  limit: number
}

/** Newest first; keyset on id so pages stay stable while new events arrive. */
export function listAuditEvents (db: Kysely<Database>, filter: AuditFilter) {
  let query = db.selectFrom('audit_events').selectAll().orderBy('id', 'desc').limit(filter.limit)
  if (filter.userId !== undefined) query = query.where('user_id', '=', filter.userId)
  if (filter.type !== undefined) query = query.where('type', '=', filter.type)
  if (filter.since !== undefined) query = query.where('created_at', '>=', filter.since)
  if (filter.until !== undefined) query = query.where('created_at', '<', filter.until)
  if (filter.beforeId !== undefined) query = query.where('id', '<', filter.beforeId)
  return query.execute()
}

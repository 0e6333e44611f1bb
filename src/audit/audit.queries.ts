import type { FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type { AuditOutcome, Database } from '../db/database.js'

export type AuditType =
  | 'signup' | 'login' | 'lockout' | 'refresh' | 'refresh_reuse_detected' | 'logout'
  | 'session_revoked' | 'password_change' | 'email_change' | 'role_change' | 'user_deleted'
  | 'password_reset_requested' | 'password_reset' | 'email_verification_requested' | 'email_verified'
  | 'email_change_requested' | 'invite_accepted' | 'data_export'
  // Administrators' actions (the actor is the administrator, the user the account acted on).
  | 'user_created' | 'user_suspended' | 'user_unsuspended' | 'password_reset_link_sent' | 'sessions_revoked'

export interface AuditEvent {
  type: AuditType
  outcome: AuditOutcome
  userId?: number | null
  actorId?: number | null
  /** Small and free of secrets: never a password, token or hash. */
  detail?: Record<string, unknown>
  /** Why an administrator acted, as they wrote it. */
  reason?: string | null
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
    detail: event.detail ? JSON.stringify(event.detail) : null,
    reason: event.reason ?? null
  }).execute()
}

/**
 * In the transaction that deletes an account: its events keep its username and email, so the
 * log still says whose they were once the row is gone.
 */
export async function snapshotAuditTarget (db: Kysely<Database>, user: { id: number, username: string, email: string }): Promise<void> {
  await db.updateTable('audit_events')
    .set({ target_username: user.username, target_email: user.email })
    .where('user_id', '=', user.id)
    .execute()
}

export interface AuditFilter {
  /** The account the events are about (the target of an administrator's action). */
  userId?: number
  type?: string
  since?: string
  until?: string
  /** Return events with an id below this (keyset pagination, newest first). */
  beforeId?: number
  limit: number
}

/**
 * Newest first; keyset on id so pages stay stable while new events arrive. Each event names its
 * account (the live row's username and email, or the snapshot kept when it was deleted) and its
 * actor's username (while that account exists).
 */
export function listAuditEvents (db: Kysely<Database>, filter: AuditFilter) {
  let query = db.selectFrom('audit_events')
    .leftJoin('users as target', 'target.id', 'audit_events.user_id')
    .leftJoin('users as actor', 'actor.id', 'audit_events.actor_id')
    .select((eb) => [
      'audit_events.id', 'audit_events.created_at', 'audit_events.type', 'audit_events.outcome', 'audit_events.user_id',
      'audit_events.actor_id', 'audit_events.ip', 'audit_events.user_agent', 'audit_events.request_id', 'audit_events.detail',
      'audit_events.reason',
      eb.fn.coalesce('target.username', 'audit_events.target_username').as('target_username'),
      eb.fn.coalesce('target.email', 'audit_events.target_email').as('target_email'),
      'actor.username as actor_username'
    ])
    .orderBy('audit_events.id', 'desc')
    .limit(filter.limit)
  if (filter.userId !== undefined) query = query.where('audit_events.user_id', '=', filter.userId)
  if (filter.type !== undefined) query = query.where('audit_events.type', '=', filter.type)
  if (filter.since !== undefined) query = query.where('audit_events.created_at', '>=', filter.since)
  if (filter.until !== undefined) query = query.where('audit_events.created_at', '<', filter.until)
  if (filter.beforeId !== undefined) query = query.where('audit_events.id', '<', filter.beforeId)
  return query.execute()
}

import SQLite from 'better-sqlite3'
import { Kysely, PostgresDialect, SqliteDialect, type Generated, type Insertable, type Selectable } from 'kysely'
import { createRequire } from 'node:module'
import type pg from 'pg'
import type { DatabaseConfig, Dialect } from '../config.js'
import { prepareSqliteFile } from './file-modes.js'

export type Role = 'user' | 'admin'

export interface UserTable {
  id: Generated<number>
  username: string
  /** NFKC + lower case: what uniqueness is enforced on. */
  username_normalized: string
  email: string
  /** Lower case: what uniqueness and login look-ups use. */
  email_normalized: string
  hashed_password: string
  role: Role
  /** ISO-8601 UTC text in both dialects, so one code path reads them. */
  created_at: string
  updated_at: string
  /** When a link sent to the address was opened; null: the address is not proven. */
  email_verified_at: string | null
  /** EMAIL_VERIFICATION=required: the new address of a change waiting for its confirmation. */
  pending_email: string | null
  /** 'suspended' blocks login until suspended_until (if set) has passed; see src/admin/account-status.ts. */
  status: Generated<AccountStatus>
  suspended_until: string | null
  /** Why an administrator suspended the account (shown to administrators, never to the user). */
  suspension_reason: string | null
  /** The last successful login (any way in: the session it started); null: never logged in. */
  last_login_at: string | null
  /** 1 while the account has a second factor (see syncMfaEnabled in src/mfa/factors.ts), else 0. */
  mfa_enabled: Generated<number>
}

export type AccountStatus = 'active' | 'suspended'

export interface SessionTable {
  /** Random, URL-safe; named by the access token's `sid` claim. */
  id: string
  user_id: number
  created_at: string
  /** When the password was last checked for this session (login). */
  authenticated_at: string
  last_used_at: string
  expires_at: string
  revoked_at: string | null
  user_agent: string | null
  ip: string | null
  /** Assurance level: aal2 once a second factor (or a passkey) was checked for this session. */
  aal: Aal
  /** How the session was authenticated: JSON of AmrEntry[], as the access token carries it. */
  amr: string
  /** The passkey that started the session (or raised it to aal2); removing it ends the session. */
  passkey_id: number | null
}

export type Aal = 'aal1' | 'aal2'

/** A TOTP secret (encrypted), pending until confirmed. */
export interface MfaTotpTable {
  user_id: number
  /** AES-256-GCM: base64url of iv, ciphertext and tag (src/mfa/secret-box.ts). */
  secret: string
  /** Which MFA key encrypted it. */
  key_id: string
  /** The last RFC 6238 time step accepted; a code must be for a later one. */
  last_step: Generated<number>
  created_at: string
  confirmed_at: string | null
  /** A pending enrollment ends then; null once confirmed. */
  expires_at: string | null
}

export interface MfaRecoveryCodeTable {
  id: Generated<number>
  user_id: number
  /** SHA-256 of the user id and the normalised code, base64url. */
  code_hash: string
  created_at: string
  used_at: string | null
}

export interface MfaChallengeTable {
  id: Generated<number>
  /** SHA-256 of the mfa_token, base64url. */
  token_hash: string
  user_id: number
  /** When the password was checked. */
  created_at: string
  expires_at: string
  failures: Generated<number>
  used_at: string | null
}

export type PasskeyDeviceType = 'singleDevice' | 'multiDevice'

/** A WebAuthn credential (passkey) of a user. */
export interface PasskeyTable {
  id: Generated<number>
  user_id: number
  /** base64url, as the browser names the credential. */
  credential_id: string
  /** The COSE public key, base64url. */
  public_key: string
  /** The authenticator's signature counter as last seen (0 for synced passkeys, which keep none). */
  counter: number
  /** JSON array of transports (internal, hybrid, usb, ...). */
  transports: string
  device_type: PasskeyDeviceType
  /** 1 when the last ceremony said the credential is backed up (synced). */
  backed_up: number
  aaguid: string
  /** The WebAuthn user.id (base64url, random) the credential was created for. */
  user_handle: string
  name: string
  created_at: string
  last_used_at: string | null
}

export type WebauthnCeremony = 'registration' | 'authentication'

export interface WebauthnChallengeTable {
  id: Generated<number>
  /** SHA-256 of the challenge, base64url. */
  challenge_hash: string
  ceremony: WebauthnCeremony
  /** Registration: the user and session that asked; null for a login. */
  user_id: number | null
  session_id: string | null
  /** Registration: the user.id the options named. */
  user_handle: string | null
  created_at: string
  expires_at: string
}

export interface RefreshTokenTable {
  /** SHA-256 of the token, base64url. */
  token_hash: string
  session_id: string
  issued_at: string
  /** Set when the token was exchanged for the next one. */
  used_at: string | null
}

export type AuditOutcome = 'success' | 'failure'

export interface AuditEventTable {
  id: Generated<number>
  created_at: string
  type: string
  outcome: AuditOutcome
  /** The account the event is about. */
  user_id: number | null
  /** Who acted (differs from user_id when an admin acts on someone else). */
  actor_id: number | null
  ip: string | null
  user_agent: string | null
  request_id: string | null
  /** Small JSON object; never a password, token or hash. */
  detail: string | null
  /** The reason an administrator gave for the action. */
  reason: string | null
  /** Copied from the account when it is deleted, so its events still say whose they were. */
  target_username: string | null
  target_email: string | null
}

export type AccountTokenPurpose = 'verify_email' | 'change_email' | 'reset_password' | 'invite'

/** Single-use links sent by email; only the token's SHA-256 is stored. */
export interface AccountTokenTable {
  id: Generated<number>
  token_hash: string
  purpose: AccountTokenPurpose
  user_id: number
  /** The address the link went to (lower case). */
  email_normalized: string | null
  created_at: string
  expires_at: string
  /** Consumed, or voided by a newer token, a password change or an email change. */
  used_at: string | null
}

export type OutboxStatus = 'pending' | 'sent' | 'dead'

export interface EmailOutboxTable {
  id: Generated<number>
  created_at: string
  /** The template: verify_email, reset_password, password_changed, ... */
  purpose: string
  recipient: string
  recipient_normalized: string
  user_id: number | null
  /** JSON: the template's values (never a secret). */
  params: string
  /** Derives the link's token with the server's key; erased once the email is sent. */
  link_seed: string | null
  status: OutboxStatus
  attempts: Generated<number>
  next_attempt_at: string
  /** A worker holds the row until then; after it, another may take it (the holder died). */
  lease_until: string | null
  last_error: string | null
  sent_at: string | null
}

/** SQLite only: the number of users, kept by triggers (see migration 004). */
export interface UsersCountTable {
  n: number
}

export interface Database {
  users: UserTable
  users_count: UsersCountTable
  account_tokens: AccountTokenTable
  email_outbox: EmailOutboxTable
  sessions: SessionTable
  refresh_tokens: RefreshTokenTable
  audit_events: AuditEventTable
  mfa_totp: MfaTotpTable
  mfa_recovery_codes: MfaRecoveryCodeTable
  mfa_challenges: MfaChallengeTable
  passkeys: PasskeyTable
  webauthn_challenges: WebauthnChallengeTable
}

export type UserRow = Selectable<UserTable>
export type NewUser = Insertable<UserTable>
export type SessionRow = Selectable<SessionTable>

export interface Db {
  kysely: Kysely<Database>
  dialect: Dialect
  /** The raw better-sqlite3 handle (SQLite only), for pragmas and the WAL checkpoint on close. */
  sqlite?: SQLite.Database
  /**
   * A second, read-only SQLite connection for the per-request session check. It reads only
   * committed data (WAL snapshot) and never waits behind Kysely's single-connection mutex.
   * The main connection for ':memory:' databases.
   */
  sqliteReader?: SQLite.Database
  pool?: pg.Pool
  close: () => Promise<void>
}

const TIMESTAMPTZ_OID = 1184
const INT8_OID = 20

/** PostgreSQL returns timestamptz as ISO text and int8 (count(*)) as a number, as SQLite does. */
const pgTypes = {
  getTypeParser (oid: number, format?: 'text' | 'binary') {
    if (oid === TIMESTAMPTZ_OID) return (value: string) => new Date(value).toISOString()
    if (oid === INT8_OID) return (value: string) => Number(value)
    return loadPg().types.getTypeParser(oid, format as 'text')
  }
}

export interface CreateDbOptions {
  /** SQLite busy timeout and PostgreSQL connection/statement timeouts, ms. */
  timeoutMs?: number
  poolSize?: number
}

// pg is loaded only when a PostgreSQL database is opened: a SQLite deployment does not carry it
// in memory (about 10 MB of RSS).
let loadedPg: typeof pg | undefined
function loadPg (): typeof pg {
  loadedPg ??= createRequire(import.meta.url)('pg') as typeof pg
  return loadedPg
}

/** Opens the database named by the config: better-sqlite3 (WAL, synchronous=FULL) or a pg pool. */
export function createDb (database: DatabaseConfig, options: CreateDbOptions = {}): Db {
  const timeoutMs = options.timeoutMs ?? 5000
  if (database.dialect === 'sqlite') {
    // Owner-only directory and file (and so -wal and -shm) when this creates them.
    if (database.location !== ':memory:') prepareSqliteFile(database.location)
    const sqlite = new SQLite(database.location, { timeout: timeoutMs })
    sqlite.pragma('journal_mode = WAL')
    // FULL: an acknowledged write survives power loss, not only a process crash.
    sqlite.pragma('synchronous = FULL')
    sqlite.pragma('foreign_keys = ON')
    sqlite.pragma(`busy_timeout = ${timeoutMs}`)
    const kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) })
    const sqliteReader = database.location === ':memory:'
      ? sqlite
      : new SQLite(database.location, { readonly: true, timeout: timeoutMs })
    return {
      kysely,
      dialect: 'sqlite',
      sqlite,
      sqliteReader,
      close: async () => {
        if (sqliteReader !== sqlite) sqliteReader.close()
        if (sqlite.open && database.location !== ':memory:') sqlite.pragma('wal_checkpoint(TRUNCATE)')
        await kysely.destroy()
      }
    }
  }
  const pool = new (loadPg().Pool)({
    connectionString: database.location,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: timeoutMs,
    statement_timeout: timeoutMs * 2,
    types: pgTypes
  })
  // A client losing its connection (server restart, network cut) must not crash the process. An
  // idle one is reported on the pool; a checked-out one emits 'error' on itself as well as failing
  // its query (which the caller sees): without a listener that event is an uncaught exception.
  pool.on('error', () => {})
  pool.on('connect', (client) => { client.on('error', () => {}) })
  const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  return {
    kysely,
    dialect: 'postgres',
    pool,
    close: async () => {
      await kysely.destroy()
    }
  }
}

/** True when the error is a unique-constraint violation, in SQLite's or PostgreSQL's words. */
export function isUniqueViolation (error: unknown): boolean {
  const code = (error as { code?: unknown })?.code
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505'
}

/** The column (or constraint) a unique violation names, so callers can say which value was taken. */
export function uniqueViolationTarget (error: unknown): string {
  const { message, constraint, detail } = error as { message?: string, constraint?: string, detail?: string }
  return [constraint, detail, message].filter(Boolean).join(' ')
}

// Errors that mean "the database cannot serve right now", not "this query is wrong": the
// connection is refused, reset or timed out, the server is shutting down or full, or SQLite
// stayed locked past its busy timeout. Clients get a 503 with Retry-After for these.
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'])
// SQLSTATE class 08 (connection exception), 57P01-03 (admin shutdown, crash shutdown, cannot
// connect now), 53300 (too many connections), 57014 (statement_timeout), 55P03 (lock timeout),
// 40001/40P01 (serialization failure, deadlock: the transaction can simply be retried).
const PG_UNAVAILABLE = /^(08...|57P0[123]|53300|57014|55P03|40001|40P01)$/
const PG_CLIENT_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout|Connection ended unexpectedly/i
const SQLITE_UNAVAILABLE = /^SQLITE_(BUSY|LOCKED)/

/**
 * 'unavailable' for outages and lock timeouts (answer 503), 'query' for any other database error
 * (a bug: answer 500), undefined when the error did not come from the database.
 */
export function classifyDbError (error: unknown, depth = 0): 'unavailable' | 'query' | undefined {
  if (error === null || typeof error !== 'object' || depth > 3) return undefined
  const { code, message } = error as { code?: unknown, message?: unknown }
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code) || PG_UNAVAILABLE.test(code) || SQLITE_UNAVAILABLE.test(code)) return 'unavailable'
  }
  if (typeof message === 'string' && PG_CLIENT_MESSAGES.test(message)) return 'unavailable'
  // Node wraps the per-address failures of one connect in an AggregateError.
  if (error instanceof AggregateError && error.errors.some((inner) => classifyDbError(inner, depth + 1) === 'unavailable')) return 'unavailable'
  const cause = (error as { cause?: unknown }).cause
  if (cause !== undefined && classifyDbError(cause, depth + 1) === 'unavailable') return 'unavailable'
  if (error instanceof SQLite.SqliteError || (loadedPg !== undefined && error instanceof loadedPg.DatabaseError)) return 'query'
  return undefined
}

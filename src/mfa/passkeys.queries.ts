import type { Kysely } from 'kysely'
import { isUniqueViolation, type Database, type PasskeyDeviceType, type WebauthnCeremony } from '../db/database.js'
import { AppError } from '../errors.js'
import type { VerifiedCredential } from './webauthn.js'

type DbOrTrx = Kysely<Database>

// Passkeys (WebAuthn credentials) and the challenges of their ceremonies. A challenge is used
// by deleting it: of two requests presenting one challenge, exactly one gets the row.

const PUBLIC_COLUMNS = ['id', 'name', 'created_at', 'last_used_at', 'device_type', 'backed_up', 'transports', 'aaguid'] as const

export function listPasskeys (db: DbOrTrx, userId: number) {
  return db.selectFrom('passkeys').select([...PUBLIC_COLUMNS, 'credential_id', 'user_handle'])
    .where('user_id', '=', userId)
    .orderBy('id')
    .execute()
}

export function findPasskeyByCredentialId (db: DbOrTrx, credentialId: string) {
  return db.selectFrom('passkeys')
    .select(['id', 'user_id', 'credential_id', 'public_key', 'counter', 'transports', 'user_handle'])
    .where('credential_id', '=', credentialId)
    .executeTakeFirst()
}

/** A credential the ceremony verified, with whose it is and what its owner called it. */
export interface NewPasskey extends VerifiedCredential {
  userId: number
  userHandle: string
  name: string
  now: string
}

export async function insertPasskey (db: DbOrTrx, passkey: NewPasskey): Promise<{ id: number, name: string, created_at: string }> {
  try {
    return await db.insertInto('passkeys').values({
      user_id: passkey.userId,
      credential_id: passkey.credentialId,
      public_key: passkey.publicKey,
      counter: passkey.counter,
      transports: JSON.stringify(passkey.transports),
      device_type: passkey.deviceType,
      backed_up: passkey.backedUp ? 1 : 0,
      aaguid: passkey.aaguid,
      user_handle: passkey.userHandle,
      name: passkey.name,
      created_at: passkey.now,
      last_used_at: null
    }).returning(['id', 'name', 'created_at']).executeTakeFirstOrThrow()
  } catch (error) {
    if (isUniqueViolation(error)) throw new AppError(409, 'This passkey is already registered')
    throw error
  }
}

/**
 * Records a login with the passkey: its new counter, backup state and last use. The counter
 * rule once more, atomically: the stored counter must still be below the new one (or both 0),
 * so two assertions verified against the same old counter cannot both be accepted. False when
 * another request moved it first.
 */
export async function recordPasskeyUse (db: DbOrTrx, id: number, use: { counter: number, deviceType: PasskeyDeviceType, backedUp: boolean, now: string }): Promise<boolean> {
  const result = await db.updateTable('passkeys')
    .set({ counter: use.counter, device_type: use.deviceType, backed_up: use.backedUp ? 1 : 0, last_used_at: use.now })
    .where('id', '=', id)
    .where('counter', use.counter === 0 ? '=' : '<', use.counter)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

/** Removes one of the user's passkeys; its name, or undefined when the user has no such passkey. */
export async function deletePasskey (db: DbOrTrx, userId: number, id: number): Promise<string | undefined> {
  const row = await db.deleteFrom('passkeys').where('id', '=', id).where('user_id', '=', userId).returning('name').executeTakeFirst()
  return row?.name
}

export async function deletePasskeys (db: DbOrTrx, userId: number): Promise<number> {
  const result = await db.deleteFrom('passkeys').where('user_id', '=', userId).executeTakeFirst()
  return Number(result.numDeletedRows)
}

export interface NewChallenge {
  challengeHash: string
  ceremony: WebauthnCeremony
  userId: number | null
  sessionId: string | null
  userHandle: string | null
  now: string
  expiresAt: string
}

/**
 * Stores a ceremony's challenge. Expired challenges go first (anyone may start a login, so the
 * table holds at most a few minutes of them), and a session's new registration replaces its
 * pending one.
 */
export async function insertWebauthnChallenge (db: DbOrTrx, challenge: NewChallenge): Promise<void> {
  await db.deleteFrom('webauthn_challenges').where('expires_at', '<=', challenge.now).execute()
  if (challenge.sessionId !== null) await db.deleteFrom('webauthn_challenges').where('session_id', '=', challenge.sessionId).execute()
  await db.insertInto('webauthn_challenges').values({
    challenge_hash: challenge.challengeHash,
    ceremony: challenge.ceremony,
    user_id: challenge.userId,
    session_id: challenge.sessionId,
    user_handle: challenge.userHandle,
    created_at: challenge.now,
    expires_at: challenge.expiresAt
  }).execute()
}

/**
 * Uses a challenge up, whatever comes next: the row is deleted and returned (undefined when
 * no such challenge exists, or another request took it). The caller checks its ceremony,
 * owner and expiry: a challenge presented to the wrong ceremony is spent and refused.
 */
export function takeWebauthnChallenge (db: DbOrTrx, challengeHash: string) {
  return db.deleteFrom('webauthn_challenges')
    .where('challenge_hash', '=', challengeHash)
    .returning(['ceremony', 'user_id', 'session_id', 'user_handle', 'expires_at'])
    .executeTakeFirst()
}

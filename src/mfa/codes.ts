import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import { recordAuditEvent } from '../audit/audit.queries.js'
import type { Database } from '../db/database.js'
import { AppError } from '../errors.js'
import { consumeRecoveryCode, consumeTotpStep, findTotp } from './mfa.queries.js'
import { hashRecoveryCode, normalizeRecoveryCode } from './recovery-codes.js'
import { open, seal, totpSecretContext, type MfaKeyring } from './secret-box.js'
import { matchTotpStep, normalizeTotpCode } from './totp.js'

// Checking a second-factor code of an account: spend it (at most once, atomically), under the
// account's MFA lockout (MFA_LOCKOUT_THRESHOLD wrong codes in a row, TOTP and recovery codes
// together, lock MFA for MFA_LOCKOUT_DURATION; shared through Redis like the login lockout).

export type CodeInput = { method: 'totp', code: string } | { method: 'recovery_code', code: string }

export const TOTP_FORMAT = 'must be the 6 digits your authenticator app shows'
export const RECOVERY_FORMAT = 'must be one of your recovery codes (16 letters and digits, such as 7k2m-9qxp-4hdw-r3tz)'

export function totpInput (raw: string, field = 'code'): CodeInput {
  const code = normalizeTotpCode(raw)
  if (code === undefined) throw new AppError(400, `${field}: ${TOTP_FORMAT}`)
  return { method: 'totp', code }
}

export function recoveryInput (raw: string, field = 'recovery_code'): CodeInput {
  const code = normalizeRecoveryCode(raw)
  if (code === undefined) throw new AppError(400, `${field}: ${RECOVERY_FORMAT}`)
  return { method: 'recovery_code', code }
}

/** A field that takes either: six digits are a TOTP code, anything else must be a recovery code. */
export function anyCodeInput (raw: string, field = 'code'): CodeInput {
  if (normalizeTotpCode(raw) !== undefined) return totpInput(raw, field)
  if (normalizeRecoveryCode(raw) !== undefined) return recoveryInput(raw, field)
  throw new AppError(400, `${field}: must be a 6-digit code from your authenticator app or one of your recovery codes`)
}

/**
 * Spends a code of the account in the caller's transaction: a TOTP code of a later time step
 * than the last one accepted (never the same code twice, whichever request or login used it),
 * or an unused recovery code. The method on success, undefined for a wrong or used code. A
 * secret encrypted under an older key is encrypted again under the current one as it is used.
 */
export async function spendCode (keyring: MfaKeyring, db: Kysely<Database>, userId: number, input: CodeInput, nowMs: number): Promise<CodeInput['method'] | undefined> {
  if (input.method === 'recovery_code') {
    return await consumeRecoveryCode(db, userId, hashRecoveryCode(userId, input.code), new Date(nowMs).toISOString()) ? 'recovery_code' : undefined
  }
  const row = await findTotp(db, userId)
  if (row === undefined || row.confirmed_at === null) return undefined
  const context = totpSecretContext(userId)
  const secret = open(keyring, { ciphertext: row.secret, keyId: row.key_id }, context)
  const step = matchTotpStep(secret, input.code, nowMs, Number(row.last_step))
  if (step === undefined) return undefined
  const reseal = row.key_id === keyring.currentId ? undefined : seal(keyring, secret, context)
  return await consumeTotpStep(db, userId, step, reseal) ? 'totp' : undefined
}

const mfaAccount = (userId: number) => `mfa:user:${userId}`

/**
 * Runs one code check under the account's MFA lockout: refused with 429 while it is locked; a
 * wrong code (check returns undefined) counts towards the lock and is audited; a right one
 * clears the count; an error gives the attempt back. `context` names the route for the audit log.
 */
export async function guardCodeCheck<T> (app: FastifyInstance, request: FastifyRequest, userId: number, context: string, check: () => Promise<T | undefined>): Promise<T | undefined> {
  const account = mfaAccount(userId)
  const wait = await app.mfaLockout.begin(account)
  if (wait > 0) {
    app.metrics.mfaCodeChecks.inc({ outcome: 'locked' })
    throw new AppError(429, `Too many wrong codes for this account; try again in ${wait} seconds`, { 'retry-after': String(wait) })
  }
  let result: T | undefined
  try {
    result = await check()
  } catch (error) {
    await app.mfaLockout.release(account)
    throw error
  }
  if (result !== undefined) {
    await app.mfaLockout.success(account)
    app.metrics.mfaCodeChecks.inc({ outcome: 'success' })
    return result
  }
  const failure = await app.mfaLockout.failure(account)
  app.metrics.mfaCodeChecks.inc({ outcome: 'failure' })
  const now = new Date(app.now()).toISOString()
  await recordAuditEvent(app.db.kysely, request, { type: 'mfa_code', outcome: 'failure', userId, detail: { context } }, now)
  if (failure.locked) {
    await recordAuditEvent(app.db.kysely, request, { type: 'mfa_lockout', outcome: 'success', userId, detail: { until: new Date(failure.lockedUntil).toISOString() } }, now)
    request.log.warn({ userId }, 'MFA locked for the account after repeated wrong codes')
  }
  return undefined
}

/** An admin's reset starts the account's count afresh. */
export async function clearCodeLockout (app: FastifyInstance, userId: number): Promise<void> {
  await app.mfaLockout.success(mfaAccount(userId))
}

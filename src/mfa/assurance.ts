import type { Aal } from '../db/database.js'
import { AppError } from '../errors.js'

// Assurance levels (NIST SP 800-63B): aal1 is one factor (a password), aal2 two (a password and
// a TOTP or recovery code, or a passkey with user verification). The level belongs to the
// session row: a login sets it, confirming TOTP raises it, removing a factor lowers it, and the
// access token carries the value the row had when the token was issued. The server itself
// always decides from the row (read by the per-request session check), never from the token.

export type { Aal }

/** How a session was authenticated, one entry per factor, as the access token's `amr` claim carries it. */
export interface AmrEntry {
  /**
   * pwd (a password, RFC 8176's name), totp, recovery_code; webauthn for passkeys. RFC 8176 has
   * no name that tells a TOTP code from a recovery code ("otp" is both), so those two are named
   * as POST /users/login's methods name them.
   */
  method: 'pwd' | 'totp' | 'recovery_code' | 'webauthn'
  /** When that factor was checked, seconds since the epoch. */
  timestamp: number
}

/** What a session is started with: its level and the factors that got it there. */
export interface Assurance {
  aal: Aal
  amr: AmrEntry[]
  /** The passkey among those factors (passkeys.id): removing it ends the session. Not in the token. */
  passkeyId?: number
}

export const amrEntry = (method: AmrEntry['method'], atMs: number): AmrEntry => ({ method, timestamp: Math.floor(atMs / 1000) })

/** The amr column's JSON, read back; a damaged value reads as no entries rather than failing a refresh. */
export function parseAmr (text: string): AmrEntry[] {
  try {
    const value: unknown = JSON.parse(text)
    return Array.isArray(value) ? value as AmrEntry[] : []
  } catch {
    return []
  }
}

export const secondFactorRequired = () => new AppError(403, 'This action needs a second factor')

/**
 * THE check for actions that need a second factor when the account has one: password and
 * email changes, account deletion, adding or removing factors (passkeys too), new recovery
 * codes, an admin's MFA reset. Call it in the handler of every such route (new ones included)
 * with the caller as authentication loaded it: it reads only columns the per-request session
 * check already selected, so it costs no query. Accounts without a second factor pass: their
 * behaviour (the FastAPI app's contract) does not change.
 */
export function assertSecondFactor (caller: { mfa_enabled: number, aal: Aal }): void {
  if (caller.mfa_enabled !== 0 && caller.aal !== 'aal2') throw secondFactorRequired()
}

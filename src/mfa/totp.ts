import { randomBytes } from 'node:crypto'
import { base32 } from '@otplib/plugin-base32-scure'
import { crypto } from '@otplib/plugin-crypto-node'
import { verifySync } from '@otplib/totp'
import { generateTOTP } from '@otplib/uri'
import { renderSVG } from 'uqr'

// TOTP as every authenticator app expects it (RFC 6238): HMAC-SHA-1, 6 digits, 30-second steps
// counted from the Unix epoch. otplib does the maths (HMAC through node:crypto, constant-time
// comparison) and tells which time step a code matched; we keep the last accepted step per
// account so that a code never works twice (see consumeTotpStep).

export const TOTP_PERIOD_SECONDS = 30
export const TOTP_SECRET_BYTES = 20
/** One step either side of the current one: a code typed just before the display changed, or a phone a little ahead. */
const TOLERANCE_SECONDS = TOTP_PERIOD_SECONDS

export function newTotpSecret (): Buffer {
  return randomBytes(TOTP_SECRET_BYTES)
}

export function toBase32 (secret: Uint8Array): string {
  return base32.encode(secret)
}

/**
 * The otpauth:// URI authenticator apps read (Key Uri Format): issuer, account label, secret.
 * SHA1, 6 digits and 30 s are the format's defaults, which the URI leaves out.
 */
export function otpauthUrl (secret: Uint8Array, issuer: string, accountName: string): string {
  return generateTOTP({ issuer, label: accountName, secret: toBase32(secret), algorithm: 'sha1', digits: 6, period: TOTP_PERIOD_SECONDS })
}

/** The URI as a QR code, SVG text (no browser, no canvas): shown for the phone to scan. */
export function qrSvg (text: string): string {
  return renderSVG(text, { ecc: 'M', border: 2 })
}

/** The time step of a moment (ms since the epoch). */
export function timeStep (nowMs: number): number {
  return Math.floor(nowMs / 1000 / TOTP_PERIOD_SECONDS)
}

/** "123 456", "123-456" -> "123456"; undefined unless six digits remain. */
export function normalizeTotpCode (input: string): string | undefined {
  const code = input.replace(/[\s-]/g, '')
  return /^[0-9]{6}$/.test(code) ? code : undefined
}

/**
 * The time step the code belongs to, if it is right for the current step or the one before or
 * after, and later than `afterStep` (the last step accepted for this secret); else undefined.
 * Only a candidate: the caller must still advance the stored step atomically.
 */
export function matchTotpStep (secret: Uint8Array, code: string, nowMs: number, afterStep: number): number | undefined {
  const epoch = Math.floor(nowMs / 1000)
  // otplib refuses an afterTimeStep beyond the window (the clock went back): nothing can match then.
  if (afterStep >= timeStep(nowMs) + 1) return undefined
  const result = verifySync({
    secret,
    token: code,
    crypto,
    epoch,
    epochTolerance: TOLERANCE_SECONDS,
    afterTimeStep: afterStep > 0 ? afterStep : undefined
  })
  return result.valid ? result.timeStep : undefined
}

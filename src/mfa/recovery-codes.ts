import { createHash, randomInt } from 'node:crypto'

// Recovery codes: 10 per account, each 16 characters of Crockford's base32 (80 bits), shown as
// four groups of four ("7k2m-9qxp-4hdw-r3tz"). Stored as SHA-256 of the user id and the
// normalised code: a fast hash is enough for 80 random bits (2^79 guesses on average for one
// code, per account), which no offline search of a stolen database can do. Typed input is
// normalised: case, spaces and dashes do not matter, and o/i/l read as 0/1/1.

export const RECOVERY_CODE_COUNT = 10
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'
const LENGTH = 16
const GROUP = 4

/** A fresh code, grouped for reading. */
export function newRecoveryCode (): string {
  let code = ''
  for (let i = 0; i < LENGTH; i++) {
    if (i > 0 && i % GROUP === 0) code += '-'
    code += ALPHABET[randomInt(ALPHABET.length)]
  }
  return code
}

export function newRecoveryCodes (): string[] {
  return Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode)
}

/** What a typed code is compared as; undefined when it cannot be a code at all. */
export function normalizeRecoveryCode (input: string): string | undefined {
  const code = input.toLowerCase().replace(/[\s-]/g, '').replace(/o/g, '0').replace(/[il]/g, '1')
  if (code.length !== LENGTH || [...code].some((char) => !ALPHABET.includes(char))) return undefined
  return code
}

export function hashRecoveryCode (userId: number, normalized: string): string {
  return createHash('sha256').update(`uma-recovery-code\0${userId}\0${normalized}`).digest('base64url')
}

/** Ten new codes: their hashes for the table, the codes themselves for the one response that shows them. */
export function freshRecoveryCodes (userId: number): { codes: string[], hashes: string[] } {
  const codes = newRecoveryCodes()
  return { codes, hashes: codes.map((code) => hashRecoveryCode(userId, normalizeRecoveryCode(code)!)) }
}

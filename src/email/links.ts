import { createHash, createHmac, randomBytes } from 'node:crypto'

// The token in an emailed link is never stored. The request that creates it keeps a random seed
// in the outbox row and the token's SHA-256 in account_tokens; the worker derives the token again
// from the seed with the server's key when it sends the email, then erases the seed. A copy of
// the database alone (without the key) yields no usable link, and none at all once sent.

/** The link key, derived from the signing secret so one secret still configures everything. */
export function linkKey (secret: string): Buffer {
  return createHmac('sha256', secret).update('email-link-tokens').digest()
}

/** 32 random bytes, base64url. */
export function newLinkSeed (): string {
  return randomBytes(32).toString('base64url')
}

/** The link's token: 32 bytes, base64url (43 characters). */
export function linkToken (key: Buffer, seed: string): string {
  return createHmac('sha256', key).update(seed).digest('base64url')
}

export function hashLinkToken (token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}

/** A link template's {token} filled in. */
export function fillLink (template: string, token: string): string {
  return template.replace('{token}', encodeURIComponent(token))
}

import { createHash, createHmac, randomBytes } from 'node:crypto'

// Refresh tokens are 256-bit values stored only as SHA-256 hashes (they are random, so a slow
// hash adds nothing). The token issued on rotation is HMAC(key, previous token): a client that
// retries a refresh within the grace window can be handed exactly the pair it was already
// issued, without the server ever storing a usable token.

export function newRefreshToken (): string {
  return randomBytes(32).toString('base64url')
}

export function hashRefreshToken (token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}

/** The rotation key, derived from the signing secret so one secret still configures everything. */
export function rotationKey (secret: string): Buffer {
  return createHmac('sha256', secret).update('refresh-token-rotation').digest()
}

export function nextRefreshToken (key: Buffer, token: string): string {
  return createHmac('sha256', key).update(token).digest('base64url')
}

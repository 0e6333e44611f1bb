import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'

// TOTP secrets at rest: AES-256-GCM under the MFA key (MFA_ENCRYPTION_KEY), a fresh 96-bit IV
// for each encryption, and associated data naming what the plaintext is and whose it is, so a
// ciphertext copied onto another account's row (or into another purpose) fails to decrypt.
// Each ciphertext is stored with the id of the key that made it: after a rotation the old key
// (MFA_PREVIOUS_ENCRYPTION_KEYS) still opens what it encrypted, and the secret is encrypted
// again under the current key at its next use (or by `npm run cli -- rotate-mfa-key`).

const IV_BYTES = 12
const TAG_BYTES = 16

export interface MfaKeyring {
  /** The id of the key new ciphertexts are made with. */
  currentId: string
  /** Every key that may decrypt, by id (the current one among them). */
  keys: ReadonlyMap<string, Buffer>
}

export interface Sealed {
  /** base64url of IV, ciphertext and tag. */
  ciphertext: string
  keyId: string
}

/** A key's public name, stored beside what it encrypted. A truncated hash: it says nothing about the key. */
export function mfaKeyId (key: Buffer): string {
  return createHash('sha256').update('uma-mfa-key-id\0').update(key).digest('base64url').slice(0, 12)
}

export function createKeyring (current: Buffer, previous: Buffer[] = []): MfaKeyring {
  const keys = new Map<string, Buffer>()
  for (const key of [current, ...previous]) keys.set(mfaKeyId(key), key)
  return { currentId: mfaKeyId(current), keys }
}

/** Thrown when a ciphertext's key is not configured or the ciphertext does not authenticate. */
export class SecretBoxError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'SecretBoxError'
  }
}

/** The associated data of a user's TOTP secret. */
export const totpSecretContext = (userId: number) => `uma:mfa-totp:user:${userId}`

export function seal (keyring: MfaKeyring, plaintext: Buffer, context: string): Sealed {
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', keyring.keys.get(keyring.currentId)!, iv, { authTagLength: TAG_BYTES })
  cipher.setAAD(Buffer.from(context, 'utf8'))
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return { ciphertext: Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url'), keyId: keyring.currentId }
}

export function open (keyring: MfaKeyring, sealed: Sealed, context: string): Buffer {
  const key = keyring.keys.get(sealed.keyId)
  if (key === undefined) {
    throw new SecretBoxError(`MFA secret encrypted under key id ${sealed.keyId}, which is not configured (MFA_ENCRYPTION_KEY / MFA_PREVIOUS_ENCRYPTION_KEYS)`)
  }
  const raw = Buffer.from(sealed.ciphertext, 'base64url')
  if (raw.length < IV_BYTES + TAG_BYTES) throw new SecretBoxError('MFA secret ciphertext is truncated')
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES })
    decipher.setAAD(Buffer.from(context, 'utf8'))
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES))
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()])
  } catch {
    throw new SecretBoxError(`MFA secret under key id ${sealed.keyId} does not authenticate (wrong key, or the row was altered or moved)`)
  }
}

import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'

// A software authenticator for the API tests: it makes the registration and login responses a
// browser would send, from the options the server gave, with WebAuthn's formats written here
// from the specification (W3C WebAuthn Level 3: authenticator data, "none" attestation, COSE
// keys, CBOR), independently of the library the server uses. Every field a test may want to
// falsify (origin, RP ID, flags, counter, user handle, ceremony type, algorithm) is an option.
// The browser suite uses Chromium's own virtual authenticator instead.

const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url')
const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest()

/** Minimal CBOR (RFC 8949): unsigned and negative integers, byte and text strings, arrays, maps. */
export function cbor (value: unknown): Buffer {
  const head = (major: number, length: number): Buffer => {
    if (length < 24) return Buffer.from([(major << 5) | length])
    if (length < 0x100) return Buffer.from([(major << 5) | 24, length])
    if (length < 0x10000) return Buffer.from([(major << 5) | 25, length >> 8, length & 0xff])
    const out = Buffer.alloc(5)
    out[0] = (major << 5) | 26
    out.writeUInt32BE(length, 1)
    return out
  }
  if (typeof value === 'number') return value >= 0 ? head(0, value) : head(1, -1 - value)
  if (value instanceof Uint8Array) return Buffer.concat([head(2, value.length), value])
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8')
    return Buffer.concat([head(3, bytes.length), bytes])
  }
  if (Array.isArray(value)) return Buffer.concat([head(4, value.length), ...value.map(cbor)])
  if (value instanceof Map) return Buffer.concat([head(5, value.size), ...[...value].flatMap(([key, item]) => [cbor(key), cbor(item)])])
  throw new Error(`cbor: cannot encode ${typeof value}`)
}

/**
 * COSE algorithm ids: the three the server takes; ES384, which it must refuse; ML-DSA-44 (-48),
 * which a newer Node could verify and Node 20 cannot (a registration only: this authenticator
 * has no ML-DSA to sign with, and a "none" attestation needs no signature).
 */
export type Algorithm = -8 | -7 | -257 | -35 | -48

function newKey (alg: Algorithm): { privateKey: KeyObject, cose: Map<number, number | Buffer> } {
  if (alg === -48) {
    return { privateKey: generateKeyPairSync('ed25519').privateKey, cose: new Map<number, number | Buffer>([[1, 7], [3, -48], [-1, randomBytes(1312)]]) }
  }
  if (alg === -8) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    const jwk = publicKey.export({ format: 'jwk' })
    return { privateKey, cose: new Map<number, number | Buffer>([[1, 1], [3, -8], [-1, 6], [-2, Buffer.from(jwk.x!, 'base64url')]]) }
  }
  if (alg === -257) {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const jwk = publicKey.export({ format: 'jwk' })
    return { privateKey, cose: new Map<number, number | Buffer>([[1, 3], [3, -257], [-1, Buffer.from(jwk.n!, 'base64url')], [-2, Buffer.from(jwk.e!, 'base64url')]]) }
  }
  const curve = alg === -7 ? 'P-256' : 'P-384'
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve })
  const jwk = publicKey.export({ format: 'jwk' })
  return {
    privateKey,
    cose: new Map<number, number | Buffer>([[1, 2], [3, alg], [-1, alg === -7 ? 1 : 2], [-2, Buffer.from(jwk.x!, 'base64url')], [-3, Buffer.from(jwk.y!, 'base64url')]])
  }
}

function signWith (alg: Algorithm, privateKey: KeyObject, data: Buffer): Buffer {
  if (alg === -8) return sign(null, data, privateKey)
  return sign(alg === -35 ? 'sha384' : 'sha256', data, privateKey)
}

export interface Credential {
  id: string
  userHandle: string
  alg: Algorithm
  privateKey: KeyObject
  counter: number
}

interface CeremonyOverrides {
  origin?: string
  rpId?: string
  /** clientDataJSON's type: webauthn.create / webauthn.get unless set. */
  type?: string
  userVerified?: boolean
  userPresent?: boolean
  /** Signs a challenge other than the options'. */
  challenge?: string
}

export interface AuthenticatorOptions {
  rpId: string
  origin: string
  /** Synced passkeys keep no signature counter: it stays 0. */
  synced?: boolean
  aaguid?: Buffer
}

export class SoftAuthenticator {
  readonly credentials: Credential[] = []
  readonly aaguid: Buffer

  constructor (readonly options: AuthenticatorOptions) {
    this.aaguid = options.aaguid ?? randomBytes(16)
  }

  private clientData (type: string, challenge: string, origin: string): string {
    return b64url(Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false })))
  }

  private flags (overrides: CeremonyOverrides, attested: boolean): number {
    let flags = 0
    if (overrides.userPresent !== false) flags |= 0x01
    if (overrides.userVerified !== false) flags |= 0x04
    if (this.options.synced) flags |= 0x08 | 0x10
    if (attested) flags |= 0x40
    return flags
  }

  private counterBytes (counter: number): Buffer {
    const out = Buffer.alloc(4)
    out.writeUInt32BE(counter)
    return out
  }

  /** navigator.credentials.create() with the server's options: a new credential and RegistrationResponseJSON. */
  register (optionsJSON: any, overrides: CeremonyOverrides & { alg?: Algorithm, credentialId?: string } = {}): { response: any, credential: Credential } {
    const alg = overrides.alg ?? -7
    const { privateKey, cose } = newKey(alg)
    const idBytes = overrides.credentialId !== undefined ? Buffer.from(overrides.credentialId, 'base64url') : randomBytes(32)
    const credential: Credential = { id: b64url(idBytes), userHandle: optionsJSON.user.id, alg, privateKey, counter: 0 }
    const idLength = Buffer.alloc(2)
    idLength.writeUInt16BE(idBytes.length)
    const authData = Buffer.concat([
      sha256(overrides.rpId ?? this.options.rpId),
      Buffer.from([this.flags(overrides, true)]),
      this.counterBytes(0),
      this.aaguid, idLength, idBytes, cbor(cose)
    ])
    const attestationObject = cbor(new Map<string, unknown>([['fmt', 'none'], ['attStmt', new Map()], ['authData', authData]]))
    this.credentials.push(credential)
    return {
      credential,
      response: {
        id: credential.id,
        rawId: credential.id,
        type: 'public-key',
        response: {
          clientDataJSON: this.clientData(overrides.type ?? 'webauthn.create', overrides.challenge ?? optionsJSON.challenge, overrides.origin ?? this.options.origin),
          attestationObject: b64url(attestationObject),
          transports: ['internal', 'hybrid']
        },
        authenticatorAttachment: 'platform',
        clientExtensionResults: { credProps: { rk: true } }
      }
    }
  }

  /**
   * navigator.credentials.get() with the server's options: an assertion by `credential` (the
   * last one made by default). The counter goes up by one per assertion unless the passkey is
   * synced (always 0) or `counter` sets it.
   */
  authenticate (optionsJSON: any, overrides: CeremonyOverrides & { credential?: Credential, counter?: number, userHandle?: string | null } = {}): any {
    const credential = overrides.credential ?? this.credentials.at(-1)
    if (credential === undefined) throw new Error('no credential: register first')
    const counter = overrides.counter ?? (this.options.synced ? 0 : credential.counter + 1)
    credential.counter = counter
    const authData = Buffer.concat([sha256(overrides.rpId ?? this.options.rpId), Buffer.from([this.flags(overrides, false)]), this.counterBytes(counter)])
    const clientDataJSON = this.clientData(overrides.type ?? 'webauthn.get', overrides.challenge ?? optionsJSON.challenge, overrides.origin ?? this.options.origin)
    const signature = signWith(credential.alg, credential.privateKey, Buffer.concat([authData, sha256(Buffer.from(clientDataJSON, 'base64url'))]))
    const userHandle = overrides.userHandle === undefined ? credential.userHandle : overrides.userHandle
    return {
      id: credential.id,
      rawId: credential.id,
      type: 'public-key',
      response: {
        clientDataJSON,
        authenticatorData: b64url(authData),
        signature: b64url(signature),
        ...(userHandle !== null && { userHandle })
      },
      authenticatorAttachment: 'platform',
      clientExtensionResults: {}
    }
  }
}

import { createHash, randomBytes } from 'node:crypto'
import type {
  AuthenticationResponseJSON, AuthenticatorTransport, PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON, RegistrationResponseJSON
} from '@simplewebauthn/server'
import type { WebauthnConfig } from '../config.js'
import type { PasskeyDeviceType } from '../db/database.js'
import { AppError } from '../errors.js'

// The WebAuthn ceremonies, done by @simplewebauthn/server with our rules fixed in one place:
// the relying party from configuration only (never a request's Host or Origin), user
// verification required in both ceremonies, discoverable credentials (a login names no user),
// and the signature algorithms pinned. The library offers ML-DSA-44 first on a Node that has
// it: a passkey made on such a server would fail to verify on an older Node sharing the
// database, so the list is fixed to what every maintained Node verifies.

/** EdDSA (Ed25519), ES256 (P-256), RS256: COSE algorithm ids, in order of preference. */
export const PASSKEY_ALGORITHMS = [-8, -7, -257]
/** How long a ceremony's challenge (and the browser's prompt) lasts. */
export const CEREMONY_TTL_MS = 5 * 60_000

// The library and its ASN.1/X.509 dependencies add about 7 MB of RSS and a second of start-up:
// loaded on the first passkey request, so a service whose users have none never carries them.
type Library = typeof import('@simplewebauthn/server')
let library: Promise<Library> | undefined
const load = (): Promise<Library> => (library ??= import('@simplewebauthn/server'))

/** A new WebAuthn user handle: random, no personal data (the spec's advice), base64url. */
export const newUserHandle = (): string => randomBytes(32).toString('base64url')

/** What a challenge is stored as: its SHA-256 (the challenge itself goes to the browser). */
export const hashChallenge = (challenge: string): string => createHash('sha256').update(challenge).digest('base64url')

/** The challenge a ceremony's response signed, read from its clientDataJSON; a 400 when there is none. */
export function challengeOf (response: { response: { clientDataJSON: string } }): string {
  try {
    const clientData: unknown = JSON.parse(Buffer.from(response.response.clientDataJSON, 'base64url').toString('utf8'))
    const challenge = (clientData as { challenge?: unknown }).challenge
    if (typeof challenge === 'string' && /^[A-Za-z0-9_-]{16,128}$/.test(challenge)) return challenge
  } catch {
    // Not base64url JSON: the same answer as JSON without a challenge.
  }
  throw new AppError(400, 'response.response.clientDataJSON: must be the base64url JSON the browser made, with the challenge it signed')
}

export interface RegistrationInput {
  /** base64url of the WebAuthn user.id. */
  userHandle: string
  /** Shown by the browser and the authenticator to pick the account: the email. */
  userName: string
  userDisplayName: string
  /** The user's passkeys: an authenticator that holds one of them refuses to make another. */
  exclude: Array<{ credentialId: string, transports: string[] }>
}

/** The options always name the RP ID (the library's types allow leaving it out). */
type WithRpId<T> = T & { rp: { name: string, id: string } }

export async function registrationOptions (rp: WebauthnConfig, input: RegistrationInput): Promise<WithRpId<PublicKeyCredentialCreationOptionsJSON>> {
  const { generateRegistrationOptions } = await load()
  const options = await generateRegistrationOptions({
    rpName: rp.rpName,
    rpID: rp.rpId,
    userID: Buffer.from(input.userHandle, 'base64url'),
    userName: input.userName,
    userDisplayName: input.userDisplayName,
    timeout: CEREMONY_TTL_MS,
    attestationType: 'none',
    excludeCredentials: input.exclude.map((passkey) => ({ id: passkey.credentialId, transports: passkey.transports as AuthenticatorTransport[] })),
    // Discoverable (the login asks for no username) and verified (a PIN or biometric on the device).
    authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
    supportedAlgorithmIDs: PASSKEY_ALGORITHMS
  })
  return { ...options, rp: { name: rp.rpName, id: rp.rpId } }
}

export interface VerifiedCredential {
  credentialId: string
  /** COSE public key, base64url. */
  publicKey: string
  counter: number
  transports: string[]
  deviceType: PasskeyDeviceType
  backedUp: boolean
  aaguid: string
}

/** Checks a registration response against the challenge the server issued; a 400 saying why when it fails. */
export async function verifyRegistration (rp: WebauthnConfig, response: RegistrationResponseJSON, challenge: string): Promise<VerifiedCredential> {
  const { verifyRegistrationResponse } = await load()
  let result: Awaited<ReturnType<typeof verifyRegistrationResponse>>
  try {
    result = await verifyRegistrationResponse({
      response,
      expectedChallenge: challenge,
      expectedOrigin: rp.origins,
      expectedRPID: rp.rpId,
      requireUserPresence: true,
      requireUserVerification: true,
      supportedAlgorithmIDs: PASSKEY_ALGORITHMS
    })
  } catch (error) {
    throw new AppError(400, `The passkey could not be registered: ${reason(error)}`)
  }
  if (!result.verified) throw new AppError(400, 'The passkey could not be registered: its response did not verify')
  const { credential, credentialDeviceType, credentialBackedUp, aaguid } = result.registrationInfo
  // The library stores what the authenticator attested; the id the client claims must be that one.
  if (credential.id !== response.id) throw new AppError(400, 'The passkey could not be registered: the response\'s id is not the credential it attests')
  return {
    credentialId: credential.id,
    publicKey: Buffer.from(credential.publicKey).toString('base64url'),
    counter: credential.counter,
    transports: credential.transports ?? [],
    deviceType: credentialDeviceType,
    backedUp: credentialBackedUp,
    aaguid
  }
}

export async function authenticationOptions (rp: WebauthnConfig): Promise<PublicKeyCredentialRequestOptionsJSON & { rpId: string }> {
  const { generateAuthenticationOptions } = await load()
  // No allowCredentials: the browser offers every passkey it holds for this RP ID.
  const options = await generateAuthenticationOptions({ rpID: rp.rpId, userVerification: 'required', timeout: CEREMONY_TTL_MS })
  return { ...options, rpId: rp.rpId }
}

export interface StoredCredential {
  credential_id: string
  public_key: string
  counter: number
  transports: string
}

export interface VerifiedAssertion {
  newCounter: number
  deviceType: PasskeyDeviceType
  backedUp: boolean
}

/**
 * Checks a login's assertion against the challenge and the stored credential: origin, RP ID,
 * signature, user presence and verification, and the library's counter rule (a counter that
 * does not grow is refused, unless it is 0 on both sides: synced passkeys keep no counter).
 * Throws the library's reason; the caller decides the answer.
 */
export async function verifyAssertion (rp: WebauthnConfig, response: AuthenticationResponseJSON, challenge: string, stored: StoredCredential): Promise<VerifiedAssertion> {
  const { verifyAuthenticationResponse } = await load()
  const result = await verifyAuthenticationResponse({
    response,
    expectedChallenge: challenge,
    expectedOrigin: rp.origins,
    expectedRPID: rp.rpId,
    credential: {
      id: stored.credential_id,
      publicKey: new Uint8Array(Buffer.from(stored.public_key, 'base64url')),
      counter: Number(stored.counter),
      transports: JSON.parse(stored.transports) as AuthenticatorTransport[]
    },
    requireUserVerification: true
  })
  if (!result.verified) throw new Error('the signature did not verify')
  const info = result.authenticationInfo
  return { newCounter: info.newCounter, deviceType: info.credentialDeviceType, backedUp: info.credentialBackedUp }
}

/** The library's message, for the client: it names what did not match (origin, RP ID, flags), never a secret. */
export function reason (error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  return message.length > 300 ? `${message.slice(0, 300)}...` : message
}

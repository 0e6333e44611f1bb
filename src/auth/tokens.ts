import { createSigner, createVerifier } from 'fast-jwt'
import { LRUMap } from 'mnemonist'
import type { Assurance } from '../mfa/assurance.js'
import { errors } from '../errors.js'

export interface AccessClaims {
  sub: string
  sid: string
  iat: number
  exp: number
  iss: string
  aud: string
  /** The session's assurance level and factors when the token was issued (absent in tokens from before MFA). */
  aal?: Assurance['aal']
  amr?: Assurance['amr']
}

export interface TokenOptions {
  secret: string
  issuer: string
  audience: string
  /** Access token lifetime, seconds. */
  ttl: number
  now: () => number
}

export interface Tokens {
  /**
   * Signs an access token for the user's session. Deterministic for a given issue time, which
   * lets a refresh retried within the grace window get back exactly the token it was issued.
   * `assurance` is the session row's aal and amr, for clients and other services to read; this
   * server decides from the row itself.
   */
  sign: (userId: number, sessionId: string, issuedAtMs?: number, assurance?: Assurance) => string
  /** Verifies signature (HS256 only), issuer, audience and expiry; throws a 401 AppError otherwise. */
  verify: (token: string) => { userId: number, sessionId: string, claims: AccessClaims }
}

/** Distinct access tokens whose verification is remembered: the active sessions of a busy instance (~1 KB each). */
const VERIFIED_TOKEN_CACHE_SIZE = 10_000

/** HS256 access tokens with the algorithm pinned: alg "none" or any other algorithm is refused. */
export function createTokens (options: TokenOptions): Tokens {
  const signer = createSigner({
    key: options.secret,
    algorithm: 'HS256',
    iss: options.issuer,
    aud: options.audience,
    expiresIn: options.ttl * 1000
  })
  const verifier = createVerifier({
    key: options.secret,
    algorithms: ['HS256'],
    allowedIss: options.issuer,
    allowedAud: options.audience,
    requiredClaims: ['sub', 'sid', 'iat', 'exp', 'iss', 'aud'],
    // Expiry is checked below against the app's clock, which tests can move.
    ignoreExpiration: true,
    cache: false
  })
  // Tokens verified before are remembered (a bounded LRU keyed by the whole token, so no two
  // tokens share an entry): a hit skips the decoding, JSON parsing and HMAC of a token already
  // verified, ~13% of an authenticated GET's CPU. It cannot weaken anything: only verified tokens
  // enter, revocation is the per-request session check's, and expiry is checked on every request.
  // (fast-jwt's own cache keys by a SHA-256 of the token, which cost as much again as it saved.)
  const verified = new LRUMap<string, AccessClaims>(VERIFIED_TOKEN_CACHE_SIZE)

  return {
    sign: (userId, sessionId, issuedAtMs = options.now(), assurance) =>
      signer({ sub: String(userId), sid: sessionId, iat: Math.floor(issuedAtMs / 1000), ...(assurance && { aal: assurance.aal, amr: assurance.amr }) }),
    verify: (token) => {
      let claims = verified.get(token)
      if (claims === undefined) {
        try {
          claims = verifier(token) as AccessClaims
        } catch {
          throw errors.invalidToken()
        }
        verified.set(token, Object.freeze(claims))
      }
      const userId = typeof claims.sub === 'string' && /^[1-9]\d{0,15}$/.test(claims.sub) ? Number(claims.sub) : NaN
      if (!Number.isSafeInteger(userId) || typeof claims.sid !== 'string' || typeof claims.exp !== 'number' ||
          claims.exp * 1000 <= options.now()) {
        throw errors.invalidToken()
      }
      return { userId, sessionId: claims.sid, claims }
    }
  }
}

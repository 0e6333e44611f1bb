import { createSigner, createVerifier } from 'fast-jwt'
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

  return {
    sign: (userId, sessionId, issuedAtMs = options.now(), assurance) =>
      signer({ sub: String(userId), sid: sessionId, iat: Math.floor(issuedAtMs / 1000), ...(assurance && { aal: assurance.aal, amr: assurance.amr }) }),
    verify: (token) => {
      let claims: AccessClaims
      try {
        claims = verifier(token) as AccessClaims
      } catch {
        throw errors.invalidToken()
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

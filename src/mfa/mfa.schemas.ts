import { Type, type Static } from '@sinclair/typebox'
import { HTTPError } from '../users/users.schemas.js'

export const MfaMethod = Type.Union([Type.Literal('totp'), Type.Literal('recovery_code'), Type.Literal('passkey')])

/** POST /users/login's 403: "MFA required" with the challenge, or another refusal with detail alone. */
export const MfaRequired = Type.Object({
  ...HTTPError.properties,
  mfa_token: Type.Optional(Type.String({ description: 'With "MFA required": pass to POST /users/login/mfa within 5 minutes; single use' })),
  methods: Type.Optional(Type.Array(MfaMethod, { description: 'With "MFA required": the second factors this account can use', examples: [['totp', 'recovery_code']] }))
}, {
  title: 'MfaRequired',
  description: 'Right password, but the login is not complete: "MFA required" (with mfa_token and methods), or the account may not log in now (email not verified)'
})

const Code = Type.String({ minLength: 1, maxLength: 32, description: 'The 6 digits the authenticator app shows (spaces allowed)', examples: ['123456'] })
const RecoveryCodeInput = Type.String({ minLength: 1, maxLength: 64, description: 'One of the recovery codes (case, spaces and dashes do not matter)', examples: ['7k2m-9qxp-4hdw-r3tz'] })

export const MfaLoginRequest = Type.Object({
  mfa_token: Type.String({ minLength: 1, maxLength: 128 }),
  code: Type.Optional(Code),
  recovery_code: Type.Optional(RecoveryCodeInput)
}, { additionalProperties: false, title: 'MfaLoginRequest', description: 'The mfa_token and exactly one of code, recovery_code' })
export type MfaLoginRequest = Static<typeof MfaLoginRequest>

export const TotpEnrollment = Type.Object({
  secret: Type.String({ description: 'The TOTP secret, base32 (for typing into the app by hand)', examples: ['JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP'] }),
  otpauth_url: Type.String({ description: 'otpauth://totp/... for authenticator apps', examples: ['otpauth://totp/User%20Management%20API:roh%40gmail.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=User%20Management%20API'] }),
  qr_svg: Type.String({ description: 'The otpauth_url as a QR code (SVG document) to scan' }),
  expires_at: Type.String({ format: 'date-time', description: 'Confirm before then (10 minutes), or start again' })
}, { title: 'TotpEnrollment' })

export const TotpCode = Type.Object({
  code: Code
}, { additionalProperties: false, title: 'TotpCode' })

export const TotpRemoval = Type.Object({
  code: Type.String({ minLength: 1, maxLength: 64, description: 'A current code from the authenticator app, or one of the recovery codes', examples: ['123456'] })
}, { additionalProperties: false, title: 'TotpRemoval' })

export const RecoveryCodes = Type.Object({
  recovery_codes: Type.Array(Type.String(), {
    description: '10 single-use codes, shown this once: each logs in once in place of an authenticator code',
    examples: [['7k2m-9qxp-4hdw-r3tz', 'q8ve-2m4c-zd1a-66kp']]
  })
}, { title: 'RecoveryCodes' })

export const MfaStatus = Type.Object({
  totp: Type.Boolean({ description: 'TOTP is on (confirmed)' }),
  recovery_codes_left: Type.Integer({ description: 'Unused recovery codes', examples: [10] }),
  passkeys: Type.Integer({ description: 'Registered passkeys', examples: [0] })
}, { title: 'MfaStatus' })

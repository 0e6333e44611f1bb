import { Type, type Static } from '@sinclair/typebox'

// The WebAuthn JSON shapes (W3C WebAuthn Level 3, "JSON serialization"), as
// @simplewebauthn/browser's startRegistration() / startAuthentication() produce and take them.
// Request bodies name what the server reads and let the rest through (extensions differ by
// browser); option responses keep every field the library makes.

const open = { additionalProperties: true }
const Base64Url = (description: string, maxLength = 4096) => Type.String({ minLength: 1, maxLength, pattern: '^[A-Za-z0-9_-]+={0,2}$', description })

const CredentialDescriptor = Type.Object({
  id: Type.String({ description: 'A credential id, base64url' }),
  type: Type.String({ examples: ['public-key'] }),
  transports: Type.Optional(Type.Array(Type.String()))
}, open)

export const RegistrationOptions = Type.Object({
  challenge: Type.String({ description: 'base64url; valid for 5 minutes, once' }),
  rp: Type.Object({ name: Type.String(), id: Type.String({ description: 'WEBAUTHN_RP_ID' }) }, open),
  user: Type.Object({
    id: Type.String({ description: 'The account\'s WebAuthn user handle: random, base64url' }),
    name: Type.String({ description: 'The account\'s email' }),
    displayName: Type.String({ description: 'The account\'s username' })
  }, open),
  pubKeyCredParams: Type.Array(Type.Object({ alg: Type.Integer(), type: Type.String({ examples: ['public-key'] }) }, open), { description: 'EdDSA (-8), ES256 (-7), RS256 (-257)' }),
  timeout: Type.Optional(Type.Integer()),
  attestation: Type.Optional(Type.String()),
  excludeCredentials: Type.Optional(Type.Array(CredentialDescriptor, { description: 'The account\'s passkeys: an authenticator holding one makes no second' })),
  authenticatorSelection: Type.Optional(Type.Object({
    residentKey: Type.Optional(Type.String()),
    requireResidentKey: Type.Optional(Type.Boolean()),
    userVerification: Type.Optional(Type.String())
  }, open)),
  extensions: Type.Optional(Type.Object({}, open)),
  hints: Type.Optional(Type.Array(Type.String()))
}, {
  ...open,
  title: 'PasskeyRegistrationOptions',
  description: 'PublicKeyCredentialCreationOptionsJSON: pass to startRegistration({ optionsJSON }) of @simplewebauthn/browser, ' +
    'or to PublicKeyCredential.parseCreationOptionsFromJSON()'
})

export const AuthenticationOptions = Type.Object({
  challenge: Type.String({ description: 'base64url; valid for 5 minutes, once' }),
  rpId: Type.String({ description: 'WEBAUTHN_RP_ID' }),
  timeout: Type.Optional(Type.Integer()),
  userVerification: Type.Optional(Type.String({ description: 'Always "required"' })),
  allowCredentials: Type.Optional(Type.Array(CredentialDescriptor, { description: 'Empty: the browser offers the passkeys it holds for this site (no username)' })),
  extensions: Type.Optional(Type.Object({}, open)),
  hints: Type.Optional(Type.Array(Type.String()))
}, {
  ...open,
  title: 'PasskeyAuthenticationOptions',
  description: 'PublicKeyCredentialRequestOptionsJSON: pass to startAuthentication({ optionsJSON }) of @simplewebauthn/browser'
})

export const RegistrationResponse = Type.Object({
  id: Base64Url('The credential id', 1366),
  rawId: Base64Url('The same id', 1366),
  type: Type.Literal('public-key'),
  response: Type.Object({
    clientDataJSON: Base64Url('The client data the browser made (base64url JSON)'),
    attestationObject: Base64Url('The attestation object (base64url CBOR)', 8192),
    transports: Type.Optional(Type.Array(Type.String({ maxLength: 32 }), { maxItems: 10 }))
  }, open),
  authenticatorAttachment: Type.Optional(Type.String({ maxLength: 32 })),
  clientExtensionResults: Type.Optional(Type.Object({}, open))
}, { ...open, title: 'PasskeyRegistrationResponse', description: 'RegistrationResponseJSON, as startRegistration() resolves' })

export const AuthenticationResponse = Type.Object({
  id: Base64Url('The credential id', 1366),
  rawId: Base64Url('The same id', 1366),
  type: Type.Literal('public-key'),
  response: Type.Object({
    clientDataJSON: Base64Url('The client data the browser made (base64url JSON)'),
    authenticatorData: Base64Url('The authenticator data (base64url)'),
    signature: Base64Url('The signature (base64url)', 2048),
    userHandle: Type.Optional(Base64Url('The account\'s WebAuthn user handle; a passkey login needs it', 128))
  }, open),
  authenticatorAttachment: Type.Optional(Type.String({ maxLength: 32 })),
  clientExtensionResults: Type.Optional(Type.Object({}, open))
}, { ...open, title: 'PasskeyAuthenticationResponse', description: 'AuthenticationResponseJSON, as startAuthentication() resolves' })

export const PasskeyName = Type.String({
  minLength: 1,
  maxLength: 64,
  // No control characters: the name is shown in lists and emails.
  pattern: '^[^\\u0000-\\u001f\\u007f]+$',
  description: 'A name to tell your passkeys apart (1-64 characters)',
  examples: ['Work laptop']
})

export const PasskeyCreate = Type.Object({
  response: RegistrationResponse,
  name: Type.Optional(PasskeyName)
}, { additionalProperties: false, title: 'PasskeyCreate' })
export type PasskeyCreate = Static<typeof PasskeyCreate>

export const PasskeyCreated = Type.Object({
  id: Type.Integer({ examples: [3] }),
  name: Type.String({ examples: ['Work laptop'] }),
  created_at: Type.String({ format: 'date-time' }),
  recovery_codes: Type.Optional(Type.Array(Type.String(), {
    description: 'Only when this passkey is the account\'s first second factor: 10 single-use codes, shown this once, ' +
      'that complete a password login (POST /users/login/mfa) if the passkey is lost',
    examples: [['7k2m-9qxp-4hdw-r3tz', 'q8ve-2m4c-zd1a-66kp']]
  }))
}, { title: 'PasskeyCreated' })

export const PasskeyPublic = Type.Object({
  id: Type.Integer({ examples: [3] }),
  name: Type.String({ examples: ['Work laptop'] }),
  created_at: Type.String({ format: 'date-time' }),
  last_used_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'Last login with it' }),
  device_type: Type.Union([Type.Literal('singleDevice'), Type.Literal('multiDevice')], { description: 'multiDevice: a synced passkey (a password manager, iCloud Keychain, Google Password Manager)' }),
  backed_up: Type.Boolean({ description: 'The authenticator said it is backed up (synced)' }),
  transports: Type.Array(Type.String(), { examples: [['internal', 'hybrid']] }),
  aaguid: Type.String({ description: 'The authenticator model\'s AAGUID (all zeros when it does not say)' }),
  current: Type.Boolean({ description: 'This session was signed in (or raised to aal2) with it: removing it ends this session' })
}, { title: 'Passkey' })

export const PasskeyLoginRequest = Type.Object({
  response: AuthenticationResponse
}, { additionalProperties: false, title: 'PasskeyLoginRequest' })
export type PasskeyLoginRequest = Static<typeof PasskeyLoginRequest>

export const PasskeyIdParams = Type.Object({
  passkey_id: Type.Integer({ minimum: 1, description: 'The id GET /users/me/passkeys lists' })
})

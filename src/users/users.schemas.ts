import { Type, type Static } from '@sinclair/typebox'
import { EMAIL_MAX_LENGTH, USERNAME_MAX_LENGTH } from './identity.js'

// One TypeBox schema per shape: request validation, TypeScript types, response serialization
// (which is what keeps a password hash from ever leaving) and the OpenAPI document.

const Username = Type.String({ minLength: 1, maxLength: USERNAME_MAX_LENGTH, description: '1-64 characters; unique ignoring case', examples: ['rohit'] })
const Email = Type.String({ format: 'email', maxLength: EMAIL_MAX_LENGTH, description: 'Unique ignoring case', examples: ['roh@gmail.com'] })
// The length policy (PASSWORD_MIN_LENGTH..256) is checked by the route so the message can name it.
const NewPassword = Type.String({ minLength: 1, maxLength: 1024, description: 'At least 8 characters by default (PASSWORD_MIN_LENGTH), at most 256', examples: ['correct horse battery'] })

export const UserCreate = Type.Object({
  username: Username,
  email: Email,
  password: NewPassword
}, { additionalProperties: false, title: 'UserCreate' })
export type UserCreate = Static<typeof UserCreate>

export const UserUpdate = Type.Object({
  username: Type.Optional(Username),
  email: Type.Optional(Email),
  password: Type.Optional(NewPassword)
}, { additionalProperties: false, description: 'At least one field', title: 'UserUpdate' })
export type UserUpdate = Static<typeof UserUpdate>

export const UserLogin = Type.Object({
  // No format check here: an account imported with an unusual address must still be able to log in.
  email: Type.String({ minLength: 1, maxLength: 320, examples: ['roh@gmail.com'] }),
  password: Type.String({ minLength: 1, maxLength: 4096, examples: ['correct horse battery'] })
}, { additionalProperties: false, title: 'UserLogin' })
export type UserLogin = Static<typeof UserLogin>

export const UserPublic = Type.Object({
  id: Type.Integer({ examples: [1] }),
  username: Type.String({ examples: ['rohit'] }),
  email: Type.String({ examples: ['roh@gmail.com'] }),
  role: Type.Union([Type.Literal('user'), Type.Literal('admin')]),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
  email_verified: Type.Boolean({ description: 'Whether a link sent to the email was opened' }),
  pending_email: Type.Optional(Type.String({ description: 'EMAIL_VERIFICATION=required: the new email of a change, until that address confirms it' }))
}, { title: 'UserPublic' })

export const SignupResponse = Type.Object({
  message: Type.String({ examples: ['User created successfully'] }),
  user_id: Type.Integer({ examples: [1] })
}, { title: 'SignupResponse' })

export const Token = Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal('bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the access token expires', examples: [900] })
}, { title: 'Token' })

/** What a login (or a refresh) returns. */
export const TokenPair = Type.Object({
  ...Token.properties,
  refresh_token: Type.String({ description: 'Exchange at POST /users/refresh for a new pair; single use' })
}, { title: 'TokenPair' })

export const HTTPError = Type.Object({
  detail: Type.String({ examples: ['User not found'] })
}, { title: 'HTTPError' })

/** Right credentials, but the account may not log in now (the login routes' other 403s). */
export const AccountRefused = Type.Object({
  ...HTTPError.properties,
  until: Type.Optional(Type.String({ format: 'date-time', description: 'With "Account suspended": when the suspension ends by itself' }))
}, { title: 'AccountRefused', description: 'The account may not log in now: "Account suspended" (with until when it ends by itself), or "Email not verified"' })

export const UserIdParams = Type.Object({
  user_id: Type.Integer({ minimum: 1, maximum: 2147483647, description: 'The user\'s id' })
})
export type UserIdParams = Static<typeof UserIdParams>

/** Error responses for the OpenAPI document: status -> description. */
export function errorResponses (statuses: Record<number, string>): Record<number, typeof HTTPError> {
  return Object.fromEntries(Object.entries(statuses).map(([status, description]) => [status, { ...HTTPError, description }]))
}

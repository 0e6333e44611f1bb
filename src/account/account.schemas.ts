import { Type } from '@sinclair/typebox'

// Bodies of the account-lifecycle endpoints. The email of a request has no format check, as
// at login: an account imported with an unusual address must still be able to reset.

export const LinkRequest = Type.Object({
  email: Type.String({ minLength: 1, maxLength: 320, examples: ['roh@gmail.com'] })
}, { additionalProperties: false, title: 'LinkRequest' })

const LinkToken = Type.String({ minLength: 1, maxLength: 128, description: 'The token from the emailed link (after #token=)' })

export const PasswordResetConfirm = Type.Object({
  token: LinkToken,
  new_password: Type.String({ minLength: 1, maxLength: 1024, description: 'At least 8 characters by default (PASSWORD_MIN_LENGTH), at most 256', examples: ['correct horse battery staple'] })
}, { additionalProperties: false, title: 'PasswordResetConfirm' })

export const VerifyEmailConfirm = Type.Object({
  token: LinkToken
}, { additionalProperties: false, title: 'VerifyEmailConfirm' })

export const Accepted = Type.Object({
  detail: Type.String({ examples: ['If an account exists for this email, we have sent a link to reset its password'] })
}, { title: 'Accepted' })

export const Message = Type.Object({
  message: Type.String({ examples: ['Password has been reset'] })
}, { title: 'Message' })

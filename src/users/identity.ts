// Identity rules for usernames, emails and new passwords. Pure functions; the routes call them
// after the schema has checked types and lengths.
import { dictionary } from '@zxcvbn-ts/language-common'

// The ~49,000 most common passwords from breach corpora, as packaged by zxcvbn-ts.
const COMMON_PASSWORDS = new Set(dictionary['passwords-common'] as string[])

// Shorter names would forbid half the alphabet ("a" in every password); 3 is where a name
// becomes something a guesser would try.
const MIN_IDENTITY_PART = 3

// Control characters, zero-width characters and bidi overrides/isolates: invisible or
// reordering characters make two different usernames look the same.
const FORBIDDEN_IN_USERNAME = /[\p{Cc}\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF\u00AD]/u

export const USERNAME_MAX_LENGTH = 64
export const EMAIL_MAX_LENGTH = 254

/** The form uniqueness is enforced on: NFKC, then lower case. */
export function normalizeUsername (username: string): string {
  return username.normalize('NFKC').toLowerCase()
}

/** Emails are stored as given and unique case-insensitively. */
export function normalizeEmail (email: string): string {
  return email.trim().toLowerCase()
}

/** Returns why the username is not acceptable, or undefined. */
export function usernameProblem (username: string): string | undefined {
  const normalized = username.normalize('NFKC')
  if (normalized.length === 0) return 'username: must not be empty'
  if ([...normalized].length > USERNAME_MAX_LENGTH) return `username: must be at most ${USERNAME_MAX_LENGTH} characters`
  if (FORBIDDEN_IN_USERNAME.test(normalized)) return 'username: must not contain control, zero-width or bidirectional-override characters'
  if (normalized.trim() !== normalized) return 'username: must not start or end with whitespace'
  return undefined
}

export interface PasswordPolicy {
  minLength: number
  maxLength: number
}

/** Returns why a new password is not acceptable (NIST SP 800-63B: say why), or undefined. */
export function passwordProblem (password: string, policy: PasswordPolicy, identity: { username: string, email: string }): string | undefined {
  const length = [...password].length
  if (length < policy.minLength) return `password: must be at least ${policy.minLength} characters`
  if (length > policy.maxLength) return `password: must be at most ${policy.maxLength} characters`
  const lowered = password.toLowerCase()
  if (lowered === identity.username.toLowerCase() || lowered === identity.email.toLowerCase()) {
    return 'password: must not be the same as your username or email'
  }
  const username = identity.username.normalize('NFKC').toLowerCase()
  if (username.length >= MIN_IDENTITY_PART && lowered.normalize('NFKC').includes(username)) {
    return 'password: must not contain your username'
  }
  const localPart = identity.email.toLowerCase().split('@')[0] ?? ''
  if (localPart.length >= MIN_IDENTITY_PART && lowered.includes(localPart)) {
    return 'password: must not contain the part of your email before the @'
  }
  if (COMMON_PASSWORDS.has(lowered)) {
    return 'password: is one of the most commonly used passwords; choose a less guessable one'
  }
  return undefined
}

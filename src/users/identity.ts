// Identity rules for usernames, emails and new passwords. Pure functions; the routes call them
// after the schema has checked types and lengths.

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
  return undefined
}

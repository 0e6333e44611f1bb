// How dates, counts and audit events read on screen. The browser's own language and time zone;
// the exact ISO time is always one hover (title) away.

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' })
const number = new Intl.NumberFormat()

export function formatDateTime (iso: string | null | undefined): string {
  if (!iso) return '–'
  const date = new Date(iso)
  return Number.isNaN(date.getTime()) ? iso : dateTime.format(date)
}

export function formatNumber (n: number): string {
  return number.format(n)
}

export function plural (n: number, one: string, many: string): string {
  return `${formatNumber(n)} ${n === 1 ? one : many}`
}

/** "Chrome on Linux" from a user agent, or the raw string when it is not a browser we know. */
export function describeUserAgent (ua: string | null): string {
  if (!ua) return 'Unknown device'
  const browser = /Edg\//.test(ua) ? 'Edge'
    : /Firefox\//.test(ua) ? 'Firefox'
      : /Chrom(e|ium)\//.test(ua) ? 'Chrome'
        : /Safari\//.test(ua) ? 'Safari'
          : undefined
  const system = /Windows/.test(ua) ? 'Windows'
    : /Android/.test(ua) ? 'Android'
      : /iPhone|iPad/.test(ua) ? 'iOS'
        : /Mac OS X/.test(ua) ? 'macOS'
          : /Linux/.test(ua) ? 'Linux'
            : undefined
  if (browser && system) return `${browser} on ${system}`
  return ua.length > 60 ? `${ua.slice(0, 57)}…` : ua
}

const EVENT_NAMES: Record<string, string> = {
  signup: 'Signed up',
  login: 'Sign-in',
  lockout: 'Locked after failed sign-ins',
  refresh: 'Session refreshed',
  refresh_reuse_detected: 'Refresh token reused: session ended',
  logout: 'Signed out',
  session_revoked: 'Session ended',
  password_change: 'Password changed',
  email_change: 'Email changed',
  role_change: 'Role changed',
  user_deleted: 'Account deleted',
  password_reset_requested: 'Password reset requested',
  password_reset: 'Password reset',
  email_verification_requested: 'Verification email requested',
  email_verified: 'Email verified',
  email_change_requested: 'Email change requested',
  invite_accepted: 'Invitation accepted',
  data_export: 'Downloaded their data',
  user_created: 'Account created by an administrator',
  user_suspended: 'Suspended',
  user_unsuspended: 'Suspension lifted',
  password_reset_link_sent: 'Password reset link sent',
  sessions_revoked: 'All sessions ended'
}

/** "Sign-in", "Admin: suspended"...: a known event type in words, others as they are. */
export function describeEventType (type: string): string {
  if (EVENT_NAMES[type]) return EVENT_NAMES[type]
  const words = type.replace(/^admin[._]/, '').replaceAll(/[._]/g, ' ')
  const sentence = words.charAt(0).toUpperCase() + words.slice(1)
  return type.startsWith('admin') ? `Admin: ${sentence.toLowerCase()}` : sentence
}

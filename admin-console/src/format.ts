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

const LOGIN_REFUSALS: Record<string, string> = {
  invalid_credentials: 'wrong email or password',
  suspended: 'account suspended',
  email_not_verified: 'email not verified'
}

/**
 * An event's detail as a short phrase ("user → admin; 2 sessions ended"): the parts an admin
 * acts on, in words; ids they cannot use, zero counts and unset flags left out.
 */
export function describeDetail (detail: Record<string, unknown> | null): string {
  if (detail === null) return ''
  const parts: string[] = []
  if (typeof detail.from === 'string' && typeof detail.to === 'string') parts.push(`${detail.from} → ${detail.to}`)
  for (const [key, value] of Object.entries(detail)) {
    if (value === null || value === undefined || value === false || value === 0 || typeof value === 'object') continue
    switch (key) {
      case 'session_id': case 'from': case 'to': case 'was_suspended': case 'revoke_sessions':
        break
      case 'reason':
        parts.push(LOGIN_REFUSALS[String(value)] ?? String(value).replaceAll('_', ' '))
        break
      case 'until':
        parts.push(`until ${formatDateTime(String(value))}`)
        break
      case 'sessions_revoked':
        parts.push(`${plural(Number(value), 'session', 'sessions')} ended`)
        break
      case 'links_voided':
        parts.push(`${plural(Number(value), 'emailed link', 'emailed links')} voided`)
        break
      case 'invite':
        parts.push('invitation emailed')
        break
      case 'all':
        parts.push('every session')
        break
      default:
        parts.push(`${key.replaceAll('_', ' ')}: ${String(value)}`)
    }
  }
  return parts.join('; ')
}

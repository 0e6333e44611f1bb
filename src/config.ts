import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { dirname, isAbsolute, join, resolve } from 'node:path'

export type Dialect = 'sqlite' | 'postgres'

export interface DatabaseConfig {
  dialect: Dialect
  /** Absolute file path for SQLite (or ':memory:'), connection string for PostgreSQL. */
  location: string
  /** The URL as given, with any password masked: safe to log. */
  display: string
}

export interface Config {
  host: string
  port: number
  /**
   * Where clients reach this service: the base of every link it sends (never the request's Host
   * header) and the OpenAPI `servers` entry. An http(s) URL without a trailing slash.
   */
  publicUrl: string
  dataDir: string
  database: DatabaseConfig
  /** Undefined means: use (or create) the secret file in dataDir, see resolveJwtSecret. */
  jwtSecret: string | undefined
  jwtIssuer: string
  jwtAudience: string
  /** Access token lifetime in seconds. */
  accessTokenTtl: number
  passwordMinLength: number
  passwordMaxLength: number
  logLevel: string
  /** Largest accepted request body, bytes. */
  bodyLimit: number
  /** How many password hashes may run at once (argon2 / bcrypt). */
  hashConcurrency: number
  /** Linux: nice value of every thread but the event loop's (password hashing among them); 0: unchanged. */
  helperThreadNice: number
  /** Believe X-Forwarded-For (only behind a proxy you control). */
  trustProxy: boolean
  /** Expose /docs and /openapi.json. */
  docs: boolean
  /** Serve the admin console at /admin (ADMIN_CONSOLE). */
  adminConsole: boolean
  /** Refresh tokens: sliding lifetime, absolute session lifetime, reuse grace; seconds. */
  refreshTokenTtl: number
  sessionMaxAge: number
  refreshReuseGrace: number
  /** A password or email change needs a password login at most this many seconds ago. */
  reauthWindow: number
  /** RATE_LIMITS=off disables the per-IP limits and the lockout (benchmarks, load tests). */
  rateLimits: boolean
  signupIpLimit: RateLimit
  loginIpLimit: RateLimit
  refreshIpLimit: RateLimit
  lockout: { threshold: number, baseSeconds: number, maxSeconds: number }
  /** Second factors: the key that encrypts TOTP secrets, older keys still accepted, the per-account guessing lock. */
  mfa: MfaConfig
  /** Where the limit and lockout counters live; in process memory when unset. */
  redisUrl: string | undefined
  /** Password hashes allowed to wait for a free hashing slot before requests get a fast 503. */
  hashQueueLimit: number
  /** SQLite busy timeout and PostgreSQL connect timeout, ms: how long a request waits for the database before a 503. */
  dbTimeoutMs: number
  /** PostgreSQL: connections in this process's pool. */
  dbPoolSize: number
  /** Seconds in-flight requests get to finish after SIGTERM/SIGINT before their connections are cut. */
  shutdownGrace: number
  /** Seconds readiness reports 503 (while still serving) before the server stops accepting: lets a load balancer drain. */
  shutdownDelay: number
  /** Server timeouts, seconds: all request headers, the whole request (headers and body), an idle keep-alive connection, an idle socket. */
  headersTimeout: number
  requestTimeout: number
  keepAliveTimeout: number
  connectionTimeout: number
  /** Processes serving the port (node:cluster); 1 = no cluster. */
  workers: number
  /** Sockets this process binds to the port (SO_REUSEPORT, src/listen.ts); 1 = Node's usual one. */
  listenSockets: number
  /** Serve GET /metrics (Prometheus); with metricsToken set, only to `Authorization: Bearer <token>`. */
  metrics: boolean
  metricsToken: string | undefined
  /** all: Fastify's line per request and per response; errors: only 5xx responses and slow requests. */
  requestLog: 'all' | 'errors'
  /** With REQUEST_LOG=errors, a request taking at least this many ms is logged (warn). */
  slowRequestMs: number
  /** The product's name in emails and pages (APP_NAME). */
  appName: string
  /** off: no verification emails (the FastAPI app's behaviour); optional: verify, never required; required: no login before it. */
  emailVerification: EmailVerificationMode
  /** Link templates containing {token}: the built-in pages by default, an operator's frontend otherwise. */
  verifyEmailUrl: string
  resetPasswordUrl: string
  /** The invitation's link: the built-in set-password page, or RESET_PASSWORD_URL's frontend when only that is set. */
  setPasswordUrl: string
  /** Lifetimes of password-reset and email-verification links, seconds. */
  resetTokenTtl: number
  verifyTokenTtl: number
  /** Lifetime of the link in an invitation (an account an administrator created), seconds. */
  inviteTokenTtl: number
  mail: MailConfig
  /** Browser origins (scheme://host[:port]) allowed to call the API; empty: no CORS headers at all. */
  corsOrigins: string[]
  /** Seconds a browser may cache a preflight answer (Access-Control-Max-Age). */
  corsMaxAge: number
  /** Strict-Transport-Security max-age in seconds, sent only when publicUrl is https://. */
  hstsMaxAge: number
  /** Passkeys: the relying party, from configuration only (never from a request's Host or Origin). */
  webauthn: WebauthnConfig
}

export interface WebauthnConfig {
  /** The RP ID: a domain name that every origin is, or is a subdomain of (WEBAUTHN_RP_ID). */
  rpId: string
  /** Shown by browsers and authenticators beside the passkey (WEBAUTHN_RP_NAME, default APP_NAME). */
  rpName: string
  /** Exact origins a ceremony may come from (WEBAUTHN_ORIGINS). Empty: passkeys unavailable, see `problem`. */
  origins: string[]
  /** Why the defaults give no usable origin (PUBLIC_URL on plain http or an IP address); logged at start. */
  problem?: string
}

export interface MfaConfig {
  /** MFA_ENCRYPTION_KEY (32 bytes); undefined: use (or create) the key file in dataDir, see resolveMfaKey. */
  encryptionKey: Buffer | undefined
  /** MFA_PREVIOUS_ENCRYPTION_KEYS: keys that still decrypt secrets written under them (rotation). */
  previousKeys: Buffer[]
  /** Wrong codes in a row (TOTP and recovery codes together) before MFA is locked for the account. */
  lockoutThreshold: number
  /** Seconds the lock lasts. */
  lockoutSeconds: number
}

export type EmailVerificationMode = 'off' | 'optional' | 'required'

export interface MailConfig {
  /** smtp:// or smtps:// URL; undefined: every email is written to the log instead (development). */
  smtpUrl: string | undefined
  /** The URL with its password masked: safe to log. */
  smtpDisplay: string | undefined
  /** The From header. */
  from: string
  /** Delivery attempts before a queued email is marked dead. */
  maxAttempts: number
  /** A folder whose <purpose>.subject / .txt / .html files replace the built-in templates. */
  templatesDir: string | undefined
  /** Per-IP limit on the endpoints that send a link (reset, verification). */
  ipLimit: RateLimit
  /** Seconds one SMTP delivery may take (connect, greeting, each command). */
  sendTimeout: number
  /** Seconds before the first retry of a failed delivery; doubles per attempt (with jitter). */
  retryDelay: number
  /** Seconds between looks at the outbox for due rows (new rows of this process are sent at once). */
  pollInterval: number
}

export interface RateLimit {
  max: number
  /** Window length, seconds. */
  window: number
}

export class ConfigError extends Error {
  constructor (variable: string, problem: string) {
    super(`Invalid configuration: ${variable} ${problem}`)
    this.name = 'ConfigError'
  }
}

type Env = Record<string, string | undefined>

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
const MIN_SECRET_BYTES = 32

function integer (env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]
  if (raw === undefined || raw.trim() === '') return fallback
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(name, `must be a whole number, got "${raw}"`)
  const value = Number(raw.trim())
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`)
  return value
}

function boolean (env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase()
  if (raw === undefined || raw === '') return fallback
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true
  if (['0', 'false', 'no', 'off'].includes(raw)) return false
  throw new ConfigError(name, `must be true or false, got "${env[name]}"`)
}

/** Duration in seconds from "900", "900s", "15m", "2h" or "30d". */
export function parseDuration (env: Env, name: string, fallback: number, min = 1): number {
  const raw = env[name]?.trim()
  if (raw === undefined || raw === '') return fallback
  const match = /^(\d+)\s*([smhd]?)$/.exec(raw)
  if (!match) throw new ConfigError(name, `must be a duration such as 900, 15m, 2h or 30d, got "${raw}"`)
  const seconds = Number(match[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[match[2] as '' | 's' | 'm' | 'h' | 'd']
  if (seconds < min) throw new ConfigError(name, min === 1 ? 'must be at least one second' : `must be at least ${min} seconds`)
  return seconds
}

/** A limit written count/window, e.g. "30/5m" (30 requests per 5 minutes). */
export function parseRateLimit (env: Env, name: string, fallback: string): RateLimit {
  const raw = env[name]?.trim() || fallback
  const match = /^(\d+)\s*\/\s*(\d+\s*[smhd]?)$/.exec(raw)
  if (!match || Number(match[1]) < 1) throw new ConfigError(name, `must look like 30/5m (requests per window), got "${raw}"`)
  return { max: Number(match[1]), window: parseDuration({ [name]: match[2] }, name, 1) }
}

/**
 * Accepts the URL forms SQLAlchemy users already have:
 * sqlite:///relative.db, sqlite:////absolute.db, sqlite:///:memory:, postgres://, postgresql://
 * (also postgresql+psycopg2:// and friends, the driver part is ignored).
 */
export function parseDatabaseUrl (url: string, cwd: string): DatabaseConfig {
  const trimmed = url.trim()
  const scheme = /^([a-z0-9+]+):/i.exec(trimmed)?.[1]?.toLowerCase().split('+')[0]
  if (scheme === 'sqlite') {
    const rest = trimmed.slice(trimmed.indexOf(':') + 1)
    if (!rest.startsWith('///')) {
      throw new ConfigError('DATABASE_URL', 'for SQLite must look like sqlite:///./users.db (relative) or sqlite:////var/lib/app/users.db (absolute)')
    }
    const path = rest.slice(3).split('?')[0]
    if (path === '') throw new ConfigError('DATABASE_URL', 'names no SQLite file')
    if (path === ':memory:') return { dialect: 'sqlite', location: ':memory:', display: 'sqlite:///:memory:' }
    const location = isAbsolute(path) ? path : resolve(cwd, path)
    return { dialect: 'sqlite', location, display: `sqlite:///${location}` }
  }
  if (scheme === 'postgres' || scheme === 'postgresql') {
    let parsed: URL
    try {
      parsed = new URL(trimmed.replace(/^[a-z0-9+]+:/i, 'postgres:'))
    } catch {
      throw new ConfigError('DATABASE_URL', 'is not a valid PostgreSQL URL')
    }
    const location = parsed.toString()
    if (parsed.password) parsed.password = '***'
    return { dialect: 'postgres', location, display: parsed.toString() }
  }
  throw new ConfigError('DATABASE_URL', `must start with sqlite:/// or postgresql://, got "${trimmed.split(':')[0]}:"`)
}

/** WORKERS: a number of processes, or "auto" for one per core. */
function workers (env: Env): number {
  if (env.WORKERS?.trim().toLowerCase() === 'auto') return availableParallelism()
  return integer(env, 'WORKERS', 1, 1, 256)
}

/** SO_REUSEPORT for Node's listen() arrived in Node.js 22.12 and 23.1. */
export function reusePortSupported (version = process.versions.node): boolean {
  const [major, minor] = version.split('.').map(Number)
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12)
}

/**
 * LISTEN_SOCKETS: sockets this process binds to its port. auto (the default) is 8 where Node.js
 * can share a port within one process and WORKERS=1, else 1. Why several: src/listen.ts.
 */
export function listenSockets (env: Env, workers: number, version = process.versions.node): number {
  const raw = env.LISTEN_SOCKETS?.trim().toLowerCase()
  const supported = reusePortSupported(version)
  if (raw === undefined || raw === '' || raw === 'auto') return supported && workers === 1 ? 8 : 1
  const sockets = integer(env, 'LISTEN_SOCKETS', 1, 1, 64)
  if (sockets > 1 && !supported) {
    throw new ConfigError('LISTEN_SOCKETS', `above 1 needs Node.js 22.12 or newer (this is ${version}); set it to 1 or auto`)
  }
  if (sockets > 1 && workers > 1) {
    throw new ConfigError('LISTEN_SOCKETS', 'above 1 works with WORKERS=1 only (cluster workers share the port through their primary)')
  }
  return sockets
}

function metricsToken (env: Env): string | undefined {
  const raw = env.METRICS_TOKEN?.trim()
  if (!raw) return undefined
  if (raw.length < 16) throw new ConfigError('METRICS_TOKEN', 'must be at least 16 characters; generate one with: openssl rand -hex 24')
  return raw
}

/** Node refuses a headers timeout longer than the request timeout; say so by name. */
function serverTimeouts (env: Env) {
  const headersTimeout = parseDuration(env, 'HEADERS_TIMEOUT', 10)
  const requestTimeout = parseDuration(env, 'REQUEST_TIMEOUT', 30)
  if (headersTimeout > requestTimeout) {
    throw new ConfigError('HEADERS_TIMEOUT', `must not exceed REQUEST_TIMEOUT (${requestTimeout}s), got ${headersTimeout}s`)
  }
  return {
    headersTimeout,
    requestTimeout,
    // Longer than the usual load-balancer idle timeout (60 s), so the balancer closes first.
    keepAliveTimeout: parseDuration(env, 'KEEP_ALIVE_TIMEOUT', 72),
    connectionTimeout: parseDuration(env, 'CONNECTION_TIMEOUT', 60)
  }
}

function requestLog (env: Env): 'all' | 'errors' {
  const raw = env.REQUEST_LOG?.trim().toLowerCase() || 'all'
  if (raw !== 'all' && raw !== 'errors') throw new ConfigError('REQUEST_LOG', `must be all or errors, got "${env.REQUEST_LOG}"`)
  return raw
}

/**
 * PUBLIC_URL: an http(s) URL, optionally with a path prefix, no query or fragment; stored
 * without its trailing slash. Default: http://HOST:PORT (a wildcard HOST becomes localhost).
 */
function publicUrl (env: Env, host: string, port: number): string {
  const raw = env.PUBLIC_URL?.trim()
  if (!raw) {
    const name = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host
    return `http://${name}:${port}`
  }
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    // Not echoed: a mistyped URL may still carry a password.
    throw new ConfigError('PUBLIC_URL', 'must be a URL such as https://accounts.example.com')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError('PUBLIC_URL', `must start with http:// or https://, got "${url.protocol}"`)
  if (url.search || url.hash || url.username || url.password) throw new ConfigError('PUBLIC_URL', 'must not carry a query, a fragment or credentials')
  return url.toString().replace(/\/+$/, '')
}

/** A link template for emails: an http(s) URL containing {token}. */
function linkTemplate (env: Env, name: string, fallback: string): string {
  const raw = env[name]?.trim()
  if (!raw) return fallback
  if (!raw.includes('{token}')) throw new ConfigError(name, 'must contain {token}, where the link\'s token goes')
  try {
    const url = new URL(raw.replace('{token}', 'token'))
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('scheme')
  } catch {
    throw new ConfigError(name, `must be an http(s) URL containing {token}, got "${raw}"`)
  }
  return raw
}

function emailVerification (env: Env): EmailVerificationMode {
  const raw = env.EMAIL_VERIFICATION?.trim().toLowerCase() || 'optional'
  if (raw !== 'off' && raw !== 'optional' && raw !== 'required') {
    throw new ConfigError('EMAIL_VERIFICATION', `must be off, optional or required, got "${env.EMAIL_VERIFICATION}"`)
  }
  return raw
}

function mailConfig (env: Env, appName: string, cwd: string): MailConfig {
  const raw = env.SMTP_URL?.trim() || undefined
  let smtpDisplay: string | undefined
  if (raw !== undefined) {
    let url: URL
    try {
      url = new URL(raw)
    } catch {
      throw new ConfigError('SMTP_URL', 'must look like smtp://user:pass@host:587 or smtps://user:pass@host:465')
    }
    if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') throw new ConfigError('SMTP_URL', `must start with smtp:// or smtps://, got "${url.protocol}"`)
    if (!url.hostname) throw new ConfigError('SMTP_URL', 'names no host')
    if (url.password) url.password = '***'
    smtpDisplay = url.toString()
  }
  const from = env.MAIL_FROM?.trim()
  if (raw !== undefined && !from) throw new ConfigError('MAIL_FROM', 'must be set when SMTP_URL is, e.g. MAIL_FROM="Example Accounts <no-reply@example.com>"')
  if (from && !/^(?:[^<>]*<[^<>@\s]+@[^<>@\s]+>|[^<>@\s]+@[^<>@\s]+)$/.test(from)) {
    throw new ConfigError('MAIL_FROM', `must be an address or Name <address>, got "${from}"`)
  }
  const templatesDir = env.MAIL_TEMPLATES_DIR?.trim() ? resolve(cwd, env.MAIL_TEMPLATES_DIR.trim()) : undefined
  return {
    smtpUrl: raw,
    smtpDisplay,
    from: from || `"${appName.replaceAll('"', '')}" <no-reply@localhost>`,
    maxAttempts: integer(env, 'MAIL_MAX_ATTEMPTS', 8, 1, 100),
    templatesDir,
    ipLimit: parseRateLimit(env, 'MAIL_IP_LIMIT', '10/5m'),
    sendTimeout: parseDuration(env, 'MAIL_SEND_TIMEOUT', 30),
    retryDelay: parseDuration(env, 'MAIL_RETRY_DELAY', 30),
    pollInterval: parseDuration(env, 'MAIL_POLL_INTERVAL', 5)
  }
}

function redisUrl (env: Env): string | undefined {
  const raw = env.REDIS_URL?.trim()
  if (!raw) return undefined
  if (!/^rediss?:\/\//.test(raw)) throw new ConfigError('REDIS_URL', `must start with redis:// or rediss://, got "${raw.split(':')[0]}:"`)
  return raw
}

/**
 * CORS_ORIGINS: comma-separated exact origins. A browser sends the Origin header as scheme, host
 * and port only (host in lower case, no default port), so each entry is normalised to that form
 * and compared exactly: no wildcards, no paths, no "null" (sandboxed frames and local files all
 * send it, so allowing it would allow any page).
 */
function corsOrigins (env: Env): string[] {
  return originList(env, 'CORS_ORIGINS', 'https://app.example.com,http://localhost:5173')
}

/**
 * A comma-separated list of exact origins (scheme, host and port), deduplicated in their
 * normalized form; `check` may refuse an origin for a reason of the variable's own.
 */
function originList (env: Env, name: string, example: string, check?: (url: URL) => string | undefined): string[] {
  const entries = (env[name] ?? '').split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
  const origins = new Set<string>()
  for (const entry of entries) {
    const refuse = (why: string) => new ConfigError(name, `must list exact origins separated by commas, such as ${example}; "${entry}" ${why}`)
    if (entry.includes('*')) throw refuse('is a wildcard: list each origin')
    if (entry.toLowerCase() === 'null') throw refuse('would let any sandboxed frame or local file call the API')
    let url: URL
    try {
      url = new URL(entry)
    } catch {
      throw refuse('is not an origin (write it with its scheme: https://host[:port])')
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw refuse('is not an http:// or https:// origin')
    if (url.username !== '' || url.password !== '') throw refuse('carries a user name or password')
    if (url.pathname !== '/' || /[?#]/.test(entry)) throw refuse('has a path, query or fragment: an origin is scheme, host and port only')
    const problem = check?.(url)
    if (problem !== undefined) throw refuse(problem)
    origins.add(url.origin)
  }
  return [...origins]
}

const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/
const IP_HOST = /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:.]+\])$/i
const DOMAIN_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/

/** Browsers run WebAuthn only in a secure context whose host is the RP ID or one of its subdomains. */
function originProblem (origin: URL, rpId: string): string | undefined {
  const host = origin.hostname
  if (host !== rpId && !host.endsWith(`.${rpId}`)) return `is not on the RP ID ${rpId} or a subdomain of it`
  if (origin.protocol !== 'https:' && !(host === 'localhost' || host.endsWith('.localhost'))) return 'must be https:// (browsers allow http:// only for localhost)'
  return undefined
}

/**
 * The relying party, from configuration alone. Defaults that make the quick start work: the RP
 * ID is PUBLIC_URL's host name, or localhost when that is an address (browsers refuse an IP
 * address as RP ID, so WebAuthn never works on http://127.0.0.1); the origin is PUBLIC_URL's,
 * and for a loopback PUBLIC_URL (the default http://127.0.0.1:8000) the same port on localhost,
 * the address to open in the browser.
 */
function webauthnConfig (env: Env, publicUrl: string, appName: string): WebauthnConfig {
  const base = new URL(publicUrl)
  const rawRpId = env.WEBAUTHN_RP_ID?.trim().toLowerCase()
  if (rawRpId && (!DOMAIN_NAME.test(rawRpId) || IP_HOST.test(rawRpId))) {
    throw new ConfigError('WEBAUTHN_RP_ID', `must be a domain name such as example.com (no scheme, port or path; not an IP address, which browsers refuse), got "${env.WEBAUTHN_RP_ID}"`)
  }
  const rpId = rawRpId || (IP_HOST.test(base.hostname) || LOOPBACK_HOST.test(base.hostname) ? 'localhost' : base.hostname)
  const rpName = env.WEBAUTHN_RP_NAME?.trim() || appName
  if (rpName.length > 100) throw new ConfigError('WEBAUTHN_RP_NAME', 'must be at most 100 characters')

  const listed = originList(env, 'WEBAUTHN_ORIGINS', 'https://accounts.example.com', (url) => originProblem(url, rpId))
  if (listed.length > 0) return { rpId, rpName, origins: listed }
  const candidate = new URL(base.origin)
  if (LOOPBACK_HOST.test(candidate.hostname)) candidate.hostname = 'localhost'
  const problem = originProblem(candidate, rpId)
  if (problem === undefined) return { rpId, rpName, origins: [candidate.origin] }
  return {
    rpId,
    rpName,
    origins: [],
    problem: `passkeys are off: PUBLIC_URL's origin ${candidate.origin} ${problem}; set WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS`
  }
}

const MFA_KEY_BYTES = 32
const MFA_KEY_HINT = 'generate one with: openssl rand -base64 32'

/** A 32-byte key written as 64 hex characters or as base64 / base64url; a placeholder is refused. */
export function parseMfaKey (raw: string, variable: string): Buffer {
  const text = raw.trim()
  const key = /^[0-9a-f]{64}$/i.test(text)
    ? Buffer.from(text, 'hex')
    : /^[A-Za-z0-9+/_-]{43}=?$/.test(text) ? Buffer.from(text.replace(/=$/, ''), 'base64url') : undefined
  if (key === undefined || key.length !== MFA_KEY_BYTES) throw new ConfigError(variable, `must be ${MFA_KEY_BYTES} bytes written as 64 hex characters or base64; ${MFA_KEY_HINT}`)
  // A random key has about 30 distinct bytes; "aaaa...", "0000..." and the like are not keys.
  if (new Set(key).size < 8) throw new ConfigError(variable, `looks like a placeholder, not a random key; ${MFA_KEY_HINT}`)
  return key
}

function mfaConfig (env: Env): MfaConfig {
  const current = env.MFA_ENCRYPTION_KEY?.trim() ? parseMfaKey(env.MFA_ENCRYPTION_KEY, 'MFA_ENCRYPTION_KEY') : undefined
  const previousKeys = (env.MFA_PREVIOUS_ENCRYPTION_KEYS ?? '').split(',').map((part) => part.trim()).filter(Boolean)
    .map((part) => parseMfaKey(part, 'MFA_PREVIOUS_ENCRYPTION_KEYS'))
  if (previousKeys.length > 0 && current === undefined) {
    throw new ConfigError('MFA_PREVIOUS_ENCRYPTION_KEYS', 'needs MFA_ENCRYPTION_KEY set to the new key (rotation: the new key in MFA_ENCRYPTION_KEY, the old ones here)')
  }
  return {
    encryptionKey: current,
    previousKeys,
    lockoutThreshold: integer(env, 'MFA_LOCKOUT_THRESHOLD', 10, 1, 1000),
    lockoutSeconds: parseDuration(env, 'MFA_LOCKOUT_DURATION', 15 * 60)
  }
}

/** Validates the environment into a Config. Pure: the server passes process.env, tests pass an object. */
export function loadConfig (env: Env, cwd: string = process.cwd()): Config {
  const dataDir = resolve(cwd, env.DATA_DIR?.trim() || 'data')
  const database = parseDatabaseUrl(env.DATABASE_URL?.trim() || `sqlite:///${join(dataDir, 'users.db')}`, cwd)

  const jwtSecret = env.JWT_SECRET === undefined || env.JWT_SECRET === '' ? undefined : env.JWT_SECRET
  if (jwtSecret !== undefined && Buffer.byteLength(jwtSecret) < MIN_SECRET_BYTES) {
    throw new ConfigError('JWT_SECRET', `must be at least ${MIN_SECRET_BYTES} bytes (256 bits); generate one with: openssl rand -base64 48`)
  }

  const logLevel = (env.LOG_LEVEL?.trim() || 'info').toLowerCase()
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`)

  const passwordMaxLength = 256
  const host = env.HOST?.trim() || '127.0.0.1'
  const port = integer(env, 'PORT', 8000, 0, 65535)
  const appName = env.APP_NAME?.trim() || 'User Management API'
  if (appName.length > 100) throw new ConfigError('APP_NAME', 'must be at most 100 characters')
  const base = publicUrl(env, host, port)
  const resetPasswordUrl = linkTemplate(env, 'RESET_PASSWORD_URL', `${base}/account/reset-password#token={token}`)
  const processes = workers(env)
  return {
    host,
    port,
    dataDir,
    database,
    jwtSecret,
    jwtIssuer: env.JWT_ISSUER?.trim() || 'user-management-api',
    jwtAudience: env.JWT_AUDIENCE?.trim() || 'user-management-api',
    accessTokenTtl: parseDuration(env, 'ACCESS_TOKEN_TTL', 15 * 60),
    passwordMinLength: integer(env, 'PASSWORD_MIN_LENGTH', 8, 1, passwordMaxLength),
    passwordMaxLength,
    logLevel,
    bodyLimit: integer(env, 'BODY_LIMIT', 16 * 1024, 1024, 10 * 1024 * 1024),
    hashConcurrency: integer(env, 'HASH_CONCURRENCY', availableParallelism(), 1, 1024),
    helperThreadNice: integer(env, 'HELPER_THREAD_NICE', 10, 0, 19),
    trustProxy: boolean(env, 'TRUST_PROXY', false),
    docs: boolean(env, 'DOCS', true),
    adminConsole: boolean(env, 'ADMIN_CONSOLE', true),
    refreshTokenTtl: parseDuration(env, 'REFRESH_TOKEN_TTL', 30 * 86400),
    sessionMaxAge: parseDuration(env, 'SESSION_MAX_AGE', 90 * 86400),
    refreshReuseGrace: parseDuration(env, 'REFRESH_REUSE_GRACE', 10),
    reauthWindow: parseDuration(env, 'REAUTH_WINDOW', 15 * 60),
    rateLimits: boolean(env, 'RATE_LIMITS', true),
    signupIpLimit: parseRateLimit(env, 'SIGNUP_IP_LIMIT', '30/5m'),
    loginIpLimit: parseRateLimit(env, 'LOGIN_IP_LIMIT', '100/5m'),
    refreshIpLimit: parseRateLimit(env, 'REFRESH_IP_LIMIT', '150/5m'),
    lockout: {
      threshold: integer(env, 'LOCKOUT_THRESHOLD', 5, 1, 1000),
      baseSeconds: parseDuration(env, 'LOCKOUT_DURATION', 60),
      maxSeconds: parseDuration(env, 'LOCKOUT_MAX_DURATION', 15 * 60)
    },
    mfa: mfaConfig(env),
    redisUrl: redisUrl(env),
    hashQueueLimit: integer(env, 'HASH_QUEUE_LIMIT', 256, 0, 100000),
    dbTimeoutMs: integer(env, 'DB_TIMEOUT_MS', 2000, 50, 600000),
    dbPoolSize: integer(env, 'DB_POOL_SIZE', 10, 1, 1000),
    shutdownGrace: parseDuration(env, 'SHUTDOWN_GRACE', 25),
    shutdownDelay: parseDuration(env, 'SHUTDOWN_DELAY', 0, 0),
    ...serverTimeouts(env),
    workers: processes,
    listenSockets: listenSockets(env, processes),
    metrics: boolean(env, 'METRICS', true),
    metricsToken: metricsToken(env),
    requestLog: requestLog(env),
    slowRequestMs: integer(env, 'SLOW_REQUEST_MS', 1000, 1, 3_600_000),
    appName,
    publicUrl: base,
    emailVerification: emailVerification(env),
    verifyEmailUrl: linkTemplate(env, 'VERIFY_EMAIL_URL', `${base}/account/verify-email#token={token}`),
    resetPasswordUrl,
    // An operator whose frontend resets passwords (RESET_PASSWORD_URL) gets invitations there too,
    // unless SET_PASSWORD_URL names another page: both post the token to the same endpoint.
    setPasswordUrl: linkTemplate(env, 'SET_PASSWORD_URL',
      env.RESET_PASSWORD_URL?.trim() ? resetPasswordUrl : `${base}/account/set-password#token={token}`),
    resetTokenTtl: parseDuration(env, 'RESET_TOKEN_TTL', 3600, 60),
    verifyTokenTtl: parseDuration(env, 'VERIFY_TOKEN_TTL', 24 * 3600, 60),
    inviteTokenTtl: parseDuration(env, 'INVITE_TOKEN_TTL', 72 * 3600, 60),
    mail: mailConfig(env, appName, cwd),
    corsOrigins: corsOrigins(env),
    // Chromium caps a preflight's cache at 2 hours, so a longer default would change nothing there.
    corsMaxAge: parseDuration(env, 'CORS_MAX_AGE', 2 * 3600, 0),
    hstsMaxAge: parseDuration(env, 'HSTS_MAX_AGE', 365 * 86400, 0),
    webauthn: webauthnConfig(env, base, appName)
  }
}

/**
 * A secret kept in a file of the data directory: read it, or create it once with owner-only
 * permissions ('wx': if another process created it in the meantime, theirs is used).
 */
function readOrCreateSecretFile (path: string, create: () => string, check: (text: string) => void): { text: string, created: boolean } {
  try {
    const text = readFileSync(path, 'utf8').trim()
    check(text)
    return { text, created: false }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  const text = create()
  try {
    writeFileSync(path, text + '\n', { mode: 0o600, flag: 'wx' })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readOrCreateSecretFile(path, create, check)
    throw error
  }
  chmodSync(path, 0o600)
  return { text, created: true }
}

/**
 * The configured JWT_SECRET, or a 256-bit secret kept in `<dataDir>/jwt-secret` (created once,
 * owner-only permissions). Returns whether it was created so the caller can log it.
 */
export function resolveJwtSecret (config: Config): { secret: string, source: 'env' | 'file' | 'created', path?: string } {
  if (config.jwtSecret !== undefined) return { secret: config.jwtSecret, source: 'env' }
  const path = join(config.dataDir, 'jwt-secret')
  const { text, created } = readOrCreateSecretFile(path, () => randomBytes(32).toString('base64url'), (secret) => {
    if (Buffer.byteLength(secret) < MIN_SECRET_BYTES) throw new ConfigError('JWT_SECRET', `file ${path} holds fewer than ${MIN_SECRET_BYTES} bytes; delete it to generate a new one`)
  })
  return { secret: text, source: created ? 'created' : 'file', path }
}

/**
 * The key that encrypts TOTP secrets: MFA_ENCRYPTION_KEY, or one kept in `<dataDir>/mfa-key`
 * (created once, owner-only, like the JWT secret). Unlike a lost JWT secret, a lost MFA key
 * cannot be replaced without every user setting up TOTP again: keep it with the backups.
 */
export function resolveMfaKey (config: Config): { key: Buffer, source: 'env' | 'file' | 'created', path?: string } {
  if (config.mfa.encryptionKey !== undefined) return { key: config.mfa.encryptionKey, source: 'env' }
  const path = join(config.dataDir, 'mfa-key')
  const { text, created } = readOrCreateSecretFile(path, () => randomBytes(MFA_KEY_BYTES).toString('base64'), (key) => {
    parseMfaKey(key, `MFA_ENCRYPTION_KEY (file ${path})`)
  })
  return { key: parseMfaKey(text, 'MFA_ENCRYPTION_KEY'), source: created ? 'created' : 'file', path }
}


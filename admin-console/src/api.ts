// The console's only way to the server: the public API, with the admin's access token.
//
// Both tokens live in this module's variables and nowhere else: not localStorage, not
// sessionStorage, not a cookie. A script injected into the page could still call fetch while the
// page is open, but nothing survives the tab, and a reload means signing in again. When the
// access token is about to expire, or a call gets a 401, the refresh token buys a new pair once
// (concurrent calls share that one refresh: a refresh token works once).

export type Role = 'user' | 'admin'

export interface TokenPair {
  access_token: string
  token_type: 'bearer'
  expires_in: number
  refresh_token: string
}

export interface Me {
  id: number
  username: string
  email: string
  role: Role
}

export interface AdminUser extends Me {
  created_at: string
  updated_at: string
  email_verified: boolean
  status: 'active' | 'suspended'
  suspended_until: string | null
  suspension_reason: string | null
  last_login_at: string | null
  sessions: number
}

export interface UserList {
  users: AdminUser[]
  next_cursor: string | null
  total: number
  total_exact: boolean
}

export interface Session {
  id: string
  created_at: string
  last_used_at: string
  expires_at: string
  user_agent: string | null
  ip: string | null
  /** The session this console is signed in with (on your own page). */
  current?: boolean
}

export interface AuditEvent {
  id: number
  created_at: string
  type: string
  outcome: 'success' | 'failure'
  user_id: number | null
  actor_id: number | null
  ip: string | null
  user_agent: string | null
  request_id: string | null
  detail: Record<string, unknown> | null
  /** The reason an administrator gave. */
  reason?: string | null
  actor_username?: string | null
}

export interface AuditPage {
  events: AuditEvent[]
  next_cursor: string | null
}

/** An answer other than 2xx: `detail` is the API's own sentence, fit to show. */
export class ApiError extends Error {
  constructor (readonly status: number, readonly detail: string, readonly body: Record<string, unknown> = {}, readonly retryAfter?: number) {
    super(detail)
    this.name = 'ApiError'
  }
}

/** POST /users/login answered 403 "MFA required": the password was right, a second factor is due. */
export interface MfaChallenge {
  mfaToken: string
  methods: string[]
}

// The page is served at <base>/admin; the API lives at <base>/ (a PUBLIC_URL path prefix is kept).
const apiBase = new URL('./', document.baseURI)

// Refresh when less than this is left (or a quarter of a shorter lifetime), rather than send a
// token that dies on the way.
const EXPIRY_MARGIN_MS = 30_000

let tokens: { access: string, refresh: string, refreshAt: number } | undefined
let refreshing: Promise<boolean> | undefined
let sessionEnded: (reason: string) => void = () => {}

/** Called once by the app: what to do when the session ends under us (refresh refused). */
export function onSessionEnded (handler: (reason: string) => void): void {
  sessionEnded = handler
}

export function hasSession (): boolean {
  return tokens !== undefined
}

function keep (pair: TokenPair): void {
  const lifetime = pair.expires_in * 1000
  tokens = { access: pair.access_token, refresh: pair.refresh_token, refreshAt: Date.now() + lifetime - Math.min(EXPIRY_MARGIN_MS, lifetime / 4) }
}

type Query = Record<string, string | number | boolean | undefined>

interface Call {
  body?: unknown
  query?: Query
  /** Send the access token (refreshing it first when needed). */
  auth?: boolean
  signal?: AbortSignal
}

function urlFor (path: string, query: Query = {}): URL {
  const url = new URL(path.replace(/^\//, ''), apiBase)
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== '') url.searchParams.set(key, String(value))
  }
  return url
}

async function errorFrom (response: Response): Promise<ApiError> {
  let body: Record<string, unknown> = {}
  try {
    body = await response.json() as Record<string, unknown>
  } catch {
    // A proxy's HTML error page, or no body: the status alone has to do.
  }
  const retryAfter = Number(response.headers.get('retry-after')) || undefined
  const detail = typeof body.detail === 'string' && body.detail !== ''
    ? body.detail
    : response.status >= 500 ? `The server could not answer (${response.status}). Try again in a moment.` : `The request failed (${response.status}).`
  return new ApiError(response.status, detail, body, retryAfter)
}

async function send (method: string, path: string, call: Call, accessToken?: string): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' }
  if (call.body !== undefined) headers['content-type'] = 'application/json'
  if (accessToken !== undefined) headers.authorization = `Bearer ${accessToken}`
  try {
    return await fetch(urlFor(path, call.query), {
      method,
      headers,
      body: call.body === undefined ? undefined : JSON.stringify(call.body),
      signal: call.signal,
      credentials: 'omit',
      cache: 'no-store'
    })
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error
    throw new ApiError(0, 'Could not reach the server. Check your connection and try again.')
  }
}

/** One refresh at a time; false when the session is over (revoked, expired, suspended). */
function refresh (): Promise<boolean> {
  refreshing ??= (async () => {
    const current = tokens
    if (current === undefined) return false
    try {
      const response = await send('POST', '/users/refresh', { body: { refresh_token: current.refresh } })
      if (response.ok) {
        keep(await response.json() as TokenPair)
        return true
      }
      if (response.status === 401) return false
      throw await errorFrom(response)
    } finally {
      refreshing = undefined
    }
  })()
  return refreshing
}

function endSession (reason: string): never {
  tokens = undefined
  sessionEnded(reason)
  throw new ApiError(401, reason)
}

const SESSION_OVER = 'Your session has ended (it expired, was ended from elsewhere, or your access changed). Sign in again.'

/** A call with the access token; one refresh and retry on a 401. */
async function authed (method: string, path: string, call: Call = {}): Promise<Response> {
  if (tokens === undefined) endSession('You are signed out. Sign in again.')
  if (Date.now() >= tokens.refreshAt && !await refresh()) endSession(SESSION_OVER)
  let response = await send(method, path, call, tokens!.access)
  if (response.status === 401) {
    if (!await refresh()) endSession(SESSION_OVER)
    response = await send(method, path, call, tokens!.access)
    if (response.status === 401) endSession(SESSION_OVER)
  }
  return response
}

async function json<T> (method: string, path: string, call: Call = {}): Promise<T> {
  const response = call.auth === false ? await send(method, path, call) : await authed(method, path, call)
  if (!response.ok) throw await errorFrom(response)
  if (response.status === 204 || response.status === 202) return undefined as T
  return await response.json() as T
}

// ---- Signing in and out ----------------------------------------------------------------------

/** Password step: a session, or the MFA challenge to answer with loginWithSecondFactor. */
export async function login (email: string, password: string): Promise<MfaChallenge | undefined> {
  tokens = undefined
  try {
    keep(await json<TokenPair>('POST', '/users/login', { body: { email, password }, auth: false }))
    return undefined
  } catch (error) {
    if (error instanceof ApiError && error.status === 403 && typeof error.body.mfa_token === 'string') {
      const methods = Array.isArray(error.body.methods) ? error.body.methods.filter((m): m is string => typeof m === 'string') : []
      return { mfaToken: error.body.mfa_token, methods }
    }
    throw error
  }
}

/** Second step (issue 15): a TOTP code or a recovery code for the challenge's mfa_token. */
export async function loginWithSecondFactor (mfaToken: string, answer: { code: string } | { recovery_code: string }): Promise<void> {
  keep(await json<TokenPair>('POST', '/users/login/mfa', { body: { mfa_token: mfaToken, ...answer }, auth: false }))
}

export function getMe (): Promise<Me> {
  return json<Me>('GET', '/users/me')
}

/** Ends this session on the server and forgets both tokens (forgotten even when the server cannot be reached). */
export async function logout (): Promise<void> {
  const current = tokens
  if (current === undefined) return
  try {
    const response = await send('POST', '/users/logout', {}, current.access)
    // An expired access token: a refresh first, so the session really ends.
    if (response.status === 401 && await refresh()) await send('POST', '/users/logout', {}, tokens!.access)
  } finally {
    tokens = undefined
  }
}

/**
 * The page is going away (reload, tab closed): its tokens die with it, so end the session on
 * the server too. keepalive lets the request outlive the page; no answer is awaited.
 */
export function logoutOnUnload (): void {
  if (tokens === undefined) return
  const url = urlFor('/users/logout')
  void fetch(url, { method: 'POST', keepalive: true, credentials: 'omit', headers: { authorization: `Bearer ${tokens.access}` } }).catch(() => {})
  tokens = undefined
}

// ---- Administration (issue 14) ---------------------------------------------------------------

export interface UserFilters {
  q?: string
  match?: 'prefix' | 'contains'
  role?: Role
  status?: 'active' | 'suspended'
  email_verified?: 'true' | 'false'
  created_from?: string
  created_to?: string
  sort?: 'created_at' | 'email' | 'username' | 'last_login_at'
  order?: 'asc' | 'desc'
  limit?: number
  cursor?: string
}

export function listUsers (filters: UserFilters, signal?: AbortSignal): Promise<UserList> {
  // The API's own default for match is a prefix search; only the opt-in is sent.
  const { match, ...rest } = filters
  return json<UserList>('GET', '/admin/users', { query: { ...rest, match: match === 'contains' ? 'contains' : undefined }, signal })
}

export interface NewUser {
  username: string
  email: string
  role: Role
  invite: boolean
  password?: string
}

export function createUser (user: NewUser): Promise<AdminUser> {
  return json<AdminUser>('POST', '/admin/users', { body: user })
}

export function suspendUser (id: number, reason: string, until?: string): Promise<AdminUser> {
  return json<AdminUser>('POST', `/admin/users/${id}/suspend`, { body: until === undefined ? { reason } : { reason, until } })
}

export function unsuspendUser (id: number, reason?: string): Promise<AdminUser> {
  return json<AdminUser>('POST', `/admin/users/${id}/unsuspend`, { body: reason === undefined ? {} : { reason } })
}

export function setRole (id: number, role: Role, reason?: string): Promise<AdminUser> {
  return json<AdminUser>('PUT', `/admin/users/${id}/role`, { body: reason === undefined ? { role } : { role, reason } })
}

export function sendPasswordReset (id: number, revokeSessions: boolean): Promise<void> {
  return json<void>('POST', `/admin/users/${id}/password-reset`, { body: { revoke_sessions: revokeSessions } })
}

export function listSessions (id: number, signal?: AbortSignal): Promise<Session[]> {
  return json<Session[]>('GET', `/admin/users/${id}/sessions`, { signal })
}

export function revokeSessions (id: number): Promise<void> {
  return json<void>('DELETE', `/admin/users/${id}/sessions`)
}

export function listAuditEvents (targetUserId: number, cursor?: string, signal?: AbortSignal): Promise<AuditPage> {
  return json<AuditPage>('GET', '/admin/audit-events', { query: { target_user_id: targetUserId, limit: 20, cursor }, signal })
}

/** One user as the directory shows them; an ApiError with status 404 when there is none. */
export function getUser (id: number, signal?: AbortSignal): Promise<AdminUser> {
  return json<AdminUser>('GET', `/admin/users/${id}`, { signal })
}

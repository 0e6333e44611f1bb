// The request lists that several scenarios send.
import type { UserToken } from './seed.js'
import type { HttpRequest } from './wrk.js'

/** GET /users/{id}, each with its own user's token (every user reads itself), in turn. */
export function authenticatedGets (tokens: UserToken[]): HttpRequest[] {
  return tokens.map(({ id, token }) => ({ method: 'GET', path: `/users/${id}`, headers: { Authorization: `Bearer ${token}` } }))
}

/** POST /users/login of users bench1..bench<users> (at most 10,000 distinct ones), in turn. */
export function logins (users: number, password: string): HttpRequest[] {
  return Array.from({ length: Math.min(users, 10_000) }, (_, i) => ({
    method: 'POST',
    path: '/users/login',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: `bench${i + 1}@example.com`, password })
  }))
}

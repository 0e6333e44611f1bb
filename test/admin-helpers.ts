import type { FastifyInstance } from 'fastify'
import type { Insertable } from 'kysely'
import type { UserTable } from '../src/db/database.js'
import { authed, json } from './helpers.js'

// Shared by the admin suites: users written straight into the database (thousands in a second,
// with the created_at, status or last login a test needs), and the directory read page by page.

export type SeedUser = Partial<Insertable<UserTable>> & { username: string, email: string }

/** Inserts users as given (defaults: role user, active, created now, no usable password); returns their ids in order. */
export async function insertUsers (app: FastifyInstance, users: SeedUser[]): Promise<number[]> {
  const now = new Date().toISOString()
  const ids: number[] = []
  await app.db.kysely.transaction().execute(async (trx) => {
    for (let start = 0; start < users.length; start += 500) {
      const rows = users.slice(start, start + 500).map((user) => ({
        username_normalized: user.username.normalize('NFKC').toLowerCase(),
        email_normalized: user.email.toLowerCase(),
        hashed_password: '!not-a-password',
        role: 'user' as const,
        created_at: now,
        updated_at: now,
        // Every row names every column: a multi-row insert cannot say DEFAULT in SQLite.
        status: 'active' as const,
        suspended_until: null,
        suspension_reason: null,
        last_login_at: null,
        email_verified_at: null,
        pending_email: null,
        ...user
      }))
      const inserted = await trx.insertInto('users').values(rows).returning('id').execute()
      ids.push(...inserted.map((row) => row.id))
    }
  })
  return ids
}

export interface DirectoryPage {
  users: Array<Record<string, any>>
  next_cursor: string | null
  total: number
  total_exact: boolean
}

/** One GET /admin/users; throws unless 200. */
export async function listUsers (app: FastifyInstance, token: string, query: Record<string, string | number | boolean | undefined> = {}): Promise<DirectoryPage> {
  const response = await authed(app, token, { method: 'GET', url: '/admin/users', query: toQuery(query) })
  if (response.statusCode !== 200) throw new Error(`GET /admin/users ${JSON.stringify(query)}: ${response.statusCode} ${response.body}`)
  return json(response)
}

export function toQuery (query: Record<string, string | number | boolean | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(query).filter(([, value]) => value !== undefined).map(([name, value]) => [name, String(value)]))
}

/**
 * Follows next_cursor to the end; `between` runs after each page (e.g. others sign up meanwhile).
 * Returns every user in the order served, and each page's total.
 */
export async function listAll (app: FastifyInstance, token: string, query: Record<string, string | number | boolean | undefined>,
  between?: (pageNumber: number) => Promise<void>): Promise<{ users: Array<Record<string, any>>, totals: number[], pages: number }> {
  const users: Array<Record<string, any>> = []
  const totals: number[] = []
  let cursor: string | undefined
  for (let pages = 1; ; pages++) {
    if (pages > 10_000) throw new Error('listAll: more than 10,000 pages')
    const page = await listUsers(app, token, { ...query, cursor })
    users.push(...page.users)
    totals.push(page.total)
    if (page.next_cursor === null) return { users, totals, pages }
    cursor = page.next_cursor
    if (between) await between(pages)
  }
}

// Databases for the bench: migrated by the real migrations, then users 1..n (ids in order, all
// with one argon2id hash of the bench password) and one live session each, written with
// set-based SQL so that a million rows take seconds.
import SQLite from 'better-sqlite3'
import pg from 'pg'
import { createTokens } from '../../src/auth/tokens.js'
import { parseDatabaseUrl } from '../../src/config.js'
import { createDb } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { ROOT } from './servers.js'

const FAR_FUTURE = '2099-01-01T00:00:00.000Z'

/** An access token of a seeded user's session (session id `bench-<id>`). */
export interface UserToken {
  id: number
  token: string
}

async function migrate (databaseUrl: string): Promise<void> {
  const db = createDb(parseDatabaseUrl(databaseUrl, ROOT), { timeoutMs: 10_000 })
  try {
    await migrateToLatest(db)
  } finally {
    await db.close()
  }
}

/** Creates and migrates the SQLite file, seeds `users` users; returns the seconds the seeding took. */
export async function seedSqlite (file: string, users: number, hashed: string): Promise<number> {
  await migrate(`sqlite:///${file}`)
  const started = performance.now()
  const db = new SQLite(file)
  db.pragma('journal_mode = WAL')
  const now = new Date().toISOString()
  db.transaction(() => {
    db.prepare(`WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?)
      INSERT INTO users (id, username, username_normalized, email, email_normalized, hashed_password, role, created_at, updated_at)
      SELECT n, 'bench' || n, 'bench' || n, 'bench' || n || '@example.com', 'bench' || n || '@example.com', ?, 'user', ?, ? FROM g`).run(users, hashed, now, now)
    db.prepare(`INSERT INTO sessions (id, user_id, created_at, authenticated_at, last_used_at, expires_at, user_agent, ip)
      SELECT 'bench-' || id, id, ?, ?, ?, ?, 'bench', '127.0.0.1' FROM users`).run(now, now, now, FAR_FUTURE)
  })()
  db.pragma('wal_checkpoint(TRUNCATE)')
  db.close()
  return (performance.now() - started) / 1000
}

/** Migrates the (empty) PostgreSQL database and seeds `users` users; returns the seconds the seeding took. */
export async function seedPostgres (url: string, users: number, hashed: string): Promise<number> {
  await migrate(url)
  const started = performance.now()
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query('BEGIN')
    await client.query(`INSERT INTO users (id, username, username_normalized, email, email_normalized, hashed_password, role, created_at, updated_at)
      OVERRIDING SYSTEM VALUE
      SELECT n, 'bench' || n, 'bench' || n, 'bench' || n || '@example.com', 'bench' || n || '@example.com', $1, 'user', now(), now()
      FROM generate_series(1, $2::int) n`, [hashed, users])
    await client.query(`SELECT setval(pg_get_serial_sequence('users', 'id'), $1::int)`, [users])
    await client.query(`INSERT INTO sessions (id, user_id, created_at, authenticated_at, last_used_at, expires_at, user_agent, ip)
      SELECT 'bench-' || id, id, now(), now(), now(), $1, 'bench', '127.0.0.1' FROM users`, [FAR_FUTURE])
    await client.query('COMMIT')
    await client.query('ANALYZE')
  } finally {
    await client.end()
  }
  return (performance.now() - started) / 1000
}

/**
 * Creates database `name` on the PostgreSQL server of `adminUrl`; returns its URL and a function
 * that drops it (connections still open are closed by the server).
 */
export async function createPostgresDatabase (adminUrl: string, name: string): Promise<{ url: string, drop: () => Promise<void> }> {
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: adminUrl })
    await client.connect()
    try {
      await client.query(sql)
    } finally {
      await client.end()
    }
  }
  await admin(`CREATE DATABASE ${name}`)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) }
}

/** Access tokens for the seeded sessions of `count` users spread evenly over 1..users. */
export function mintTokens (secret: string, users: number, count: number): UserToken[] {
  const tokens = createTokens({ secret, issuer: 'user-management-api', audience: 'user-management-api', ttl: 24 * 3600, now: Date.now })
  const step = users / count
  return Array.from({ length: count }, (_, i) => {
    const id = Math.min(users, 1 + Math.floor(i * step))
    return { id, token: tokens.sign(id, `bench-${id}`) }
  })
}

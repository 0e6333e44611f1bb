import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, type TestContext } from 'node:test'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import pg from 'pg'
import { buildApp, loggerOptions, type AppOverrides } from '../src/app.js'
import { loadConfig, type Config } from '../src/config.js'
import { setUserRole } from '../src/users/users.queries.js'

export type DialectName = 'sqlite' | 'postgres'

/**
 * The dialects every HTTP suite runs on. PostgreSQL runs when TEST_DATABASE_URL is set (CI sets
 * it) and is skipped with the reason shown otherwise.
 */
export const DIALECTS: Array<{ name: DialectName, skip: string | false }> = [
  { name: 'sqlite', skip: false },
  { name: 'postgres', skip: process.env.TEST_DATABASE_URL ? false : 'TEST_DATABASE_URL is not set' }
]

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL
export const REDIS_SKIP = TEST_REDIS_URL ? false : 'TEST_REDIS_URL is not set'

// A fixed 32+ byte secret so tests never write a secret file into the repo.
export const TEST_JWT_SECRET = 'test-secret-0123456789abcdef0123456789abcdef'

export interface TestDatabase {
  url: string
  /** Removes the database (PostgreSQL) or its directory (SQLite). */
  drop: () => Promise<void>
}

/** A fresh, empty database: a SQLite file in a temp dir, or a new database on the test PostgreSQL server. */
export async function createTestDatabase (dialect: DialectName): Promise<TestDatabase> {
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'uma-test-'))
    return { url: `sqlite:///${join(dir, 'users.db')}`, drop: async () => rmSync(dir, { recursive: true, force: true }) }
  }
  const adminUrl = process.env.TEST_DATABASE_URL
  if (!adminUrl) throw new Error('TEST_DATABASE_URL is not set')
  const name = `uma_test_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: adminUrl })
      await client.connect()
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      } finally {
        await client.end()
      }
    }
  }
}

/** A clock tests can move: pass `clock.now` as the app's `now` override. */
export function createClock (start = Date.parse('2026-01-01T00:00:00Z')) {
  let current = start
  return {
    now: () => current,
    advance: (ms: number) => { current += ms },
    set: (ms: number) => { current = ms }
  }
}

export interface TestApp {
  app: FastifyInstance
  config: Config
  dialect: DialectName
  /** The database URL, for a second app instance or direct checks. */
  databaseUrl: string
}

export interface TestAppOptions {
  dialect: DialectName
  /** Extra environment for loadConfig (DATABASE_URL and JWT_SECRET are filled in). */
  env?: Record<string, string>
  overrides?: AppOverrides
  /** Reuse an existing database instead of creating one (e.g. a second instance). */
  databaseUrl?: string
}

/** Builds the real app on a fresh real database; closed and dropped when the test ends. */
export async function buildTestApp (t: TestContext | { after: (fn: () => Promise<void>) => void }, options: TestAppOptions): Promise<TestApp> {
  const database = options.databaseUrl ? undefined : await createTestDatabase(options.dialect)
  const databaseUrl = options.databaseUrl ?? database!.url
  const dataDir = mkdtempSync(join(tmpdir(), 'uma-data-'))
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    JWT_SECRET: TEST_JWT_SECRET,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    // Limits stay on (as in production) but roomy enough for a suite's signups from one address;
    // the limits suite sets its own.
    SIGNUP_IP_LIMIT: '1000/5m',
    LOGIN_IP_LIMIT: '1000/5m',
    ...options.env
  })
  const app = await buildApp(config, options.overrides)
  t.after(async () => {
    await app.close()
    await database?.drop()
    rmSync(dataDir, { recursive: true, force: true })
  })
  return { app, config, dialect: options.dialect, databaseUrl }
}

export function json (response: LightMyRequestResponse): any {
  return JSON.parse(response.body)
}

let counter = 0
/** Unique, policy-compliant signup data. */
export function newUserData (prefix = 'user') {
  counter++
  const tag = `${prefix}${counter}${randomBytes(3).toString('hex')}`
  return { username: tag, email: `${tag}@example.com`, password: `pw-${randomBytes(6).toString('hex')}-Secret!` }
}

export async function signup (app: FastifyInstance, body = newUserData()): Promise<{ id: number, username: string, email: string, password: string }> {
  const response = await app.inject({ method: 'POST', url: '/users/signup', payload: body })
  if (response.statusCode !== 201) throw new Error(`signup failed: ${response.statusCode} ${response.body}`)
  return { id: json(response).user_id, ...body }
}

export async function login (app: FastifyInstance, email: string, password: string): Promise<string> {
  const response = await app.inject({ method: 'POST', url: '/users/login', payload: { email, password } })
  if (response.statusCode !== 200) throw new Error(`login failed: ${response.statusCode} ${response.body}`)
  return json(response).access_token
}

/** Signs up and logs in a user (optionally made admin directly in the database). */
export async function createUser (app: FastifyInstance, options: { admin?: boolean } = {}) {
  const user = await signup(app, newUserData(options.admin ? 'admin' : 'user'))
  if (options.admin) await setUserRole(app.db.kysely, user.id, 'admin', new Date().toISOString())
  const token = await login(app, user.email, user.password)
  return { ...user, token }
}

/** app.inject with a Bearer token. */
export function authed (app: FastifyInstance, token: string, options: InjectOptions): Promise<LightMyRequestResponse> {
  return app.inject({ ...options, headers: { ...options.headers, authorization: `Bearer ${token}` } })
}

/**
 * One app (and database) shared by the tests of a describe block, for suites whose tests each
 * make their own users and so do not disturb one another: saves a database per test. Call in
 * the describe body; the returned function gives the app inside tests. Pass a function for
 * options that depend on earlier before hooks.
 */
export function useSuiteApp (options: TestAppOptions | (() => TestAppOptions)): () => TestApp {
  const cleanups: Array<() => Promise<void>> = []
  let testApp: TestApp | undefined
  before(async () => {
    // A function: options known only once earlier before hooks ran (a mail server's port).
    testApp = await buildTestApp({ after: (fn: () => Promise<void>) => { cleanups.push(fn) } }, typeof options === 'function' ? options() : options)
  })
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup()
  })
  return () => {
    if (testApp === undefined) throw new Error('useSuiteApp: the app is built in a before hook; use it inside tests')
    return testApp
  }
}

/** The app's logger options writing to memory: every line kept, raw and parsed. */
export function captureLogs () {
  const lines: any[] = []
  const raw: string[] = []
  const logger = {
    ...(loggerOptions(loadConfig({ LOG_LEVEL: 'info' })) as object),
    stream: { write: (line: string) => { raw.push(line); lines.push(JSON.parse(line)) } }
  }
  return { logger, lines, text: () => raw.join('') }
}

import { Migrator, type Migration, type MigrationResultSet } from 'kysely'
import type { Db } from './database.js'
import * as initial from './migrations/001-initial.js'
import * as refreshTokensAudit from './migrations/002-refresh-tokens-audit.js'
import * as accountLifecycle from './migrations/003-account-lifecycle.js'
import * as administration from './migrations/004-administration.js'

type DialectMigration = {
  up: (db: Parameters<Migration['up']>[0], dialect: Db['dialect']) => Promise<void>
  down?: Migration['down']
}

/** Every migration in order; names are stored in kysely_migration and must never change. */
const MIGRATIONS: Record<string, DialectMigration> = {
  '001-initial': initial,
  '002-refresh-tokens-audit': refreshTokensAudit,
  '003-account-lifecycle': accountLifecycle,
  '004-administration': administration
}

export const LATEST_MIGRATION = Object.keys(MIGRATIONS).at(-1) as string

function createMigrator (db: Db): Migrator {
  const migrations: Record<string, Migration> = {}
  for (const [name, migration] of Object.entries(MIGRATIONS)) {
    migrations[name] = { up: (kysely) => migration.up(kysely, db.dialect), down: migration.down }
  }
  return new Migrator({ db: db.kysely, provider: { getMigrations: async () => migrations } })
}

/**
 * Brings the schema to the latest migration. Safe to run from several processes at once:
 * Kysely takes an advisory lock on PostgreSQL; on SQLite see migrateSqlite.
 */
export async function migrateToLatest (db: Db): Promise<MigrationResultSet> {
  if (db.dialect === 'sqlite') return migrateSqlite(db)
  const result = await createMigrator(db).migrateToLatest()
  if (result.error) throw result.error
  return result
}

/**
 * On SQLite Kysely neither locks across processes nor wraps migrations in a transaction, so
 * two processes starting on a fresh file could both run 001 ("table users already exists") and
 * a crash mid-run could leave half a schema. One BEGIN IMMEDIATE around the run fixes both: the
 * second process waits for the write lock, then finds the migrations applied.
 */
async function migrateSqlite (db: Db): Promise<MigrationResultSet> {
  const sqlite = db.sqlite!
  for (let attempt = 1; ; attempt++) {
    try {
      sqlite.exec('BEGIN IMMEDIATE')
      break
    } catch (error) {
      // Each attempt already waited the busy timeout; a long migration elsewhere may need more.
      if (!String((error as { code?: unknown }).code).startsWith('SQLITE_BUSY') || attempt === 10) throw error
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  try {
    const result = await createMigrator(db).migrateToLatest()
    if (result.error) throw result.error
    sqlite.exec('COMMIT')
    return result
  } catch (error) {
    if (sqlite.inTransaction) sqlite.exec('ROLLBACK')
    throw error
  }
}

/** True when every known migration has been applied. */
export async function isSchemaCurrent (db: Db): Promise<boolean> {
  const migrations = await createMigrator(db).getMigrations()
  return migrations.every((migration) => migration.executedAt !== undefined)
}

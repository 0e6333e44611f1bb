import { Migrator, type Migration, type MigrationResultSet } from 'kysely'
import type { Db } from './database.js'
import * as initial from './migrations/001-initial.js'
import * as refreshTokensAudit from './migrations/002-refresh-tokens-audit.js'

type DialectMigration = {
  up: (db: Parameters<Migration['up']>[0], dialect: Db['dialect']) => Promise<void>
  down?: Migration['down']
}

/** Every migration in order; names are stored in kysely_migration and must never change. */
const MIGRATIONS: Record<string, DialectMigration> = {
  '001-initial': initial,
  '002-refresh-tokens-audit': refreshTokensAudit
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
 * Kysely takes a lock (an advisory lock on PostgreSQL) around the run.
 */
export async function migrateToLatest (db: Db): Promise<MigrationResultSet> {
  const result = await createMigrator(db).migrateToLatest()
  if (result.error) throw result.error
  return result
}

/** True when every known migration has been applied. */
export async function isSchemaCurrent (db: Db): Promise<boolean> {
  const migrations = await createMigrator(db).getMigrations()
  return migrations.every((migration) => migration.executedAt !== undefined)
}

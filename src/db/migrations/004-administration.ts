import { sql, type Kysely } from 'kysely'

// Frozen in time: never edit a migration that has shipped; add a new one.

/**
 * Administration: account status (suspension), the last login, and the indexes the admin user
 * directory needs to stay fast at a million users (see src/admin/directory.queries.ts for the
 * queries they serve). Building them on an existing large table takes a while (about a minute
 * for a million users): run `npm run cli -- migrate` before rolling out.
 */
export async function up (db: Kysely<unknown>, dialect: 'sqlite' | 'postgres'): Promise<void> {
  const ts = dialect === 'sqlite' ? 'text' : 'timestamptz'

  // status: 'active' or 'suspended'. A suspension with suspended_until in the past no longer
  // counts (read-time rule, no background job). These live on the users row, which login reads.
  await db.schema.alterTable('users')
    .addColumn('status', 'text', (col) => col.notNull().defaultTo('active').check(sql`status in ('active', 'suspended')`))
    .execute()
  await db.schema.alterTable('users').addColumn('suspended_until', ts).execute()
  await db.schema.alterTable('users').addColumn('suspension_reason', 'text').execute()
  await db.schema.alterTable('users').addColumn('last_login_at', ts).execute()

  // Sort keys of the directory, each followed by the id (the keyset is (key, id)). In SQLite every
  // index ends with the rowid (= id) already. last_login_at is null until the first login: such
  // users sort below everyone else, in PostgreSQL too (NULLS FIRST in ascending order).
  if (dialect === 'sqlite') {
    await db.schema.createIndex('users_created_at_idx').on('users').column('created_at').execute()
    await db.schema.createIndex('users_last_login_idx').on('users').column('last_login_at').execute()
    // Substring search (match=contains) scans this narrow index instead of the whole table.
    await db.schema.createIndex('users_search_idx').on('users').columns(['email_normalized', 'username_normalized']).execute()
  } else {
    await db.schema.createIndex('users_created_at_idx').on('users').columns(['created_at', 'id']).execute()
    await sql`CREATE INDEX users_last_login_idx ON users (last_login_at ASC NULLS FIRST, id)`.execute(db)
    // Prefix search and sorting by email/username compare code points (COLLATE "C"), as SQLite
    // does: a prefix is then a plain index range, and both databases list users in one order.
    await sql`CREATE INDEX users_email_sort_idx ON users ((email_normalized COLLATE "C"), id)`.execute(db)
    await sql`CREATE INDEX users_username_sort_idx ON users ((username_normalized COLLATE "C"), id)`.execute(db)
    if (await ensureTrigramExtension(db)) {
      await sql`CREATE INDEX users_email_trgm_idx ON users USING gin (email_normalized gin_trgm_ops)`.execute(db)
      await sql`CREATE INDEX users_username_trgm_idx ON users USING gin (username_normalized gin_trgm_ops)`.execute(db)
    }
  }
  // Filters that are usually rare (admins, suspended accounts, unverified or verified emails).
  // With suspended_until, the status filter (which must tell a suspension in force from one
  // that ran out) reads the index alone.
  await db.schema.createIndex('users_role_idx').on('users').column('role').execute()
  await db.schema.createIndex('users_status_idx').on('users').columns(['status', 'suspended_until']).execute()
  await db.schema.createIndex('users_email_verified_idx').on('users').column('email_verified_at').execute()

  if (dialect === 'sqlite') {
    // The directory's unfiltered total, exact and without counting a million index entries on
    // every page: a count kept by triggers in the transaction of each insert and delete. SQLite
    // runs one writer at a time, so the single row costs no concurrency. (PostgreSQL reads the
    // catalog's estimate instead: one row there would serialise every signup.)
    await db.schema.createTable('users_count').addColumn('n', 'integer', (col) => col.notNull()).execute()
    await sql`INSERT INTO users_count (n) SELECT count(*) FROM users`.execute(db)
    await sql`CREATE TRIGGER users_count_insert AFTER INSERT ON users BEGIN UPDATE users_count SET n = n + 1; END`.execute(db)
    await sql`CREATE TRIGGER users_count_delete AFTER DELETE ON users BEGIN UPDATE users_count SET n = n - 1; END`.execute(db)
  }

  // Audit: the reason an administrator gave, and the username/email of an account, copied onto
  // its events when it is deleted (events outlive accounts; the snapshot says whose they were).
  await db.schema.alterTable('audit_events').addColumn('reason', 'text').execute()
  await db.schema.alterTable('audit_events').addColumn('target_username', 'text').execute()
  await db.schema.alterTable('audit_events').addColumn('target_email', 'text').execute()
}

/**
 * pg_trgm makes match=contains an index search. CREATE EXTENSION needs the CREATE privilege on
 * the database (pg_trgm is a trusted extension since PostgreSQL 13) or a superuser; when it is
 * refused, substring search still works, by scanning. The savepoint keeps the refusal from
 * aborting the migration's transaction.
 */
async function ensureTrigramExtension (db: Kysely<unknown>): Promise<boolean> {
  await sql`SAVEPOINT pg_trgm_extension`.execute(db)
  try {
    await sql`CREATE EXTENSION IF NOT EXISTS pg_trgm`.execute(db)
    await sql`RELEASE SAVEPOINT pg_trgm_extension`.execute(db)
  } catch {
    await sql`ROLLBACK TO SAVEPOINT pg_trgm_extension`.execute(db)
  }
  // Installed now, or earlier by an administrator (perhaps in another schema on the search path).
  const { rows } = await sql<{ ok: boolean }>`SELECT EXISTS (
    SELECT 1 FROM pg_opclass WHERE opcname = 'gin_trgm_ops' AND pg_opclass_is_visible(oid)) AS ok`.execute(db)
  return rows[0]?.ok === true
}

export async function down (db: Kysely<unknown>): Promise<void> {
  await sql`DROP TRIGGER IF EXISTS users_count_insert`.execute(db)
  await sql`DROP TRIGGER IF EXISTS users_count_delete`.execute(db)
  await db.schema.dropTable('users_count').ifExists().execute()
  for (const column of ['target_email', 'target_username', 'reason']) {
    await db.schema.alterTable('audit_events').dropColumn(column).execute()
  }
  for (const index of ['users_email_verified_idx', 'users_status_idx', 'users_role_idx', 'users_username_trgm_idx', 'users_email_trgm_idx',
    'users_username_sort_idx', 'users_email_sort_idx', 'users_search_idx', 'users_last_login_idx', 'users_created_at_idx']) {
    await db.schema.dropIndex(index).ifExists().execute()
  }
  for (const column of ['last_login_at', 'suspension_reason', 'suspended_until', 'status']) {
    await db.schema.alterTable('users').dropColumn(column).execute()
  }
}

import type { Kysely } from 'kysely'

// Frozen in time: never edit a migration that has shipped; add a new one.

export async function up (db: Kysely<unknown>, dialect: 'sqlite' | 'postgres'): Promise<void> {
  const ts = dialect === 'sqlite' ? 'text' : 'timestamptz'

  // One row per refresh token ever issued to a session, stored only as a SHA-256 hash.
  // used_at is set when the token is rotated; presenting a used token again after the grace
  // window is treated as theft and revokes the session.
  await db.schema
    .createTable('refresh_tokens')
    .addColumn('token_hash', 'text', (col) => col.primaryKey())
    .addColumn('session_id', 'text', (col) => col.notNull().references('sessions.id').onDelete('cascade'))
    .addColumn('issued_at', ts, (col) => col.notNull())
    .addColumn('used_at', ts)
    .execute()
  await db.schema.createIndex('refresh_tokens_session_id_idx').on('refresh_tokens').column('session_id').execute()

  // Append-only security log. No foreign key to users: events outlive the accounts they name.
  await db.schema
    .createTable('audit_events')
    .addColumn('id', 'integer', (col) =>
      dialect === 'sqlite' ? col.primaryKey().autoIncrement() : col.primaryKey().generatedByDefaultAsIdentity())
    .addColumn('created_at', ts, (col) => col.notNull())
    .addColumn('type', 'text', (col) => col.notNull())
    .addColumn('outcome', 'text', (col) => col.notNull())
    .addColumn('user_id', 'integer')
    .addColumn('actor_id', 'integer')
    .addColumn('ip', 'text')
    .addColumn('user_agent', 'text')
    .addColumn('request_id', 'text')
    .addColumn('detail', 'text')
    .execute()
  await db.schema.createIndex('audit_events_user_id_idx').on('audit_events').columns(['user_id', 'id']).execute()
  await db.schema.createIndex('audit_events_type_idx').on('audit_events').columns(['type', 'id']).execute()
}

export async function down (db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('audit_events').execute()
  await db.schema.dropTable('refresh_tokens').execute()
}

import { sql, type ColumnDefinitionBuilder, type Kysely } from 'kysely'

// Frozen in time: never edit a migration that has shipped; add a new one.

export async function up (db: Kysely<unknown>, dialect: 'sqlite' | 'postgres'): Promise<void> {
  const ts = dialect === 'sqlite' ? 'text' : 'timestamptz'
  const id = (col: ColumnDefinitionBuilder) =>
    dialect === 'sqlite' ? col.primaryKey().autoIncrement() : col.primaryKey().generatedByDefaultAsIdentity()

  // What the per-request session check needs, on the rows it already reads: whether the account
  // has a second factor (kept in step with the factor tables by syncMfaEnabled) and the
  // session's assurance level. amr: how the session was authenticated, as the access token
  // carries it ([{"method", "timestamp"}], JSON); read only when a token is issued.
  await db.schema.alterTable('users').addColumn('mfa_enabled', 'integer', (col) => col.notNull().defaultTo(0)).execute()
  await db.schema.alterTable('sessions').addColumn('aal', 'text', (col) => col.notNull().defaultTo('aal1')).execute()
  await db.schema.alterTable('sessions').addColumn('amr', 'text', (col) => col.notNull().defaultTo('[]')).execute()
  // Sessions from before this migration were password logins.
  const epoch = dialect === 'sqlite'
    ? sql`cast(strftime('%s', authenticated_at) as integer)`
    : sql`floor(extract(epoch from authenticated_at))::bigint`
  await sql`update sessions set amr = '[{"method":"pwd","timestamp":' || ${epoch} || '}]'`.execute(db)

  // One TOTP secret per account, AES-256-GCM encrypted (see src/mfa/secret-box.ts), with the id
  // of the key that encrypted it. Pending until confirmed_at is set; a pending row expires at
  // expires_at. last_step: the last RFC 6238 time step accepted, advanced atomically so that a
  // code never works twice.
  await db.schema
    .createTable('mfa_totp')
    .addColumn('user_id', 'integer', (col) => col.primaryKey().references('users.id').onDelete('cascade'))
    .addColumn('secret', 'text', (col) => col.notNull())
    .addColumn('key_id', 'text', (col) => col.notNull())
    .addColumn('last_step', 'bigint', (col) => col.notNull().defaultTo(0))
    .addColumn('created_at', ts, (col) => col.notNull())
    .addColumn('confirmed_at', ts)
    .addColumn('expires_at', ts)
    .execute()

  // Recovery codes: only a SHA-256 of each; used_at is set once, atomically.
  await db.schema
    .createTable('mfa_recovery_codes')
    .addColumn('id', 'integer', id)
    .addColumn('user_id', 'integer', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('code_hash', 'text', (col) => col.notNull())
    .addColumn('created_at', ts, (col) => col.notNull())
    .addColumn('used_at', ts)
    .execute()
  await db.schema.createIndex('mfa_recovery_codes_user_code_idx').on('mfa_recovery_codes').columns(['user_id', 'code_hash']).unique().execute()

  // The second step of a login: a password was right, a code is still owed. Only the token's
  // SHA-256 is kept; single use (used_at), 5 minutes, ended by too many wrong codes (failures).
  await db.schema
    .createTable('mfa_challenges')
    .addColumn('id', 'integer', id)
    .addColumn('token_hash', 'text', (col) => col.notNull().unique())
    .addColumn('user_id', 'integer', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('created_at', ts, (col) => col.notNull())
    .addColumn('expires_at', ts, (col) => col.notNull())
    .addColumn('failures', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('used_at', ts)
    .execute()
  await db.schema.createIndex('mfa_challenges_user_id_idx').on('mfa_challenges').column('user_id').execute()
}

export async function down (db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('mfa_challenges').execute()
  await db.schema.dropTable('mfa_recovery_codes').execute()
  await db.schema.dropTable('mfa_totp').execute()
  await db.schema.alterTable('sessions').dropColumn('amr').execute()
  await db.schema.alterTable('sessions').dropColumn('aal').execute()
  await db.schema.alterTable('users').dropColumn('mfa_enabled').execute()
}

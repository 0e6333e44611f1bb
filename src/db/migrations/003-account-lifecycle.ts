import type { ColumnDefinitionBuilder, Kysely } from 'kysely'

// Frozen in time: never edit a migration that has shipped; add a new one.

export async function up (db: Kysely<unknown>, dialect: 'sqlite' | 'postgres'): Promise<void> {
  const ts = dialect === 'sqlite' ? 'text' : 'timestamptz'
  const id = (col: ColumnDefinitionBuilder) =>
    dialect === 'sqlite' ? col.primaryKey().autoIncrement() : col.primaryKey().generatedByDefaultAsIdentity()

  // When the address was proven to belong to the user (a link sent to it was opened); null:
  // not proven. pending_email: with EMAIL_VERIFICATION=required, the new address of a change
  // that waits for its confirmation. Both live on the row the per-request session check reads.
  await db.schema.alterTable('users').addColumn('email_verified_at', ts).execute()
  await db.schema.alterTable('users').addColumn('pending_email', 'text').execute()

  // One table for every single-use link: only a SHA-256 of the token is kept. used_at is set
  // when the token is consumed or voided (superseded, password changed, email changed).
  await db.schema
    .createTable('account_tokens')
    .addColumn('id', 'integer', id)
    .addColumn('token_hash', 'text', (col) => col.notNull().unique())
    .addColumn('purpose', 'text', (col) => col.notNull())
    .addColumn('user_id', 'integer', (col) => col.notNull().references('users.id').onDelete('cascade'))
    // The address the link was sent to, lower case: a change of email voids what went to the old one.
    .addColumn('email_normalized', 'text')
    .addColumn('created_at', ts, (col) => col.notNull())
    .addColumn('expires_at', ts, (col) => col.notNull())
    .addColumn('used_at', ts)
    .execute()
  await db.schema.createIndex('account_tokens_user_purpose_idx').on('account_tokens').columns(['user_id', 'purpose']).execute()

  // The transactional outbox: a row is written in the transaction of the change that causes the
  // email and delivered later by a worker. link_seed derives the link's token with the server's
  // key (the token itself is never stored) and is erased once the email is sent.
  await db.schema
    .createTable('email_outbox')
    .addColumn('id', 'integer', id)
    .addColumn('created_at', ts, (col) => col.notNull())
    .addColumn('purpose', 'text', (col) => col.notNull())
    .addColumn('recipient', 'text', (col) => col.notNull())
    .addColumn('recipient_normalized', 'text', (col) => col.notNull())
    .addColumn('user_id', 'integer')
    .addColumn('params', 'text', (col) => col.notNull())
    .addColumn('link_seed', 'text')
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('next_attempt_at', ts, (col) => col.notNull())
    .addColumn('lease_until', ts)
    .addColumn('last_error', 'text')
    .addColumn('sent_at', ts)
    .execute()
  await db.schema.createIndex('email_outbox_due_idx').on('email_outbox').columns(['status', 'next_attempt_at']).execute()
  await db.schema.createIndex('email_outbox_recipient_idx').on('email_outbox').columns(['recipient_normalized', 'created_at']).execute()
}

export async function down (db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('email_outbox').execute()
  await db.schema.dropTable('account_tokens').execute()
  await db.schema.alterTable('users').dropColumn('pending_email').execute()
  await db.schema.alterTable('users').dropColumn('email_verified_at').execute()
}

import type { ColumnDefinitionBuilder, Kysely } from 'kysely'

// Frozen in time: never edit a migration that has shipped; add a new one.

export async function up (db: Kysely<unknown>, dialect: 'sqlite' | 'postgres'): Promise<void> {
  const ts = dialect === 'sqlite' ? 'text' : 'timestamptz'
  const id = (col: ColumnDefinitionBuilder) =>
    dialect === 'sqlite' ? col.primaryKey().autoIncrement() : col.primaryKey().generatedByDefaultAsIdentity()

  // One row per WebAuthn credential. credential_id: base64url, as the browser names it (unique:
  // a credential belongs to one account). public_key: the COSE key, base64url. counter: the
  // authenticator's signature counter (0 forever for synced passkeys). transports: JSON array,
  // handed back to browsers as hints. device_type: singleDevice or multiDevice; backed_up: 0/1,
  // as the last ceremony's flags said. user_handle: the WebAuthn user.id (random, no personal
  // data) the credential was made for; a discoverable login must present the same.
  await db.schema
    .createTable('passkeys')
    .addColumn('id', 'integer', id)
    .addColumn('user_id', 'integer', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('credential_id', 'text', (col) => col.notNull().unique())
    .addColumn('public_key', 'text', (col) => col.notNull())
    .addColumn('counter', 'bigint', (col) => col.notNull().defaultTo(0))
    .addColumn('transports', 'text', (col) => col.notNull().defaultTo('[]'))
    .addColumn('device_type', 'text', (col) => col.notNull())
    .addColumn('backed_up', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('aaguid', 'text', (col) => col.notNull())
    .addColumn('user_handle', 'text', (col) => col.notNull())
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('created_at', ts, (col) => col.notNull())
    .addColumn('last_used_at', ts)
    .execute()
  await db.schema.createIndex('passkeys_user_id_idx').on('passkeys').column('user_id').execute()

  // A challenge per ceremony (registration or authentication), stored as its SHA-256, for 5
  // minutes; deleted as it is used (before the response is verified), so it works once.
  // Registration challenges belong to the session that asked (and carry the user handle the
  // options named); login challenges belong to no one until a passkey answers them.
  await db.schema
    .createTable('webauthn_challenges')
    .addColumn('id', 'integer', id)
    .addColumn('challenge_hash', 'text', (col) => col.notNull().unique())
    .addColumn('ceremony', 'text', (col) => col.notNull())
    .addColumn('user_id', 'integer', (col) => col.references('users.id').onDelete('cascade'))
    .addColumn('session_id', 'text')
    .addColumn('user_handle', 'text')
    .addColumn('created_at', ts, (col) => col.notNull())
    .addColumn('expires_at', ts, (col) => col.notNull())
    .execute()
  await db.schema.createIndex('webauthn_challenges_expires_at_idx').on('webauthn_challenges').column('expires_at').execute()
  await db.schema.createIndex('webauthn_challenges_session_id_idx').on('webauthn_challenges').column('session_id').execute()

  // The passkey a session was started (or raised to aal2) with: removing that passkey ends the
  // sessions it opened. No foreign key: ids are never reused, and the removal reads it first.
  await db.schema.alterTable('sessions').addColumn('passkey_id', 'integer').execute()
}

export async function down (db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('sessions').dropColumn('passkey_id').execute()
  await db.schema.dropTable('webauthn_challenges').execute()
  await db.schema.dropTable('passkeys').execute()
}

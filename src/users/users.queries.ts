import type { Kysely } from 'kysely'
import { isUniqueViolation, uniqueViolationTarget, type Database, type NewUser, type Role, type UserRow } from '../db/database.js'
import { errors } from '../errors.js'

type DbOrTrx = Kysely<Database>

/** Columns the public user is made of (toPublicUser); never the hash. */
export const PUBLIC_USER_COLUMNS = ['id', 'username', 'email', 'role', 'created_at', 'updated_at', 'email_verified_at', 'pending_email'] as const
export type UserRecord = Pick<UserRow, typeof PUBLIC_USER_COLUMNS[number]>

/** What the API returns for a user (UserPublic). */
export interface PublicUser extends Omit<UserRecord, 'email_verified_at' | 'pending_email'> {
  email_verified: boolean
  /** Only while a change of email waits for the new address to confirm it (EMAIL_VERIFICATION=required). */
  pending_email?: string
}

export function toPublicUser (row: UserRecord): PublicUser {
  const user: PublicUser = {
    id: row.id,
    username: row.username,
    email: row.email,
    role: row.role,
    created_at: row.created_at,
    updated_at: row.updated_at,
    email_verified: row.email_verified_at !== null
  }
  if (row.pending_email !== null) user.pending_email = row.pending_email
  return user
}

export function findUserById (db: DbOrTrx, id: number): Promise<UserRecord | undefined> {
  return db.selectFrom('users').select(PUBLIC_USER_COLUMNS).where('id', '=', id).executeTakeFirst()
}

/** Login look-up: by the normalised email, with the hash and what decides whether the account may log in. */
export function findUserForLogin (db: DbOrTrx, emailNormalized: string) {
  return db.selectFrom('users')
    .select(['id', 'hashed_password', 'email_verified_at', 'status', 'suspended_until'])
    .where('email_normalized', '=', emailNormalized)
    .executeTakeFirst()
}
export type LoginUser = NonNullable<Awaited<ReturnType<typeof findUserForLogin>>>

/** By the normalised email, without the hash (admin CLI, requests for links). */
export function findUserByEmail (db: DbOrTrx, emailNormalized: string): Promise<UserRecord | undefined> {
  return db.selectFrom('users').select(PUBLIC_USER_COLUMNS).where('email_normalized', '=', emailNormalized).executeTakeFirst()
}

export type UserWithStatus = UserRecord & Pick<UserRow, 'status' | 'suspended_until'>

/** By the normalised email, with the account's status (requests for links). */
export function findUserByEmailWithStatus (db: DbOrTrx, emailNormalized: string): Promise<UserWithStatus | undefined> {
  return db.selectFrom('users').select([...PUBLIC_USER_COLUMNS, 'status', 'suspended_until']).where('email_normalized', '=', emailNormalized).executeTakeFirst()
}

export function findUserCredentials (db: DbOrTrx, id: number): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
}

/** Which of the normalised username/email already belong to someone other than exceptId. */
export async function findTaken (db: DbOrTrx, values: { usernameNormalized?: string, emailNormalized?: string }, exceptId?: number): Promise<{ username: boolean, email: boolean }> {
  const { usernameNormalized, emailNormalized } = values
  if (usernameNormalized === undefined && emailNormalized === undefined) return { username: false, email: false }
  const rows = await db.selectFrom('users')
    .select(['id', 'username_normalized', 'email_normalized'])
    .where((eb) => eb.or([
      ...(usernameNormalized !== undefined ? [eb('username_normalized', '=', usernameNormalized)] : []),
      ...(emailNormalized !== undefined ? [eb('email_normalized', '=', emailNormalized)] : [])
    ]))
    .execute()
  const others = rows.filter((row) => row.id !== exceptId)
  return {
    username: others.some((row) => row.username_normalized === usernameNormalized),
    email: others.some((row) => row.email_normalized === emailNormalized)
  }
}

/** Turns a unique violation on users into the 400 a client can act on. */
export function takenError (taken: { username: boolean, email: boolean }): Error {
  return errors.badRequest(taken.username ? 'Username already registered' : 'Email already registered')
}

function mapUniqueViolation (error: unknown): never {
  if (isUniqueViolation(error)) {
    const target = uniqueViolationTarget(error)
    throw takenError({ username: target.includes('username'), email: !target.includes('username') })
  }
  throw error
}

export async function insertUser (db: DbOrTrx, user: NewUser): Promise<number> {
  try {
    const row = await db.insertInto('users').values(user).returning('id').executeTakeFirstOrThrow()
    return row.id
  } catch (error) {
    mapUniqueViolation(error)
  }
}

export type UserChanges = Partial<Pick<UserRow, 'username' | 'username_normalized' | 'email' | 'email_normalized' | 'hashed_password' | 'role' | 'updated_at' | 'email_verified_at' | 'pending_email'>>

export async function updateUser (db: DbOrTrx, id: number, changes: UserChanges): Promise<UserRecord | undefined> {
  try {
    return await db.updateTable('users').set(changes).where('id', '=', id).returning(PUBLIC_USER_COLUMNS).executeTakeFirst()
  } catch (error) {
    mapUniqueViolation(error)
  }
}

/** Deletes the user; their sessions go with them (ON DELETE CASCADE). */
export async function deleteUser (db: DbOrTrx, id: number): Promise<boolean> {
  const result = await db.deleteFrom('users').where('id', '=', id).executeTakeFirst()
  return result.numDeletedRows > 0n
}

export async function setUserRole (db: DbOrTrx, id: number, role: Role, now: string): Promise<void> {
  await db.updateTable('users').set({ role, updated_at: now }).where('id', '=', id).execute()
}

import type { Kysely } from 'kysely'
import { isUniqueViolation, uniqueViolationTarget, type Database, type NewUser, type Role, type UserRow } from '../db/database.js'
import { errors } from '../errors.js'

type DbOrTrx = Kysely<Database>

/** Columns that may leave the service; never the hash. */
export const PUBLIC_USER_COLUMNS = ['id', 'username', 'email', 'role', 'created_at', 'updated_at'] as const
export type PublicUser = Pick<UserRow, typeof PUBLIC_USER_COLUMNS[number]>

export function findUserById (db: DbOrTrx, id: number): Promise<PublicUser | undefined> {
  return db.selectFrom('users').select(PUBLIC_USER_COLUMNS).where('id', '=', id).executeTakeFirst()
}

/** Login look-up: by the normalised email, with the hash. */
export function findUserForLogin (db: DbOrTrx, emailNormalized: string): Promise<Pick<UserRow, 'id' | 'hashed_password'> | undefined> {
  return db.selectFrom('users').select(['id', 'hashed_password']).where('email_normalized', '=', emailNormalized).executeTakeFirst()
}

/** By the normalised email, without the hash (admin CLI). */
export function findUserByEmail (db: DbOrTrx, emailNormalized: string): Promise<PublicUser | undefined> {
  return db.selectFrom('users').select(PUBLIC_USER_COLUMNS).where('email_normalized', '=', emailNormalized).executeTakeFirst()
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

export type UserChanges = Partial<Pick<UserRow, 'username' | 'username_normalized' | 'email' | 'email_normalized' | 'hashed_password' | 'role' | 'updated_at'>>

export async function updateUser (db: DbOrTrx, id: number, changes: UserChanges): Promise<PublicUser | undefined> {
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

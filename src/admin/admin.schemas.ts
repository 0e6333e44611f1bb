import { Type, type Static } from '@sinclair/typebox'
import { EMAIL_MAX_LENGTH, USERNAME_MAX_LENGTH } from '../users/identity.js'
import { UserPublic } from '../users/users.schemas.js'

// The admin API's shapes: request validation, types, serialization and the OpenAPI document.

const Timestamp = Type.String({ format: 'date-time' })
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T, description: string) =>
  Type.Union([schema, Type.Null()], { description })
const Role = Type.Union([Type.Literal('user'), Type.Literal('admin')])
const Status = Type.Union([Type.Literal('active'), Type.Literal('suspended')])

export const AdminUser = Type.Object({
  ...UserPublic.properties,
  status: Type.Union([Type.Literal('active'), Type.Literal('suspended')], { description: 'suspended while a suspension is in force; an expired one reads as active' }),
  suspended_until: Nullable(Timestamp, 'When the suspension ends by itself; null: until lifted (or not suspended)'),
  suspension_reason: Nullable(Type.String(), 'The reason given when suspending (administrators only)'),
  last_login_at: Nullable(Timestamp, 'The last password login; null: never'),
  sessions: Type.Integer({ minimum: 0, description: 'Live sessions (signed-in devices)' })
}, { title: 'AdminUser' })

export const UsersPage = Type.Object({
  users: Type.Array(AdminUser),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor (with the same filters, sort and order) for the next page; null on the last page' }),
  total: Type.Integer({ minimum: 0, description: 'Users matching the filters (ignores the cursor). When total_exact is false: the cap (10,000) for a filtered list, an estimate from the catalog for the unfiltered list on PostgreSQL' }),
  total_exact: Type.Boolean()
}, { title: 'UsersPage' })

// An ISO 8601 date (a whole UTC day) or date-time with its offset.
const DateOrDateTime = Type.String({
  pattern: '^\\d{4}-\\d{2}-\\d{2}(T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:?\\d{2}))?$',
  maxLength: 40,
  description: 'ISO 8601: 2026-05-01 (a UTC day) or 2026-05-01T12:00:00Z'
})

export const ListUsersQuery = Type.Object({
  q: Type.Optional(Type.String({ maxLength: EMAIL_MAX_LENGTH, description: 'Case-insensitive start of the email or username (match=contains: anywhere in them). % and _ are ordinary characters. Blank: no search' })),
  match: Type.Optional(Type.Union([Type.Literal('prefix'), Type.Literal('contains')], { default: 'prefix' })),
  role: Type.Optional(Role),
  status: Type.Optional(Status),
  email_verified: Type.Optional(Type.Boolean()),
  created_from: Type.Optional({ ...DateOrDateTime, description: 'Created at or after (a date: from the start of that UTC day)' }),
  created_to: Type.Optional({ ...DateOrDateTime, description: 'Created at or before (a date: up to the end of that UTC day)' }),
  sort: Type.Union([Type.Literal('created_at'), Type.Literal('email'), Type.Literal('username'), Type.Literal('last_login_at')], { default: 'created_at' }),
  order: Type.Union([Type.Literal('desc'), Type.Literal('asc')], { default: 'desc' }),
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, pattern: '^[A-Za-z0-9_-]+$', description: 'next_cursor of the previous page' }))
}, { additionalProperties: false })
export type ListUsersQuery = Static<typeof ListUsersQuery>

export const AdminUserCreate = Type.Object({
  username: Type.String({ minLength: 1, maxLength: USERNAME_MAX_LENGTH, examples: ['maria'] }),
  email: Type.String({ format: 'email', maxLength: EMAIL_MAX_LENGTH, examples: ['maria@example.com'] }),
  role: Type.Optional({ ...Role, default: 'user' }),
  invite: Type.Optional(Type.Boolean({ default: true, description: 'Email the user a link to set their password (INVITE_TOKEN_TTL, 72 hours by default)' })),
  password: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'Only with invite: false, and then required. Never emailed, logged or returned' }))
}, { additionalProperties: false, title: 'AdminUserCreate' })
export type AdminUserCreate = Static<typeof AdminUserCreate>

const Reason = Type.String({ minLength: 1, maxLength: 500, description: 'Recorded in the audit log', examples: ['Spam reports from several users'] })

export const SuspendRequest = Type.Object({
  reason: Reason,
  until: Type.Optional(Type.String({ format: 'date-time', description: 'When the suspension ends by itself (in the future); absent: until lifted' }))
}, { additionalProperties: false, title: 'SuspendRequest' })

export const UnsuspendRequest = Type.Object({
  reason: Type.Optional(Reason)
}, { additionalProperties: false, title: 'UnsuspendRequest' })

export const RoleChange = Type.Object({
  role: Role,
  reason: Type.Optional(Reason)
}, { additionalProperties: false, title: 'RoleChange' })

export const AdminPasswordReset = Type.Object({
  revoke_sessions: Type.Optional(Type.Boolean({ default: false, description: 'Also end every session of the account now' }))
}, { additionalProperties: false, title: 'AdminPasswordReset' })

export const AdminUserParams = Type.Object({
  user_id: Type.Integer({ minimum: 1, maximum: 2147483647, description: 'The user\'s id' })
})

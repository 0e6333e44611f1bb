import type { AccountStatus } from '../db/database.js'

// Suspension is read, never swept: a suspension whose `suspended_until` has passed stops counting
// at that moment, for login, the directory's filter and every answer, with no background job.

export interface StatusColumns {
  status: AccountStatus
  suspended_until: string | null
}

/** True while an administrator's suspension is in force at `nowMs`. */
export function isSuspended (row: StatusColumns, nowMs: number): boolean {
  return row.status === 'suspended' && (row.suspended_until === null || Date.parse(row.suspended_until) > nowMs)
}

/** The status as it holds at `nowMs`: an expired suspension reads as active. */
export function effectiveStatus (row: StatusColumns, nowMs: number): AccountStatus {
  return isSuspended(row, nowMs) ? 'suspended' : 'active'
}

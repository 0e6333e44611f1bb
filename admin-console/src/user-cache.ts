import type { AdminUser } from './api.js'

// The last directory row of each user opened from it: the user page shows it at once while it
// fetches the current one. Only this tab's memory, like everything else.
const users = new Map<number, AdminUser>()

export function rememberUser (user: AdminUser): void {
  users.set(user.id, user)
}

export function recalledUser (id: number): AdminUser | undefined {
  return users.get(id)
}

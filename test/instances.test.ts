import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { authed, buildTestApp, createTestDatabase, DIALECTS, json, login, signup } from './helpers.js'

// Two instances on one database (PostgreSQL, or two apps on the same SQLite file as WORKERS
// runs them): all session state is in the database, so a revocation through one instance is
// refused by the other at once. (Shared lockout counters need Redis: see the limits tests.)

for (const dialect of DIALECTS) {
  describe(`two instances on one database (${dialect.name})`, { skip: dialect.skip }, () => {
    it('refuses on instance B, at once, a session revoked through instance A', async (t) => {
      const database = await createTestDatabase(dialect.name)
      const { app: a } = await buildTestApp(t, { dialect: dialect.name, databaseUrl: database.url })
      const { app: b } = await buildTestApp(t, { dialect: dialect.name, databaseUrl: database.url })
      t.after(() => database.drop())

      const user = await signup(a)
      const kept = await login(a, user.email, user.password)
      const loggedOut = await login(a, user.email, user.password)
      const other = await login(b, user.email, user.password)
      const me = { method: 'GET', url: '/users/me' } as const
      for (const token of [kept, loggedOut, other]) assert.equal((await authed(b, token, me)).statusCode, 200)

      // Logout through A.
      assert.equal((await authed(a, loggedOut, { method: 'POST', url: '/users/logout' })).statusCode, 204)
      assert.equal((await authed(b, loggedOut, me)).statusCode, 401)

      // A password change through A ends every other session, including one opened on B.
      const changed = await authed(a, kept, { method: 'PUT', url: `/users/${user.id}`, payload: { password: `${user.password}-new` } })
      assert.equal(changed.statusCode, 200, changed.body)
      assert.equal((await authed(b, other, me)).statusCode, 401)
      assert.equal((await authed(b, kept, me)).statusCode, 200, 'the session that changed the password stays')

      // Deleting the account through A ends the last one.
      assert.equal((await authed(a, kept, { method: 'DELETE', url: `/users/${user.id}` })).statusCode, 204)
      const refused = await authed(b, kept, me)
      assert.equal(refused.statusCode, 401)
      assert.equal(json(refused).detail, 'Could not validate credentials')
    })
  })
}

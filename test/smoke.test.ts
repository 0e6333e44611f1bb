import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { authed, buildTestApp, createUser, DIALECTS, json } from './helpers.js'

for (const dialect of DIALECTS) {
  describe(`smoke (${dialect.name})`, { skip: dialect.skip }, () => {
    it('signs up, logs in and reads the own account', async (t) => {
      const { app } = await buildTestApp(t, { dialect: dialect.name })
      const user = await createUser(app)
      const response = await authed(app, user.token, { method: 'GET', url: `/users/${user.id}` })
      assert.equal(response.statusCode, 200)
      assert.equal(json(response).email, user.email)
      assert.equal(json(response).hashed_password, undefined)
    })
  })
}

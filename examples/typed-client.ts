// A typed client in a few lines: types generated from the running server's /openapi.json,
//   npx openapi-typescript http://127.0.0.1:8000/openapi.json -o api.d.ts
// and calls made with openapi-fetch. A path, parameter or field that does not exist is a
// compile error. Run: API_URL=http://127.0.0.1:8000 npx tsx typed-client.ts
import createClient, { type Middleware } from 'openapi-fetch'
import type { paths } from './api.js'

const client = createClient<paths>({ baseUrl: process.env.API_URL ?? 'http://127.0.0.1:8000' })

// Every request carries the current access token, once there is one.
let accessToken: string | undefined
const bearer: Middleware = {
  onRequest ({ request }) {
    if (accessToken !== undefined) request.headers.set('authorization', `Bearer ${accessToken}`)
    return request
  }
}
client.use(bearer)

const tag = Date.now().toString(36)
const account = { username: `ada-${tag}`, email: `ada-${tag}@example.com`, password: 'analytical engine 1843' }

// Sign up: 201 { message, user_id }. Errors arrive typed as { detail }.
const signup = await client.POST('/users/signup', { body: account })
if (signup.error) throw new Error(`signup failed (${signup.response.status}): ${signup.error.detail}`)
const userId = signup.data.user_id
console.log(`signed up: user ${userId}`)

// Log in: an access token (sent by the middleware above) and a single-use refresh token.
const login = await client.POST('/users/login', { body: { email: account.email, password: account.password } })
if (login.error) throw new Error(`login failed (${login.response.status}): ${login.error.detail}`)
accessToken = login.data.access_token
let refreshToken = login.data.refresh_token
console.log(`logged in: access token valid for ${login.data.expires_in} s`)

// Read your own account.
const me = await client.GET('/users/{user_id}', { params: { path: { user_id: userId } } })
if (me.error) throw new Error(`read failed (${me.response.status}): ${me.error.detail}`)
console.log(`read: ${me.data.username} <${me.data.email}>, role ${me.data.role}, since ${me.data.created_at}`)

// Refresh: a new pair; the old refresh token is used up.
const refreshed = await client.POST('/users/refresh', { body: { refresh_token: refreshToken } })
if (refreshed.error) throw new Error(`refresh failed (${refreshed.response.status}): ${refreshed.error.detail}`)
accessToken = refreshed.data.access_token
refreshToken = refreshed.data.refresh_token
console.log('refreshed: new access and refresh tokens')

// Log out: 204, this session ends; its access token is refused from now on.
const logout = await client.POST('/users/logout', { body: {} })
if (logout.response.status !== 204) throw new Error(`logout failed (${logout.response.status})`)
const after = await client.GET('/users/me')
console.log(`logged out: GET /users/me now answers ${after.response.status}`)

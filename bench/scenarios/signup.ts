// POST /users/signup: a new account per request (one argon2id hash each), measured like the
// login against the raw hash rate (see login.ts).
import type { Scenario } from '../lib/bench.js'
import { measureAgainstRawArgon2 } from './login.js'

export const signup: Scenario = {
  name: 'signup',
  description: 'POST /users/signup (one argon2id hash each) against the raw hash rate, bracketed',
  async run (bench) {
    let load = 0
    // Usernames unique across bench runs (runId), wrk runs (load), threads and requests.
    const lua = () => `
local n = 0
function request()
  n = n + 1
  local name = "new${bench.runId}r${++load}t" .. thread_id .. "x" .. n
  return wrk.format("POST", "/users/signup", { ["Content-Type"] = "application/json" },
    '{"username":"' .. name .. '","email":"' .. name .. '@example.com","password":"Correct-Horse-Battery-9"}')
end
`
    await measureAgainstRawArgon2(bench, 'hash', 'POST /users/signup', () => ({ lua: lua() }))
  }
}

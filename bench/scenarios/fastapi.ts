// The FastAPI app this service replaces, rebuilt from its README (bench/fastapi-reference/app.py),
// under uvicorn with one worker, measured the same way: GET /users/{id} and POST /users/login.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { ratioTo, type Scenario } from '../lib/bench.js'
import { authenticatedGets, logins } from '../lib/loads.js'
import { freePort, ROOT } from '../lib/servers.js'

const PYTHON = '/usr/bin/python3'
const MODULES = 'fastapi, uvicorn, sqlalchemy, passlib, bcrypt, jwt, email_validator'
export const FASTAPI_PACKAGES = 'python3-fastapi python3-uvicorn python3-sqlalchemy python3-passlib python3-bcrypt python3-jwt python3-email-validator'
const USERS = 50

export const fastapi: Scenario = {
  name: 'fastapi',
  description: 'the FastAPI app (bench/fastapi-reference), GET and login, against ours',
  optIn: true,
  requires: { option: '--fastapi', given: (settings) => settings.fastapi },
  async run (bench) {
    if (spawnSync(PYTHON, ['-c', `import ${MODULES}`]).status !== 0) {
      throw new Error(`--fastapi needs ${PYTHON} with ${MODULES} (Debian: apt-get install ${FASTAPI_PACKAGES})`)
    }
    const port = await freePort()
    const server = await bench.startProcess({
      command: PYTHON,
      args: ['-m', 'uvicorn', '--app-dir', join(ROOT, 'bench/fastapi-reference'), 'app:app', '--host', '127.0.0.1', '--port', String(port), '--log-level', 'warning'],
      cwd: bench.dir,
      env: { PATH: process.env.PATH, DATABASE_URL: `sqlite:///${join(bench.dir, 'fastapi.db')}`, JWT_SECRET: bench.jwtSecret },
      port,
      readyPath: '/docs',
      stdio: ['ignore', 'ignore', 'inherit']
    })
    // Its users sign up and log in through its own API (bcrypt cost 12: about a second each).
    const post = async (path: string, body: object) => (await fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json() as Promise<Record<string, string | number>>
    const tokens: Array<{ id: number, token: string }> = []
    for (let i = 1; i <= USERS; i++) {
      const { user_id: id } = await post('/users/signup', { username: `bench${i}`, email: `bench${i}@example.com`, password: bench.password })
      const { access_token: token } = await post('/users/login', { email: `bench${i}@example.com`, password: bench.password })
      tokens.push({ id: Number(id), token: String(token) })
    }
    const gets = authenticatedGets(tokens)
    const get = await bench.measure({
      label: 'FastAPI app: GET /users/{id}',
      kind: 'fastapi',
      target: server,
      load: (duration) => bench.wrk(server.url, { requests: gets, duration })
    })
    ratioTo(bench, get, 'get', 'ours')
    const posts = logins(USERS, bench.password)
    const login = await bench.measure({
      label: 'FastAPI app: POST /users/login',
      kind: 'fastapi',
      target: server,
      warmup: 0,
      load: (duration) => bench.wrk(server.url, { requests: posts, duration })
    })
    ratioTo(bench, login, 'login', 'ours')
    await server.stop()
  }
}

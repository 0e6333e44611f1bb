import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { buildTestApp, json } from './helpers.js'
import { REPO_ROOT, startServer } from './server-process.js'

// The OpenAPI document as teams check it before adopting a service: Redocly CLI's recommended
// ruleset, clean, on the document the running server serves; and security that says the truth.

const REDOCLY = join(REPO_ROOT, 'node_modules/@redocly/cli/bin/cli.js')
const METHODS = ['get', 'put', 'post', 'delete', 'patch']

/** Every operationId a client may have generated code from; a rename breaks them. */
const STABLE_OPERATION_IDS = ['signup', 'login', 'refreshToken', 'logout', 'getUser', 'updateUser', 'deleteUser',
  'getMe', 'listMySessions', 'revokeMySession', 'listAuditEvents', 'liveness', 'readiness']

function tempDir (t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'uma-openapi-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Runs the pinned Redocly CLI with this repository's redocly.yaml; no telemetry, no update check. */
function redocly (args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [REDOCLY, ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', CI: 'true' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

/** A concrete URL for a templated path: integer parameters become 1, others "x". */
function concretePath (path: string, operation: any): string {
  return path.replace(/\{([^}]+)\}/g, (_match, name: string) => {
    const parameter = (operation.parameters ?? []).find((p: any) => p.in === 'path' && p.name === name)
    return parameter?.schema?.type === 'integer' ? '1' : 'x'
  })
}

function operations (spec: any): Array<{ path: string, method: string, operation: any }> {
  return Object.entries(spec.paths as Record<string, any>).flatMap(([path, item]) =>
    METHODS.filter((method) => item[method] !== undefined).map((method) => ({ path, method, operation: item[method] })))
}

describe('OpenAPI document', () => {
  it('passes Redocly CLI\'s recommended ruleset with no error and no warning, as the running server serves it', async (t) => {
    const config = readFileSync(join(REPO_ROOT, 'redocly.yaml'), 'utf8')
    assert.match(config, /^extends:\s*\n\s*- recommended\s*$/m)
    assert.doesNotMatch(config, /^(rules|decorators|preprocessors|apis):/m, 'the ruleset is recommended as is: fix the document, not the rules')

    const server = await startServer(t, { DATA_DIR: tempDir(t), PUBLIC_URL: 'https://accounts.example.net/' }, { cwd: tempDir(t) })
    const lint = await redocly(['lint', `${server.url}/openapi.json`, '--format', 'json'])
    const report = JSON.parse(lint.stdout.slice(lint.stdout.indexOf('{')))
    const problems = (report.problems as any[]).map((problem) => `${problem.severity} ${problem.ruleId} at ${problem.location?.[0]?.pointer}: ${problem.message}`)
    assert.deepEqual(problems, [])
    assert.deepEqual(report.totals, { errors: 0, warnings: 0, ignored: 0 })
    assert.equal(lint.code, 0, lint.stderr)
  })

  it('fails the lint when an operation breaks the ruleset, so the check above can fail', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite' })
    const spec = json(await app.inject({ method: 'GET', url: '/openapi.json' }))
    delete spec.info.license
    delete spec.paths['/users/signup'].post.security
    const file = join(tempDir(t), 'broken.json')
    writeFileSync(file, JSON.stringify(spec))
    const lint = await redocly(['lint', file, '--format', 'json'])
    const report = JSON.parse(lint.stdout.slice(lint.stdout.indexOf('{')))
    assert.deepEqual((report.problems as any[]).map((problem) => problem.ruleId).sort(), ['info-license', 'security-defined'])
    assert.notEqual(lint.code, 0)
  })

  it('gives a route that declares no security Bearer when it runs app.authenticate, and an explicit public [] otherwise', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite' })
    const schema = (operationId: string) => ({ operationId, summary: operationId, response: { 200: { type: 'object' }, 401: { type: 'object' } } })
    app.get('/probe/authenticated', { onRequest: [app.authenticate], schema: schema('probeAuthenticated') }, async () => ({}))
    app.get('/probe/public', { schema: schema('probePublic') }, async () => ({}))
    const spec = json(await app.inject({ method: 'GET', url: '/openapi.json' }))
    assert.deepEqual(spec.paths['/probe/authenticated'].get.security, [{ bearerAuth: [] }])
    assert.deepEqual(spec.paths['/probe/public'].get.security, [])
    assert.deepEqual(spec.paths['/users/signup'].post.security, [])
  })

  it('names PUBLIC_URL as its server and the version and licence of package.json', async (t) => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'))
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { PUBLIC_URL: 'https://id.example.net/accounts/' } })
    const spec = json(await app.inject({ method: 'GET', url: '/openapi.json' }))
    assert.deepEqual(spec.servers, [{ url: 'https://id.example.net/accounts' }])
    assert.deepEqual(spec.info.license, { name: pkg.license, identifier: pkg.license })
    assert.equal(spec.info.version, pkg.version)
    assert.ok(spec.paths['/users/signup'], 'paths are the service\'s own, never cut by PUBLIC_URL\'s path')
  })

  it('keeps every operationId that clients generate code from', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite' })
    const spec = json(await app.inject({ method: 'GET', url: '/openapi.json' }))
    const ids = operations(spec).map(({ operation }) => operation.operationId)
    for (const id of STABLE_OPERATION_IDS) assert.ok(ids.includes(id), `operationId ${id} is missing`)
    assert.equal(new Set(ids).size, ids.length, 'operationIds are unique')
  })

  it('declares security on every operation as it behaves: 401 without a token exactly where Bearer is required', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite' })
    const spec = json(await app.inject({ method: 'GET', url: '/openapi.json' }))
    const found = operations(spec)
    assert.ok(found.length >= STABLE_OPERATION_IDS.length)
    for (const { path, method, operation } of found) {
      const name = `${method.toUpperCase()} ${path} (${operation.operationId})`
      assert.ok(Array.isArray(operation.security), `${name} declares its security`)
      const bearer = operation.security.some((requirement: object) => 'bearerAuth' in requirement)
      assert.ok(bearer || operation.security.length === 0, `${name}: Bearer or explicitly public`)
      const withBody = ['post', 'put', 'patch'].includes(method)
      const response = await app.inject({ method: method.toUpperCase() as 'GET', url: concretePath(path, operation), ...(withBody ? { payload: {} } : {}) })
      // 401 before validation: routes authenticate in onRequest, so an empty body never gets a 400 first.
      if (bearer) assert.equal(response.statusCode, 401, `${name} is documented as needing a token (authenticate in onRequest)`)
      else assert.notEqual(response.statusCode, 401, `${name} is documented as public: ${response.body}`)
    }
  })
})

// The "lean route" of the performance issue, for comparison: bare node:http that verifies the
// HS256 token with fast-jwt (no cache) and reads the session and user with one prepared
// better-sqlite3 statement. No framework, logging, metrics, validation or security headers.
// LEAN_FASTIFY=1: the same route on a bare Fastify (no logger, plugins or schemas): the
// framework's own cost.
import { createServer } from 'node:http'
import SQLite from 'better-sqlite3'
import { createVerifier } from 'fast-jwt'
import Fastify from 'fastify'

const db = new SQLite(process.env.DATABASE_FILE!, { readonly: true })
const statement = db.prepare(`SELECT users.id, users.username, users.email, users.role, users.created_at, users.updated_at
  FROM sessions JOIN users ON users.id = sessions.user_id
  WHERE sessions.id = ? AND sessions.user_id = ? AND sessions.revoked_at IS NULL AND sessions.expires_at > ?`)
const verify = createVerifier({ key: process.env.JWT_SECRET!, algorithms: ['HS256'], cache: false })

if (process.env.LEAN_FASTIFY) {
  const app = Fastify({ logger: false })
  app.get('/users/:id', (request, reply) => {
    try {
      const claims = verify((request.headers.authorization ?? '').slice(7)) as { sub: string, sid: string }
      const id = Number((request.params as { id: string }).id)
      const user = String(id) === claims.sub ? statement.get(claims.sid, id, new Date().toISOString()) : undefined
      if (user === undefined) return reply.code(401).send()
      return reply.send(user)
    } catch {
      return reply.code(401).send()
    }
  })
  await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
} else createServer((request, response) => {
  request.resume()
  try {
    const claims = verify((request.headers.authorization ?? '').slice(7)) as { sub: string, sid: string }
    const id = Number(request.url!.slice('/users/'.length))
    const user = String(id) === claims.sub ? statement.get(claims.sid, id, new Date().toISOString()) : undefined
    if (user === undefined) {
      response.writeHead(401).end()
      return
    }
    const body = JSON.stringify(user)
    response.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
    response.end(body)
  } catch {
    response.writeHead(401).end()
  }
}).listen(Number(process.env.PORT), '127.0.0.1')

// Exit normally on SIGTERM so that --cpu-prof (bench --profile) writes its profile.
process.on('SIGTERM', () => process.exit(0))

import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance, FastifyListenOptions } from 'fastify'
import { serverTimeoutOptions } from './app.js'
import type { Config } from './config.js'

// How the service listens. Node's event loop (libuv 1.45 and later) accepts at most one new
// connection per listening socket per turn of the loop. A saturated turn serves every ready
// connection first (at 100 connections, 4-8 ms a turn here), so a burst of 100 new connections
// waited up to 100 turns for its first answer: the 300-700 ms outliers of the benchmark, with the
// loop never blocked longer than 15 ms. With several sockets bound to the port (SO_REUSEPORT),
// the kernel spreads new connections among them and a turn accepts one on each.

export interface Listening {
  /** Sockets bound to the port (the app's own server and the extra ones). */
  sockets: number
  /** Cuts every connection of the extra servers (the app's own is app.server). */
  closeAllConnections: () => void
}

/**
 * app.listen, plus (LISTEN_SOCKETS > 1) further HTTP servers on the same address and port that
 * hand every request to the same Fastify app, with the same timeouts and client-error handling.
 * They stop accepting when the app starts closing and are closed with it.
 */
export async function listen (app: FastifyInstance, config: Config): Promise<Listening> {
  const sockets = config.listenSockets
  const extras: http.Server[] = []
  if (sockets > 1) {
    // Hooks go in before listening (Fastify refuses them after). With the app's own server: stop
    // accepting and drop idle keep-alive connections; app.close() finishes only once every
    // connection of the extra servers has ended too (their requests in flight answered).
    let closed: Promise<unknown> = Promise.resolve()
    app.addHook('preClose', (done) => {
      closed = Promise.all(extras.map((server) => new Promise((resolve) => server.close(resolve))))
      for (const server of extras) server.closeIdleConnections()
      done()
    })
    app.addHook('onClose', async () => { await closed })
  }
  // reusePort is Node 22.12+'s listen option (not in Node 20's types).
  await app.listen({ host: config.host, port: config.port, ...(sockets > 1 ? { reusePort: true } : {}) } as FastifyListenOptions)
  if (sockets === 1) return { sockets, closeAllConnections: () => {} }

  const { port } = app.server.address() as AddressInfo
  const handler = app.server.listeners('request')[0] as http.RequestListener
  const clientErrorHandlers = app.server.listeners('clientError') as Array<(...args: unknown[]) => void>
  const timeouts = serverTimeoutOptions(config)
  for (let i = 1; i < sockets; i++) {
    const server = http.createServer(timeouts.http, handler)
    server.keepAliveTimeout = timeouts.keepAliveTimeout
    server.requestTimeout = timeouts.requestTimeout
    server.setTimeout(timeouts.connectionTimeout)
    for (const onClientError of clientErrorHandlers) server.on('clientError', onClientError)
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host: config.host, port, reusePort: true } as http.ServerOptions & { port: number }, () => {
        server.off('error', reject)
        resolve()
      })
    })
    extras.push(server)
  }
  app.log.info({ sockets }, 'listening on several sockets of the port (SO_REUSEPORT): new connections are accepted that many at a time')
  return { sockets, closeAllConnections: () => { for (const server of extras) server.closeAllConnections() } }
}

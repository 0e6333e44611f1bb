import { once } from 'node:events'
import net from 'node:net'
import { simpleParser, type ParsedMail } from 'mailparser'
import { after, before } from 'node:test'
import { SMTPServer } from 'smtp-server'

// A real SMTP server for the email tests (the smtp-server package on a free local port), with
// mailparser reading what arrived. Nothing sits between our code and the socket.

type After = { after: (fn: () => Promise<void> | void) => void }

export interface MailServer {
  port: number
  /** What to put in SMTP_URL. */
  url: string
  /** Every message received so far, parsed, in arrival order. */
  messages: ParsedMail[]
  /** The first message (already received or still to come) matching, or a rejection after timeoutMs. */
  waitFor: (predicate: (message: ParsedMail) => boolean, timeoutMs?: number) => Promise<ParsedMail>
  /** While set, a message's data is read but never acknowledged (a server that hangs mid-send). */
  stall: boolean
  /** While set, every message is refused with a 451 (a temporary failure). */
  refuse: boolean
  /** Resolves when a message's data starts arriving (the client is mid-send). */
  dataStarted: () => Promise<void>
  stop: () => Promise<void>
  /** Listens again on the same port after stop(). */
  start: () => Promise<void>
}

/** A free TCP port on 127.0.0.1 (nothing listens on it when this resolves). */
export async function freePort (): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

export async function startMailServer (t: After, options: { port?: number, listen?: boolean } = {}): Promise<MailServer> {
  const port = options.port ?? await freePort()
  const messages: ParsedMail[] = []
  const waiters = new Set<{ predicate: (message: ParsedMail) => boolean, resolve: (message: ParsedMail) => void }>()
  const dataWaiters: Array<() => void> = []
  let server: SMTPServer | undefined
  const state = { stall: false, refuse: false }

  const create = () => new SMTPServer({
    // Plain SMTP on loopback: no STARTTLS offer (nodemailer would check a self-signed certificate), any sender.
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData (stream, _session, callback) {
      for (const wake of dataWaiters.splice(0)) wake()
      if (state.refuse) {
        stream.resume()
        stream.on('end', () => callback(Object.assign(new Error('Try again later'), { responseCode: 451 })))
        return
      }
      simpleParser(stream).then((message) => {
        if (state.stall) return // never acknowledged
        messages.push(message)
        for (const waiter of waiters) {
          if (waiter.predicate(message)) {
            waiters.delete(waiter)
            waiter.resolve(message)
          }
        }
        callback()
      }, (error: Error) => callback(error))
    }
  })

  const start = async () => {
    server = create()
    // A client killed mid-send resets its connection: that is the test's doing, not a failure.
    server.on('error', () => {})
    server.listen(port, '127.0.0.1')
    await once(server.server, 'listening')
  }
  const stop = () => new Promise<void>((resolve) => {
    if (server === undefined) return resolve()
    const closing = server
    server = undefined
    closing.close(() => resolve())
    // Connections held open (a stalled send) must not keep close() waiting.
    for (const connection of (closing as unknown as { connections: Set<{ close: () => void }> }).connections ?? []) connection.close()
  })
  if (options.listen !== false) await start()
  t.after(stop)

  return {
    port,
    url: `smtp://127.0.0.1:${port}`,
    messages,
    get stall () { return state.stall },
    set stall (value: boolean) { state.stall = value },
    get refuse () { return state.refuse },
    set refuse (value: boolean) { state.refuse = value },
    waitFor: (predicate, timeoutMs = 30_000) => {
      const found = messages.find(predicate)
      if (found !== undefined) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        const waiter = {
          predicate,
          resolve: (message: ParsedMail) => {
            clearTimeout(timer)
            resolve(message)
          }
        }
        const timer = setTimeout(() => {
          waiters.delete(waiter)
          reject(new Error(`no matching email within ${timeoutMs} ms (received: ${messages.map((m) => `${addressOf(m)}: ${m.subject}`).join('; ') || 'none'})`))
        }, timeoutMs)
        waiters.add(waiter)
      })
    },
    dataStarted: () => new Promise((resolve) => dataWaiters.push(resolve)),
    stop,
    start
  }
}

/** The first recipient's address. */
export function addressOf (message: ParsedMail): string {
  const to = Array.isArray(message.to) ? message.to[0] : message.to
  return to?.value[0]?.address ?? ''
}

/** Messages to this address with this subject text. */
export function mailTo (address: string, subject?: RegExp) {
  return (message: ParsedMail) => addressOf(message).toLowerCase() === address.toLowerCase() && (subject === undefined || subject.test(message.subject ?? ''))
}

/** The link of an email (the first URL with #token= in its text) and its token. */
export function linkIn (message: ParsedMail): { url: string, token: string } {
  const url = /https?:\/\/\S+#token=[A-Za-z0-9_%-]+/.exec(message.text ?? '')?.[0]
  if (url === undefined) throw new Error(`no link in the email "${message.subject}": ${message.text}`)
  return { url, token: decodeURIComponent(url.split('#token=')[1]) }
}

/**
 * One mail server for the tests of a describe block (call in the describe body): started in a
 * before hook, stopped after the block. The getter gives it inside tests and later hooks.
 */
export function useMailServer (): () => MailServer {
  let server: MailServer | undefined
  const stops: Array<() => Promise<void> | void> = []
  before(async () => {
    server = await startMailServer({ after: (fn) => { stops.push(fn) } })
  })
  after(async () => {
    for (const stop of stops) await stop()
  })
  return () => {
    if (server === undefined) throw new Error('useMailServer: the server starts in a before hook; use it inside tests')
    return server
  }
}

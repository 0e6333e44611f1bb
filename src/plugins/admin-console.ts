import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { AppError } from '../errors.js'

// Serves the admin console (the front-end project in admin-console/ at the repository root) at
// /admin: one HTML page and its script, stylesheet and icon under /admin/assets/. The console
// is a client of the public API like any other; this plugin only hands out its files, with the
// strictest headers the page works under. ADMIN_CONSOLE=false leaves it unregistered (404).

type Files = Record<string, Uint8Array>

const TYPES: Record<string, string> = {
  'console.js': 'text/javascript; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml'
}

/**
 * Only our own origin, for scripts, styles, API calls and the icon; no inline script or style,
 * no plugins, no <base>, no form posts anywhere (the forms are handled by the script), no
 * framing. Trusted Types: the DOM's HTML-parsing sinks are closed to strings, which the console
 * never uses (Preact builds nodes, it does not parse HTML).
 */
export const ADMIN_CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "require-trusted-types-for 'script'",
  'trusted-types'
].join('; ')

const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': ADMIN_CONSOLE_CSP,
  // The page holds tokens in memory: never from a cache, never in another site's frame.
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()'
}

const here = fileURLToPath(import.meta.url)

/**
 * Where the console's files come from. The compiled server (dist/, `npm start`) reads what
 * `npm run build` wrote to dist/admin-console/. The TypeScript sources (tests, `npm run dev`)
 * have no build beside them: they bundle admin-console/ in memory with esbuild, afresh for every
 * page load, so what they serve is always the current source and never a stale dist/.
 */
function consoleSource (): { fromSources: true, build: () => Promise<Files> } | { fromSources: false, files: Files } {
  if (here.endsWith('.ts')) {
    const script = pathToFileURL(join(dirname(here), '..', '..', 'admin-console', 'build.mjs')).href
    return {
      fromSources: true,
      build: async () => {
        const { buildAdminConsole } = await import(script) as { buildAdminConsole: () => Promise<Files> }
        return buildAdminConsole()
      }
    }
  }
  const dir = join(dirname(here), '..', 'admin-console')
  const files: Files = {}
  for (const name of ['index.html', ...Object.keys(TYPES)]) {
    try {
      files[name] = readFileSync(join(dir, name))
    } catch {
      throw new Error(`The admin console is not built (${join(dir, name)} is missing): run npm run build, or set ADMIN_CONSOLE=false`)
    }
  }
  return { fromSources: false, files }
}

function escapeHtml (text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

const adminConsole: FastifyPluginAsync = async (app) => {
  const source = consoleSource()
  const htmlOf = (files: Files) => Buffer.from(files['index.html']).toString('utf8').replaceAll('{{app_name}}', escapeHtml(app.config.appName))
  // The files of the last page load (from the sources), or of the build (dist).
  let current: Promise<Files> | undefined = source.fromSources ? undefined : Promise.resolve(source.files)
  const builtHtml = source.fromSources ? undefined : htmlOf(source.files)

  const sendPage = async (reply: FastifyReply) => {
    let html = builtHtml
    if (source.fromSources) {
      current = source.build()
      html = htmlOf(await current)
    }
    return reply.headers(PAGE_HEADERS).send(html)
  }

  app.get('/admin', { schema: { hide: true } }, async (_request, reply) => sendPage(reply))

  // /admin/ would resolve the page's relative URLs one level too deep: send it to /admin.
  app.get('/admin/', { schema: { hide: true } }, async (_request, reply) => reply.redirect('../admin', 308))

  app.get<{ Params: { file: string } }>('/admin/assets/:file', { schema: { hide: true } }, async (request, reply) => {
    const { file } = request.params
    const type = TYPES[file]
    if (source.fromSources) current ??= source.build()
    const contents = type === undefined ? undefined : (await current!)[file]
    if (contents === undefined) throw new AppError(404, 'Not Found')
    return reply.headers({ 'content-type': type, 'cross-origin-resource-policy': 'same-origin', 'cache-control': 'no-store' }).send(Buffer.from(contents))
  })
}

export default adminConsole

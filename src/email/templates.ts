import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Mustache from 'mustache'
import { ConfigError } from '../config.js'

// Email templates: for each purpose a subject (one line), a plain-text body and an HTML body
// that layout.html wraps. Mustache, logic-less: {{value}} is HTML-escaped in the HTML parts and
// left as is in the subject and the text. A file of the same name in MAIL_TEMPLATES_DIR
// replaces the built-in one.

const BUILT_IN_DIR = join(import.meta.dirname, 'templates')
const PARTS = ['subject', 'txt', 'html'] as const

export interface RenderedEmail {
  subject: string
  text: string
  html: string
}

export interface Templates {
  purposes: string[]
  render: (purpose: string, view: Record<string, unknown>) => RenderedEmail
}

const plain = { escape: (value: unknown) => String(value) }
// The five characters HTML needs escaped (Mustache's default also escapes / = and `, which
// made every link in an href unreadable to a person looking at the source).
const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }
const html = { escape: (value: unknown) => String(value).replace(/[&<>"']/g, (ch) => HTML_ESCAPES[ch]) }

/** Reads the templates once at start; a missing override folder or a template that does not parse stops the server. */
export function loadTemplates (overrideDir: string | undefined): Templates {
  if (overrideDir !== undefined && !(existsSync(overrideDir) && statSync(overrideDir).isDirectory())) {
    throw new ConfigError('MAIL_TEMPLATES_DIR', `names no folder: ${overrideDir}`)
  }
  const read = (file: string): string => {
    const override = overrideDir === undefined ? undefined : join(overrideDir, file)
    const path = override !== undefined && existsSync(override) ? override : join(BUILT_IN_DIR, file)
    const text = readFileSync(path, 'utf8')
    try {
      Mustache.parse(text)
    } catch (error) {
      throw new ConfigError('MAIL_TEMPLATES_DIR', `template ${path} does not parse: ${(error as Error).message}`)
    }
    return text
  }
  const layout = read('layout.html')
  const purposes = readdirSync(BUILT_IN_DIR).filter((name) => name.endsWith('.subject')).map((name) => name.slice(0, -'.subject'.length)).sort()
  const templates = new Map(purposes.map((purpose) => [purpose, Object.fromEntries(PARTS.map((part) => [part, read(`${purpose}.${part}`)])) as Record<typeof PARTS[number], string>]))
  return {
    purposes,
    render: (purpose, view) => {
      const template = templates.get(purpose)
      if (template === undefined) throw new Error(`no email template for ${purpose}`)
      const subject = Mustache.render(template.subject, view, {}, plain).trim().replace(/\s+/g, ' ')
      return {
        subject,
        text: Mustache.render(template.txt, view, {}, plain).trim() + '\n',
        html: Mustache.render(layout, { ...view, subject }, { content: template.html }, html)
      }
    }
  }
}

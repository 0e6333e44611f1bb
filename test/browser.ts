import { existsSync } from 'node:fs'
import { after, before } from 'node:test'
import { chromium, type Browser } from 'playwright-core'

// Real-browser tests: Debian's Chromium driven by playwright-core. Nothing here downloads a
// browser (playwright-core has no install step; we always pass executablePath).

export const CHROMIUM_PATH = '/usr/bin/chromium'

// Headless, no sandbox (CI runs as root), and nothing that talks to the network on its own.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
]

function ciRun (): boolean {
  const ci = process.env.CI?.trim().toLowerCase()
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0'
}

/**
 * The `skip` option for browser suites: false when Chromium is installed, else the reason shown.
 * In CI (CI=true) a missing Chromium is an error, not a skip: `.ci/run` installs it, and a
 * browser test that silently skipped there would prove nothing.
 */
export const BROWSER_SKIP: string | false = (() => {
  if (existsSync(CHROMIUM_PATH)) return false
  if (ciRun()) throw new Error(`Chromium is missing at ${CHROMIUM_PATH} in CI: .ci/run installs it (apt-get install -y chromium); browser tests must run there, not skip`)
  return `Chromium is not installed at ${CHROMIUM_PATH} (apt-get install chromium)`
})()

/**
 * Launches Chromium for one test or suite and closes it in `after`. Each launch runs on a fresh,
 * empty profile: Playwright creates its --user-data-dir under the temp directory itself and
 * deletes it at close (it refuses one passed in `args`; its own launchPersistentContext would
 * return no Browser). New contexts (`browser.newContext()`) share no cookies or storage.
 */
export async function launchBrowser (t: { after: (fn: () => Promise<void> | void) => void }): Promise<Browser> {
  if (BROWSER_SKIP !== false) throw new Error(BROWSER_SKIP)
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 })
  t.after(() => browser.close())
  return browser
}

/**
 * One browser for the tests of a describe block (a launch takes a second or two). Call in the
 * describe body; the returned function gives the browser inside tests. Give each test its own
 * `browser.newContext()` so that no storage leaks from one to the next.
 */
export function useSuiteBrowser (): () => Browser {
  const cleanups: Array<() => Promise<void> | void> = []
  let browser: Browser | undefined
  before(async () => {
    browser = await launchBrowser({ after: (fn) => { cleanups.push(fn) } })
  })
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup()
  })
  return () => {
    if (browser === undefined) throw new Error('useSuiteBrowser: the browser is launched in a before hook; use it inside tests')
    return browser
  }
}

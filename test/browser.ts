import { existsSync } from 'node:fs'
import { after, before } from 'node:test'
import { chromium, type Browser } from 'playwright-core'

// Debian's Chromium, driven by playwright-core; nothing here downloads a browser. `.ci/run`
// installs the package; elsewhere the browser suites skip, with this reason shown, when it is
// missing (and fail under CI=true, where a skip would hide a regression). TEST_BROWSER=off skips
// them on purpose: `.ci/run` runs them on the machine's Node only, as what they check (our pages
// in Chromium) does not change with the server's Node version, and Chromium adds to their CPU.

export const CHROMIUM = '/usr/bin/chromium'

export const BROWSER_SKIP: string | false = process.env.TEST_BROWSER === 'off'
  ? 'TEST_BROWSER=off (.ci/run runs the browser tests on the default Node.js only)'
  : existsSync(CHROMIUM)
    ? false
    : process.env.CI === 'true' ? false : `${CHROMIUM} is missing (apt-get install -y chromium)`

type After = { after: (fn: () => Promise<void> | void) => void }

/**
 * A headless Chromium, closed when the test (or suite) ends. playwright-core starts it with a
 * fresh, empty --user-data-dir of its own (a temporary profile it removes on close); pages get
 * isolated contexts from browser.newContext().
 */
export async function launchBrowser (t: After): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`)
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'
    ]
  })
  t.after(async () => {
    await browser.close()
  })
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

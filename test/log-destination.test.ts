import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { batchedStdout } from '../src/log-destination.js'

// The server's log destination: lines of one event-loop turn go out in one write, after it.

function tempFile (t: { after: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'log-destination-'))
  const path = join(dir, 'out.log')
  const fd = openSync(path, 'w')
  t.after(() => {
    closeSync(fd)
    rmSync(dir, { recursive: true, force: true })
  })
  return { fd, read: () => readFileSync(path, 'utf8') }
}

const MODULE_URL = new URL('../src/log-destination.ts', import.meta.url).href

/** Runs a child node process that writes through batchedStdout() and then ends as `ending` says. */
function childWriting (ending: string) {
  const code = `import(${JSON.stringify(MODULE_URL)}).then(({ batchedStdout }) => {
    const out = batchedStdout(); out.write('first\\n'); out.write('last\\n'); ${ending} })`
  return spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { cwd: fileURLToPath(new URL('..', import.meta.url)), encoding: 'utf8' })
}

describe('batched log destination', () => {
  it('writes the lines of one turn together, in order, once the turn ends', async (t) => {
    const file = tempFile(t)
    const out = batchedStdout(file.fd)
    out.write('{"n":1}\n')
    out.write('{"n":2}\n')
    assert.equal(file.read(), '', 'nothing is written during the turn')
    await nextTurn()
    assert.equal(file.read(), '{"n":1}\n{"n":2}\n')
    out.write('{"n":3}\n')
    await nextTurn()
    assert.equal(file.read(), '{"n":1}\n{"n":2}\n{"n":3}\n')
  })

  it('writes a batch at once when it reaches 64 KiB, so memory stays bounded within a turn', (t) => {
    const file = tempFile(t)
    const out = batchedStdout(file.fd)
    const big = `${'x'.repeat(64 * 1024)}\n`
    out.write('small\n')
    out.write(big)
    assert.equal(file.read(), `small\n${big}`)
  })

  it('writes pending lines when the process exits, also on process.exit and on an uncaught exception', () => {
    const exited = childWriting('process.exit(3)')
    assert.equal(exited.status, 3, exited.stderr)
    assert.equal(exited.stdout, 'first\nlast\n')
    const crashed = childWriting("throw new Error('boom')")
    assert.equal(crashed.status, 1)
    assert.equal(crashed.stdout, 'first\nlast\n')
    assert.match(crashed.stderr, /boom/)
  })
})

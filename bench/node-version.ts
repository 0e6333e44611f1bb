// npm run bench -- --node 24: the same benchmark under another Node.js major. The checkout is
// copied (as git sees it: no node_modules, dist or results) into a temporary folder, installed
// there with `npm ci` under scripts/with-node.sh (native modules built for that Node's ABI), and
// the bench runs there with the same options; its results are copied back to bench/results/.
import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** True when this process already runs the requested major (nothing to re-run). */
export function runsMajor (major: string): boolean {
  return process.versions.node.split('.')[0] === major
}

/** Re-runs `npm run bench -- <args without --node>` under Node `major`; returns its exit code. */
export function rerunUnderNode (root: string, major: string, argv: string[]): number {
  if (!/^\d+$/.test(major)) throw new Error(`--node takes a major version such as 24, got "${major}"`)
  const args = argv.filter((arg, i) => !arg.startsWith('--node=') && arg !== '--node' && argv[i - 1] !== '--node')
  const copy = mkdtempSync(join(tmpdir(), `uma-bench-node${major}-`))
  const withNode = join(root, 'scripts/with-node.sh')
  const sh = (script: string, cwd: string) => spawnSync('bash', ['-c', script], { cwd, stdio: 'inherit' }).status ?? 1
  try {
    process.stderr.write(`bench: copying the checkout to ${copy} and installing it under Node ${major}\n`)
    let status = sh(`git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C '${copy}'`, root)
    if (status === 0) status = spawnSync(withNode, [major, 'npm', 'ci', '--no-audit', '--no-fund'], { cwd: copy, stdio: 'inherit' }).status ?? 1
    if (status !== 0) return status
    status = spawnSync(withNode, [major, 'npm', 'run', 'bench', '--', ...args], { cwd: copy, stdio: 'inherit' }).status ?? 1
    const results = join(copy, 'bench/results')
    if (existsSync(results)) {
      cpSync(results, join(root, 'bench/results'), { recursive: true })
      process.stderr.write(`bench: results of the Node ${major} run copied to bench/results/\n`)
    }
    return status
  } finally {
    rmSync(copy, { recursive: true, force: true })
  }
}

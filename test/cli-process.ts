import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { TEST_JWT_SECRET } from './helpers.js'

// The admin CLI as an operator runs it (`npm run cli -- ...` is `tsx src/cli.ts ...`): a real
// process with its environment, stdin and exit code.

const ROOT = fileURLToPath(new URL('..', import.meta.url))

export interface CliResult { code: number | null, stdout: string, stderr: string }

/** Runs the CLI with DATABASE_URL set; `input` (if any) is written to its stdin, which is then closed. */
export function runCli (databaseUrl: string, args: string[], input?: string, extraEnv: Record<string, string> = {}): Promise<CliResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'uma-cli-'))
  return new Promise((resolve, reject) => {
    // cwd is a scratch directory (no .env of the developer's is read); tsx resolved from here.
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), join(ROOT, 'src/cli.ts'), ...args], {
      cwd: dataDir,
      env: { PATH: process.env.PATH, DATABASE_URL: databaseUrl, JWT_SECRET: TEST_JWT_SECRET, DATA_DIR: dataDir, LOG_LEVEL: 'silent', ...extraEnv },
      stdio: ['pipe', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => { stdout += chunk })
    child.stderr.on('data', (chunk) => { stderr += chunk })
    child.on('error', reject)
    child.on('close', (code) => {
      rmSync(dataDir, { recursive: true, force: true })
      resolve({ code, stdout, stderr })
    })
    child.stdin.end(input ?? '')
  })
}


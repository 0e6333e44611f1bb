// What a server process costs, read from Linux's /proc: CPU time and resident memory of the
// process and its children (node:cluster workers).
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

/** The process and its children (cluster workers), from /proc; just the process once it has ended. */
export function processTree (pid: number): number[] {
  try {
    return [pid, ...readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)]
  } catch {
    return [pid]
  }
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100

/** CPU seconds (user + system, all threads) a process and its children have used so far. */
export function cpuSeconds (pid: number): number {
  const ticks = (id: number) => {
    try {
      // Fields after the command's closing parenthesis (the command may contain spaces and
      // parentheses): state is the 1st, utime the 12th, stime the 13th.
      const stat = readFileSync(`/proc/${id}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return Number(fields[11]) + Number(fields[12])
    } catch {
      return 0
    }
  }
  return processTree(pid).reduce((sum, id) => sum + ticks(id), 0) / CLOCK_TICKS
}

export interface RssSampler {
  /** Every sample so far: time (ms since the epoch) and MB. */
  samples: Array<{ at: number, mb: number }>
  current: () => number
  peakSince: (start: number) => number
  peak: () => number
  stop: () => void
}

/** Samples the resident set size (VmRSS) of a process and its children every 250 ms. */
export function sampleRss (pid: number): RssSampler {
  const samples: Array<{ at: number, mb: number }> = []
  const rssKb = (id: number) => {
    try {
      return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${id}/status`, 'utf8'))?.[1] ?? 0)
    } catch {
      return 0
    }
  }
  const read = () => {
    const kb = processTree(pid).reduce((sum, id) => sum + rssKb(id), 0)
    if (kb) samples.push({ at: Date.now(), mb: kb / 1024 })
  }
  read()
  const timer = setInterval(read, 250)
  const peakSince = (start: number) => Math.max(0, ...samples.filter((sample) => sample.at >= start).map((sample) => sample.mb))
  return {
    samples,
    current: () => samples.at(-1)?.mb ?? 0,
    peakSince,
    peak: () => peakSince(0),
    stop: () => clearInterval(timer)
  }
}

/**
 * Waits until the process (and its children) use less than a tenth of a core over half a second,
 * at most `maxMs`: a load generator that stops leaves the requests it abandoned to the server.
 */
export async function waitUntilIdle (pid: number, maxMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + maxMs
  while (Date.now() < deadline) {
    const before = cpuSeconds(pid)
    await new Promise((resolve) => setTimeout(resolve, 500))
    if (cpuSeconds(pid) - before < 0.05) return true
  }
  return false
}

import { readdirSync } from 'node:fs'
import { access } from 'node:fs/promises'
import { setPriority } from 'node:os'

/**
 * Linux: gives every thread of this process except the event loop's (libuv's pool, where the
 * password hashes run, and V8's helpers) the given nice value, so that when the cores are
 * short the kernel runs the event loop first: a login flood uses the CPU the requests leave
 * over instead of delaying them. Other platforms: nothing (returns 0).
 * Returns how many threads were changed.
 */
export async function lowerHelperThreadPriority (nice: number): Promise<number> {
  if (process.platform !== 'linux' || nice === 0) return 0
  // libuv starts its whole thread pool at the first task: start it now so its threads exist.
  await access('/proc/self/task')
  let changed = 0
  for (const entry of readdirSync('/proc/self/task')) {
    const tid = Number(entry)
    if (tid === process.pid) continue
    try {
      // Linux's setpriority on a thread id changes that one thread.
      setPriority(tid, nice)
      changed++
    } catch {
      // The thread ended meanwhile, or lowering is refused: it keeps its priority.
    }
  }
  return changed
}

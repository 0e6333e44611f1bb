import { destination } from 'pino'

// A turn's batch this long is written at once, without waiting for the turn to end.
const MAX_BATCH_CHARS = 64 * 1024

export interface LogDestination {
  write: (line: string) => void
  /** Writes what is pending now (also done when the process exits). */
  flushSync: () => void
}

/**
 * Standard output for pino, batched per turn of the event loop: the lines logged while the
 * process handles one batch of ready sockets go out in one synchronous write(2), from
 * setImmediate, instead of one write each. Under load that is one system call for tens of lines;
 * when idle a line waits for nothing but the end of the current turn. Memory stays bounded
 * (a batch reaching 64 KiB is written at once), and the pending lines are written on exit.
 * sonic-boom (pino's own writer, synchronous) does the writing, retrying EAGAIN on a pipe.
 */
export function batchedStdout (fd = 1): LogDestination {
  const sink = destination({ dest: fd, sync: true })
  let pending: string[] = []
  let pendingChars = 0
  let scheduled = false
  const flushSync = (): void => {
    scheduled = false
    if (pending.length === 0) return
    const text = pending.join('')
    pending = []
    pendingChars = 0
    sink.write(text)
  }
  process.on('exit', flushSync)
  return {
    write (line) {
      pending.push(line)
      pendingChars += line.length
      if (pendingChars >= MAX_BATCH_CHARS) flushSync()
      else if (!scheduled) {
        scheduled = true
        setImmediate(flushSync)
      }
    },
    flushSync
  }
}

let stdout: LogDestination | undefined

/** The process's one batched stdout (one exit handler however many apps are built). */
export function sharedBatchedStdout (): LogDestination {
  stdout ??= batchedStdout()
  return stdout
}

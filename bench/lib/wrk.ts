// The load generator: wrk (Debian's package), driven by a Lua script generated per load.
// wrk costs far less CPU per request than a Node load generator, so on a machine whose cores the
// server and the load generator share, the server gets more of them and the ceiling we measure
// is the server's, not the generator's.
//
// The script builds the requests (wrk.format in init(), or request() for per-request bodies),
// optionally paces them (delay(), for a fixed rate) and prints the result as JSON from done().
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** One HTTP request of a load (the Host header and Content-Length are added by wrk). */
export interface HttpRequest {
  method: string
  path: string
  headers?: Record<string, string>
  body?: string
}

export interface WrkLoad {
  /** Requests sent in turn, each connection taking the next one (a list is read from a file once). */
  requests?: HttpRequest[]
  /**
   * Or Lua that defines request() itself (for a new body per request). It may use the globals
   * `thread_id` (0-based) and `threads`; it must not define setup, delay or done.
   */
  lua?: string
  /** Seconds. */
  duration: number
  connections: number
  threads: number
  /**
   * Open loop at this many requests per second in all (each thread sends its share on an even
   * schedule). Without it, every connection sends its next request as soon as the answer came.
   */
  rate?: number
}

export interface WrkResult {
  requests: number
  seconds: number
  rps: number
  /** Latencies in ms, from when the request was written to when its response was read. */
  p50: number
  p90: number
  p95: number
  p99: number
  max: number
  mean: number
  /** Connect, read and write errors and timeouts (no answer within 30 s). */
  errors: number
  /** Responses with a status >= 400 (what wrk counts; none of our routes answers 1xx or 3xx). */
  non2xx: number
  /** Paced loads: requests sent more than 1 ms after their slot because every connection was busy. */
  late: number
}

const TIMEOUT_S = 30
const MARKER = 'BENCH_WRK_RESULT '

/** The path of wrk; installs Debian's package when it is missing and apt-get can. */
export function ensureWrk (log: (line: string) => void): string {
  const which = () => spawnSync('sh', ['-c', 'command -v wrk'], { encoding: 'utf8' }).stdout.trim()
  let found = which()
  if (found) return found
  const apt = spawnSync('sh', ['-c', 'command -v apt-get'], { encoding: 'utf8' }).stdout.trim()
  if (apt && process.getuid?.() === 0) {
    log('wrk (the HTTP load generator) is missing: apt-get install -y wrk')
    const install = () => spawnSync('apt-get', ['install', '-y', 'wrk'], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0
    if (!install()) {
      spawnSync('apt-get', ['update'], { stdio: ['ignore', 'inherit', 'inherit'] })
      install()
    }
    found = which()
    if (found) return found
  }
  const why = apt ? (process.getuid?.() === 0 ? 'apt-get could not install it' : 'installing it takes root') : 'there is no apt-get here to install it'
  throw new Error(`the load generator wrk is missing and ${why}.
Install it, then run the bench again: Debian/Ubuntu \`sudo apt-get install wrk\`, Fedora \`sudo dnf install wrk\`, macOS \`brew install wrk\`.
It must be built with LuaJIT (wrk's own build and Debian's are): the fixed-rate loads use LuaJIT's ffi to read the clock.`)
}

/** A Lua string literal. */
function lua (value: string): string {
  // A JSON string of printable ASCII is a valid Lua string literal (\" and \\ mean the same).
  if (!/^[\x20-\x7e]*$/.test(value)) throw new Error(`not printable ASCII: ${JSON.stringify(value)}`)
  return JSON.stringify(value)
}

/** Every wrk thread gets its index, and done() reads the paced threads' late counts. */
const PRELUDE = (threads: number) => `
threads = ${threads}
local thread_list = {}
function setup(thread)
  thread:set("thread_id", #thread_list)
  table.insert(thread_list, thread)
end
`

/** init() reads the request list (tab-separated: method, path, body, then header names and values) and request() cycles through it. */
function listScript (file: string): string {
  return `
local list = {}
local position = 0
local function split(line)
  local fields, start = {}, 1
  while true do
    local tab = string.find(line, "\\t", start, true)
    if not tab then table.insert(fields, string.sub(line, start)); return fields end
    table.insert(fields, string.sub(line, start, tab - 1))
    start = tab + 1
  end
end
function init(args)
  for line in io.lines(${lua(file)}) do
    local fields = split(line)
    local headers = {}
    for i = 4, #fields - 1, 2 do headers[fields[i]] = fields[i + 1] end
    local body = nil
    if fields[3] ~= "" then body = fields[3] end
    table.insert(list, wrk.format(fields[1], fields[2], headers, body))
  end
  -- Threads start at different places in the list.
  position = math.floor(#list * thread_id / threads)
end
function request()
  position = position % #list + 1
  return list[position]
end
`
}

function writeList (file: string, requests: HttpRequest[]): void {
  const field = (value: string) => {
    if (/[\t\n\r]/.test(value)) throw new Error(`a request field contains a tab or line break: ${JSON.stringify(value)}`)
    return value
  }
  const lines = requests.map((request) => [request.method, request.path, request.body ?? '',
    ...Object.entries(request.headers ?? {}).flat()].map(field).join('\t'))
  writeFileSync(file, lines.join('\n') + '\n')
}

/**
 * delay() gives each request the next slot of the thread's even schedule (rate / threads per
 * second) and waits for it. A connection that comes back after its slot passed sends at once and
 * counts as late: the rate was not held and, as with any load generator that measures from the
 * moment of sending (wrk2 corrects for it, and is not in Debian), the latencies are then too low.
 */
function pacedScript (rate: number, threads: number): string {
  return `
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end
local interval = ${(1000 * threads) / rate}
local next_slot = nil
late = 0
function delay()
  local now = now_ms()
  if next_slot == nil then next_slot = now end
  local wait = next_slot - now
  next_slot = next_slot + interval
  if wait < -1 then late = late + 1 end
  if wait <= 0 then return 0 end
  return math.floor(wait + 0.5)
end
`
}

const DONE = `
function done(summary, latency, requests)
  local late = 0
  for _, thread in ipairs(thread_list) do late = late + (thread:get("late") or 0) end
  local e = summary.errors
  io.write(string.format('\\n${MARKER}{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"late":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99), latency.max, latency.mean, late))
end
`

/** Runs wrk against `url` with the load; `dir` receives its script (and request list). */
export async function runWrk (wrk: string, url: string, load: WrkLoad, dir: string): Promise<WrkResult> {
  const folder = mkdtempSync(join(dir, 'wrk-'))
  let body: string
  if (load.requests) {
    if (load.requests.length === 0) throw new Error('a wrk load needs at least one request')
    writeList(join(folder, 'requests.tsv'), load.requests)
    body = listScript(join(folder, 'requests.tsv'))
  } else if (load.lua) {
    body = load.lua
  } else {
    throw new Error('a wrk load needs requests or lua')
  }
  const script = join(folder, 'load.lua')
  writeFileSync(script, PRELUDE(load.threads) + body + (load.rate ? pacedScript(load.rate, load.threads) : '') + DONE)
  const args = ['-t', String(load.threads), '-c', String(Math.max(load.connections, load.threads)), '-d', `${load.duration}s`,
    '--timeout', `${TIMEOUT_S}s`, '--latency', '-s', script, url]
  const { code, stdout, stderr } = await new Promise<{ code: number | null, stdout: string, stderr: string }>((resolve, reject) => {
    const child = spawn(wrk, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => { stdout += chunk })
    child.stderr.on('data', (chunk) => { stderr += chunk })
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
  const line = stdout.split('\n').find((candidate) => candidate.startsWith(MARKER))
  if (code !== 0 || !line) throw new Error(`wrk ${args.join(' ')} failed (exit ${code}):\n${stdout}${stderr}`)
  const raw = JSON.parse(line.slice(MARKER.length)) as Record<string, number>
  const seconds = raw.duration_us / 1e6
  return {
    requests: raw.requests,
    seconds,
    rps: raw.requests / seconds,
    p50: raw.p50_us / 1000,
    p90: raw.p90_us / 1000,
    p95: raw.p95_us / 1000,
    p99: raw.p99_us / 1000,
    max: raw.max_us / 1000,
    mean: raw.mean_us / 1000,
    errors: raw.connect + raw.read + raw.write + raw.timeout,
    non2xx: raw.status,
    late: raw.late
  }
}

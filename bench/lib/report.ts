// The run's table (each figure as its min-max over the runs), its goals, and its JSON.
import { median, values, type Row, type Run } from './bench.js'

type Figure = Exclude<keyof Run, 'extra' | 'errors' | 'non2xx'>

const COLUMNS: Array<{ title: string, figure: Figure, digits: (value: number) => string }> = [
  { title: 'req/s', figure: 'rps', digits: (value) => value.toFixed(0) },
  { title: 'p50 ms', figure: 'p50', digits: ms },
  { title: 'p99 ms', figure: 'p99', digits: ms },
  { title: 'max ms', figure: 'max', digits: ms },
  { title: 'CPU us/req', figure: 'cpuUs', digits: (value) => value.toFixed(0) },
  { title: 'RSS MB', figure: 'rssMb', digits: (value) => value.toFixed(0) }
]

function ms (value: number): string {
  return value < 100 ? value.toFixed(1) : value.toFixed(0)
}

/** "min-max" of the values, or one value when they print the same. */
function range (all: number[], digits: (value: number) => string): string {
  if (all.length === 0) return ''
  const low = digits(Math.min(...all))
  const high = digits(Math.max(...all))
  return low === high ? low : `${low}-${high}`
}

export function failures (row: Row): number {
  return row.runs.reduce((sum, run) => sum + (run.errors ?? 0) + (run.non2xx ?? 0), 0)
}

/** The row's extra figures as "name min-max", in the order the scenario gave them. */
function extras (row: Row): string[] {
  const names = [...new Set(row.runs.flatMap((run) => Object.keys(run.extra ?? {})))]
  return names.map((name) => `${name} ${range(row.runs.map((run) => run.extra?.[name]).filter((value): value is number => value !== undefined), ms)}`)
}

export function formatTable (rows: Row[]): string[] {
  const header = ['scenario', ...COLUMNS.slice(0, 4).map((column) => column.title), 'failed', ...COLUMNS.slice(4).map((column) => column.title), 'ratio']
  const lines = rows.map((row) => {
    const cells = COLUMNS.map((column) => range(values(row, column.figure), column.digits))
    const counted = row.runs.some((run) => run.errors !== undefined || run.non2xx !== undefined)
    return [row.label, ...cells.slice(0, 4), counted ? String(failures(row)) : '', ...cells.slice(4),
      row.ratio ? `${(row.ratio.value * 100).toFixed(0)}% of ${row.ratio.to}` : '']
  })
  const widths = header.map((title, i) => Math.max(title.length, ...lines.map((line) => line[i].length)))
  const format = (cells: string[]) => cells.map((cell, i) => i === 0 || i === cells.length - 1 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join('  ').trimEnd()
  const output = [format(header), widths.map((width) => '-'.repeat(width)).join('  ')]
  rows.forEach((row, i) => {
    output.push(format(lines[i]))
    const more = extras(row)
    if (more.length > 0) output.push(`    ${more.join('; ')}`)
  })
  return output
}

export function formatGoals (rows: Row[]): string[] {
  return rows.flatMap((row) => row.goals.map((goal) => `${goal.met ? 'ok    ' : 'MISSED'}  ${row.label}: ${goal.text}${goal.detail ? ` (${goal.detail})` : ''}`))
}

/** The row as stored in the JSON: its runs, and min/median/max of every figure. */
export function rowJson (row: Row) {
  const figures = [...COLUMNS.map((column) => column.figure)]
  const spread = Object.fromEntries(figures.filter((figure) => values(row, figure).length > 0).map((figure) => {
    const all = values(row, figure)
    return [figure, { min: Math.min(...all), median: median(all), max: Math.max(...all) }]
  }))
  return { ...row, failed: failures(row), spread }
}

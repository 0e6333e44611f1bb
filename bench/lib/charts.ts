// SVG charts of a bench run, rendered in Node by Apache ECharts' server-side SVG renderer (no
// browser, no canvas): req/s per scenario beside the ceiling and the FastAPI app, and the latency
// percentiles per scenario. Bars are the median of the runs, the black line the min-max.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BarChart, CustomChart, type BarSeriesOption, type CustomSeriesOption } from 'echarts/charts'
import { GridComponent, LegendComponent, TitleComponent, type GridComponentOption, type LegendComponentOption, type TitleComponentOption } from 'echarts/components'
import * as echarts from 'echarts/core'
import { SVGRenderer } from 'echarts/renderers'
import { median, values, type Row } from './bench.js'

echarts.use([BarChart, CustomChart, GridComponent, LegendComponent, TitleComponent, SVGRenderer])

type Option = echarts.ComposeOption<BarSeriesOption | CustomSeriesOption | GridComponentOption | LegendComponentOption | TitleComponentOption>
type Figure = 'rps' | 'p50' | 'p99' | 'max'

const WIDTH = 1000
const FONT = 'Helvetica, Arial, sans-serif'
const COLOURS: Record<Row['kind'], string> = { ours: '#2f6db5', reference: '#9a9a9a', fastapi: '#e0862b' }
const KIND_NAMES: Record<Row['kind'], string> = { ours: 'this service', reference: 'ceiling and lean routes', fastapi: 'FastAPI app' }
const LATENCY: Array<{ figure: Figure, name: string, colour: string }> = [
  { figure: 'p50', name: 'p50', colour: '#9ec3ea' },
  { figure: 'p99', name: 'p99', colour: '#2f6db5' },
  { figure: 'max', name: 'max', colour: '#17365c' }
]
/** Bar thickness in the latency chart, px: its whiskers are placed by it. */
const LATENCY_BAR = 9
/** The latency axis starts here (log scale): shorter latencies are drawn at it. */
const MIN_MS = 0.1

function spread (row: Row, figure: Figure) {
  const all = values(row, figure)
  return { median: median(all), min: Math.min(...all), max: Math.max(...all) }
}

const number = (value: number) => value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1)

/**
 * A custom series that draws, at each category (`offset` px off its centre), the min-max line of
 * the runs (with end ticks, when they differ) and the label, right of whichever ends further.
 */
function marks (data: Array<{ min: number, median: number, max: number, label: string }>, options: { offset?: number, fontSize: number, whiskers: boolean }): CustomSeriesOption {
  const offset = options.offset ?? 0
  return {
    type: 'custom',
    silent: true,
    z: 10,
    data: data.map((mark, index) => [index, mark.min, mark.max, mark.median]),
    encode: { x: [1, 2, 3], y: 0 },
    renderItem: (params, api) => {
      const [x1, y] = api.coord([api.value(1), api.value(0)])
      const [x2] = api.coord([api.value(2), api.value(0)])
      const [xMedian] = api.coord([api.value(3), api.value(0)])
      const at = y + offset
      const style = { stroke: '#000', lineWidth: 1.2 }
      const lines = options.whiskers && x2 - x1 > 0.5
        ? [
            { type: 'line' as const, shape: { x1, y1: at, x2, y2: at }, style },
            { type: 'line' as const, shape: { x1, y1: at - 3, x2: x1, y2: at + 3 }, style },
            { type: 'line' as const, shape: { x1: x2, y1: at - 3, x2, y2: at + 3 }, style }
          ]
        : []
      const text = { type: 'text' as const, x: Math.max(x2, xMedian) + 6, y: at, style: { text: data[params.dataIndex].label, fontSize: options.fontSize, fontFamily: FONT, fill: '#222', verticalAlign: 'middle' as const } }
      return { type: 'group', children: [...lines, text] }
    }
  }
}

function render (option: Option, height: number): string {
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width: WIDTH, height })
  chart.setOption({ animation: false, backgroundColor: '#fff', textStyle: { fontFamily: FONT }, ...option })
  const svg = chart.renderToSVGString()
  chart.dispose()
  return svg
}

function title (text: string, subtitle: string, runs: number): TitleComponentOption {
  return {
    text,
    subtext: `${subtitle}\n${runs > 1 ? `bars: median of ${runs} runs, black lines: min-max; ` : ''}log scale`,
    left: 10,
    textStyle: { fontSize: 16 },
    subtextStyle: { fontSize: 11, lineHeight: 15 }
  }
}

function throughputChart (rows: Row[], subtitle: string, runs: number): string {
  const shown = rows.filter((row) => row.fixedRate === undefined && values(row, 'rps').length > 0)
  const kinds = (['ours', 'reference', 'fastapi'] as const).filter((kind) => shown.some((row) => row.kind === kind))
  // The axis starts at 1 req/s (log scale).
  const stats = shown.map((row) => {
    const stat = spread(row, 'rps')
    return { min: Math.max(1, stat.min), median: Math.max(1, stat.median), max: Math.max(1, stat.max) }
  })
  const height = 110 + 30 * shown.length
  return render({
    title: title('Requests per second by scenario', subtitle, runs),
    legend: { top: 62, right: 20, data: kinds.map((kind) => KIND_NAMES[kind]) },
    grid: { left: 20, right: 190, top: 95, bottom: 30, outerBoundsMode: 'same', outerBoundsContain: 'axisLabel' },
    xAxis: { type: 'log', min: 1, startValue: 1, name: 'req/s', nameGap: 8, axisLabel: { formatter: (value: number) => value.toLocaleString('en-US') } },
    yAxis: { type: 'category', inverse: true, data: shown.map((row) => row.label), axisLabel: { fontSize: 11 } },
    series: [
      // One series per kind, overlaid (barGap -100%), so that the legend names the colours.
      ...kinds.map((kind): BarSeriesOption => ({
        type: 'bar',
        name: KIND_NAMES[kind],
        barGap: '-100%',
        barWidth: 16,
        itemStyle: { color: COLOURS[kind] },
        data: shown.map((row, index) => row.kind === kind ? stats[index].median : '-')
      })),
      marks(stats.map((stat, index) => {
        const { ratio } = shown[index]
        return { ...stat, label: `${number(stat.median)}${ratio ? `  (${(ratio.value * 100).toFixed(0)}% of ${ratio.to})` : ''}` }
      }), { fontSize: 11, whiskers: runs > 1 })
    ]
  }, height)
}

function latencyChart (rows: Row[], subtitle: string, runs: number): string {
  const shown = rows.filter((row) => values(row, 'p50').length > 0)
  const height = 110 + (3 * LATENCY_BAR + 14) * shown.length
  const floor = (value: number) => Math.max(MIN_MS, value)
  return render({
    title: title('Latency by scenario (ms)', subtitle, runs),
    legend: { top: 62, right: 20, data: LATENCY.map((one) => one.name) },
    grid: { left: 20, right: 70, top: 95, bottom: 30, outerBoundsMode: 'same', outerBoundsContain: 'axisLabel' },
    xAxis: { type: 'log', min: MIN_MS, startValue: MIN_MS, name: 'ms', nameGap: 8, axisLabel: { formatter: (value: number) => value.toLocaleString('en-US') } },
    yAxis: { type: 'category', inverse: true, data: shown.map((row) => row.fixedRate === undefined ? row.label : `${row.label} (fixed rate)`), axisLabel: { fontSize: 11 } },
    series: [
      ...LATENCY.map(({ figure, name, colour }): BarSeriesOption => ({
        type: 'bar',
        name,
        barWidth: LATENCY_BAR,
        barGap: '0%',
        itemStyle: { color: colour },
        data: shown.map((row) => floor(spread(row, figure).median))
      })),
      // The three bars of a category sit at -1, 0 and +1 bar widths from its centre.
      ...LATENCY.map(({ figure }, i) => marks(shown.map((row) => {
        const stat = spread(row, figure)
        return { min: floor(stat.min), median: floor(stat.median), max: floor(stat.max), label: number(stat.median) }
      }), { offset: (i - 1) * LATENCY_BAR, fontSize: 9, whiskers: runs > 1 }))
    ]
  }, height)
}

/** Writes bench-throughput.svg and bench-latency.svg into `dir`; returns their paths. */
export function writeCharts (rows: Row[], dir: string, subtitle: string): string[] {
  const runs = Math.max(1, ...rows.map((row) => row.runs.length))
  const throughput = join(dir, 'bench-throughput.svg')
  const latency = join(dir, 'bench-latency.svg')
  writeFileSync(throughput, throughputChart(rows, subtitle, runs))
  writeFileSync(latency, latencyChart(rows, subtitle, runs))
  return [throughput, latency]
}

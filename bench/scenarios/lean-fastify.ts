// The lean route on a bare Fastify (no logger, plugins or schemas): the framework's own cost.
import type { Scenario } from '../lib/bench.js'
import { measureLean } from './lean.js'

export const leanFastify: Scenario = {
  name: 'lean-fastify',
  description: 'the lean route on a bare Fastify (no logger, hooks or schemas)',
  run: (bench) => measureLean(bench, true)
}

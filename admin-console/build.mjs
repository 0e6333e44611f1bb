// Builds the admin console: esbuild bundles src/main.tsx (Preact) into one script and
// src/styles.css into one stylesheet; index.html and the icon go beside them. No source maps,
// nothing fetched at run time from anywhere but our own origin.
//
//   node admin-console/build.mjs            -> dist/admin-console/ (part of `npm run build`)
//   buildAdminConsole()                     -> the same files in memory (the server, when it
//                                              runs from the TypeScript sources: tests, npm run dev)
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'

const here = dirname(fileURLToPath(import.meta.url))

// Browsers of the last few years: every one has ES2020, <dialog>, :focus-visible and fetch keepalive.
const TARGET = ['chrome109', 'edge109', 'firefox115', 'safari15.4']

/**
 * @returns {Promise<Record<string, Uint8Array>>} file name -> contents: index.html, favicon.svg, console.js, console.css
 */
export async function buildAdminConsole () {
  const result = await esbuild.build({
    absWorkingDir: here,
    entryPoints: { console: join(here, 'src/main.tsx'), 'console-styles': join(here, 'src/styles.css') },
    bundle: true,
    format: 'esm',
    target: TARGET,
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    legalComments: 'eof',
    charset: 'utf8',
    outdir: 'out',
    write: false,
    logLevel: 'silent'
  })
  /** @type {Record<string, Uint8Array>} */
  const files = { 'index.html': readFileSync(join(here, 'index.html')), 'favicon.svg': readFileSync(join(here, 'favicon.svg')) }
  for (const file of result.outputFiles) {
    const name = basename(file.path) === 'console-styles.css' ? 'console.css' : basename(file.path)
    files[name] = file.contents
  }
  return files
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outdir = join(here, '..', 'dist', 'admin-console')
  mkdirSync(outdir, { recursive: true })
  const files = await buildAdminConsole()
  for (const [name, contents] of Object.entries(files)) writeFileSync(join(outdir, name), contents)
  console.log(`admin console: ${Object.keys(files).join(', ')} -> ${outdir}`)
}

// Part of `npm run build`: tsc compiles src/ to dist/, this copies what tsc does not (email
// templates, the account pages' scripts and stylesheet) to the same place under dist/.
import { cpSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const src = join(root, 'src')
const dist = join(root, 'dist')

function copyAssets (dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) copyAssets(path)
    else if (!name.endsWith('.ts')) cpSync(path, join(dist, relative(src, path)))
  }
}
copyAssets(src)

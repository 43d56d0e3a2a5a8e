/**
 * `meshlet/no-import-cycle`: no module may reach itself through its imports, type-only imports
 * included. eslint-plugin-import-x's `no-cycle` skips `import type`, but a type cycle hides the
 * direction of dependencies as well as a runtime one (admission ↔ server was one), so this rule
 * follows every `import`, `import type`, `export … from` and `import()` with a string literal.
 *
 * Modules are resolved as TypeScript resolves them for this repo (NodeNext, the `source` export
 * condition, so `@meshlet/core` is `packages/core/src/index.ts`); files outside the repo and
 * under node_modules are leaves. The graph is read with `ts.preProcessFile` (no type checking)
 * and kept for the lint run, re-read when a file's mtime changes.
 */
import { statSync, readFileSync } from 'node:fs'
import { dirname, relative, resolve, sep } from 'node:path'
import ts from 'typescript'

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..')
const compilerOptions = { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, customConditions: ['source'], allowJs: true }
const host = { fileExists: ts.sys.fileExists, readFile: ts.sys.readFile, realpath: ts.sys.realpath, directoryExists: ts.sys.directoryExists, getDirectories: ts.sys.getDirectories }
const cache = ts.createModuleResolutionCache(ROOT, (f) => f, compilerOptions)

/** file → { mtime, deps: [{ file, specifier, line, column }] } */
const graph = new Map()

function inRepo(file) {
  return file.startsWith(ROOT + sep) && !file.includes(`${sep}node_modules${sep}`) && /\.[cm]?[jt]sx?$/.test(file) && !file.endsWith('.d.ts')
}

function depsOf(file, text) {
  let mtime
  try {
    mtime = statSync(file).mtimeMs
  } catch {
    return []
  }
  const known = graph.get(file)
  if (known !== undefined && known.mtime === mtime && text === undefined) return known.deps
  const source = text ?? readFileSync(file, 'utf8')
  const info = ts.preProcessFile(source, true, true)
  const deps = []
  for (const ref of info.importedFiles) {
    const r = ts.resolveModuleName(ref.fileName, file, compilerOptions, host, cache).resolvedModule
    if (r === undefined) continue
    const target = ts.sys.realpath ? ts.sys.realpath(r.resolvedFileName) : r.resolvedFileName
    if (target !== file && inRepo(target)) deps.push({ file: target, specifier: ref.fileName, pos: ref.pos, end: ref.end })
  }
  graph.set(file, { mtime, deps })
  return deps
}

/** The shortest import path from `from` back to `to`, as a list of files, or undefined. */
function pathBack(from, to) {
  const previous = new Map([[from, undefined]])
  const queue = [from]
  for (let i = 0; i < queue.length; i++) {
    const f = queue[i]
    if (f === to) {
      const path = []
      for (let at = f; at !== undefined; at = previous.get(at)) path.unshift(at)
      return path
    }
    for (const d of depsOf(f)) {
      if (previous.has(d.file)) continue
      previous.set(d.file, f)
      queue.push(d.file)
    }
  }
  return undefined
}

export default {
  meta: {
    type: 'problem',
    docs: { description: 'Disallow import cycles between modules of this repo, type-only imports included' },
    schema: [],
    messages: { cycle: 'Import cycle: {{path}}. Move what both sides need into a module that neither imports, or invert one dependency.' },
  },
  create(context) {
    const file = ts.sys.realpath ? ts.sys.realpath(context.filename) : context.filename
    if (!inRepo(file)) return {}
    return {
      Program() {
        const text = context.sourceCode.getText()
        const seen = new Set()
        for (const dep of depsOf(file, text)) {
          if (seen.has(dep.file)) continue
          seen.add(dep.file)
          const back = pathBack(dep.file, file)
          if (back === undefined) continue
          const names = [file, ...back].map((f) => relative(ROOT, f)).join(' → ')
          context.report({ loc: { start: context.sourceCode.getLocFromIndex(dep.pos), end: context.sourceCode.getLocFromIndex(dep.end) }, messageId: 'cycle', data: { path: names } })
        }
      },
    }
  },
}

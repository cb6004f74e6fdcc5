/**
 * The import graph of a source tree and the rules the architecture test checks on it: layer direction,
 * import cycles, and which folders may import an SDK. Pure: it is given the files' text (a map of
 * repo-relative POSIX path -> source) and returns violations as lines, so it is unit-tested on small
 * synthetic trees (graph.test.ts) and run on the real `src/` by architecture.test.ts.
 *
 * Every import form counts: `import`, `import type`, `export … from`, `import x = require()`, `require()`,
 * dynamic `import('…')` and type-position `import('…')`. Only relative specifiers become edges; bare
 * specifiers (packages, `node:`) are kept as external imports for the SDK rule.
 */
import { posix } from 'node:path';
import ts from 'typescript';
import type { LayerMap } from './layers.ts';

/** `value`: a static import that loads the module; `type`: erased at runtime; `dynamic`: `import()` at runtime. */
export type ImportKind = 'value' | 'type' | 'dynamic';

export interface ModuleRef {
  /** The specifier as written, or undefined for `import(expr)` with a non-literal argument. */
  specifier: string | undefined;
  kind: ImportKind;
  /** 1-based line of the specifier. */
  line: number;
}

export interface Edge {
  from: string;
  to: string;
  /** The strongest kind among the imports from `from` of `to` (value > dynamic > type). */
  kind: ImportKind;
  line: number;
}

export interface ExternalImport {
  from: string;
  specifier: string;
  kind: ImportKind;
  line: number;
}

export interface SourceGraph {
  root: string;
  /** Every source file, sorted. */
  files: string[];
  /** One edge per (from, to) pair, sorted by from then to. */
  edges: Edge[];
  external: ExternalImport[];
  /** Relative imports that do not name a source file inside `root`, and `import(expr)` we cannot follow. */
  unresolved: string[];
}

/** Every module reference in one file, by a full AST walk (so nothing hides in a type position or a call). */
export function extractImports(fileName: string, text: string): ModuleRef[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const refs: ModuleRef[] = [];
  const at = (node: ts.Node): number => sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
  const add = (spec: ts.Node | undefined, kind: ImportKind, where: ts.Node): void => {
    const literal = spec !== undefined && ts.isStringLiteralLike(spec) ? spec.text : undefined;
    refs.push({ specifier: literal, kind, line: at(spec ?? where) });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      add(node.moduleSpecifier, importDeclarationIsTypeOnly(node) ? 'type' : 'value', node);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      add(node.moduleSpecifier, node.isTypeOnly ? 'type' : 'value', node);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression, node.isTypeOnly ? 'type' : 'value', node);
    } else if (ts.isImportTypeNode(node)) {
      const arg = node.argument;
      add(ts.isLiteralTypeNode(arg) ? arg.literal : undefined, 'type', node);
    } else if (ts.isCallExpression(node)) {
      if (node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node.arguments[0], 'dynamic', node);
      else if (ts.isIdentifier(node.expression) && node.expression.text === 'require' && node.arguments.length === 1) {
        const arg = node.arguments[0];
        if (arg && ts.isStringLiteralLike(arg)) add(arg, 'value', node);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return refs;
}

/** `import type {…}`, or `import { type A, type B }` whose every binding is type-only. */
function importDeclarationIsTypeOnly(node: ts.ImportDeclaration): boolean {
  const clause = node.importClause;
  if (!clause) return false; // `import './x.ts'` runs the module
  if (clause.isTypeOnly) return true;
  if (clause.name) return false;
  const bindings = clause.namedBindings;
  return bindings !== undefined && ts.isNamedImports(bindings) && bindings.elements.length > 0 && bindings.elements.every((e) => e.isTypeOnly);
}

export function isRelative(specifier: string): boolean {
  return specifier === '.' || specifier === '..' || specifier.startsWith('./') || specifier.startsWith('../');
}

/**
 * The source file a relative specifier names, as NodeNext resolution with `allowImportingTsExtensions`
 * would find it: the path as written, `.js` written for `.ts`, or an extensionless path / directory.
 */
export function resolveRelative(from: string, specifier: string, files: ReadonlySet<string>): string | undefined {
  const base = posix.normalize(posix.join(posix.dirname(from), specifier));
  const stem = base.replace(/\.(m|c)?js$/, '');
  const ext = /\.(m|c)?js$/.exec(base)?.[1] ?? '';
  const candidates = [base, `${stem}.${ext}ts`, `${base}.ts`, `${base}/index.ts`];
  return candidates.find((c) => files.has(c));
}

const KIND_STRENGTH: Record<ImportKind, number> = { type: 0, dynamic: 1, value: 2 };

export function buildGraph(sources: ReadonlyMap<string, string>, root = 'src'): SourceGraph {
  const files = [...sources.keys()].sort();
  const fileSet = new Set(files);
  const byPair = new Map<string, Edge>();
  const external: ExternalImport[] = [];
  const unresolved: string[] = [];
  for (const from of files) {
    for (const ref of extractImports(from, sources.get(from) ?? '')) {
      if (ref.specifier === undefined) {
        unresolved.push(`${from}:${ref.line}: import() of a computed specifier cannot be checked; import a literal path`);
        continue;
      }
      if (!isRelative(ref.specifier)) {
        external.push({ from, specifier: ref.specifier, kind: ref.kind, line: ref.line });
        continue;
      }
      const to = resolveRelative(from, ref.specifier, fileSet);
      if (to === undefined) {
        const target = posix.normalize(posix.join(posix.dirname(from), ref.specifier));
        unresolved.push(
          inside(target, root)
            ? `${from}:${ref.line}: '${ref.specifier}' does not resolve to a .ts file under ${root}/`
            : `${from}:${ref.line}: '${ref.specifier}' reaches outside ${root}/ (${target})`,
        );
        continue;
      }
      const key = `${from}\0${to}`;
      const seen = byPair.get(key);
      if (!seen) byPair.set(key, { from, to, kind: ref.kind, line: ref.line });
      else if (KIND_STRENGTH[ref.kind] > KIND_STRENGTH[seen.kind]) byPair.set(key, { ...seen, kind: ref.kind, line: ref.line });
    }
  }
  const edges = [...byPair.values()].sort((a, b) => compare(a.from, b.from) || compare(a.to, b.to));
  return { root, files, edges, external, unresolved };
}

function inside(path: string, root: string): boolean {
  return path === root || path.startsWith(`${root}/`);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The layer of a file: its top-level folder under `root`; '' for a file directly in `root`. */
export function layerOf(file: string, root: string): string {
  const rest = file.slice(root.length + 1);
  const slash = rest.indexOf('/');
  return slash < 0 ? '' : rest.slice(0, slash);
}

/** Folders (and loose files) of the tree that the layer map does not place. */
export function checkFoldersKnown(graph: SourceGraph, layers: LayerMap): string[] {
  const out = new Set<string>();
  for (const f of graph.files) {
    const layer = layerOf(f, graph.root);
    if (layer === '') out.add(`${f}: a file directly in ${graph.root}/ belongs to no layer; move it into a layer folder`);
    else if (!Object.hasOwn(layers, layer)) out.add(`${graph.root}/${layer}/: folder is not in the layer map; add it to the layer map`);
  }
  return [...out].sort();
}

/** Edges that point the wrong way: `from`'s layer may not import `to`'s. Edges touching an unplaced folder are left to checkFoldersKnown. */
export function checkLayerEdges(graph: SourceGraph, layers: LayerMap): string[] {
  const out: string[] = [];
  for (const e of graph.edges) {
    const from = layerOf(e.from, graph.root);
    const to = layerOf(e.to, graph.root);
    if (from === to || !Object.hasOwn(layers, from) || !Object.hasOwn(layers, to)) continue;
    const allowed = layers[from];
    if (allowed === '*' || allowed?.includes(to)) continue;
    out.push(`${e.from} -> ${e.to}: ${from} may not import ${to}${e.kind === 'value' ? '' : ` (${e.kind === 'type' ? 'import type' : 'dynamic import'})`}`);
  }
  return out;
}

/**
 * Strongly connected components of more than one file (or a file importing itself), by Tarjan's algorithm;
 * each member list sorted, components sorted by their first member.
 */
export function stronglyConnected(files: readonly string[], edges: readonly Edge[]): string[][] {
  const next = adjacency(files, edges);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const sccs: string[][] = [];
  let counter = 0;
  const connect = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || next.get(v)?.includes(v)) sccs.push(scc.sort());
    }
  };
  for (const f of [...next.keys()].sort()) if (!index.has(f)) connect(f);
  return sccs.sort((a, b) => compare(a[0]!, b[0]!));
}

/** The shortest cycle through the first (smallest) file of a component: [a, b, …, a]. */
export function cycleIn(scc: readonly string[], edges: readonly Edge[]): string[] {
  const members = new Set(scc);
  const next = adjacency(scc, edges.filter((e) => members.has(e.from) && members.has(e.to)));
  const start = scc[0]!;
  const parent = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i]!;
    for (const w of next.get(v) ?? []) {
      if (w === start) {
        const path = [start];
        for (let u: string | undefined = v; u !== undefined && u !== start; u = parent.get(u)) path.splice(1, 0, u);
        return [...path, start];
      }
      if (!parent.has(w)) {
        parent.set(w, v);
        queue.push(w);
      }
    }
  }
  throw new Error(`not a cycle: ${scc.join(', ')}`);
}

/** One line per import cycle: the chain of one cycle, and the whole tangle when it is bigger than that chain. */
export function checkCycles(graph: SourceGraph): string[] {
  return stronglyConnected(graph.files, graph.edges).map((scc) => {
    const chain = cycleIn(scc, graph.edges);
    const typeOnly = chain.slice(1).map((to, i) => graph.edges.find((e) => e.from === chain[i] && e.to === to)).filter((e) => e?.kind === 'type');
    let line = chain.join(' -> ');
    if (typeOnly.length > 0) line += ` (import type: ${typeOnly.map((e) => `${e!.from} -> ${e!.to}`).join(', ')})`;
    if (scc.length > chain.length - 1) line += `; all ${scc.length} files of this cycle group: ${scc.join(', ')}`;
    return line;
  });
}

/** Files that import an SDK statically (a value import or `import type`) outside the folders allowed to. */
export function checkSdkImports(graph: SourceGraph, modules: readonly RegExp[], folders: readonly string[]): string[] {
  const out: string[] = [];
  for (const x of graph.external) {
    if (x.kind === 'dynamic' || !modules.some((m) => m.test(x.specifier))) continue;
    if (folders.includes(layerOf(x.from, graph.root))) continue;
    out.push(`${x.from}:${x.line}: imports ${x.specifier}${x.kind === 'type' ? ' (import type)' : ''}; only ${folders.map((f) => `${f}/`).join(' and ')} may import it statically`);
  }
  return out;
}

/** The map itself: every folder it names is a layer of the map, and the layering has no cycle. */
export function checkLayerMap(layers: LayerMap): string[] {
  const names = Object.keys(layers);
  const out: string[] = [];
  const edges: Edge[] = [];
  for (const [layer, allowed] of Object.entries(layers)) {
    if (allowed === '*') continue;
    for (const to of allowed) {
      if (!Object.hasOwn(layers, to)) out.push(`${layer} may import '${to}', which is not a layer of the map`);
      else if (to === layer) out.push(`${layer} lists itself (a folder may always import its own files)`);
      else edges.push({ from: layer, to, kind: 'value', line: 0 });
    }
  }
  for (const scc of stronglyConnected(names, edges)) out.push(`layers import each other: ${cycleIn(scc, edges).join(' -> ')}`);
  return out;
}

function adjacency(nodes: readonly string[], edges: readonly Edge[]): Map<string, string[]> {
  const next = new Map<string, string[]>(nodes.map((n) => [n, []]));
  for (const e of edges) next.get(e.from)?.push(e.to);
  for (const list of next.values()) list.sort();
  return next;
}

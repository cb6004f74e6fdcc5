/**
 * The architecture test's own logic on small synthetic trees: each rule reports what it should (so the
 * real test fails when such an import is added) and stays quiet on what is allowed.
 */
import { describe, expect, it } from 'vitest';
import {
  buildGraph,
  checkCycles,
  checkFoldersKnown,
  checkLayerEdges,
  checkLayerMap,
  checkSdkImports,
  extractImports,
  resolveRelative,
} from './graph.ts';
import { LAYERS, SDK_FOLDERS, SDK_MODULES, type LayerMap } from './layers.ts';

const MAP: LayerMap = { core: [], facts: ['core'], transport: ['core'], tasks: ['core', 'facts'], cli: '*' };

function tree(files: Record<string, string>) {
  return buildGraph(new Map(Object.entries(files)), 'src');
}

describe('extractImports', () => {
  it('finds every import form, with its kind and line', () => {
    const text = [
      `import { a } from './a.ts';`,
      `import type { B } from './b.ts';`,
      `import { type C, type D } from './c.ts';`,
      `import { type E, e } from './e.ts';`,
      `export { f } from './f.ts';`,
      `export type { G } from './g.ts';`,
      `export * from './h.ts';`,
      `import './i.ts';`,
      `const j = await import('./j.ts');`,
      `type K = typeof import('./k.ts');`,
      `import l = require('./l.ts');`,
      `const m = require('./m.ts');`,
      `import * as n from 'node:path';`,
    ].join('\n');
    expect(extractImports('src/x/y.ts', text)).toEqual([
      { specifier: './a.ts', kind: 'value', line: 1 },
      { specifier: './b.ts', kind: 'type', line: 2 },
      { specifier: './c.ts', kind: 'type', line: 3 },
      { specifier: './e.ts', kind: 'value', line: 4 },
      { specifier: './f.ts', kind: 'value', line: 5 },
      { specifier: './g.ts', kind: 'type', line: 6 },
      { specifier: './h.ts', kind: 'value', line: 7 },
      { specifier: './i.ts', kind: 'value', line: 8 },
      { specifier: './j.ts', kind: 'dynamic', line: 9 },
      { specifier: './k.ts', kind: 'type', line: 10 },
      { specifier: './l.ts', kind: 'value', line: 11 },
      { specifier: './m.ts', kind: 'value', line: 12 },
      { specifier: 'node:path', kind: 'value', line: 13 },
    ]);
  });

  it('does not mistake strings or comments for imports', () => {
    const text = `// import { a } from './a.ts';\nconst s = "import { b } from './b.ts'";\n/* export * from './c.ts' */`;
    expect(extractImports('src/x/y.ts', text)).toEqual([]);
  });

  it('marks import(expr) with a computed specifier as one it cannot follow', () => {
    const g = tree({ 'src/core/a.ts': `const name = './b.ts';\nawait import(name);` });
    expect(g.unresolved).toEqual(['src/core/a.ts:2: import() of a computed specifier cannot be checked; import a literal path']);
  });
});

describe('resolveRelative', () => {
  const files = new Set(['src/a/x.ts', 'src/a/index.ts', 'src/b/y.ts', 'src/b/z/index.ts']);
  it('resolves .ts as written, .js written for .ts, extensionless paths and directories', () => {
    expect(resolveRelative('src/a/x.ts', '../b/y.ts', files)).toBe('src/b/y.ts');
    expect(resolveRelative('src/a/x.ts', '../b/y.js', files)).toBe('src/b/y.ts');
    expect(resolveRelative('src/a/x.ts', '../b/y', files)).toBe('src/b/y.ts');
    expect(resolveRelative('src/b/y.ts', './z', files)).toBe('src/b/z/index.ts');
    expect(resolveRelative('src/b/y.ts', '../a', files)).toBe('src/a/index.ts');
    expect(resolveRelative('src/b/y.ts', '.', files)).toBeUndefined();
    expect(resolveRelative('src/a/x.ts', './missing.ts', files)).toBeUndefined();
  });

  it('reports relative imports that name no source file, or leave the tree', () => {
    const g = tree({ 'src/core/a.ts': `import './gone.ts';\nimport '../../test/helper.ts';` });
    expect(g.unresolved).toEqual([
      `src/core/a.ts:1: './gone.ts' does not resolve to a .ts file under src/`,
      `src/core/a.ts:2: '../../test/helper.ts' reaches outside src/ (test/helper.ts)`,
    ]);
    expect(g.edges).toEqual([]);
  });
});

describe('checkLayerEdges', () => {
  it('reports a wrong-way edge as "from -> to: layer may not import layer"', () => {
    const g = tree({ 'src/facts/mount.ts': `import { t } from '../transport/ssh.ts';`, 'src/transport/ssh.ts': '' });
    expect(checkLayerEdges(g, MAP)).toEqual(['src/facts/mount.ts -> src/transport/ssh.ts: facts may not import transport']);
  });

  it('counts import type, export … from and dynamic import, and says which it was', () => {
    const g = tree({
      'src/core/a.ts': `import type { T } from '../tasks/t.ts';`,
      'src/core/b.ts': `export { f } from '../facts/f.ts';`,
      'src/core/c.ts': `const t = await import('../transport/ssh.ts');`,
      'src/tasks/t.ts': '',
      'src/facts/f.ts': '',
      'src/transport/ssh.ts': '',
    });
    expect(checkLayerEdges(g, MAP)).toEqual([
      'src/core/a.ts -> src/tasks/t.ts: core may not import tasks (import type)',
      'src/core/b.ts -> src/facts/f.ts: core may not import facts',
      'src/core/c.ts -> src/transport/ssh.ts: core may not import transport (dynamic import)',
    ]);
  });

  it('reports one edge per pair of files, by its strongest import', () => {
    const g = tree({
      'src/core/a.ts': `import type { T } from '../facts/f.ts';\nimport { f } from '../facts/f.ts';`,
      'src/facts/f.ts': '',
    });
    expect(checkLayerEdges(g, MAP)).toEqual(['src/core/a.ts -> src/facts/f.ts: core may not import facts']);
  });

  it('allows imports within a folder (subfolders included), down the map, and anything from a "*" layer', () => {
    const g = tree({
      'src/facts/a.ts': `import { b } from './b.ts';\nimport { c } from './sub/c.ts';`,
      'src/facts/b.ts': `import { x } from '../core/x.ts';`,
      'src/facts/sub/c.ts': `import { b } from '../b.ts';`,
      'src/tasks/t.ts': `import { a } from '../facts/a.ts';\nimport { x } from '../core/x.ts';`,
      'src/cli/main.ts': `import { t } from '../tasks/t.ts';\nimport { s } from '../transport/s.ts';`,
      'src/transport/s.ts': '',
      'src/core/x.ts': '',
    });
    expect(checkLayerEdges(g, MAP)).toEqual([]);
    expect(checkFoldersKnown(g, MAP)).toEqual([]);
  });
});

describe('checkFoldersKnown', () => {
  it('reports a folder the layer map does not place, once, and a file directly in src/', () => {
    const g = tree({
      'src/extras/a.ts': `import { x } from '../core/x.ts';`,
      'src/extras/b.ts': '',
      'src/index.ts': `import { a } from './extras/a.ts';`,
      'src/core/x.ts': `import { a } from '../extras/a.ts';`,
    });
    expect(checkFoldersKnown(g, MAP)).toEqual([
      'src/extras/: folder is not in the layer map; add it to the layer map',
      'src/index.ts: a file directly in src/ belongs to no layer; move it into a layer folder',
    ]);
    // Edges to or from an unplaced folder are that folder's finding, not a second one per edge.
    expect(checkLayerEdges(g, MAP)).toEqual([]);
  });
});

describe('checkCycles', () => {
  it('reports a -> b -> c -> a as that chain, from its first file', () => {
    const g = tree({
      'src/core/b.ts': `import { c } from './c.ts';`,
      'src/core/c.ts': `import { a } from './a.ts';`,
      'src/core/a.ts': `import { b } from './b.ts';`,
    });
    expect(checkCycles(g)).toEqual(['src/core/a.ts -> src/core/b.ts -> src/core/c.ts -> src/core/a.ts']);
  });

  it('reports a cycle across folders, closed by an import type, and says which edges are type-only', () => {
    const g = tree({
      'src/core/a.ts': `import type { T } from '../tasks/t.ts';`,
      'src/tasks/t.ts': `import { a } from '../core/a.ts';`,
    });
    expect(checkCycles(g)).toEqual(['src/core/a.ts -> src/tasks/t.ts -> src/core/a.ts (import type: src/core/a.ts -> src/tasks/t.ts)']);
  });

  it('prints one chain per cycle group, the shortest through its first file, and the group when it is bigger', () => {
    const g = tree({
      // group 1: a <-> b, and a -> c -> d -> a
      'src/core/a.ts': `import './b.ts';\nimport './c.ts';`,
      'src/core/b.ts': `import './a.ts';`,
      'src/core/c.ts': `import './d.ts';`,
      'src/core/d.ts': `import './a.ts';`,
      // group 2: a file importing itself
      'src/facts/self.ts': `import './self.ts';`,
      // not a cycle
      'src/facts/leaf.ts': `import '../core/a.ts';`,
    });
    expect(checkCycles(g)).toEqual([
      'src/core/a.ts -> src/core/b.ts -> src/core/a.ts; all 4 files of this cycle group: src/core/a.ts, src/core/b.ts, src/core/c.ts, src/core/d.ts',
      'src/facts/self.ts -> src/facts/self.ts',
    ]);
  });

  it('finds nothing in a graph without cycles', () => {
    const g = tree({ 'src/core/a.ts': `import './b.ts';\nimport './c.ts';`, 'src/core/b.ts': `import './c.ts';`, 'src/core/c.ts': '' });
    expect(checkCycles(g)).toEqual([]);
  });
});

describe('checkSdkImports', () => {
  it('reports static SDK imports, import type included, outside backends/ and transport/', () => {
    const g = tree({
      'src/facts/a.ts': `import { KMSClient } from '@aws-sdk/client-kms';`,
      'src/tasks/b.ts': `import type { ClientChannel } from 'ssh2';`,
      'src/core/c.ts': `import vault from 'node-vault';`,
      'src/backends/kms.ts': `import { KMSClient } from '@aws-sdk/client-kms';\nimport vault from 'node-vault';`,
      'src/transport/ssh.ts': `import ssh2 from 'ssh2';`,
      'src/executor/lazy.ts': `const { KMSClient } = await import('@aws-sdk/client-kms');`,
      'src/executor/other.ts': `import 'ssh2-streams';\nimport { z } from 'zod';`,
    });
    expect(checkSdkImports(g, SDK_MODULES, SDK_FOLDERS)).toEqual([
      'src/core/c.ts:1: imports node-vault; only backends/ and transport/ may import it statically',
      'src/facts/a.ts:1: imports @aws-sdk/client-kms; only backends/ and transport/ may import it statically',
      'src/tasks/b.ts:1: imports ssh2 (import type); only backends/ and transport/ may import it statically',
    ]);
  });
});

describe('the layer map', () => {
  it('names only its own layers and has no cycle', () => {
    expect(checkLayerMap(LAYERS)).toEqual([]);
  });

  it('would report an unknown layer, a self-reference and layers importing each other', () => {
    expect(checkLayerMap({ core: ['model'], model: ['core'], facts: ['facts', 'nope'] })).toEqual([
      `facts lists itself (a folder may always import its own files)`,
      `facts may import 'nope', which is not a layer of the map`,
      'layers import each other: core -> model -> core',
    ]);
  });
});

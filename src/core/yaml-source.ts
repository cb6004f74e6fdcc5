import { readFile } from 'node:fs/promises';
import { isMap, isNode, isScalar, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { KryptonError, type ErrorCode } from './errors.ts';

/** A parsed YAML file that can point at any of its nodes as `file:line:column`. */
export interface YamlSource {
  file: string;
  doc: Document;
  lines: LineCounter;
  /** The file's text as read (for quoting a value as the user wrote it). */
  text: string;
}

/**
 * Reads and parses a YAML file (YAML 1.2 core schema, via the `yaml` package). Duplicate keys, syntax errors
 * and a non-mapping/sequence root are refused with `code` (E_INVENTORY, E_PLAYBOOK…) at `file:line:col`.
 */
export async function loadYaml(file: string, code: ErrorCode): Promise<{ source: YamlSource; value: unknown }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new KryptonError(code, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, {
      hint: 'check the path (relative paths are resolved from the current directory)',
    });
  }
  return parseYaml(file, text, code);
}

/** As {@link loadYaml}, from text already in memory. */
export function parseYaml(file: string, text: string, code: ErrorCode): { source: YamlSource; value: unknown } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false, strict: true });
  const source = { file, doc, lines, text };
  const first = doc.errors[0];
  if (first) {
    const where = at(source, first.pos[0]);
    const what = first.code === 'DUPLICATE_KEY' ? 'duplicate key (each key may appear once in a mapping)' : first.message.split('\n')[0];
    throw new KryptonError(code, `${where}: ${what}`, { hint: 'fix the YAML syntax at that position' });
  }
  try {
    return { source, value: doc.toJS({ maxAliasCount: 1000 }) };
  } catch (err) {
    // yaml's guard against "billion laughs" alias expansion.
    throw new KryptonError(code, `${file}: ${(err as Error).message.split('\n')[0]} (YAML aliases expand to too much)`, { hint: 'write the repeated values out, or use fewer nested aliases' });
  }
}

/** `file:line:col` of a character offset. */
export function at(source: YamlSource, offset: number): string {
  const { line, col } = source.lines.linePos(offset);
  return `${source.file}:${line}:${col}`;
}

/** `file:line:col` of the node at `path` (or the nearest existing parent; for a missing key, its mapping). */
export function locate(source: YamlSource, path: readonly PropertyKey[], key?: string): string {
  let p = [...path];
  for (;;) {
    const node = p.length === 0 ? source.doc.contents : source.doc.getIn(p as unknown[], true);
    if (isNode(node)) {
      if (key !== undefined && isMap(node)) {
        const pair = node.items.find((it) => isNode(it.key) && (it.key as Node & { value?: unknown }).value === key);
        if (pair && isNode(pair.key) && pair.key.range) return at(source, pair.key.range[0]);
      }
      if (node.range) return at(source, node.range[0]);
    }
    if (p.length === 0) return `${source.file}:1:1`;
    p = p.slice(0, -1);
  }
}

/**
 * Validates `value` with a zod schema; every issue becomes one line `file:line:col: <dotted.path>: <message>`
 * pointing at the offending node (unknown keys point at the key). Throws KryptonError(code) listing all of them.
 */
export function validate<T>(
  source: YamlSource,
  schema: z.ZodType<T>,
  value: unknown,
  code: ErrorCode,
  what: string,
  /** Where `value` sits in the document, when it is not the whole document. */
  basePath: readonly PropertyKey[] = [],
): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const lines: string[] = [];
  for (const issue of r.error.issues) {
    const path = [...basePath, ...(issue.path as PropertyKey[])];
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) {
        lines.push(`${locate(source, path, k)}: ${dotted([...path, k])}: unknown key (expected one of: ${knownKeys(schema, issue.path as PropertyKey[])})`);
      }
      continue;
    }
    if (issue.code === 'invalid_key') {
      // A bad map key (e.g. a host name): point at the key itself and say what a key must look like.
      const parent = path.slice(0, -1);
      const key = String(path[path.length - 1]);
      const why = (issue as { issues?: { message: string }[] }).issues?.map((i) => i.message).join('; ') || issue.message;
      lines.push(`${locate(source, parent, key)}: ${dotted(path)}: invalid name ${JSON.stringify(key)}: ${why}`);
      continue;
    }
    lines.push(`${locate(source, path)}: ${dotted(path) || '(top level)'}: ${issue.message}${(issue.code === 'invalid_type' && issue.expected === 'string' && bareNumberAdvice(source, schema, value, basePath, issue.path as PropertyKey[])) || ''}`);
  }
  throw new KryptonError(code, `${what} ${source.file} is not valid:\n  ${lines.join('\n  ')}`, {
    hint: 'fix the entries above; nothing was changed on any host',
  });
}

/**
 * For a string setting written as a bare YAML number (`network: 007`, `mode: 0600`): what to write instead, quoting
 * the source text exactly as the user wrote it — never the number YAML made of it (`007` is 7, `0x12a` is 298,
 * `9007199254740993` is 9007199254740992): `: write network: "007" (unquoted, YAML reads it as the number 7)`.
 * When the quoted text is not valid either, says so with the schema's reason instead of proposing it.
 */
function bareNumberAdvice(source: YamlSource, schema: z.ZodType, value: unknown, basePath: readonly PropertyKey[], rel: readonly PropertyKey[]): string | undefined {
  const node = source.doc.getIn([...basePath, ...rel] as unknown[], true);
  if (!isScalar(node) || !node.range || (typeof node.value !== 'number' && typeof node.value !== 'bigint')) return undefined;
  const written = source.text.slice(node.range[0], node.range[1]).trim();
  const key = rel.at(-1);
  if (!written || typeof key !== 'string') return undefined;
  const asRead = String(node.value);
  const reads = written === asRead ? '' : ` (unquoted, YAML reads it as the number ${asRead})`;
  const quoted = withValueAt(value, rel, written);
  const again = quoted === undefined ? undefined : schema.safeParse(quoted);
  const stillBad = again && !again.success ? again.error.issues.find((i) => samePath(i.path as PropertyKey[], rel)) : undefined;
  if (!stillBad) return `: write ${key}: ${JSON.stringify(written)}${reads}`;
  return `; quoted as written (${key}: ${JSON.stringify(written)}) it is refused too: ${stillBad.message}${reads && ` — YAML reads ${written} as the number ${asRead}`}`;
}

/** A deep copy of `value` with `text` at `path`, or undefined when the path does not lead through plain objects/arrays. */
function withValueAt(value: unknown, path: readonly PropertyKey[], text: string): unknown {
  if (path.length === 0) return text;
  if (value === null || typeof value !== 'object') return undefined;
  const [head, ...rest] = path;
  const copy = (Array.isArray(value) ? [...(value as unknown[])] : { ...(value as Record<PropertyKey, unknown>) }) as Record<PropertyKey, unknown>;
  const inner = withValueAt(copy[head as PropertyKey], rest, text);
  if (inner === undefined) return undefined;
  copy[head as PropertyKey] = inner;
  return copy;
}

function samePath(a: readonly PropertyKey[], b: readonly PropertyKey[]): boolean {
  return a.length === b.length && a.every((x, i) => String(x) === String(b[i]));
}

function dotted(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

/** Best-effort list of the keys a strict object schema accepts at `path` (for "unknown key" messages). */
function knownKeys(schema: z.ZodType, path: readonly PropertyKey[]): string {
  let s: unknown = schema;
  for (const seg of path) {
    s = unwrap(s);
    const def = (s as { def?: { type?: string; shape?: Record<string, unknown>; valueType?: unknown; element?: unknown } }).def;
    if (!def) return '?';
    if (def.type === 'object' && def.shape) s = def.shape[String(seg)];
    else if (def.type === 'record') s = def.valueType;
    else if (def.type === 'array') s = def.element;
    else return '?';
  }
  s = unwrap(s);
  const shape = (s as { def?: { shape?: Record<string, unknown> } })?.def?.shape;
  return shape ? Object.keys(shape).join(', ') : '?';
}

function unwrap(s: unknown): unknown {
  for (let i = 0; i < 10; i++) {
    const def = (s as { def?: { type?: string; innerType?: unknown; in?: unknown } })?.def;
    if (!def) return s;
    if (def.type === 'optional' || def.type === 'default' || def.type === 'nullable' || def.type === 'prefault') s = def.innerType;
    else if (def.type === 'pipe') s = def.in;
    else return s;
  }
  return s;
}

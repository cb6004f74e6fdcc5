/**
 * Fact parser fixtures: ONE generated test per `test/unit/facts/<fact>/<case>.yaml` (raw command output in,
 * parsed fact out). Each fixture holds the real stdout of the fact's script (its description says what
 * produced it: the script from src/facts run with `sh -c` on a Debian 12 machine against real files and
 * mounts), an optional `exit` status, and `expect`, the parsed value (deep-equal; `expect: null` means the
 * parser returns undefined, e.g. "nothing mounted there").
 *
 * Each case is parsed twice: as the script printed it (with its final newline) and as the executor's
 * section splitter hands it over (src/executor/facts.ts: the lines between two boundary markers, joined
 * without the final newline). Both must give `expect`.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { agentState, parseAgentState } from '../../../src/facts/agent.ts';
import { envKey, fileAt, parseFileFact } from '../../../src/facts/file.ts';
import { gitStatusOf, parseGitFact } from '../../../src/facts/git.ts';
import { kernel, mountAt, parseKernel, parseMount } from '../../../src/facts/mount.ts';

const HERE = dirname(fileURLToPath(import.meta.url));

/** Fixture directory -> the parser it exercises. */
const PARSERS: Record<string, (stdout: string, exitCode: number) => unknown> = {
  mount: parseMount,
  kernel: parseKernel,
  file: parseFileFact,
  'agent-state': parseAgentState,
  'env-key': (stdout, code) => envKey('/opt/krypton/.env', 'JWT_PATH').parse(stdout, code),
  git: parseGitFact,
};

const fixtureSchema = z.strictObject({
  description: z.string().min(1),
  stdout: z.string(),
  exit: z.number().int().min(0).max(255).default(0),
  expect: z.unknown(),
});

function runFixture(fact: string, file: string): void {
  const parser = PARSERS[fact];
  if (!parser) throw new Error(`${file}: no parser for fact directory ${fact} (known: ${Object.keys(PARSERS).join(', ')})`);
  const raw: unknown = parse(readFileSync(file, 'utf8'), { strict: true, uniqueKeys: true });
  const r = fixtureSchema.safeParse(raw);
  if (!r.success) throw new Error(`${file}: not a valid fact fixture:\n${z.prettifyError(r.error)}`);
  if (!(raw !== null && typeof raw === 'object' && 'expect' in raw)) throw new Error(`${file}: needs an expect: key (null for "undefined")`);
  const { stdout, exit } = r.data;
  const want = r.data.expect === null ? undefined : r.data.expect;
  const asSplit = stdout.endsWith('\n') ? stdout.slice(0, -1) : stdout;
  for (const input of [stdout, asSplit]) {
    const got = parser(input, exit);
    if (want === undefined) expect(got, `${file}: ${JSON.stringify(input)}`).toBeUndefined();
    else expect(got, `${file}: ${JSON.stringify(input)}`).toEqual(want);
  }
}

const dirs = readdirSync(HERE).filter((d) => statSync(join(HERE, d)).isDirectory()).sort();

describe('fact fixtures', () => {
  it('every parser has a fixture directory, and every directory names a parser', () => {
    expect(Object.keys(PARSERS).filter((p) => !dirs.includes(p))).toEqual([]);
    expect(dirs.filter((d) => !(d in PARSERS))).toEqual([]);
  });

  it('the fact scripts hand their output to these parsers', () => {
    expect(mountAt('/run/krypton-secrets').parse).toBe(parseMount);
    expect(kernel().parse).toBe(parseKernel);
    expect(fileAt('/x').parse).toBe(parseFileFact);
    expect(fileAt('/x', { digest: true }).parse).toBe(parseFileFact);
    expect(agentState().parse).toBe(parseAgentState);
    expect(gitStatusOf('/opt/krypton/jwt.hex').parse).toBe(parseGitFact);
  });

  for (const fact of dirs) {
    const files = readdirSync(join(HERE, fact)).filter((f) => f.endsWith('.yaml')).sort();
    describe(fact, () => {
      it('has at least one fixture', () => expect(files.length).toBeGreaterThan(0));
      for (const f of files) it(f.replace(/\.yaml$/, ''), () => runFixture(fact, join(HERE, fact, f)));
    });
  }
});

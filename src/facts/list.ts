import type { RemoteFact } from '../model/task.ts';

/**
 * Several remote facts as ONE (each snippet in its own subshell, its output fenced by a marker line), parsed
 * into a list in the same order — e.g. the mount of each of a host's tmpfs dirs. The snippets' own exit status is
 * not kept (each parser sees the combined exit); use a snippet that prints its state instead.
 */
export function factList<T>(facts: readonly RemoteFact<T>[], label = 'item'): RemoteFact<T[]> {
  const fence = `@@krypton-${label}-`;
  return {
    kind: 'remote',
    script: facts.map((f, i) => `echo '${fence}${i}'\n( ${f.script}\n)`).join('\n') || 'true',
    parse(stdout, exit) {
      const parts: string[] = [];
      let cur = -1;
      for (const line of stdout.split('\n')) {
        if (line.startsWith(fence) && /^\d+$/.test(line.slice(fence.length))) parts[(cur = Number(line.slice(fence.length)))] = '';
        else if (cur >= 0) parts[cur] += `${line}\n`;
      }
      return facts.map((f, i) => f.parse(parts[i] ?? '', exit));
    },
  };
}

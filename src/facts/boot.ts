/** Facts of the boot-time step (src/tasks/kms-install-boot-step.ts): its script and unit (stat + SHA-256) and its enablement links. */
import { shellQuote } from '../core/transport.ts';
import type { RemoteFact } from '../model/task.ts';
import { parseFileFact, type FileFact } from './file.ts';

/** The boot-time step on the host: its script and unit (stat + SHA-256) and which enablement links exist. */
export interface BootStepFact {
  script: FileFact;
  unit: FileFact;
  /** Link path -> its target (`readlink`), or null when absent. */
  links: Record<string, string | null>;
  /** True when systemd runs as init (`/run/systemd/system` exists): then `daemon-reload` is needed. */
  systemd: boolean;
}
export function bootStep(scriptPath: string, unitPath: string, links: string[]): RemoteFact<BootStepFact> {
  const stat = (p: string, tag: string) => {
    const q = shellQuote(p);
    return `if [ -f ${q} ]; then echo "@${tag} $(stat -c '%a %U %G %s %.9Y' -- ${q}) $(sha256sum -- ${q} | cut -d' ' -f1)"; else echo "@${tag} absent"; fi`;
  };
  const script = [
    stat(scriptPath, 'script'),
    stat(unitPath, 'unit'),
    ...links.map((l, i) => `if [ -L ${shellQuote(l)} ]; then echo "@link${i} $(readlink -- ${shellQuote(l)})"; else echo "@link${i} -"; fi`),
    '[ -d /run/systemd/system ] && echo "@systemd yes" || echo "@systemd no"',
  ].join('\n');
  return { kind: 'remote', script, parse: (out) => parseBootStep(out, links) };
}
export function parseBootStep(stdout: string, links: string[]): BootStepFact {
  const get = (tag: string) => stdout.split('\n').find((l) => l.startsWith(`@${tag} `))?.slice(tag.length + 2).trim() ?? '';
  const file = (tag: string): FileFact => {
    const v = get(tag);
    if (!v || v === 'absent') return { exists: false };
    const parts = v.split(/\s+/);
    return parseFileFact(`${parts.slice(0, 5).join(' ')}\n${parts[5] ?? ''}`);
  };
  const linkFacts: Record<string, string | null> = {};
  links.forEach((l, i) => {
    const v = get(`link${i}`);
    linkFacts[l] = v && v !== '-' ? v : null;
  });
  return { script: file('script'), unit: file('unit'), links: linkFacts, systemd: get('systemd') === 'yes' };
}

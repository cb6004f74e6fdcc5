import { resolve } from 'node:path';
import { createBackends, type Backends } from '../backends/registry.ts';
import { importHorcrux } from '../horcrux/import.ts';
import { loadInventory } from '../inventory/loader.ts';

export interface ImportHorcruxFlags {
  inventory: string;
  shredSource?: boolean;
  replace?: boolean;
  json?: boolean;
}

/**
 * `krypton-secrets import-horcrux <dir> -i <inventory> [--shred-source] [--replace] [--json]`: checks every
 * key file in `<dir>/cosigner_<N>/` and stores them in the inventory's backend, all or nothing (see
 * src/horcrux/import.ts). Prints one line per file (fingerprints, never content), or with `--json` one object
 * `{"type":"import-horcrux","ok":true,...}`. Returns the exit code; errors are thrown (the CLI maps them).
 */
export async function importHorcruxCommand(dir: string, f: ImportHorcruxFlags, print: (line: string) => void, backends?: (inv: Awaited<ReturnType<typeof loadInventory>>) => Backends): Promise<number> {
  const inventory = await loadInventory(f.inventory);
  const result = await importHorcrux({
    dir: resolve(dir),
    inventory,
    backends: backends ? backends(inventory) : createBackends(inventory),
    replace: !!f.replace,
    shredSource: !!f.shredSource,
    ...(f.json ? {} : { print }),
  });
  if (f.json) {
    print(
      JSON.stringify({
        type: 'import-horcrux',
        ok: true,
        chainId: result.chainId,
        threshold: result.threshold,
        validatorPubKey: result.validatorPubKey,
        written: result.files.filter((x) => x.status === 'written').length,
        unchanged: result.files.filter((x) => x.status === 'unchanged').length,
        files: result.files,
        shredded: result.shredded,
      }),
    );
  } else {
    const w = result.files.filter((x) => x.status === 'written').length;
    print(`✔ ${result.files.length} key files stored for ${result.files.length / 2} cosigners: ${w} written, ${result.files.length - w} unchanged${result.shredded.length ? `, ${result.shredded.length} local files shredded` : ''}`);
  }
  return 0;
}

import { dirname } from 'node:path/posix';
import type { Action } from '../core/action.ts';
import { KryptonError, scrubText } from '../core/errors.ts';
import { mintEngineJwtHex } from '../core/secret.ts';
import type { Backends } from '../backends/registry.ts';
import { commandLine, type Transport } from '../transport/transport.ts';
import { applyAwsAction } from '../backends/aws-apply.ts';

/**
 * Applies one action. Remote actions go through `transport` (argv quoted; secrets on stdin or SFTP), Vault
 * actions through the backend. Returns true when it wrote to a backend (the run's backend memo must then be
 * dropped). Throws KryptonError: E_SSH_EXEC for a non-zero exit (with the command and a scrubbed stderr
 * tail, never stdin), E_VAULT_WRAP when a wrapping token was not created where it should have been.
 */
export async function applyAction(a: Action, transport: Transport, backends: Backends, runState: Map<string, unknown> = new Map()): Promise<boolean> {
  switch (a.kind) {
    case 'exec': {
      const res = await transport.exec(a.argv, { stdin: a.stdin, cwd: a.cwd });
      if (res.code !== 0) {
        // The host's words, scrubbed of secrets and of control characters (no terminal escapes reach the operator).
        const tail = scrubText((res.stderr.trim() || res.stdout.trim()).split('\n').slice(-3).join(' | '))
          .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '?')
          .slice(0, 400);
        throw new KryptonError('E_SSH_EXEC', `${a.description}: \`${commandLine(a.argv, a.cwd)}\` exited with code ${res.code}${tail ? `: ${tail}` : ''}`, {
          hint: 'fix the cause on the host and run apply again (completed steps are not repeated)',
        });
      }
      return false;
    }
    case 'put':
      await transport.put(a.path, a.content, { mode: parseInt(a.mode, 8), owner: a.owner, group: a.group });
      return false;
    case 'remove': {
      const argv = a.shred
        ? // A symlink is only unlinked: shredding would overwrite whatever file it points at.
          ['sh', '-c', 'if [ -L "$1" ]; then rm -f -- "$1"; elif command -v shred >/dev/null 2>&1; then shred -u -- "$1"; else rm -f -- "$1"; fi', 'sh', a.path]
        : ['rm', '-f', '--', a.path];
      const res = await transport.exec(argv);
      if (res.code !== 0) throw new KryptonError('E_SSH_EXEC', `${a.description}: removing ${a.path} failed with code ${res.code}`, { hint: 'check the file on the host' });
      return false;
    }
    case 'vault.write':
      await backends.vault().write(a.path, a.body);
      return true;
    case 'vault.seed-engine-jwt':
      await backends.vault().kvWrite(a.mount, a.path, { [a.field]: mintEngineJwtHex() }, { cas: a.cas });
      return true;
    case 'jwt.rotate': {
      const w = await backends.rotateEngineJwt(a.node, a.expectVersion);
      runState.set(`rotated:${backends.jwtScope(a.node)}`, w.version);
      return true;
    }
    case 'kms.seed-engine-jwt':
    case 'kms.put-blob':
    case 'kms.fetch-on-host':
    case 'sm.seed-engine-jwt':
    case 'sm.set-key':
      return applyAwsAction(a, transport, backends);
    case 'vault.deliver-secret-id': {
      const vault = backends.vault();
      const want = `auth/${a.approleMount}/role/${a.role}/secret-id`;
      const roleId = await vault.roleId(a.approleMount, a.role);
      const wrapped = await vault.wrappedSecretId(a.approleMount, a.role, a.wrapTtlSeconds);
      const looked = await vault.wrapLookup(wrapped.wrappingToken);
      if (looked.creationPath !== want) {
        throw new KryptonError('E_VAULT_WRAP', `the wrapping token (accessor ${wrapped.accessor}) was created at ${looked.creationPath}, not ${want}`, {
          hint: 'someone may be intercepting Vault responses; do not deliver it — investigate before retrying',
        });
      }
      // An interrupted earlier upload may have left temp files (one could hold a wrapping token): clear them.
      await transport.exec(['find', dirname(a.secretIdPath), '-maxdepth', '1', '-name', '.*.krypton-*.tmp', '-delete']);
      await transport.put(a.roleIdPath, roleId, { mode: 0o600, owner: a.owner });
      await transport.put(a.secretIdPath, wrapped.wrappingToken, { mode: 0o600, owner: a.owner });
      return false;
    }
  }
}

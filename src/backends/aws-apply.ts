/**
 * Applying the KMS / Secrets Manager actions (called from executor/apply.ts): laptop-side writes go to the
 * JWT stores; the blob goes to the host over SFTP; the host-side fetch runs over the host's connection and a
 * failure is translated from the aws CLI's stderr into the same errors the laptop side gives.
 */
import type { FetchOnHostAction, KmsPutBlobAction, KmsSeedAction, SmSeedAction, SmSetKeyAction } from '../core/action.ts';
import { KryptonError, scrubText } from '../core/errors.ts';
import { FETCH_EXIT } from '../render/kms-host.ts';
import type { Transport } from '../transport/transport.ts';
import { awsError, faultFromCliStderr } from './aws.ts';
import type { Backends } from './registry.ts';

type AwsAction = KmsSeedAction | KmsPutBlobAction | FetchOnHostAction | SmSeedAction | SmSetKeyAction;

function need<T>(get: (() => T) | undefined, what: string): T {
  if (!get) throw new KryptonError('E_INTERNAL', `this build's backends have no ${what}`, { hint: 'report this: createBackends provides it' });
  return get();
}

/** Applies one KMS / Secrets Manager action. Returns true when it wrote to a backend (the run's memo must be dropped). */
export async function applyAwsAction(a: AwsAction, transport: Transport, backends: Backends): Promise<boolean> {
  switch (a.kind) {
    case 'kms.seed-engine-jwt':
      await need(backends.kmsJwt?.bind(backends), 'KMS blob store').seed(a.node);
      return true;
    case 'sm.seed-engine-jwt':
      await need(backends.smJwt?.bind(backends), 'Secrets Manager store').seed(a.node);
      return true;
    case 'sm.set-key':
      await need(backends.smJwt?.bind(backends), 'Secrets Manager store').setKey(a.node);
      return true;
    case 'kms.put-blob': {
      const blob = await need(backends.kmsJwt?.bind(backends), 'KMS blob store').currentBlob(a.node);
      if (!blob || blob.version !== a.version || blob.sha256 !== a.sha256) {
        throw new KryptonError('E_PLAN_CONFLICT', `the current blob changed since it was planned (planned v${a.version}, now ${blob ? `v${blob.version}` : 'none'})`, {
          hint: 'someone wrote a blob meanwhile: run apply again',
        });
      }
      await transport.put(a.path, blob.bytes, { mode: parseInt(a.mode, 8) });
      return false;
    }
    case 'kms.fetch-on-host': {
      const res = await transport.exec(a.argv, { timeoutMs: 90_000 });
      if (res.code !== 0) throw fetchFailure(a, res.code, res.stderr, transport.name);
      return false;
    }
  }
}

/** The error for a failed host-side fetch: the aws CLI's error in the operator's words, or the script's own. */
export function fetchFailure(a: Pick<FetchOnHostAction, 'backend' | 'subject' | 'keyId' | 'context' | 'region' | 'endpointUrl'>, code: number, stderr: string, host: string): KryptonError {
  const tail = scrubText(stderr.trim().split('\n').slice(-2).join(' | ')).slice(0, 400);
  const action = a.backend === 'kms' ? 'kms:Decrypt' : 'secretsmanager:GetSecretValue';
  if (code === FETCH_EXIT.aws) {
    const fault = faultFromCliStderr(stderr);
    if (fault) {
      return awsError(fault, {
        action,
        subject: `${host}: ${a.subject}`,
        keyId: a.keyId,
        context: a.context,
        region: a.region,
        regionSource: 'the region the operator resolved',
        endpoint: a.endpointUrl,
        identity: `${host}'s AWS identity`,
        policyHint: `allow ${action} for ${host}'s identity under that context only (krypton-secrets render writes ${host}/iam-policy.json), and check the region`,
      });
    }
    return new KryptonError('E_KMS', `${host}: the aws CLI failed for ${a.subject}: ${tail || 'no error output'}`, { hint: 'run the same aws command on the host to see why' });
  }
  if (code === FETCH_EXIT.notTmpfs) return new KryptonError('E_PLAN_CONFLICT', `${host}: ${tail}`, { hint: 'run mount.tmpfs first; the JWT is never written to persistent disk' });
  if (code === FETCH_EXIT.notHex) return new KryptonError('E_INPUT', `${host}: ${a.subject}: ${tail}`, { hint: 'the stored value is not an Engine-API JWT: re-seed or rotate it' });
  if (code === FETCH_EXIT.fingerprint) {
    return new KryptonError('E_PLAN_CONFLICT', `${host}: ${a.subject} holds another value than the operator expects: ${tail}`, {
      hint: 'the backend changed between plan and apply (a rotation?): run apply again',
    });
  }
  return new KryptonError('E_SSH_EXEC', `${host}: fetching ${a.subject} exited with code ${code}${tail ? `: ${tail}` : ''}`, { hint: 'check the host (POSIX sh, coreutils, /usr/bin/aws)' });
}

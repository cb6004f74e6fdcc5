/**
 * A halted rotation or rollback says which node holds which version (fingerprint + the backend's current version)
 * and the one command that completes it (issue 10, item 4).
 */
import { describe, expect, it } from 'vitest';
import { jwtReportLines, resumeCommand } from '../../src/cli/jwt-report.ts';

describe('jwtReportLines / resumeCommand', () => {
  const cur = { version: 8, fingerprint: 'sha256:bbbbbbbbbbbb' };
  const report = {
    'val-1': { version: 8, fingerprint: 'sha256:bbbbbbbbbbbb', current: cur },
    'val-2': { version: 7, fingerprint: 'sha256:aaaaaaaaaaaa', current: cur },
    'val-3': { version: null, fingerprint: null, unreachable: true as const, current: cur },
  };

  it('one line per node with its version, fingerprint and the current version; then the command that completes the run', () => {
    const cmd = resumeCommand('playbooks/rotate-jwt.yml', 'inventory/testnet.yml');
    expect(cmd).toBe('krypton-secrets apply playbooks/rotate-jwt.yml -i inventory/testnet.yml --resume');
    expect(jwtReportLines(report, cmd)).toEqual([
      '  val-1: holds v8 (sha256:bbbbbbbbbbbb) = the current version',
      "  val-2: holds v7 (sha256:aaaaaaaaaaaa); the backend's current is v8 (sha256:bbbbbbbbbbbb)",
      "  val-3: holds unreachable: unknown; the backend's current is v8 (sha256:bbbbbbbbbbbb)",
      '  val-2, val-3 are not on the current version; complete the run with: krypton-secrets apply playbooks/rotate-jwt.yml -i inventory/testnet.yml --resume',
    ]);
  });

  it('a finished run prints no command; a backend that could not list versions is said so', () => {
    const lines = jwtReportLines({ 'val-1': { version: null, fingerprint: 'sha256:aaaaaaaaaaaa', current: null, storeError: 'Vault could not list versions (HTTP 503).' } });
    expect(lines).toEqual(["  val-1: holds a value whose version the backend could not say (sha256:aaaaaaaaaaaa) (the backend's versions: Vault could not list versions (HTTP 503).)"]);
  });

  it('keeps --limit, quotes what a shell would split, and shows paths outside the working directory absolute', () => {
    expect(resumeCommand('/opt/pb/rotate jwt.yml', 'inv.yml', ['val-1', 'val-2'])).toBe("krypton-secrets apply '/opt/pb/rotate jwt.yml' -i inv.yml -l val-1,val-2 --resume");
  });
});

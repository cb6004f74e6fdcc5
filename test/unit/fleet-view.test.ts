import { describe, expect, it } from 'vitest';
import { KryptonError } from '../../src/core/errors.ts';
import type { RunEvent } from '../../src/core/events.ts';
import { FleetView } from '../../src/cli/listr-renderer.ts';
import { plainRenderer } from '../../src/cli/render-events.ts';

const step = (host: string, task: string, status: 'ok' | 'changed' | 'skipped' | 'failed', extra: Partial<Extract<RunEvent, { type: 'step' }>> = {}): RunEvent => ({ type: 'step', host, task, name: task, status, durationMs: 1, ...extra });

describe('terminal display: what each host row says', () => {
  it('shows the waves, the step under way, what changed, and the halted hosts with the reason', () => {
    const v = new FleetView(['val-1', 'val-2', 'val-3']);
    v.apply({ type: 'play-start', play: 'rotate', hosts: ['val-1', 'val-2', 'val-3'] });
    v.apply({ type: 'wave-start', play: 'rotate', wave: 1, hosts: ['val-1'] });
    expect(v.view('val-2')?.title).toBe('val-2  waiting for its wave');
    v.apply({ type: 'step-start', host: 'val-1', task: 'jwt.rotate', name: 'rotate the JWT' });
    expect(v.view('val-1')?.title).toBe('val-1  jwt.rotate: rotate the JWT');
    v.apply({ type: 'wave-start', play: 'rotate', wave: 2, hosts: ['val-2'] });
    v.apply({ type: 'step-start', host: 'val-1', task: 'node.restart-lockstep', name: 'restart el and cl' });
    expect(v.view('val-1')?.title).toBe('val-1 [wave 1]  node.restart-lockstep: restart el and cl');
    v.apply(step('val-1', 'agent.render-config', 'ok', { reason: 'in place' }));
    v.apply(step('val-1', 'node.restart-lockstep', 'changed', { actions: ['restart el and cl together'] }));
    v.apply(step('val-1', 'engine.verify-auth', 'skipped', { reason: 'depends on the changes planned above' }));
    v.apply({ type: 'host-done', host: 'val-1', status: 'changed' });
    expect(v.view('val-1')).toEqual({
      title: 'val-1  changed (1 step already in place)',
      lines: ['node.restart-lockstep: restart el and cl together', 'engine.verify-auth: skipped — depends on the changes planned above'],
    });
    v.apply(step('val-2', 'node.restart-lockstep', 'failed', { error: new KryptonError('E_TIMEOUT', 'el did not come back\nmore') }));
    v.apply({ type: 'host-done', host: 'val-2', status: 'failed', error: new KryptonError('E_TIMEOUT', 'el did not come back', { task: 'node.restart-lockstep' }) });
    expect(v.view('val-2')?.lines).toEqual(['node.restart-lockstep: FAILED E_TIMEOUT el did not come back']);
    v.apply({ type: 'host-done', host: 'val-3', status: 'skipped', error: new KryptonError('E_HALTED', 'not run: an earlier wave of "rotate" failed') });
    expect(v.view('val-3')?.title).toBe('val-3  skipped — not run: an earlier wave of "rotate" failed');
  });

  it('a host that fails before any step (no connection) says why in its title', () => {
    const v = new FleetView(['val-1']);
    v.apply({ type: 'host-done', host: 'val-1', status: 'failed', error: new KryptonError('E_SSH_CONNECT', 'connection refused') });
    expect(v.view('val-1')?.title).toBe('val-1  failed — E_SSH_CONNECT connection refused');
  });

  it('the plain renderer prints skipped steps with their reason', () => {
    const lines: string[] = [];
    plainRenderer((l) => lines.push(l))(step('val-1', 'engine.verify-auth', 'skipped', { reason: 'depends on the changes planned above' }));
    expect(lines).toEqual(['val-1  engine.verify-auth  skipped  depends on the changes planned above']);
  });
});

import { act } from '../model/action.ts';
import { defineTask, change, noChange, refuse } from '../model/task.ts';
import { sha256Hex } from '../core/secret.ts';
import { horcruxInventoryProblems, layoutProblems, renderHorcruxConfig } from '../horcrux/config.ts';
import { cosignerSettings } from '../model/layout.ts';
import { homeState } from '../facts/dir.ts';
import { asCosigner, noParams } from './common.ts';

const RAM_FS = new Set(['tmpfs', 'ramfs']);

/**
 * horcrux.render-config — write the cosigner's non-secret `<home>/config.yaml` (keyDir, threshold, every
 * cosigner's shard id and p2p address, the chain nodes' privValAddr; Horcrux v3 threshold mode) and make sure
 * `<home>/state/` exists (0700) on persistent disk. Writes only what differs. Refuses, before writing anything,
 * an inventory without a `horcrux:` block, a threshold not above half the shards, a 0.0.0.0 or loopback peer,
 * and a layout that would put `state/` on a tmpfs (key_dir containing the home or state/, or state/ already on
 * tmpfs). A change here makes `horcrux.start` restart Horcrux.
 */
export const horcruxRenderConfig = defineTask({
  id: 'horcrux.render-config',
  summary: "write the cosigner's Horcrux config.yaml",
  appliesTo: 'cosigner',
  params: noParams,
  facts: (_p, host, inv) => ({ home: homeState(cosignerSettings(inv, asCosigner(host))) }),
  plan(_p, { home }, { inventory, host }) {
    if (!inventory.horcrux) {
      return refuse('E_INPUT', `the inventory has no horcrux: block, so ${host.name}'s threshold is unknown`, 'add horcrux: { threshold: <more than half the cosigners> } to the inventory');
    }
    const problems = horcruxInventoryProblems(inventory).map((p) => p.message);
    if (problems.length) return refuse('E_INPUT', problems.join('; '), 'fix the cosigners: / horcrux: blocks of the inventory');
    const s = cosignerSettings(inventory, asCosigner(host));
    const layout = layoutProblems(s);
    if (layout.length) return refuse('E_PLAN_CONFLICT', layout.join('; '), 'change key_dir or home so that state/ stays on persistent disk');
    if (home.state === 'other') return refuse('E_PLAN_CONFLICT', `${s.stateDir} exists but is not a directory`, 'move it aside; Horcrux keeps its double-sign state there');
    if (RAM_FS.has(home.stateFsType)) {
      return refuse('E_PLAN_CONFLICT', `${s.stateDir} is on a ${home.stateFsType}: Horcrux's double-sign high-water marks would be lost at reboot`, 'put the Horcrux home on persistent disk (only key_dir belongs on tmpfs)');
    }
    const text = renderHorcruxConfig(inventory, asCosigner(host));
    const owner = s.owner ? `${s.owner}${s.group ? `:${s.group}` : ''}` : undefined;
    const actions = [];
    if (home.state === 'absent') {
      actions.push(act.exec(['mkdir', '-p', '-m', '0700', '--', s.stateDir], `create ${s.stateDir} (persistent: double-sign state)`));
      if (owner) actions.push(act.exec(['chown', owner, '--', s.stateDir], `give ${s.stateDir} to ${owner}`));
    }
    const cfgOwnerOk = !s.owner || home.config.owner === s.owner;
    if (home.config.sha256 !== sha256Hex(text) || home.config.mode !== '0600' || !cfgOwnerOk) {
      actions.push(act.put(s.configFile, text, '0600', `${home.config.exists ? 'update' : 'write'} ${s.configFile} (threshold ${s.threshold} of ${inventory.cosigners.length}, p2p ${s.p2pAddr})`, { ...(s.owner ? { owner: s.owner } : {}), ...(s.group ? { group: s.group } : {}) }));
    }
    return actions.length ? change(...actions) : noChange(`${s.configFile} is current (threshold ${s.threshold} of ${inventory.cosigners.length}) and ${s.stateDir} is on ${home.stateFsType || 'persistent disk'}`);
  },
  triggersRestart: true,
});

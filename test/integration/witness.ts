import { hostExec } from '../sandbox/index.ts';

/** A node's witness logs: nodectl calls and CL Engine-API statuses, with times in seconds (ms precision). */
export interface Witness {
  host: string;
  restarts: number[];
  cl: { t: number; status: number }[];
}

export async function readWitness(host: string, since = 0): Promise<Witness> {
  const nodectl = (await hostExec(host, ['cat', '/var/log/krypton/nodectl.log'])).stdout;
  const cl = (await hostExec(host, ['cat', '/var/log/krypton/cl.log'])).stdout;
  return {
    host,
    restarts: nodectl
      .split('\n')
      .map((l) => l.split(' '))
      .filter((p) => p[1] === 'restart' && Number(p[0]) >= since)
      .map((p) => Number(p[0])),
    cl: cl
      .split('\n')
      .map((l) => l.split(' '))
      .filter((p) => p.length === 2 && Number(p[0]) >= since)
      .map((p) => ({ t: Number(p[0]), status: Number(p[1]) })),
  };
}

/** Each restart's window: from the restart call to the CL's first HTTP 200 after it (or +∞). */
export function downWindows(w: Witness): [number, number][] {
  return w.restarts.map((r) => [r, w.cl.find((c) => c.t > r && c.status === 200)?.t ?? Number.POSITIVE_INFINITY]);
}

/** CL calls that failed outside every restart window of their own node (should be none). */
export function failuresOutsideRestarts(w: Witness): { t: number; status: number }[] {
  const wins = downWindows(w);
  return w.cl.filter((c) => c.status !== 200 && !wins.some(([a, b]) => c.t >= a && c.t <= b));
}

/** Pairs of nodes whose down windows overlap. */
export function overlaps(ws: Witness[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < ws.length; i++)
    for (let j = i + 1; j < ws.length; j++)
      for (const [a1, b1] of downWindows(ws[i]!))
        for (const [a2, b2] of downWindows(ws[j]!)) if (a1 < b2 && a2 < b1) out.push(`${ws[i]!.host}@${a1} ~ ${ws[j]!.host}@${a2}`);
  return out;
}

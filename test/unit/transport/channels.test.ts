import { describe, expect, it } from 'vitest';
import { CHANNEL_RETRY, ChannelLimiter, channelRetryDelayMs, isChannelBackPressure, loweredChannelLimit } from '../../../src/transport/channels.ts';

/** An error as ssh2 reports a refused channel open (lib/utils.js onChannelOpenFailure). */
const refused = (reason: number | string, description: string) => Object.assign(new Error(`(SSH) Channel open failure: ${description}`), { reason });

describe('channel back-pressure: which refusals are retried', () => {
  it("OpenSSH beyond MaxSessions (administratively prohibited: open failed) and resource shortage are back-pressure", () => {
    expect(isChannelBackPressure(refused(1, 'open failed'))).toBe(true);
    expect(isChannelBackPressure(refused(4, 'resource shortage'))).toBe(true);
    expect(isChannelBackPressure(refused(4, 'resource shortage'), 'forward')).toBe(true);
  });

  it('a forward refused administratively (AllowTcpForwarding no) or a connect failure is not retried', () => {
    expect(isChannelBackPressure(refused(1, 'open failed'), 'forward')).toBe(false);
    expect(isChannelBackPressure(refused(2, 'Connection refused'), 'forward')).toBe(false);
    expect(isChannelBackPressure(refused(2, 'Connection refused'))).toBe(false);
    expect(isChannelBackPressure(refused(3, 'unknown channel type'))).toBe(false);
  });

  it('other errors (a channel the server closed unexpectedly, a lost connection, non-errors) are not', () => {
    expect(isChannelBackPressure(refused('', 'server closed channel unexpectedly'))).toBe(false);
    expect(isChannelBackPressure(new Error('No response from server'))).toBe(false);
    expect(isChannelBackPressure('Channel open failure')).toBe(false);
  });
});

describe('channel retry policy', () => {
  it('waits exponentially longer, capped, and gives up after the attempts', () => {
    const top = () => 0.999999;
    const delays: number[] = [];
    for (let f = 1; ; f++) {
      const d = channelRetryDelayMs(f, CHANNEL_RETRY, top);
      if (d === undefined) break;
      delays.push(d);
    }
    expect(delays).toHaveLength(CHANNEL_RETRY.attempts - 1);
    for (let i = 1; i < delays.length; i++) expect(delays[i]!).toBeGreaterThanOrEqual(delays[i - 1]!);
    expect(Math.max(...delays)).toBeLessThanOrEqual(CHANNEL_RETRY.maxDelayMs);
    expect(delays[0]).toBe(CHANNEL_RETRY.baseDelayMs);
  });

  it('jitters within [50 %, 100 %] of the step', () => {
    const policy = { attempts: 5, baseDelayMs: 1000, maxDelayMs: 10_000 };
    expect(channelRetryDelayMs(3, policy, () => 0)).toBe(2000);
    expect(channelRetryDelayMs(3, policy, () => 0.5)).toBe(3000);
    expect(channelRetryDelayMs(5, policy, () => 0.5)).toBeUndefined();
    expect(() => channelRetryDelayMs(0, policy)).toThrow(RangeError);
  });

  it('lowers the limit to the channels open when sshd refused, never below 1 nor above the current one', () => {
    expect(loweredChannelLimit(8, 2)).toBe(2); // MaxSessions 2: the third open was refused
    expect(loweredChannelLimit(8, 0)).toBe(1);
    expect(loweredChannelLimit(8, 5)).toBe(5);
    expect(loweredChannelLimit(3, 7)).toBe(3);
  });
});

describe('ChannelLimiter.lower', () => {
  it('admits no waiter until fewer than the new limit are held; holders keep their slots', async () => {
    const l = new ChannelLimiter(3);
    const r1 = await l.acquire();
    const r2 = await l.acquire();
    const r3 = await l.acquire();
    expect(l.lower(1)).toBe(1);
    expect(l.lower(5)).toBe(1); // never raised
    let got = false;
    const p = l.acquire().then((r) => ((got = true), r));
    r1();
    r2();
    await Promise.resolve();
    expect(got).toBe(false);
    expect(l.active).toBe(1);
    r3();
    const r4 = await p;
    expect(got).toBe(true);
    expect(l.active).toBe(1);
    r4();
    expect(l.active).toBe(0);
  });

  it('calls onWait when a caller has to queue (so an idle SFTP session can give its slot back)', async () => {
    const l = new ChannelLimiter(1);
    let waits = 0;
    l.onWait = () => waits++;
    const r1 = await l.acquire();
    expect(waits).toBe(0);
    const p = l.acquire();
    expect(waits).toBe(1);
    r1();
    (await p)();
  });
});

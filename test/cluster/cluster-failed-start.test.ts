/**
 * A cluster instance whose start fails part way leaves nothing behind: no lease in the shared
 * database (the others would count it as alive), and no task still ticking against a database
 * it closed (renewals, the log's poll, the moderation poll).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RegistryError } from '../../server/src/protocol/errors.js';
import { ClusterTail } from '../../server/src/server/cluster/cluster-tail.js';
import { ModerationStore } from '../../server/src/store/moderation/moderation-store.js';
import { clusterTestScope, freshDatabase, sql, startInstance } from '../support/cluster.js';
import { timersLeftBy } from '../support/timers-left.js';

clusterTestScope();
afterEach(() => {
  vi.restoreAllMocks();
});

async function leases(database: string): Promise<number> {
  return Number((await sql(database, 'SELECT count(*) AS n FROM registry_instances')).rows[0].n);
}

describe('a cluster instance whose start fails part way', () => {
  it('when the moderation decisions cannot be read: takes no lease and leaves no task running', async () => {
    const database = await freshDatabase('failed_start');
    vi.spyOn(ModerationStore.prototype, 'decisions').mockRejectedValueOnce(
      new RegistryError('STORE_UNAVAILABLE', 'simulated: the moderation decisions cannot be read'),
    );
    const left = await timersLeftBy(
      () => expect(startInstance(database)).rejects.toThrow('simulated: the moderation decisions cannot be read'),
      { unrefToo: true },
    );
    expect(left).toBe(0);
    expect(await leases(database)).toBe(0);
  });

  it('when the shared presence cannot be loaded: stops the moderation poll it had started', async () => {
    const database = await freshDatabase('failed_start');
    vi.spyOn(ClusterTail.prototype, 'start').mockRejectedValueOnce(
      new RegistryError('STORE_UNAVAILABLE', 'simulated: the presence snapshot cannot be read'),
    );
    const left = await timersLeftBy(
      () => expect(startInstance(database)).rejects.toMatchObject({ code: 'STORE_OPEN_FAILED' }),
      { unrefToo: true },
    );
    expect(left).toBe(0);
  });

  it('starts on the same database once the failure is gone', async () => {
    const database = await freshDatabase('failed_start');
    vi.spyOn(ModerationStore.prototype, 'decisions').mockRejectedValueOnce(
      new RegistryError('STORE_UNAVAILABLE', 'simulated: the moderation decisions cannot be read'),
    );
    await expect(startInstance(database)).rejects.toThrow('simulated');
    const instance = await startInstance(database);
    expect(await leases(database)).toBe(1);
    await instance.close();
  });
});

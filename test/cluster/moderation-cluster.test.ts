/**
 * The moderation rules on a cluster: two instances sharing PostgreSQL; a decision written to the
 * database (as the operator's command does) reaches the other instance within a second.
 */
import { afterEach, describe } from 'vitest';
import { openModerationStore } from '../../server/src/store/moderation/open-moderation.js';
import type { ModerationStore } from '../../server/src/store/moderation/moderation-store.js';
import { clusterTestScope, freshDatabase, sql, startInstance } from '../support/cluster.js';
import { moderationRules } from '../support/moderation.contract.js';

const { instances, connect } = clusterTestScope();
const operators: ModerationStore[] = [];
afterEach(async () => {
  for (const operator of operators.splice(0)) await operator.close();
});

describe('moderation on a cluster (PostgreSQL, two instances)', () => {
  moderationRules(async () => {
    const database = await freshDatabase('moderation');
    const options = { claims: { ClaimAfterSeconds: 0 } };
    const a = await startInstance(database, options);
    instances.push(a);
    const b = await startInstance(database, options);
    instances.push(b);
    const operator = await openModerationStore({ database, passwordFile: null });
    operators.push(operator);
    return {
      a,
      b,
      operator,
      connect: (server) => connect(server.url),
      claimed: async (nickname) =>
        (await sql(database, 'SELECT 1 FROM claims WHERE nickname = $1', [nickname])).rowCount === 1,
    };
  });
});

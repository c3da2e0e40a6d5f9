/** The moderation rules on a single host (SQLite), over real sockets: test/support/moderation.contract.ts. */
import { afterEach, describe } from 'vitest';
import { claimRows, testSession } from '../../../../test/support/test-session.js';
import { moderationRules } from '../../../../test/support/moderation.contract.js';
import { openModerationStore } from '../../store/moderation/open-moderation.js';
import type { ModerationStore } from '../../store/moderation/moderation-store.js';

const session = testSession();
const operators: ModerationStore[] = [];
afterEach(async () => {
  for (const operator of operators.splice(0)) await operator.close();
});

describe('moderation on SQLite', () => {
  moderationRules(async () => {
    const server = await session.server({}, { claims: { ClaimAfterSeconds: 0 } });
    const operator = await openModerationStore({ database: server.database, passwordFile: null });
    operators.push(operator);
    return {
      a: server,
      b: server,
      operator,
      connect: (s) => session.client(s),
      claimed: async (nickname) => claimRows(server.database).some((row) => row.nickname === nickname),
    };
  });
});

/**
 * The registry server's wiring: creates its parts, connects them, listens, and returns the handle.
 * What each part does is in the file named for it.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { RegistryError } from '../protocol/errors.js';
import { registryUrl, type OnionAddress } from '../protocol/onion-address.js';
import type { ClaimStore, Clock } from '../store/claim-store.js';
import { Budgets } from './scheduling/budgets.js';
import { isPostgresDatabase } from '../store/open-store.js';
import { ClaimKeeper } from './registry/claim-keeper.js';
import type { Config } from './config/config.js';
import type { PeerConnection } from './connection/peer-connection.js';
import { Dispatcher } from './registry/dispatch.js';
import { EventHub } from './registry/event-hub.js';
import { backlogLength, FairScheduler } from './scheduling/fair-scheduler.js';
import { Heartbeats } from './connection/heartbeats.js';
import { helloLimits } from './connection/hello.js';
import { HttpAdmission } from './connection/http-admission.js';
import type { Logger } from './logger.js';
import { OnionWatcher } from './onion-watcher.js';
import { OperatorListener, type OperatorListenerOptions } from './operator-listener.js';
import { openConfiguredStore } from '../store/open-store.js';
import { openConfiguredPresence } from './cluster/open-presence.js';
import { STORE_RETRY_AFTER_MS } from '../store/store-error.js';
import { ClusterRoster } from './cluster/cluster-roster.js';
import type { PresenceStore } from './cluster/presence.js';
import { OpenConnections } from './connection/open-connections.js';
import { OutputBudget } from './connection/output-budget.js';
import { PeerTable } from './registry/peer-table.js';
import { PendingLine } from './connection/pending-line.js';
import { SummaryLine } from './summary-line.js';
import { Registrar } from './registry/registration.js';
import { CLOSINGS } from './registry/refusals.js';
import { LocalRoster, RosterEffects, type PeerOwner, type Roster } from './registry/roster.js';
import { moderationBeside } from '../store/moderation/open-moderation.js';
import type { ModerationStore } from '../store/moderation/moderation-store.js';
import { ModerationWatch, type ModerationWatchOptions } from './moderation/moderation-watch.js';
import { RequestCounts } from '../metrics/request-counts.js';
import { observers } from './observers.js';

const SHUTDOWN_GRACE_MS = 3_000;

export interface RegistryStats {
  readonly connections: number;
  readonly pending: number;
  readonly peers: number;
  readonly subscribers: number;
  /** Bytes queued for all connections (MaxOutputBytes bounds it). */
  readonly outputBytes: number;
}

export interface RegistryServer {
  /** The TCP address (tests use port 0) or the unix socket path. */
  readonly address: AddressInfo | string;
  readonly onion: OnionAddress | null;
  /** `ws://<onion>:<HiddenServicePort>/` once the onion address is known. */
  readonly url: string | null;
  stats(): RegistryStats;
  /** Closes every connection with 1001 and stops listening. */
  close(): Promise<void>;
}

/** What tests and the bench may change of a server's start (nothing an operator configures). */
export interface StartOptions {
  /** The claim store's clock (ms since the epoch). Ignored with `openStore`. */
  readonly now?: Clock;
  /** How often live registrations' last-seen is written (at most 10 minutes). */
  readonly touchIntervalMs?: number;
  /**
   * Dependency injection, not a configuration: opens the claim store in place of the configured
   * SQLite file (`[Store] Database`). The bench's `claims` phase passes a store that keeps nothing
   * (bench/phases/claims-server.mjs), so that the same server with and without durable claims can
   * be measured side by side; no config key or environment variable reaches this.
   */
  readonly openStore?: (config: Config) => Promise<ClaimStore>;
}

export async function startServer(config: Config, logger: Logger, options: StartOptions = {}): Promise<RegistryServer> {
  // A cluster instance's id, known before its first connection so that each one carries it.
  const instanceId = isPostgresDatabase(config.claims.database) ? randomUUID() : undefined;
  // First: a database that cannot be opened, written or migrated stops the start (one line, from the store).
  const store =
    options.openStore !== undefined
      ? await options.openStore(config)
      : await openConfiguredStore(config.claims, {
          ...(options.now === undefined ? {} : { now: options.now }),
          ...(instanceId === undefined ? {} : { instanceId }),
        });
  const claims = new ClaimKeeper({
    store,
    claimAfterSeconds: config.claims.claimAfterSeconds,
    logger: logger.child({ module: 'claims' }),
    ...(options.touchIntervalMs === undefined ? {} : { touchIntervalMs: options.touchIntervalMs }),
  });
  // A postgres:// database: this registry is one instance of a cluster, sharing live presence too.
  const presence =
    options.openStore !== undefined || instanceId === undefined
      ? null
      : openConfiguredPresence(config.claims, instanceId);
  let moderation: ModerationStore | null = null;
  try {
    // Revision 3: the operator's decisions live beside the claims (an injected store has none).
    if (options.openStore === undefined) moderation = await moderationBeside(store, config.claims);
    return await startWith(
      config,
      logger,
      claims,
      presence === null || instanceId === undefined ? null : { presence, instanceId },
      moderation,
    );
  } catch (err) {
    await moderation?.close();
    await presence?.close();
    await claims.close();
    throw err;
  }
}

async function startWith(
  config: Config,
  logger: Logger,
  claims: ClaimKeeper,
  shared: { readonly presence: PresenceStore; readonly instanceId: string } | null,
  moderationStore: ModerationStore | null,
): Promise<RegistryServer> {
  const { limits } = config;
  const peers = new PeerTable<PeerOwner>(limits.maxPeers);
  const budgets = new Budgets(limits);
  const watcher = new OnionWatcher({
    dir: config.hiddenServiceDir,
    timeoutSeconds: config.hostnameTimeoutSeconds,
    logger: logger.child({ module: 'onion-watcher' }),
  });
  const onionUrl = (): string | null =>
    watcher.address === null ? null : registryUrl(watcher.address, config.hiddenServicePort);
  watcher.on('address', () => logAddress());

  const scheduler = new FairScheduler<PeerConnection>({
    run: (conn, data, isBinary) => dispatcher.handleFrame(conn, data, isBinary),
    refuseExcess: (conn, count) => dispatcher.refuseExcess(conn, count),
    maxBacklog: backlogLength(limits),
  });
  // Event fan-out takes its slices of the same turns as requests (see fair-scheduler.ts).
  const hub = new EventHub({ batchMs: limits.eventBatchMs, slices: scheduler });
  const effects = new RosterEffects(peers, hub, claims);
  // Said here once this backend's own onion is known too; the watcher says it otherwise.
  const frontendChanged = (): void => {
    if (watcher.address !== null) logAddress();
  };
  const cluster = shared === null ? null : clusterRoster(config, logger, shared, effects, watcher, frontendChanged);
  const logAddress = (): void => logReachable(logger, String(onionUrl()), cluster, config.hiddenServicePort);
  const roster: Roster = cluster ?? new LocalRoster(effects);
  // The decisions first: a read that fails then leaves no lease and no cluster task behind. A
  // cluster that fails to start stops the moderation poll again (startServer closes the stores).
  const moderation = await watchModeration(moderationStore, { peers, roster, keeper: claims, logger });
  if (cluster !== null) {
    try {
      await startCluster(cluster);
    } catch (err) {
      await moderation?.close();
      throw err;
    }
  }
  const summary = new SummaryLine(logger, config.logSummarySeconds);
  const counts = new RequestCounts();
  const registrar = registrarOf(config, { peers, roster, budgets, scheduler, claims, summary, counts, moderation });
  const output = new OutputBudget(limits.maxOutputBytes);
  const pendingLine = new PendingLine(limits.maxPendingConnections);
  const connections = new OpenConnections({
    limits,
    logger,
    budgets,
    scheduler,
    hub,
    registrar,
    output,
    pendingLine,
    refusals: summary,
    // A cluster's backend reports the frontend's address, where peers reach the registry.
    onion: () => cluster?.frontendOnion ?? watcher.address,
    helloLimits: helloLimits(config),
  });
  const dispatcher = new Dispatcher({ limits, budgets, peers, hub, registrar, connections, counts });
  const admission = new HttpAdmission({ limits, logger, connections, pendingLine, refusals: summary });
  const heartbeats = new Heartbeats(connections, limits.heartbeatSeconds * 1000);
  const parts: RunningParts = {
    heartbeats,
    hub,
    watcher,
    admission,
    roster,
    connections,
    summary,
    claims,
    moderation,
    operator: null,
  };
  const close = closer(parts);

  const observed = { counts, summary, hub, claims, watcher, cluster, connections, peers, output };
  const { health, stats, metrics } = observers(config, observed);
  const address = await listenAll(config, logger, parts, { health, metrics }, close);
  return {
    address,
    get onion() {
      return watcher.address;
    },
    get url() {
      return onionUrl();
    },
    stats,
    close,
  };
}

/**
 * Listens (the operator listener before the public one) and watches the onion's hostname. A failed
 * start closes what it started: the listeners, the timers, a cluster's tail, the store.
 */
async function listenAll(
  config: Config,
  logger: Logger,
  parts: RunningParts,
  operator: Omit<OperatorListenerOptions, 'logger'>,
  close: () => Promise<void>,
): Promise<AddressInfo | string> {
  try {
    parts.operator = await listenForOperator(config, logger, operator);
    const address = await parts.admission.listen(config.listen);
    await parts.watcher.start();
    return address;
  } catch (err) {
    await close();
    throw err;
  }
}

interface RunningParts {
  readonly heartbeats: Heartbeats;
  readonly hub: EventHub;
  readonly watcher: OnionWatcher;
  readonly admission: HttpAdmission;
  readonly roster: Roster;
  readonly connections: OpenConnections;
  readonly summary: SummaryLine;
  /** Set once it listens. */
  operator: OperatorListener | null;
  readonly claims: ClaimKeeper;
  readonly moderation: ModerationWatch | null;
}

function clusterRoster(
  config: Config,
  logger: Logger,
  shared: { readonly presence: PresenceStore; readonly instanceId: string },
  effects: RosterEffects,
  watcher: OnionWatcher,
  frontendChanged: () => void,
): ClusterRoster {
  return new ClusterRoster({
    ...shared,
    effects,
    logger: logger.child({ module: 'cluster' }),
    leaseMs: config.claims.leaseSeconds * 1000,
    retryAfterMs: STORE_RETRY_AFTER_MS,
    onion: () => watcher.address,
    frontendChanged,
  });
}

/** The server's close, once (later calls wait for the first): also what a failed start runs. */
function closer(parts: RunningParts): () => Promise<void> {
  const { heartbeats, hub, watcher, admission, roster, connections, summary, claims } = parts;
  let closing: Promise<void> | undefined;
  return () => {
    closing ??= (async () => {
      heartbeats.stop();
      await parts.moderation?.close();
      hub.close();
      await watcher.close();
      const closed = admission.close();
      roster.stopping();
      connections.closeAll(CLOSINGS.shutdown);
      const grace = setTimeout(() => {
        connections.terminateAll();
        admission.closeAllConnections();
      }, SHUTDOWN_GRACE_MS);
      await closed;
      clearTimeout(grace);
      await parts.operator?.close();
      summary.close();
      await roster.close(); // a cluster's registrations end in one write
      await claims.close(); // after every connection's last-seen was queued
    })();
    return closing;
  };
}

/** The operator listener when [Host] OperatorSocket is set, listening; it comes up before the public one. */
async function listenForOperator(
  config: Config,
  logger: Logger,
  options: Omit<OperatorListenerOptions, 'logger'>,
): Promise<OperatorListener | null> {
  if (config.operatorSocket === null) {
    logger.info(
      'no operator listener ([Host] OperatorSocket is not set): /healthz is served nowhere and `p2p-registry ' +
        'health` fails',
    );
    return null;
  }
  const operator = new OperatorListener({ logger, ...options });
  await operator.listen(config.operatorSocket);
  return operator;
}

/**
 * Where peers reach the registry: this onion (`own`), or a cluster's frontend address (a backend's
 * own onion is only where the frontend's descriptor sends their circuits).
 */
function logReachable(logger: Logger, own: string, cluster: ClusterRoster | null, port: number): void {
  const master = cluster?.frontendOnion ?? null;
  if (cluster === null) logger.info({ url: own }, `registry reachable at ${own}`);
  else if (master === null)
    logger.info(
      { backend: own },
      `${own} is this cluster backend's own onion: peers reach the registry at the frontend's address, which it has ` +
        `not published yet`,
    );
  else {
    const url = registryUrl(master, port);
    logger.info(
      { url, backend: own },
      `registry reachable at ${url} (the cluster's frontend); ${own} is this backend's own onion`,
    );
  }
}

/** The cluster's first contact with the shared presence: a database that cannot be read stops the start. */
async function startCluster(roster: ClusterRoster): Promise<void> {
  try {
    await roster.start();
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'STORE_UNAVAILABLE') {
      throw new RegistryError(
        'STORE_OPEN_FAILED',
        `${err.message} The start stops here: a cluster instance needs the shared database ([Store] Database) to ` +
          `load who is registered.`,
        { cause: err },
      );
    }
    throw err;
  }
}

/** Revision 3: the operator's decisions, read before the server listens, then polled. */
async function watchModeration(
  store: ModerationStore | null,
  options: Omit<ModerationWatchOptions, 'store'>,
): Promise<ModerationWatch | null> {
  if (store === null) return null;
  const watch = new ModerationWatch({ ...options, store, logger: options.logger.child({ module: 'moderation' }) });
  await watch.start();
  return watch;
}

function registrarOf(
  config: Config,
  parts: {
    readonly peers: PeerTable<PeerOwner>;
    readonly roster: Roster;
    readonly budgets: Budgets;
    readonly scheduler: FairScheduler<PeerConnection>;
    readonly claims: ClaimKeeper;
    readonly summary: SummaryLine;
    readonly counts: RequestCounts;
    readonly moderation: ModerationWatch | null;
  },
): Registrar {
  const { peers, roster, budgets, scheduler, claims, summary, counts, moderation } = parts;
  const claimPart = { keeper: claims, requireAddressProof: config.claims.requireAddressProof };
  return new Registrar(peers, roster, budgets, scheduler, claimPart, summary, counts, moderation ?? undefined);
}

-- Today's schema (postgres-schema.ts, migrations 1-4), verbatim SQL, for the bench databases.
CREATE TABLE schema_version (version integer NOT NULL); INSERT INTO schema_version VALUES (4);
CREATE TABLE claims (
  key_id           text    NOT NULL PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{64}$'),
  public_key       bytea   NOT NULL,
  nickname         text    NOT NULL,
  nickname_key     text    COLLATE "C" NOT NULL UNIQUE CHECK (nickname_key = lower(nickname)),
  address          text    NOT NULL UNIQUE,
  address_verified boolean NOT NULL,
  claimed_at       bigint  NOT NULL,
  last_seen_at     bigint  NOT NULL,
  expires_at       bigint  NOT NULL
);
CREATE INDEX claims_by_expiry ON claims (expires_at);
CREATE TABLE registry_instances (
  id          text        NOT NULL PRIMARY KEY,
  started_at  timestamptz NOT NULL DEFAULT now(),
  lease_until timestamptz NOT NULL
);
CREATE TABLE presence (
  key_id           text    NOT NULL PRIMARY KEY,
  nickname         text    NOT NULL,
  nickname_key     text    COLLATE "C" NOT NULL UNIQUE CHECK (nickname_key = lower(nickname)),
  address          text    NOT NULL UNIQUE,
  address_verified boolean NOT NULL,
  instance_id      text    NOT NULL,
  local_ref        bigint  NOT NULL,
  public_key       bytea   NOT NULL,
  peer             text    NOT NULL
);
CREATE INDEX presence_by_instance ON presence (instance_id);
CREATE TABLE presence_log_head (
  id     smallint NOT NULL PRIMARY KEY CHECK (id = 1),
  seq    bigint   NOT NULL,
  log_id text     NOT NULL
);
INSERT INTO presence_log_head VALUES (1, 0, md5(random()::text || clock_timestamp()::text));
CREATE TABLE presence_events (
  seq         bigint      NOT NULL PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT now(),
  kind        text        NOT NULL CHECK (kind IN ('joined', 'left', 'replaced', 'evicted', 'expired')),
  announce    boolean     NOT NULL,
  key_id      text        NOT NULL,
  nickname    text        NOT NULL,
  instance_id text        NOT NULL,
  local_ref   bigint      NOT NULL,
  public_key  bytea,
  peer        text
);
CREATE TABLE registry_backends (onion text NOT NULL PRIMARY KEY, last_seen timestamptz NOT NULL);
CREATE TABLE registry_frontend (
  id           smallint    NOT NULL PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  master_onion text        NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE registry_backends ADD COLUMN instance_id text, ADD COLUMN lease_until timestamptz,
  ADD COLUMN drained_at timestamptz, ADD COLUMN drain_reason text;
ALTER TABLE presence ADD COLUMN registered_at bigint;
-- the bench's three instance rows (bench/phases/pgbench.mjs)
INSERT INTO registry_instances (id, lease_until) SELECT 'pgbench-' || i, now() + interval '1 day' FROM generate_series(0, 2) i;

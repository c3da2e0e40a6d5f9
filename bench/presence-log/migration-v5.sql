-- Schema version 5: the presence log is numbered by sequencer rounds, not by each writer.
--  - presence_inbox: events committed but not numbered yet, each batch under ONE presence_stamp value.
--  - presence_stage(events): the writer's last statement; presence_round(...): one round at a time
--    (advisory lock); presence_settle(): CALLed by every writer after its COMMIT (see each below).
--  - presence_events keeps its columns and meaning (gap-free seq, read by the tails as before) and
--    gains stamp; presence_log_head keeps seq and log_id.
CREATE SEQUENCE presence_stamp AS bigint CACHE 1;  -- CACHE 1: values are handed out in real-time order across backends
CREATE TABLE presence_inbox (
  stamp       bigint  NOT NULL,
  ord         integer NOT NULL,
  kind        text    NOT NULL CHECK (kind IN ('joined', 'left', 'replaced', 'evicted', 'expired')),
  announce    boolean NOT NULL,
  key_id      text    NOT NULL,
  nickname    text    NOT NULL,
  instance_id text    NOT NULL,
  local_ref   bigint  NOT NULL,
  public_key  bytea,
  peer        text,
  PRIMARY KEY (stamp, ord)
) WITH (autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE presence_events ADD COLUMN stamp bigint;  -- the writer's stamp, for its waiters (NULL before version 5)

-- One round: the committed inbox rows, and the caller's own events (own_stamp, arrays: the writer
-- that got the lock numbers its events directly, without the inbox), numbered from the head in
-- (stamp, ord) order; the head bumped once; one notification. wait = false: head NULL at once when
-- another round holds the lock. Takes every visible inbox row (no LIMIT: a writer's own events must
-- never be numbered before a committed inbox row with a smaller stamp). Nothing to number: no write.
CREATE FUNCTION presence_round(wait boolean, own_stamp bigint DEFAULT NULL, kinds text[] DEFAULT '{}', announces boolean[] DEFAULT '{}',
                               key_ids text[] DEFAULT '{}', nicknames text[] DEFAULT '{}', instance_ids text[] DEFAULT '{}',
                               local_refs bigint[] DEFAULT '{}', public_keys bytea[] DEFAULT '{}', peers text[] DEFAULT '{}',
                               OUT head bigint, OUT numbered bigint)
LANGUAGE plpgsql AS $$
BEGIN
  IF wait THEN
    PERFORM pg_advisory_xact_lock(8084647922310145393);
  ELSIF NOT pg_try_advisory_xact_lock(8084647922310145393) THEN
    RETURN;                                   -- head NULL: another round is in flight
  END IF;
  PERFORM set_config('p2p_registry.round', 'on', true);
  WITH moved AS (
    DELETE FROM presence_inbox
    RETURNING stamp, ord, kind, announce, key_id, nickname, instance_id, local_ref, public_key, peer
  ), own AS (
    SELECT own_stamp AS stamp, e.ord::integer AS ord, e.kind, e.announce, e.key_id, e.nickname, e.instance_id, e.local_ref, e.public_key, e.peer
    FROM unnest(kinds, announces, key_ids, nicknames, instance_ids, local_refs, public_keys, peers)
         WITH ORDINALITY AS e(kind, announce, key_id, nickname, instance_id, local_ref, public_key, peer, ord)
  ), batch AS (
    SELECT * FROM moved UNION ALL SELECT * FROM own
  ), n AS (SELECT count(*) AS n FROM batch),
  bumped AS (
    UPDATE presence_log_head SET seq = seq + (SELECT n FROM n) WHERE id = 1 AND (SELECT n FROM n) > 0 RETURNING seq
  ), logged AS (
    INSERT INTO presence_events (seq, kind, announce, key_id, nickname, instance_id, local_ref, public_key, peer, stamp)
    SELECT (SELECT seq FROM bumped) - (SELECT n FROM n) + row_number() OVER (ORDER BY b.stamp, b.ord),
           b.kind, b.announce, b.key_id, b.nickname, b.instance_id, b.local_ref, b.public_key, b.peer, b.stamp
    FROM batch b
    RETURNING seq
  )
  SELECT coalesce((SELECT seq FROM bumped), (SELECT h.seq FROM presence_log_head h WHERE h.id = 1)), (SELECT n FROM n),
         CASE WHEN (SELECT n FROM n) > 0 THEN pg_notify('registry_presence', '') END
    INTO head, numbered;
END $$;

-- The writer's LAST statement (its batch's events): the stamp is taken here, after every lock the
-- transaction waited for. If no round is in flight, this transaction is the round: its events and
-- every committed inbox row are numbered when it commits (head returned). Else its events wait in
-- the inbox (head NULL) for the next round. wait_ms: 0 in the design (a writer never waits for a
-- round); > 0 (wait that long for the round in flight) was measured as design-hybrid, not chosen.
CREATE FUNCTION presence_stage(kinds text[], announces boolean[], key_ids text[], nicknames text[], instance_ids text[],
                               local_refs bigint[], public_keys bytea[], peers text[], wait_ms integer DEFAULT 0,
                               OUT stamp bigint, OUT head bigint)
LANGUAGE plpgsql AS $$
DECLARE
  timeout text := current_setting('lock_timeout');
BEGIN
  IF wait_ms > 0 AND NOT pg_try_advisory_xact_lock(8084647922310145393) THEN
    BEGIN  -- a short wait for the round in flight (its holder is at its COMMIT); never longer than wait_ms
      PERFORM set_config('lock_timeout', wait_ms || 'ms', true);
      PERFORM pg_advisory_xact_lock(8084647922310145393);
    EXCEPTION WHEN lock_not_available THEN
      NULL;                                   -- the inbox, below
    END;
    PERFORM set_config('lock_timeout', timeout, true);
  END IF;
  stamp := nextval('presence_stamp');
  SELECT r.head INTO head FROM presence_round(false, stamp, kinds, announces, key_ids, nicknames, instance_ids, local_refs, public_keys, peers) r;
  IF head IS NULL THEN
    INSERT INTO presence_inbox (stamp, ord, kind, announce, key_id, nickname, instance_id, local_ref, public_key, peer)
    SELECT presence_stage.stamp, e.ord, e.kind, e.announce, e.key_id, e.nickname, e.instance_id, e.local_ref, e.public_key, e.peer
    FROM unnest(kinds, announces, key_ids, nicknames, instance_ids, local_refs, public_keys, peers)
         WITH ORDINALITY AS e(kind, announce, key_id, nickname, instance_id, local_ref, public_key, peer, ord);
  END IF;
END $$;

-- CALLed by every writer right after its COMMIT (never inside a transaction block): while the inbox
-- holds anything, a round if no other round holds the lock; else return: that round's holder CALLs
-- this after its own commit and sees what was committed before. So nothing committed stays
-- unnumbered once its writer's CALL returned, whoever numbers it. head: the head after this CALL's
-- first round (which took the caller's events too), else NULL (wait by stamp). more: stopped after
-- 8 rounds with the inbox not empty: the caller CALLs it again soon, off its writer's path.
CREATE PROCEDURE presence_settle(INOUT head bigint DEFAULT NULL, INOUT more boolean DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  rounds int := 0;
BEGIN
  head := NULL;
  more := false;
  WHILE EXISTS (SELECT 1 FROM presence_inbox) LOOP
    IF rounds = 8 THEN more := true; EXIT; END IF;
    SELECT * INTO r FROM presence_round(false);
    EXIT WHEN r.head IS NULL;
    IF rounds = 0 THEN head := r.head; END IF;
    COMMIT;                                   -- durable; releases the lock
    rounds := rounds + 1;
  END LOOP;
END $$;

-- (Measured alternative to presence_settle, not the design: a writer that missed the lock waits for
-- the round in flight (shared lock), then says whether its stamp was numbered (the head) or not (NULL).)
CREATE FUNCTION presence_covered(want bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock_shared(8084647922310145393);
  IF EXISTS (SELECT 1 FROM presence_inbox WHERE stamp = want) THEN RETURN NULL; END IF;
  RETURN (SELECT seq FROM presence_log_head WHERE id = 1);
END $$;

-- Only a round numbers events: a writer of schema version 4 (during a rolling upgrade) is refused
-- with 55P03, which it answers as UNAVAILABLE, instead of numbering its events past the inbox.
CREATE FUNCTION presence_events_by_round() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('p2p_registry.round', true) IS DISTINCT FROM 'on' THEN
    RAISE EXCEPTION 'presence_events is numbered by sequencer rounds since schema version 5: this registry is older; upgrade it'
      USING ERRCODE = '55P03';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER presence_events_by_round BEFORE INSERT ON presence_events
  FOR EACH STATEMENT EXECUTE FUNCTION presence_events_by_round();
UPDATE schema_version SET version = 5;  -- (the server's migration runner does this itself)

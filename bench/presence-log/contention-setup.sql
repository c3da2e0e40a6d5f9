-- The ordering experiment: registrations and leaves of a few keys, nicknames and addresses from many
-- concurrent writers (3 instances), batched several per transaction, decided by the same rules as
-- postgres-presence.ts (#decideEnter, #decideLeave), logged by the design (presence_stage last, then CALL presence_settle after the commit).
-- Afterwards replay.sql checks the log in several orders.
CREATE SEQUENCE bench_ref;
CREATE TABLE bench_stamp_xid (stamp bigint PRIMARY KEY, xid xid8 NOT NULL);  -- for the xid-order comparison only
CREATE FUNCTION bench_batch(inst text, nops int, keys int, nicks int, addrs int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  kinds text[] := '{}'; announces boolean[] := '{}'; key_ids text[] := '{}'; nicknames text[] := '{}';
  refs bigint[] := '{}'; peers text[] := '{}'; insts text[] := '{}';
  k text; nick text; addr text; verified boolean; ref bigint; r record; taken boolean; removed text[];
  stamp bigint; n0 int;
BEGIN
  -- the instance's lease, as the batch does (this assigns the transaction id at the very start)
  PERFORM 1 FROM registry_instances WHERE id = inst AND lease_until > now() FOR KEY SHARE;
  FOR i IN 1..nops LOOP
    k := 'k' || (floor(random() * keys))::int;
    IF random() < 0.3 THEN  -- a leave of this key's registration on this instance
      FOR r IN DELETE FROM presence WHERE key_id = k AND instance_id = inst RETURNING * LOOP
        kinds := kinds || 'left'::text; announces := announces || true; key_ids := key_ids || r.key_id;
        nicknames := nicknames || r.nickname; refs := refs || r.local_ref; insts := insts || r.instance_id; peers := peers || NULL::text;
      END LOOP;
      CONTINUE;
    END IF;
    nick := 'n' || (floor(random() * nicks))::int;
    addr := 'a' || (floor(random() * addrs))::int;
    verified := random() < 0.2;
    ref := nextval('bench_ref');
    n0 := coalesce(array_length(kinds, 1), 0);
    BEGIN  -- one registration: a unique violation (another writer's commit in the way) refuses it alone
      taken := false; removed := '{}';
      FOR r IN SELECT * FROM presence WHERE key_id = k OR nickname_key = nick OR address = addr ORDER BY key_id FOR UPDATE LOOP
        IF r.key_id = k THEN
          removed := removed || r.key_id;
          kinds := kinds || 'replaced'::text; announces := announces || (r.nickname_key <> nick); key_ids := key_ids || r.key_id;
          nicknames := nicknames || r.nickname; refs := refs || r.local_ref; insts := insts || r.instance_id; peers := peers || NULL::text;
        ELSIF r.address = addr AND verified AND NOT r.address_verified THEN
          removed := removed || r.key_id;
          kinds := kinds || 'evicted'::text; announces := announces || true; key_ids := key_ids || r.key_id;
          nicknames := nicknames || r.nickname; refs := refs || r.local_ref; insts := insts || r.instance_id; peers := peers || NULL::text;
        ELSE
          taken := true; EXIT;
        END IF;
      END LOOP;
      IF taken THEN RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'taken'; END IF;
      DELETE FROM presence WHERE key_id = ANY (removed);
      INSERT INTO presence (key_id, nickname, nickname_key, address, address_verified, instance_id, local_ref, public_key, peer)
      VALUES (k, nick, nick, addr, verified, inst, ref, '\x00', json_build_object('address', addr, 'addressVerified', verified)::text);
      kinds := kinds || 'joined'::text; announces := announces || true; key_ids := key_ids || k::text;
      nicknames := nicknames || nick; refs := refs || ref; insts := insts || inst;
      peers := peers || json_build_object('address', addr, 'addressVerified', verified)::text;
    EXCEPTION WHEN unique_violation OR raise_exception THEN
      -- refused: its database changes are undone by the block; its events (variables) are cut here
      kinds := kinds[1:n0]; announces := announces[1:n0]; key_ids := key_ids[1:n0];
      nicknames := nicknames[1:n0]; refs := refs[1:n0]; peers := peers[1:n0]; insts := insts[1:n0];
    END;
  END LOOP;
  IF coalesce(array_length(kinds, 1), 0) = 0 THEN RETURN NULL; END IF;
  SELECT s.stamp INTO stamp FROM presence_stage(kinds, announces, key_ids, nicknames, insts, refs, array_fill(NULL::bytea, ARRAY[array_length(kinds, 1)]), peers) s;
  INSERT INTO bench_stamp_xid VALUES (stamp, pg_current_xact_id());  -- the experiment's record only
  RETURN stamp;
END $$;

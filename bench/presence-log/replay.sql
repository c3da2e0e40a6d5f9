-- Replays presence_events in a given order onto an empty table, as an instance's replica applies them:
-- a 'joined' needs its key, nickname and address free; a removal needs exactly that registration
-- (key, nickname, instance, ref) held. Any other case is a reordering of one key's, nickname's or
-- address's changes. Also says whether the replayed table equals presence (a fresh list).
CREATE OR REPLACE FUNCTION replay(ordering text) RETURNS TABLE (events bigint, violations bigint, first_violation text, equals_presence boolean)
LANGUAGE plpgsql AS $$
DECLARE e record; v bigint := 0; n bigint := 0; fv text; a text;
BEGIN
  CREATE TEMP TABLE IF NOT EXISTS st (key_id text PRIMARY KEY, nick text, addr text, inst text, ref bigint) ON COMMIT DROP;
  TRUNCATE st;
  FOR e IN EXECUTE 'SELECT ev.*, sx.xid FROM presence_events ev LEFT JOIN bench_stamp_xid sx USING (stamp) ORDER BY ' || ordering LOOP
    n := n + 1;
    IF e.kind = 'joined' THEN
      a := (e.peer::json)->>'address';
      IF EXISTS (SELECT 1 FROM st WHERE st.key_id = e.key_id OR st.nick = e.nickname OR st.addr = a) THEN
        v := v + 1; fv := coalesce(fv, format('seq %s joined %s %s %s: key, nickname or address still held', e.seq, e.key_id, e.nickname, a));
        DELETE FROM st WHERE st.key_id = e.key_id OR st.nick = e.nickname OR st.addr = a;  -- as the replica's force() would
      END IF;
      INSERT INTO st VALUES (e.key_id, e.nickname, a, e.instance_id, e.local_ref);
    ELSE
      IF NOT EXISTS (SELECT 1 FROM st WHERE st.key_id = e.key_id AND st.nick = e.nickname AND st.inst = e.instance_id AND st.ref = e.local_ref) THEN
        v := v + 1; fv := coalesce(fv, format('seq %s %s %s %s: not held', e.seq, e.kind, e.key_id, e.nickname));
      END IF;
      DELETE FROM st WHERE st.key_id = e.key_id AND st.inst = e.instance_id AND st.ref = e.local_ref;
    END IF;
  END LOOP;
  RETURN QUERY SELECT n, v, fv,
    NOT EXISTS (SELECT st.key_id, st.nick, st.addr, st.inst, st.ref FROM st EXCEPT SELECT p.key_id, p.nickname, p.address, p.instance_id, p.local_ref FROM presence p)
    AND NOT EXISTS (SELECT p.key_id, p.nickname, p.address, p.instance_id, p.local_ref FROM presence p EXCEPT SELECT st.key_id, st.nick, st.addr, st.inst, st.ref FROM st);
END $$;

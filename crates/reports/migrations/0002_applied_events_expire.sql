-- A generation's `applied_events` grew by a row per event for as long as the generation
-- lived. A row is needed only while its event can still be delivered again: JetStream keeps
-- an event for a week (the events stream's max age) and a rebuild's catch-up looks back
-- minutes. Each row now says when it was applied, and maintenance forgets those older than
-- the consumers' retention (`KEEL_PROCESSED_RETENTION`, a week), as it does
-- `bus.processed_messages`.

-- Adds the column and its index to generation n's table.
CREATE FUNCTION reports.timestamp_applied_events(n int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE s text := format('reports_g%s', n);
BEGIN
    -- now() is stable, so existing rows take the migration's time without a table rewrite.
    EXECUTE format('ALTER TABLE %I.applied_events ADD COLUMN applied_at timestamptz NOT NULL DEFAULT now()', s);
    EXECUTE format('CREATE INDEX applied_events_applied_at ON %I.applied_events (applied_at)', s);
END
$$;

-- New generations get it as they are created (0001's function keeps the tables' shape).
ALTER FUNCTION reports.create_generation(int) RENAME TO create_generation_tables;
CREATE FUNCTION reports.create_generation(n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM reports.create_generation_tables(n);
    PERFORM reports.timestamp_applied_events(n);
END
$$;

-- And the generations that exist.
SELECT reports.timestamp_applied_events(generation) FROM reports.generations;

-- Months of the event log past its retention are moved here, not dropped: the hot log stays
-- small, and rebuilding the read models still reads every event. Dropping them for good is a
-- retention of its own (KEEL_EVENT_ARCHIVE_RETENTION_MONTHS), off unless set.
CREATE TABLE bus.event_archive (
    id          bigint      NOT NULL,
    subject     text        NOT NULL,
    payload     jsonb       NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (occurred_at, id)
) PARTITION BY RANGE (occurred_at);

-- Rebuilds replay in publication order, the archive first.
CREATE INDEX event_archive_id ON bus.event_archive (id);

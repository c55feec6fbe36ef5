-- Months of the event log past its retention are moved here, not dropped: the hot log stays
-- small, and rebuilding the read models still reads every event. Dropping them for good is a
-- retention of its own (KEEL_EVENT_ARCHIVE_RETENTION_MONTHS), off unless set. The log's own
-- shape, keys and indexes, so that its months attach as they are.
CREATE TABLE bus.event_archive (LIKE bus.event_log INCLUDING ALL) PARTITION BY RANGE (occurred_at);

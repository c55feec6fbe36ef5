-- Relays poll the outbox instead of waiting for a NOTIFY. PostgreSQL takes one
-- database-wide lock on its notification queue when a notifying transaction commits and
-- holds it until the commit is flushed: with a NOTIFY in every order's transaction, orders
-- committed one after another, each waiting for the flush before it.
DROP TRIGGER IF EXISTS outbox_notify ON bus.outbox;
DROP FUNCTION IF EXISTS bus.notify_outbox();

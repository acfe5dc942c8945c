-- Deletes from a queue's pending table exactly the entries just claimed under :audit_key
-- (MySQL/MariaDB).
--
-- STRAIGHT_JOIN makes InnoDB walk the claimed rows and reach the pending table only by
-- primary-key lookups of rows it already knows are committed. Any plan that scans the
-- pending table would wait on the row locks of entries whose transaction is still open.
-- Parameters: {pending} the pending table (tidegate_pending, tidegate_entity_pending);
-- {claimed} its claimed table; {id} their id column; :audit_key (bound).
DELETE {pending}
FROM {claimed} STRAIGHT_JOIN {pending} ON {pending}.{id} = {claimed}.{id}
WHERE {claimed}.audit_key = :audit_key

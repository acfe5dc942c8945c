-- Deletes from tidegate_pending exactly the changes just claimed under :audit_key
-- (MySQL/MariaDB).
--
-- STRAIGHT_JOIN makes InnoDB walk the claimed rows and reach tidegate_pending only by
-- primary-key lookups of rows it already knows are committed. Any plan that scans
-- tidegate_pending would wait on the row locks of changes whose transaction is still open.
-- Parameters: {pending} tidegate_pending; {change} tidegate_change; :audit_key (bound).
DELETE {pending}
FROM {change} STRAIGHT_JOIN {pending} ON {pending}.change_id = {change}.change_id
WHERE {change}.audit_key = :audit_key

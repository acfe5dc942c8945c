-- reclaim: make the space of rows a purge removed reusable at once, rather than at
-- autovacuum's next visit (by default up to a minute later, and only past 20% dead rows),
-- so that tidegate_change (and tidegate_pending, which claims empty) stay bounded in bytes
-- as well as in rows. A plain VACUUM takes no lock that writers or readers wait on; it
-- runs outside a transaction.
-- Parameters: {tables} (quoted, schema-qualified tables, separated by commas).
VACUUM {tables}

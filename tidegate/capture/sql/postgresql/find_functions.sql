-- Lists every tidegate capture function in the schema (PostgreSQL).
-- Parameters (bound): :schema the schema name.
SELECT p.proname AS function_name
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = :schema AND p.proname LIKE 'tidegate\_%'

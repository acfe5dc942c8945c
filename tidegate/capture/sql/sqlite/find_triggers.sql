-- Lists every tidegate capture trigger in the database (SQLite).
SELECT name AS trigger_name, tbl_name AS table_name
FROM sqlite_master
WHERE type = 'trigger' AND name LIKE 'tidegate\_%' ESCAPE '\'

-- Removes one tidegate capture trigger (SQLite). Parameters: {trigger}.
DROP TRIGGER IF EXISTS {trigger}

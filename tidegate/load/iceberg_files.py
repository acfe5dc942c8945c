"""The new rows of one table's commit as Iceberg data files: written as batches come and
appended in one snapshot.

pyiceberg's own `append` makes a snapshot per call, and given a stream it hands every file
to its thread pool at once, holding the whole stream in memory: a table export of a million
rows would add ten snapshots, or hold the million rows. Here a table's rows cost one
snapshot and one batch of memory, in files of ROWS_PER_FILE rows or the table's
`write.target-file-size-bytes` (counted in Arrow bytes, as pyiceberg counts it), whichever
is smaller.

The files are written by pyiceberg's own Parquet writer, with its settings (codec, page
sizes from the table's properties), field ids and column statistics, so they are the files
its `append` would write. A table a user has partitioned is written by pyiceberg's `append`
a batch at a time (it splits rows by partition; tidegate's tables are made unpartitioned).
"""

from __future__ import annotations

from typing import Any

# pyiceberg deletes by rewriting every file that holds a deleted key (copy-on-write), so a
# file's size is what the smallest change to it costs: files of this many rows keep a
# change's cost near the rows it touches (docs/lakehouse.md, "Cost"), at the price of
# more files for readers to open until the table is compacted.
ROWS_PER_FILE = 100_000


class NewRows:
    """The rows a transaction appends to its table, written as they come (`write`) and
    appended in one snapshot (`commit`)."""

    def __init__(self, transaction: Any, io: Any) -> None:
        from pyiceberg.schema import sanitize_column_names
        from pyiceberg.table import TableProperties
        from pyiceberg.table.locations import load_location_provider
        from pyiceberg.utils.properties import property_as_bool, property_as_int

        self.transaction = transaction
        self.io = io
        self.metadata = metadata = transaction.table_metadata
        self.partitioned = not metadata.spec().is_unpartitioned()
        # Avro-safe column names (as pyiceberg writes them); readers map columns by id.
        self.file_schema = sanitize_column_names(metadata.schema())
        self.arrow_schema = self.file_schema.as_arrow()
        self.locations = load_location_provider(metadata.location, metadata.properties)
        # The table's own settings, read as pyiceberg's `append` reads them.
        properties = metadata.properties
        self.target_size: int = property_as_int(  # type: ignore[assignment]  # never None: a default
            properties,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
        )
        self.merge_manifests = property_as_bool(
            properties,
            TableProperties.MANIFEST_MERGE_ENABLED,
            TableProperties.MANIFEST_MERGE_ENABLED_DEFAULT,
        )
        self.files: list[Any] = []
        self._writer: _DataFile | None = None

    def write(self, batch: Any) -> None:
        """Add a batch of rows, an Arrow table of the table's own Arrow schema."""
        if self.partitioned:
            self.transaction.append(batch)
            return
        import pyarrow as pa

        renamed = pa.Table.from_arrays(batch.columns, schema=self.arrow_schema)
        if self._writer is None:
            self._writer = _DataFile(self, len(self.files))
        self._writer.write(renamed)
        if self._writer.size >= self.target_size or self._writer.rows >= ROWS_PER_FILE:
            self._close_file()

    def commit(self) -> None:
        """Append every file written, in one snapshot of the transaction."""
        self._close_file()
        if not self.files:
            return
        update = self.transaction.update_snapshot()
        with update.merge_append() if self.merge_manifests else update.fast_append() as append:
            for data_file in self.files:
                append.append_data_file(data_file)

    def _close_file(self) -> None:
        if self._writer is not None:
            self.files.append(self._writer.close())
            self._writer = None


class _DataFile:
    """One Parquet data file being written, by pyiceberg's writer for the table."""

    def __init__(self, table: NewRows, number: int) -> None:
        import uuid

        from pyiceberg.io.fileformat import FileFormatFactory
        from pyiceberg.manifest import FileFormat

        self.spec_id = table.metadata.default_spec_id
        self.path = table.locations.new_data_location(f"00000-{number}-{uuid.uuid4()}.parquet")
        self.output = table.io.new_output(self.path)
        model = FileFormatFactory.get(FileFormat.PARQUET)
        self.writer = model.create_writer(self.output, table.file_schema, table.metadata.properties)
        self.size = 0  # Arrow bytes written, the measure of the target size
        self.rows = 0

    def write(self, batch: Any) -> None:
        self.writer.write(batch)
        self.size += batch.nbytes
        self.rows += batch.num_rows

    def close(self) -> Any:
        """The written file, as the data file a snapshot lists."""
        from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
        from pyiceberg.typedef import Record

        statistics = self.writer.close()
        return DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=self.path,
            file_format=FileFormat.PARQUET,
            partition=Record(),
            file_size_in_bytes=len(self.output),
            sort_order_id=None,
            spec_id=self.spec_id,
            equality_ids=None,
            key_metadata=None,
            **statistics.to_serialized_dict(),
        )

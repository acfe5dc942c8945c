"""File formats, pure and streaming: names, manifests, zips of CSVs, value text.

Nothing here touches a database or a file system; functions take file objects and
iterators, so the exporter and (later) the loader share one definition of every format.
"""

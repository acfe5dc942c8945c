"""The type conformance matrix: every column type of every source, through both export
kinds, into every target (SPEC, "Value fidelity"). See test_type_matrix.py, and
docs/types.md for its results."""

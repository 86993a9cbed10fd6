"""Artifact stores (HDFS, local) and what reads and writes them: splits, rows, tenancy, logs."""

"""The FLOps data plane: the ML data server, its client and the mock data provider.

The ML data server (:mod:`flops_dataplane.server`) stores tagged data sets as Parquet files and
serves them over Arrow Flight; :class:`flops_dataplane.client.DataClient` talks to it; the mock
data provider (:mod:`flops_dataplane.mock_provider`) splits a data set into partitions and uploads
them. Importing this package does not import pyarrow; the submodules do.
"""

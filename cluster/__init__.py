"""A collection split into shards: built and served in one process, or on a Ray cluster.

``layout`` names the shards of an index folder, ``shard`` serves one of them, ``front`` asks all
of them and merges their answers exactly as one collection would, ``build`` splits and embeds a
corpus into shards (on Ray Data when a cluster is named) and ``serve`` runs the HTTP service on
Ray Serve. Only ``build`` (with a cluster) and ``serve`` import Ray, from the ``ray`` extra.
"""

from cluster.layout import SHARDS_FILE, Layout, is_sharded

__all__ = ["SHARDS_FILE", "Layout", "is_sharded"]

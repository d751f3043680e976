"""The caller's side of a mesh: pools, peer table, connections, load balancing."""

"""The wire: wire.proto, its generated module, and the one converter (frames.py)."""

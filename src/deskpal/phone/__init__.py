"""The phone channel: its settings and network addresses (channel.py), and its adapters."""

"""The teams channel: its settings and network addresses (channel.py), and its adapters."""

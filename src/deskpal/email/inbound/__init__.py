"""Mail coming in: raw bytes from IMAP, the raw-mail endpoint or an import, parsed and threaded."""

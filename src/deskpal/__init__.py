"""deskpal: a self-hostable, AI-powered customer-support helpdesk."""

__version__ = "0.1.0"

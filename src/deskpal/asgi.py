"""The ASGI entry point for uvicorn and other servers: `deskpal.asgi:app`."""

from deskpal.app import create_app

app = create_app()

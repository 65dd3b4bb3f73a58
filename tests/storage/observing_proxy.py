"""A TCP proxy in front of an HTTP server that looks at each request before passing it on.

The storage jobs' tests put it between deskpal and the local S3 server, to see what the database
looks like at the moment a request goes out over the network.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

_REQUEST_LINE = re.compile(rb"(GET|PUT|POST|DELETE|HEAD) \S+ HTTP/1\.[01]\r\n")


class ObservingProxy:
    """Calls `observe(request line)` in the proxy's thread before it forwards that request."""

    def __init__(self, upstream: str, observe: Callable[[str], None]) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._observe = observe
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, requests: bool) -> None:
        try:
            while data := src.recv(65536):
                if requests and (line := _REQUEST_LINE.match(data)):
                    self._observe(line.group(0).decode().strip())
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

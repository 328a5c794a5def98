"""The sync path: worker threads, their connections, the idle poller, the ASGI and WSGI shells."""

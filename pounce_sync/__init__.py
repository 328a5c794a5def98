"""pounce-sync: an HTTP server for free-threaded Python.

Plain request/response traffic runs on blocking worker threads; everything
long-lived or multiplexed is handed to the AsyncPool (see `async_pool`).
"""

__version__ = "0.1.0"

import pytest

from .server_process import ServerProcess, running_server


@pytest.fixture(scope="module")
def server() -> ServerProcess:
    """One server per test module with the default test app and 4 workers."""
    with running_server("--workers", "4", "--no-access-log") as srv:
        yield srv

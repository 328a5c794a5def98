"""The exit codes of the server, its worker processes and the supervisor, in one place."""

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_STARTUP_FAILURE = 3
EXIT_RETIRED = 4  # a worker process that reached --limit-max-requests; replaced at once

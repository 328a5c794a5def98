"""`pounce-sync bench`: worker threads against worker processes on one interpreter."""

"""What the server tells its operators: metrics, logging set-up, the access log."""

"""Apps and helpers of the WSGI half of the framework suite (Django, Flask, apps that misbehave)."""

"""The ASGI framework apps of tests/frameworks/ and the reference server that checks them.

Each app keeps what a test must see from outside (lifespan runs, background tasks, a
client that went away) in files under $FRAMEWORK_APP_DIR, so the answer is the same
whether the server runs one process or several.
"""

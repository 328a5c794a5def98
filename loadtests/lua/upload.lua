-- POST a 16 KiB body on every request (the `upload` scenario).
wrk.method = "POST"
wrk.body = string.rep("x", 16384)
wrk.headers["Content-Type"] = "application/octet-stream"

-- POST a 1 MiB body on every request (the `upload` scenario). The body is built here, once
-- per wrk thread, so no 1 MiB file sits in the repository.
wrk.method = "POST"
wrk.body = string.rep("x", 1024 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"

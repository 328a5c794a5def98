-- A different request target on every request (GET /?n=1, /?n=2, ...), so no two
-- request heads on a connection are alike: a server that remembers the last head it
-- parsed (pounce-sync does) has to parse every one of these.
local n = 0

request = function()
  n = n + 1
  return wrk.format("GET", "/?n=" .. n)
end

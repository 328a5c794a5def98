-- The `browser` scenario: a Chrome-like page navigation, 11 fields and about 620 bytes,
-- whose target AND cookie carry a per-thread counter, so every request wrk sends differs
-- from all others (across connections and threads too) and a server can reuse nothing it
-- parsed from the previous head on a connection. loadtests/browser_head.py builds the same
-- bytes for the same (thread, n); tests/bench/test_browser_scenario.py checks they agree.
--
-- `tid` is a global: setup() runs in wrk's main Lua state and sets it in each thread's.
local threads = 0
local n = 0
local middle, tail

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  tid = tid or 1
  local host = wrk.headers["Host"]
  middle = " HTTP/1.1\r\n"
    .. "Host: " .. host .. "\r\n"
    .. "Connection: keep-alive\r\n"
    .. 'sec-ch-ua: "Chromium";v="143", "Google Chrome";v="143"\r\n'
    .. "Upgrade-Insecure-Requests: 1\r\n"
    .. "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    .. " Chrome/143.0.0.0 Safari/537.36\r\n"
    .. "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    .. "*/*;q=0.8\r\n"
    .. "Sec-Fetch-Mode: navigate\r\n"
    .. "Referer: http://" .. host .. "/catalog\r\n"
    .. "Accept-Encoding: gzip, deflate, br\r\n"
    .. "Accept-Language: en-GB,en;q=0.9\r\n"
    .. "Cookie: sessionid="
  tail = "9f86d081884c7d65; csrftoken=Qk3vT9sYbW2n; theme=dark; cart="
end

request = function()
  n = n + 1
  return "GET /item/" .. (1000 + n % 9000) .. "?ref=home&v=" .. tid .. "-" .. n
    .. middle .. string.format("%08x%08x", tid, n) .. tail .. (n % 7) .. "\r\n\r\n"
end

-- wrk: one visitor flooding a link, from one public address with one browser's user-agent.
-- The runner answers and keeps every click (past 10 a minute flagged `click_flood`).
local headers = {
  ["X-Forwarded-For"] = "93.184.216.34",
  ["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
}
function request()
  return wrk.format("GET", nil, headers)
end

-- wrk: clicks from many visitors. Each request comes from a random public address (the runner,
-- started with --trust-proxy, takes it from X-Forwarded-For as it would behind a proxy) with
-- one of four browsers' user-agents, as real traffic does: each click a unique visitor, the
-- heaviest to store. The bare 302 server gets the same requests.
local thread_id = 0
function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
end
function init(args)
  math.randomseed(os.time() * 1000 + id)
end
local agents = {
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
}
function request()
  -- 11.0.0.0 to 99.255.255.255 less the private 10/8: public unicast ranges.
  local ip = string.format("%d.%d.%d.%d", math.random(11, 99), math.random(0, 255), math.random(0, 255), math.random(1, 254))
  return wrk.format("GET", nil, { ["X-Forwarded-For"] = ip, ["User-Agent"] = agents[math.random(1, 4)] })
end

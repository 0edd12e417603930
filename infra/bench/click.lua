-- wrk: clicks from many visitors. Each request comes from a random address in 10.0.0.0/8 (the
-- runner, started with --trust-proxy, takes it from X-Forwarded-For as it would behind a proxy)
-- with a browser's user-agent, as real traffic does. The bare 302 server gets the same requests.
local thread_id = 0
function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
end
function init(args)
  math.randomseed(os.time() * 1000 + id)
end
local agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
function request()
  local ip = string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255), math.random(1, 254))
  return wrk.format("GET", nil, { ["X-Forwarded-For"] = ip, ["User-Agent"] = agent })
end

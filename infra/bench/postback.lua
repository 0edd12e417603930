-- wrk: postbacks for one click, each with its own txn_id (threads never collide).
local thread_id = 0
local counter = 0
function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
end
function request()
  counter = counter + 1
  return wrk.format("GET", wrk.path .. "&txn_id=load-" .. id .. "-" .. counter)
end

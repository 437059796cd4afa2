-- wrk script: etcd v3 puts or linearizable reads through etcd's JSON gateway, with
-- 100-byte values over a keyspace of 10,000 keys, reporting p50/p99 in milliseconds.
-- Usage: wrk -s benches/wrk/etcd.lua http://127.0.0.1:2379 -- put|get [value_bytes]

local mode = "put"
local value_bytes = 100
local bodies = {}

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(data)
  return ((data:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end

function init(args)
  mode = args[1] or "put"
  value_bytes = tonumber(args[2] or "100")
  local value = b64(string.rep("x", value_bytes))
  for i = 1, 10000 do
    local key = b64(string.format("key:%012d", i))
    if mode == "put" then
      bodies[i] = '{"key":"' .. key .. '","value":"' .. value .. '"}'
    else
      -- serializable=false (the default): a linearizable read.
      bodies[i] = '{"key":"' .. key .. '"}'
    end
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local path = mode == "put" and "/v3/kv/put" or "/v3/kv/range"
  return wrk.format(nil, path, nil, bodies[math.random(1, 10000)])
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  -- done() runs in wrk's main Lua state, where init() was not called: the caller
  -- knows the mode.
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end

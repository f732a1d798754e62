-- wrk script of the consumer-ingest stage (scripts/bench-stages/ingest.sh): sends
-- each webhook that consumer/examples/presign.rs signed in advance exactly once.
--
--   wrk -t T -c C -d <time limit> -s ingest.lua http://HOST:PORT/consumetasks PREFIX T C/T
--
-- Thread k (from 0) loads PREFIX.k (whole requests, each followed by a NUL byte),
-- cuts it into requests before the run, and hands each out once. When they run out, a connection that asks for another gets an empty request,
-- which wrk writes as nothing, so the connection idles; once all C/T connections of
-- the thread idle, every response of the thread is in: it notes the time, creates
-- PREFIX.k.done and stops. wrk itself waits out -d, so the stage interrupts it
-- (SIGINT) once every thread's .done file exists, and wrk's own requests/s, divided
-- by that whole time, is not the rate: done() prints the rate from the first request
-- to the last response, on the monotonic clock (LuaJIT's ffi), with the counts the
-- stage checks:
--
--   ingest: threads T prepared P sent S finished F responses R status_errors E
--   socket_errors X elapsed_us U p50_us A p99_us B max_us M
--
-- Two wrk habits are handled: it calls request() once in the first thread before the
-- run to check the request's syntax (that call must not use up a webhook), and it
-- starts each thread once that thread's init() has run, so a thread that loaded
-- its file first would send while the next still loads: each thread marks
-- PREFIX.k.ready, and waits before its first request until every thread has.

local ffi = require("ffi")
ffi.cdef [[
  struct timespec { long tv_sec; long tv_nsec; };
  int clock_gettime(int clock, struct timespec *ts);
  int poll(void *fds, unsigned long nfds, int timeout_ms);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("struct timespec")

-- now_us: the monotonic clock, in microseconds; the same clock for every thread.
local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1e6 + tonumber(timespec.tv_nsec) / 1e3
end

local function exists(path)
  local file = io.open(path, "r")
  if file then file:close() end
  return file ~= nil
end

local function touch(path)
  local file = assert(io.open(path, "w"))
  file:close()
end

-- In the main Lua state: number the threads, keep them for done().
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- In each thread's own Lua state, from here on. Globals (not locals), so that done()
-- can read them with thread:get.
prepared, sent, finished, started_us, finished_us = 0, 0, 0, nil, nil
local requests, parked, per_thread, prefix, thread_count = {}, 0, nil, nil, nil

function init(args)
  prefix, thread_count, per_thread = args[1], tonumber(args[2]), tonumber(args[3])
  assert(prefix and thread_count and per_thread,
    "usage: wrk -t T -c C ... -s ingest.lua URL PREFIX T C/T")
  local path = prefix .. "." .. id
  local file = assert(io.open(path, "rb"))
  local content = file:read("*a")
  file:close()
  local from = 1
  while from <= #content do
    local nul = content:find("\0", from, true)
    assert(nul, path .. ": the last request is not followed by a NUL byte")
    prepared = prepared + 1
    requests[prepared] = content:sub(from, nul - 1)
    from = nul + 1
  end
  touch(prefix .. "." .. id .. ".ready")
  -- The first thread's first call is wrk's syntax check, not a request sent.
  request = id == 0 and syntax_check or first_request
end

function syntax_check()
  request = first_request
  return requests[1] or "GET / HTTP/1.1\r\nHost: " .. wrk.headers["Host"] .. "\r\n\r\n"
end

function first_request()
  for k = 0, thread_count - 1 do
    while not exists(prefix .. "." .. k .. ".ready") do ffi.C.poll(nil, 0, 1) end
  end
  started_us = now_us()
  request = next_request
  return next_request()
end

function next_request()
  if sent < prepared then
    sent = sent + 1
    return requests[sent]
  end
  return idle()
end

-- idle: the request of a connection that has nothing left to send: none at all.
function idle()
  parked = parked + 1
  if parked == per_thread then
    finished, finished_us = 1, now_us()
    touch(prefix .. "." .. id .. ".done")
    wrk.thread:stop()
  end
  return ""
end

function done(summary, latency)
  local totals = { prepared = 0, sent = 0, finished = 0 }
  local first, last
  for _, thread in ipairs(threads) do
    for name in pairs(totals) do totals[name] = totals[name] + thread:get(name) end
    local started, ended = thread:get("started_us"), thread:get("finished_us")
    if started and (not first or started < first) then first = started end
    if ended and (not last or ended > last) then last = ended end
  end
  local errors = summary.errors
  io.write(string.format(
    "ingest: threads %d prepared %d sent %d finished %d responses %d status_errors %d "
      .. "socket_errors %d elapsed_us %d p50_us %d p99_us %d max_us %d\n",
    #threads, totals.prepared, totals.sent, totals.finished, summary.requests, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    math.floor((first and last) and (last - first) or 0),
    math.floor(latency:percentile(50)), math.floor(latency:percentile(99)), latency.max))
end

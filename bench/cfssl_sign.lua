-- bench/cfssl_sign.lua: the wrk script of bench/issuance.sh's cfssl references. Every
-- request POSTs one JSON body ({"certificate_request": "<CSR PEM>", "profile": "..."}) to
-- cfssl serve's /api/v1/cfssl/sign; a response is an error unless it is HTTP 200 and its
-- body holds "success":true (cfssl answers failures with a JSON body too, sometimes 200).
--
--   wrk -t2 -c32 -d60s --latency -s bench/cfssl_sign.lua http://127.0.0.1:8890/api/v1/cfssl/sign -- BODY_FILE
--
-- Prints, after wrk's own report, one line for bench/issuance.sh to read:
--   cfssl_sign: requests N, ok K, errors E (not 200 or no "success":true R, socket S), seconds D, ok/s X, p50 A ms, p99 B ms
-- (the percentiles are of all responses, as wrk measures them).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local path = args[1] or error("cfssl_sign.lua: give the request body's file after --")
  local f = assert(io.open(path, "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
  responses = 0
  bad = 0
end

function response(status, headers, body)
  responses = responses + 1
  if status ~= 200 or not string.find(body, '"success":true', 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local n, b = 0, 0
  for _, t in ipairs(threads) do
    n = n + t:get("responses")
    b = b + t:get("bad")
  end
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  local seconds = summary.duration / 1e6
  local ok = n - b
  io.write(string.format(
    "cfssl_sign: requests %d, ok %d, errors %d (not 200 or no \"success\":true %d, socket %d), " ..
    "seconds %.2f, ok/s %.0f, p50 %.2f ms, p99 %.2f ms\n",
    n, ok, b + socket, b, socket, seconds, ok / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end

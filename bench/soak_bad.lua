-- wrk script of bench/soak.sh, the bad requests: malformed JSON, a body
-- that is not an object, wrong input types, a missing input, an unknown
-- output, an unknown DAG, an input nested too deep, and a body over
-- max_body_bytes.  Each must be answered 4xx (a clear JSON error); done()
-- prints "bad requests: N answered, M not 4xx" for bench/soak.sh to check.
local threads = {}
local cases, n = {}, 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  answered, not4xx = 0, 0 -- globals: done() reads them through thread:get
  local deep = string.rep("[", 3000) .. string.rep("]", 3000)
  local big = '{"inputs":{"ids":[' .. string.rep("1,", 600000) .. '1]}}'
  local c = {
    {"/dags/customer_score/run", '{"inputs":{"ids":[1,2,'},
    {"/dags/customer_score/run", '[1,2,3]'},
    {"/dags/customer_score/run", '{"inputs":{"ids":"all"}}'},
    {"/dags/customer_score/run", '{"inputs":{"ids":[1.5,2]}}'},
    {"/dags/customer_score/run", '{"inputs":{"ids":[1]},"outputs":["nope"]}'},
    {"/dags/customer_score/run", '{"inputs":{"ids":[1,9223372036854775808]}}'},
    {"/dags/marketing/run", '{"inputs":{"signups":[1,2]}}'},
    {"/dags/marketing/run", '{"inputs":{"spend":' .. deep .. '}}'},
    {"/dags/graph/run", '{"inputs":{"n":"many"}}'},
    {"/dags/nosuch/run", '{}'},
    {"/dags/customer_score/run", '{"a":1,"a":2}'},
    {"/dags/customer_score/run", '\xff\xfe{}'},
    {"/dags/customer_score/run", big},
  }
  -- The large body once in 50 requests: it is 1.2 MB.
  for i = 1, 50 do
    local k = (i - 1) % (#c - 1) + 1
    if i == 50 then k = #c end
    cases[i] = wrk.format("POST", c[k][1], {["Content-Type"] = "application/json"}, c[k][2])
  end
end

function request()
  n = n % #cases + 1
  return cases[n]
end

function response(status, headers, body)
  answered = answered + 1
  if status < 400 or status > 499 then not4xx = not4xx + 1 end
end

function done(summary, latency, requests)
  local a, b = 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("answered")
    b = b + t:get("not4xx")
  end
  io.write(string.format("bad requests: %d answered, %d not 4xx\n", a, b))
end

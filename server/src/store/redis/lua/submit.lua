-- ARGV: prefix, max_queued (0: no cap), server, then submissions, each: its task count, then per
-- task: id, description, priority, number1, number2, kind, payload, idempotency key,
-- max_attempts, delay_ms, traceparent. Returns, per submission: a flat list of id, 1 if
-- deduplicated else 0, for each of its tasks; or, when its new tasks would take the tasks
-- waiting to run (pending and delayed) past `max_queued`, the number waiting (an integer):
-- that submission is refused whole and the others are not affected. The tasks of one
-- submission are accepted together or not at all; submissions that arrive together (the
-- store batches them) share one call, in order, as if each had its own. The submitting
-- `server` is the first to stream each task (its `watch` field, watch.lua): a client that
-- submits and then streams through one server, as most do, is registered by its submission.
local FIELDS = 11
local max_queued = tonumber(ARGV[2])
local server = ARGV[3]
local watch = ' ' .. server .. ' '
local by = ',"by":' .. json_string(server)
local FIRST = 4
local now, now_s = now_ms(), now_text()
-- The FIFO counter is taken once for every runnable task of the call; a deduplicated or
-- refused task leaves a gap in it, which orders nothing differently.
local runnable = 0
do
  local i = FIRST
  while i <= #ARGV do
    local count = tonumber(ARGV[i])
    for j = i + 1, i + (count - 1) * FIELDS + 1, FIELDS do
      if tonumber(ARGV[j + 9]) <= 0 then runnable = runnable + 1 end
    end
    i = i + 1 + count * FIELDS
  end
end
local counter = 0
if runnable > 0 then counter = redis.call('INCRBY', K.enqueued, runnable) - runnable end
local waiting
if max_queued > 0 then
  waiting = redis.call('ZCARD', K.tasks) + redis.call('ZCARD', K.delayed)
end
local pending, delayed, out = {}, {}, {}
local wake = 0
local i = FIRST
while i <= #ARGV do
  local count = tonumber(ARGV[i])
  local first, last = i + 1, i + (count - 1) * FIELDS + 1
  i = i + 1 + count * FIELDS
  local refused = false
  if waiting then
    local new = 0
    for j = first, last, FIELDS do
      local idem = ARGV[j + 7]
      if idem == '' or not redis.call('GET', P .. 'idem:' .. idem) then new = new + 1 end
    end
    if new > 0 and waiting + new > max_queued then
      refused = true
    else
      waiting = waiting + new
    end
  end
  if refused then
    out[#out + 1] = waiting
  else
    local answer = {}
    for j = first, last, FIELDS do
      local id, description, priority, n1, n2, kind, payload, idem, max_attempts, delay, trace =
        ARGV[j], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3], ARGV[j + 4], ARGV[j + 5], ARGV[j + 6],
        ARGV[j + 7], ARGV[j + 8], tonumber(ARGV[j + 9]), ARGV[j + 10]
      local existing = false
      if idem ~= '' then existing = redis.call('GET', P .. 'idem:' .. idem) end
      if existing then
        answer[#answer + 1] = existing
        answer[#answer + 1] = 1
      else
        -- As enqueue, with the queue position and the first event written with the task
        -- instead of read back, and the sets written once for the whole call.
        local place = {}
        if delay > 0 then
          delayed[#delayed + 1] = now + delay
          delayed[#delayed + 1] = id
        else
          counter = counter + 1
          local score = (2 - tonumber(priority)) * 1099511627776 + counter
          pending[#pending + 1] = score
          pending[#pending + 1] = id
          place = { 'qscore', score, 'runnable_ms', now_s }
        end
        redis.call('HSET', task_key(id), 'id', id, 'description', description,
          'priority', priority, 'number1', n1, 'number2', n2, 'kind', kind,
          'payload', payload, 'idem', idem, 'state', 'QUEUED', 'attempt', '0',
          'max_attempts', max_attempts, 'progress', '0', 'result', '', 'error', '',
          'created_ms', now_s, 'updated_ms', now_s, 'seq', '1', 'token', '', 'cancel', '0',
          'trace', trace, 'watch', watch, unpack(place))
        if idem ~= '' then redis.call('SET', P .. 'idem:' .. idem, id) end
        -- `by` tells a stream of the submitting server that it is registered already.
        if delay > 0 then
          announce(id, 'QUEUED',
            event_json(id, '1', 'QUEUED', '0', '0', max_attempts, '', '', now_s,
              by .. flags(false, ARGV[j + 9])),
            true)
        else
          -- No stream can watch a task before its submission is answered, so its first
          -- event is only recorded; the wake-up it would carry goes with the others below.
          record(id, 'QUEUED',
            event_json(id, '1', 'QUEUED', '0', '0', max_attempts, '', '', now_s, by))
          wake = wake + 1
        end
        answer[#answer + 1] = id
        answer[#answer + 1] = 0
      end
    end
    out[#out + 1] = answer
  end
end
zadd_all(K.tasks, pending)
zadd_all(K.delayed, delayed)
-- One notice wakes as many idle workers per server as tasks became runnable.
if wake > 0 then redis.call(PUBLISH, K.events, cjson.encode({ wake = wake })) end
return out

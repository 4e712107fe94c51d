-- ARGV: prefix, max_queued (0: no cap), then per task: id, description, priority, number1,
-- number2, kind, payload, idempotency key, max_attempts, delay_ms, traceparent. Returns, per
-- task: id, 1 if deduplicated else 0; or the error QUEUEFULL when the new tasks would take
-- the tasks waiting to run (pending and delayed) past `max_queued`.
-- All tasks of one call are accepted together or not at all.
local FIELDS = 11
local max_queued = tonumber(ARGV[2])
if max_queued > 0 then
  local new = 0
  for j = 3, #ARGV, FIELDS do
    local idem = ARGV[j + 7]
    if idem == '' or not redis.call('GET', P .. 'idem:' .. idem) then new = new + 1 end
  end
  local waiting = redis.call('ZCARD', K.tasks) + redis.call('ZCARD', K.delayed)
  if new > 0 and waiting + new > max_queued then
    return redis.error_reply('QUEUEFULL ' .. waiting .. ' tasks are waiting to run; the cap ' ..
      'is ' .. max_queued .. ' (server.limits.max_queued_tasks)')
  end
end
local now = now_ms()
local out = {}
local i = 3
while i <= #ARGV do
  local id, description, priority, n1, n2, kind, payload, idem, max_attempts, delay, trace =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6],
    ARGV[i + 7], ARGV[i + 8], tonumber(ARGV[i + 9]), ARGV[i + 10]
  i = i + FIELDS
  local existing = false
  if idem ~= '' then existing = redis.call('GET', P .. 'idem:' .. idem) end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 1
  else
    -- As enqueue, with the queue position and the first event written with the task
    -- instead of read back.
    local place = {}
    if delay > 0 then
      redis.call('ZADD', K.delayed, now + delay, id)
    else
      local score = (2 - tonumber(priority)) * 1099511627776 + redis.call('INCR', K.enqueued)
      redis.call('ZADD', K.tasks, score, id)
      place = { 'qscore', score, 'runnable_ms', now }
    end
    redis.call('HSET', task_key(id), 'id', id, 'description', description, 'priority', priority,
      'number1', n1, 'number2', n2, 'kind', kind, 'payload', payload, 'idem', idem,
      'state', 'QUEUED', 'attempt', 0, 'max_attempts', max_attempts, 'progress', 0,
      'result', '', 'error', '', 'created_ms', now, 'updated_ms', now, 'seq', 1, 'token', '',
      'cancel', 0, 'trace', trace, unpack(place))
    if idem ~= '' then redis.call('SET', P .. 'idem:' .. idem, id) end
    local event = {
      id = id, seq = 1, state = 'QUEUED', progress = 0, attempt = 0,
      max_attempts = tonumber(max_attempts), result = '', error = '', ts = now,
    }
    if delay > 0 then announce(id, event, false, delay) else announce(id, event, true) end
    out[#out + 1] = id
    out[#out + 1] = 0
  end
end
return out

-- ARGV: prefix, then per task: id, description, priority, number1, number2, kind, payload,
-- idempotency key, max_attempts, delay_ms, traceparent. Returns, per task: id, 1 if
-- deduplicated else 0.
-- All tasks of one call are accepted together or not at all.
local now = now_ms()
local out = {}
local i = 2
while i <= #ARGV do
  local id, description, priority, n1, n2, kind, payload, idem, max_attempts, delay, trace =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6],
    ARGV[i + 7], ARGV[i + 8], tonumber(ARGV[i + 9]), ARGV[i + 10]
  i = i + 11
  local existing = false
  if idem ~= '' then existing = redis.call('GET', P .. 'idem:' .. idem) end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 1
  else
    redis.call('HSET', task_key(id), 'id', id, 'description', description, 'priority', priority,
      'number1', n1, 'number2', n2, 'kind', kind, 'payload', payload, 'idem', idem,
      'state', 'QUEUED', 'attempt', 0, 'max_attempts', max_attempts, 'progress', 0,
      'result', '', 'error', '', 'created_ms', now, 'updated_ms', now, 'seq', 0, 'token', '',
      'cancel', 0, 'trace', trace)
    if idem ~= '' then redis.call('SET', P .. 'idem:' .. idem, id) end
    if delay > 0 then
      redis.call('ZADD', P .. 'delayed', now + delay, id)
    else
      enqueue(id, priority, false)
    end
    emit(id)
    out[#out + 1] = id
    out[#out + 1] = 0
  end
end
return out

-- Helpers shared by every script. Each script is one atomic step: a task is always in
-- exactly one of the pending set, the delayed set, the lease set, or a terminal state.
--
-- Keys keep the original names under the prefix:
--   <p>task:<id>         hash: the task; its `watch` field names the servers streaming it
--   <p>task_status:<id>  string: its status ("QUEUED", "IN_PROGRESS", ...)
--   <p>tasks             sorted set: runnable tasks; score = priority band + FIFO counter
--   <p>leases            sorted set: running tasks; score = lease expiry (ms)
--   <p>delayed           sorted set: tasks waiting for a retry or their start; score = due (ms)
--   <p>dead              sorted set: tasks that failed for good; score = when (ms)
--   <p>task_events:<id>  list: the task's status events, in sequence order
--   <p>idem:<key>        string: the task id accepted with an idempotency key
--   <p>claim:<token>     string: the task claimed under a lease token, for one lease: lets a
--                        worker whose claim reply was lost hand the task back
--   <p>enqueued          counter for FIFO order
--   <p>events            pub/sub channel (sharded on a cluster) every server reads: the events
--                        that wake workers, and notices (wake-ups, cancellations)
--   <p>events:<server>   the channel of one server: the events of the tasks it streams (one
--                        per message, or a JSON array of one script's events)
--   <p>alive             string: when (Redis time, ms) a server last reached Redis
--   <p>resumed           string: when Redis last answered after a silence (a restart, a
--                        freeze, an outage): leases are not reaped until it has been up a while
--
-- Every script is called with the queue's own keys declared, in this order (the store's
-- `QUEUE_KEYS`): KEYS = tasks, leases, delayed, dead, enqueued, events, alive, resumed; and
-- with the prefix as ARGV[1]. The keys of one task (`task:`, `task_status:`, `task_events:`,
-- `idem:`, `claim:`) are built from the prefix, because a script such as claim or reap only
-- learns the ids it works on as it runs. Every key shares the prefix, so on a Redis Cluster
-- a prefix that ends in a hash tag (`tm:{3}`) puts a queue and all its tasks' keys in one
-- slot: a script's declared keys route it, and every key it builds is in the same slot.
-- `events` is declared but never stored (it names a channel): while a shard's slot moves
-- to another master, the missing key makes both nodes refuse the script (ASK, then
-- TRYAGAIN) instead of running it on half the keys, so resharding pauses a shard and never
-- splits a step.

-- `PUBLISH` is set before this file: 'PUBLISH' on a standalone Redis, 'SPUBLISH' on a
-- cluster, where a shard's events stay on the node that holds its slot.

local P = ARGV[1]
local K = {
  tasks = KEYS[1], leases = KEYS[2], delayed = KEYS[3], dead = KEYS[4],
  enqueued = KEYS[5], events = KEYS[6], alive = KEYS[7], resumed = KEYS[8],
}

-- Redis's clock, read once per script: one step happens at one instant.
local NOW, NOW_TEXT
local function now_ms()
  if not NOW then
    local t = redis.call('TIME')
    NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return NOW
end

-- The same, as the text written into a task. Numbers passed to redis.call are formatted
-- with sprintf("%.14g") on every call, which showed as 8% of Redis's CPU under perf: values
-- written often are passed as text, formatted once.
local function now_text()
  if not NOW_TEXT then NOW_TEXT = tostring(now_ms()) end
  return NOW_TEXT
end

local function task_key(id) return P .. 'task:' .. id end

-- Puts a task in the pending set: higher priority first, then first in, first out.
-- A band of 2^40 per priority keeps every score an exact integer in a double. The score is
-- kept in the task (`qscore`), so that a task handed back on shutdown returns to the place
-- it was taken from, ahead of everything queued after it. `runnable_ms` records when it
-- became runnable: a claim measures the queue wait from it.
local function enqueue(id, priority)
  local score = (2 - tonumber(priority)) * 1099511627776 + redis.call('INCR', K.enqueued)
  redis.call('ZADD', K.tasks, score, id)
  redis.call('HSET', task_key(id), 'qscore', score, 'runnable_ms', now_ms())
end

-- ZADD of a flat score/member list, in chunks that stay within Lua's unpack limit.
local function zadd_all(key, flat)
  for i = 1, #flat, 2000 do
    redis.call('ZADD', key, unpack(flat, i, math.min(i + 1999, #flat)))
  end
end

-- Events held by a script that changes many tasks (`hold`), to be published together at its
-- end (`flush`), one message per channel, a JSON array of events, instead of one message
-- each: one publication per server for the script, one message for it to receive.
local OUTBOX, OUTBOX_ORDER

local function send(channel, encoded)
  if not OUTBOX then
    redis.call(PUBLISH, channel, encoded)
    return
  end
  local held = OUTBOX[channel]
  if not held then
    held = {}
    OUTBOX[channel] = held
    OUTBOX_ORDER[#OUTBOX_ORDER + 1] = channel
  end
  held[#held + 1] = encoded
end

local function hold() OUTBOX, OUTBOX_ORDER = {}, {} end

local function flush()
  for _, channel in ipairs(OUTBOX_ORDER) do
    local held = OUTBOX[channel]
    if #held == 1 then
      redis.call(PUBLISH, channel, held[1])
    else
      redis.call(PUBLISH, channel, '[' .. table.concat(held, ',') .. ']')
    end
  end
  OUTBOX, OUTBOX_ORDER = nil, nil
end

-- Publishes a task's event to the servers that stream the task: `watch` is the task's
-- `watch` field (watch.lua), the ids of those servers (' a b '), each of which reads its own
-- channel `<p>events:<server>`; or '*' for every server (the shared channel); nothing when no
-- server streams it. So a server receives and decodes only the events of the tasks it
-- streams, whatever the number of servers.
local function publish(encoded, watch)
  if not watch or watch == '' then return end
  if watch == '*' then
    send(K.events, encoded)
    return
  end
  for server in string.gmatch(watch, '%S+') do send(P .. 'events:' .. server, encoded) end
end

-- A string as JSON: quoted as it is when nothing in it needs escaping (ids, states and most
-- results), else as cjson escapes it.
local function json_string(text)
  if not text then return '""' end
  if type(text) ~= 'string' then text = tostring(text) end
  if not string.find(text, '[%c"\\]') then return '"' .. text .. '"' end
  return cjson.encode(text)
end

-- A task's event as JSON, the form of its history and its channels (the store's
-- `TaskEvent`), written by concatenation: cjson formatted each number with printf and built
-- a table per event, a few percent of Redis's time. The numbers are passed as the text they
-- are in the task (or as integers); a missing one is 0. `extra` is more members (`flags`),
-- with their leading commas.
local function event_json(id, seq, state, progress, attempt, max_attempts, result, err, ts,
                          extra)
  return '{"id":' .. json_string(id) .. ',"seq":' .. (seq or '0') .. ',"state":"' ..
    (state or '') .. '","progress":' .. (progress or '0') .. ',"attempt":' ..
    (attempt or '0') .. ',"max_attempts":' .. (max_attempts or '0') .. ',"result":' ..
    json_string(result) .. ',"error":' .. json_string(err) .. ',"ts":' .. (ts or '0') ..
    (extra or '') .. '}'
end

-- The members of an event that marks its task as just runnable (`run`: it entered the
-- pending set, and wakes one idle worker per server; no other event wakes any) or as put off
-- for `due_in` ms (`due`: it entered the delayed set, and servers look at the delayed set
-- again when it comes due, not on a timer).
local function flags(runnable, due_in)
  local extra = ''
  if runnable then extra = ',"run":1' end
  if due_in then extra = extra .. ',"due":' .. due_in end
  return extra
end

-- Writes `encoded` (`event_json`, its sequence number already taken) as the task's next
-- event, whose state is `state`: the original status key and the history. `expire_ms`, for
-- a terminal event, sets the status key's expiry with its value. Returns `encoded`.
local function record(id, state, encoded, expire_ms)
  if expire_ms then
    redis.call('SET', P .. 'task_status:' .. id, state, 'PX', expire_ms)
  else
    redis.call('SET', P .. 'task_status:' .. id, state)
  end
  redis.call('RPUSH', P .. 'task_events:' .. id, encoded)
  return encoded
end

-- Records the event `encoded` as the task's next event (`record`) and publishes it to the
-- servers in `watch` (`publish`), or to every server when `everyone` (an event with
-- `flags`). For a script that knows the task's fields without reading them back (`emit`
-- reads them).
local function announce(id, state, encoded, everyone, expire_ms, watch)
  if everyone then watch = '*' end
  publish(record(id, state, encoded, expire_ms), watch)
end

-- Records the task's current state as its next event: bumps its sequence number, reads the
-- task and announces it, marked `runnable` or `due_in` (`flags`). Returns the sequence
-- number.
local function emit(id, runnable, due_in, expire_ms)
  local key = task_key(id)
  local seq = redis.call('HINCRBY', key, 'seq', 1)
  local h = redis.call('HMGET', key, 'state', 'progress', 'attempt', 'max_attempts', 'result',
    'error', 'updated_ms', 'watch')
  local state = h[1] or ''
  announce(id, state,
    event_json(id, seq, state, h[2], h[3], h[4], h[5], h[6], h[7], flags(runnable, due_in)),
    runnable or due_in, expire_ms, h[8])
  return seq
end

-- A terminal task expires, with everything that belongs to it, after the retention.
-- `idem` is the task's idempotency key when the caller has read it already; `status_set`
-- when its status key was written with its expiry (`announce`'s `expire_ms`).
local function expire_terminal(id, retention_ms, idem, status_set)
  local key = task_key(id)
  if idem == nil then idem = redis.call('HGET', key, 'idem') end
  redis.call('PEXPIRE', key, retention_ms)
  if not status_set then redis.call('PEXPIRE', P .. 'task_status:' .. id, retention_ms) end
  redis.call('PEXPIRE', P .. 'task_events:' .. id, retention_ms)
  if idem and idem ~= '' then redis.call('PEXPIRE', P .. 'idem:' .. idem, retention_ms) end
end

-- Moves a task that was running (or, from cancel.lua, waiting: that script takes it out of
-- the pending and delayed sets itself) to a terminal state.
local function finish(id, state, fields, retention_ms, now)
  local key = task_key(id)
  redis.call('HSET', key, 'state', state, 'token', '', 'updated_ms', now, unpack(fields))
  redis.call('ZREM', K.leases, id)
  if state == 'FAILED' then redis.call('ZADD', K.dead, now, id) end
  emit(id, false, nil, retention_ms)
  expire_terminal(id, retention_ms, nil, true)
end

-- Hands a running task back to the pending set at the place it was taken from, without
-- spending an attempt; a task with a pending cancellation ends CANCELLED instead.
local function hand_back(id, retention_ms)
  local key = task_key(id)
  local h = redis.call('HMGET', key, 'priority', 'cancel', 'error', 'qscore')
  local now = now_ms()
  if h[2] == '1' then
    finish(id, 'CANCELLED', { 'error', h[3] }, retention_ms, now)
    return
  end
  redis.call('HINCRBY', key, 'attempt', -1)
  redis.call('HSET', key, 'state', 'QUEUED', 'token', '', 'progress', 0, 'updated_ms', now,
    'runnable_ms', now)
  redis.call('ZREM', K.leases, id)
  -- Without its recorded place (a task queued by an older version), the front of its band.
  local score = tonumber(h[4]) or (2 - tonumber(h[1])) * 1099511627776 + 1
  redis.call('ZADD', K.tasks, score, id)
  emit(id, true)
end

-- Notes that a server reached Redis now. A silence longer than `gap_ms` since the last note
-- means Redis was stopped, frozen or unreachable for everyone: `resumed` records when it came
-- back, in Redis's own clock, so that the reaper can give live workers time to renew.
local function touch(now, gap_ms)
  local last = tonumber(redis.call('GET', K.alive) or '0')
  if now - last > gap_ms then redis.call('SET', K.resumed, now) end
  redis.call('SET', K.alive, now)
end

-- True when `token` still holds the lease of the running task `id`.
local function holds(id, token)
  local h = redis.call('HMGET', task_key(id), 'state', 'token')
  return h[1] == 'IN_PROGRESS' and h[2] == token and token ~= ''
end

-- Completes the running task `id` if `token` holds its lease, as finish would, with the
-- task read once: true, or false when the lease is lost. `unleased` collects the ids whose
-- lease the caller removes (one ZREM for many completions).
local function complete_running(id, token, result, retention_ms, unleased)
  local key = task_key(id)
  local h = redis.call('HMGET', key, 'state', 'token', 'seq', 'attempt', 'max_attempts', 'idem',
    'watch')
  if not (h[1] == 'IN_PROGRESS' and h[2] == token and token ~= '') then return false end
  local seq = tostring(tonumber(h[3]) + 1)
  local now_s = now_text()
  redis.call('HSET', key, 'state', 'COMPLETED', 'token', '', 'updated_ms', now_s,
    'result', result, 'progress', '100', 'error', '', 'seq', seq)
  unleased[#unleased + 1] = id
  announce(id, 'COMPLETED',
    event_json(id, seq, 'COMPLETED', '100', h[4], h[5], result, '', now_s),
    false, retention_ms, h[7])
  expire_terminal(id, retention_ms, h[6] or '', true)
  return true
end

-- The fields of a task that a claim answers, in this order (the store's `CLAIM_FIELDS`;
-- `watch`, last, is read for the claim's event and not answered), and the positions of
-- those the claim changes or reads.
local CLAIM_FIELDS = {
  'id', 'description', 'priority', 'number1', 'number2', 'kind', 'payload', 'idem', 'attempt',
  'max_attempts', 'result', 'error', 'created_ms', 'updated_ms', 'seq', 'cancel', 'trace',
  'runnable_ms', 'watch',
}
local C = {}
for i, field in ipairs(CLAIM_FIELDS) do C[field] = i end

-- Takes the first runnable tasks, one for each token of `tokens` in order, and leases each to
-- its token for the lease of `leases` (ms) at the same place (claim.lua, complete_claim.lua):
-- per token, the task's `CLAIM_FIELDS` as they are after the claim (the state is
-- IN_PROGRESS, the progress 0, the token the claim's: not repeated), or false when nothing
-- more is runnable. `claim:<token>` names the task for one lease, so that a worker whose
-- reply was lost can hand it back (unclaim.lua). Nothing here may raise an error once the
-- ids are popped: a script's writes before an error stay, and the popped ids not yet leased
-- would be in no set at all; so a field that is missing or not a number counts as 0.
local function claim_many(tokens, leases)
  local out, leased = {}, {}
  local n = 1
  -- A pending id without its task cannot be run; dropping it is all that can be done, and
  -- the next ids are taken instead, a bounded number of times.
  for _ = 1, 16 do
    if n > #tokens then break end
    local popped = redis.call('ZPOPMIN', K.tasks, #tokens - n + 1)
    if #popped == 0 then break end
    for j = 1, #popped, 2 do
      local id = popped[j]
      local key = task_key(id)
      -- The hash is read once: a missing `id` field (no hash) drops the id, and the claim's
      -- answer and its event are built from it with the fields the claim changes.
      local h = redis.call('HMGET', key, unpack(CLAIM_FIELDS))
      if h[1] then
        local token, lease_ms = tokens[n], leases[n]
        local now, now_s = now_ms(), now_text()
        local attempt = tostring((tonumber(h[C.attempt]) or 0) + 1)
        local seq = tostring((tonumber(h[C.seq]) or 0) + 1)
        h[C.attempt], h[C.seq], h[C.updated_ms] = attempt, seq, now_s
        redis.call('HSET', key, 'attempt', attempt, 'seq', seq, 'state', 'IN_PROGRESS',
          'token', token, 'progress', '0', 'updated_ms', now_s)
        leased[#leased + 1] = now + lease_ms
        leased[#leased + 1] = id
        redis.call('SET', P .. 'claim:' .. token, id, 'PX', lease_ms + 60000)
        announce(id, 'IN_PROGRESS',
          event_json(id, seq, 'IN_PROGRESS', '0', attempt, h[C.max_attempts], h[C.result],
            h[C.error], now_s),
          false, nil, h[C.watch])
        h[C.watch] = nil
        out[n] = h
        n = n + 1
      end
    end
  end
  zadd_all(K.leases, leased)
  for i = n, #tokens do out[i] = false end
  return out
end

-- ARGV: prefix, retention_ms, then per completion: id, token, result, next_token, lease_ms.
-- Completes each running attempt, as its own step would, and then claims, for each accepted
-- completion with a next token ('' for none), the next runnable task under that token for
-- `lease_ms`, as claim.lua would: busy workers save a round trip and a script per task, and
-- completions that arrive together (the store batches them) share one call, and their
-- events one message. Returns, per completion: 1 and the claimed task's fields (false when
-- none was claimed), or 0 and false when its token no longer holds the lease (the
-- completion is rejected, nothing claimed).
-- As text: it is only passed on to PEXPIRE and SET PX.
local retention_ms = ARGV[2]
local out, tokens, leases, slots, unleased = {}, {}, {}, {}, {}
hold()
for i = 3, #ARGV, 5 do
  local id, token, result, next_token = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local accepted = complete_running(id, token, result, retention_ms, unleased)
  out[#out + 1] = accepted and 1 or 0
  out[#out + 1] = false
  if accepted and next_token ~= '' then
    tokens[#tokens + 1] = next_token
    leases[#leases + 1] = tonumber(ARGV[i + 4])
    slots[#tokens] = #out
  end
end
if #unleased > 0 then redis.call('ZREM', K.leases, unpack(unleased)) end
if #tokens > 0 then
  local claimed = claim_many(tokens, leases)
  for j, slot in ipairs(slots) do out[slot] = claimed[j] end
end
flush()
return out

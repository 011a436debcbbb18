//! The scripts the store runs in Redis: the compare-and-set of
//! [`SessionStore::save`] and the take of [`SessionStore::take`].
//!
//! [`SessionStore::save`]: session_core::SessionStore::save
//! [`SessionStore::take`]: session_core::SessionStore::take

use std::sync::LazyLock;

/// How many saves' tokens a stored value remembers, its own included: a
/// copy of a save that reaches Redis after at most this many saves of the
/// session in all (its own first copy and up to three others) is
/// recognised and not applied again.
pub const SAVE_TOKENS_KEPT: usize = 4;

/// The Lua script behind [`SessionStore::save`]: compares the stored
/// value's version header with the one the writer loaded and, when they
/// match, writes the new value with its expiry, all in one atomic step on
/// the server.
///
/// - `KEYS[1]`: the record's key.
/// - `ARGV[1]`: the new value: the version header, then
///   [`Record::to_bytes`] with the save's own token, 16 lowercase hex
///   digits drawn at random, as its first field
///   (`0000000000000004:{"w":"9f86d081884c7d65","v":1,…}`).
/// - `ARGV[2]`: the header of the version the writer loaded: 16 lowercase
///   hex digits and `:` (`0000000000000003:`).
/// - `ARGV[3]`: the new record's deadline in Unix milliseconds, or empty
///   when it never expires (the key then gets no TTL).
///
/// It answers `1` when it wrote, `0` when there is no record (deleted,
/// expired, or taken: it writes nothing, so a save never resurrects a
/// session), and
/// the stored value when its first 17 bytes differ from `ARGV[2]`: a
/// conflict, or a value without a valid header, which the store reports as
/// corrupt instead of overwriting it.
///
/// **A save sent twice is applied once.** The stored value's `"w"` field
/// lists the tokens of the last [`SAVE_TOKENS_KEPT`] saves, newest first
/// (`{"w":"<newest>,<older>,…",…}`): the script writes `ARGV[1]` with the
/// stored value's three newest tokens after its own. When the header does
/// not match but `ARGV[1]`'s token is in that list, this very save was
/// already applied by an earlier copy of the command, perhaps followed by
/// other saves of the session: the script answers `1` and writes nothing.
/// (A command is sent twice when its connection dropped before the answer
/// came: the store re-sends it, and so does the cluster client.) Every
/// save draws a token of its own, so a second writer that computed the
/// same record still meets a conflict. A `"w"` that is anything but
/// lowercase hex digits and commas, or not of a token list's length, is
/// not carried over.
///
/// The script never decodes the JSON: it compares the header as a string
/// and finds the tokens at a fixed offset, so every `u64` version compares
/// exactly, and a call costs little more than the `GET` and `SET` it runs.
///
/// [`SessionStore::save`]: session_core::SessionStore::save
/// [`Record::to_bytes`]: session_core::Record::to_bytes
pub const SAVE_SCRIPT: &str = r#"-- session-redis: compare-and-set save
local current = redis.call('GET', KEYS[1])
-- A value taken by a log-in (see TAKE_SCRIPT) is no record: '~', the
-- take's token, then the value taken, which starts with a version header.
if not current or string.find(current, '^~' .. string.rep('[0-9a-f]', 32) .. ':') then
  return 0
end
-- The tokens of the last saves, newest first, 16 lowercase hex digits
-- each: {"w":"<token>,<token>,..." right after the 17-byte header, from
-- byte 24 to byte `last`.
local last = nil
if string.sub(current, 18, 23) == '{"w":"' then
  local _, e = string.find(current, '^[0-9a-f,]+', 24)
  if e and (e - 22) % 17 == 0 and string.sub(current, e + 1, e + 1) == '"' then
    last = e
  end
end
if string.sub(current, 1, 17) ~= ARGV[2] then
  -- A copy of this very save, already applied: its token is in the list.
  if last and string.sub(ARGV[1], 18, 23) == '{"w":"' then
    local at = string.find(current, string.sub(ARGV[1], 24, 39), 24, true)
    if at and at + 15 <= last and (at - 24) % 17 == 0 then
      return 1
    end
  end
  return current
end
local value = ARGV[1]
if last and string.sub(value, 18, 23) == '{"w":"' and string.sub(value, 40, 40) == '"' then
  -- This save's token, then the stored list's newest three.
  if last > 73 then
    last = 73
  end
  value = string.sub(value, 1, 39) .. ',' .. string.sub(current, 24, last) .. string.sub(value, 40)
end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], value)
else
  redis.call('SET', KEYS[1], value, 'PXAT', ARGV[3])
end
return 1
"#;

/// The script, with its SHA-1 computed once.
pub(crate) static SAVE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SAVE_SCRIPT));

/// How long, in milliseconds, a taken record's mark stays at least (see
/// [`TAKE_SCRIPT`]): far longer than a command is re-sent after. The store
/// keeps it twice its command timeout when that is longer.
pub(crate) const TAKEN_MARK_MS: u64 = 60_000;

/// The Lua script behind [`SessionStore::take`]: removes a record and
/// hands it back, in one atomic step, such that a copy of the command that
/// reaches Redis twice hands it back both times.
///
/// - `KEYS[1]`: the record's key.
/// - `ARGV[1]`: the take's own token, 16 lowercase hex digits drawn at
///   random.
/// - `ARGV[2]`: how long the mark stays, in milliseconds.
///
/// Instead of deleting the value, it replaces it with a mark: `~`, the
/// token, then the value taken (`~9f86d081884c7d650000000000000003:{…}`),
/// expiring after `ARGV[2]` milliseconds. It answers the value taken, or
/// `nil` when there is no record. A mark is no record to anything but the
/// take that left it: a `GET` finds none (the store reads a value starting
/// with `~` as nothing), the save script answers "missing", and another
/// take answers `nil`; the take whose token it holds answers the value in
/// it again. A command is sent twice when its connection dropped before
/// the answer came (the Redis Cluster client re-sends any command then,
/// and the store re-sends on a standalone server): with a plain `GETDEL`,
/// the second copy would find nothing, and a log-in would read as a
/// session that ended meanwhile and fail (see
/// [`SessionStore::take`]). Values never start with `~` otherwise: they
/// start with a hex version header. A value that starts with `~` but is not
/// a mark (`~`, 16 lowercase hex digits, a version header) is no mark; it
/// and any other value without a version header are handed back untouched
/// (not marked), and the store reports them as corrupt, as any value it
/// did not write.
///
/// [`SessionStore::take`]: session_core::SessionStore::take
pub const TAKE_SCRIPT: &str = r#"-- session-redis: take
local current = redis.call('GET', KEYS[1])
if not current then
  return false
end
local mark = '~' .. ARGV[1]
-- '~', a take's token, then the value taken, which starts with a version
-- header: taken already, by this very take (a copy of it), or by another.
if string.find(current, '^~' .. string.rep('[0-9a-f]', 32) .. ':') then
  if string.sub(current, 1, #mark) == mark then
    return string.sub(current, #mark + 1)
  end
  return false
end
-- Not a record (no version header): handed back as it is, untouched, for
-- the store to report as corrupt.
if not string.find(current, '^' .. string.rep('[0-9a-f]', 16) .. ':') then
  return current
end
redis.call('SET', KEYS[1], mark .. current, 'PX', ARGV[2])
return current
"#;

/// The take script, with its SHA-1 computed once.
pub(crate) static TAKE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(TAKE_SCRIPT));

#[cfg(test)]
mod tests {
    use super::*;

    /// The script keeps the newest `SAVE_TOKENS_KEPT - 1` stored tokens,
    /// bytes 24 to 73 of the stored value: each token is 16 hex digits and
    /// a comma, less the last comma.
    #[test]
    fn the_script_keeps_as_many_tokens_as_documented() {
        let last = 24 + (SAVE_TOKENS_KEPT - 1) * 17 - 2;
        let kept = format!("if last > {last} then\n    last = {last}");
        assert!(SAVE_SCRIPT.contains(&kept), "{kept}");
    }
}

#include "lib/store/lmdb_store.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <random>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "absl/container/flat_hash_map.h"
#include "lib/common/json_writer.h"
#include "lib/common/status.h"
#include "lib/crypto/crypto.h"
#include "lib/session/session.h"
#include "lib/store/backend_util.h"

namespace xg2g {
namespace {

using store_internal::IdempotencyNotFound;
using store_internal::LeaseHeldByOther;
using store_internal::LeaseNotHeld;
using store_internal::Quoted;
using store_internal::SessionNotFound;
using store_internal::UpdateBackOff;
using store_internal::ValidateIdempotencyKey;
using store_internal::ValidateLeaseArgs;
using store_internal::ValidateTtl;

// The store's on-disk format (docs/lmdb.md). A store whose format record is
// greater is refused: it was written by a newer library this one cannot read.
constexpr int64_t kFormatVersion = 1;
// Written into every idempotency and lease record.
constexpr int64_t kRecordVersion = 1;

constexpr char kSessionsDb[] = "sessions";
constexpr char kIdempotencyDb[] = "idem";
constexpr char kLeasesDb[] = "leases";
constexpr char kMetaDb[] = "meta";
constexpr std::string_view kFormatKey = "format";
constexpr std::string_view kRevisionKey = "revision";
constexpr std::string_view kFencingKey = "fencing";

// Sessions decoded per read transaction of a scan.
constexpr size_t kScanPage = 256;
// Expired entries deleted per write transaction of a sweep, and records a
// sweep looks at per read transaction.
constexpr size_t kSweepBatch = 256;
constexpr size_t kSweepLookPerTxn = 4096;
// A table is swept after an insert once it holds this many entries, then
// again whenever it has doubled since the last sweep.
constexpr uint64_t kMinSweepEntries = 1024;

// Keys up to this many bytes are stored as they are; longer ones as their
// first kMaxDirectKey bytes followed by the SHA-256 of the whole key (64 hex
// characters), which stays under LMDB's 511-byte key limit and can never
// equal a direct key (it is longer than any).
constexpr size_t kMaxDirectKey = 400;
constexpr size_t kHashedKeySize = kMaxDirectKey + 64;

// Reader slots in the lock file, shared by every process on the store (set
// by whichever process creates the lock file). Each running read transaction
// takes one for its duration.
constexpr unsigned kMaxReaders = 1022;

// Proactive growth: after a commit that leaves the file's high-water mark
// above this fraction of the map, the map is grown before it is full.
constexpr uint64_t kGrowAtPercent = 75;

// Bounds the loop of a write that grows the map or adopts another process's
// larger map and tries again.
constexpr int kMaxWriteRounds = 64;

// ------------------------------------------------------------------ helpers

uint64_t RoundUp(uint64_t value, uint64_t unit) {
  if (value % unit == 0) return value;
  if (value > std::numeric_limits<uint64_t>::max() - unit) return value - value % unit;
  return value + (unit - value % unit);
}

std::string Bytes(uint64_t bytes) {
  if (bytes >= (uint64_t{10} << 20)) return fmt::format("{} MiB", bytes >> 20);
  if (bytes >= (uint64_t{1} << 20)) {
    return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
  }
  return fmt::format("{} KiB", bytes >> 10);
}

// A key or owner quoted in a message: as JSON (so that control characters
// and stray bytes cannot garble a log line), cut short when very long.

MDB_val ValOf(std::string_view bytes) {
  return MDB_val{bytes.size(), const_cast<char*>(bytes.data())};
}

std::string_view ViewOf(const MDB_val& val) {
  return std::string_view(static_cast<const char*>(val.mv_data), val.mv_size);
}

// The LMDB key of an idempotency or lease key (see kMaxDirectKey).
class DbKey {
 public:
  explicit DbKey(std::string_view key) {
    if (key.size() <= kMaxDirectKey) {
      view_ = key;
    } else {
      storage_.reserve(kHashedKeySize);
      storage_.assign(key.substr(0, kMaxDirectKey));
      storage_ += Sha256Hex(key);
      view_ = storage_;
    }
  }
  DbKey(const DbKey&) = delete;
  DbKey& operator=(const DbKey&) = delete;

  bool hashed() const { return !storage_.empty(); }
  std::string_view view() const { return view_; }
  MDB_val val() const { return ValOf(view_); }

 private:
  std::string storage_;
  std::string_view view_;
};


// --------------------------------------------------------------- validation


// ---------------------------------------------------------- small records
//
// Idempotency entries, leases and the format record are small JSON objects
// (docs/lmdb.md). A string that is not valid UTF-8 is written as lowercase
// hex under the field's name + "Hex", so that every byte string round-trips.

void AppendField(std::string& out, std::string_view name) {
  if (out.size() > 1) out.push_back(',');
  AppendJsonString(out, name);
  out.push_back(':');
}

void AppendStringField(std::string& out, std::string_view name, std::string_view value) {
  if (simdjson::validate_utf8(value.data(), value.size())) {
    AppendField(out, name);
    AppendJsonString(out, value);
    return;
  }
  AppendField(out, fmt::format("{}Hex", name));
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (unsigned char c : value) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  out.push_back('"');
}

template <typename Int>
void AppendIntField(std::string& out, std::string_view name, Int value) {
  AppendField(out, name);
  fmt::format_to(std::back_inserter(out), "{}", value);
}

struct IdempotencyRecord {
  IdempotencyEntry entry;
  std::string key;  // the full key, present when the LMDB key is hashed
};

struct LeaseRecord {
  std::string owner;
  uint64_t fencing_token = 0;
  int64_t expires_at_ms = 0;
  std::string key;  // the full key, present when the LMDB key is hashed
};

std::string EncodeIdempotency(const IdempotencyEntry& entry, const DbKey& db_key,
                              std::string_view key) {
  std::string out = "{";
  AppendIntField(out, "v", kRecordVersion);
  AppendStringField(out, "sessionId", entry.session_id);
  AppendStringField(out, "fingerprint", entry.fingerprint);
  AppendIntField(out, "expiresAtMs", entry.expires_at_ms);
  if (db_key.hashed()) AppendStringField(out, "key", key);
  out.push_back('}');
  return out;
}

std::string EncodeLease(const LeaseRecord& lease, const DbKey& db_key, std::string_view key) {
  std::string out = "{";
  AppendIntField(out, "v", kRecordVersion);
  AppendStringField(out, "owner", lease.owner);
  AppendIntField(out, "token", lease.fencing_token);
  AppendIntField(out, "expiresAtMs", lease.expires_at_ms);
  if (db_key.hashed()) AppendStringField(out, "key", key);
  out.push_back('}');
  return out;
}

simdjson::dom::parser& ThreadParser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads the members of a small record. `on_field(name, value)` returns true
// when it knew the field; unknown fields (a newer writer's additions) are
// ignored. The record's `what` ("idempotency key \"k\"") prefixes errors.
class SmallRecordReader {
 public:
  SmallRecordReader(std::string_view what, simdjson::dom::element value)
      : what_(what), value_(value) {}

  absl::Status String(std::string_view field, std::string& out) const {
    std::string_view text;
    if (value_.get_string().get(text) != simdjson::SUCCESS) {
      return Corrupt(fmt::format("field \"{}\" is not a string", field));
    }
    out.assign(text.data(), text.size());
    return absl::OkStatus();
  }

  absl::Status Hex(std::string_view field, std::string& out) const {
    std::string_view text;
    if (value_.get_string().get(text) != simdjson::SUCCESS || text.size() % 2 != 0) {
      return Corrupt(fmt::format("field \"{}\" is not a hex string", field));
    }
    out.clear();
    out.reserve(text.size() / 2);
    for (size_t i = 0; i < text.size(); i += 2) {
      const int hi = HexDigit(text[i]);
      const int lo = HexDigit(text[i + 1]);
      if (hi < 0 || lo < 0) return Corrupt(fmt::format("field \"{}\" is not a hex string", field));
      out.push_back(static_cast<char>((hi << 4) | lo));
    }
    return absl::OkStatus();
  }

  absl::Status Int(std::string_view field, int64_t min, int64_t& out) const {
    int64_t number = 0;
    if (value_.get_int64().get(number) != simdjson::SUCCESS || number < min) {
      return Corrupt(fmt::format("field \"{}\" is not an integer >= {}", field, min));
    }
    out = number;
    return absl::OkStatus();
  }

  absl::Status Uint(std::string_view field, uint64_t min, uint64_t& out) const {
    uint64_t number = 0;
    if (value_.get_uint64().get(number) != simdjson::SUCCESS || number < min) {
      return Corrupt(fmt::format("field \"{}\" is not an integer >= {}", field, min));
    }
    out = number;
    return absl::OkStatus();
  }

  absl::Status Corrupt(std::string_view detail) const {
    return CorruptError(fmt::format("{}: record does not decode: {}", what_, detail));
  }

 private:
  std::string_view what_;  // outlives the reader
  simdjson::dom::element value_;
};

// Parses `json` as an object and hands each member to `on_member(name,
// reader)`, which returns a status.
template <typename OnMember>
absl::Status ReadSmallRecord(std::string_view what, std::string_view json, OnMember on_member) {
  simdjson::dom::element doc;
  if (auto error = ThreadParser().parse(json.data(), json.size()).get(doc)) {
    if (error == simdjson::MEMALLOC) {
      return MakeError(ErrorCode::kNoMemory, fmt::format("{}: out of memory decoding", what));
    }
    return CorruptError(fmt::format("{}: record does not decode: malformed JSON ({})", what,
                                    simdjson::error_message(error)));
  }
  simdjson::dom::object object;
  if (doc.get_object().get(object) != simdjson::SUCCESS) {
    return CorruptError(fmt::format("{}: record does not decode: not a JSON object", what));
  }
  for (simdjson::dom::key_value_pair member : object) {
    XG2G_RETURN_IF_ERROR(on_member(member.key, SmallRecordReader(what, member.value)));
  }
  return absl::OkStatus();
}

absl::StatusOr<IdempotencyRecord> DecodeIdempotency(std::string_view key, std::string_view json) {
  const std::string what = fmt::format("idempotency key {}", Quoted(key));
  IdempotencyRecord record;
  bool has_session = false;
  bool has_fingerprint = false;
  bool has_deadline = false;
  XG2G_RETURN_IF_ERROR(ReadSmallRecord(what, json, [&](std::string_view name,
                                                       const SmallRecordReader& field) {
    int64_t version = 0;
    if (name == "v") return field.Int(name, 1, version);
    if (name == "sessionId" || name == "sessionIdHex") {
      has_session = true;
      return name == "sessionId" ? field.String(name, record.entry.session_id)
                                 : field.Hex(name, record.entry.session_id);
    }
    if (name == "fingerprint" || name == "fingerprintHex") {
      has_fingerprint = true;
      return name == "fingerprint" ? field.String(name, record.entry.fingerprint)
                                   : field.Hex(name, record.entry.fingerprint);
    }
    if (name == "expiresAtMs") {
      has_deadline = true;
      return field.Int(name, std::numeric_limits<int64_t>::min(), record.entry.expires_at_ms);
    }
    if (name == "key") return field.String(name, record.key);
    if (name == "keyHex") return field.Hex(name, record.key);
    return absl::OkStatus();  // a newer writer's field
  }));
  if (!has_session || !has_fingerprint || !has_deadline) {
    return CorruptError(fmt::format(
        "{}: record does not decode: sessionId, fingerprint or expiresAtMs is missing", what));
  }
  return record;
}

absl::StatusOr<LeaseRecord> DecodeLease(std::string_view key, std::string_view json) {
  const std::string what = fmt::format("lease {}", Quoted(key));
  LeaseRecord record;
  bool has_owner = false;
  bool has_token = false;
  bool has_deadline = false;
  XG2G_RETURN_IF_ERROR(ReadSmallRecord(what, json, [&](std::string_view name,
                                                       const SmallRecordReader& field) {
    int64_t version = 0;
    if (name == "v") return field.Int(name, 1, version);
    if (name == "owner" || name == "ownerHex") {
      has_owner = true;
      return name == "owner" ? field.String(name, record.owner) : field.Hex(name, record.owner);
    }
    if (name == "token") {
      has_token = true;
      return field.Uint(name, 1, record.fencing_token);
    }
    if (name == "expiresAtMs") {
      has_deadline = true;
      return field.Int(name, std::numeric_limits<int64_t>::min(), record.expires_at_ms);
    }
    if (name == "key") return field.String(name, record.key);
    if (name == "keyHex") return field.Hex(name, record.key);
    return absl::OkStatus();  // a newer writer's field
  }));
  if (!has_owner || !has_token || !has_deadline) {
    return CorruptError(
        fmt::format("{}: record does not decode: owner, token or expiresAtMs is missing", what));
  }
  return record;
}

// A hashed LMDB key names its full key in the record: a record whose full
// key is not the one asked for (a hash collision, or a damaged record) is
// corrupt rather than someone else's entry.
template <typename Record>
absl::Status CheckFullKey(std::string_view what, std::string_view key, const DbKey& db_key,
                          const Record& record) {
  if (db_key.hashed() && record.key != key) {
    return CorruptError(fmt::format("{} {}: the record under its hashed key names key {}", what,
                                    Quoted(key), Quoted(record.key)));
  }
  return absl::OkStatus();
}

absl::StatusOr<SessionRecord> DecodeStoredSession(std::string_view id, std::string_view json) {
  absl::StatusOr<SessionRecord> record = DecodeSession(json);
  if (!record.ok()) {
    return MakeError(CodeOf(record.status()),
                     fmt::format("session '{}': stored record does not decode: {}", id,
                                 FromAbsl(record.status().message())));
  }
  if (record->session_id != id) {
    return CorruptError(fmt::format("session '{}': stored record names session {}", id,
                                    Quoted(record->session_id)));
  }
  return record;
}

absl::StatusOr<uint64_t> ParseCounter(std::string_view name, std::string_view text) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    return CorruptError(fmt::format("meta record '{}' is not a decimal counter: {}", name,
                                    Quoted(text.substr(0, 32))));
  }
  return value;
}

absl::StatusOr<int64_t> DecodeFormat(std::string_view json) {
  int64_t format = 0;
  bool seen = false;
  XG2G_RETURN_IF_ERROR(ReadSmallRecord(
      "meta record 'format'", json, [&](std::string_view name, const SmallRecordReader& field) {
        if (name == "format") return seen = true, field.Int(name, 1, format);
        return absl::OkStatus();
      }));
  if (!seen) return CorruptError("meta record 'format': record does not decode: no format field");
  return format;
}

// ------------------------------------------------------------------- gate

// Every transaction of this process runs under the gate held shared; changing
// the map size (which LMDB allows only with no transaction active in the
// process) takes it exclusively. Writer-preferring, so that a resize is not
// starved by a steady stream of readers. Never taken recursively.
//
// Readers count themselves in one of kSlots counters, each on a cache line of
// its own and chosen per thread, so that threads reading at once do not pass
// one cache line back and forth on every transaction as they would with one
// shared lock word. The exclusive side is rare (a resize): it raises a flag
// under its mutex and waits for every counter to drain; a reader that finds
// the flag up steps back and waits on that mutex. The flag and the counters
// are sequentially consistent, so a reader and a resize never both miss each
// other.
class Gate {
 public:
  Gate() = default;
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  void lock() {
    exclusive_.lock();
    resizing_.store(true, std::memory_order_seq_cst);
    for (Slot& slot : slots_) {
      for (int spins = 0; slot.readers.load(std::memory_order_seq_cst) != 0; ++spins) {
        // Readers are short transactions, writers one commit (an fsync).
        if (spins < 64) {
          std::this_thread::yield();
        } else {
          std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
      }
    }
  }
  void unlock() {
    resizing_.store(false, std::memory_order_seq_cst);
    exclusive_.unlock();
  }
  void lock_shared() {
    std::atomic<uint32_t>& readers = slots_[ThreadSlot()].readers;
    for (;;) {
      readers.fetch_add(1, std::memory_order_seq_cst);
      if (!resizing_.load(std::memory_order_seq_cst)) return;
      readers.fetch_sub(1, std::memory_order_seq_cst);
      std::lock_guard wait(exclusive_);  // until the resize is done
    }
  }
  void unlock_shared() {
    slots_[ThreadSlot()].readers.fetch_sub(1, std::memory_order_seq_cst);
  }

 private:
  static constexpr size_t kSlots = 16;

  struct alignas(64) Slot {
    std::atomic<uint32_t> readers{0};
  };

  // The calling thread's slot, the same for its whole life.
  static size_t ThreadSlot() {
    static std::atomic<size_t> next{0};
    thread_local const size_t slot = next.fetch_add(1, std::memory_order_relaxed) % kSlots;
    return slot;
  }

  Slot slots_[kSlots];
  std::atomic<bool> resizing_{false};
  std::mutex exclusive_;  // held by the resize for its whole length
};

// Aborts a transaction that was neither committed nor aborted.
class TxnGuard {
 public:
  explicit TxnGuard(MDB_txn* txn) : txn_(txn) {}
  ~TxnGuard() {
    if (txn_ != nullptr) mdb_txn_abort(txn_);
  }
  TxnGuard(const TxnGuard&) = delete;
  TxnGuard& operator=(const TxnGuard&) = delete;
  MDB_txn* get() const { return txn_; }
  int Commit() {
    MDB_txn* txn = std::exchange(txn_, nullptr);
    return mdb_txn_commit(txn);
  }

 private:
  MDB_txn* txn_;
};

class CursorGuard {
 public:
  CursorGuard() = default;
  ~CursorGuard() {
    if (cursor_ != nullptr) mdb_cursor_close(cursor_);
  }
  CursorGuard(const CursorGuard&) = delete;
  CursorGuard& operator=(const CursorGuard&) = delete;
  MDB_cursor** out() { return &cursor_; }
  MDB_cursor* get() const { return cursor_; }

 private:
  MDB_cursor* cursor_ = nullptr;
};

ErrorCode CodeOfLmdb(int rc) {
  switch (rc) {
    case MDB_MAP_FULL:
    case ENOSPC:
    case EDQUOT:
      return ErrorCode::kStoreFull;
    case MDB_READERS_FULL:
    case MDB_PANIC:
    case EAGAIN:
      return ErrorCode::kUnavailable;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
      return ErrorCode::kCorrupt;
    case MDB_VERSION_MISMATCH:
      return ErrorCode::kVersion;
    case ENOMEM:
      return ErrorCode::kNoMemory;
    case EIO:
    case EACCES:
    case EPERM:
    case EROFS:
    case ENOENT:
    case ENOTDIR:
    case EISDIR:
    case EMFILE:
    case ENFILE:
      return ErrorCode::kIo;
    default:
      return ErrorCode::kInternal;
  }
}

absl::Status LmdbError(std::string_view path, int rc, std::string_view what) {
  std::string hint;
  if (rc == MDB_READERS_FULL) hint = " (too many read transactions at once)";
  if (rc == MDB_PANIC) hint = " (the store must be closed and opened again)";
  return MakeError(CodeOfLmdb(rc), fmt::format("lmdb store '{}': {}: {}{}", path, what,
                                                mdb_strerror(rc), hint));
}

}  // namespace

// ----------------------------------------------------------------- the env

struct LmdbCommitRequest;  // one write waiting for a group commit (below)

struct LmdbStore::Env {
  std::string path;
  dev_t dev = 0;
  ino_t ino = 0;
  pid_t pid = 0;  // the process that opened it: a forked child never uses it
  // Unique among the environments this process opens (an address may be
  // reused after a close; a serial never is): names the environment in the
  // threads' parked readers. 0 until registered in LiveEnvs.
  uint64_t serial = 0;
  // Every read transaction some thread keeps parked for this environment
  // (see "parked readers"), aborted when the environment closes.
  std::mutex parked_mu;
  std::vector<MDB_txn*> parked;  // guarded by parked_mu
  LmdbOptions options;
  MDB_env* env = nullptr;
  MDB_dbi sessions = 0;
  MDB_dbi idempotency = 0;
  MDB_dbi leases = 0;
  MDB_dbi meta = 0;
  uint64_t page_bytes = 4096;
  // The map size that writes grow to: max_map_bytes less a reserve that only
  // deletes may use, so that a full store can always be emptied (docs/lmdb.md,
  // "Map size").
  uint64_t soft_max_bytes = 0;
  Gate gate;
  int refs = 0;  // guarded by the registry's mutex
  std::atomic<uint64_t> idempotency_sweep_at{kMinSweepEntries};
  std::atomic<uint64_t> lease_sweep_at{kMinSweepEntries};
  std::atomic<bool> sweeping{false};
  // Group commit (WriteGrouped): the writes of this process waiting for the
  // next shared transaction, and whether a thread is running one.
  std::mutex commit_mu;
  std::vector<LmdbCommitRequest*> commit_queue;  // guarded by commit_mu
  bool committing = false;                       // guarded by commit_mu
  size_t committing_writes = 0;                  // guarded by commit_mu
  uint64_t groups_committed = 0;                 // guarded by commit_mu
  uint64_t writes_committed = 0;                 // guarded by commit_mu

  absl::Status Error(int rc, std::string_view what) const { return LmdbError(path, rc, what); }
};

namespace {

using Env = LmdbStore::Env;

// One environment per store directory per process.
struct Registry {
  std::mutex mu;
  std::map<std::pair<dev_t, ino_t>, Env*> envs;  // guarded by mu
};

Registry& GetRegistry() {
  static auto* const registry = new Registry;  // never destroyed: no exit-time order issues
  return *registry;
}

// The environments open in this process by serial, for the parked readers
// (below), which must not touch an environment after it closed.
// Lock order: the registry's mutex, then this one, then an environment's
// parked_mu.
struct LiveEnvs {
  std::mutex mu;
  absl::flat_hash_map<uint64_t, Env*> by_serial;  // guarded by mu
  uint64_t next_serial = 1;                        // guarded by mu
};

LiveEnvs& GetLiveEnvs() {
  static auto* const live = new LiveEnvs;  // never destroyed, like the registry
  return *live;
}

// Gives `env` its serial; CloseEnv takes it back.
void RegisterLive(Env* env) {
  LiveEnvs& live = GetLiveEnvs();
  std::lock_guard lock(live.mu);
  env->serial = live.next_serial++;
  live.by_serial.emplace(env->serial, env);
}

// When no store uses `env` any more.
void CloseEnv(Env* env) {
  if (env->serial != 0) {
    LiveEnvs& live = GetLiveEnvs();
    std::lock_guard lock(live.mu);
    live.by_serial.erase(env->serial);
  }
  {
    // No thread uses these now; one that parked them forgets them when it
    // sees the serial gone.
    std::lock_guard lock(env->parked_mu);
    for (MDB_txn* txn : env->parked) mdb_txn_abort(txn);
    env->parked.clear();
  }
  if (env->env != nullptr) mdb_env_close(env->env);
  delete env;
}

// ---------------------------------------------------------- parked readers
//
// With MDB_NOTLS (any thread may run any transaction) LMDB gives every read
// transaction a reader slot of its own: beginning one allocates it and takes
// the reader table's mutex, which every process shares, and ending it gives
// the slot back. So each thread keeps the transaction of its last read of
// each environment parked instead: reset (it holds its reader slot but no
// snapshot, so it pins no pages) and renewed for the thread's next read,
// which needs neither. It is aborted when the thread ends or the environment
// closes, whichever comes first; both do it under LiveEnvs' mutex, so never
// both. A thread thus holds one reader slot per environment it has read from,
// for as long as both live.

struct ParkedReader {
  uint64_t serial;  // Env::serial of the environment it belongs to
  MDB_txn* txn;     // valid only while that environment is open
};

class ThreadReaders {
 public:
  ThreadReaders() = default;
  ThreadReaders(const ThreadReaders&) = delete;
  ThreadReaders& operator=(const ThreadReaders&) = delete;

  // At thread exit: aborts the readers of environments still open (in this
  // process: a forked child's copy of its parent's are not its own).
  ~ThreadReaders() {
    if (readers_.empty()) return;
    LiveEnvs& live = GetLiveEnvs();
    std::lock_guard lock(live.mu);
    for (const ParkedReader& reader : readers_) {
      const auto it = live.by_serial.find(reader.serial);
      if (it == live.by_serial.end() || it->second->pid != getpid()) continue;
      Env& env = *it->second;
      std::lock_guard parked(env.parked_mu);
      if (std::erase(env.parked, reader.txn) > 0) mdb_txn_abort(reader.txn);
    }
  }

  // The reader this thread parked for `env`, taken out (null when none).
  MDB_txn* Take(const Env& env) {
    for (size_t i = 0; i < readers_.size(); ++i) {
      if (readers_[i].serial != env.serial) continue;
      MDB_txn* txn = readers_[i].txn;
      readers_[i] = readers_.back();
      readers_.pop_back();
      return txn;
    }
    return nullptr;
  }

  // Parks `txn` (reset) for this thread's next read of `env`; false when the
  // thread already has one parked there (the caller aborts `txn` instead).
  bool Park(Env& env, MDB_txn* txn) {
    for (const ParkedReader& reader : readers_) {
      if (reader.serial == env.serial) return false;
    }
    readers_.push_back(ParkedReader{env.serial, txn});
    return true;
  }

  // Forgets parked readers of environments that have closed (their
  // transactions were aborted with them), so that the list stays short.
  void Prune() {
    if (readers_.size() < 4) return;
    LiveEnvs& live = GetLiveEnvs();
    std::lock_guard lock(live.mu);
    std::erase_if(readers_, [&](const ParkedReader& reader) {
      return !live.by_serial.contains(reader.serial);
    });
  }

 private:
  std::vector<ParkedReader> readers_;
};

ThreadReaders& CurrentThreadReaders() {
  thread_local ThreadReaders readers;
  return readers;
}

// A read transaction: the thread's parked one renewed, or a new one. Ends
// by parking it again (or aborting it when it cannot be parked).
class ReadTxn {
 public:
  explicit ReadTxn(Env& env) : env_(env) {}
  ~ReadTxn() {
    if (txn_ == nullptr) return;
    mdb_txn_reset(txn_);
    if (!registered_) {
      std::lock_guard lock(env_.parked_mu);
      env_.parked.push_back(txn_);
    }
    if (!CurrentThreadReaders().Park(env_, txn_)) Discard(txn_);
  }
  ReadTxn(const ReadTxn&) = delete;
  ReadTxn& operator=(const ReadTxn&) = delete;

  // Begins: 0 or an LMDB error (MDB_MAP_RESIZED among them).
  int Begin() {
    ThreadReaders& readers = CurrentThreadReaders();
    if (MDB_txn* parked = readers.Take(env_)) {
      if (mdb_txn_renew(parked) == 0) {
        txn_ = parked;
        registered_ = true;
        return 0;
      }
      Discard(parked);  // and begin afresh, which reports what went wrong
    }
    readers.Prune();
    MDB_txn* txn = nullptr;
    const int rc = mdb_txn_begin(env_.env, nullptr, MDB_RDONLY, &txn);
    if (rc == 0) txn_ = txn;
    return rc;
  }

  MDB_txn* get() const { return txn_; }

 private:
  // Aborts a transaction that was parked or meant to be.
  void Discard(MDB_txn* txn) {
    {
      std::lock_guard lock(env_.parked_mu);
      std::erase(env_.parked, txn);
    }
    mdb_txn_abort(txn);
  }

  Env& env_;
  MDB_txn* txn_ = nullptr;
  bool registered_ = false;  // in env_.parked already
};

// ----------------------------------------------------------- transactions

uint64_t MapSizeOf(Env& env) {
  MDB_envinfo info;
  mdb_env_info(env.env, &info);
  return info.me_mapsize;
}

// Sets the map size (LMDB rounds it up to what the data already occupies).
// The caller holds the gate exclusively: no transaction of this process runs.
int SetMapSize(Env& env, uint64_t bytes) { return mdb_env_set_mapsize(env.env, bytes); }

// Adopts the map size another process has grown the store to (after
// MDB_MAP_RESIZED), but never above the soft maximum unless the data is
// already there: another process's delete may have used the reserve.
absl::Status AdoptMapSize(Env& env) {
  std::unique_lock gate(env.gate);
  int rc = SetMapSize(env, 0);
  if (rc == 0 && MapSizeOf(env) > env.soft_max_bytes) rc = SetMapSize(env, env.soft_max_bytes);
  if (rc != 0) return env.Error(rc, "adopt the map size another process set");
  return absl::OkStatus();
}

// Grows the map (doubling, up to the soft maximum) unless it has grown past
// `seen_map_bytes` meanwhile. False when it is at the soft maximum already.
bool Grow(Env& env, uint64_t seen_map_bytes) {
  std::unique_lock gate(env.gate);
  const uint64_t current = MapSizeOf(env);
  if (current > seen_map_bytes) return true;  // another thread grew it
  if (current >= env.soft_max_bytes) return false;
  const uint64_t doubled =
      current > env.soft_max_bytes / 2 ? env.soft_max_bytes : 2 * current;
  const uint64_t target = std::min(env.soft_max_bytes, RoundUp(doubled, env.page_bytes));
  return SetMapSize(env, target) == 0 && MapSizeOf(env) > current;
}

// Pages in use by the data as of the transaction's snapshot: every tree's
// pages (the free list's own included) and the two meta pages. Free pages
// are not counted; partly filled pages count whole.
uint64_t UsedPages(const Env& env, MDB_txn* txn) {
  uint64_t pages = 2;
  for (MDB_dbi dbi : {MDB_dbi{0}, MDB_dbi{1}, env.sessions, env.idempotency, env.leases, env.meta}) {
    MDB_stat stat;
    if (mdb_stat(txn, dbi, &stat) != 0) continue;
    pages += stat.ms_branch_pages + stat.ms_leaf_pages + stat.ms_overflow_pages;
  }
  return pages;
}

enum class WriteKind {
  kAdds,   // may need more room: refused once the map is at its soft maximum
  kFrees,  // deletes: may use the reserve above it, so that a full store can be emptied
};

// What a write body works with.
struct WriteTxn {
  Env& env;
  MDB_txn* txn = nullptr;
  bool map_full = false;         // a put or delete hit MDB_MAP_FULL: grow and run again
  bool commit_on_error = false;  // commit what was done, then return the body's error
};

absl::Status StoreFull(const Env& env, uint64_t used_bytes) {
  return StoreFullError(fmt::format(
      "lmdb store '{}' is full: its map is at the maximum of {} (max_map_size_mb), {} of it in "
      "pages holding data; reads still work, and writes will again once sessions, keys or "
      "leases are deleted (or the maximum is raised)",
      env.path, Bytes(env.options.max_map_bytes), Bytes(used_bytes)));
}

absl::Status Put(WriteTxn& w, MDB_dbi dbi, MDB_val key, std::string_view value,
                 std::string_view what) {
  MDB_val val = ValOf(value);
  const int rc = mdb_put(w.txn, dbi, &key, &val, 0);
  if (rc == 0) return absl::OkStatus();
  if (rc == MDB_MAP_FULL) w.map_full = true;
  return w.env.Error(rc, fmt::format("write {}", what));
}

// NotFound is not an error here: `found` says whether a record was deleted.
absl::Status Del(WriteTxn& w, MDB_dbi dbi, MDB_val key, std::string_view what,
                 bool* found = nullptr) {
  const int rc = mdb_del(w.txn, dbi, &key, nullptr);
  if (found != nullptr) *found = rc == 0;
  if (rc == 0 || rc == MDB_NOTFOUND) return absl::OkStatus();
  if (rc == MDB_MAP_FULL) w.map_full = true;
  return w.env.Error(rc, fmt::format("delete {}", what));
}

// Looks `key` up: true with `out` set, false when missing.
absl::StatusOr<bool> Get(const Env& env, MDB_txn* txn, MDB_dbi dbi, MDB_val key, MDB_val& out,
                         std::string_view what) {
  const int rc = mdb_get(txn, dbi, &key, &out);
  if (rc == MDB_NOTFOUND) return false;
  if (rc != 0) return env.Error(rc, fmt::format("read {}", what));
  return true;
}

absl::StatusOr<uint64_t> ReadCounter(const Env& env, MDB_txn* txn, std::string_view name) {
  MDB_val val;
  XG2G_ASSIGN_OR_RETURN(const bool found,
                        Get(env, txn, env.meta, ValOf(name), val, "a meta record"));
  if (!found) return uint64_t{0};
  return ParseCounter(name, ViewOf(val));
}

// Takes the next value of a persistent store-wide counter: every write
// transaction of every process is serialised by LMDB, so the values strictly
// increase across threads, processes and restarts.
absl::StatusOr<uint64_t> NextCounter(WriteTxn& w, std::string_view name) {
  XG2G_ASSIGN_OR_RETURN(const uint64_t last, ReadCounter(w.env, w.txn, name));
  if (last == std::numeric_limits<uint64_t>::max()) {
    return InternalError(fmt::format("meta counter '{}' is exhausted", name));
  }
  const uint64_t next = last + 1;
  XG2G_RETURN_IF_ERROR(
      Put(w, w.env.meta, ValOf(name), fmt::format("{}", next), "a meta counter"));
  return next;
}

// Runs `body(MDB_txn*)` in a read transaction.
template <typename Body>
absl::Status Read(Env& env, Body&& body) {
  for (int round = 0;; ++round) {
    {
      std::shared_lock gate(env.gate);
      ReadTxn txn(env);
      const int rc = txn.Begin();
      if (rc == 0) return body(txn.get());
      if (rc != MDB_MAP_RESIZED || round >= kMaxWriteRounds) {
        return env.Error(rc, "begin a read transaction");
      }
    }
    XG2G_RETURN_IF_ERROR(AdoptMapSize(env));
  }
}

// How one round of a write ended.
enum class WriteStep { kDone, kAdopt, kGrow, kGrowEarly };

// One write transaction: begins, runs the body, commits. `result` is what the
// write returns when the step is kDone or kGrowEarly.
template <typename Body>
WriteStep WriteOnce(Env& env, Body& body, absl::Status& result, uint64_t& seen_map) {
  MDB_txn* txn = nullptr;
  const int begin_rc = mdb_txn_begin(env.env, nullptr, 0, &txn);
  if (begin_rc == MDB_MAP_RESIZED) return WriteStep::kAdopt;
  if (begin_rc != 0) {
    result = env.Error(begin_rc, "begin a write transaction");
    return WriteStep::kDone;
  }
  TxnGuard guard(txn);
  WriteTxn w{env, txn};
  result = body(w);
  seen_map = MapSizeOf(env);
  if (w.map_full) return WriteStep::kGrow;
  if (!result.ok() && !w.commit_on_error) return WriteStep::kDone;  // the guard aborts
  const int rc = guard.Commit();
  if (rc == MDB_MAP_FULL) return WriteStep::kGrow;
  if (rc != 0) {
    result = env.Error(rc, "commit");
    return WriteStep::kDone;
  }
  MDB_envinfo info;
  mdb_env_info(env.env, &info);
  const uint64_t high = (info.me_last_pgno + 1) * env.page_bytes;
  return info.me_mapsize < env.soft_max_bytes && high >= info.me_mapsize / 100 * kGrowAtPercent
             ? WriteStep::kGrowEarly
             : WriteStep::kDone;
}

}  // namespace

// A write handed to the thread that runs the next group commit: its body,
// and what came of it.
struct LmdbCommitRequest {
  absl::Status (*run)(void* body, WriteTxn& w) = nullptr;
  void* body = nullptr;
  absl::Status result;
  WriteStep step = WriteStep::kDone;
  uint64_t seen_map = 0;
  std::exception_ptr thrown;  // what the body threw: rethrown in its own thread
  bool done = false;          // guarded by the env's commit_mu
  // Wakes this request's thread alone: when it is done, or when it is first
  // in the queue and no group is running (it leads the next one).
  std::condition_variable wake;
};

namespace {

// The most writes one group commit takes: bounds the time the first of them
// waits for the rest.
constexpr size_t kMaxGroupCommit = 256;

// Runs each request's body in a transaction nested in one write transaction
// and commits that once: one fsync for the whole batch. A body that fails
// (or fills the map) aborts only its own nested transaction; the others are
// committed all the same. Each request's step and result are as WriteOnce
// would have set them for it alone.
// Returns how many writes the parent transaction committed.
size_t RunGroup(Env& env, const std::vector<LmdbCommitRequest*>& batch) {
  if (batch.size() == 1) {
    // Alone: no nested transaction needed (each costs LMDB a page list of
    // its own), the body runs in the transaction itself as without groups.
    LmdbCommitRequest& r = *batch.front();
    auto run = [&r](WriteTxn& w) { return r.run(r.body, w); };
    try {
      r.step = WriteOnce(env, run, r.result, r.seen_map);
    } catch (...) {
      r.thrown = std::current_exception();  // the guard aborted the transaction
      return 0;
    }
    const bool committed =
        (r.step == WriteStep::kDone || r.step == WriteStep::kGrowEarly) && r.result.ok();
    return committed ? 1 : 0;
  }
  MDB_txn* parent = nullptr;
  const int begin_rc = mdb_txn_begin(env.env, nullptr, 0, &parent);
  if (begin_rc != 0) {
    for (LmdbCommitRequest* r : batch) {
      r->step = begin_rc == MDB_MAP_RESIZED ? WriteStep::kAdopt : WriteStep::kDone;
      if (begin_rc != MDB_MAP_RESIZED) r->result = env.Error(begin_rc, "begin a write transaction");
    }
    return 0;
  }
  TxnGuard guard(parent);
  std::vector<LmdbCommitRequest*> committed;
  committed.reserve(batch.size());
  for (LmdbCommitRequest* r : batch) {
    MDB_txn* child = nullptr;
    if (const int rc = mdb_txn_begin(env.env, parent, 0, &child); rc != 0) {
      r->result = env.Error(rc, "begin a nested write transaction");
      r->step = WriteStep::kDone;
      continue;
    }
    TxnGuard child_guard(child);
    WriteTxn w{env, child};
    try {
      r->result = r->run(r->body, w);
    } catch (...) {
      r->thrown = std::current_exception();  // the child is aborted
      continue;
    }
    r->seen_map = MapSizeOf(env);
    r->step = WriteStep::kDone;
    if (w.map_full) {
      r->step = WriteStep::kGrow;  // the child is aborted; it runs again alone
      continue;
    }
    if (!r->result.ok() && !w.commit_on_error) continue;  // the child is aborted
    const int rc = child_guard.Commit();
    if (rc == MDB_MAP_FULL) {
      r->step = WriteStep::kGrow;
      continue;
    }
    if (rc != 0) {
      r->result = env.Error(rc, "commit a nested write transaction");
      continue;
    }
    committed.push_back(r);
  }
  if (committed.empty()) return 0;  // the guard aborts the empty parent
  if (const int rc = guard.Commit(); rc != 0) {
    for (LmdbCommitRequest* r : committed) {
      if (rc == MDB_MAP_FULL) {
        r->step = WriteStep::kGrow;
      } else {
        r->result = env.Error(rc, "commit");
      }
    }
    return 0;
  }
  MDB_envinfo info;
  mdb_env_info(env.env, &info);
  const uint64_t high = (info.me_last_pgno + 1) * env.page_bytes;
  if (info.me_mapsize < env.soft_max_bytes && high >= info.me_mapsize / 100 * kGrowAtPercent) {
    for (LmdbCommitRequest* r : committed) r->step = WriteStep::kGrowEarly;
  }
  return committed.size();
}

// WriteOnce, committed together with the writes other threads of this
// process make at the same moment (group commit): the first writer to find
// no group commit running runs one for everything queued, while writes that
// arrive meanwhile queue for the next. Each write returns only once its own
// transaction is committed (or has failed), so an acknowledgement still means
// durable. The caller holds the gate shared, as for WriteOnce.
template <typename Body>
WriteStep WriteGrouped(Env& env, Body& body, absl::Status& result, uint64_t& seen_map) {
  LmdbCommitRequest me;
  me.body = &body;
  me.run = [](void* b, WriteTxn& w) -> absl::Status { return (*static_cast<Body*>(b))(w); };
  std::unique_lock lock(env.commit_mu);
  env.commit_queue.push_back(&me);
  while (!me.done) {
    if (env.committing) {
      me.wake.wait(lock);
      continue;
    }
    env.committing = true;
    const size_t take = std::min(env.commit_queue.size(), kMaxGroupCommit);
    std::vector<LmdbCommitRequest*> batch(env.commit_queue.begin(),
                                          env.commit_queue.begin() + static_cast<long>(take));
    env.commit_queue.erase(env.commit_queue.begin(),
                           env.commit_queue.begin() + static_cast<long>(take));
    env.committing_writes = batch.size();
    lock.unlock();
    // Whatever happens, every request of the batch gets an answer and the
    // next group can start: a failure of the group itself (out of memory
    // before the commit, so nothing was written) goes to each of them.
    std::exception_ptr failure;
    size_t committed = 0;
    try {
      committed = RunGroup(env, batch);
    } catch (...) {
      failure = std::current_exception();
    }
    lock.lock();
    if (committed > 0) {
      ++env.groups_committed;
      env.writes_committed += committed;
    }
    env.committing_writes = 0;
    env.committing = false;
    // Only the threads with something to do wake: those whose writes are
    // done, and the first one still queued, which leads the next group.
    for (LmdbCommitRequest* r : batch) {
      if (failure != nullptr && r->thrown == nullptr) r->thrown = failure;
      r->done = true;
      if (r != &me) r->wake.notify_one();
    }
    if (!env.commit_queue.empty()) env.commit_queue.front()->wake.notify_one();
  }
  lock.unlock();
  if (me.thrown != nullptr) std::rethrow_exception(me.thrown);
  result = std::move(me.result);
  seen_map = me.seen_map;
  return me.step;
}

// Runs `body(WriteTxn&)` in a write transaction and commits it when the body
// succeeds (or sets commit_on_error). When the map fills up, grows it and
// runs the body again on a fresh transaction: a body must set all of its
// results each time it runs. After a commit that left the map nearly full,
// grows it before returning. A delete that finds the map at its soft maximum
// and full runs once more with the map opened up to the hard maximum, with
// the gate held exclusively so that nothing else of this process can use the
// reserve meanwhile; the map goes back down afterwards.
template <typename Body>
absl::Status Write(Env& env, WriteKind kind, Body&& body) {
  bool tried_reserve = false;
  for (int round = 0; round < kMaxWriteRounds; ++round) {
    absl::Status result;
    uint64_t seen_map = 0;
    WriteStep step = WriteStep::kDone;
    {
      std::shared_lock gate(env.gate);
      step = env.options.group_commit ? WriteGrouped(env, body, result, seen_map)
                                      : WriteOnce(env, body, result, seen_map);
    }
    switch (step) {
      case WriteStep::kDone:
        return result;
      case WriteStep::kGrowEarly:
        Grow(env, seen_map);  // best effort: the write is done either way
        return result;
      case WriteStep::kAdopt:
        XG2G_RETURN_IF_ERROR(AdoptMapSize(env));
        continue;
      case WriteStep::kGrow:
        if (Grow(env, seen_map)) continue;
        break;
    }
    // At the soft maximum and full.
    if (kind == WriteKind::kFrees && !tried_reserve) {
      tried_reserve = true;
      std::unique_lock gate(env.gate);
      int rc = SetMapSize(env, env.options.max_map_bytes);
      if (rc != 0) return env.Error(rc, "open the map's reserve");
      step = WriteOnce(env, body, result, seen_map);
      // Back down (LMDB keeps whatever the data now occupies).
      rc = SetMapSize(env, env.soft_max_bytes);
      if (rc != 0 && result.ok() && step != WriteStep::kGrow) {
        result = env.Error(rc, "close the map's reserve");
      }
      if (step == WriteStep::kDone || step == WriteStep::kGrowEarly) return result;
      if (step == WriteStep::kAdopt) {
        gate.unlock();
        XG2G_RETURN_IF_ERROR(AdoptMapSize(env));
        continue;
      }
    }
    uint64_t used = 0;
    const absl::Status measured = Read(env, [&](MDB_txn* txn) {
      used = UsedPages(env, txn) * env.page_bytes;
      return absl::OkStatus();
    });
    if (!measured.ok()) used = env.options.max_map_bytes;
    return StoreFull(env, used);
  }
  return InternalError(fmt::format(
      "lmdb store '{}': a write did not settle after {} map resizes", env.path, kMaxWriteRounds));
}

// --------------------------------------------------------------- opening

absl::Status MakeDirectories(const std::string& dir) {
  // Every missing component is created 0700: the store holds who watches what.
  for (size_t end = 1; end <= dir.size(); ++end) {
    if (end != dir.size() && dir[end] != '/') continue;
    const std::string prefix = dir.substr(0, end);
    if (prefix.empty() || prefix.back() == '/') continue;
    if (mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      const int error = errno;
      return MakeError(error == ENOSPC ? ErrorCode::kStoreFull : ErrorCode::kIo,
                       fmt::format("lmdb store: cannot create directory '{}': {}", prefix,
                                   ErrnoText(error)));
    }
  }
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) {
    return MakeError(ErrorCode::kIo, fmt::format("lmdb store: cannot open directory '{}': {}",
                                                 dir, ErrnoText(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return MakeError(ErrorCode::kIo,
                     fmt::format("lmdb store: '{}' exists and is not a directory", dir));
  }
  return absl::OkStatus();
}

// Opens the named databases, creating them and the format record in a new
// store, and refuses a store of a newer format. One write transaction: a
// refused store is left untouched.
absl::Status InitDatabases(Env& env) {
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env.env, nullptr, 0, &txn); rc != 0) {
    return env.Error(rc, "begin the opening transaction");
  }
  TxnGuard guard(txn);
  MDB_dbi meta = 0;
  int rc = mdb_dbi_open(txn, kMetaDb, 0, &meta);
  bool fresh = false;
  if (rc == MDB_NOTFOUND) {
    MDB_dbi main_db = 0;
    MDB_stat stat;
    if (rc = mdb_dbi_open(txn, nullptr, 0, &main_db); rc != 0) {
      return env.Error(rc, "open the main database");
    }
    if (rc = mdb_stat(txn, main_db, &stat); rc != 0) return env.Error(rc, "read the main database");
    if (stat.ms_entries != 0) {
      return InvalidError(fmt::format(
          "lmdb store '{}': the directory holds an LMDB environment that is not an xg2g store "
          "(no '{}' database)",
          env.path, kMetaDb));
    }
    fresh = true;
    if (rc = mdb_dbi_open(txn, kMetaDb, MDB_CREATE, &meta); rc != 0) {
      return env.Error(rc, "create the meta database");
    }
    const std::string format = fmt::format("{{\"format\":{}}}", kFormatVersion);
    MDB_val key = ValOf(kFormatKey);
    MDB_val val = ValOf(format);
    if (rc = mdb_put(txn, meta, &key, &val, 0); rc != 0) {
      return env.Error(rc, "write the format record");
    }
  } else if (rc != 0) {
    return env.Error(rc, "open the meta database");
  } else {
    MDB_val val;
    XG2G_ASSIGN_OR_RETURN(const bool found,
                          Get(env, txn, meta, ValOf(kFormatKey), val, "the format record"));
    if (!found) {
      return CorruptError(fmt::format(
          "lmdb store '{}': meta record 'format' is missing: not a store this library wrote",
          env.path));
    }
    absl::StatusOr<int64_t> format = DecodeFormat(ViewOf(val));
    if (!format.ok()) {
      return CorruptError(
          fmt::format("lmdb store '{}': {}", env.path, FromAbsl(format.status().message())));
    }
    if (*format > kFormatVersion) {
      return MakeError(
          ErrorCode::kVersion,
          fmt::format("lmdb store '{}' was written by a newer version of libxg2g (store format "
                      "{}; this library reads formats up to {}): open it with that version or "
                      "a later one; nothing was changed",
                      env.path, *format, kFormatVersion));
    }
  }
  env.meta = meta;
  const std::pair<const char*, MDB_dbi*> tables[] = {
      {kSessionsDb, &env.sessions}, {kIdempotencyDb, &env.idempotency}, {kLeasesDb, &env.leases}};
  for (const auto& [name, dbi] : tables) {
    if (rc = mdb_dbi_open(txn, name, MDB_CREATE, dbi); rc != 0) {
      return env.Error(rc, fmt::format("open the '{}' database", name));
    }
  }
  if (rc = guard.Commit(); rc != 0) {
    return env.Error(rc, fresh ? "create the store" : "commit the opening transaction");
  }
  return absl::OkStatus();
}

// The map size writes grow to: the maximum less a reserve for deletes of
// 1/32 of it, at least 32 pages and at most 16 MiB.
uint64_t SoftMax(uint64_t max_map_bytes, uint64_t page_bytes) {
  const uint64_t reserve =
      std::clamp<uint64_t>(max_map_bytes / 32, 32 * page_bytes, uint64_t{16} << 20);
  return RoundUp(max_map_bytes - std::min(reserve, max_map_bytes / 2), page_bytes);
}

absl::StatusOr<Env*> OpenEnv(const std::string& path, dev_t dev, ino_t ino,
                             const LmdbOptions& options) {
  auto env = std::make_unique<Env>();
  env->path = path;
  env->dev = dev;
  env->ino = ino;
  env->pid = getpid();
  env->options = options;
  if (int rc = mdb_env_create(&env->env); rc != 0) {
    env->env = nullptr;
    return LmdbError(path, rc, "create the environment");
  }
  RegisterLive(env.get());
  // From here on `env` owns the handle; CloseEnv releases it on every failure.
  const auto fail = [&](absl::Status status) {
    CloseEnv(env.release());
    return status;
  };
  const long page = sysconf(_SC_PAGESIZE);
  const uint64_t os_page = page > 0 ? static_cast<uint64_t>(page) : 4096;
  env->options.max_map_bytes = RoundUp(options.max_map_bytes, os_page);
  env->soft_max_bytes = SoftMax(env->options.max_map_bytes, os_page);
  env->options.initial_map_bytes =
      std::min(env->soft_max_bytes, RoundUp(options.initial_map_bytes, os_page));
  int rc = mdb_env_set_maxdbs(env->env, 8);
  if (rc == 0) rc = mdb_env_set_maxreaders(env->env, kMaxReaders);
  if (rc == 0) rc = mdb_env_set_mapsize(env->env, env->options.initial_map_bytes);
  if (rc != 0) return fail(env->Error(rc, "configure the environment"));

  unsigned flags = MDB_NOTLS;
  if (options.sync == LmdbSync::kNoMetaSync) flags |= MDB_NOMETASYNC;
  if (options.sync == LmdbSync::kNoSync) flags |= MDB_NOSYNC;
  rc = mdb_env_open(env->env, path.c_str(), flags, 0600);
  if (rc == MDB_INVALID) {
    return fail(CorruptError(fmt::format(
        "lmdb store '{}': data.mdb is not an LMDB database (or is damaged)", path)));
  }
  if (rc == MDB_VERSION_MISMATCH) {
    return fail(MakeError(ErrorCode::kVersion,
                          fmt::format("lmdb store '{}' was made by an incompatible LMDB "
                                      "version: {}",
                                      path, mdb_strerror(rc))));
  }
  if (rc != 0) return fail(env->Error(rc, "open the environment"));

  // Reader slots left behind by processes that died are freed now, or they
  // would pin old pages (and count against the reader table) for ever.
  int dead = 0;
  if (rc = mdb_reader_check(env->env, &dead); rc != 0) {
    return fail(env->Error(rc, "clear the reader slots of dead processes"));
  }

  MDB_stat stat;
  if (rc = mdb_env_stat(env->env, &stat); rc != 0) return fail(env->Error(rc, "read the page size"));
  env->page_bytes = stat.ms_psize;
  if (mdb_env_get_maxkeysize(env->env) < static_cast<int>(kHashedKeySize)) {
    return fail(InternalError(fmt::format("lmdb store '{}': LMDB's key limit of {} bytes is under "
                                          "the {} this store needs",
                                          path, mdb_env_get_maxkeysize(env->env),
                                          kHashedKeySize)));
  }
  env->soft_max_bytes = SoftMax(env->options.max_map_bytes, env->page_bytes);
  if (absl::Status status = InitDatabases(*env); !status.ok()) return fail(status);
  return env.release();
}

bool SameOptions(const LmdbOptions& open, const LmdbOptions& asked, uint64_t page) {
  return open.sync == asked.sync && open.max_map_bytes == RoundUp(asked.max_map_bytes, page) &&
         open.group_commit == asked.group_commit;
}

std::string_view SyncName(LmdbSync sync) {
  switch (sync) {
    case LmdbSync::kDurable: return "durable";
    case LmdbSync::kNoMetaSync: return "nometasync";
    case LmdbSync::kNoSync: return "nosync";
  }
  return "?";
}

}  // namespace

// ---------------------------------------------------------- session cache

namespace {

// Converts to anything: counts the members of an aggregate (below).
struct AnyMember {
  template <typename T>
  operator T() const;  // NOLINT(google-explicit-constructor): converting implicitly is its purpose
};

// True when T{v1, ..., vN} compiles with N values of any type.
template <typename T, size_t... I>
constexpr bool InitializableFrom(std::index_sequence<I...> /*indices*/) {
  return requires { T{(static_cast<void>(I), AnyMember{})...}; };
}

// True when the aggregate T has exactly N members.
template <typename T, size_t... I>
constexpr bool MemberCount(std::index_sequence<I...> n) {
  return InitializableFrom<T>(n) &&
         !InitializableFrom<T>(std::make_index_sequence<sizeof...(I) + 1>{});
}

// A cached session in one block of memory: the stored bytes, then the fields
// of the record decoded from them. A hit reads one run of memory (which it
// has asked the processor to fetch ahead) and builds the caller's copy with
// one allocation per string too long to sit inside it; an eviction frees one
// block. Immutable once made; shared by the cache and the readers using it.
class CachedSession {
 public:
  // Null when a size does not fit the block's counts (never in practice).
  // No snapshot: the bytes were not read in a read transaction.
  static constexpr uint64_t kNoSnapshot = ~uint64_t{0};

  // `snapshot`: the read transaction's id (mdb_txn_id) the bytes were read
  // in, or kNoSnapshot.
  static std::shared_ptr<const CachedSession> Make(std::string_view bytes,
                                                   const SessionRecord& record,
                                                   uint64_t snapshot) {
    // Every field of SessionRecord is stored below: one added there must be
    // added here too, or a cached record would come back without it.
    static_assert(MemberCount<SessionRecord>(std::make_index_sequence<15>{}),
                  "SessionRecord's fields changed: store them in CachedSession too");
    static_assert(MemberCount<Profile>(std::make_index_sequence<3>{}),
                  "Profile's fields changed: store them in CachedSession too");

    const std::string* const texts[kTexts] = {&record.session_id,     &record.service_ref,
                                              &record.profile.name,   &record.reason_detail,
                                              &record.correlation_id, &record.principal};
    size_t payload = bytes.size();
    for (const std::string* text : texts) payload += text->size();
    for (const auto& [key, value] : record.context_data) {
      payload += 2 * sizeof(uint32_t) + key.size() + value.size();
    }
    if (payload > std::numeric_limits<uint32_t>::max()) return nullptr;

    const size_t words = (sizeof(CachedSession) + payload + 7) / 8;
    std::shared_ptr<uint64_t[]> block = std::make_shared_for_overwrite<uint64_t[]>(words);
    auto* entry = new (block.get()) CachedSession();
    entry->payload_size_ = static_cast<uint32_t>(payload);
    entry->bytes_size_ = static_cast<uint32_t>(bytes.size());
    entry->context_entries_ = static_cast<uint32_t>(record.context_data.size());
    entry->numbers_[0] = record.profile.dvr_window_sec;
    entry->numbers_[1] = record.created_at_unix;
    entry->numbers_[2] = record.updated_at_unix;
    entry->numbers_[3] = record.expires_at_unix;
    entry->numbers_[4] = record.revision;
    entry->numbers_[5] = record.deadline_unix_ms;
    entry->state_ = record.state;
    entry->pipeline_state_ = record.pipeline_state;
    entry->reason_ = record.reason;
    entry->llhls_ = record.profile.llhls;
    entry->verified_snapshot_.store(snapshot, std::memory_order_relaxed);
    char* out = entry->payload();
    const auto put = [&out](std::string_view text) {
      if (!text.empty()) std::memcpy(out, text.data(), text.size());
      out += text.size();
    };
    put(bytes);
    for (size_t i = 0; i < kTexts; ++i) {
      entry->text_sizes_[i] = static_cast<uint32_t>(texts[i]->size());
      put(*texts[i]);
    }
    for (const auto& [key, value] : record.context_data) {
      const uint32_t sizes[2] = {static_cast<uint32_t>(key.size()),
                                 static_cast<uint32_t>(value.size())};
      std::memcpy(out, sizes, sizeof(sizes));
      out += sizeof(sizes);
      put(key);
      put(value);
    }
    return std::shared_ptr<const CachedSession>(std::move(block), entry);
  }

  std::string_view bytes() const { return {payload(), bytes_size_}; }
  std::string_view id() const { return {payload() + bytes_size_, text_sizes_[0]}; }

  // Whether the entry's bytes were found to be the stored ones in a read
  // transaction of snapshot `snapshot`. LMDB numbers snapshots by the last
  // committed write (in every process on the environment), so another read
  // at the same snapshot finds the same bytes: no need to read and compare
  // them again.
  bool VerifiedAt(uint64_t snapshot) const {
    return snapshot != kNoSnapshot &&
           verified_snapshot_.load(std::memory_order_relaxed) == snapshot;
  }
  // Records that the bytes matched at `snapshot`. Any value held is a
  // snapshot at which they matched, so the order of concurrent calls does
  // not matter; an unchanged value is not written again (the entry's cache
  // line stays shared between reading threads).
  void MarkVerified(uint64_t snapshot) const {
    if (verified_snapshot_.load(std::memory_order_relaxed) != snapshot) {
      verified_snapshot_.store(snapshot, std::memory_order_relaxed);
    }
  }

  // The bytes from `this` that a hit reads.
  size_t size() const { return sizeof(CachedSession) + payload_size_; }

  // The record as it was stored. Every field is built directly from the
  // block (no default value made first and then replaced).
  SessionRecord Record() const {
    const char* in = payload() + bytes_size_;
    const auto text = [&in](uint32_t size) {
      std::string out(in, size);
      in += size;
      return out;
    };
    // In the order of the members: their initializers run in this order.
    return SessionRecord{
        .session_id = text(text_sizes_[0]),
        .service_ref = text(text_sizes_[1]),
        .profile = Profile{.name = text(text_sizes_[2]),
                           .llhls = llhls_,
                           .dvr_window_sec = numbers_[0]},
        .state = state_,
        .pipeline_state = pipeline_state_,
        .reason = reason_,
        .reason_detail = text(text_sizes_[3]),
        .correlation_id = text(text_sizes_[4]),
        .created_at_unix = numbers_[1],
        .updated_at_unix = numbers_[2],
        .expires_at_unix = numbers_[3],
        .context_data = Context(in + text_sizes_[5]),
        .principal = text(text_sizes_[5]),
        .revision = numbers_[4],
        .deadline_unix_ms = numbers_[5],
    };
  }

 private:
  // session id, service ref, profile name, reason detail, correlation id,
  // principal
  static constexpr size_t kTexts = 6;

  CachedSession() = default;

  char* payload() { return reinterpret_cast<char*>(this + 1); }
  const char* payload() const { return reinterpret_cast<const char*>(this + 1); }

  // The context entries stored from `in` on.
  std::map<std::string, std::string> Context(const char* in) const {
    std::map<std::string, std::string> context;
    for (uint32_t i = 0; i < context_entries_; ++i) {
      uint32_t sizes[2];
      std::memcpy(sizes, in, sizeof(sizes));
      in += sizeof(sizes);
      // Stored in the map's order: each goes in at the end.
      context.emplace_hint(context.end(), std::piecewise_construct,
                           std::forward_as_tuple(in, sizes[0]),
                           std::forward_as_tuple(in + sizes[0], sizes[1]));
      in += sizes[0] + sizes[1];
    }
    return context;
  }

  uint32_t payload_size_ = 0;
  uint32_t bytes_size_ = 0;
  uint32_t context_entries_ = 0;
  uint32_t text_sizes_[kTexts] = {};
  int64_t numbers_[6] = {};
  SessionState state_ = SessionState::kNew;
  PipelineState pipeline_state_ = PipelineState::kIdle;
  Reason reason_ = Reason::kNone;
  bool llhls_ = false;
  mutable std::atomic<uint64_t> verified_snapshot_{kNoSnapshot};
  // Followed by the payload: the bytes, the texts, then for each context
  // entry its two sizes, key and value.
};
static_assert(std::is_trivially_destructible_v<CachedSession>);
static_assert(alignof(CachedSession) <= alignof(uint64_t));

}  // namespace

// Decoded session records by id, each beside the exact bytes it was decoded
// from: a memo of DecodeStoredSession. Lookup finds what is held for an id
// and Hit accepts it only for the very bytes just read under that id, so an
// entry can never stand in for a record that has changed since, whoever
// changed it. Only successfully decoded records read in read transactions
// (committed data) go in.
//
// Thread-safe. Shards chosen by a hash of the id, each behind its own mutex,
// which is held for a lookup, an insert or an erase only: records are decoded,
// compared and copied outside it (entries are immutable and shared).
// Bounded: a shard holds at most its share of the capacity and evicts with the
// clock algorithm (an entry read again since the hand last passed it gets
// another round); Admit keeps records read only once from pushing out others.
// Scans look records up but never add any.
class LmdbStore::SessionCache {
 private:
  struct Shard;

 public:
  using Entry = CachedSession;

  explicit SessionCache(size_t capacity)
      : capacity_(capacity),
        shard_count_(std::min(capacity, kMaxShards)),
        shards_(new Shard[shard_count_]) {
    for (size_t i = 0; i < shard_count_; ++i) {
      Shard& shard = shards_[i];
      shard.capacity = capacity / shard_count_ + (i < capacity % shard_count_ ? 1 : 0);
      // At most half full, so that probe runs stay short.
      shard.table.resize(std::bit_ceil(2 * shard.capacity));
      shard.doorkeeper.resize(std::bit_ceil(shard.capacity));
    }
  }

  // What Lookup found: the entry held for an id (null when none) and where
  // to count the outcome.
  struct Probe {
    std::shared_ptr<const Entry> entry;
    Shard* shard = nullptr;
    std::string_view id;  // the id looked up; the caller keeps it alive
  };

  // The entry held for `id`, whatever bytes it was decoded from: Hit says
  // whether they are the bytes just read. Starts fetching the entry into the
  // processor's cache, so that it arrives while the caller reads the record
  // from LMDB.
  Probe Lookup(std::string_view id) {
    const uint64_t hash = Hash(id);
    Shard& shard = ShardOf(hash);
    Probe probe{nullptr, &shard, id};
    std::lock_guard lock(shard.mu);
    ++shard.lookups;
    const size_t at = shard.Find(hash);
    if (at == kNone) return probe;
    Slot& slot = shard.table[at];
    // Before anything touches the entry (the copy of the pointer below
    // writes to its count, which sits just in front of it): its memory is
    // likely not in the processor's cache yet. A hint only.
    // Addresses as integers: the first line lies before the object, where
    // pointer arithmetic would not be allowed; a prefetch may name any one.
    const auto begin = reinterpret_cast<uintptr_t>(slot.entry.get());
    for (uintptr_t line = begin - 16; line < begin + slot.size; line += 64) {
      __builtin_prefetch(reinterpret_cast<const void*>(line));  // NOLINT(performance-no-int-to-ptr)
    }
    slot.referenced = true;
    probe.entry = slot.entry;
    return probe;
  }

  // True when the probe's entry is the one for its id, decoded from exactly
  // `bytes` (committed data just read under that id): then its record is the
  // one stored. A false one counts as a miss.
  static bool Hit(const Probe& probe, std::string_view bytes) {
    if (probe.entry != nullptr && probe.entry->bytes() == bytes && probe.entry->id() == probe.id) {
      return true;
    }
    probe.shard->misses.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

  // Whether a record just decoded for `id` should be cached. Yes while there
  // is room, and for an id already cached (its record changed). When a new
  // entry would push another out, only for an id that missed before, not long
  // ago: a doorkeeper of one recent hash per place, so that records read once
  // (more distinct records read at random than the cache holds) do not each
  // push out another only to be pushed out themselves, at a cost every read
  // pays and no read gains from.
  bool Admit(std::string_view id) {
    const uint64_t hash = Hash(id);
    Shard& shard = ShardOf(hash);
    std::lock_guard lock(shard.mu);
    if (shard.entries < shard.capacity || shard.Find(hash) != kNone) return true;
    uint64_t& seen = shard.doorkeeper[hash & (shard.doorkeeper.size() - 1)];
    if (seen == hash) return true;
    seen = hash;
    return false;
  }

  // Adds the entry for entry->id(), in place of what was held for that id
  // (or for another id of the same hash), pushing out another entry when the
  // shard is full.
  void Insert(std::shared_ptr<const Entry> entry) {
    const uint64_t hash = Hash(entry->id());
    Shard& shard = ShardOf(hash);
    std::shared_ptr<const Entry> dropped;  // released after the lock
    std::lock_guard lock(shard.mu);
    const auto size = static_cast<uint32_t>(entry->size());
    if (const size_t at = shard.Find(hash); at != kNone) {
      Slot& slot = shard.table[at];
      slot.size = size;
      dropped = std::exchange(slot.entry, std::move(entry));
      return;
    }
    if (shard.entries == shard.capacity) dropped = shard.Evict();
    shard.Place(Slot{std::move(entry), hash, size, false});
  }

  void Erase(std::string_view id) {
    const uint64_t hash = Hash(id);
    Shard& shard = ShardOf(hash);
    std::shared_ptr<const Entry> dropped;  // released after the lock
    std::lock_guard lock(shard.mu);
    const size_t at = shard.Find(hash);
    if (at == kNone || shard.table[at].entry->id() != id) return;
    dropped = shard.Remove(at);
  }

  LmdbCacheStats Stats() const {
    LmdbCacheStats stats;
    stats.capacity = capacity_;
    for (size_t i = 0; i < shard_count_; ++i) {
      const Shard& shard = shards_[i];
      std::lock_guard lock(shard.mu);
      const uint64_t misses = shard.misses.load(std::memory_order_relaxed);
      stats.entries += shard.entries;
      stats.misses += misses;
      stats.hits += shard.lookups - std::min(shard.lookups, misses);
    }
    return stats;
  }

 private:
  static constexpr size_t kMaxShards = 16;
  static constexpr size_t kNone = ~size_t{0};

  struct Slot {
    std::shared_ptr<const Entry> entry;  // null: the slot is empty
    uint64_t hash = 0;                   // Hash(entry->id())
    uint32_t size = 0;                   // entry->size()
    bool referenced = false;             // read since the clock's hand last passed
  };

  // An open-addressed table keyed by the id's hash (linear probing, at most
  // half full, deletion by shifting back, so no tombstones), on a cache line
  // of its own: two threads on two shards never share one. A lookup reads
  // the slot holding the entry's pointer, hash and size, usually one cache
  // line. Two ids of one hash share a slot (the later one replaces the
  // other); the entry's own id is compared before it is used.
  struct alignas(64) Shard {
    mutable std::mutex mu;
    size_t capacity = 0;               // set once, before any use
    std::vector<Slot> table;           // size fixed at construction; guarded by mu
    size_t entries = 0;                // guarded by mu
    size_t hand = 0;                   // the clock's, an index in table; guarded by mu
    std::vector<uint64_t> doorkeeper;  // see Admit; guarded by mu
    uint64_t lookups = 0;              // guarded by mu
    std::atomic<uint64_t> misses{0};   // lookups whose entry did not match, or none

    size_t Home(uint64_t hash) const {
      // Fibonacci hashing: the high bits of the product, well mixed whatever
      // the low bits that chose the shard.
      return static_cast<size_t>((hash * 0x9E3779B97F4A7C15ull) >>
                                 (64 - std::countr_zero(table.size()))) &
             (table.size() - 1);
    }

    size_t Find(uint64_t hash) const {
      for (size_t at = Home(hash);; at = (at + 1) & (table.size() - 1)) {
        if (table[at].entry == nullptr) return kNone;
        if (table[at].hash == hash) return at;
      }
    }

    void Place(Slot slot) {
      size_t at = Home(slot.hash);
      while (table[at].entry != nullptr) at = (at + 1) & (table.size() - 1);
      table[at] = std::move(slot);
      ++entries;
    }

    // Empties slot `at` and moves later slots of its probe run back into
    // the gap, so that every entry stays reachable from its home slot.
    std::shared_ptr<const Entry> Remove(size_t at) {
      const size_t mask = table.size() - 1;
      std::shared_ptr<const Entry> removed = std::move(table[at].entry);
      table[at] = Slot{};
      --entries;
      for (size_t next = (at + 1) & mask; table[next].entry != nullptr;
           next = (next + 1) & mask) {
        const size_t home = Home(table[next].hash);
        // Moves back when its home is not in the cyclic range (at, next].
        if (((next - home) & mask) >= ((next - at) & mask)) {
          table[at] = std::move(table[next]);
          table[next] = Slot{};
          at = next;
        }
      }
      return removed;
    }

    // Pushes out one entry by the clock algorithm: the hand passes over
    // entries read since it last came by (taking their mark) and stops at
    // the first that was not. At most two rounds.
    std::shared_ptr<const Entry> Evict() {
      for (;; hand = (hand + 1) & (table.size() - 1)) {
        Slot& slot = table[hand];
        if (slot.entry == nullptr) continue;
        if (slot.referenced) {
          slot.referenced = false;
          continue;
        }
        return Remove(hand);
      }
    }
  };

  static uint64_t Hash(std::string_view id) { return std::hash<std::string_view>{}(id); }

  Shard& ShardOf(uint64_t hash) { return shards_[hash % shard_count_]; }

  const size_t capacity_;
  const size_t shard_count_;
  const std::unique_ptr<Shard[]> shards_;
};

// ------------------------------------------------------------ LmdbStore

absl::StatusOr<std::unique_ptr<LmdbStore>> LmdbStore::Open(std::string_view dir,
                                                           const LmdbOptions& options,
                                                           Clock* clock) {
  if (dir.empty()) return InvalidError("lmdb store: the directory is empty");
  if (dir.find('\0') != std::string_view::npos) {
    return InvalidError("lmdb store: the directory name contains a NUL byte");
  }
  if (options.max_map_bytes < kLmdbMinMapBytes) {
    return InvalidError(fmt::format("lmdb store: max map size {} is under the minimum of {}",
                                    Bytes(options.max_map_bytes), Bytes(kLmdbMinMapBytes)));
  }
  if (options.initial_map_bytes == 0) {
    return InvalidError("lmdb store: the initial map size is 0");
  }
  if (options.cache_entries > kLmdbMaxCacheEntries) {
    return InvalidError(fmt::format("lmdb store: cache of {} entries is above the maximum of {}",
                                    options.cache_entries, kLmdbMaxCacheEntries));
  }
  const std::string requested(dir);
  XG2G_RETURN_IF_ERROR(MakeDirectories(requested));
  struct stat st {};
  if (stat(requested.c_str(), &st) != 0) {
    return MakeError(ErrorCode::kIo, fmt::format("lmdb store: cannot open directory '{}': {}",
                                                 requested, ErrnoText(errno)));
  }
  char* resolved = realpath(requested.c_str(), nullptr);
  const std::string path = resolved != nullptr ? std::string(resolved) : requested;
  free(resolved);

  Registry& registry = GetRegistry();
  std::lock_guard lock(registry.mu);
  const auto id = std::make_pair(st.st_dev, st.st_ino);
  auto it = registry.envs.find(id);
  if (it != registry.envs.end() && it->second->pid != getpid()) {
    // Inherited across fork(): the parent's, not ours. Never touched again
    // (closing it here would release the parent's reader slots).
    registry.envs.erase(it);
    it = registry.envs.end();
  }
  Env* env = nullptr;
  if (it != registry.envs.end()) {
    env = it->second;
    const long page = sysconf(_SC_PAGESIZE);
    if (!SameOptions(env->options, options, page > 0 ? static_cast<uint64_t>(page) : 4096)) {
      return InvalidError(fmt::format(
          "lmdb store '{}' is already open in this process with sync={}, a maximum map size "
          "of {} and group_commit={}; open it with the same options (or close it first)",
          path, SyncName(env->options.sync), Bytes(env->options.max_map_bytes),
          env->options.group_commit ? "on" : "off"));
    }
  } else {
    XG2G_ASSIGN_OR_RETURN(env, OpenEnv(path, st.st_dev, st.st_ino, options));
    registry.envs.emplace(id, env);
  }
  ++env->refs;
  return std::unique_ptr<LmdbStore>(new LmdbStore(env, clock, options.cache_entries));
}

LmdbStore::LmdbStore(Env* env, Clock* clock, size_t cache_entries)
    : env_(env),
      clock_(clock != nullptr ? clock : Clock::Real()),
      cache_(cache_entries > 0 ? std::make_unique<SessionCache>(cache_entries) : nullptr) {}

LmdbStore::~LmdbStore() {
  Registry& registry = GetRegistry();
  std::lock_guard lock(registry.mu);
  if (env_->pid != getpid()) return;  // a forked child's copy of its parent's store: leave it
  if (--env_->refs > 0) return;
  auto it = registry.envs.find(std::make_pair(env_->dev, env_->ino));
  if (it != registry.envs.end() && it->second == env_) registry.envs.erase(it);
  CloseEnv(env_);
}

const std::string& LmdbStore::path() const { return env_->path; }

int64_t LmdbStore::NowMs() const {
  const int64_t now = clock_->NowUnixMs();
  int64_t last = last_now_ms_.load(std::memory_order_relaxed);
  while (now > last &&
         !last_now_ms_.compare_exchange_weak(last, now, std::memory_order_relaxed)) {
  }
  return std::max(now, last);
}

int64_t LmdbStore::DeadlineAfter(int64_t ttl_ms) const {
  const int64_t now = NowMs();
  if (ttl_ms > std::numeric_limits<int64_t>::max() - now) {
    return std::numeric_limits<int64_t>::max();
  }
  return now + ttl_ms;
}

// ---------------------------------------------------------------- sessions

absl::StatusOr<SessionRecord> LmdbStore::DecodeAndRemember(std::string_view id,
                                                           std::string_view bytes,
                                                           bool remember, uint64_t snapshot) {
  absl::StatusOr<SessionRecord> record = DecodeStoredSession(id, bytes);
  if (cache_ == nullptr) return record;
  if (!record.ok()) {
    cache_->Erase(id);  // whatever it held is no longer what is stored
  } else if (remember && cache_->Admit(id)) {
    if (std::shared_ptr<const CachedSession> entry = CachedSession::Make(bytes, *record, snapshot)) {
      cache_->Insert(std::move(entry));
    }
  }
  return record;
}

absl::StatusOr<SessionRecord> LmdbStore::DecodeCached(std::string_view id, std::string_view bytes,
                                                      bool remember) {
  if (cache_ != nullptr) {
    const SessionCache::Probe probe = cache_->Lookup(id);
    if (SessionCache::Hit(probe, bytes)) return probe.entry->Record();
  }
  return DecodeAndRemember(id, bytes, remember, CachedSession::kNoSnapshot);
}

LmdbCommitStats LmdbStore::CommitStats() const {
  Env& env = *env_;
  std::lock_guard lock(env.commit_mu);
  return LmdbCommitStats{env.groups_committed, env.writes_committed, env.committing_writes,
                         env.commit_queue.size()};
}

LmdbCacheStats LmdbStore::CacheStats() const {
  if (cache_ == nullptr) return LmdbCacheStats{};
  return cache_->Stats();
}

absl::Status LmdbStore::PutSession(const SessionRecord& record) {
  XG2G_RETURN_IF_ERROR(ValidateSessionId(record.session_id));
  Env& env = *env_;
  return Write(env, WriteKind::kAdds, [&](WriteTxn& w) -> absl::Status {
    XG2G_ASSIGN_OR_RETURN(const uint64_t revision, NextCounter(w, kRevisionKey));
    SessionRecord stored = record;
    stored.revision = static_cast<int64_t>(revision);
    return Put(w, env.sessions, ValOf(record.session_id), EncodeSession(stored),
               fmt::format("session '{}'", record.session_id));
  });
}

absl::StatusOr<SessionRecord> LmdbStore::GetSession(std::string_view id) {
  XG2G_RETURN_IF_ERROR(ValidateSessionId(id));
  Env& env = *env_;
  // Looked up first: the entry's bytes travel to the processor's cache while
  // LMDB reads the record.
  const SessionCache::Probe probe =
      cache_ != nullptr ? cache_->Lookup(id) : SessionCache::Probe{};
  bool hit = false;
  SessionRecord record;
  XG2G_RETURN_IF_ERROR(Read(env, [&](MDB_txn* txn) -> absl::Status {
    const uint64_t snapshot = mdb_txn_id(txn);
    // Nothing committed since the entry last matched: it still does.
    if (probe.entry != nullptr && probe.entry->VerifiedAt(snapshot) && probe.entry->id() == id) {
      hit = true;
      return absl::OkStatus();
    }
    MDB_val val;
    XG2G_ASSIGN_OR_RETURN(const bool found,
                          Get(env, txn, env.sessions, ValOf(id), val, "a session"));
    if (!found) return SessionNotFound(id);
    if (cache_ != nullptr && SessionCache::Hit(probe, ViewOf(val))) {
      probe.entry->MarkVerified(snapshot);
      hit = true;
      return absl::OkStatus();
    }
    XG2G_ASSIGN_OR_RETURN(record,
                          DecodeAndRemember(id, ViewOf(val), /*remember=*/true, snapshot));
    return absl::OkStatus();
  }));
  if (hit) return probe.entry->Record();  // built with no transaction open
  return record;
}

absl::StatusOr<SessionRecord> LmdbStore::UpdateSession(std::string_view id,
                                                       const Mutator& mutate) {
  XG2G_RETURN_IF_ERROR(ValidateSessionId(id));
  if (!mutate) return InvalidError(fmt::format("session '{}': update without a mutator", id));
  Env& env = *env_;
  for (int attempt = 0; attempt < kMaxUpdateAttempts; ++attempt) {
    UpdateBackOff(attempt);
    // The bytes read: revisions are unique, so the record is unchanged exactly
    // when its bytes are.
    std::string read_bytes;
    SessionRecord copy;
    const SessionCache::Probe probe =
        cache_ != nullptr ? cache_->Lookup(id) : SessionCache::Probe{};
    XG2G_RETURN_IF_ERROR(Read(env, [&](MDB_txn* txn) -> absl::Status {
      MDB_val val;
      XG2G_ASSIGN_OR_RETURN(const bool found,
                            Get(env, txn, env.sessions, ValOf(id), val, "a session"));
      if (!found) return SessionNotFound(id);
      read_bytes.assign(ViewOf(val));
      if (cache_ != nullptr && SessionCache::Hit(probe, read_bytes)) {
        copy = probe.entry->Record();
        return absl::OkStatus();
      }
      XG2G_ASSIGN_OR_RETURN(
          copy, DecodeAndRemember(id, read_bytes, /*remember=*/true, mdb_txn_id(txn)));
      return absl::OkStatus();
    }));
    // Caller code: no transaction open, no lock held.
    XG2G_RETURN_IF_ERROR(mutate(copy));
    if (copy.session_id != id) {
      return InvalidError(fmt::format("session '{}': the mutator changed the session id to {}",
                                      id, Quoted(copy.session_id)));
    }
    bool changed_meanwhile = false;
    XG2G_RETURN_IF_ERROR(Write(env, WriteKind::kAdds, [&](WriteTxn& w) -> absl::Status {
      changed_meanwhile = false;
      MDB_val val;
      XG2G_ASSIGN_OR_RETURN(const bool found,
                            Get(env, w.txn, env.sessions, ValOf(id), val, "a session"));
      if (!found) {
        return NotFoundError(fmt::format("session '{}' was deleted during the update", id));
      }
      if (ViewOf(val) != read_bytes) {
        changed_meanwhile = true;  // lost a race: nothing written, mutate the fresh record
        return absl::OkStatus();
      }
      XG2G_ASSIGN_OR_RETURN(const uint64_t revision, NextCounter(w, kRevisionKey));
      copy.revision = static_cast<int64_t>(revision);
      return Put(w, env.sessions, ValOf(id), EncodeSession(copy),
                 fmt::format("session '{}'", id));
    }));
    if (!changed_meanwhile) return copy;
  }
  return ConflictError(fmt::format(
      "session '{}': the update lost to concurrent writes {} times in a row; nothing written",
      id, kMaxUpdateAttempts));
}

absl::Status LmdbStore::DeleteSession(std::string_view id) {
  XG2G_RETURN_IF_ERROR(ValidateSessionId(id));
  Env& env = *env_;
  absl::Status deleted = Write(env, WriteKind::kFrees, [&](WriteTxn& w) -> absl::Status {
    bool found = false;
    XG2G_RETURN_IF_ERROR(
        Del(w, env.sessions, ValOf(id), fmt::format("session '{}'", id), &found));
    return found ? absl::OkStatus() : SessionNotFound(id);
  });
  // Not needed for correctness (an entry answers only for its own bytes):
  // frees the room now rather than when the clock comes round.
  if (deleted.ok() && cache_ != nullptr) cache_->Erase(id);
  return deleted;
}

absl::Status LmdbStore::ScanSessions(const Visitor& visit) {
  if (!visit) return InvalidError("session scan without a visitor");
  Env& env = *env_;
  std::string after;  // the last id read; empty before the first page
  std::string first_corrupt;
  absl::Status corrupt_status;
  size_t corrupt = 0;
  std::vector<SessionRecord> page;
  for (bool more = true; more;) {
    page.clear();
    XG2G_RETURN_IF_ERROR(Read(env, [&](MDB_txn* txn) -> absl::Status {
      CursorGuard cursor;
      if (int rc = mdb_cursor_open(txn, env.sessions, cursor.out()); rc != 0) {
        return env.Error(rc, "open a session cursor");
      }
      MDB_val key = ValOf(after);
      MDB_val val;
      int rc = after.empty() ? mdb_cursor_get(cursor.get(), &key, &val, MDB_FIRST)
                             : mdb_cursor_get(cursor.get(), &key, &val, MDB_SET_RANGE);
      if (rc == 0 && !after.empty() && ViewOf(key) == after) {
        rc = mdb_cursor_get(cursor.get(), &key, &val, MDB_NEXT);
      }
      while (rc == 0 && page.size() < kScanPage) {
        const std::string_view id = ViewOf(key);
        // Looked up, not remembered: one pass over every record would push
        // out the ones read often.
        absl::StatusOr<SessionRecord> record = DecodeCached(id, ViewOf(val), /*remember=*/false);
        if (record.ok()) {
          page.push_back(*std::move(record));
        } else if (CodeOf(record.status()) == ErrorCode::kCorrupt) {
          if (corrupt++ == 0) {
            first_corrupt.assign(id);
            corrupt_status = record.status();
          }
        } else {
          return record.status();
        }
        after.assign(id);
        rc = mdb_cursor_get(cursor.get(), &key, &val, MDB_NEXT);
      }
      if (rc != 0 && rc != MDB_NOTFOUND) return env.Error(rc, "read the sessions");
      more = rc == 0;
      return absl::OkStatus();
    }));
    // No transaction open: the visitor may call back into the store.
    for (const SessionRecord& record : page) {
      if (!visit(record)) {
        more = false;
        break;
      }
    }
  }
  if (corrupt > 0) {
    // Every record that decodes was visited; say which did not.
    return CorruptError(fmt::format("session scan skipped {} record(s) that do not decode, the "
                                    "first under key '{}': {}",
                                    corrupt, first_corrupt,
                                    FromAbsl(corrupt_status.message())));
  }
  return absl::OkStatus();
}

absl::StatusOr<SessionPage> LmdbStore::ListSessions(size_t offset, size_t limit) {
  if (limit == 0 || limit > kMaxPageLimit) {
    return InvalidError(
        fmt::format("limit must be between 1 and {}, got {}", kMaxPageLimit, limit));
  }
  Env& env = *env_;
  SessionPage page;
  XG2G_RETURN_IF_ERROR(Read(env, [&](MDB_txn* txn) -> absl::Status {
    page.sessions.clear();
    MDB_stat stat;
    if (int rc = mdb_stat(txn, env.sessions, &stat); rc != 0) {
      return env.Error(rc, "count the sessions");
    }
    page.total = stat.ms_entries;
    if (offset >= page.total) return absl::OkStatus();
    page.sessions.reserve(std::min(limit, page.total - offset));
    CursorGuard cursor;
    if (int rc = mdb_cursor_open(txn, env.sessions, cursor.out()); rc != 0) {
      return env.Error(rc, "open a session cursor");
    }
    MDB_val key;
    MDB_val val;
    int rc = mdb_cursor_get(cursor.get(), &key, &val, MDB_FIRST);
    for (size_t skipped = 0; rc == 0 && skipped < offset; ++skipped) {
      rc = mdb_cursor_get(cursor.get(), &key, &val, MDB_NEXT);
    }
    while (rc == 0 && page.sessions.size() < limit) {
      XG2G_ASSIGN_OR_RETURN(SessionRecord record,
                            DecodeCached(ViewOf(key), ViewOf(val), /*remember=*/false));
      page.sessions.push_back(std::move(record));
      rc = mdb_cursor_get(cursor.get(), &key, &val, MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) return env.Error(rc, "read the sessions");
    return absl::OkStatus();
  }));
  return page;
}

// ---------------------------------------------------------- idempotency keys

absl::StatusOr<IdempotencyOutcome> LmdbStore::PutSessionWithIdempotency(
    const SessionRecord& record, std::string_view key, std::string_view fingerprint,
    int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(ValidateIdempotencyKey(key));
  XG2G_RETURN_IF_ERROR(ValidateTtl("idempotency key", key, ttl_ms));
  if (absl::Status valid = ValidateSessionId(record.session_id); !valid.ok()) {
    return InvalidError(
        fmt::format("idempotency key {}: {}", Quoted(key), FromAbsl(valid.message())));
  }
  Env& env = *env_;
  const DbKey db_key(key);
  IdempotencyOutcome outcome;
  bool sweep_due = false;
  XG2G_RETURN_IF_ERROR(Write(env, WriteKind::kAdds, [&](WriteTxn& w) -> absl::Status {
    outcome = IdempotencyOutcome{};
    sweep_due = false;
    const int64_t now = NowMs();
    MDB_val val;
    XG2G_ASSIGN_OR_RETURN(const bool found, Get(env, w.txn, env.idempotency, db_key.val(), val,
                                                "an idempotency key"));
    if (found) {
      XG2G_ASSIGN_OR_RETURN(IdempotencyRecord existing, DecodeIdempotency(key, ViewOf(val)));
      XG2G_RETURN_IF_ERROR(CheckFullKey("idempotency key", key, db_key, existing));
      if (now < existing.entry.expires_at_ms) {
        outcome.existing = std::move(existing.entry);
        return absl::OkStatus();  // nothing written: the commit writes nothing
      }
    }
    const IdempotencyEntry entry{record.session_id, std::string(fingerprint),
                                 DeadlineAfter(ttl_ms)};
    XG2G_ASSIGN_OR_RETURN(const uint64_t revision, NextCounter(w, kRevisionKey));
    SessionRecord stored = record;
    stored.revision = static_cast<int64_t>(revision);
    XG2G_RETURN_IF_ERROR(Put(w, env.sessions, ValOf(record.session_id), EncodeSession(stored),
                             fmt::format("session '{}'", record.session_id)));
    XG2G_RETURN_IF_ERROR(Put(w, env.idempotency, db_key.val(),
                             EncodeIdempotency(entry, db_key, key),
                             fmt::format("idempotency key {}", Quoted(key))));
    outcome.stored = true;
    if (!found) {
      MDB_stat stat;
      sweep_due = mdb_stat(w.txn, env.idempotency, &stat) == 0 &&
                  stat.ms_entries >= env.idempotency_sweep_at.load(std::memory_order_relaxed);
    }
    return absl::OkStatus();
  }));
  if (sweep_due) MaybeSweep(/*idempotency_due=*/true, /*leases_due=*/false);
  return outcome;
}

absl::StatusOr<IdempotencyEntry> LmdbStore::GetIdempotency(std::string_view key) {
  XG2G_RETURN_IF_ERROR(ValidateIdempotencyKey(key));
  Env& env = *env_;
  const DbKey db_key(key);
  IdempotencyEntry entry;
  XG2G_RETURN_IF_ERROR(Read(env, [&](MDB_txn* txn) -> absl::Status {
    MDB_val val;
    XG2G_ASSIGN_OR_RETURN(const bool found, Get(env, txn, env.idempotency, db_key.val(), val,
                                                "an idempotency key"));
    if (!found) return IdempotencyNotFound(key);
    XG2G_ASSIGN_OR_RETURN(IdempotencyRecord record, DecodeIdempotency(key, ViewOf(val)));
    XG2G_RETURN_IF_ERROR(CheckFullKey("idempotency key", key, db_key, record));
    if (NowMs() >= record.entry.expires_at_ms) return IdempotencyNotFound(key);
    entry = std::move(record.entry);
    return absl::OkStatus();
  }));
  return entry;
}

absl::Status LmdbStore::DeleteIdempotency(std::string_view key) {
  XG2G_RETURN_IF_ERROR(ValidateIdempotencyKey(key));
  Env& env = *env_;
  const DbKey db_key(key);
  return Write(env, WriteKind::kFrees, [&](WriteTxn& w) -> absl::Status {
    MDB_val val;
    XG2G_ASSIGN_OR_RETURN(const bool found, Get(env, w.txn, env.idempotency, db_key.val(), val,
                                                "an idempotency key"));
    if (!found) return IdempotencyNotFound(key);
    // A record that does not decode is deleted all the same: that is how an
    // operator clears it.
    absl::StatusOr<IdempotencyRecord> record = DecodeIdempotency(key, ViewOf(val));
    const bool expired = record.ok() && NowMs() >= record->entry.expires_at_ms;
    XG2G_RETURN_IF_ERROR(
        Del(w, env.idempotency, db_key.val(), fmt::format("idempotency key {}", Quoted(key))));
    if (expired) {
      w.commit_on_error = true;  // gone either way: drop the expired entry now
      return IdempotencyNotFound(key);
    }
    return absl::OkStatus();
  });
}

// -------------------------------------------------------------------- leases

absl::StatusOr<LeaseGrant> LmdbStore::AcquireLease(std::string_view key, std::string_view owner,
                                                   int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(ValidateLeaseArgs(key, owner));
  XG2G_RETURN_IF_ERROR(ValidateTtl("lease", key, ttl_ms));
  Env& env = *env_;
  const DbKey db_key(key);
  const auto busy = [&](const LeaseRecord& held, int64_t now) {
    return BusyError(fmt::format("lease {} is held by {} for another {} ms", Quoted(key),
                                 Quoted(held.owner), held.expires_at_ms - now));
  };
  // A busy answer needs no write transaction: the lease was held by another
  // owner in a committed state, which is as good an answer as any.
  XG2G_RETURN_IF_ERROR(Read(env, [&](MDB_txn* txn) -> absl::Status {
    MDB_val val;
    XG2G_ASSIGN_OR_RETURN(const bool found,
                          Get(env, txn, env.leases, db_key.val(), val, "a lease"));
    if (!found) return absl::OkStatus();
    XG2G_ASSIGN_OR_RETURN(const LeaseRecord held, DecodeLease(key, ViewOf(val)));
    XG2G_RETURN_IF_ERROR(CheckFullKey("lease", key, db_key, held));
    const int64_t now = NowMs();
    if (now < held.expires_at_ms && held.owner != owner) return busy(held, now);
    return absl::OkStatus();
  }));

  LeaseGrant grant;
  bool sweep_due = false;
  XG2G_RETURN_IF_ERROR(Write(env, WriteKind::kAdds, [&](WriteTxn& w) -> absl::Status {
    sweep_due = false;
    const int64_t now = NowMs();
    MDB_val val;
    XG2G_ASSIGN_OR_RETURN(const bool found,
                          Get(env, w.txn, env.leases, db_key.val(), val, "a lease"));
    LeaseRecord lease;
    bool renew = false;
    if (found) {
      XG2G_ASSIGN_OR_RETURN(LeaseRecord held, DecodeLease(key, ViewOf(val)));
      XG2G_RETURN_IF_ERROR(CheckFullKey("lease", key, db_key, held));
      if (now < held.expires_at_ms) {
        if (held.owner != owner) return busy(held, now);
        renew = true;  // the holder again: a renewal, same token
        lease = std::move(held);
      }
    }
    if (!renew) {
      XG2G_ASSIGN_OR_RETURN(lease.fencing_token, NextCounter(w, kFencingKey));
      lease.owner.assign(owner);
    }
    lease.expires_at_ms = DeadlineAfter(ttl_ms);
    XG2G_RETURN_IF_ERROR(Put(w, env.leases, db_key.val(), EncodeLease(lease, db_key, key),
                             fmt::format("lease {}", Quoted(key))));
    grant = LeaseGrant{lease.fencing_token, lease.expires_at_ms};
    if (!found) {
      MDB_stat stat;
      sweep_due = mdb_stat(w.txn, env.leases, &stat) == 0 &&
                  stat.ms_entries >= env.lease_sweep_at.load(std::memory_order_relaxed);
    }
    return absl::OkStatus();
  }));
  if (sweep_due) MaybeSweep(/*idempotency_due=*/false, /*leases_due=*/true);
  return grant;
}

namespace {

// One renewal inside write transaction `w`, at `now`, to `deadline`. The
// outer status fails the whole transaction (LMDB trouble, a record that does
// not decode); the inner one is RenewLease's answer. An expired record is
// deleted (`expired_deleted`).
absl::StatusOr<absl::StatusOr<LeaseGrant>> RenewIn(Env& env, WriteTxn& w, std::string_view key,
                                                   std::string_view owner, int64_t now,
                                                   int64_t deadline, bool& expired_deleted) {
  const DbKey db_key(key);
  MDB_val val;
  XG2G_ASSIGN_OR_RETURN(const bool found,
                        Get(env, w.txn, env.leases, db_key.val(), val, "a lease"));
  if (!found) return absl::StatusOr<LeaseGrant>(LeaseNotHeld(key));
  XG2G_ASSIGN_OR_RETURN(LeaseRecord lease, DecodeLease(key, ViewOf(val)));
  XG2G_RETURN_IF_ERROR(CheckFullKey("lease", key, db_key, lease));
  if (now >= lease.expires_at_ms) {
    // Renewing does not bring it back; the expired record goes now.
    XG2G_RETURN_IF_ERROR(Del(w, env.leases, db_key.val(), fmt::format("lease {}", Quoted(key))));
    expired_deleted = true;
    return absl::StatusOr<LeaseGrant>(LeaseNotHeld(key));
  }
  if (lease.owner != owner) {
    return absl::StatusOr<LeaseGrant>(LeaseHeldByOther(key, lease.owner, owner));
  }
  lease.expires_at_ms = deadline;
  XG2G_RETURN_IF_ERROR(Put(w, env.leases, db_key.val(), EncodeLease(lease, db_key, key),
                           fmt::format("lease {}", Quoted(key))));
  return absl::StatusOr<LeaseGrant>(LeaseGrant{lease.fencing_token, lease.expires_at_ms});
}

}  // namespace

absl::StatusOr<LeaseGrant> LmdbStore::RenewLease(std::string_view key, std::string_view owner,
                                                 int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(ValidateLeaseArgs(key, owner));
  XG2G_RETURN_IF_ERROR(ValidateTtl("lease", key, ttl_ms));
  Env& env = *env_;
  LeaseGrant grant;
  XG2G_RETURN_IF_ERROR(Write(env, WriteKind::kAdds, [&](WriteTxn& w) -> absl::Status {
    bool expired_deleted = false;
    XG2G_ASSIGN_OR_RETURN(
        absl::StatusOr<LeaseGrant> answer,
        RenewIn(env, w, key, owner, NowMs(), DeadlineAfter(ttl_ms), expired_deleted));
    if (expired_deleted) w.commit_on_error = true;
    if (!answer.ok()) return answer.status();
    grant = *answer;
    return absl::OkStatus();
  }));
  return grant;
}

absl::StatusOr<std::vector<absl::StatusOr<LeaseGrant>>> LmdbStore::RenewLeases(
    std::span<const LeaseRef> leases, int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(store_internal::ValidateRenewalsTtl(ttl_ms));
  std::vector<absl::StatusOr<LeaseGrant>> answers;
  if (leases.empty()) return answers;
  Env& env = *env_;
  const absl::Status written = Write(env, WriteKind::kAdds, [&](WriteTxn& w) -> absl::Status {
    answers.clear();  // a round that runs again (a grown map) starts over
    const int64_t now = NowMs();
    const int64_t deadline = DeadlineAfter(ttl_ms);
    for (const LeaseRef& lease : leases) {
      absl::Status valid = ValidateLeaseArgs(lease.key, lease.owner);
      if (!valid.ok()) {
        answers.emplace_back(std::move(valid));
        continue;
      }
      bool expired_deleted = false;
      XG2G_ASSIGN_OR_RETURN(
          absl::StatusOr<LeaseGrant> answer,
          RenewIn(env, w, lease.key, lease.owner, now, deadline, expired_deleted));
      answers.push_back(std::move(answer));
    }
    return absl::OkStatus();
  });
  if (!written.ok()) {
    // Nothing was committed: every renewal answers with the transaction's error.
    answers.assign(leases.size(), absl::StatusOr<LeaseGrant>(written));
  }
  return answers;
}

namespace {

// One release inside write transaction `w`, at `now`. The returned status
// fails the whole transaction (LMDB trouble, a record that does not decode);
// `answer` is ReleaseLease's answer. An expired record is deleted and answers
// NotFound (`expired_deleted`: commit anyway).
absl::Status ReleaseIn(Env& env, WriteTxn& w, std::string_view key, std::string_view owner,
                       int64_t now, absl::Status& answer, bool& expired_deleted) {
  const DbKey db_key(key);
  MDB_val val;
  XG2G_ASSIGN_OR_RETURN(const bool found,
                        Get(env, w.txn, env.leases, db_key.val(), val, "a lease"));
  if (!found) {
    answer = LeaseNotHeld(key);
    return absl::OkStatus();
  }
  XG2G_ASSIGN_OR_RETURN(const LeaseRecord lease, DecodeLease(key, ViewOf(val)));
  XG2G_RETURN_IF_ERROR(CheckFullKey("lease", key, db_key, lease));
  const bool expired = now >= lease.expires_at_ms;
  if (!expired && lease.owner != owner) {
    answer = LeaseHeldByOther(key, lease.owner, owner);
    return absl::OkStatus();
  }
  XG2G_RETURN_IF_ERROR(Del(w, env.leases, db_key.val(), fmt::format("lease {}", Quoted(key))));
  expired_deleted = expired;
  answer = expired ? LeaseNotHeld(key) : absl::OkStatus();
  return absl::OkStatus();
}

}  // namespace

absl::Status LmdbStore::ReleaseLease(std::string_view key, std::string_view owner) {
  XG2G_RETURN_IF_ERROR(ValidateLeaseArgs(key, owner));
  Env& env = *env_;
  return Write(env, WriteKind::kFrees, [&](WriteTxn& w) -> absl::Status {
    absl::Status answer;
    bool expired_deleted = false;
    XG2G_RETURN_IF_ERROR(ReleaseIn(env, w, key, owner, NowMs(), answer, expired_deleted));
    if (expired_deleted) w.commit_on_error = true;
    return answer;
  });
}

absl::StatusOr<std::vector<absl::Status>> LmdbStore::ReleaseLeases(
    std::span<const LeaseRef> leases) {
  std::vector<absl::Status> answers;
  if (leases.empty()) return answers;
  Env& env = *env_;
  const absl::Status written = Write(env, WriteKind::kFrees, [&](WriteTxn& w) -> absl::Status {
    answers.clear();  // a round that runs again (a grown map) starts over
    const int64_t now = NowMs();
    for (const LeaseRef& lease : leases) {
      absl::Status valid = ValidateLeaseArgs(lease.key, lease.owner);
      if (!valid.ok()) {
        answers.push_back(std::move(valid));
        continue;
      }
      absl::Status answer;
      bool expired_deleted = false;
      XG2G_RETURN_IF_ERROR(
          ReleaseIn(env, w, lease.key, lease.owner, now, answer, expired_deleted));
      answers.push_back(std::move(answer));
    }
    return absl::OkStatus();
  });
  if (!written.ok()) {
    // Nothing was committed: every release answers with the transaction's error.
    answers.assign(leases.size(), written);
  }
  return answers;
}

absl::StatusOr<LeaseInfo> LmdbStore::GetLease(std::string_view key) {
  if (key.empty()) return InvalidError("lease key is empty");
  Env& env = *env_;
  const DbKey db_key(key);
  LeaseInfo info;
  XG2G_RETURN_IF_ERROR(Read(env, [&](MDB_txn* txn) -> absl::Status {
    MDB_val val;
    XG2G_ASSIGN_OR_RETURN(const bool found,
                          Get(env, txn, env.leases, db_key.val(), val, "a lease"));
    if (!found) return LeaseNotHeld(key);
    XG2G_ASSIGN_OR_RETURN(LeaseRecord lease, DecodeLease(key, ViewOf(val)));
    XG2G_RETURN_IF_ERROR(CheckFullKey("lease", key, db_key, lease));
    if (NowMs() >= lease.expires_at_ms) return LeaseNotHeld(key);
    info = LeaseInfo{std::string(key), std::move(lease.owner), lease.fencing_token,
                     lease.expires_at_ms};
    return absl::OkStatus();
  }));
  return info;
}

absl::StatusOr<FirstLeaseGrant> LmdbStore::AcquireFirstFreeLease(
    std::span<const std::string_view> keys, std::string_view owner, int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(store_internal::ValidateFirstFreeArgs(keys, owner, ttl_ms));
  Env& env = *env_;
  size_t from = 0;
  while (from < keys.size()) {
    size_t free = keys.size();
    XG2G_RETURN_IF_ERROR(Read(env, [&](MDB_txn* txn) -> absl::Status {
      const int64_t now = NowMs();
      for (size_t i = from; i < keys.size(); ++i) {
        const DbKey db_key(keys[i]);
        MDB_val val;
        XG2G_ASSIGN_OR_RETURN(const bool found,
                              Get(env, txn, env.leases, db_key.val(), val, "a lease"));
        if (found) {
          XG2G_ASSIGN_OR_RETURN(const LeaseRecord held, DecodeLease(keys[i], ViewOf(val)));
          XG2G_RETURN_IF_ERROR(CheckFullKey("lease", keys[i], db_key, held));
          if (now < held.expires_at_ms) continue;
        }
        free = i;
        return absl::OkStatus();
      }
      return absl::OkStatus();
    }));
    if (free == keys.size()) break;
    auto grant = AcquireLease(keys[free], owner, ttl_ms);
    if (grant.ok()) return FirstLeaseGrant{free, *grant};
    if (CodeOf(grant.status()) != ErrorCode::kBusy) return grant.status();
    from = free + 1;  // taken since the read: search on past it
  }
  return store_internal::NoFreeLease(keys.size());
}

absl::StatusOr<std::vector<LeaseInfo>> LmdbStore::ListLeases() {
  Env& env = *env_;
  std::vector<LeaseInfo> leases;
  XG2G_RETURN_IF_ERROR(Read(env, [&](MDB_txn* txn) -> absl::Status {
    leases.clear();
    const int64_t now = NowMs();
    CursorGuard cursor;
    if (int rc = mdb_cursor_open(txn, env.leases, cursor.out()); rc != 0) {
      return env.Error(rc, "open a lease cursor");
    }
    MDB_val key;
    MDB_val val;
    int rc = mdb_cursor_get(cursor.get(), &key, &val, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(cursor.get(), &key, &val, MDB_NEXT)) {
      const std::string_view db_key = ViewOf(key);
      XG2G_ASSIGN_OR_RETURN(LeaseRecord lease, DecodeLease(db_key, ViewOf(val)));
      if (now >= lease.expires_at_ms) continue;
      std::string full_key = db_key.size() == kHashedKeySize ? std::move(lease.key)
                                                             : std::string(db_key);
      leases.push_back(LeaseInfo{std::move(full_key), std::move(lease.owner),
                                 lease.fencing_token, lease.expires_at_ms});
    }
    if (rc != MDB_NOTFOUND) return env.Error(rc, "read the leases");
    return absl::OkStatus();
  }));
  // Hashed long keys sort by their prefix and hash in LMDB, not by the key.
  std::sort(leases.begin(), leases.end(),
            [](const LeaseInfo& a, const LeaseInfo& b) { return a.key < b.key; });
  return leases;
}

// ------------------------------------------------------------------ sweeper

namespace {

// Deletes the expired records of one table: `deadline_of(key, json)` gives a
// record's deadline, or fails for one that does not decode (counted in
// `corrupt` and left alone). Adds what went to `removed`.
template <typename Deadline>
absl::Status SweepTable(Env& env, MDB_dbi dbi, std::string_view what, int64_t now,
                        Deadline deadline_of, size_t& removed, size_t& corrupt) {
  std::string after;
  bool first = true;
  size_t batch_limit = kSweepBatch;
  for (bool more = true; more;) {
    std::vector<std::string> expired;
    XG2G_RETURN_IF_ERROR(Read(env, [&](MDB_txn* txn) -> absl::Status {
      expired.clear();
      CursorGuard cursor;
      if (int rc = mdb_cursor_open(txn, dbi, cursor.out()); rc != 0) {
        return env.Error(rc, fmt::format("open a cursor on {}", what));
      }
      MDB_val key = ValOf(after);
      MDB_val val;
      int rc = first ? mdb_cursor_get(cursor.get(), &key, &val, MDB_FIRST)
                     : mdb_cursor_get(cursor.get(), &key, &val, MDB_SET_RANGE);
      if (rc == 0 && !first && ViewOf(key) == after) {
        rc = mdb_cursor_get(cursor.get(), &key, &val, MDB_NEXT);
      }
      for (size_t looked = 0; rc == 0 && looked < kSweepLookPerTxn && expired.size() < kSweepBatch;
           ++looked) {
        absl::StatusOr<int64_t> deadline = deadline_of(ViewOf(key), ViewOf(val));
        if (!deadline.ok()) {
          ++corrupt;
        } else if (now >= *deadline) {
          expired.emplace_back(ViewOf(key));
        }
        after.assign(ViewOf(key));
        rc = mdb_cursor_get(cursor.get(), &key, &val, MDB_NEXT);
      }
      first = false;
      if (rc != 0 && rc != MDB_NOTFOUND) return env.Error(rc, fmt::format("read {}", what));
      more = rc == 0;
      return absl::OkStatus();
    }));
    // Delete in write transactions of at most `batch_limit`, smaller when a
    // full store leaves only the reserve to work in.
    for (size_t start = 0; start < expired.size();) {
      const size_t end = std::min(expired.size(), start + batch_limit);
      size_t deleted = 0;
      absl::Status status = Write(env, WriteKind::kFrees, [&](WriteTxn& w) -> absl::Status {
        deleted = 0;
        for (size_t i = start; i < end; ++i) {
          MDB_val val;
          XG2G_ASSIGN_OR_RETURN(const bool found,
                                Get(env, w.txn, dbi, ValOf(expired[i]), val, what));
          if (!found) continue;
          // Checked again: the entry may have been taken anew since it was read.
          absl::StatusOr<int64_t> deadline = deadline_of(expired[i], ViewOf(val));
          if (!deadline.ok() || now < *deadline) continue;
          XG2G_RETURN_IF_ERROR(Del(w, dbi, ValOf(expired[i]), what));
          ++deleted;
        }
        return absl::OkStatus();
      });
      if (CodeOf(status) == ErrorCode::kStoreFull && batch_limit > 1) {
        batch_limit /= 2;
        continue;
      }
      XG2G_RETURN_IF_ERROR(status);
      removed += deleted;
      start = end;
    }
  }
  return absl::OkStatus();
}

uint64_t EntriesOf(Env& env, MDB_dbi dbi) {
  uint64_t entries = 0;
  const absl::Status status = Read(env, [&](MDB_txn* txn) -> absl::Status {
    MDB_stat stat;
    if (mdb_stat(txn, dbi, &stat) == 0) entries = stat.ms_entries;
    return absl::OkStatus();
  });
  return status.ok() ? entries : 0;
}

}  // namespace

absl::StatusOr<LmdbSweepStats> LmdbStore::SweepExpired() {
  Env& env = *env_;
  LmdbSweepStats stats;
  const int64_t now = NowMs();
  XG2G_RETURN_IF_ERROR(SweepTable(
      env, env.idempotency, "idempotency keys", now,
      [](std::string_view key, std::string_view json) -> absl::StatusOr<int64_t> {
        XG2G_ASSIGN_OR_RETURN(const IdempotencyRecord record, DecodeIdempotency(key, json));
        return record.entry.expires_at_ms;
      },
      stats.idempotency_removed, stats.corrupt_skipped));
  XG2G_RETURN_IF_ERROR(SweepTable(
      env, env.leases, "leases", now,
      [](std::string_view key, std::string_view json) -> absl::StatusOr<int64_t> {
        XG2G_ASSIGN_OR_RETURN(const LeaseRecord record, DecodeLease(key, json));
        return record.expires_at_ms;
      },
      stats.leases_removed, stats.corrupt_skipped));
  return stats;
}

void LmdbStore::MaybeSweep(bool idempotency_due, bool leases_due) {
  Env& env = *env_;
  if (env.sweeping.exchange(true, std::memory_order_acquire)) return;  // one at a time
  // Best effort: a sweep that fails leaves expired entries, which reads ignore.
  (void)SweepExpired();
  // The next sweep when the table has doubled again: O(1) amortised per insert.
  if (idempotency_due) {
    env.idempotency_sweep_at.store(std::max(kMinSweepEntries, 2 * EntriesOf(env, env.idempotency)),
                                   std::memory_order_relaxed);
  }
  if (leases_due) {
    env.lease_sweep_at.store(std::max(kMinSweepEntries, 2 * EntriesOf(env, env.leases)),
                             std::memory_order_relaxed);
  }
  env.sweeping.store(false, std::memory_order_release);
}

// ------------------------------------------------------------ operations

absl::StatusOr<StoreCheckReport> LmdbStore::Check() {
  XG2G_ASSIGN_OR_RETURN(StoreCheckReport report, Store::Check());
  XG2G_ASSIGN_OR_RETURN(LmdbCheckReport own, CheckConsistency());
  report.idempotency_keys = static_cast<int64_t>(own.idempotency_keys);
  report.problems.insert(report.problems.end(), own.problems.begin(), own.problems.end());
  return report;
}

absl::StatusOr<LmdbCheckReport> LmdbStore::CheckConsistency() {
  Env& env = *env_;
  LmdbCheckReport report;
  XG2G_RETURN_IF_ERROR(Read(env, [&](MDB_txn* txn) -> absl::Status {
    report = LmdbCheckReport{};
    const auto problem = [&](std::string text) { report.problems.push_back(std::move(text)); };
    MDB_val val;
    XG2G_ASSIGN_OR_RETURN(const bool has_format,
                          Get(env, txn, env.meta, ValOf(kFormatKey), val, "the format record"));
    if (!has_format) {
      problem("meta record 'format' is missing");
    } else if (absl::StatusOr<int64_t> format = DecodeFormat(ViewOf(val)); !format.ok()) {
      problem(std::string(FromAbsl(format.status().message())));
    } else if (*format != kFormatVersion) {
      problem(fmt::format("meta record 'format' is {}, expected {}", *format, kFormatVersion));
    }
    if (absl::StatusOr<uint64_t> last = ReadCounter(env, txn, kRevisionKey); last.ok()) {
      report.last_revision = *last;
    } else {
      problem(std::string(FromAbsl(last.status().message())));
    }
    if (absl::StatusOr<uint64_t> last = ReadCounter(env, txn, kFencingKey); last.ok()) {
      report.last_fencing_token = *last;
    } else {
      problem(std::string(FromAbsl(last.status().message())));
    }

    // Walks one table, handing each key and value to `check`.
    const auto walk = [&](MDB_dbi dbi, std::string_view what, size_t& count,
                          const auto& check) -> absl::Status {
      CursorGuard cursor;
      if (int rc = mdb_cursor_open(txn, dbi, cursor.out()); rc != 0) {
        return env.Error(rc, fmt::format("open a cursor on {}", what));
      }
      MDB_val key;
      MDB_val value;
      int rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_FIRST);
      for (; rc == 0; rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_NEXT)) {
        ++count;
        check(ViewOf(key), ViewOf(value));
      }
      if (rc != MDB_NOTFOUND) return env.Error(rc, fmt::format("read {}", what));
      return absl::OkStatus();
    };
    // A key as an operator would type it: hashed keys are named by their record.
    const auto key_ok = [&](std::string_view what, std::string_view db_key,
                            std::string_view full_key) {
      if (db_key.size() == kHashedKeySize) {
        if (full_key.empty() || DbKey(full_key).view() != db_key) {
          problem(fmt::format("{} under hashed key {}: the record does not name its key", what,
                              Quoted(db_key)));
        }
      } else if (db_key.size() > kMaxDirectKey) {
        problem(fmt::format("{} under key {}: the key has an impossible length", what,
                            Quoted(db_key)));
      }
    };
    XG2G_RETURN_IF_ERROR(walk(env.sessions, "sessions", report.sessions,
                              [&](std::string_view id, std::string_view json) {
      if (!IsValidSessionId(id)) problem(fmt::format("session key {} is not a valid id", Quoted(id)));
      absl::StatusOr<SessionRecord> record = DecodeStoredSession(id, json);
      if (!record.ok()) {
        problem(std::string(FromAbsl(record.status().message())));
      } else if (record->revision <= 0 ||
                 static_cast<uint64_t>(record->revision) > report.last_revision) {
        problem(fmt::format("session '{}': revision {} is outside 1..{}", id, record->revision,
                            report.last_revision));
      }
    }));
    XG2G_RETURN_IF_ERROR(walk(env.idempotency, "idempotency keys", report.idempotency_keys,
                              [&](std::string_view key, std::string_view json) {
      absl::StatusOr<IdempotencyRecord> record = DecodeIdempotency(key, json);
      if (!record.ok()) {
        problem(std::string(FromAbsl(record.status().message())));
        return;
      }
      key_ok("idempotency entry", key, record->key);
      if (!IsValidSessionId(record->entry.session_id)) {
        problem(fmt::format("idempotency key {}: session id {} is not valid", Quoted(key),
                            Quoted(record->entry.session_id)));
      }
    }));
    XG2G_RETURN_IF_ERROR(walk(env.leases, "leases", report.leases,
                              [&](std::string_view key, std::string_view json) {
      absl::StatusOr<LeaseRecord> record = DecodeLease(key, json);
      if (!record.ok()) {
        problem(std::string(FromAbsl(record.status().message())));
        return;
      }
      key_ok("lease", key, record->key);
      if (record->fencing_token > report.last_fencing_token) {
        problem(fmt::format("lease {}: token {} is above the counter {}", Quoted(key),
                            record->fencing_token, report.last_fencing_token));
      }
    }));
    return absl::OkStatus();
  }));
  return report;
}

absl::StatusOr<LmdbMapInfo> LmdbStore::MapInfo() {
  Env& env = *env_;
  LmdbMapInfo info;
  XG2G_RETURN_IF_ERROR(Read(env, [&](MDB_txn* txn) -> absl::Status {
    MDB_envinfo env_info;
    mdb_env_info(env.env, &env_info);
    info.map_bytes = env_info.me_mapsize;
    info.max_map_bytes = env.options.max_map_bytes;
    info.page_bytes = env.page_bytes;
    info.file_bytes = (env_info.me_last_pgno + 1) * env.page_bytes;
    info.used_bytes = UsedPages(env, txn) * env.page_bytes;
    return absl::OkStatus();
  }));
  return info;
}

// --------------------------------------------------------------- the URI

absl::StatusOr<LmdbLocation> ParseLmdbLocation(std::string_view location) {
  LmdbLocation parsed;
  const size_t question = location.find('?');
  parsed.dir = std::string(location.substr(0, question));
  if (parsed.dir.empty()) {
    return InvalidError(
        "store URI: scheme 'lmdb' needs a directory after the colon, e.g. \"lmdb:./var/xg2g\"");
  }
  if (question == std::string_view::npos) return parsed;

  bool seen_sync = false;
  bool seen_map = false;
  bool seen_max = false;
  bool seen_cache = false;
  bool seen_group = false;
  const auto size_mb = [](std::string_view name, std::string_view value,
                          uint64_t& out) -> absl::Status {
    constexpr uint64_t kMaxMb = uint64_t{1} << 20;  // 1 TiB
    uint64_t mb = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), mb);
    if (value.empty() || ec != std::errc() || ptr != value.data() + value.size() || mb == 0 ||
        mb > kMaxMb) {
      return InvalidError(fmt::format(
          "store URI: lmdb parameter '{}' must be a whole number of MiB from 1 to {}, got {}",
          name, kMaxMb, Quoted(value)));
    }
    out = mb << 20;
    return absl::OkStatus();
  };
  std::string_view query = location.substr(question + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      return InvalidError(
          fmt::format("store URI: lmdb parameter {} has no value (write NAME=VALUE)", Quoted(pair)));
    }
    const std::string_view name = pair.substr(0, eq);
    const std::string_view value = pair.substr(eq + 1);
    bool* seen = nullptr;
    if (name == "sync") {
      seen = &seen_sync;
      std::string lower;
      for (char c : value) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
      if (lower == "durable") {
        parsed.options.sync = LmdbSync::kDurable;
      } else if (lower == "nometasync") {
        parsed.options.sync = LmdbSync::kNoMetaSync;
      } else if (lower == "nosync") {
        parsed.options.sync = LmdbSync::kNoSync;
      } else {
        return InvalidError(fmt::format(
            "store URI: lmdb parameter 'sync' must be durable, nometasync or nosync, got {}",
            Quoted(value)));
      }
    } else if (name == "map_size_mb") {
      seen = &seen_map;
      XG2G_RETURN_IF_ERROR(size_mb(name, value, parsed.options.initial_map_bytes));
    } else if (name == "max_map_size_mb") {
      seen = &seen_max;
      XG2G_RETURN_IF_ERROR(size_mb(name, value, parsed.options.max_map_bytes));
    } else if (name == "cache") {
      seen = &seen_cache;
      size_t entries = 0;
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), entries);
      if (value.empty() || ec != std::errc() || ptr != value.data() + value.size() ||
          entries > kLmdbMaxCacheEntries) {
        return InvalidError(fmt::format(
            "store URI: lmdb parameter 'cache' must be a whole number of entries from 0 to {}, "
            "got {}",
            kLmdbMaxCacheEntries, Quoted(value)));
      }
      parsed.options.cache_entries = entries;
    } else if (name == "group_commit") {
      seen = &seen_group;
      if (value == "on" || value == "1" || value == "true") {
        parsed.options.group_commit = true;
      } else if (value == "off" || value == "0" || value == "false") {
        parsed.options.group_commit = false;
      } else {
        return InvalidError(fmt::format(
            "store URI: lmdb parameter 'group_commit' must be on or off, got {}", Quoted(value)));
      }
    } else {
      return InvalidError(fmt::format(
          "store URI: unknown lmdb parameter {} (known: sync, map_size_mb, max_map_size_mb, "
          "cache, group_commit)",
          Quoted(name)));
    }
    if (*seen) {
      return InvalidError(fmt::format("store URI: lmdb parameter {} is given twice", Quoted(name)));
    }
    *seen = true;
  }
  LmdbOptions& options = parsed.options;
  if (seen_map && seen_max && options.initial_map_bytes > options.max_map_bytes) {
    return InvalidError(fmt::format(
        "store URI: lmdb map_size_mb ({}) is above max_map_size_mb ({})",
        options.initial_map_bytes >> 20, options.max_map_bytes >> 20));
  }
  // One of the two given: the other follows it.
  if (seen_map && !seen_max) {
    options.max_map_bytes = std::max(options.max_map_bytes, options.initial_map_bytes);
  }
  if (seen_max && !seen_map) {
    options.initial_map_bytes = std::min(options.initial_map_bytes, options.max_map_bytes);
  }
  return parsed;
}

}  // namespace xg2g
